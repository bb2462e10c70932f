"""Load auth events, query logs and timelines into DuckDB, keeping every bad row.

Each input file becomes one *source* (keyed on its SHA-256, so loading it again adds nothing).
A file is read as numbered lines (:mod:`analysis.lines`) or, for Parquet, by DuckDB itself;
every format is turned into the same relation of text fields, and one validation query per
kind of input types the fields and gives each row either a home in its table or a reason in
``rejects``. The whole load is one transaction: a file that cannot be read leaves the
database exactly as it was.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import yaml

from analysis import db, lines
from analysis.config import TIMELINE_KINDS
from analysis.lines import UnreadableFile

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

RAW_KEEP_CHARS = 65536  # a reject keeps this much of its line: enough to read, bounded


class LoadError(Exception):
    """A whole input cannot be loaded; the message names the file and the reason."""


@dataclass(frozen=True)
class Kind:
    """What one kind of input holds: its table, fields, and which are required."""

    name: str
    table: str
    fields: tuple[str, ...]
    required: tuple[str, ...]
    numeric: tuple[str, ...] = ()
    #: fields of which at least one must be present
    one_of: tuple[str, ...] = ()


AUTH = Kind(
    "auth",
    "auth_events",
    ("ts", "user_id", "outcome", "request_id", "error_code", "latency_ms", "auth_path"),
    ("ts", "user_id", "outcome"),
    numeric=("latency_ms",),
)
QUERIES = Kind(
    "queries",
    "db_queries",
    (
        "ts",
        "duration_ms",
        "statement",
        "fingerprint",
        "request_id",
        "caller",
        "db_host",
        "rows",
        "error",
    ),
    ("ts", "duration_ms"),
    numeric=("duration_ms", "rows"),
    one_of=("statement", "fingerprint"),
)
TIMELINE = Kind("timeline", "timeline", ("ts", "kind", "text"), ("ts", "kind"))
KINDS = {k.name: k for k in (AUTH, QUERIES, TIMELINE)}

#: columns of ours that a data column may not take the name of
RESERVED = {"source_id", "line", "raw", "reason", "pre_reason"}

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


@dataclass
class FileResult:
    """What happened to one input file."""

    kind: str
    path: str
    format: str
    sha256: str
    source_id: int
    rows_read: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    already_loaded: bool = False
    notes: list[str] = field(default_factory=list)
    #: rows that were not JSON objects at all (tells a file that is not JSON Lines)
    not_json: int = 0


@dataclass
class LoadResult:
    """Every file of one load, in the order given."""

    files: list[FileResult] = field(default_factory=list)

    def source_ids(self, kind: str) -> list[int]:
        """Source ids of one kind of input (what a report is scoped to)."""
        return [f.source_id for f in self.files if f.kind == kind]

    def totals(self, kind: str) -> dict[str, int]:
        """rows_read, rows_loaded and rows_rejected summed over one kind's files."""
        out = {"rows_read": 0, "rows_loaded": 0, "rows_rejected": 0}
        for f in self.files:
            if f.kind == kind:
                out["rows_read"] += f.rows_read
                out["rows_loaded"] += f.rows_loaded
                out["rows_rejected"] += f.rows_rejected
        return out


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
        for name in ("_chunk", "_lines", "_yaml", "_checked"):
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
    digest = sha256_of(path)
    row = db.one(
        con,
        "select source_id, rows_read, rows_loaded, rows_rejected, format from sources "
        "where kind = ? and sha256 = ?",
        [kind.name, digest],
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
        "insert into sources values (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            source_id,
            kind.name,
            str(path),
            fmt,
            digest,
            res.rows_read,
            res.rows_loaded,
            res.rows_rejected,
        ],
    )
    return res


_FORMAT_NAMES = {"jsonl": "JSON Lines", "csv": "CSV", "parquet": "Parquet", "yaml": "YAML"}


# --- turning each format into the relation `_rec(line, raw, pre_reason, f_<field>…)` ---


@dataclass(frozen=True)
class Records:
    """A query giving ``(line, raw, pre_reason, f_<field>…)`` rows, all text, with its values."""

    sql: str
    params: dict[str, object]
    extras: list[str]


