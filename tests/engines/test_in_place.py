"""Parquet in place: the same figures as a load, from views over the files; a time range
reads only the files and row groups it needs."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from analysis import sample
from analysis.errors import LoadError, ParameterError
from analysis.figures import summary
from analysis.report.run import Run


@pytest.fixture(scope="module")
def parquet_sample(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("pq")
    return sample.generate(out, scale=0.05, seed=7, fmt="parquet")


@pytest.fixture(scope="module")
def hive(parquet_sample, tmp_path_factory) -> Path:
    """The sample's queries and auth events as Hive partitions dt=…/hour=…, one file each."""
    root = tmp_path_factory.mktemp("hive")
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    for kind in ("auth", "queries"):
        con.execute(
            f"copy (select *, strftime(ts, '%Y-%m-%d') as dt, hour(ts) as hour "  # noqa: S608
            f"from read_parquet(?)) to '{root / kind}' (format parquet, partition_by (dt, hour))",
            [str(parquet_sample[kind])],
        )
    return root


def figures(tmp_path: Path, name: str, **given) -> tuple[dict, Run]:
    run = Run.from_parameters(
        database=str(tmp_path / f"{name}.duckdb"),
        report_dir=str(tmp_path / name),
        say=lambda _m: None,
        **given,
    )
    run.load()
    run.analyse()
    return json.loads(summary.dumps(run.summary)), run


def test_in_place_gives_the_loaded_figures(parquet_sample, tmp_path, statement_key):
    inputs = {
        "auth_logs": str(parquet_sample["auth"]),
        "query_logs": str(parquet_sample["queries"]),
        "timeline": str(parquet_sample["timeline"]),
    }
    loaded, _ = figures(tmp_path, "loaded", **inputs)
    in_place, run = figures(tmp_path, "in_place", in_place=True, **inputs)
    assert in_place == loaded
    assert loaded["impact"]["users_affected"] > 0
    assert loaded["dimensions"][0]["value"] == "eu-west"
    # nothing was copied: the database holds the timeline only
    con = run.con
    # rows this few are held in memory: no database file of the session's
    assert con.execute(
        "select count(*) from duckdb_databases() where database_name = 'pm_in_place'"
    ).fetchall() == [(0,)]
    assert con.execute("select count(*) from auth_events").fetchone() == (0,)
    assert con.execute("select count(*) from db_queries").fetchone() == (0,)
    assert [f.format for f in run.loaded.files if f.kind != "timeline"] == [
        "parquet (in place)"
    ] * 2


def test_in_place_beyond_the_memory_limit_spills_and_gives_the_loaded_figures(
    parquet_sample, tmp_path, monkeypatch
):
    # 123k queries under a 20MB limit on one thread, as a day of 55M queries under 3GB: the
    # session table spills to disk. Its fingerprints were an update of every row, which DuckDB
    # holds in memory whole: that ran out here (and at 60M rows), the join of the keys does not
    from analysis import db

    inputs = {
        "auth_logs": str(parquet_sample["auth"]),
        "query_logs": str(parquet_sample["queries"]),
        "timeline": str(parquet_sample["timeline"]),
    }
    loaded, _ = figures(tmp_path, "loaded", **inputs)
    monkeypatch.setenv(db.MEMORY_ENV, "20MB")
    monkeypatch.setenv(db.THREADS_ENV, "1")
    run = Run.from_parameters(
        database=str(tmp_path / "tight.duckdb"),
        report_dir=str(tmp_path / "tight"),
        say=lambda _m: None,
        in_place=True,
        **inputs,
    )
    run.load()
    assert db.one(run.con, "select current_setting('memory_limit')")[0] == "19.0 MiB"
    # past half the limit the rows went to a database file of the session's, not to memory
    assert run.con.execute(
        "select table_name from duckdb_tables() where database_name = 'pm_in_place' order by all"
    ).fetchall() == [("_ipt_auth",), ("_ipt_queries",)]
    # the figures' own queries need more than 20MB; the table was made within it
    run.con.execute("set memory_limit = '1GB'")
    run.analyse()
    assert json.loads(summary.dumps(run.summary)) == loaded
    assert sum(f.rows_read for f in run.loaded.files if f.kind == "queries") > 100_000


def test_a_range_reads_only_its_partitions_and_gives_the_loaded_figures(hive, tmp_path):
    rng = {"range_start": "2024-01-19T09:00:00Z", "range_end": "2024-01-19T16:00:00Z"}
    # every data page of every file outside the range is destroyed (the footer, with the
    # statistics, is kept): the in-place run can only succeed if it never reads one
    outside = [p for p in hive.rglob("*.parquet") if not 9 <= int(p.parent.name[5:]) < 16]
    assert outside
    backup = tmp_path / "backup"
    for p in outside:
        data = bytearray(p.read_bytes())
        (backup / p.relative_to(hive)).parent.mkdir(parents=True, exist_ok=True)
        (backup / p.relative_to(hive)).write_bytes(data)
        footer = int.from_bytes(data[-8:-4], "little") + 8  # the footer and its length
        data[4 : len(data) - footer] = b"\xff" * (len(data) - footer - 4)
        p.write_bytes(bytes(data))
    try:
        in_place, run = figures(
            tmp_path,
            "ranged",
            in_place=True,
            auth_logs=str(hive / "auth"),
            query_logs=str(hive / "queries"),
            timeline="",
            **rng,
        )
    finally:
        for p in outside:
            p.write_bytes((backup / p.relative_to(hive)).read_bytes())
    read = {Path(f.path).parent.name for f in run.loaded.files}
    assert read == {f"hour={h}" for h in range(9, 16)}
    loaded, _ = figures(
        tmp_path,
        "ranged_loaded",
        auth_logs=str(hive / "auth" / "**" / "*.parquet"),
        query_logs=str(hive / "queries" / "**" / "*.parquet"),
        timeline="",
        **rng,
    )
    # the partition columns are folder names, not dimensions; everything else agrees
    # (loaded, they take two of the 20 places)
    others = [d for d in loaded["dimensions"] if d["dimension"] not in ("dt", "hour")]
    assert others == in_place["dimensions"][: len(others)]
    assert len(others) >= 10
    for key in ("impact", "auth", "db", "bypass", "window"):
        assert summary.dumps(in_place[key]) == summary.dumps(loaded[key]), key
    # rows read in place: those of the range, all usable
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    in_range = con.execute(
        "select count(*) from read_parquet(?) where ts >= ? and ts < ?",
        [str(hive / "auth" / "**" / "*.parquet"), *run.time_range],
    ).fetchone()[0]
    assert in_place["ingest"]["auth"] == {
        "rows_read": in_range,
        "rows_loaded": in_range,
        "rows_rejected": 0,
        "rows_skipped": 0,
        "outside_span": {"count": 0, "first": None, "last": None},
    }
    assert 0 < in_range < loaded["ingest"]["auth"]["rows_read"]


