"""The MySQL (and Percona Server, MariaDB) slow query log.

An entry is a block of ``#`` header lines (``# Time:``, ``# User@Host:``,
``# Query_time: … Lock_time: … Rows_sent: … Rows_examined: …``, Percona's extra
``# QC_Hit:``… lines) followed by ``use db;``, ``SET timestamp=…;`` and the statement,
which may span lines. A ``#`` line after a non-``#`` line starts the next entry, except
``# administrator command:``, which is the statement of its entry. Server start-up
banners (``…mysqld, Version: … started with:``, ``Tcp port:…``, ``Time  Id Command
Argument``) are counted and skipped wherever they are.

The time is the entry's own ``# Time:`` when it is MySQL 5.7+'s ISO form
(``2019-03-24T14:01:47.811234Z``: microseconds and a zone; the query's end, where ``SET
timestamp`` is its start in whole seconds); else, as pt-query-digest does, ``SET timestamp``
(epoch seconds) when the entry has one, else the last ``# Time:`` seen (``081114 13:04:02``,
server local time, read in source_timezone). Durations and ``lock_time_ms`` are the
microseconds the log gives, as milliseconds rounded to 3 decimals (``0.09``, not
``0.09000000000000001``). The database is the last ``use`` or ``# Schema:`` seen. An entry
without ``# Query_time`` or without a statement (a log cut short) is kept as a rejected row,
where pt-query-digest drops it silently.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from analysis import db, errors, kinds
from analysis.ingest import lines, validate
from analysis.ingest.formats import common

_BANNER = (
    r"^(?:\S.*, Version: .* started with:"
    r"|Tcp port: \d+\s+Unix socket: .*"
    r"|Time\s+Id\s+Command\s+Argument)$"
)
# "use db;" and "SET timestamp=N;" (alone or with insert_id, last_insert_id…) are the
# slow log's own lines, not the statement
_META = r"(?i)^(?:use\s+\S+;|SET\s+(?:\w+=\w+,)*timestamp=\d+(?:,\w+=\w+)*;)$"
_ADMIN = "# administrator command:"

_MARKED = """
    with kept as (
        select line, txt from _fmt_src where not regexp_matches(txt, $banner)
    ), flagged as (
        select line, txt,
               starts_with(txt, '#') and not starts_with(txt, $admin) as is_hash
        from kept
    )
    select line, txt, is_hash,
           is_hash and not coalesce(lag(is_hash) over (order by line), false) as is_start
    from flagged
"""

_ENTRIES = r"""
    with parts as (
        select rec, line, txt, is_hash,
               not is_hash and regexp_matches(txt, $meta) as is_meta,
               nullif(regexp_extract(txt, '^# Time: (.*?)\s*(?:# User@Host:.*)?$', 1), '')
                   as time_text,
               nullif(regexp_extract(txt, '(?i)^use\s+`?([^`;\s]+)`?;$', 1), '') as use_db,
               nullif(regexp_extract(txt, '^# Schema: (\S+)', 1), '') as schema_db,
               nullif(regexp_extract(txt, '(?i)^SET\s+(?:\w+=\w+,)*timestamp=(\d+)', 1), '')
                   as epoch
        from _fmt_lines
    ), firsts as (
        select *, min(case when not is_hash and not is_meta then line end)
                      over (partition by rec) as first_stmt
        from parts
    ), entries as (
        select rec as line,
               string_agg(txt, chr(10) order by line) as raw,
               string_agg(txt, chr(10) order by line) filter (
                   where not is_hash and (not is_meta or line > first_stmt)) as stmt,
               string_agg(txt, chr(10) order by line) filter (
                   where is_meta and use_db is not null) as use_only,
               string_agg(txt, ' ' order by line) filter (where is_hash) as head,
               max(epoch) as epoch,
               arg_max(time_text, line) filter (where time_text is not null) as time_text,
               arg_max(coalesce(use_db, schema_db), line)
                   filter (where coalesce(use_db, schema_db) is not null) as db
        from firsts group by rec
    ), carried as (
        select *,
               coalesce(last_value(time_text ignore nulls) over w, $last_time) as time_seen,
               coalesce(last_value(db ignore nulls) over w, $last_db) as db_seen
        from entries
        window w as (order by line rows between unbounded preceding and current row)
    )
    select * from carried