def _json_records(con: duckdb.DuckDBPyConnection, kind: Kind, state: dict) -> Records:
    """The records of the JSON lines in ``_chunk``.

    Each line is parsed twice at most: once for its keys (the extra columns to keep), once
    into a struct of text fields (``json_transform``); a broken line fails both, and only
    then is its reason worked out.
    """
    con.execute(
        r"""
        create or replace temp table _lines as
        with decoded as (
            select line, raw as blob, try(decode(raw)) as txt0 from _chunk
        ), cleaned as (
            select line, blob,
                   case when line = 1 then ltrim(txt0, chr(65279)) else txt0 end as txt
            from decoded
        ), final as (
            select line,
                   left(coalesce(txt, blob::varchar), $keep) as raw,
                   txt,
                   try(json_keys(txt)) as keys
            from cleaned
            where txt is null or not regexp_full_match(txt, '\s*')
        )
        select * from final
        """,
        {"keep": RAW_KEEP_CHARS},
    )
    keys = [
        r[0]
        for r in con.execute(
            "select distinct unnest(keys) as k from _lines where keys is not null order by k"
        ).fetchall()
    ]
    extras = _extras_from(keys, kind, state)
    names = list(kind.fields) + extras
    structure = json.dumps({n: "VARCHAR" for n in names})
    cols = ", ".join(
        f"v.{db.quote_identifier(n)} as {db.quote_identifier('f_' + n)}" for n in names
    )
    state["seen"] = state.get("seen", set()) | {n for n in kind.fields if n in keys}
    sql = f"""
        select line, raw,
               case when txt is null then 'invalid UTF-8'
                    when v is null then 'broken JSON'
                    when left(ltrim(txt), 1) <> '{{' then 'not a JSON object'
               end as pre_reason,
               {cols}
        from (select line, raw, txt, try(json_transform(txt, $structure)) as v from _lines)
    """  # noqa: S608 - column names are checked identifiers
    return Records(sql, {"structure": structure}, extras)


_CSV_FIELD = r',("(?:[^"]|"")*"|[^,]*)'


def _csv_records(con: duckdb.DuckDBPyConnection, kind: Kind, state: dict) -> Records | None:
    """The records of the CSV lines in ``_chunk``; the header comes from the first line."""
    if "header" not in state:
        first = db.one(con, "select line, raw from _chunk order by line limit 1")
        if first is None:
            return None
        text = first[1].decode("utf-8", errors="replace").lstrip("\ufeff")
        header = [h.strip() for h in next(csv.reader([text]))]
        state["header"] = header
        state["header_line"] = first[0]
        state["extras"] = _extras_from(header, kind, state)
        state["seen"] = {n for n in kind.fields if n in header}
        missing = [n for n in kind.required if n not in header]
        if missing:
            raise UnreadableFile(
                f"{state['path']}: the CSV header has no {', '.join(missing)} column "
                f"(columns: {', '.join(header)})"
            )
        if kind.one_of and not any(n in header for n in kind.one_of):
            raise UnreadableFile(
                f"{state['path']}: the CSV header has none of {', '.join(kind.one_of)}"
            )
    header: list[str] = state["header"]
    wanted = list(kind.fields) + state["extras"]
    cols = []
    for n in wanted:
        alias = db.quote_identifier("f_" + n)
        if n in header:
            idx = header.index(n) + 1
            cols.append(f"nullif(unq(fields[{idx}]), '') as {alias}")
        else:
            cols.append(f"null::varchar as {alias}")
    con.execute(
        "create or replace temp macro unq(f) as "
        "case when len(f) >= 2 and f[1] = '\"' and f[-1] = '\"' "
        "then replace(f[2:-2], '\"\"', '\"') else f end"
    )
    sql = f"""
        with decoded as (
            select line, raw as blob, try(decode(raw)) as txt from _chunk where line > $hdr
        ), split as (
            select line, blob, txt,
                   regexp_extract_all(',' || txt, $pattern, 1) as fields
            from decoded
            where txt is null or not regexp_full_match(txt, '\\s*')
        )
        select line,
               left(coalesce(txt, blob::varchar), $keep) as raw,
               case when txt is null then 'invalid UTF-8'
                    when array_to_string(fields, ',') <> txt then 'malformed CSV quoting'
                    when len(fields) <> $ncols then
                        'wrong column count: expected ' || $ncols || ', got ' || len(fields)
               end as pre_reason,
               {", ".join(cols)}
        from split
    """  # noqa: S608 - column names are checked identifiers
    values = {
        "hdr": state["header_line"],
        "pattern": _CSV_FIELD,
        "keep": RAW_KEEP_CHARS,
        "ncols": len(header),
    }
    return Records(sql, values, state["extras"])


