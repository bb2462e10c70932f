"""The ``postmortem`` command: sample, load, report, verify."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from analysis import config

EPILOG = """\
examples:
  postmortem sample                              # the 2024-01-19 incident under data/sample/
  postmortem load --database data/incident.duckdb --auth 'logs/auth-*.jsonl.gz'
  postmortem report                              # the sample, into reports/2024-01-19-auth/
  postmortem report --auth auth.csv --queries pg.log --query-format postgres \\
      --start 2024-03-02T08:00:00Z --end 2024-03-02T09:10:00Z --incident-id 2024-03-02-login
  postmortem verify reports/2024-01-19-auth

Times are UTC instants written with Z or an offset. See README.md for every parameter.
"""


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def _throttled(every: float = 1.0):
    last = [0.0]

    def say(message: str) -> None:
        now = time.monotonic()
        if now - last[0] >= every:
            last[0] = now
            _progress(message)

    return say


def _add_input_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("inputs (a path, a glob in quotes, or several)")
    g.add_argument(
        "--auth",
        "--auth-logs",
        dest="auth_logs",
        nargs="+",
        metavar="PATH",
        help="auth events: JSON Lines, CSV, Parquet or sshd log (.gz ok)",
    )
    g.add_argument(
        "--queries",
        "--query-logs",
        dest="query_logs",
        nargs="+",
        metavar="PATH",
        help="query log: JSON Lines, CSV, Parquet, PostgreSQL or MySQL slow log",
    )
    g.add_argument(
        "--timeline",
        nargs="+",
        metavar="PATH",
        help="responders' timeline: YAML, JSON Lines or CSV of {ts, kind, text}",
    )
    g.add_argument(
        "--auth-format",
        default=None,
        help="auto (by file ending), jsonl, csv, parquet, sshd [default: auto]",
    )
    g.add_argument(
        "--query-format",
        default=None,
        help="auto, jsonl, csv, parquet, postgres, mysql-slow [default: auto]",
    )
    g.add_argument(
        "--source-timezone",
        default=None,
        metavar="TZ",
        help="zone of timestamps written without one [default: UTC]",
    )
    g.add_argument(
        "--log-line-prefix",
        default=None,
        metavar="PREFIX",
        help="PostgreSQL log_line_prefix of the query logs, as in postgresql.conf, "
        "e.g. '%%m [%%p] %%q%%u@%%d ' [default: detected from common layouts]",
    )
    g.add_argument(
        "--year",
        type=int,
        default=None,
        help="year of syslog timestamps, which have none (sshd, PostgreSQL syslog) "
        "[default: from the file's modification date]",
    )


def _add_engine_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("engine")
    g.add_argument(
        "--memory-limit",
        default=None,
        metavar="SIZE",
        help="DuckDB memory limit, e.g. 3GB; larger work spills to disk",
    )
    g.add_argument("--threads", type=int, default=None, help="DuckDB threads [default: cores]")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="postmortem",
        description="Turn authentication and database query logs into the evidence of a "
        "postmortem: load them into DuckDB, analyse the incident window, and write a "
        "reproducible report folder.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "sample",
        help="write the sample incident (auth events, queries, timeline)",
        formatter_class=_Formatter,
        description="Write the 2024-01-19 incident as raw logs: the story is in "
        "the rows, for the analysis to find without being told.",
    )
    p.add_argument("--out", type=Path, default=config.SAMPLE_DIR, help="output folder")
    p.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="volume multiplier (1.0 is about 200k auth events, 2M queries)",
    )
    p.add_argument("--seed", type=int, default=7, help="random seed; same seed, same bytes")
    p.add_argument(
        "--format",
        choices=["jsonl", "csv", "parquet"],
        default="jsonl",
        help="file format of the auth events and queries",
    )

    p = sub.add_parser(
        "load",
        help="load logs into a DuckDB file and count what was rejected",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Load inputs into a DuckDB file (created if missing) in one "
        "transaction. Bad rows go to the 'rejects' table with file, line and "
        "reason; a file loaded before (same SHA-256) is not loaded again.",
    )
    p.add_argument("--database", type=Path, required=True, help="DuckDB file")
    _add_input_flags(p)
    _add_engine_flags(p)

    p = sub.add_parser(
        "report",
        help="load, analyse and write the report folder",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run notebooks/incident_report.ipynb through papermill and "
        "write reports/<incident_id>/: summary.json, postmortem.md, figures, "
        "executed notebooks, HTML and manifest.json. Flags override --config.",
    )
    p.add_argument("--config", type=Path, help="YAML file of notebook parameters")
    _add_input_flags(p)
    g = p.add_argument_group("parameters (each is a notebook parameter of the same name)")
    g.add_argument("--incident-id", help=f"a plain name [default: {config.DEFAULT_INCIDENT_ID}]")
    g.add_argument(
        "--start",
        "--incident-start",
        dest="incident_start",
        help=f"declared start [default: {config.DEFAULT_START}]",
    )
    g.add_argument(
        "--end",
        "--incident-end",
        dest="incident_end",
        help=f"declared end, exclusive [default: {config.DEFAULT_END}]",
    )
    g.add_argument(
        "--out",
        "--report-dir",
        dest="report_dir",
        help="report folder [default: reports/<incident_id>]",
    )
    g.add_argument("--database", help="DuckDB file [default: data/incident.duckdb]")
    g.add_argument("--bucket", help="time bucket of the series, e.g. 30s, 1min, 5min")
    g.add_argument(
        "--redact-users",
        dest="redact_users",
        action="store_true",
        default=None,
        help="pseudonymize user ids in everything written [default]",
    )
    g.add_argument(
        "--no-redact-users",
        dest="redact_users",
        action="store_false",
        help="write user ids in clear (the report says so)",
    )
    g.add_argument(
        "--user-error-codes",
        nargs="+",
        metavar="CODE",
        help="error codes that are the user's fault, not the system's",
    )
    g.add_argument(
        "--range-start",
        metavar="INSTANT",
        help="analyse only rows from this instant, e.g. 2024-01-19T00:00:00Z [default: all]",
    )
    g.add_argument(
        "--range-end",
        metavar="INSTANT",
        help="... up to this instant, exclusive [default: all]",
    )
    g.add_argument(
        "--in-place",
        dest="in_place",
        action="store_true",
        default=None,
        help="Parquet inputs (files, globs, Hive-partitioned folders): analyse them where "
        "they are, without loading; with --range-start/--range-end only the row groups and "
        "files of that range are read; bad rows are counted, not kept",
    )
    g.add_argument(
        "--engine",
        choices=["duckdb", "spark"],
        default=None,
        help="where the figures that read rows run: duckdb, or spark (Parquet inputs, which "
        "Spark reads where they are; aggregates only come back) [default: duckdb]",
    )
    g.add_argument(
        "--spark-master",
        metavar="URL",
        help="Spark master, e.g. local[4], spark://host:7077, yarn [default: local[2]]",
    )
    g.add_argument(
        "--spark-conf",
        nargs="+",
        metavar="KEY=VALUE",
        help="Spark settings, e.g. spark.executor.memory=8g spark.hadoop.fs.s3a.endpoint=…",
    )
    _add_engine_flags(p)

    p = sub.add_parser(
        "verify",
        help="re-run a report from its manifest and compare hashes",
        description="Re-run from the inputs and parameters recorded in "
        "manifest.json, into a temporary folder, and check that every input "
        "and every hashed output is byte-identical.",
    )
    p.add_argument("report_dir", type=Path, help="a report folder with a manifest.json")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``postmortem`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    say = (lambda _m: None) if args.quiet else _throttled()
    try:
        if args.command == "sample":
            return _sample(args, say)
        if args.command == "load":
            return _load(args, say)
        if args.command == "report":
            from analysis import execute

            return execute.main(args, say)
        if args.command == "verify":
            from analysis import verify

            return verify.verify_main(args.report_dir, say)
    except KeyboardInterrupt:
        print("postmortem: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # every failure ends in one line, never a traceback
        from analysis.errors import one_line

        print(f"postmortem: error: {one_line(exc)}", file=sys.stderr)
        return 2
    return 0


def _sample(args: argparse.Namespace, say) -> int:
    from analysis import sample

    started = time.monotonic()
    paths = sample.generate(
        args.out, scale=args.scale, seed=args.seed, fmt=args.format, progress=say
    )
    for name, path in paths.items():
        print(f"{name:<9} {path}")
    print(f"sample written in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


def _load(args: argparse.Namespace, say) -> int:
    from analysis import load

    if not (args.auth_logs or args.query_logs or args.timeline):
        raise load.LoadError("nothing to load: give --auth, --queries and/or --timeline")
    args.database.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    from analysis.report import connect_waiting

    con = connect_waiting(
        args.database, say=_progress, memory_limit=args.memory_limit, threads=args.threads
    )
    try:
        result = load.load(
            con,
            auth=args.auth_logs,
            queries=args.query_logs,
            timeline=args.timeline,
            auth_format=args.auth_format or "auto",
            query_format=args.query_format or "auto",
            source_timezone=args.source_timezone or "UTC",
            progress=say,
            log_line_prefix=args.log_line_prefix,
            year=args.year,
        )
    finally:
        con.close()
    for line in load.describe(result):
        print(line)
    print(f"loaded in {time.monotonic() - started:.1f} s into {args.database}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