"""

_RECORDS = r"""
    with f as (
        select *,
               regexp_extract(head,
                   'Query_time: ([0-9.]+)\s+Lock_time: ([0-9.]+)\s+Rows_sent: (\d+)'
                   || '\s+Rows_examined: (\d+)',
                   ['query_time', 'lock_time', 'rows_sent', 'rows_examined']) as q,
               regexp_extract(head,
                   'User@Host: ([^\[\s]*)\[([^\]]*)\] @ (\S*) \[([^\]]*)\](?:\s+Id:\s+(\d+))?',
                   ['user', 'user2', 'host', 'ip', 'id']) as u,
               nullif(regexp_extract(head, '# Thread_id: (\d+)', 1), '') as thread,
               regexp_extract(time_seen,
                   '^(\d\d)(\d\d)(\d\d)\s+(\d{1,2}):(\d\d):(\d\d)$',
                   ['y', 'mo', 'd', 'h', 'mi', 's']) as t
        from _fmt_entries
    )
    select line, left(raw, $keep) as raw, null::varchar as pre_reason,
           case when regexp_matches(time_text, '^\d{4}-\d\d-\d\dT') then time_text
                else coalesce(epoch, case when t.y <> '' then printf('20%s-%s-%s %02d:%s:%s',
                        t.y, t.mo, t.d, t.h::integer, t.mi, t.s) else time_seen end)
           end as f_ts,
           case when q.query_time <> '' then round(q.query_time::double * 1000, 3)::varchar
           end as f_duration_ms,
           coalesce(stmt, use_only) as f_statement,
           null::varchar as f_fingerprint,
           null::varchar as f_request_id,
           null::varchar as f_caller,
           null::varchar as f_db_host,
           nullif(q.rows_sent, '') as f_rows,
           null::varchar as f_error,
           nullif(coalesce(nullif(u.user, ''), u.user2), '') as f_db_user,
           nullif(coalesce(nullif(u.ip, ''), u.host), '') as f_client_ip,
           db_seen as f_database,
           coalesce(nullif(u.id, ''), thread) as f_thread_id,
           case when q.lock_time <> '' then round(q.lock_time::double * 1000, 3)::varchar
           end as f_lock_time_ms,
           nullif(q.rows_examined, '') as f_rows_examined
    from f
"""

EXTRAS = ["db_user", "client_ip", "database", "thread_id", "lock_time_ms", "rows_examined"]


def load_slow_log(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    res: kinds.FileResult,
    *,
    tz: str,
    progress: kinds.Progress | None,
) -> None:
    """Load a slow query log: one ``db_queries`` row per entry."""
    lines.refuse_binary(path, "a MySQL slow query log")
    counts = common.Counts()
    last_time: str | None = None
    last_db: str | None = None
    headers = 0
    for chunk, last in common.chunks(path):
        n = common.load_chunk(con, chunk)
        counts.lines += n
        # carried lines are never banners: those were dropped when first seen
        banners = db.one(
            con, "select count(*) from _fmt_src where regexp_matches(txt, $b)", {"b": _BANNER}
        )[0]
        counts.add("server start-up banners", banners)
        common.group_chunk(
            con,
            _MARKED,
            {"banner": _BANNER, "admin": _ADMIN},
            last=last,
            counts=counts,
        )
        con.execute(
            f"create or replace temp table _fmt_entries as {_ENTRIES}",  # noqa: S608
            {"meta": _META, "last_time": last_time, "last_db": last_db},
        )
        headers += db.one(
            con,
            "select count(*) from _fmt_entries where regexp_matches(head, $h)",
            {"h": r"# (?:Time|User@Host|Query_time):"},
        )[0]
        row = db.one(
            con, "select arg_max(time_seen, line), arg_max(db_seen, line) from _fmt_entries"
        )
        if row and row[0] is not None:
            last_time = row[0]
        if row and row[1] is not None:
            last_db = row[1]
        rec = kinds.Records(_RECORDS, {"keep": kinds.RAW_KEEP_CHARS}, list(EXTRAS))
        validate.store(con, kinds.QUERIES, res, rec, tz)
        if progress:
            progress(
                f"{path.name}: {chunk.bytes_done / 1e6:,.0f} MB read, {res.rows_read:,} queries"
            )
    con.execute("drop table if exists _fmt_entries")
    res.rows_rejected = res.rows_read - res.rows_loaded
    if counts.lines and not headers:
        first = lines.first_lines(path, limit=1)
        shown = first[0][:160] if first else ""
        raise errors.UnreadableFile(
            f"{path}: no '# Time:', '# User@Host:' or '# Query_time:' line: "
            "not a MySQL slow query log "
            f"(first line: {shown!r})"
        )
    note = common.other_note(counts, "query entries")
    if note:
        res.notes.append(note)


def sniff(sample: list[str]) -> str | None:
    """Why the first lines look like a MySQL slow log, or None."""
    marks = ("# Time:", "# Query_time:", "# User@Host:")
    hits = [s for s in sample if s.startswith(marks)]
    if any(s.startswith("# Query_time:") for s in hits):
        return f"{len(hits)} '# Time:' / '# User@Host:' / '# Query_time:' header lines"
    return None
