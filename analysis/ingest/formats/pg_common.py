"""What every PostgreSQL log layout shares once its entries are in ``_fmt_rec``.

Each layout (stderr, syslog, csvlog, jsonlog) turns a chunk into ``_fmt_rec`` with one row
per log entry: ``line, raw, ts, severity, msg`` and the prefix fields (``db_user,
database, client_ip, application, pid, session_id, query_id, db_host``; null when the log
does not say). :func:`finish_chunk` then splits the entries, as pgbadger counts them:

- ``LOG:  duration: X ms  statement: …`` or ``execute <name>: …`` is a query;
- ``LOG:  duration: X ms`` alone (``log_duration``) is a query whose statement is the last
  ``LOG:  statement: …`` / ``execute …:`` (``log_statement``) of the same process;
- ``duration: X ms  parse …`` and ``bind …`` are steps of an execution whose ``execute``
  line is the query: pgbadger counts them apart, not as queries, and so do we;
- ``LOG:  statement: …`` alone (``log_statement`` without a duration to pair with) is not a
  timed query: it is kept in ``server_events`` and counted apart (pgbadger counts it as a
  query without a duration);
- every other entry (connections, errors, ``FATAL:  password authentication failed``,
  checkpoints, ``DETAIL``/``STATEMENT`` lines) goes to ``server_events``.
"""

from __future__ import annotations

import duckdb

from analysis import db, kinds
from analysis.ingest import validate
from analysis.ingest.formats import common

#: the fingerprint of an empty statement (``duration: 0.1 ms  statement: ``)
EMPTY_STATEMENT = "(empty statement)"
#: the note's name for ``statement:`` entries of log_statement: not timed, so not queries
#: (pgbadger counts them as queries without a duration)
STATEMENTS = "'statement:' entries of log_statement, without a duration"

#: extra text columns a PostgreSQL query row may carry, besides the kind's fields
EXTRAS = ("db_user", "database", "client_ip", "pid", "session_id", "query_id")

#: the columns every layout gives ``_fmt_rec`` (null when the log does not say);
#: ``pre_reason`` marks an entry that cannot be read (it is kept as a rejected query)
REC_COLUMNS = (
    "line",
    "raw",
    "pre_reason",
    "ts",
    "severity",
    "msg",
    "db_user",
    "database",
    "client_ip",
    "application",
    "pid",
    "session_id",
    "query_id",
    "db_host",
)

# Group 1 is the whole head: the statement is what follows it (a group of its own would
# make RE2 scan every statement for submatches).
_DURATION = (
    r"^(duration: ([0-9]+(?:\.[0-9]*)?) ms(?: {1,2}(statement|execute|parse|bind)[^:\n]*: )?)"
)
_STATEMENT_ONLY = r"^(?:statement|execute[^:\n]*): ((?s:.*))$"

# Zone abbreviations as PostgreSQL prints them (its "Default" abbreviation set, where CST
# is US Central). DuckDB reads UTC, GMT, numeric offsets and full zone names itself.
ZONES = {
    "UTC": "+00:00",
    "GMT": "+00:00",
    "WET": "+00:00",
    "WEST": "+01:00",
    "BST": "+01:00",
    "CET": "+01:00",
    "CEST": "+02:00",
    "MET": "+01:00",
    "MEST": "+02:00",
    "EET": "+02:00",
    "EEST": "+03:00",
    "MSK": "+03:00",
    "SAST": "+02:00",
    "EST": "-05:00",
    "EDT": "-04:00",
    "CST": "-06:00",
    "CDT": "-05:00",
    "MST": "-07:00",
    "MDT": "-06:00",
    "PST": "-08:00",
    "PDT": "-07:00",
    "AKST": "-09:00",
    "AKDT": "-08:00",
    "HST": "-10:00",
    "AST": "-04:00",
    "ADT": "-03:00",
    "NST": "-03:30",
    "NDT": "-02:30",
    "JST": "+09:00",
    "KST": "+09:00",
    "HKT": "+08:00",
    "SGT": "+08:00",
    "AWST": "+08:00",
    "ACST": "+09:30",
    "ACDT": "+10:30",
    "AEST": "+10:00",
    "AEDT": "+11:00",
    "NZST": "+12:00",
    "NZDT": "+13:00",
}


