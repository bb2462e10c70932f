"""``make bench``: time and peak memory of loading, analysing and reporting, against the floor
(DuckDB's bare scan of the same files) and the peers (pandas, pgbadger).

Each measurement runs in its own process; wall time is measured around it and peak RSS is
the child's ``ru_maxrss``. Inputs are generated once and cached under ``data/bench/``.
Results go to ``reports/bench/results.json`` and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from analysis import config

BENCH_DIR = config.DATA_DIR / "bench"
RESULTS = config.REPORTS_DIR / "bench" / "results.json"
PY = sys.executable
BIN = Path(sys.executable).parent

FLOOR_COUNT = """
import duckdb, sys
con = duckdb.connect()
for f in sys.argv[1:]:
    con.execute("select count(*) from read_json(?, format='newline_delimited')", [f]).fetchall()
"""
FLOOR_CTAS = """
import duckdb, sys
con = duckdb.connect(sys.argv[1])
for i, f in enumerate(sys.argv[2:]):
    sql = f"create table t{i} as select * from read_json(?, format='newline_delimited')"
    con.execute(sql, [f])
"""
FLOOR_KEY = """
import duckdb, sys, time
from analysis import fingerprint
con = duckdb.connect(sys.argv[1])
fingerprint.install(con)
impl = fingerprint.key_implementation()
for i, f in enumerate(sys.argv[2:]):
    rows = "read_json(?, format='newline_delimited')"
    if impl == "native":
        # loads key the rows they have read, as Arrow: the floor's store, then that key
        con.execute(f"create table t{i} as select * from {rows}", [f])
        statements = con.sql(f"select statement from t{i}").to_arrow_table().column(0)
        started = time.perf_counter()
        fingerprint.statement_keys(statements)
        print("key_s", round(time.perf_counter() - started, 3), file=sys.stderr)
    else:
        # the macro runs in the scan, as loads run it
        key = fingerprint.key_sql("statement")
        con.execute(f"create table t{i} as select *, {key} as k from {rows}", [f])
print(impl, file=sys.stderr)
"""
ANALYSIS = """
import sys
from analysis import db, times
from analysis.figures import metrics
from analysis.figures import summary
from analysis.figures import views
con = db.connect(sys.argv[1])
scope = views.scope(con)
params = metrics.Params(start=times.parse_instant("2024-01-19T10:30:00Z"),
                        end=times.parse_instant("2024-01-19T14:45:00Z"))
summary.analyse(con, params, scope, incident_id="bench")
"""
HIVE = """
import duckdb, sys
con = duckdb.connect()
con.execute("set TimeZone = 'UTC'")
con.execute("set enable_progress_bar = false")
for src, dst in zip(sys.argv[1::2], sys.argv[2::2]):
    # the target of COPY cannot be a bound value; it is our own folder
    con.execute(
        "copy (select *, strftime(ts, '%Y-%m-%d') as dt, hour(ts) as hour from read_parquet(?)) "
        f"to '{dst}' (format parquet, partition_by (dt, hour))",
        [src],
    )
