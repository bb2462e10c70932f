"""Parquet in place: a report reads the Parquet files themselves; nothing is loaded.

``postmortem report --in-place`` (notebook parameter ``in_place``) points ``v_auth`` and
``v_queries`` at the rows of the input files (a file, a glob, or a Hive-partitioned folder
such as ``dt=2024-01-19/hour=10/…``) instead of loading them: the rows of the report's range
are read once, typed, into a table of the session (a temporary table in memory, or past
half the memory limit a compressed DuckDB file in a temporary folder), which every figure
then reads; the report's database file is not written. The
rows are typed and checked as a load would (the same reasons make a row unusable), but a
bad row is counted, not kept: there is no ``rejects`` row for it. Load the files to see them.

The time range (``range_start``/``range_end``) is compared with the file's own ``ts``
column, so DuckDB skips every row group, and every file, whose ``ts`` statistics lie outside
it: a report on one day of an hour-partitioned month reads that day's files only. A ``ts``
stored as text has no usable statistics and is read whole.

File lists and the range are DuckDB variables (bound values, read with ``getvariable``),
never SQL text.
"""

from __future__ import annotations

import atexit
import re
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

import duckdb

from analysis import db, fingerprint
from analysis.errors import LoadError
from analysis.ingest import READERS, extras_from, ts_expr
from analysis.kinds import AUTH, QUERIES, FileResult, Kind

#: the typed expression of ``ts`` by the Parquet column's type, and the type its range is in
_TS_TYPES = {
    "TIMESTAMP": ("p.ts", "timestamp"),
    "TIMESTAMP_NS": ("p.ts::timestamp", "timestamp_ns"),
    "TIMESTAMP_MS": ("p.ts::timestamp", "timestamp_ms"),
    "TIMESTAMP_S": ("p.ts::timestamp", "timestamp_s"),
    "TIMESTAMP WITH TIME ZONE": ("timezone('UTC', p.ts)", "timestamptz"),
}
#: Parquet column types read as numbers without a detour through text
_NUMBER_TYPES = {
    "DOUBLE",
    "FLOAT",
    "DECIMAL",
    "BIGINT",
    "INTEGER",
    "SMALLINT",
    "TINYINT",
    "HUGEINT",
    "UBIGINT",
    "UINTEGER",
    "USMALLINT",
    "UTINYINT",
}
#: a folder name of a Hive partition: key=value
_HIVE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=[^/]*")


def hive_keys(paths: list[Path]) -> set[str]:
    """The Hive partition keys in the folder names of the files."""
    return {m.group(1) for p in paths for part in p.parent.parts if (m := _HIVE.fullmatch(part))}


def check_parquet(
    kind: Kind,
    paths: list[Path],
    *,
    flag: str = "--in-place",
    instead: str = "without --in-place",
    required: bool = True,
) -> None:
    """Refuse, naming the file, an input that ``flag`` cannot read (it reads Parquet only)."""
    if required and not paths:
        raise LoadError(f"{flag} needs the {kind.name} input as Parquet files; none given")
    endings = READERS["parquet"].endings
    bad = [p for p in paths if not p.name.lower().endswith(endings)]
    if bad:
        raise LoadError(
            f"{bad[0]}: {flag} reads Parquet only (files ending .parquet); load other "
            f"formats {instead}"
        )


def _source(var: str) -> str:
    """The files of the DuckDB variable ``var`` (a fixed name of ours), with their names."""
    return (
        f"read_parquet(getvariable('{var}'), hive_partitioning = true, "
        "union_by_name = true, filename = true)"
    )


def _columns(con: duckdb.DuckDBPyConnection, kind: Kind, var: str) -> dict[str, str]:
    query = f"select column_name, column_type from (describe select * from {_source(var)})"  # noqa: S608 - fixed names
    try:
        rows = con.execute(query).fetchall()
    except duckdb.Error as exc:
        raise LoadError(f"the {kind.name} Parquet files cannot be read ({exc})") from exc
    return {r[0]: r[1] for r in rows if r[0] != "filename"}


