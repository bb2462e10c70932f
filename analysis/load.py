"""Load auth events, query logs and timelines into DuckDB, keeping every bad row.

Each input file becomes one *source* (keyed on its SHA-256, so loading it again adds nothing).
A file is read as numbered lines (:mod:`analysis.lines`) or, for Parquet, by DuckDB itself;
every format is turned into the same relation of text fields, and one validation query per
kind of input types the fields and gives each row either a home in its table or a reason in
``rejects``. The whole load is one transaction: a file that cannot be read leaves the
database exactly as it was.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import duckdb

from analysis import db, lines
from analysis.kinds import (  # noqa: F401 - the vocabulary of a load, used as load.X
    AUTH,
    KINDS,
    QUERIES,
    RAW_KEEP_CHARS,
    RESERVED,
    TIMELINE,
    FileResult,
    Kind,
    LoadError,
    LoadResult,
    Progress,
    Records,
)
from analysis.lines import UnreadableFile
from analysis.readers import (
    _FORMAT_NAMES,
    _csv_records,
    _json_records,
    _load_parquet,
    _load_text,
    _load_yaml,
)
from analysis.validate import _store, _ts_expr  # noqa: F401 - used by the server-log formats

log = logging.getLogger(__name__)


FORMATS_BY_ENDING = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".yaml": "yaml",
    ".yml": "yaml",
}


def expand_inputs(spec: str | Path | Sequence[str | Path] | None) -> list[Path]:
    """Turn a path, a glob, or a list of either into a sorted list of files.

    Raises
    ------
    LoadError
        when a path does not exist or a glob matches nothing.
    """
    if spec is None or spec == "" or spec == []:
        return []
    items = [spec] if isinstance(spec, (str, Path)) else list(spec)
    out: list[Path] = []
    for item in items:
        text = str(item)
        if any(ch in text for ch in "*?["):
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                raise LoadError(f"{text}: no file matches this pattern")
            out.extend(Path(m) for m in matches if Path(m).is_file())
        else:
            p = Path(text)
            if not p.exists():
                raise LoadError(f"{text}: no such file")
            if p.is_dir():
                out.extend(sorted(x for x in p.rglob("*") if x.is_file()))
            else:
                out.append(p)
    return out


def format_of(path: Path, given: str) -> str:
    """The format to read ``path`` with: ``given``, or by the file's ending for ``auto``."""
    if given and given != "auto":
        return given
    name = path.name.lower()
    for ending in (".gz", ".bz2", ".xz"):
        if name.endswith(ending):
            name = name[: -len(ending)]
    suffix = Path(name).suffix
    if suffix in FORMATS_BY_ENDING:
        return FORMATS_BY_ENDING[suffix]
    raise LoadError(
        f"{path}: cannot tell the format from the ending {suffix or '(none)'!r}; "
        "name it with --auth-format / --query-format (jsonl, csv, parquet; server logs: "
        "postgres, mysql-slow, sshd)"
    )