"""
PANDAS = """
import sys
import pandas as pd
auth = pd.read_json(sys.argv[1], lines=True)
q = pd.read_json(sys.argv[2], lines=True)
auth["minute"] = pd.to_datetime(auth["ts"]).dt.floor("min")
auth["failed"] = auth["outcome"] == "failure"
per_min = auth.groupby("minute").agg(attempts=("failed", "size"), failures=("failed", "sum"))
q["minute"] = pd.to_datetime(q["ts"]).dt.floor("min")
lat = q.groupby("minute")["duration_ms"].quantile(0.95)
joined = q.merge(auth[["request_id", "minute"]], on="request_id", how="inner")
qpa = joined.groupby("minute_y").size() / per_min["attempts"]
print(len(per_min), len(lat), float(qpa.mean()))
"""


def measure(
    name: str,
    cmd: list[str],
    *,
    timeout: float = 3600,
    parse: Callable[[str], dict] | None = None,
) -> dict:
    """Run ``cmd`` in its own process: wall seconds and peak RSS (MB) of that process and
    the children it waited for (a report's notebook kernels); ``parse`` reads its stderr."""
    print(f"  {name} …", file=sys.stderr, flush=True)
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = started + timeout
    status, rusage = 0, None
    while True:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            pid, status, rusage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.05)
    seconds = time.monotonic() - started
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    ok = os.waitstatus_to_exitcode(status) == 0
    result = {
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(rusage.ru_maxrss / 1024, 1) if rusage else None,
        "ok": ok,
    }
    if not ok:
        result["error"] = err.strip().splitlines()[-1][:300] if err.strip() else "killed"
    elif parse:
        result.update(parse(err))
    print(f"  {name}: {result}", file=sys.stderr, flush=True)
    return result


def inputs(scale: float) -> dict[str, Path]:
    """The sample at ``scale`` as JSON Lines and Parquet, generated once."""
    out = BENCH_DIR / f"scale-{scale:g}"
    paths = {
        "auth": out / "auth_events.jsonl",
        "queries": out / "db_queries.jsonl",
        "timeline": out / "timeline.yaml",
    }
    if not paths["auth"].exists():
        print(f"generating the sample at scale {scale:g} into {out}", file=sys.stderr)
        subprocess.run(
            [str(BIN / "postmortem"), "-q", "sample", "--out", str(out), "--scale", str(scale)],
            check=True,
        )
    return paths


def parquet_inputs(scale: float) -> dict[str, Path]:
    """The same sample as Parquet, and as Hive partitions ``dt=…/hour=…`` of it."""
    out = BENCH_DIR / f"scale-{scale:g}" / "parquet"
    paths = {
        "auth": out / "auth_events.parquet",
        "queries": out / "db_queries.parquet",
        "hive_auth": out / "hive" / "auth",
        "hive_queries": out / "hive" / "queries",
    }
    if not paths["auth"].exists():
        print(f"generating the sample at scale {scale:g} as Parquet into {out}", file=sys.stderr)
        subprocess.run(
            [str(BIN / "postmortem"), "-q", "sample", "--out", str(out), "--scale", str(scale)]
            + ["--format", "parquet"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    if not paths["hive_queries"].exists():
        paths["hive_auth"].parent.mkdir(parents=True, exist_ok=True)
        # in a process of its own: a child's peak RSS starts at its parent's, so the bench
        # process must stay small for every later measurement to be its own
        subprocess.run(
            [
                PY,
                "-c",
                HIVE,
                *(str(paths[k]) for k in ("auth", "hive_auth", "queries", "hive_queries")),
            ],
            check=True,
        )
    return paths


def step_timings(stderr: str) -> dict:
    """The report's own step timings from its stderr: load, analysis, and all the rest
    (notebook kernels, charts, files, the exploration notebook, HTML)."""
    import re

    out: dict = {}
    m = re.search(r"incident_report\.ipynb: [\d.]+ s \((.*)\)", stderr)
    if m:
        for step, value in re.findall(r"(\w+) ([\d.]+) s", m.group(1)):
            out[f"{step}_s"] = float(value)
    return out


def row_counts(paths: dict[str, Path]) -> dict[str, int]:
    """Lines of the two JSON Lines files (one row each)."""
    out = {}
    for key in ("auth", "queries"):
        with paths[key].open("rb") as fh:
            out[key] = sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 24), b""))
    return out


def report_command(
    auth: list[str], queries: str, timeline: Path, database: Path, out: Path, *extra: str
) -> list[str]:
    """``postmortem report`` on the given inputs into ``out``, with ``extra`` flags."""
    return [
        str(BIN / "postmortem"),
        "report",
        *extra,
        "--auth",
        *auth,
        "--queries",
        queries,
        "--timeline",
        str(timeline),
        "--database",
        str(database),
        "--out",
        str(out),
    ]


