"""The incident database: connection settings and the schema users query from notebooks."""

from __future__ import annotations

import os
import re
from pathlib import Path

import duckdb
import pyarrow as pa

from analysis import fingerprint

SCHEMA = """
create table if not exists sources (
    source_id integer primary key,
    kind varchar not null,          -- auth, queries, timeline, server_events
    path varchar not null,          -- as given on the command line
    format varchar not null,
    sha256 varchar not null,
    options varchar not null,       -- how it was read (format, time zone, …), as JSON
    rows_read bigint not null,
    rows_loaded bigint not null,
    rows_rejected bigint not null,
    rows_skipped bigint not null default 0,   -- records that are not attempts or queries
    unique (kind, sha256, options)
);
create table if not exists auth_events (
    source_id integer not null,
    line bigint not null,
    ts timestamp not null,          -- UTC
    user_id varchar,                -- null: the source does not know the user
    outcome varchar not null,       -- success | failure
    request_id varchar,
    error_code varchar,
    latency_ms double,
    auth_path varchar
);
create table if not exists db_queries (
    source_id integer not null,
    line bigint not null,
    ts timestamp not null,          -- UTC
    duration_ms double not null,
    statement varchar,
    fingerprint varchar not null,
    request_id varchar,
    caller varchar,
    db_host varchar,
    "rows" bigint,
    error varchar
);
create table if not exists timeline (
    source_id integer not null,
    line bigint not null,
    ts timestamp not null,          -- UTC
    kind varchar not null,
    text varchar
);
create table if not exists file_hashes (
    -- a file's SHA-256 as of its last change: any write changes ctime, which no tool sets back
    path varchar not null,          -- absolute
    size bigint not null,
    mtime_ns bigint not null,
    ctime_ns bigint not null,
    inode bigint not null,
    sha256 varchar not null
);
create table if not exists rejects (
    source_id integer not null,
    source_file varchar not null,
    line bigint not null,
    raw varchar,
    reason varchar not null
);
"""

#: one CSV field of a line, as ``regexp_extract_all(',' || line, CSV_FIELD, 1)`` splits it
CSV_FIELD = r',("(?:[^"]|"")*"|[^,]*)'
#: a split CSV field without its quotes ("" inside a quoted field is one quote)
CSV_UNQUOTE_MACRO = (
    "create or replace temp macro csv_unquote(f) as "
    "case when len(f) >= 2 and f[1] = '\"' and f[-1] = '\"' "
    "then replace(f[2:-2], '\"\"', '\"') else f end"
)

DEFAULT_MEMORY_LIMIT = "3GB"
#: `postmortem report --memory-limit/--threads` reach the notebook's kernel through these
MEMORY_ENV = "POSTMORTEM_MEMORY_LIMIT"
THREADS_ENV = "POSTMORTEM_THREADS"

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def connect(
    database: str | Path,
    *,
    read_only: bool = False,
    memory_limit: str | None = None,
    threads: int | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open the incident database with the settings every part of the project relies on.

    Times are stored as UTC ``timestamp``; the session time zone is UTC so that casts of
    zoned values never depend on the machine's zone.
    """
    # a bounded memory makes DuckDB spill a large load to disk instead of holding all of an
    # uncommitted transaction in memory (21.7 GB peak RSS for 13.6M rows without a limit,
    # 6.6 GB with 3GB); insertion order is never relied on (every query orders explicitly)
    config: dict[str, str | int | bool] = {
        "memory_limit": memory_limit or os.environ.get(MEMORY_ENV) or DEFAULT_MEMORY_LIMIT,
        "preserve_insertion_order": False,
    }
    threads = threads or os.environ.get(THREADS_ENV)
    if threads:
        config["threads"] = int(threads)
    con = duckdb.connect(str(database), read_only=read_only, config=config)
    con.execute("set TimeZone = 'UTC'")
    # progress is ours to report (stderr, once a second); DuckDB's own bar would land in
    # notebooks and in the middle of the command's output
    try:
        con.execute("set enable_progress_bar = false")
    except duckdb.InvalidInputException:
        pass  # inside a Jupyter kernel DuckDB refuses the setting (and shows no bar there)
    fingerprint.install(con)
    con.execute(CSV_UNQUOTE_MACRO)
    if not read_only:
        con.execute(SCHEMA)
        # databases made before rows_skipped was counted
        con.execute("alter table sources add column if not exists rows_skipped bigint default 0")
        if "options" not in columns_of(con, "sources"):
            con.close()
            raise SchemaError(
                f"{database}: was made by an older version of postmortem-lab (its sources "
                "table has no options column); move it aside or name another --database, "
                "and the inputs are loaded again"
            )
    return con


class SchemaError(Exception):
    """The database file was made by an older version, with another schema."""


def quote_identifier(name: str) -> str:
    """Quote a column name that came from data, after checking it is a plain identifier.

    Raises
    ------
    ValueError
        when ``name`` is not a plain identifier (letters, digits, underscore).
    """
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"not a plain column name: {name!r}")
    return '"' + name + '"'


def is_identifier(name: str) -> bool:
    """True when ``name`` can be a column of ours (see :func:`quote_identifier`)."""
    return bool(_IDENTIFIER.fullmatch(name))


def columns_of(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """Column names of a table, in order."""
    rows = con.execute(
        "select column_name from information_schema.columns "
        "where table_name = ? order by ordinal_position",
        [table],
    ).fetchall()
    return [r[0] for r in rows]


#: rows per Arrow batch of a scratch relation: DuckDB scans batches in parallel
SCRATCH_BATCH_ROWS = 122_880


def batched(table: pa.Table) -> pa.Table:
    """``table`` cut (without copying) into batches that DuckDB scans in parallel."""
    return pa.Table.from_batches(table.to_batches(max_chunksize=SCRATCH_BATCH_ROWS), table.schema)


def scratch_sql(
    con: duckdb.DuckDBPyConnection,
    query: str,
    params: object = None,
    *,
    _chunk: pa.Table | None = None,
    _checked: pa.Table | None = None,
) -> duckdb.DuckDBPyRelation:
    """Run ``query``, in which ``_chunk`` and ``_checked`` name the Arrow tables given.

    A load works chunk by chunk inside one transaction, and whatever it puts in the catalog
    for a chunk lives until the commit: a temp table replaced for every chunk, or an Arrow
    table registered under the same name, kept every old chunk alive (2.9 GB, then 7 GB of
    peak RSS for 13.6M rows). DuckDB's replacement scan finds these two names among the
    locals of this frame instead, so nothing enters the catalog and each chunk is freed
    when the next one replaces it.
    """
    return con.sql(query, params=params)


def one(con: duckdb.DuckDBPyConnection, query: str, params: object = None) -> tuple | None:
    """The first row of a query, or None; the result is read to the end.

    DuckDB 2.0 keeps a result open until it is read to the end, and an open result blocks
    ``register`` and friends on the same connection: ``fetchone()`` alone would leave it open.
    """
    rows = con.execute(query, params if params is not None else []).fetchall()
    return rows[0] if rows else None