def _typed(kind: Kind, types: dict[str, str], extras: list[str]) -> tuple[list[str], str]:
    """Typed columns as a load stores them, and the condition of a usable row.

    A column already of the right type is read as it is (a cast per row is work while the
    range's rows are read). A ``statement`` is not trimmed (a statement of blanks only, which
    a load rejects, counts here).
    """
    cols = []
    for n in kind.fields:
        q = db.quote_identifier(n)
        kind_of = types.get(n)
        text = (
            "null::varchar"
            if kind_of is None
            else f"nullif(trim(p.{q}), '')"
            if kind_of == "VARCHAR"
            else f"nullif(trim(cast(p.{q} as varchar)), '')"
        )
        if n == "ts":
            cols.append(
                f"{_TS_TYPES[kind_of][0]} as ts"
                if kind_of in _TS_TYPES
                else f"{ts_expr(text, utc=True)} as ts"
            )
        elif n in kind.numeric:
            target = "bigint" if n == "rows" else "double"
            if kind_of in _NUMBER_TYPES:
                cols.append(f"p.{q}::{target} as {q}")
            else:
                cols.append(f"try_cast(try_cast({text} as double) as {target}) as {q}")
        elif n == "outcome":
            cols.append(f"lower({text}) as {q}")
        elif n == "statement" and kind_of == "VARCHAR":
            cols.append(f"p.{q} as {q}")
        elif n == "fingerprint":
            # the statement's key when the file has no fingerprint: _fingerprint_keys turns
            # the keys into fingerprints once the rows are read; a file's own is kept
            key = "null" if "statement" not in types else fingerprint.key_sql("trim(p.statement)")
            cols.append(f"{text} as fp_given")
            cols.append(
                f"({text} is null and p.statement is not null) as fp_is_key"
                if "statement" in types
                else "false as fp_is_key"
            )
            cols.append(f"coalesce({text}, {key}) as {q}")
        else:
            cols.append(f"{text} as {q}")
    cols += [
        f"cast(p.{db.quote_identifier(n)} as varchar) as {db.quote_identifier(n)}" for n in extras
    ]
    usable = ["ts is not null"]
    usable += [f"{db.quote_identifier(n)} is not null" for n in kind.required if n != "ts"]
    usable += [f"coalesce({db.quote_identifier(n)} >= 0, true)" for n in kind.numeric]
    if kind is AUTH:
        usable.append("outcome in ('success', 'failure')")
    if kind is QUERIES:
        usable.append("(statement is not null or fp_given is not null)")
    return cols, " and ".join(usable)


