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
ANALYSIS = """
import sys
from analysis import db, metrics, summary
con = db.connect(sys.argv[1])
scope = metrics.scope(con)
params = metrics.Params(start=metrics.parse_instant("2024-01-19T10:30:00Z"),
                        end=metrics.parse_instant("2024-01-19T14:45:00Z"))
summary.analyse(con, params, scope, incident_id="bench")
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


def measure(name: str, cmd: list[str], *, timeout: float = 3600) -> dict:
    """Run ``cmd`` in its own process: wall seconds and peak RSS (MB) of that process."""
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


def row_counts(paths: dict[str, Path]) -> dict[str, int]:
    """Lines of the two JSON Lines files (one row each)."""
    out = {}
    for key in ("auth", "queries"):
        with paths[key].open("rb") as fh:
            out[key] = sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 24), b""))
    return out


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
    res["report"] = measure(
        "postmortem report end to end",
        [
            str(BIN / "postmortem"),
            "-q",
            "report",
            "--auth",
            files[0],
            "--queries",
            files[1],
            "--timeline",
            str(paths["timeline"]),
            "--database",
            str(report_db),
            "--out",
            str(work / "report"),
        ],
    )
    for p in (db, report_db):
        p.unlink(missing_ok=True)
    if pandas:
        res["pandas"] = measure("pandas read_json + groupby", [PY, "-c", PANDAS, *files])
    total = rows["auth"] + rows["queries"]
    res["load_rows_per_s"] = round(total / res["load"]["seconds"]) if res["load"]["ok"] else None
    res["load_vs_floor"] = _ratio(res["load"], res["floor_ctas"])
    res["load_vs_count_floor"] = _ratio(res["load"], res["floor_count"])
    if pandas:
        res["speedup_vs_pandas"] = (
            _ratio(res["pandas"], res["report"]) if res["pandas"]["ok"] else "pandas failed"
        )
    return res


def pgbadger_comparison(work: Path, *, copies: int = 158) -> dict:
    """Our PostgreSQL loader against pgbadger on the same ~18 MB log (pgbench statements from
    ../shared/real-logs, repeated), when both the log and pgbadger are here."""
    import bz2

    src = config.PROJECT_ROOT.parent / "shared/real-logs/pgbadger/light.postgres.log.bz2"
    if not src.exists() or shutil.which("pgbadger") is None:
        return {"skipped": "needs ../shared/real-logs and pgbadger (apt-get install pgbadger)"}
    log = BENCH_DIR / "pgbench-x158.log"
    if not log.exists():
        BENCH_DIR.mkdir(parents=True, exist_ok=True)
        log.write_bytes(bz2.decompress(src.read_bytes()) * copies)
    out = {"log_mb": round(log.stat().st_size / 1e6, 1)}
    out["ours"] = measure(
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
    out["pgbadger"] = measure(
        "pgbadger -x json",
        ["pgbadger", "-q", "-x", "json", "-o", str(work / "pgbadger.json"), str(log)],
    )
    out["speedup"] = _ratio(out["pgbadger"], out["ours"])
    return out


def _ratio(a: dict, b: dict) -> float | None:
    if not (a.get("ok") and b.get("ok")) or not b["seconds"]:
        return None
    return round(a["seconds"] / b["seconds"], 2)


def table(results: list[dict]) -> str:
    """The Markdown table of every size."""
    head = (
        "| scale | rows (auth + queries) | JSONL MB | floor count s | floor CTAS s | "
        "load s (rows/s, peak MB) | load ÷ CTAS | analysis s | report s (peak MB) | "
        "pandas s (peak MB) |"
    )
    lines = [head, "|" + "---|" * 10]
    for r in results:
        load, rep = r["load"], r["report"]
        pandas = r.get("pandas")
        lines.append(
            f"| {r['scale']:g} | {r['rows']['auth']:,} + {r['rows']['queries']:,} | "
            f"{r['jsonl_mb']:,.0f} | {r['floor_count']['seconds']} | "
            f"{r['floor_ctas']['seconds']} | {load['seconds']} ({r['load_rows_per_s'] or 0:,}, "
            f"{load['peak_rss_mb']:,.0f}) | {r['load_vs_floor']} | {r['analysis']['seconds']} | "
            f"{rep['seconds']} ({rep['peak_rss_mb']:,.0f}) | "
            + (
                f"{pandas['seconds']} ({pandas['peak_rss_mb']:,.0f})"
                + ("" if pandas["ok"] else " failed")
                if pandas
                else "—"
            )
            + " |"
        )
    return "\n".join(lines)


def targets(results: list[dict]) -> list[str]:
    """Whether each target of the benchmark holds, at the largest size measured."""
    r = results[-1]
    out = []
    lvf = r["load_vs_floor"]
    out.append(
        f"load ≤ 1.5× bare CREATE TABLE AS: {'holds' if lvf and lvf <= 1.5 else 'MISSED'} ({lvf}×)"
    )
    out.append(
        f"load peak RSS ≤ 3 GiB: "
        f"{'holds' if r['load']['peak_rss_mb'] <= 3072 else 'MISSED'} "
        f"({r['load']['peak_rss_mb']:,.0f} MB)"
    )
    out.append(
        f"analysis ≤ 10 s: {'holds' if r['analysis']['seconds'] <= 10 else 'MISSED'} "
        f"({r['analysis']['seconds']} s)"
    )
    out.append(
        f"report end to end ≤ 60 s: {'holds' if r['report']['seconds'] <= 60 else 'MISSED'}"
        f" ({r['report']['seconds']} s)"
    )
    for res in results:
        if "speedup_vs_pandas" in res:
            s = res["speedup_vs_pandas"]
            ok = isinstance(s, str) or (s is not None and s >= 15)
            out.append(
                f"≥ 15× pandas at scale {res['scale']:g}: {'holds' if ok else 'MISSED'} ({s})"
            )
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; ``--quick`` measures one small size only."""
    parser = argparse.ArgumentParser(prog="python -m analysis.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one size: scale 1 (~2.7M rows)")
    parser.add_argument(
        "--scales",
        type=float,
        nargs="+",
        default=[1.0, 5.0],
        help="sample scales to measure (1 ≈ 0.2M auth + 2.5M queries)",
    )
    parser.add_argument(
        "--pandas-scale", type=float, default=1.0, help="the size at which pandas is also measured"
    )
    args = parser.parse_args(argv)
    scales = [1.0] if args.quick else args.scales
    results = []
    with tempfile.TemporaryDirectory(prefix="postmortem-bench-", dir=BENCH_DIR.parent) as tmp:
        for scale in scales:
            work = Path(tmp) / f"s{scale:g}"
            work.mkdir()
            results.append(run_size(scale, pandas=scale == args.pandas_scale, work=work))
            shutil.rmtree(work, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="postmortem-bench-", dir=BENCH_DIR.parent) as tmp:
        pg = pgbadger_comparison(Path(tmp))
    doc = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "sizes": results,
        "load_vs_floor": results[-1]["load_vs_floor"],
        "speedup_vs_pandas": next(
            (r["speedup_vs_pandas"] for r in results if "speedup_vs_pandas" in r), None
        ),
        "pgbadger": pg,
        "speedup_vs_pgbadger": pg.get("speedup"),
        "targets": targets(results),
    }
    if pg.get("speedup") is not None:
        ok = "holds" if pg["speedup"] >= 10 else "MISSED"
        doc["targets"].append(
            f"PostgreSQL log ≥ 10× pgbadger ({pg['log_mb']} MB): {ok} ({pg['speedup']}×: "
            f"{pg['ours']['seconds']} s vs {pg['pgbadger']['seconds']} s)"
        )
    else:
        doc["targets"].append(f"PostgreSQL log vs pgbadger: skipped ({pg.get('skipped')})")
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
