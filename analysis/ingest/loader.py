"""Load auth events, query logs and timelines into DuckDB, keeping every bad row.

Each input file becomes one *source* (keyed on its SHA-256, so loading it again adds nothing).
A file is read as numbered lines (:mod:`analysis.ingest.lines`) or, for Parquet, by DuckDB itself;
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb

from analysis import config, db, errors
from analysis.errors import LoadError, UnreadableFile
from analysis.ingest import lines, registry
from analysis.ingest.definitions import schema as definitions
from analysis.ingest.formats import common
from analysis.kinds import (
    AUTH,
    KINDS,
    QUERIES,
    TIMELINE,
    FileResult,
    Kind,
    LoadResult,
    Progress,
    ReadOptions,
)

#: what a caller of the load needs besides :func:`load`: its errors and results
__all__ = [
    "AUTH",
    "KINDS",
    "QUERIES",
    "TIMELINE",
    "FileResult",
    "LoadError",
    "LoadResult",
    "cached_sha256",
    "check_timezone",
    "choose_reader",
    "describe",
    "expand_inputs",
    "load",
    "sha256_of",
]

log = logging.getLogger(__name__)


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
        if not text.strip():
            # "" means none (the CLI's `--timeline ""` arrives as [""]); as a path it is
            # the working directory, and every file under it was read as an input
            continue
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


#: how many first lines a format's content signature is shown
SNIFF_LINES = 200


def choose_reader(path: Path, given: str, kind: Kind) -> tuple[registry.Reader, str | None]:
    """The reader of ``path`` and, when its content chose it, why.

    ``given`` names a format, or is ``auto``: then a CSV, Parquet or YAML ending decides;
    otherwise (``.json``, ``.jsonl``, ``.log``, ``.txt``, no ending, and the same
    compressed) the first lines are held against each format's content signature.

    Raises
    ------
    LoadError
        for an unknown format, a format that holds another kind of input, two formats that
        fit the content equally, or a file that no format fits.
    """
    flag = f"--{'query' if kind is QUERIES else kind.name}-format"
    if given and definitions.is_definition_file(given) and given not in registry.READERS:
        try:
            return registry.from_definition(Path(given)), None
        except errors.DefinitionError as exc:
            raise LoadError(str(exc)) from exc
    if given and given != "auto":
        return _named_reader(path, given, kind), None
    by_name = registry.by_ending(path)
    if by_name is not None and not by_name.text and kind.name in by_name.kinds:
        return by_name, None
    try:
        sample = lines.first_lines(path, limit=SNIFF_LINES) if kind is not TIMELINE else []
        own = registry.user_readers() if config.DEFINITIONS_DIR.is_dir() else []
    except (UnreadableFile, errors.DefinitionError) as exc:
        raise LoadError(str(exc)) from exc
    if by_name is not None and by_name.name == "csv" and kind.name in by_name.kinds:
        # a CSV of our own columns is ours; another is a vendor's export a definition reads
        if not sample or by_name.sniff is None or by_name.sniff(sample):
            return by_name, None
    fits = _fits(own, sample, kind) or _fits(list(registry.READERS.values()), sample, kind)
    if len(fits) > 1 and by_name is not None and by_name in [r for r, _ in fits]:
        fits = [(r, w) for r, w in fits if r is by_name]
    if len(fits) == 1:
        # the content says what the ending said: nothing worth a note
        return fits[0] if fits[0][0] is not by_name else (by_name, None)
    if len(fits) > 1:
        named = "; ".join(f"{r.name} ({w})" for r, w in fits)
        raise LoadError(f"{path}: fits more than one format: {named}; name one with {flag}")
    if by_name is not None and kind.name in by_name.kinds:
        return by_name, None
    suffix = path.suffix or "(none)"
    seen = _what_it_holds(sample)
    raise LoadError(
        f"{path}: cannot tell the format from the ending {suffix!r} or from the first lines"
        f"{seen}; name it with {flag} ({registry.choices_text(kind.name)})"
        + (
            ", or describe it in a definition: `postmortem definition FILE` writes a starter "
            f"(put it in {config.DEFINITIONS_DIR.name}/ and auto tries it)"
            if kind is AUTH
            else ""
        )
    )


def _named_reader(path: Path, given: str, kind: Kind) -> registry.Reader:
    """The reader of a format, preset or own definition given by name."""
    try:
        reader = registry.find(given)
    except errors.DefinitionError as exc:
        raise LoadError(str(exc)) from exc
    if reader is None:
        raise LoadError(
            f"{path}: unknown format {given!r} (one of {registry.choices_text(kind.name)})"
        )
    if kind.name not in reader.kinds:
        holds = " or ".join(reader.kinds)
        raise LoadError(
            f"{path}: {given} logs hold {holds}, not {kind.name} "
            f"(give it with --{'queries' if 'queries' in reader.kinds else 'auth'})"
        )
    return reader


def _fits(
    readers: list[registry.Reader], sample: list[str], kind: Kind
) -> list[tuple[registry.Reader, str]]:
    """The readers whose content signature the first lines fit, with why."""
    fits = []
    for reader in readers:
        if kind.name in reader.kinds and reader.sniff is not None and sample:
            why = reader.sniff(sample)
            if why:
                fits.append((reader, why))
    return fits


def _what_it_holds(sample: list[str]) -> str:
    """What a file no format knows holds, for the refusal: the keys of its first JSON
    record, or the start of its first line."""
    if not sample:
        return " (it is empty)"
    try:
        first = json.loads(sample[0])
    except (ValueError, RecursionError):
        first = None
    if isinstance(first, list) and first and isinstance(first[0], dict):
        first = first[0]
    if isinstance(first, dict):
        keys = list(first)
        shown = ", ".join(keys[:12]) + (f", … ({len(keys)} keys)" if len(keys) > 12 else "")
        return f" (its first record has the keys {shown})"
    line = sample[0].strip()
    return f" (it starts {line[:80]!r}{'…' if len(line) > 80 else ''})"


def sha256_of(path: Path) -> str:
    """SHA-256 of a file's bytes as stored (compressed files hash compressed)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(8 * 1024 * 1024):
            h.update(block)
    return h.hexdigest()