def run_size(scale: float, *, pandas: bool, work: Path) -> dict:
    """Every measurement at one size."""
    paths = inputs(scale)
    files = [str(paths["auth"]), str(paths["queries"])]
    rows = row_counts(paths)
    size_mb = sum(Path(f).stat().st_size for f in files) / 1e6
    res: dict = {"scale": scale, "rows": rows, "jsonl_mb": round(size_mb, 1)}
    res["floor_count"] = measure("floor: count(*) read_json", [PY, "-c", FLOOR_COUNT, *files])
    ctas_db = work / "ctas.duckdb"
    res["floor_ctas"] = measure(
        "floor: create table as read_json", [PY, "-c", FLOOR_CTAS, str(ctas_db), *files]
    )
    ctas_db.unlink(missing_ok=True)
    res.update(key_share(files[1], work))
    db = work / "load.duckdb"
    res["load"] = measure(
        "postmortem load",
        [
            str(BIN / "postmortem"),
            "-q",
            "load",
            "--database",
            str(db),
            "--auth",
            files[0],
            "--queries",
            files[1],
        ],
    )
    res["analysis"] = measure("analysis on the loaded database", [PY, "-c", ANALYSIS, str(db)])
    report_db = work / "report.duckdb"
    # the same report with one more auth line, dated a decade early: the span leaves it out,
    # so the cost must stay the sample's own (it drew 68,728 ticks for minutes before)
    stray = work / "misdated.jsonl"
    first = json.loads(paths["auth"].open(encoding="utf-8").readline())
    stray.write_text(json.dumps({**first, "ts": "2014-01-19T10:31:00Z"}) + "\n", encoding="utf-8")

    # two runs of each, alternating, the faster kept: one load of 1.4 GB varies by about
    # ±5 s from run to run, too much to judge a 10% target on a single pair
    runs: dict[str, list[dict]] = {"report": [], "report_misdated": []}
    for _ in range(2):
        # the plain report last: the second report below runs on the database it leaves
        for key, name, auth, out in (
            (
                "report_misdated",
                "postmortem report, plus one line a decade early",
                [files[0], str(stray)],
                "report-misdated",
            ),
            ("report", "postmortem report end to end", [files[0]], "report"),
        ):
            report_db.unlink(missing_ok=True)
            cmd = report_command(auth, files[1], paths["timeline"], report_db, work / out)
            runs[key].append(measure(name, cmd, parse=step_timings))
    # the same report again on the database the last plain run left: the load finds every
    # file loaded (by its remembered SHA-256) and skips it; twice, the faster kept
    rereports = []
    for i in range(2):
        cmd = report_command([files[0]], files[1], paths["timeline"], report_db, work / "again")
        rereports.append(measure(f"postmortem report again, load skipped ({i + 1})", cmd,
                                 parse=step_timings))  # fmt: skip
    res["rereport"] = fastest(rereports)
    report_db.unlink(missing_ok=True)
    for key, measured in runs.items():
        res[key] = fastest(measured)
    res["misdated_vs_report"] = _ratio(res["report_misdated"], res["report"])
    rep = res["report"]
    if rep["ok"] and "load_s" in rep:
        rep["notebooks_and_charts_s"] = round(
            rep["seconds"] - rep["load_s"] - rep.get("analysis_s", 0), 2
        )
    for p in (db, report_db):
        p.unlink(missing_ok=True)
    res.update(in_place(scale, paths, work))
    res.update(peers(files, res["report"], pandas=pandas))
    total = rows["auth"] + rows["queries"]
    res["load_rows_per_s"] = round(total / res["load"]["seconds"]) if res["load"]["ok"] else None
    res["load_vs_floor"] = _ratio(res["load"], res["floor_ctas"])
    res["load_vs_count_floor"] = _ratio(res["load"], res["floor_count"])
    res["report_vs_floor"] = _ratio(res["report"], res["floor_ctas"])
    # the load, the report and the in-place reports (Spark's JVM is a process of its own)
    res["peak_rss_mb"] = max(
        (res.get(k, {}).get("peak_rss_mb") or 0)
        for k in ("load", "report", "report_misdated", "report_in_place", "report_in_place_range")
        if res.get(k, {}).get("ok")
    )
    ip = res.get("report_in_place", {})
    if ip.get("ok") and rep["ok"] and rep.get("analysis_s"):
        # in place, reading the rows (its "load" step: nothing is loaded) is part of the
        # analysis; the loaded report's analysis reads tables already there
        ip["analysis_with_read_s"] = round(ip.get("load_s", 0) + ip.get("analysis_s", 0), 2)
        res["inplace_analysis_vs_loaded"] = round(
            ip["analysis_with_read_s"] / rep["analysis_s"], 2
        )
    if pandas:
        ours = {
            "ok": res["load"]["ok"] and res["analysis"]["ok"],
            "seconds": res["load"]["seconds"] + res["analysis"]["seconds"],
        }
        res["speedup_vs_pandas"] = (
            _ratio(res["pandas"], ours) if res["pandas"]["ok"] else "pandas failed"
        )
    return res