def zone_params() -> dict[str, object]:
    """The bound values :func:`time_sql` needs."""
    return {"pg_zone_names": list(ZONES), "pg_zone_offsets": list(ZONES.values())}


def time_sql(col: str, parts: str) -> str:
    """SQL turning PostgreSQL's ``2024-01-19 10:30:00.123 CEST`` into text with an offset.

    ``parts`` is ``string_split(col, ' ')``, computed once by the caller. A numeric zone
    (``+03``, ``-0330``) is joined to the time (a space before it fails the cast), with
    minutes added when it has none; a known abbreviation becomes its offset; anything else
    is left for the cast (UTC, GMT, zone names, epoch seconds of ``%n``).
    """
    zone = f"{parts}[3]"
    return f"""
        case when len({parts}) <> 3 then {col}
             when {zone}[1] in ('+', '-') then {parts}[1] || ' ' || {parts}[2] || {zone}
                  || case when length({zone}) = 3 then ':00' else '' end
             else coalesce({parts}[1] || ' ' || {parts}[2] || $pg_zone_offsets[
                               list_position($pg_zone_names, upper({zone}))], {col})
        end"""


def _classify(con: duckdb.DuckDBPyConnection, rec: tuple[str, dict[str, object]]) -> None:
    """Nothing; makes ``_fmt_cls``: each entry of ``rec`` with ``what`` it is (query,
    statement, parse/bind, duration-only or other), its statement and duration, for the
    steps after it to store."""
    rec_sql, rec_params = rec
    con.execute(
        f"""
        create or replace temp table _fmt_cls as
        with _fmt_rec as (
            {rec_sql}
        ), parsed as (
            select r.* replace (string_split(r.ts, ' ') as ts),
                   r.ts as ts_given,
                   case when starts_with(msg, 'duration: ')
                        then regexp_extract(msg, $duration, ['head', 'dur', 'verb'])
                        else {{'head': '', 'dur': '', 'verb': ''}} end as d,
                   case when severity = 'LOG' and not starts_with(msg, 'duration: ')
                        then nullif(regexp_extract(msg, $stmt_only, 1), '') end as stmt_only
            from _fmt_rec r
        ), classed as (
            select *,
                   case when pre_reason is not null then 'query'
                        when stmt_only is not null then 'statement'
                        when severity <> 'LOG' or d.dur = '' then 'other'
                        when d.verb in ('statement', 'execute') then 'query'
                        when d.verb in ('parse', 'bind') then 'parse/bind'
                        when length(msg) = length(d.head) then 'duration-only'
                        else 'other'
                   end as what,
                   case when d.verb <> '' then msg[length(d.head) + 1:] end as statement
            from parsed
        ), final as (
            -- a query keeps its statement, not its message too: less to write
            select * exclude (ts_given, d)
                     replace ({time_sql("ts_given", "ts")} as ts,
                              case when what in ('query', 'duration-only') then null
                                   else msg end as msg),
                   d.dur as dur
            from classed
        )
        select * from final
        """,  # noqa: S608 - fixed SQL
        {"duration": _DURATION, "stmt_only": _STATEMENT_ONLY, **rec_params, **zone_params()},
    )


def _store_server_events(con: duckdb.DuckDBPyConnection, res: kinds.FileResult, tz: str) -> None:
    """Nothing; inserts the entries of ``_fmt_cls`` that are not queries into
    ``server_events``, where the report finds connections, errors and checkpoints."""
    utc = tz == "UTC"
    values: dict[str, object] = {"sid": res.source_id, "keep": kinds.RAW_KEEP_CHARS}
    if not utc:
        values["tz"] = tz
    ts = validate.ts_expr("ts", utc=utc)
    common.ensure_server_events(con)
    con.execute(
        f"""
        insert into server_events
        select $sid, line, {ts}, severity, left(msg, $keep), db_user, database, client_ip
        from _fmt_cls where what not in ('query', 'duration-only')
        """,  # noqa: S608 - fixed SQL
        values,
    )