def _fingerprint_keys(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """The fingerprints of the statement keys in ``table``; the select list of its rows.

    The table holds :data:`analysis.fingerprint.KEY_MACRO`'s key of each statement that came
    without a fingerprint (``fp_is_key``): the fingerprint's chain of regular expressions then
    runs once per key (15 for the sample's 2.5M statements), not once per row, into a table of
    keys that the view joins. The session table is not updated: an ``update`` of every row is
    held in memory whole and ran out of DuckDB's limit (6M rows in 300MB, as 60M rows in
    3GB), and writing the table again doubled it while both existed.
    """
    con.execute(
        f"create or replace temp table _ip_fp as select k, fingerprint(k) as fp from "  # noqa: S608 - fixed names
        f"(select distinct fingerprint as k from {table} where fp_is_key)"
    )
    return (
        "t.* replace (case when t.fp_is_key then f.fp else t.fingerprint end as fingerprint) "
        f"from {table} t left join _ip_fp f on t.fp_is_key and t.fingerprint = f.k"
    )


#: the database of the session's tables: a file of its own in a temporary folder
SESSION = "pm_in_place"


#: DuckDB's units of a memory setting, as ``current_setting('memory_limit')`` gives them
_UNITS = {"bytes": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "PiB": 2**50}


def _limit_bytes(con: duckdb.DuckDBPyConnection) -> float:
    number, unit = db.one(con, "select current_setting('memory_limit')")[0].split()
    return float(number) * _UNITS[unit]


def _spills(con: duckdb.DuckDBPyConnection, paths: list[Path]) -> bool:
    """Whether the files' rows, as their footers size them uncompressed, exceed half the
    memory limit: temporary tables of them would spill to disk."""
    if not paths:
        return False
    size = db.one(
        con,
        "select coalesce(sum(total_uncompressed_size), 0) from parquet_metadata(?)",
        [[str(p) for p in paths]],
    )[0]
    return size > _limit_bytes(con) / 2


def _attach_session(con: duckdb.DuckDBPyConnection) -> None:
    """Attach a new, empty database file for the range's rows, removed when Python exits."""
    (attached,) = db.one(
        con, "select count(*) from duckdb_databases() where database_name = ?", [SESSION]
    )
    if attached:
        con.execute(f"detach {SESSION}")
    folder = tempfile.mkdtemp(prefix="postmortem-in-place-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    con.execute(f"attach ? as {SESSION}", [str(Path(folder) / "rows.duckdb")])


def attach(
    con: duckdb.DuckDBPyConnection,
    files: dict[str, list[Path]],
    time_range: tuple[datetime, datetime],
) -> list[FileResult]:
    """Point ``v_auth`` and ``v_queries`` at the Parquet files; the rows read per file.

    Each file's result counts the rows in the range (read), the usable ones (loaded) and the
    others (rejected, not kept). Files with no row in the range are left out: nothing of them
    is read but their footer.
    """
    # both kinds in one file when they are large together (the auth events in memory beside
    # the queries in a file made a day of 60M rows peak at 3.3 GB instead of 3.1 GB)
    for kind in (AUTH, QUERIES):
        check_parquet(kind, files.get(kind.name, []))
    session = _spills(con, [p for kind in (AUTH, QUERIES) for p in files.get(kind.name, [])])
    if session:
        _attach_session(con)
    con.execute("set variable pm_range_start = ?", [time_range[0]])
    con.execute("set variable pm_range_end = ?", [time_range[1]])
    results: list[FileResult] = []
    for kind, view in ((AUTH, "v_auth"), (QUERIES, "v_queries")):
        paths = files.get(kind.name, [])
        usable = _range_view(con, kind, paths)
        table, rows = _session_table(con, kind, paths, usable, session=session)
        hidden = "file_index, fp_is_key, usable" if kind is QUERIES else "file_index, usable"
        con.execute(
            f"create or replace temp view {view} as select 0 as source_id, "  # noqa: S608
            f"null::bigint as line, * exclude ({hidden}) from (select {rows}) where usable"
        )
        results += _file_results(con, kind, paths, table, first=len(results))
    return results


def _range_view(con: duckdb.DuckDBPyConnection, kind: Kind, paths: list[Path]) -> str:
    """Return the condition of a usable row, after viewing the range's typed rows as ``_ip_*``."""
    var = f"pm_{kind.name}_files"
    con.execute(f"set variable {var} = ?", [[str(p) for p in paths]])  # noqa: S608 - fixed name
    types = _columns(con, kind, var)
    missing = [n for n in kind.required_columns if n not in types]
    if missing:
        raise LoadError(
            f"{paths[0]}: the Parquet files have no {', '.join(missing)} column "
            f"(columns: {', '.join(types)})"
        )
    partitions = hive_keys(paths)
    state: dict = {}
    extras = extras_from([n for n in types if n not in partitions], kind, state)
    ts_type = _TS_TYPES.get(types["ts"], (None, None))[1]
    in_range = (
        f"p.ts >= getvariable('pm_range_start')::{ts_type} "
        f"and p.ts < getvariable('pm_range_end')::{ts_type}"
        if ts_type
        else "true"
    )
    source = _source(var)
    cols, usable = _typed(kind, types, extras)
    con.execute(
        f"create or replace temp view _ip_{kind.name} as "  # noqa: S608 - fixed names, checked columns
        f"select * from (select p.file_index, {', '.join(cols)} from {source} p "
        f"where {in_range}) where ts >= getvariable('pm_range_start') "
        f"and ts < getvariable('pm_range_end')"
    )
    return usable


def _session_table(
    con: duckdb.DuckDBPyConnection, kind: Kind, paths: list[Path], usable: str, *, session: bool
) -> tuple[str, str]:
    """Return the table of the range's rows and the select list a view reads them with."""
    # the range's rows are read, typed and fingerprinted once, into a table of this
    # session: a view over the files was read again by every figure (13 s of analysis
    # instead of 2.3 s on loaded tables, for 6M rows)
    # a given fingerprint counts in usable only (the fingerprint column holds it too)
    dropped = " exclude (fp_given)" if kind is QUERIES else ""
    limit = db.one(con, "select current_setting('memory_limit')")[0]
    # a temporary table while the rows fit in memory; past that, a table of a database
    # file of the session's: compressed and written as it is made, where a temporary
    # table spills uncompressed and is read back by every figure (a day of 60M rows in
    # place: 129.5 s instead of 174 s, figures 28.5 s instead of 75 s; 6M rows fit, and
    # take 14-19 s in memory against 22 s through a file)
    table, create = f"_ipt_{kind.name}", "create or replace temp table"
    if session:
        table, create = f"{SESSION}._ipt_{kind.name}", "create or replace table"
    try:
        con.execute(
            f"{create} {table} as "  # noqa: S608 - fixed names
            f"select *{dropped}, {usable} as usable from _ip_{kind.name}"
        )
        rows = f"t.* from {table} t"
        if kind is QUERIES:
            rows = _fingerprint_keys(con, table)
    except duckdb.OutOfMemoryException as exc:
        # the table spills to disk past the limit, but DuckDB's readers and writers need
        # some memory of their own (6M rows need about 100MB; 60M rows fit in 3GB)
        raise LoadError(
            f"{paths[0]}{' and the other files' if len(paths) > 1 else ''}: the range's "
            f"{kind.name} rows do not fit DuckDB's memory limit ({limit}) in place: give "
            "a larger --memory-limit, a shorter range (--range-start/--range-end), or "
            "load the files instead of --in-place"
        ) from exc
    return table, rows


def _file_results(
    con: duckdb.DuckDBPyConnection, kind: Kind, paths: list[Path], table: str, *, first: int
) -> list[FileResult]:
    """Return each file's rows read and usable, by name: a load would report them so."""
    # a file's index, not its name, in each row (a name per row was 15% of the table):
    # the name is its place in the list of files
    per_file = con.execute(
        "select file_index, count(*), count(*) filter (where usable) "  # noqa: S608
        f"from {table} group by file_index"
    ).fetchall()
    named = sorted((str(paths[index]), read, ok) for index, read, ok in per_file)
    results = []
    for path, read, usable_rows in named:
        # a source id of its own (negative: never one of the database's) per file
        sid = -(first + len(results) + 1)
        fr = FileResult(kind.name, path, "parquet (in place)", "", sid, read, usable_rows)
        fr.rows_rejected = read - usable_rows
        results.append(fr)
    return results