def _hash_key(path: Path) -> list:
    st = path.stat()
    return [str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def known_sha256(con: duckdb.DuckDBPyConnection, path: Path) -> str | None:
    """The remembered SHA-256 of a file that has not changed since, or None."""
    row = db.one(
        con,
        "select sha256 from file_hashes where path = ? and size = ? and mtime_ns = ? "
        "and ctime_ns = ? and inode = ?",
        _hash_key(path),
    )
    return row[0] if row else None


def remember_sha256(con: duckdb.DuckDBPyConnection, path: Path, digest: str) -> None:
    """Remember a file's SHA-256 until the file changes (see :func:`cached_sha256`)."""
    key = _hash_key(path)
    con.execute("delete from file_hashes where path = ?", key[:1])
    con.execute("insert into file_hashes values (?, ?, ?, ?, ?, ?)", [*key, digest])


def cached_sha256(con: duckdb.DuckDBPyConnection, path: Path) -> str:
    """SHA-256 of a file, remembered in ``file_hashes`` until the file changes.

    A report hashes its inputs to find what is already loaded, and the exploration notebook
    does it again: 13.6 GB of JSON Lines take about 10 s each time. A file is known by its
    absolute path, size, inode, mtime and ctime; writing to it changes ctime, which no tool
    can set back, so a stale hash cannot be used. ``postmortem verify`` always hashes anew.
    """
    digest = known_sha256(con, path)
    if digest is None:
        digest = sha256_of(path)
        remember_sha256(con, path, digest)
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
    login_paths: Sequence[str] = (),
) -> LoadResult:
    """Load every input into the database in one transaction.

    ``log_line_prefix`` (PostgreSQL logs; detected when None) and ``year`` (of syslog
    timestamps, which have none; the file's date when None) are for server logs.
    Returns the per-file counts; raises :class:`LoadError` (database unchanged) when a
    whole file cannot be read.
    """
    plan: list[tuple[Kind, Path, registry.Reader, str | None]] = []
    for kind, spec, fmt in (
        (AUTH, auth, auth_format),
        (QUERIES, queries, query_format),
        (TIMELINE, timeline, "auto"),
    ):
        for path in expand_inputs(spec):
            plan.append((kind, path, *choose_reader(path, fmt, kind)))
    check_timezone(con, source_timezone)
    opts = ReadOptions(
        tz=source_timezone,
        progress=progress,
        log_line_prefix=log_line_prefix,
        year=year,
        login_paths=tuple(login_paths),
    )
    result = LoadResult()
    con.execute("begin transaction")
    try:
        for kind, path, reader, why in plan:
            result.files.append(_load_file(con, kind, path, reader, opts, why=why))
        if progress:
            progress("writing the rows to the database file (commit)")
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
    formats = [f.format for f in result.files if f.kind == AUTH.name]
    result.user_codes = registry.user_codes(formats, given=auth_format)
    return result