def key_share(queries: str, work: Path) -> dict:
    """The statement key's cost: the floor's store of the query file, and the same with each
    statement's key as loads compute it, the faster of two each."""
    runs: dict[str, list[dict]] = {"floor_queries": [], "floor_queries_key": []}
    for _ in range(2):
        for key, script, name in (
            ("floor_queries", FLOOR_CTAS, "floor: create table as read_json, queries"),
            ("floor_queries_key", FLOOR_KEY, "floor plus the statement key, queries"),
        ):
            target = work / f"{key}.duckdb"
            runs[key].append(
                measure(name, [PY, "-c", script, str(target), queries], parse=_key_named)
            )
            target.unlink(missing_ok=True)
    return {key: fastest(measured) for key, measured in runs.items()}


def _key_named(stderr: str) -> dict:
    """The statement key's implementation, as the floor with the key names it."""
    words = stderr.split()
    out: dict = {"statement_key": words[-1]} if words else {}
    if "key_s" in words:
        out["key_s"] = float(words[words.index("key_s") + 1])
    return out


def peers(files: list[str], report: dict, *, pandas: bool) -> dict:
    """The DataFrame peers on the same files (tools/peers.py), and our report's time ÷ each:
    Polars at every size; pandas with pyarrow, and pandas' default reader, where ``pandas``."""
    out: dict = {}
    names = ["polars"] + (["pandas-pyarrow"] if pandas else [])
    for name in names:
        key = name.replace("-", "_")
        out[key] = fastest(
            [
                measure(f"{name}: the core figures", [PY, "-m", "tools.peers", name, *files])
                for _ in range(2)
            ]
        )
        out[f"vs_{key}"] = _ratio(report, out[key])
    if pandas:
        # the fastest of two: pandas' 12 GB of fresh memory made one run take 36 to 116 s
        # on this machine from run to run (the ratio below judged that noise, not the code)
        out["pandas"] = fastest(
            [measure("pandas read_json + groupby", [PY, "-c", PANDAS, *files]) for _ in range(2)]
        )
    return out


#: the size of the fixed-cost measurement: about 0.6M rows (44k auth + 0.55M queries)
FIXED_SCALE = 0.22