def _count_events(con: duckdb.DuckDBPyConnection, counts: common.Counts) -> None:
    """Nothing; adds the entries of ``_fmt_cls`` that are not queries to ``counts``, by
    what they are, so that the load's notes say what was not a query."""
    for what, severity, n in con.execute(
        "select what, severity, count(*) from _fmt_cls "
        "where what not in ('query', 'duration-only') group by all"
    ).fetchall():
        if what == "parse/bind":
            counts.add("parse/bind durations (steps of an execute, as in pgbadger)", n)
        elif what == "statement":
            counts.add(STATEMENTS, n)
        else:
            counts.add(severity or "no severity", n)


def _store_queries(
    con: duckdb.DuckDBPyConnection, res: kinds.FileResult, tz: str, extras: list[str]
) -> None:
    """Nothing; validates and stores the queries of ``_fmt_cls`` (with ``extras``) as every
    other format's queries are, bad ones as rejects."""
    cols = ", ".join(
        f"{db.quote_identifier(n)} as {db.quote_identifier('f_' + n)}" for n in extras
    )
    sql = f"""
        select line, left(raw, $keep) as raw, pre_reason,
               ts as f_ts,
               dur as f_duration_ms,
               statement as f_statement,
               -- an empty statement (a client's ping) is a query, as pgbadger counts it,
               -- under a fingerprint of its own
               case when what = 'query' and trim(coalesce(statement, '')) = ''
                    then $empty end as f_fingerprint,
               null::varchar as f_request_id,
               application as f_caller,
               db_host as f_db_host,
               null::varchar as f_rows,
               null::varchar as f_error
               {", " + cols if cols else ""}
        from _fmt_cls where what in ('query', 'duration-only')
    """  # noqa: S608 - identifiers from the fixed EXTRAS list
    params: dict[str, object] = {"keep": kinds.RAW_KEEP_CHARS, "empty": EMPTY_STATEMENT}
    validate.store(con, kinds.QUERIES, res, kinds.Records(sql, params, extras), tz)


def finish_chunk(
    con: duckdb.DuckDBPyConnection,
    res: kinds.FileResult,
    rec: tuple[str, dict[str, object]],
    *,
    tz: str,
    extras: list[str],
    counts: common.Counts,
) -> int:
    """Classify the entries of the query ``rec`` (SQL and its values, the ``_fmt_rec`` of
    a layout); store queries and server events. Returns the number of entries."""
    _classify(con, rec)
    _pair_durations(con)
    _store_server_events(con, res, tz)
    _count_events(con, counts)
    _store_queries(con, res, tz, extras)
    return db.one(con, "select count(*) from _fmt_cls")[0]


def _pair_durations(con: duckdb.DuckDBPyConnection) -> None:
    """Give a ``duration: X ms`` entry the statement logged before it by its process.

    With ``log_duration`` + ``log_statement`` PostgreSQL logs the statement when it starts
    and the duration, alone, when it ends. The last statement of each process is kept in
    ``_fmt_last_stmt`` for the next chunk.
    """
    con.execute("create temp table if not exists _fmt_last_stmt (pid varchar, stmt varchar)")
    found = db.one(
        con,
        "select count(*) filter (where what = 'duration-only'), "
        "count(*) filter (where stmt_only is not null) from _fmt_cls",
    )
    if not found[0] and not found[1]:
        return
    con.execute(
        """
        create or replace temp table _fmt_paired as
        with seq as (
            select line, pid, stmt_only as s from _fmt_cls
            where what = 'duration-only' or stmt_only is not null
            union all
            select -1 as line, pid, stmt as s from _fmt_last_stmt
        ), final as (
            select line, last_value(s ignore nulls) over (
                       partition by pid order by line
                       rows between unbounded preceding and 1 preceding) as stmt
            from seq
        )
        select * from final
        """
    )
    con.execute(
        "update _fmt_cls set statement = p.stmt from _fmt_paired p "
        "where _fmt_cls.line = p.line and _fmt_cls.what = 'duration-only' "
        "and _fmt_cls.pid is not null"
    )
    con.execute(
        """
        create or replace temp table _fmt_last_stmt as
        with latest as (
            select pid, arg_max(stmt_only, line) as stmt from _fmt_cls
            where stmt_only is not null and pid is not null group by pid
        ), kept as (
            select pid, stmt from _fmt_last_stmt where pid not in (select pid from latest)
        )
        select * from kept union all select * from latest
        """
    )
    con.execute("drop table if exists _fmt_paired")