def _load_file(
    con: duckdb.DuckDBPyConnection,
    kind: Kind,
    path: Path,
    reader: registry.Reader,
    opts: ReadOptions,
    *,
    why: str | None = None,
) -> FileResult:
    fmt = reader.name
    # the same bytes read with other settings are other rows: the settings are part of the key
    settings: dict[str, object] = {
        "format": fmt,
        "source_timezone": opts.tz,
        "log_line_prefix": opts.log_line_prefix,
        "year": opts.year,
    }
    if reader.definition is not None:
        # an edited definition reads the same bytes into other rows
        settings["definition"] = reader.definition.digest
        if opts.login_paths and reader.definition.login_path:
            settings["login_paths"] = list(opts.login_paths)
    options = json.dumps(settings, sort_keys=True)
    digest = known_sha256(con, path)
    hashing = None
    if digest is None:
        # a file not seen before is hashed beside its read (hashlib leaves the GIL to
        # DuckDB's threads): 21 s of a 213 s load of 13.6 GB when done first. The rare file
        # whose bytes were loaded under another name is found after the read, and its new
        # rows are dropped again.
        hashing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256")
        pending = hashing.submit(sha256_of, path)
    else:
        done = _already_loaded(con, kind, path, digest, options)
        if done is not None:
            return done
    source_id = db.one(con, "select coalesce(max(source_id), 0) + 1 from sources")[0]
    res = FileResult(kind.name, str(path), fmt, digest or "", source_id)
    if why:
        res.notes.append(f"read as {reader.title} ({fmt}): {why}")
    common.drop_temp(con)
    try:
        reader.read(con, kind, path, res, opts)
    finally:
        if hashing is not None:
            hashing.shutdown(wait=True)
    common.drop_temp(con)  # on failure, the rollback drops them
    if hashing is not None:
        digest = pending.result()
        remember_sha256(con, path, digest)
        res.sha256 = digest
        done = _already_loaded(con, kind, path, digest, options)
        if done is not None:
            tables = {
                r[0] for r in con.execute("select table_name from duckdb_tables()").fetchall()
            }
            for table in (kind.table, "rejects", "server_events"):
                if table in tables:
                    con.execute(f"delete from {table} where source_id = ?", [source_id])  # noqa: S608 - fixed names
            return done
    _replace_earlier(con, kind, res, options)
    con.execute(
        "insert into sources (source_id, kind, path, format, sha256, options, rows_read, "
        "rows_loaded, rows_rejected, rows_skipped) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            res.rows_skipped,
        ],
    )
    return res


def _replace_earlier(
    con: duckdb.DuckDBPyConnection, kind: Kind, res: FileResult, options: str
) -> None:
    """Drop an earlier load of the same bytes read with other settings (another format, an
    edited definition), in this transaction: a file is never counted twice. The result
    says what it replaced."""
    earlier = con.execute(
        "select source_id, path, format from sources "
        "where kind = ? and sha256 = ? and options <> ? order by source_id",
        [kind.name, res.sha256, options],
    ).fetchall()
    if not earlier:
        return
    tables = {r[0] for r in con.execute("select table_name from duckdb_tables()").fetchall()}
    for source_id, path, fmt in earlier:
        for table in (kind.table, "rejects", "server_events"):
            if table in tables:
                con.execute(f"delete from {table} where source_id = ?", [source_id])  # noqa: S608 - fixed names
        con.execute("delete from sources where source_id = ?", [source_id])
        change = f"{fmt} → {res.format}" if fmt != res.format else f"{fmt}, other settings"
        res.notes.append(f"replaced the load of {path} ({change})")


def _already_loaded(
    con: duckdb.DuckDBPyConnection, kind: Kind, path: Path, digest: str, options: str
) -> FileResult | None:
    """The result of an earlier load of the same bytes with the same settings, or None."""
    row = db.one(
        con,
        "select source_id, rows_read, rows_loaded, rows_rejected, format, rows_skipped "
        "from sources where kind = ? and sha256 = ? and options = ?",
        [kind.name, digest, options],
    )
    if not row:
        return None
    res = FileResult(kind.name, str(path), row[4], digest, row[0], row[1], row[2], row[3])
    res.rows_skipped = row[5] or 0
    res.already_loaded = True
    return res


def describe(result: LoadResult) -> list[str]:
    """One line per file: what was read, loaded and rejected (for the CLI)."""
    out = []
    for f in result.files:
        state = "already loaded, skipped" if f.already_loaded else "loaded"
        skipped = f", {f.rows_skipped:,} skipped" if f.rows_skipped else ""
        out.append(
            f"{f.kind:<9} {f.path}: {f.rows_read:,} read, {f.rows_loaded:,} loaded, "
            f"{f.rows_rejected:,} rejected{skipped} ({f.format}, {state})"
        )
        out.extend(f"          note: {n}" for n in f.notes)
    return out
