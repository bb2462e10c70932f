"""What every server-log format shares: chunks of decoded lines grouped into records.

A server log is read with :func:`analysis.ingest.lines.iter_chunks`. Each chunk becomes the
temp table ``_fmt_src(line, txt)`` (decoded text), a format marks which lines start a
record, and :func:`group_chunk` gives every line the number of the line that starts its
record (``rec``) in ``_fmt_lines``. The lines after the last record start of a chunk
may continue in the next chunk: they stay in ``_fmt_carry`` and are read again, in front
of the next chunk. Everything runs in DuckDB; Python only loops over chunks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from analysis import db
from analysis.ingest import lines

#: temp tables of this package, dropped when a file is done
TEMP_TABLES = (
    "_chunk",
    "_fmt_src",
    "_fmt_lines",
    "_fmt_carry",
    "_fmt_rec",
    "_fmt_cls",
    "_fmt_paired",
    "_fmt_stage",
    "_fmt_last_stmt",
    "_fmt_entries",
    "_fmt_sample",
)

SERVER_EVENTS = """
create table if not exists server_events (
    source_id integer not null,
    line bigint not null,
    ts timestamp,                   -- UTC; null when the line has no readable time
    severity varchar,               -- LOG, ERROR, FATAL, DETAIL, STATEMENT...
    message varchar,
    "user" varchar,
    database varchar,
    client varchar
)
"""

#: decoded text of a line: invalid UTF-8 keeps its bytes as \\xNN escapes, never fails
DECODE = "coalesce(try(decode(raw)), raw::varchar)"


@dataclass
class Counts:
    """What a format saw besides its records, for the notes of a file."""

    lines: int = 0
    orphans: int = 0
    other: dict[str, int] = field(default_factory=dict)

    def add(self, key: str, n: int) -> None:
        """Count ``n`` more lines or records of one kind."""
        if n:
            self.other[key] = self.other.get(key, 0) + n


def chunks(path: Path) -> Iterator[tuple[lines.Chunk, bool]]:
    """The chunks of a file, each with whether it is the last one.

    ``lines.CHUNK_BYTES`` is read at call time, so tests can shrink it.
    """
    it = lines.iter_chunks(path, chunk_bytes=lines.CHUNK_BYTES)
    current = next(it, None)
    while current is not None:
        following = next(it, None)
        yield current, following is None
        current = following


def load_chunk(con: duckdb.DuckDBPyConnection, chunk: lines.Chunk) -> int:
    """Put one chunk's decoded lines in ``_fmt_src``, after the carried lines.

    Returns the number of (non-empty) lines of the chunk itself.
    """
    con.register("_chunk_view", chunk.table)
    con.execute("create or replace temp table _chunk as select * from _chunk_view")
    con.unregister("_chunk_view")
    con.execute("create temp table if not exists _fmt_carry (line bigint, txt varchar)")
    # a UTF-8 byte order mark on the first line is not text
    con.execute(
        f"""
        create or replace temp table _fmt_src as
        select line, txt from _fmt_carry
        union all
        select line,
               case when line = 1 then ltrim({DECODE}, chr(65279)) else {DECODE} end as txt
        from _chunk
        """  # noqa: S608 - fixed expression
    )
    return chunk.table.num_rows


#: lines within which the parts of one syslog message arrive (they are sent together)
OPEN_WINDOW = 1000


def group_chunk(
    con: duckdb.DuckDBPyConnection,
    marked_sql: str,
    params: dict[str, object],
    *,
    last: bool,
    counts: Counts,
    partition: str | None = None,
    process: str | None = None,
) -> None:
    """Group the lines of ``_fmt_src`` into records in ``_fmt_lines(line, txt, rec, …)``.

    ``marked_sql`` selects from ``_fmt_src`` at least ``line, txt, is_start`` (it may drop
    lines, e.g. banners, and add columns). ``partition`` (a column of ``marked_sql``)
    groups interleaved records, e.g. the syslog parts of one message of one process.
    Lines before the first record start are counted as orphans. Unless ``last``, the
    records that may go on in the next chunk wait in ``_fmt_carry``: the last one, or
    with ``process`` (a column), each process's last record of the chunk's last
    ``OPEN_WINDOW`` lines.
    """
    if partition:
        rec = f"""
            select *, max(case when is_start then line end) over (
                       partition by {partition} order by line
                       rows between unbounded preceding and current row) as rec
            from marked"""  # noqa: S608 - a column name of this package
    else:
        # a start is its own record; only the other lines (a statement's next lines, few)
        # look for the start before them, by an as-of join: the window over every line
        # (sorting them all, text and all) took 0.5-0.65 s of 540k lines, this 0.1-0.2 s
        rec = """
            select m.*, case when m.is_start then m.line else o.rec end as rec
            from marked m left join (
                select c.line, s.line as rec
                from (select line from marked where is_start is not true) c
                asof left join (select line from marked where is_start) s on c.line >= s.line
            ) o on o.line = m.line"""
    con.execute(
        f"""
        create or replace temp table _fmt_lines as
        with marked as materialized (
            {marked_sql}
        )
        {rec}
        """,  # noqa: S608 - fixed SQL of this package
        params,
    )
    cut = None
    if not last and process:
        cut = db.one(
            con,
            f"""
            with recs as (
                select rec, any_value({process}) as proc, max(line) as last_line
                from _fmt_lines where rec is not null group by rec
            ), procs as (
                select {process} as proc, max(line) as last_line from _fmt_lines group by all
            )
            select min(r.rec) from recs r join procs p using (proc, last_line)
            where r.rec >= (select max(line) from _fmt_lines) - $window
            """,  # noqa: S608 - fixed column names of this package
            {"window": OPEN_WINDOW},
        )[0]
    elif not last:
        cut = db.one(con, "select max(line) from _fmt_lines where is_start")[0]
    if cut is None:
        con.execute("create or replace temp table _fmt_carry (line bigint, txt varchar)")
    else:
        con.execute(
            "create or replace temp table _fmt_carry as "
            "select line, txt from _fmt_lines where rec >= $cut",
            {"cut": cut},
        )
        con.execute("delete from _fmt_lines where rec >= $cut", {"cut": cut})
    counts.orphans += db.one(con, "select count(*) from _fmt_lines where rec is null")[0]
    con.execute("delete from _fmt_lines where rec is null")


def ensure_server_events(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ``server_events`` table of non-query server log lines if missing."""
    con.execute(SERVER_EVENTS)


def drop_temp(con: duckdb.DuckDBPyConnection) -> None:
    """Drop this package's temp tables (they live as long as the connection otherwise)."""
    for name in TEMP_TABLES:
        con.execute(f"drop table if exists {name}")  # noqa: S608 - fixed names


def other_note(
    counts: Counts, what: str, *, unit: str = "line", units: str = "lines"
) -> str | None:
    """One note for the lines or entries that were not records, by kind, largest first."""
    total = counts.orphans + sum(counts.other.values())
    if not total:
        return None
    parts = sorted(counts.other.items(), key=lambda kv: (-kv[1], kv[0]))
    if counts.orphans:
        parts.append(("before the first entry", counts.orphans))
    detail = ", ".join(f"{k}: {n:,}" for k, n in parts)
    return f"{total:,} other {unit if total == 1 else units} not {what} ({detail})"
