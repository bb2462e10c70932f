"""The ``postmortem`` command: init, sample, load, definition, report, verify, lab."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
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

import analysis  # noqa: E402
from analysis import config, db, ingest, report  # noqa: E402

EPILOG = """\
The incident folder is the working directory (or --project-dir DIR, before or after the
command, or POSTMORTEM_ROOT): the database, the reports, the pseudonym key and incident.yaml
are found and written there.

examples:
  postmortem init                   # incident.yaml here, every parameter commented
  postmortem sample                 # the 2024-01-19 incident under data/sample/
  postmortem report                 # reads ./incident.yaml, else the sample
  postmortem report --auth auth.csv --queries pg.log --query-format postgres \\
      --start 2024-03-02T08:00:00Z --end 2024-03-02T09:10:00Z --incident-id 2024-03-02-login
  postmortem load --auth 'logs/auth-*.jsonl.gz'      # into data/incident.duckdb
  postmortem definition export.json > definitions/signins.yaml   # a log no format knows
  postmortem load --auth export.json --preview 20    # how its first records map; writes nothing
  postmortem verify reports/2024-03-02-login
  postmortem lab                    # JupyterLab here, on this incident

Times are UTC instants written with Z or an offset. `postmortem COMMAND --help` lists every
flag and format; the documentation site (built from docs/ of the repository) has every
parameter, figure and format.
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
    if param.type in (int, float):
        extra["type"] = param.type
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


def _init_parser(sub: argparse._SubParsersAction) -> None:
    """The ``postmortem init`` subcommand."""
    p = sub.add_parser(
        "init",
        help="make a folder an incident folder: a starter incident.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Write incident.yaml, with every parameter of a report commented out "
        "with its default and what it means, and an empty definitions/ folder for source "
        "definitions of your own. `postmortem report` run in the folder reads incident.yaml.",
    )
    p.add_argument(
        "folder",
        nargs="?",
        type=Path,
        default=None,
        help="[default: the incident folder]",
    )
    p.add_argument("--force", action="store_true", help="replace an existing incident.yaml")


def _sample_parser(sub: argparse._SubParsersAction) -> None:
    """The ``postmortem sample`` subcommand."""
    p = sub.add_parser(
        "sample",
        help="write the sample incident (auth events, queries, timeline)",
        formatter_class=_Formatter,
        description="Write the 2024-01-19 incident as raw logs: the story is in "
        "the rows, for the analysis to find without being told.",
    )
    p.add_argument(
        "--out", type=Path, default=argparse.SUPPRESS, help="output folder [default: data/sample/]"
    )
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


def _load_parser(sub: argparse._SubParsersAction) -> None:
    """The ``postmortem load`` subcommand."""
    p = sub.add_parser(
        "load",
        help="load logs into a DuckDB file and count what was rejected",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=formats_text(),
        description=textwrap.fill(
            "Load inputs into a DuckDB file (created if missing) in one transaction. Bad rows "
            "go to the 'rejects' table with file, line and reason; a file loaded before (same "
            "SHA-256) is not loaded again. With --preview N nothing is written: each input's "
            "first N records are shown as a load would map them.",
            88,
        ),
    )
    p.add_argument(
        "--database", type=Path, default=None, help="DuckDB file [default: data/incident.duckdb]"
    )
    p.add_argument(
        "--preview",
        type=int,
        metavar="N",
        help="write nothing: show how the first N records of each input map (an attempt with "
        "its values, skipped and why, or rejected and why)",
    )
    _add_input_flags(p)
    _add_engine_flags(p)


def _definition_parser(sub: argparse._SubParsersAction) -> None:
    """The ``postmortem definition`` subcommand."""
    p = sub.add_parser(
        "definition",
        help="print a starter source definition for a log no format knows",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill(
            "Read the first records of a JSON or CSV sign-in log and print a commented YAML "
            "source definition: where the records are, the time field and its unit, the user "
            "field, the outcome with each value mapped (or '?' for you to decide), the field "
            "that tells attempts from other events. Edit it, check it with `postmortem load "
            "--auth FILE --auth-format IT.yaml --preview 20`, and put it in definitions/ of the "
            "incident folder so that auto tries it.",
            88,
        ),
        epilog="example:\n  postmortem definition exports/signins.json > definitions/signins.yaml",
    )
    p.add_argument("file", type=Path, help="a sign-in log (JSON Lines, a JSON document or CSV)")
    p.add_argument("--name", help="the definition's name [default: from the file name]")


def _report_parser(sub: argparse._SubParsersAction) -> None:
    """The ``postmortem report`` subcommand."""
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


def _verify_parser(sub: argparse._SubParsersAction) -> None:
    """The ``postmortem verify`` subcommand."""
    p = sub.add_parser(
        "verify",
        help="re-run a report from its manifest and compare hashes",
        description="Re-run from the inputs and parameters recorded in "
        "manifest.json, into a temporary folder, and check that every input "
        "and every hashed output is byte-identical.",
    )
    p.add_argument("report_dir", type=Path, help="a report folder with a manifest.json")