def _extras_from(names: Iterable[str], kind: Kind, state: dict) -> list[str]:
    """Extra columns to keep: plain identifiers that are not fields of ours."""
    extras = list(state.get("extras", []))
    for n in names:
        if n in kind.fields or n in extras:
            continue
        if n in RESERVED or not db.is_identifier(n) or n.startswith("f_"):
            state.setdefault("skipped_columns", set()).add(n)
            continue
        extras.append(n)
    return extras


# --- validation: one query per kind, shared by every format ---


#: a time of day followed by a zone: Z, an offset, or UTC/GMT
_ZONED = r".*\d:\d\d(:\d\d(\.\d*)?)?\s*([zZ]|[+-]\d\d(:?\d\d)?|UTC|GMT)"


def _ts_expr(col: str, *, utc: bool) -> str:
    """SQL turning a text field into a UTC ``timestamp`` (NULL when it cannot be parsed).

    With ``utc`` (source_timezone UTC) one cast reads ISO text with or without a zone, and
    only what it cannot read is tried as epoch seconds or milliseconds; otherwise a text
    without a zone is read in ``$tz``.
    """
    v = f"trim({col})"
    epoch = rf"""
            when regexp_full_match({v}, '[+-]?\d+(\.\d+)?([eE][+-]?\d+)?') then
                try(to_timestamp(case when abs(try_cast({v} as double)) >= 1e11
                                      then try_cast({v} as double) / 1000
                                      else try_cast({v} as double) end))"""
    if utc:
        return rf"""
        timezone('UTC', coalesce(try_cast({v} as timestamptz), case
            when {col} is null then null {epoch}
        end))"""
    return rf"""
        timezone('UTC', case
            when {col} is null then null {epoch}
            when regexp_full_match({v}, '{_ZONED}') then try_cast({v} as timestamptz)
            else try(timezone($tz, try_cast({v} as timestamp)))
        end)"""


def _validation_sql(kind: Kind, rec: Records, *, utc: bool) -> str:
    """The query from the records to ``_checked``: typed columns and a reject reason."""
    extras = rec.extras
    f = {n: db.quote_identifier("f_" + n) for n in list(kind.fields) + extras}
    typed = [f"{_ts_expr(f['ts'], utc=utc)} as ts"]
    checks = [f"when {f['ts']} is null or trim({f['ts']}) = '' then 'missing required field ts'"]
    checks.append(
        f"when ts is null then 'unparseable or impossible time: ' || left({f['ts']}, 60)"
    )
    for n in kind.fields[1:]:
        col = db.quote_identifier(n)
        if n in kind.numeric:
            typed.append(f"try_cast(trim({f[n]}) as double) as {col}")
        elif n == "outcome":
            typed.append(f"lower(trim({f[n]})) as {col}")
        elif n == "kind" and kind is TIMELINE:
            typed.append(f"lower(trim({f[n]})) as {col}")
        else:
            typed.append(f"nullif(trim({f[n]}), '') as {col}")
        if n in kind.required:
            checks.append(
                f"when {f[n]} is null or trim({f[n]}) = '' then 'missing required field {n}'"
            )
        if n in kind.numeric:
            checks.append(
                f"when {f[n]} is not null and trim({f[n]}) <> '' and {col} is null "
                f"then 'non-numeric {n}: ' || left({f[n]}, 60)"
            )
            checks.append(f"when {col} < 0 then 'negative {n}: ' || {f[n]}")
            checks.append(f"when isinf({col}) or isnan({col}) then 'non-finite {n}'")
    if kind is AUTH:
        checks.append(
            "when outcome not in ('success', 'failure') then 'unknown outcome: ' || "
            + f"left({f['outcome']}, 60)"
        )
    if kind is QUERIES:
        checks.append(
            "when statement is null and fingerprint is null "
            "then 'missing required field statement or fingerprint'"
        )
        checks.append(
            'when "rows" is not null and "rows" <> floor("rows") '
            "then 'non-integer rows: ' || f_rows"
        )
    if kind is TIMELINE:
        allowed = ", ".join("'" + k + "'" for k in TIMELINE_KINDS)  # fixed constants
        checks.append(
            f"when kind not in ({allowed}) then 'unknown timeline kind: ' || left(f_kind, 60)"
        )
    for n in extras:
        typed.append(f"{f[n]} as {db.quote_identifier(n)}")
    raw_fields = ", ".join(f.values())
    return f"""
        create or replace temp table _checked as
        with _rec as (
            {rec.sql}
        ), typed as (
            select line, raw, pre_reason, {raw_fields},
                   {", ".join(typed)}
            from _rec
        ), final as (
            select *,
                   case when pre_reason is not null then pre_reason
                        {" ".join(checks)}
                   end as reason
            from typed
        )
        select * from final
    """  # noqa: S608 - identifiers are from the fixed field lists or checked