def fixed_cost(work: Path) -> dict:
    """A report of the 0.6M size minus its load: kernel, analysis, charts, files, HTML.

    Run twice, the faster kept, like the report at the larger sizes."""
    paths = inputs(FIXED_SCALE)
    runs = []
    for i in range(2):
        db = work / f"fixed-{i}.duckdb"
        runs.append(
            measure(
                f"postmortem report at scale {FIXED_SCALE:g}",
                report_command(
                    [str(paths["auth"])],
                    str(paths["queries"]),
                    paths["timeline"],
                    db,
                    work / f"fixed-{i}",
                ),
                parse=step_timings,
            )
        )
        db.unlink(missing_ok=True)
    ok = [m for m in runs if m["ok"] and "load_s" in m]
    if not ok:
        return {"report": runs[0]}
    best = min(ok, key=lambda m: m["seconds"])
    return {
        "report": {**best, "runs_s": [m["seconds"] for m in runs]},
        "rows": sum(row_counts(paths).values()),
        "fixed_cost_s": round(best["seconds"] - best["load_s"], 2),
        "charts_s": best.get("charts_s"),
    }


#: the range of the partition-pruning measurement: 9 of the sample day's hours
RANGE = ("2024-01-19T08:00:00Z", "2024-01-19T17:00:00Z")


def in_place(scale: float, paths: dict[str, Path], work: Path) -> dict:
    """``postmortem report --in-place`` on the Hive-partitioned Parquet: the whole day, then
    a range, counting the files the range made it read."""
    pq = parquet_inputs(scale)
    out: dict = {}
    runs = [
        ("report_in_place", [], ["--in-place"]),
        ("report_in_place_range", list(RANGE), ["--in-place"]),
    ]
    if spark_available() and os.environ.get("POSTMORTEM_BENCH_SPARK", "1") != "0":
        # Spark local beside DuckDB in place, on the same files and range
        runs += [
            ("report_spark", [], ["--engine", "spark"]),
            ("report_spark_range", list(RANGE), ["--engine", "spark"]),
        ]
    for name, extra, engine in runs:
        folder = work / name
        cmd = report_command(
            [str(pq["hive_auth"])],
            str(pq["hive_queries"]),
            paths["timeline"],
            work / f"{name}.duckdb",
            folder,
            *engine,
        )
        if extra:
            cmd += ["--range-start", extra[0], "--range-end", extra[1]]
        out[name] = measure(
            f"postmortem report {' '.join(engine + extra)}", cmd, parse=step_timings
        )
        if out[name]["ok"]:
            manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
            files = [i for i in manifest["inputs"] if i["kind"] != "timeline"]
            total = sum(
                1 for key in ("hive_auth", "hive_queries") for _ in pq[key].rglob("*.parquet")
            )
            out[name]["files_read"] = len(files)
            out[name]["files_total"] = total
            out[name]["rows_read"] = sum(i["rows_read"] for i in files)
    parquet_mb = sum(pq[key].stat().st_size for key in ("auth", "queries")) / 1e6
    out["parquet_mb"] = round(parquet_mb, 1)
    for spark, duck in (
        ("report_spark", "report_in_place"),
        ("report_spark_range", "report_in_place_range"),
    ):
        if out.get(spark, {}).get("ok") and out[duck]["ok"]:
            out[spark]["vs_in_place"] = _ratio(out[spark], out[duck])
            same = (work / spark / "summary.json").read_bytes() == (
                work / duck / "summary.json"
            ).read_bytes()
            out[spark]["summary_identical"] = same
    return out


def spark_available() -> bool:
    """Whether ``--engine spark`` can run here (PySpark installed, a Java on the PATH)."""
    import importlib.util

    return importlib.util.find_spec("pyspark") is not None and shutil.which("java") is not None