def sha256_of(path: Path) -> str:
    """SHA-256 of a file's bytes as stored (compressed files hash compressed)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(8 * 1024 * 1024):
            h.update(block)
    return h.hexdigest()


def cached_sha256(con: duckdb.DuckDBPyConnection, path: Path) -> str:
    """SHA-256 of a file, remembered in ``file_hashes`` until the file changes.

    A report hashes its inputs to find what is already loaded, and the exploration notebook
    does it again: 13.6 GB of JSON Lines take about 10 s each time. A file is known by its
    absolute path, size, inode, mtime and ctime; writing to it changes ctime, which no tool
    can set back, so a stale hash cannot be used. ``postmortem verify`` always hashes anew.
    """
    st = path.stat()
    key = [str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
    row = db.one(
        con,
        "select sha256 from file_hashes where path = ? and size = ? and mtime_ns = ? "
        "and ctime_ns = ? and inode = ?",
        key,
    )
    if row:
        return row[0]
    digest = sha256_of(path)
    con.execute("delete from file_hashes where path = ?", key[:1])
    con.execute("insert into file_hashes values (?, ?, ?, ?, ?, ?)", [*key, digest])
    return digest


def check_timezone(con: duckdb.DuckDBPyConnection, tz: str) -> None:
    """Refuse a ``source_timezone`` that DuckDB does not know."""
    known = db.one(con, "select count(*) from pg_timezone_names() where name = ?", [tz])
    if not known or not known[0]:
        raise LoadError(
            f"source_timezone {tz!r} is not a known time zone (e.g. UTC, Europe/Paris)"
        )


def load(
    con: duckdb.DuckDBPyConnection,
    *,
    auth: str | Path | Sequence[str | Path] | None = None,
    queries: str | Path | Sequence[str | Path] | None = None,
    timeline: str | Path | Sequence[str | Path] | None = None,
    auth_format: str = "auto",
    query_format: str = "auto",
    source_timezone: str = "UTC",
    progress: Progress | None = None,
    log_line_prefix: str | None = None,
    year: int | None = None,
) -> LoadResult:
    """Load every input into the database in one transaction.

    ``log_line_prefix`` (PostgreSQL logs; detected when None) and ``year`` (of syslog
    timestamps, which have none; the file's date when None) are for server logs.
    Returns the per-file counts; raises :class:`LoadError` (database unchanged) when a
    whole file cannot be read.
    """
    plan: list[tuple[Kind, Path, str]] = []
    for kind, spec, fmt in (
        (AUTH, auth, auth_format),
        (QUERIES, queries, query_format),
        (TIMELINE, timeline, "auto"),
    ):
        for path in expand_inputs(spec):
            plan.append((kind, path, format_of(path, fmt)))
    check_timezone(con, source_timezone)
    result = LoadResult()
    con.execute("begin transaction")
    try:
        for kind, path, fmt in plan:
            result.files.append(
                _load_file(
                    con,
                    kind,
                    path,
                    fmt,
                    tz=source_timezone,
                    progress=progress,
                    log_line_prefix=log_line_prefix,
                    year=year,
                )
            )
        con.execute("commit")
    except BaseException as exc:
        con.execute("rollback")
        if isinstance(exc, UnreadableFile):
            raise LoadError(str(exc)) from exc
        if isinstance(exc, duckdb.Error):
            raise LoadError(f"the load failed and was rolled back: {exc}") from exc
        raise
    finally:
        for name in ("_yaml", "_fp_keys"):
            con.execute(f"drop table if exists {name}")  # noqa: S608 - fixed names
    return result


def _load_file(
    con: duckdb.DuckDBPyConnection,
    kind: Kind,
    path: Path,
    fmt: str,
    *,
    tz: str,
    progress: Progress | None,
    log_line_prefix: str | None = None,
    year: int | None = None,
) -> FileResult:
    digest = cached_sha256(con, path)
    # the same bytes read with other settings are other rows: the settings are part of the key
    options = json.dumps(
        {"format": fmt, "source_timezone": tz, "log_line_prefix": log_line_prefix, "year": year},
        sort_keys=True,
    )
    row = db.one(
        con,
        "select source_id, rows_read, rows_loaded, rows_rejected, format from sources "
        "where kind = ? and sha256 = ? and options = ?",
        [kind.name, digest, options],
    )
    if row:
        res = FileResult(kind.name, str(path), row[4], digest, row[0], row[1], row[2], row[3])
        res.already_loaded = True
        return res
    source_id = db.one(con, "select coalesce(max(source_id), 0) + 1 from sources")[0]
    res = FileResult(kind.name, str(path), fmt, digest, source_id)
    if fmt in ("jsonl", "csv"):
        head = lines.sniff(path)
        binary = lines.binary_format(head)
        if binary:
            raise UnreadableFile(f"{path}: is {binary} data, not {_FORMAT_NAMES[fmt]}")
    if fmt == "jsonl":
        _load_text(con, kind, path, res, _json_records, tz=tz, progress=progress)
    elif fmt == "csv":
        _load_text(con, kind, path, res, _csv_records, tz=tz, progress=progress)
    elif fmt == "parquet":
        _load_parquet(con, kind, path, res, tz=tz)
    elif fmt == "yaml" and kind is TIMELINE:
        _load_yaml(con, kind, path, res, tz=tz)
    else:
        from analysis import formats  # server log formats live in their own package

        formats.load_server_log(
            con,
            kind,
            path,
            fmt,
            res,
            tz=tz,
            progress=progress,
            log_line_prefix=log_line_prefix,
            year=year,
        )
    con.execute(
        "insert into sources (source_id, kind, path, format, sha256, options, rows_read, "
        "rows_loaded, rows_rejected) values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            source_id,
            kind.name,
            str(path),
            fmt,
            digest,
            options,
            res.rows_read,
            res.rows_loaded,
            res.rows_rejected,
        ],
    )
    return res


def describe(result: LoadResult) -> list[str]:
    """One line per file: what was read, loaded and rejected (for the CLI)."""
    out = []
    for f in result.files:
        state = "already loaded, skipped" if f.already_loaded else "loaded"
        out.append(
            f"{f.kind:<9} {f.path}: {f.rows_read:,} read, {f.rows_loaded:,} loaded, "
            f"{f.rows_rejected:,} rejected ({f.format}, {state})"
        )
        out.extend(f"          note: {n}" for n in f.notes)
    return out
