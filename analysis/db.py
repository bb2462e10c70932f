"""The incident database: connection settings and the schema users query from notebooks."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from analysis import fingerprint
from analysis.config import SQL_DIR
from analysis.errors import SchemaError

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
    rows_skipped bigint not null default 0,  -- records that are not attempts or queries
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

#: zone abbreviations as real logs write them, with the fixed offset each one means. DuckDB
#: reads a few of them itself, some wrongly for a log (CET as Europe's zone with its summer
#: time, BST as Bangladesh, IST as India); an abbreviation means one offset, so it is replaced
#: by that offset first. Ambiguous ones (IST: India, Ireland or Israel) are left out.
ZONE_OFFSETS = {
    "UTC": "+00:00", "GMT": "+00:00", "UT": "+00:00", "WET": "+00:00", "WEST": "+01:00",
    "BST": "+01:00", "CET": "+01:00", "CEST": "+02:00", "MET": "+01:00", "MEST": "+02:00",
    "EET": "+02:00", "EEST": "+03:00", "MSK": "+03:00", "PST": "-08:00", "PDT": "-07:00",
    "MST": "-07:00", "MDT": "-06:00", "CST": "-06:00", "CDT": "-05:00", "EST": "-05:00",
    "EDT": "-04:00", "AKST": "-09:00", "AKDT": "-08:00", "HST": "-10:00", "JST": "+09:00",
    "KST": "+09:00", "HKT": "+08:00", "SGT": "+08:00", "AWST": "+08:00", "ACST": "+09:30",
    "ACDT": "+10:30", "AEST": "+10:00", "AEDT": "+11:00", "NZST": "+12:00", "NZDT": "+13:00",
}  # fmt: skip

#: text with a zone abbreviation at its end, the abbreviation replaced by its offset
ZONE_MACRO = (
    "create or replace temp macro zone_abbr_fixed(v) as case "
    + " ".join(
        f"when ends_with(v, ' {abbr}') then left(v, -{len(abbr) + 1}) || '{off}'"
        for abbr, off in ZONE_OFFSETS.items()
    )
    + " else v end"
)

#: ``nullif(trim(s), '')``, calling trim only where it could strip something: trim strips
#: the space and the Unicode spaces (Zs), so an ASCII-only text that starts with a printable
#: character and does not end in a space is already trimmed. trim copies every string and
#: costs as much as reading the column; ``s[-1:]`` costs as much again (issue 16)
TIDY_MACRO = (
    "create or replace temp macro tidy_text(s) as case when s = '' then null "
    "when ascii(s) between 33 and 126 and not ends_with(s, ' ') and strlen(s) = length(s) "
    "then s else nullif(trim(s), '') end"
)

#: DuckDB's share of a process that should stay within 3 GiB: the report's kernel holds
#: pandas, matplotlib and the figures beside it (a day of 60M rows loaded and reported
#: peaked at 3,096 MiB with 3GB, 3,019 MiB with this; a 2 GB file on the fast path 1.9 GB)
DEFAULT_MEMORY_LIMIT = "2.75GB"
#: `postmortem report --memory-limit/--threads` reach the notebook's kernel through these
MEMORY_ENV = "POSTMORTEM_MEMORY_LIMIT"
THREADS_ENV = "POSTMORTEM_THREADS"

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def no_progress_bar(con: duckdb.DuckDBPyConnection) -> None:
    """Turn DuckDB's own progress bar off: progress is ours to report (stderr, once a
    second); DuckDB's bar would land in notebooks and in the middle of the command's output."""
    try:
        con.execute("set enable_progress_bar = false")
    except duckdb.InvalidInputException:
        pass  # inside a Jupyter kernel DuckDB refuses the setting (and shows no bar there)


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
    no_progress_bar(con)
    fingerprint.install(con)
    con.execute(CSV_UNQUOTE_MACRO)
    con.execute(ZONE_MACRO)
    con.execute(TIDY_MACRO)
    if not read_only:
        con.execute(SCHEMA)
        if "options" not in columns_of(con, "sources"):
            con.close()
            raise SchemaError(
                f"{database}: was made by an older version of postmortem-lab (its sources "
                "table has no options column); move it aside or name another --database, "
                "and the inputs are loaded again"
            )
        # made by the version before attempts without a user and skipped records
        if "rows_skipped" not in columns_of(con, "sources"):
            con.execute("alter table sources add column rows_skipped bigint default 0")
            con.execute("alter table auth_events alter column user_id drop not null")
    return con


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


# --- the SQL files of analysis/sql ---


@cache
def sql(name: str) -> str:
    """The text of ``analysis/sql/<name>.sql``."""
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")


def run(con: duckdb.DuckDBPyConnection, name: str, values: dict[str, object]):
    """Execute ``sql/<name>.sql`` with the values it names (DuckDB refuses extra ones)."""
    text = sql(name)
    wanted = set(re.findall(r"\$([A-Za-z_]\w*)", text))
    return con.execute(text, {k: v for k, v in values.items() if k in wanted})


#: how long a report or load waits for a database another process holds, in seconds
LOCK_WAIT_S = 600


def connect_waiting(
    database: Path,
    *,
    say: Callable[[str], None] = print,
    wait_s: float = LOCK_WAIT_S,
    **options: Any,
) -> duckdb.DuckDBPyConnection:
    """Open the database for writing; while another process holds it, wait and say so."""
    deadline = time.monotonic() + wait_s
    told = False
    while True:
        try:
            return connect(database, **options)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            if not told:
                say(f"waiting: {database.name} is in use by another postmortem process")
                told = True
            time.sleep(0.5)
