"""The one table of readers: every input format, what it holds, and how it is recognised.

Each entry names a format (what ``--auth-format`` / ``--query-format`` take), the kinds of
input it can hold, the file endings that choose it under ``auto``, an optional *content
signature* (a function of the file's first lines that says why the file looks like this
format, or None), and the function that reads a file into the kind's table. :mod:`load`,
:mod:`params`, the command's ``--help`` and the README's list are built from this table, so
adding a format is one new module and one entry here (or, for a source that a definition
describes, one YAML file under ``analysis/ingest/definitions/presets/``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from analysis import config, errors, kinds
from analysis.ingest import readers
from analysis.ingest.definitions import reader as sources
from analysis.ingest.definitions import schema as definitions
from analysis.ingest.formats import mysql_slow, postgres, sshd

#: reads one file into its kind's table; counts and notes go to the FileResult
ReadFn = Callable[
    [duckdb.DuckDBPyConnection, kinds.Kind, Path, kinds.FileResult, kinds.ReadOptions], None
]
#: from the first decoded lines of a file: why it looks like this format, or None
SniffFn = Callable[[list[str]], "str | None"]


@dataclass(frozen=True)
class Reader:
    """One input format."""

    name: str
    title: str
    kinds: tuple[str, ...]
    read: ReadFn
    endings: tuple[str, ...] = ()
    sniff: SniffFn | None = None
    #: read as text lines: a binary file (Parquet, gzip named .jsonl…) is refused up front
    text: bool = True
    #: one line for ``--help`` and the README
    help: str = ""
    #: a preset (a source definition shipped with the package), not a format of its own
    preset: bool = False
    #: the source definition behind a preset or a user's definition file
    definition: definitions.Definition | None = None


def _server_log(fn: Callable[..., None], *options: str) -> ReadFn:
    """The read function of a server-log format: ``fn(con, path, res, tz=, progress=, …)``
    with the load's options that the format takes."""

    def read(
        con: duckdb.DuckDBPyConnection,
        kind: kinds.Kind,
        path: Path,
        res: kinds.FileResult,
        opts: kinds.ReadOptions,
    ) -> None:
        fn(
            con,
            path,
            res,
            tz=opts.tz,
            progress=opts.progress,
            **{name: getattr(opts, name) for name in options},
        )

    return read


def _builtin() -> list[Reader]:
    return [
        Reader(
            "jsonl",
            "JSON Lines",
            ("auth", "queries", "timeline"),
            readers.read_jsonl,
            endings=(".jsonl", ".ndjson", ".json"),
            sniff=readers.sniff_jsonl,
            help="one JSON object per line, with the canonical field names",
        ),
        Reader(
            "csv",
            "CSV",
            ("auth", "queries", "timeline"),
            readers.read_csv,
            endings=(".csv",),
            sniff=readers.sniff_csv,
            help="a header row with the canonical field names",
        ),
        Reader(
            "parquet",
            "Parquet",
            ("auth", "queries"),
            readers.read_parquet,
            endings=(".parquet", ".pq"),
            text=False,
            help="columns with the canonical names",
        ),
        Reader(
            "yaml",
            "YAML",
            ("timeline",),
            readers.read_yaml,
            endings=(".yaml", ".yml"),
            text=False,
            help="a list of {ts, kind, text} (timeline only)",
        ),
        Reader(
            "postgres",
            "PostgreSQL server log",
            ("queries",),
            _server_log(postgres.load_postgres, "log_line_prefix", "year"),
            sniff=postgres.sniff,
            help="stderr with any log_line_prefix (inferred), syslog, csvlog, jsonlog, "
            "RDS/Aurora, Cloud SQL's JSON export, Heroku logplex; with "
            "log_min_duration_statement",
        ),
        Reader(
            "mysql-slow",
            "MySQL slow query log",
            ("queries",),
            _server_log(mysql_slow.load_slow_log),
            sniff=mysql_slow.sniff,
            help="MySQL / MariaDB / Percona slow query log",
        ),
        Reader(
            "sshd",
            "OpenSSH sshd log",
            ("auth",),
            _server_log(sshd.load_sshd, "year"),
            sniff=sshd.sniff,
            help="sshd lines of syslog or the journal (Failed / Accepted / Invalid user …)",
        ),
    ]


def _of_definition(d: definitions.Definition, *, preset: bool) -> Reader:
    return Reader(
        d.name,
        d.title,
        (d.kind,),
        sources.reader_for(d),
        sniff=sources.sniffer_for(d),
        help=d.description,
        preset=preset,
        definition=d,
    )


def _presets() -> list[Reader]:
    return [_of_definition(d, preset=True) for d in definitions.presets()]


def from_definition(path: Path) -> Reader:
    """The reader of a user's own source definition file (``--auth-format FILE.yaml``)."""
    return _of_definition(definitions.read_definition(path), preset=False)


READERS: dict[str, Reader] = {r.name: r for r in [*_builtin(), *_presets()]}


def user_readers(folder: Path | None = None) -> list[Reader]:
    """The readers of the incident folder's own definitions (``definitions/*.yaml``, read
    each time: the user edits them between loads), which ``auto`` tries beside the presets.

    Raises
    ------
    DefinitionError
        for a definition that cannot be used, or one named like a format or preset.
    """
    folder = config.DEFINITIONS_DIR if folder is None else folder
    found = []
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        reader = from_definition(path)
        if reader.name in READERS:
            raise errors.DefinitionError(
                f"{path}: name {reader.name!r} is a format of ours; give the definition "
                "another name"
            )
        found.append(reader)
    return found


def find(name: str) -> Reader | None:
    """The reader a format name names: a format, a preset, or one of the incident
    folder's own definitions."""
    if name in READERS:
        return READERS[name]
    if not config.DEFINITIONS_DIR.is_dir():
        return None
    return next((r for r in user_readers() if r.name == name), None)


def names(kind: str | None = None) -> tuple[str, ...]:
    """The format names (of one kind of input), in the table's order."""
    return tuple(n for n, r in READERS.items() if kind is None or kind in r.kinds)


def by_ending(path: Path) -> Reader | None:
    """The reader that a file's ending names (compression endings looked through)."""
    name = path.name.lower()
    for ending in (".gz", ".bz2", ".xz"):
        if name.endswith(ending):
            name = name[: -len(ending)]
    suffix = Path(name).suffix
    for r in READERS.values():
        if suffix and suffix in r.endings:
            return r
    return None


def choices_text(kind: str) -> str:
    """``auto, jsonl, csv, …`` for one kind, for help texts and error messages."""
    return ", ".join(("auto", *names(kind)))


def user_codes(formats: list[str], *, given: str = "auto") -> list[str]:
    """The user-class error codes that the definitions behind ``formats`` (and a definition
    file given as the format) name, in order, without repeats."""
    out: list[str] = []
    defs = [r.definition for r in map(find, formats) if r is not None]
    if definitions.is_definition_file(given) and given not in READERS:
        try:
            defs.append(definitions.read_definition(Path(given)))
        except errors.DefinitionError:
            pass  # the load has already said what is wrong with it
    for d in defs:
        for code in d.user_codes if d else ():
            if code not in out:
                out.append(code)
    return out