def _store(
    con: duckdb.DuckDBPyConnection, kind: Kind, res: FileResult, rec: Records, tz: str
) -> None:
    """Validate the records and move each row into the kind's table or ``rejects``."""
    extras = rec.extras
    utc = tz == "UTC"
    values = dict(rec.params)
    if not utc:
        values["tz"] = tz
    con.execute(_validation_sql(kind, rec, utc=utc), values)
    have = set(db.columns_of(con, kind.table))
    for n in extras:
        if n not in have:
            con.execute(
                f"alter table {kind.table} add column {db.quote_identifier(n)} varchar"  # noqa: S608
            )
    cols = [n for n in kind.fields] + extras
    select = []
    for n in cols:
        q = db.quote_identifier(n)
        if n == "rows":
            select.append('try_cast("rows" as bigint) as "rows"')
        elif n == "fingerprint":
            select.append("coalesce(fingerprint, fingerprint(statement)) as fingerprint")
        else:
            select.append(q)
    target = ", ".join(["source_id", "line"] + [db.quote_identifier(n) for n in cols])
    con.execute(
        f"insert into {kind.table} ({target}) "  # noqa: S608 - fixed table, checked columns
        f"select $sid, line, {', '.join(select)} from _checked where reason is null",
        {"sid": res.source_id},
    )
    con.execute(
        "insert into rejects select $sid, $file, line, raw, reason "
        "from _checked where reason is not null",
        {"sid": res.source_id, "file": res.path},
    )
    counts = db.one(
        con,
        "select count(*), count(*) filter (where reason is null), "
        "count(*) filter (where pre_reason in ('broken JSON', 'not a JSON object')) "
        "from _checked",
    )
    res.rows_read += counts[0]
    res.rows_loaded += counts[1]
    res.not_json += counts[2]


def _load_text(
    con: duckdb.DuckDBPyConnection,
    kind: Kind,
    path: Path,
    res: FileResult,
    to_records: Callable[[duckdb.DuckDBPyConnection, Kind, dict], Records | None],
    *,
    tz: str,
    progress: Progress | None,
) -> None:
    state: dict = {"path": str(path)}
    for chunk in lines.iter_chunks(path):
        con.register("_chunk_view", chunk.table)
        con.execute("create or replace temp table _chunk as select * from _chunk_view")
        con.unregister("_chunk_view")
        rec = to_records(con, kind, state)
        if rec is not None:
            _store(con, kind, res, rec, tz)
        if progress:
            total = f" of {chunk.bytes_total / 1e6:,.0f} MB" if chunk.bytes_total else ""
            progress(
                f"{path.name}: {chunk.bytes_done / 1e6:,.0f} MB{total} read, "
                f"{res.rows_read:,} rows"
            )
    res.rows_rejected = res.rows_read - res.rows_loaded
    _check_whole_file(res, kind, state, fmt_name=_FORMAT_NAMES[res.format])


def _check_whole_file(res: FileResult, kind: Kind, state: dict, *, fmt_name: str) -> None:
    """Stop when a file is not what it claims or lacks a required field everywhere."""
    bad_json = res.not_json
    if res.rows_read and res.format == "jsonl" and bad_json == res.rows_read:
        raise UnreadableFile(f"{res.path}: no line is a JSON object; is it {fmt_name}?")
    if res.rows_read and res.rows_read > bad_json and res.format == "jsonl":
        seen = state.get("seen", set())
        missing = [n for n in kind.required if n not in seen]
        if missing:
            raise UnreadableFile(f"{res.path}: no row has the required field {', '.join(missing)}")
        if kind.one_of and not any(n in seen for n in kind.one_of):
            raise UnreadableFile(f"{res.path}: no row has any of {', '.join(kind.one_of)}")
    if state.get("skipped_columns"):
        res.notes.append(
            "columns not kept (not plain names or reserved): "
            + ", ".join(sorted(state["skipped_columns"]))
        )