def pgbadger_comparison(work: Path, *, copies: int = 860) -> dict:
    """Our PostgreSQL loader against pgbadger on the same 101 MB log: a real server's log of
    pgbench statements (pgbadger's own test fixture, ../shared/real-logs/pgbadger/
    light.postgres.log.bz2, 118 kB) repeated 860 times, when both the log and pgbadger are
    here (``make bench`` installs pgbadger from Debian when it can)."""
    import bz2

    src = config.PROJECT_ROOT.parent / "shared/real-logs/pgbadger/light.postgres.log.bz2"
    if not src.exists() or shutil.which("pgbadger") is None:
        return {"skipped": "needs ../shared/real-logs and pgbadger (apt-get install pgbadger)"}
    log = BENCH_DIR / f"pgbench-x{copies}.log"
    if not log.exists():
        BENCH_DIR.mkdir(parents=True, exist_ok=True)
        log.write_bytes(bz2.decompress(src.read_bytes()) * copies)
    # its size in lines (a statement's entry can take several)
    out = {"log_mb": round(log.stat().st_size / 1e6, 1), "rows": log.read_bytes().count(b"\n")}
    # two loads, the faster kept (as for the reports): one load of 101 MB took 5.5 to 7.8 s
    # on a quiet machine, too much to judge a 10x target on a single run
    runs = []
    for _ in range(2):
        (work / "pg.duckdb").unlink(missing_ok=True)
        runs.append(
            measure(
                "postmortem load --query-format postgres",
                [
                    str(BIN / "postmortem"),
                    "-q",
                    "load",
                    "--database",
                    str(work / "pg.duckdb"),
                    "--queries",
                    str(log),
                    "--query-format",
                    "postgres",
                ],
            )
        )
    out["ours"] = fastest(runs)
    out["pgbadger"] = measure(
        "pgbadger -x json",
        ["pgbadger", "-q", "-x", "json", "-o", str(work / "pgbadger.json"), str(log)],
    )
    out["speedup"] = _ratio(out["pgbadger"], out["ours"])
    return out


def fastest(runs: list[dict]) -> dict:
    """The fastest of repeated measurements that succeeded (of all, when none did), with
    every run's seconds under ``runs_s``."""
    ok = [m for m in runs if m["ok"]] or runs
    return {**min(ok, key=lambda m: m["seconds"]), "runs_s": [m["seconds"] for m in runs]}


def _ratio(a: dict, b: dict) -> float | None:
    if not (a.get("ok") and b.get("ok")) or not b["seconds"]:
        return None
    return round(a["seconds"] / b["seconds"], 2)


