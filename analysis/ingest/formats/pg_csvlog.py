"""PostgreSQL ``csvlog``: one CSV record per log entry, quoted fields spanning lines.

A record starts on a line where the quotes before it are balanced (an even number since
the start of the chunk's first record) and that begins with a timestamp; its lines are
joined and split into fields in SQL, like the project's CSV reader. The columns are those
of the PostgreSQL documentation: 23 up to PostgreSQL 12, ``backend_type`` added in 13,
``leader_pid`` and ``query_id`` in 14 (26).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from analysis import db, kinds
from analysis.ingest.formats import common, pg_common

#: csvlog columns by position (1-based), as documented for PostgreSQL 14+
COLUMNS = {
    "log_time": 1,
    "user_name": 2,
    "database_name": 3,
    "process_id": 4,
    "connection_from": 5,
    "session_id": 6,
    "error_severity": 12,
    "message": 14,
    "application_name": 23,
    "query_id": 26,
}

_QUOTES = """length(txt) - length(replace(txt, '"', ''))"""

_MARKED = rf"""
    select line, txt,
           coalesce(sum({_QUOTES}) over (order by line rows between unbounded preceding
                                                                and 1 preceding), 0) % 2 = 0
           and regexp_matches(txt, '^"?\d{{4}}-\d\d-\d\d ') as is_start
    from _fmt_src
"""  # noqa: S608 - fixed SQL


def load_csvlog(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    res: kinds.FileResult,
    *,
    tz: str,
    progress: kinds.Progress | None,
    counts: common.Counts,
) -> None:
    """Load a csvlog file chunk by chunk."""
    col = {k: f"nullif(csv_unquote(f[{i}]), '')" for k, i in COLUMNS.items()}
    for chunk, last in common.chunks(path):
        counts.lines += common.load_chunk(con, chunk)
        common.group_chunk(con, _MARKED, {}, last=last, counts=counts)
        sql = f"""
            with entries as (
                select rec as line, string_agg(txt, chr(10) order by line) as txt
                from _fmt_lines group by rec
            ), split as (
                select line, txt, regexp_extract_all(',' || txt, $field, 1) as f
                from entries
            ), final as (
                select line, txt as raw,
                       case when array_to_string(f, ',') <> txt then 'malformed CSV quoting'
                            when len(f) not between 23 and 26 then
                                'wrong column count: expected 23 to 26, got ' || len(f)
                       end as pre_reason,
                       {col["log_time"]} as ts,
                       {col["error_severity"]} as severity,
                       {col["message"]} as msg,
                       {col["user_name"]} as db_user,
                       {col["database_name"]} as database,
                       nullif(regexp_replace({col["connection_from"]}, ':\\d+$', ''), '')
                           as client_ip,
                       {col["application_name"]} as application,
                       {col["process_id"]} as pid,
                       {col["session_id"]} as session_id,
                       {col["query_id"]} as query_id,
                       null::varchar as db_host
                from split
            )
            select * from final
        """  # noqa: S608 - fixed column positions
        pg_common.finish_chunk(
            con,
            res,
            (sql, {"field": db.CSV_FIELD}),
            tz=tz,
            extras=list(pg_common.EXTRAS),
            counts=counts,
        )
        if progress:
            progress(
                f"{path.name}: {chunk.bytes_done / 1e6:,.0f} MB read, {res.rows_read:,} queries"
            )