def _lab_parser(sub: argparse._SubParsersAction) -> None:
    """The ``postmortem lab`` subcommand."""
    p = sub.add_parser(
        "lab",
        help="JupyterLab in the incident folder, with the exploration notebook",
        formatter_class=_Formatter,
        description="Copy the exploration notebook into the incident folder (once: a copy "
        "there is kept with your cells) with the incident's parameters (incident.yaml, "
        "overridden by --config and the flags), and start JupyterLab on 127.0.0.1 there, "
        "on a kernel of this installation. The notebook loads the inputs into the "
        "incident's database (files loaded before are found by their hash) and views them.",
    )
    p.add_argument("--config", type=Path, help="YAML file of notebook parameters")
    _add_input_flags(p)
    p.add_argument(
        "--database", default=argparse.SUPPRESS, help="DuckDB file [default: data/incident.duckdb]"
    )
    p.add_argument("--port", type=int, default=8888, help="port on 127.0.0.1")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.add_argument(
        "--prepare-only",
        action="store_true",
        help="prepare the notebook and the kernel, print the JupyterLab command, start nothing",
    )


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
    parser.add_argument(
        "--version", action="version", version=f"postmortem-lab {analysis.__version__}"
    )
    parser.add_argument(
        "--project-dir",
        type=Path,
        metavar="DIR",
        help="the incident folder, where defaults are found and written "
        "[default: $POSTMORTEM_ROOT, else the working directory]",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _init_parser(sub)
    _sample_parser(sub)
    _load_parser(sub)
    _definition_parser(sub)
    _report_parser(sub)
    _verify_parser(sub)
    _lab_parser(sub)
    # the incident folder may be named after the command too (postmortem report --project-dir)
    for command in sub.choices.values():
        command.add_argument(
            "--project-dir", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``postmortem`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    say = (lambda _m: None) if args.quiet else _throttled()
    if args.project_dir is not None:
        if not args.project_dir.is_dir():
            print(
                f"postmortem: error: --project-dir {args.project_dir}: no such folder",
                file=sys.stderr,
            )
            return 2
        # the kernels the report starts inherit it
        os.environ[config.ROOT_ENV] = str(config.use_root(args.project_dir))
    try:
        if args.command == "init":
            return _init(args)
        if args.command == "lab":
            return _lab(args)
        if args.command == "sample":
            return _sample(args, say)
        if args.command == "load":
            return _preview(args) if args.preview is not None else _load(args, say)
        if args.command == "definition":
            return _definition(args)
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


def _init(args: argparse.Namespace) -> int:
    from analysis.report import folder

    where = (args.folder or config.PROJECT_ROOT).resolve()
    for path in folder.init(where, force=args.force):
        print(path)
    print(
        f"incident folder {where}: edit incident.yaml (the inputs, the window, the incident "
        "id), then run `postmortem report` there",
        file=sys.stderr,
    )
    return 0


def _lab(args: argparse.Namespace) -> int:
    from analysis.report import folder

    given = {"database": getattr(args, "database", None)}
    given.update({k: getattr(args, k, None) for k in report.INPUTS})
    if args.config:
        given = {**report.read_config(args.config), **{k: v for k, v in given.items() if v}}
    root = config.PROJECT_ROOT
    notebook = folder.prepare_lab(root, given)
    kernel = folder.ensure_kernel()
    cmd = folder.lab_command(root, notebook, port=args.port, browser=not args.no_browser)
    print(f"notebook {notebook} (kernel {kernel})", file=sys.stderr)
    if args.prepare_only:
        print(" ".join(cmd))
        return 0
    os.execv(cmd[0], cmd)  # JupyterLab takes over this process; Ctrl-C stops it
    return 0  # pragma: no cover


def _sample(args: argparse.Namespace, say) -> int:
    from analysis import sample

    started = time.monotonic()
    paths = sample.generate(
        getattr(args, "out", None) or config.SAMPLE_DIR,
        scale=args.scale,
        seed=args.seed,
        fmt=args.format,
        progress=say,
    )
    for name, path in paths.items():
        print(f"{name:<9} {path}")
    print(f"sample written in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


def _load(args: argparse.Namespace, say) -> int:
    if not (args.auth_logs or args.query_logs or args.timeline):
        raise errors.LoadError("nothing to load: give --auth, --queries and/or --timeline")
    args.database = args.database or config.DATA_DIR / "incident.duckdb"
    new = not args.database.exists()
    args.database.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    from analysis.db import connect_waiting

    con = connect_waiting(
        args.database, say=_progress, memory_limit=args.memory_limit, threads=args.threads
    )
    try:
        result = _load_into(con, args, say)
    except BaseException:
        con.close()
        if new:  # a refused load leaves no database behind, as it found none
            for leftover in (args.database, args.database.with_name(args.database.name + ".wal")):
                leftover.unlink(missing_ok=True)
        raise
    con.close()
    for line in ingest.describe(result):
        print(line)
    print(f"loaded in {time.monotonic() - started:.1f} s into {args.database}", file=sys.stderr)
    return 0


def _definition(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        raise errors.LoadError(f"{args.file}: no such file")
    print(ingest.starter(args.file, name=args.name), end="")
    return 0


def _preview(args: argparse.Namespace) -> int:
    from analysis.kinds import AUTH, QUERIES

    if args.preview < 1:
        raise errors.LoadError("--preview N: N is a number of records, at least 1")
    inputs = [
        (AUTH, args.auth_logs, args.auth_format),
        (QUERIES, args.query_logs, args.query_format),
    ]
    if not any(spec for _, spec, _ in inputs):
        raise errors.LoadError("nothing to preview: give --auth and/or --queries")
    options = {
        "source_timezone": args.source_timezone or "UTC",
        "log_line_prefix": args.log_line_prefix,
        "year": args.year,
        "login_paths": tuple(args.login_path or ()),
    }
    for kind, spec, fmt in inputs:
        for path in ingest.expand_inputs(spec):
            shown = ingest.preview(path, fmt=fmt or "auto", kind=kind, n=args.preview, **options)
            width = shutil.get_terminal_size((100, 24)).columns
            print("\n".join(ingest.describe_preview(shown, width=min(width, 120))))
    return 0


def _load_into(con, args: argparse.Namespace, say):
    """The load of ``postmortem load``'s inputs into ``con``."""
    return ingest.load(
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


if __name__ == "__main__":
    sys.exit(main())
