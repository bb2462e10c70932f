"""The ``postmortem`` command: sample, load, report, verify."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

from analysis import errors

# jsonschema, which nbformat imports for papermill and nbconvert, checks the "iri" format with
# rfc3987_syntax when it is installed (JupyterLab's dependencies bring it), and that package
# builds a grammar at import: 1.5 s of every report's 17 s at 0.6M rows. No notebook schema
# has an "iri" field; without it, jsonschema leaves that one format unchecked.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

from analysis import config, db, ingest, report  # noqa: E402  # noqa: E402

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


def formats_text() -> str:
    """The formats and presets each input takes, from the registry, for ``--help``."""
    lines = ["formats (--auth-format / --query-format; auto: by ending, else by content):"]
    rows = [(r.name, "/".join(r.kinds), r.help) for r in ingest.READERS.values()]
    rows.append(("FILE.yaml", "auth", "a source definition of your own (see README)"))
    for name, kinds, text in rows:
        lines.extend(
            textwrap.wrap(
                text,
                width=99,
                initial_indent=f"  {name:<13}{kinds:<22}",
                subsequent_indent=" " * 37,
            )
        )
    return "\n".join(lines) + "\n"


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


def _add_param_flag(g: argparse._ArgumentGroup, param: report.Param) -> None:
    """The flag(s) of one notebook parameter, from its one definition in params."""
    default = param.default
    shown = json.dumps(default) if not isinstance(default, bool) else str(default)
    text = f"{param.help} [default: {shown}]".replace("%", "%%")
    if param.type is bool:
        g.add_argument(*param.flags, dest=param.name, action="store_true", default=None, help=text)
        g.add_argument(
            "--no-" + param.flags[0].removeprefix("--"),
            dest=param.name,
            action="store_false",
            help=f"the opposite of {param.flags[0]}",
        )
        return
    extra: dict = {}
    if param.type is list or param.name in report.INPUTS:
        extra["nargs"] = "+"
    if param.type is int:
        extra["type"] = int
    g.add_argument(
        *param.flags, dest=param.name, default=None, metavar=param.metavar, help=text, **extra
    )


def _add_input_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("inputs (a path, a glob in quotes, or several)")
    for param in report.PARAMETERS:
        if param.load:
            _add_param_flag(g, param)


def _add_engine_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("engine")
    g.add_argument(
        "--memory-limit",
        default=None,
        metavar="SIZE",
        help=f"DuckDB memory limit, e.g. 8GB; larger work spills to disk "
        f"[default: {db.DEFAULT_MEMORY_LIMIT}]",
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
        epilog=formats_text(),
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
        epilog=formats_text(),
        description="Run notebooks/incident_report.ipynb through papermill and "
        "write reports/<incident_id>/: summary.json, postmortem.md, figures, "
        "executed notebooks, HTML and manifest.json. Flags override --config.",
    )
    p.add_argument("--config", type=Path, help="YAML file of notebook parameters")
    _add_input_flags(p)
    g = p.add_argument_group("parameters (each is a notebook parameter of the same name)")
    for param in report.PARAMETERS:
        if not param.load and param.flags:
            _add_param_flag(g, param)
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
            return report.main(args, say)
        if args.command == "verify":
            return report.verify_main(args.report_dir, say)
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
    if not (args.auth_logs or args.query_logs or args.timeline):
        raise errors.LoadError("nothing to load: give --auth, --queries and/or --timeline")
    args.database.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    from analysis.db import connect_waiting

    con = connect_waiting(
        args.database, say=_progress, memory_limit=args.memory_limit, threads=args.threads
    )
    try:
        result = ingest.load(
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
            login_paths=tuple(args.login_path or ()),
        )
    finally:
        con.close()
    for line in ingest.describe(result):
        print(line)
    print(f"loaded in {time.monotonic() - started:.1f} s into {args.database}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