def table(results: list[dict]) -> str:
    """The Markdown table of every size."""
    head = (
        "| scale | rows (auth + queries) | JSONL MB | floor count s | floor CTAS s | "
        "load s (rows/s, peak MB) | load ÷ CTAS | analysis s | report s (peak MB; "
        "notebooks+charts s) | in place s (peak MB) | in place, 9 h range s (files read) | "
        "pandas s (peak MB) |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in results:
        load, rep = r["load"], r["report"]
        pandas = r.get("pandas")
        ip, ipr = r.get("report_in_place", {}), r.get("report_in_place_range", {})
        lines.append(
            f"| {r['scale']:g} | {r['rows']['auth']:,} + {r['rows']['queries']:,} | "
            f"{r['jsonl_mb']:,.0f} | {r['floor_count']['seconds']} | "
            f"{r['floor_ctas']['seconds']} | {load['seconds']} ({r['load_rows_per_s'] or 0:,}, "
            f"{load['peak_rss_mb']:,.0f}) | {r['load_vs_floor']} | {r['analysis']['seconds']} | "
            f"{rep['seconds']} ({rep['peak_rss_mb']:,.0f}; "
            f"{rep.get('notebooks_and_charts_s', '?')}) | "
            f"{ip.get('seconds', '—')} ({ip.get('peak_rss_mb') or 0:,.0f}) | "
            f"{ipr.get('seconds', '—')} ({ipr.get('files_read', '?')} of "
            f"{ipr.get('files_total', '?')}) | "
            + (
                f"{pandas['seconds']} ({pandas['peak_rss_mb']:,.0f})"
                + ("" if pandas["ok"] else " failed")
                if pandas
                else "—"
            )
            + " |"
        )
    return "\n".join(lines)


#: the targets of issue 29 (at 60M rows): key in results.json, what it is, the comparison and
#: the bound
TARGETS = (
    ("load_vs_floor", "load ÷ bare CREATE TABLE AS", "<=", 2.0),
    ("report_vs_floor", "report end to end ÷ bare CREATE TABLE AS", "<=", 2.5),
    ("inplace_analysis_vs_loaded", "in place: reading + figures ÷ figures on loaded tables",
     "<=", 2.5),
    ("inplace_report_s", "in place: the whole report, s", "<=", 60.0),
    ("rereport_s", "a second report on the same inputs (load skipped), s", "<=", 30.0),
    ("rereport_vs_own_figures", "second report ÷ (its figures + fixed cost)", "<=", 1.5),
    ("misdated_vs_report", "report with one auth line a decade early ÷ report", "<=", 1.1),
    ("fixed_cost_s", "fixed cost: a report of 0.6M rows minus its load, s", "<=", 5.0),
    ("charts_s", "six charts (PNG and SVG), s", "<=", 1.5),
    ("speedup_vs_pgbadger", "PostgreSQL log: pgbadger ÷ our load", ">=", 10.0),
    ("speedup_vs_pandas", "pandas ÷ our load + analysis", ">=", 5.0),
    ("vs_polars", "our report ÷ Polars doing the core figures", "<=", 2.0),
    ("statement_key_share", "the statement key's cost ÷ the floor", "<=", 0.15),
    ("peak_rss_mb", "peak RSS of the load and the report, MB", "<=", 3072.0),
)  # fmt: skip
#: figures at the top level without a target of their own: our report ÷ pandas on pyarrow
INFORMATIVE = ("vs_pandas_pyarrow",)


def _largest_with(results: list[dict], key: str) -> dict | None:
    """The largest size at which ``key`` was measured."""
    return next((r for r in reversed(results) if r.get(key) is not None), None)


def _rereport_figures(big: dict, fixed: dict) -> float | None:
    """The second report ÷ its own figures (its analysis step) + the fixed cost."""
    again = big.get("rereport", {})
    figures = again.get("analysis_s") or big.get("report", {}).get("analysis_s")
    if not again.get("ok") or figures is None or fixed.get("fixed_cost_s") is None:
        return None
    return round(again["seconds"] / (figures + fixed["fixed_cost_s"]), 2)


def _key_share(r: dict) -> float | None:
    """The key's cost ÷ the floor of both files: the native key's own time over the Arrow
    statements (as loads run it), or the floor's store of the query file with the macro's
    key, less without (as loads run that)."""
    with_key, without, floor = (r.get(k, {}) for k in ("floor_queries_key", "floor_queries",
                                                       "floor_ctas"))  # fmt: skip
    if not (with_key.get("ok") and without.get("ok") and floor.get("ok")) or not floor["seconds"]:
        return None
    if "key_s" in with_key:  # the native key, timed on its own over the Arrow statements
        return round(with_key["key_s"] / floor["seconds"], 3)
    return round(max(with_key["seconds"] - without["seconds"], 0) / floor["seconds"], 3)


def headline(results: list[dict], fixed: dict, pg: dict) -> dict:
    """The figures of the targets at the top level of results.json, each with the rows it
    was measured at (``rows``), and ``pgbadger_log_mb``."""
    big = results[-1]
    big_rows = big["rows"]["auth"] + big["rows"]["queries"]
    ip = big.get("report_in_place", {})
    again = big.get("rereport", {})
    out: dict = {
        "load_vs_floor": big["load_vs_floor"],
        "report_vs_floor": big.get("report_vs_floor"),
        "inplace_analysis_vs_loaded": big.get("inplace_analysis_vs_loaded"),
        "inplace_report_s": ip.get("seconds") if ip.get("ok") else None,
        "rereport_s": again.get("seconds") if again.get("ok") else None,
        "rereport_vs_own_figures": _rereport_figures(big, fixed),
        "misdated_vs_report": big.get("misdated_vs_report"),
        "fixed_cost_s": fixed.get("fixed_cost_s"),
        "charts_s": fixed.get("charts_s"),
        "speedup_vs_pgbadger": pg.get("speedup"),
        "pgbadger_log_mb": pg.get("log_mb"),
        "statement_key_share": _key_share(big),
        "peak_rss_mb": big.get("peak_rss_mb"),
    }
    rows = {k: big_rows for k in out if k != "pgbadger_log_mb"}
    rows.update(
        {"fixed_cost_s": fixed.get("rows"), "charts_s": fixed.get("rows"),
         "speedup_vs_pgbadger": pg.get("rows")}
    )  # fmt: skip
    for key in ("speedup_vs_pandas", "vs_pandas_pyarrow", "vs_polars"):
        at = _largest_with(results, key)
        out[key] = at[key] if at else None
        rows[key] = at["rows"]["auth"] + at["rows"]["queries"] if at else None
    out["rows"] = rows
    return out


def targets(results: list[dict], top: dict) -> list[str]:
    """Each target with held / MISSED and its figure (the issue judges them at 60M rows; at
    a smaller size they say less), then the other checks of the bench."""
    out = []
    for key, what, op, bound in TARGETS:
        value, rows = top.get(key), top["rows"].get(key)
        at = f" at {rows:,} rows" if rows else ""
        if not isinstance(value, (int, float)):
            out.append(f"{what} {op} {bound:g}: not measured{at} ({value})")
            continue
        held = value <= bound if op == "<=" else value >= bound
        out.append(f"{what} {op} {bound:g}: {'held' if held else 'MISSED'} ({value:g}{at})")
    for key in INFORMATIVE:
        if isinstance(top.get(key), (int, float)):
            out.append(f"{key}: {top[key]:g} at {top['rows'][key]:,} rows (no target)")
    r = results[-1]
    for key in ("report_spark", "report_spark_range"):
        sp = r.get(key, {})
        if sp.get("ok"):
            out.append(
                f"{key}: {sp['seconds']} s, {sp.get('vs_in_place')}× DuckDB in place; "
                f"summary.json identical: {sp.get('summary_identical')}"
            )
    ipr = r.get("report_in_place_range", {})
    if ipr.get("ok"):
        out.append(
            f"in place with a 9-hour range reads only its partitions: "
            f"{ipr['files_read']} of {ipr['files_total']} files"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; ``--quick`` measures one small size only."""
    parser = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="one size: scale 2.2 (0.44M auth + 5.5M queries)"
    )
    parser.add_argument(
        "--scales",
        type=float,
        nargs="+",
        default=[0.22, 2.2, 22.0],
        help="sample scales to measure (1 ≈ 0.2M auth + 2.5M queries; 22 ≈ 60M rows)",
    )
    parser.add_argument(
        "--pandas-scale", type=float, default=2.2, help="the size at which pandas is also measured"
    )
    args = parser.parse_args(argv)
    scales = [2.2] if args.quick else args.scales
    results = []
    with tempfile.TemporaryDirectory(prefix="postmortem-bench-", dir=BENCH_DIR.parent) as tmp:
        for scale in scales:
            work = Path(tmp) / f"s{scale:g}"
            work.mkdir()
            results.append(run_size(scale, pandas=scale == args.pandas_scale, work=work))
            shutil.rmtree(work, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="postmortem-bench-", dir=BENCH_DIR.parent) as tmp:
        fixed = fixed_cost(Path(tmp))
    with tempfile.TemporaryDirectory(prefix="postmortem-bench-", dir=BENCH_DIR.parent) as tmp:
        pg = pgbadger_comparison(Path(tmp))
    top = headline(results, fixed, pg)
    doc = {
        **top,
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "sizes": results,
        "fixed_cost": fixed,
        "pgbadger": pg,
        "targets": targets(results, top),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(table(results))
    print()
    for line in doc["targets"]:
        print(f"- {line}")
    print(f"\nwritten to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
