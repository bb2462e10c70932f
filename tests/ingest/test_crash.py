"""Crash safety and concurrency: a killed load leaves the database as it was or complete,
a killed report leaves no folder that looks complete, two reports at once both finish."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from tests.conftest import write

BIN = Path(sys.executable).parent
ROW = {"ts": "2024-01-19T10:30:00Z", "user_id": "u", "outcome": "success", "region": "eu"}


def counts(db: Path) -> tuple[int, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(
            "select (select count(*) from sources), (select count(*) from auth_events)"
        ).fetchall()[0]
    finally:
        con.close()


@pytest.fixture(scope="module")
def big_input(tmp_path_factory) -> Path:
    """About 600k rows: a load that takes a few seconds, long enough to be killed in."""
    path = tmp_path_factory.mktemp("big") / "auth.jsonl"
    line = json.dumps(ROW) + "\n"
    with path.open("w") as fh:
        for _ in range(60):
            fh.write(line * 10_000)
    return path


@pytest.mark.parametrize("after_s", [0.8, 1.6, 2.6])
def test_a_killed_load_leaves_the_database_before_or_complete(tmp_path, big_input, after_s):
    db = tmp_path / "d.duckdb"
    small = write(tmp_path / "small.jsonl", json.dumps(ROW) + "\n")
    subprocess.run(
        [str(BIN / "postmortem"), "-q", "load", "--database", str(db), "--auth", str(small)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    before = counts(db)
    proc = subprocess.Popen(
        [str(BIN / "postmortem"), "-q", "load", "--database", str(db), "--auth", str(big_input)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(after_s)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    after = counts(db)
    assert after in (before, (before[0] + 1, before[1] + 600_000)), after
    # the next run works and ends with exactly the complete load
    again = subprocess.run(
        [str(BIN / "postmortem"), "-q", "load", "--database", str(db), "--auth", str(big_input)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    assert counts(db) == (before[0] + 1, before[1] + 600_000)


def report_cmd(sample: dict[str, Path], db: Path, out: Path) -> list[str]:
    return [
        str(BIN / "postmortem"),
        "-q",
        "report",
        "--auth",
        str(sample["auth"]),
        "--queries",
        str(sample["queries"]),
        "--timeline",
        str(sample["timeline"]),
        "--database",
        str(db),
        "--out",
        str(out),
    ]


def test_a_killed_report_leaves_no_folder_that_looks_complete(tmp_path, small_sample):
    out = tmp_path / "reports" / "r"
    proc = subprocess.Popen(
        report_cmd(small_sample, tmp_path / "d.duckdb", out),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(4)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not out.exists()
    leftovers = [p.name for p in (tmp_path / "reports").iterdir()]
    assert all(name.startswith(".r.partial-") for name in leftovers), leftovers


def test_two_reports_at_once_on_one_database_both_finish_identically(tmp_path, small_sample):
    db = tmp_path / "shared.duckdb"
    outs = [tmp_path / "a" / "r", tmp_path / "b" / "r"]
    procs = [
        subprocess.Popen(
            report_cmd(small_sample, db, o),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for o in outs
    ]
    results = [p.communicate(timeout=600) for p in procs]
    for p, (_out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
    for name in ("summary.json", "postmortem.md", "manifest.json", "figures/overview.png"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    # the same inputs were loaded once, not twice
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("select count(*) from sources").fetchall() == [(3,)]
    con.close()


def test_two_reports_into_one_folder_leave_one_complete_report(tmp_path, small_sample):
    out = tmp_path / "reports" / "same"
    procs = [
        subprocess.Popen(
            report_cmd(small_sample, tmp_path / f"d{i}.duckdb", out),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for p in procs:
        _out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    assert (out / "manifest.json").is_file() and (out / "summary.json").is_file()
    assert [p.name for p in out.parent.iterdir()] == ["same"]