def test_a_range_limits_a_loaded_report_too(parquet_sample, tmp_path):
    inputs = {
        "auth_logs": str(parquet_sample["auth"]),
        "query_logs": str(parquet_sample["queries"]),
        "timeline": "",
    }
    whole, _ = figures(tmp_path, "whole", **inputs)
    part, run = figures(
        tmp_path,
        "part",
        range_start="2024-01-19T10:30:00Z",
        range_end="2024-01-19T14:45:00Z",
        **inputs,
    )
    # the window's own figures do not change; the baseline has no rows left in the range
    assert part["auth"]["attempts"] == whole["auth"]["attempts"]
    assert part["impact"] == whole["impact"]
    assert part["bypass"]["logins"] < whole["bypass"]["logins"]
    first = run.con.execute("select min(ts), max(ts) from v_auth").fetchone()
    assert first[0] >= run.time_range[0] and first[1] < run.time_range[1]


def test_in_place_refuses_what_is_not_parquet(tmp_path):
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text('{"ts": "2024-01-19T10:30:00Z", "user_id": "u", "outcome": "success"}\n')
    with pytest.raises(LoadError, match=r"a\.jsonl: --in-place reads Parquet only"):
        figures(
            tmp_path, "x", in_place=True, auth_logs=str(jsonl), query_logs=str(jsonl), timeline=""
        )


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"range_start": "yesterday"}, "range_start 'yesterday'"),
        ({"range_end": "2024-01-19T10:00:00"}, "has no time zone"),
        (
            {"range_start": "2024-01-19T12:00:00Z", "range_end": "2024-01-19T11:00:00Z"},
            "range_end must be after range_start",
        ),
    ],
)
def test_a_range_that_is_not_one_is_refused(given, message):
    with pytest.raises(ParameterError, match=message):
        Run.from_parameters(**given)


def test_postmortem_report_in_place_runs_both_notebooks(hive, parquet_sample, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "report"
    done = subprocess.run(
        [sys.executable, "-m", "analysis.cli", "-q", "report", "--in-place", "--explore"]
        + ["--auth", str(hive / "auth"), "--queries", str(hive / "queries")]
        + ["--timeline", str(parquet_sample["timeline"]), "--database", str(tmp_path / "d.duckdb")]
        + ["--out", str(out), "--range-start", "2024-01-19T08:00:00Z"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["parameters"]["in_place"] is True
    assert {i["format"] for i in manifest["inputs"] if i["kind"] != "timeline"} == {
        "parquet (in place)"
    }
    assert (out / "explore.html").exists() and (out / "incident_report.html").exists()
    explored = (out / "explore.ipynb").read_text(encoding="utf-8")
    assert "eu-west" in explored  # the slice by region ran on the in-place view


def test_the_command_refuses_in_place_for_json_lines_before_a_kernel_starts(tmp_path):
    import subprocess
    import sys

    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text('{"ts": "2024-01-19T10:30:00Z", "user_id": "u", "outcome": "success"}\n')
    out = tmp_path / "report"
    done = subprocess.run(
        [sys.executable, "-m", "analysis.cli", "-q", "report", "--in-place", "--auth", str(jsonl)]
        + ["--queries", str(jsonl), "--out", str(out), "--database", str(tmp_path / "d.duckdb")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"postmortem: error: {jsonl}: --in-place reads Parquet only (files ending .parquet); "
        "load other formats without --in-place"
    ]
    assert not out.exists()


def test_a_range_too_large_for_the_memory_limit_says_what_to_do(parquet_sample, tmp_path):
    # the session table of 55M queries ran out of the 3 GB limit; the error names the way out
    from analysis import db, times
    from analysis.engines import in_place as inplace

    class Tight:
        """A connection whose memory ends at the session table of the queries."""

        def __init__(self, con):
            self.con = con

        def execute(self, sql, *args):
            if sql.startswith("create or replace temp table _ipt_queries"):
                raise duckdb.OutOfMemoryException("Out of Memory Error: failed to allocate")
            return self.con.execute(sql, *args)

    con = db.connect(tmp_path / "tight.duckdb")
    files = {"auth": [parquet_sample["auth"]], "queries": [parquet_sample["queries"]]}
    day = (
        times.parse_instant("2024-01-19T00:00:00Z"),
        times.parse_instant("2024-01-20T00:00:00Z"),
    )
    with pytest.raises(
        LoadError, match=r"do not fit DuckDB's memory limit \(.+\).*--memory-limit"
    ):
        inplace.attach(Tight(con), files, day)
    con.close()