def _load_parquet(
    con: duckdb.DuckDBPyConnection, kind: Kind, path: Path, res: FileResult, *, tz: str
) -> None:
    try:
        schema = con.execute(
            "select column_name, column_type from (describe select * from read_parquet(?))",
            [str(path)],
        ).fetchall()
    except duckdb.Error as exc:
        raise UnreadableFile(f"{path}: is not a readable Parquet file ({exc})") from exc
    names = [r[0] for r in schema]
    types = {r[0]: r[1] for r in schema}
    missing = [n for n in kind.required if n not in names]
    if missing:
        raise UnreadableFile(
            f"{path}: the Parquet file has no {', '.join(missing)} column "
            f"(columns: {', '.join(names)})"
        )
    state: dict = {"path": str(path)}
    extras = _extras_from(names, kind, state)
    present = [n for n in names if n in kind.fields or n in extras]
    cols = []
    for n in list(kind.fields) + extras:
        alias = db.quote_identifier("f_" + n)
        if n in names and types[n] == "JSON":
            # a column of mixed types arrives as JSON: its text, not its JSON quoting
            cols.append(f"json_extract_string(p.{db.quote_identifier(n)}, '$') as {alias}")
        elif n in names:
            cols.append(f"cast(p.{db.quote_identifier(n)} as varchar) as {alias}")
        else:
            cols.append(f"null::varchar as {alias}")
    raw = ", ".join(f"{db.quote_identifier(n)} := p.{db.quote_identifier(n)}" for n in present)
    sql = f"""
        select file_row_number + 1 as line,
               left(to_json(struct_pack({raw}))::varchar, $keep) as raw,
               null::varchar as pre_reason,
               {", ".join(cols)}
        from read_parquet($path, file_row_number = true) p
    """  # noqa: S608 - identifiers checked
    _store(con, kind, res, Records(sql, {"path": str(path), "keep": RAW_KEEP_CHARS}, extras), tz)
    res.rows_rejected = res.rows_read - res.rows_loaded
    _check_whole_file(res, kind, state, fmt_name="Parquet")


def _load_yaml(
    con: duckdb.DuckDBPyConnection, kind: Kind, path: Path, res: FileResult, *, tz: str
) -> None:
    """A timeline in YAML: a list of mappings; small, so read with PyYAML."""
    text = lines.open_bytes(path).read().decode("utf-8", errors="replace")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UnreadableFile(f"{path}: is not valid YAML ({exc})") from exc
    if data is None:
        data, items = [], []
    elif not isinstance(data, list) or not isinstance(node, yaml.SequenceNode):
        raise UnreadableFile(f"{path}: a timeline in YAML must be a list of {{ts, kind, text}}")
    else:
        items = node.value
    rows = []
    for item, item_node in zip(data, items, strict=True):
        line = item_node.start_mark.line + 1
        if not isinstance(item, dict):
            rows.append((line, json.dumps(item, default=str), "not a mapping", None, None, None))
            continue
        vals = [_yaml_text(item.get(n)) for n in kind.fields]
        rows.append((line, json.dumps(item, default=str, sort_keys=True), None, *vals))
    table = pa.table(
        {
            "line": pa.array([r[0] for r in rows], pa.int64()),
            "raw": pa.array([r[1] for r in rows], pa.string()),
            "pre_reason": pa.array([r[2] for r in rows], pa.string()),
            **{
                "f_" + n: pa.array([r[3 + i] for r in rows], pa.string())
                for i, n in enumerate(kind.fields)
            },
        }
    )
    con.register("_yaml_view", table)
    con.execute("create or replace temp table _yaml as select * from _yaml_view")
    con.unregister("_yaml_view")
    _store(con, kind, res, Records("select * from _yaml", {}, []), tz)
    res.rows_rejected = res.rows_read - res.rows_loaded


def _yaml_text(value: object) -> str | None:
    """YAML turns unquoted times into datetimes: give them back as ISO text."""
    if value is None:
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()  # type: ignore[no-any-return]
    return str(value)


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
