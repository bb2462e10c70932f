"""A corpus of bad input, and fuzzing: the load goes on or stops with one clear line naming
the file, never a traceback, and rows_read = rows_loaded + rows_rejected always."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis import db, errors, kinds
from analysis.ingest import loader as load
from tests.conftest import write

BIN = Path(sys.executable).parent
GOOD = {"ts": "2024-01-19T10:30:00Z", "user_id": "u1", "outcome": "success"}
FUZZ_EXAMPLES = int(os.environ.get("POSTMORTEM_FUZZ_EXAMPLES", "40"))


def reconciles(result: load.LoadResult) -> bool:
    return all(f.rows_read == f.rows_loaded + f.rows_rejected for f in result.files)


def jl(*rows) -> str:
    return "".join((json.dumps(r) if not isinstance(r, str) else r) + "\n" for r in rows)


CORPUS = {
    "empty.jsonl": ("", (0, 0)),
    "blank-lines.jsonl": ("\n\n   \n\r\n", (0, 0)),
    "header-only.csv": ("ts,user_id,outcome\n", (0, 0)),
    "nested.jsonl": (
        jl(GOOD, {**GOOD, "meta": {"a": [[[[[[[[[[1]]]]]]]]]]}}, "[" * 5000 + "]" * 5000),
        (3, 2),
    ),
    "wrong-types.jsonl": (
        jl(
            {**GOOD, "ts": True},
            {**GOOD, "ts": [1, 2]},
            {**GOOD, "ts": {"a": 1}},
            {**GOOD, "user_id": {"id": 1}},
            {**GOOD, "outcome": 1},
            {**GOOD, "latency_ms": [1]},
            {**GOOD, "latency_ms": True},
            {**GOOD, "error_code": 5},
            {**GOOD, "request_id": ["a"]},
        ),
        (9, 3),
    ),
    "duplicate-keys.jsonl": (
        '{"ts": "2024-01-19T10:30:00Z", "ts": "garbage", "user_id": "u", "outcome": "success"}\n',
        (1, None),
    ),
    "1970-2100.jsonl": (
        jl(
            {**GOOD, "ts": "1970-01-01T00:00:00Z"},
            {**GOOD, "ts": "2100-01-01T00:00:00Z"},
            {**GOOD, "ts": 0},
        ),
        (3, 3),
    ),
    "mixed-offsets.jsonl": (
        jl(
            {**GOOD, "ts": "2024-01-19T10:30:00Z"},
            {**GOOD, "ts": "2024-01-19T11:30:00+01:00"},
            {**GOOD, "ts": "2024-01-19T05:30:00-05:00"},
        ),
        (3, 3),
    ),
    "out-of-order.jsonl": (
        jl(*[{**GOOD, "ts": f"2024-01-19T{h:02d}:00:00Z"} for h in (9, 3, 22, 1, 12)]),
        (5, 5),
    ),
    "nul-and-controls.jsonl": (
        '{"ts": "2024-01-19T10:30:00Z", "user_id": "a\\u0000b\\u001b", "outcome": "success"}\n',
        (1, 1),
    ),
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_bad_input_corpus(con, tmp_path, name):
    text, (read, loaded) = CORPUS[name]
    f = write(tmp_path / name, text)
    result = load.load(con, auth=f)
    assert reconciles(result)
    assert result.files[0].rows_read == read
    if loaded is not None:
        assert result.files[0].rows_loaded == loaded


def test_same_instant_in_mixed_offsets_is_one_time(con, tmp_path):
    load.load(con, auth=write(tmp_path / "m.jsonl", CORPUS["mixed-offsets.jsonl"][0]))
    assert con.execute("select count(distinct ts) from auth_events").fetchall() == [(1,)]


def test_a_10_mb_single_line_is_rejected_with_its_start_kept(con, tmp_path):
    huge = '{"ts": "2024-01-19T10:30:00Z", "user_id": "' + "x" * 10_000_000 + '", "outc'
    f = write(tmp_path / "huge.jsonl", jl(GOOD, huge, GOOD))
    result = load.load(con, auth=f)
    assert (result.files[0].rows_read, result.files[0].rows_loaded) == (3, 2)
    raw, reason = con.execute("select raw, reason from rejects").fetchall()[0]
    assert reason == "broken JSON" and len(raw) == kinds.RAW_KEEP_CHARS


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("cut.jsonl.gz", gzip.compress(jl(*[GOOD] * 3000).encode())[:500], "cannot be read"),
        ("lies.csv", gzip.compress(b"ts,user_id,outcome\n"), "is gzip data, not CSV"),
        ("lies.parquet", jl(GOOD), "not a readable Parquet file"),
        ("lies.jsonl", b"\x00\x01\x02binary", "binary data, not JSON Lines"),
        # found by the fuzzer: a bare carriage return inside the header line
        ("cr.csv", b"t\rs,user_id,outcome\n2024-01-19T10:30:00Z,u,success\n", "CSV header"),
    ],
)
def test_whole_file_errors_are_one_clear_line_from_the_cli(tmp_path, name, content, fragment):
    f = write(tmp_path / name, content)
    proc = subprocess.run(
        [
            str(BIN / "postmortem"),
            "load",
            "--database",
            str(tmp_path / "d.duckdb"),
            "--auth",
            str(f),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("postmortem: error: ")
    assert str(f) in lines[0] and fragment in lines[0]
    assert "Traceback" not in proc.stderr


def _check_fuzz(data: bytes, suffix: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / f"fuzz{suffix}"
        f.write_bytes(data)
        con = db.connect(":memory:")
        try:
            result = load.load(con, auth=f)
        except errors.LoadError as exc:
            assert "\n" not in str(exc) and str(f) in str(exc)
            assert con.execute("select count(*) from auth_events").fetchall() == [(0,)]
            return
        finally:
            pass
        assert reconciles(result)
        n = con.execute("select count(*) from auth_events").fetchall()[0][0]
        r = con.execute("select count(*) from rejects").fetchall()[0][0]
        assert (n, r) == (result.files[0].rows_loaded, result.files[0].rows_rejected)
        con.close()


VALID = jl(
    GOOD,
    {**GOOD, "outcome": "failure", "error_code": "db_timeout", "latency_ms": 3},
    {**GOOD, "ts": 1705660200, "region": "eu"},
).encode()


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_fuzz_random_bytes(data):
    _check_fuzz(data, ".jsonl")


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(0, len(VALID) - 1), st.binary(min_size=0, max_size=3)), max_size=6
    )
)
def test_fuzz_mutations_of_valid_lines(edits):
    data = bytearray(VALID)
    for pos, repl in edits:
        data[pos : pos + 1] = repl
    _check_fuzz(bytes(data), ".jsonl")


CSV_VALID = (
    b"ts,user_id,outcome,latency_ms\n2024-01-19T10:30:00Z,u1,success,3\n"
    b'2024-01-19T10:31:00Z,"u,2",failure,4\n'
)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(CSV_VALID) - 1), st.binary(max_size=2)), max_size=5))
def test_fuzz_mutations_of_csv(edits):
    data = bytearray(CSV_VALID)
    for pos, repl in edits:
        data[pos : pos + 1] = repl
    _check_fuzz(bytes(data), ".csv")
