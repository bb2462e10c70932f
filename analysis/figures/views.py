"""The report's views of the loaded rows: ``v_auth``, ``v_queries``, ``v_timeline``,
``v_auth_queries`` and ``v_server_events``, scoped to the sources of one report (and its time
range), and the SQL macros every figure's query uses. A report sees exactly the sources it was
given, never rows that another run loaded into the same database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import duckdb

from analysis import db
from analysis.times import ALL_TIME


@dataclass(frozen=True)
class Scope:
    """The sources a report is about and how its queries are tied to auth attempts."""

    auth: tuple[int, ...]
    queries: tuple[int, ...]
    timeline: tuple[int, ...]
    #: ``request_id`` (join) or ``caller-ratio`` (fallback when queries carry no request_id)
    qpa_method: str
    auth_callers: tuple[str, ...] = ()


def install_macros(con: duckdb.DuckDBPyConnection) -> None:
    """Small SQL helpers shared by the queries in ``analysis/sql``."""
    con.execute(
        "create or replace temp macro is_system_failure(outcome, error_code, codes) as "
        "outcome = 'failure' and (error_code is null or not list_contains(codes, error_code))"
    )
    # the period a time falls in: the declared window, the baseline (outside it and its guard
    # margins), or neither (null)
    con.execute(
        "create or replace temp macro period_of(t, w_start, w_end, guard) as case "
        "when t >= w_start and t < w_end then 'incident' "
        "when t < w_start - guard or t >= w_end + guard then 'baseline' end"
    )
    # the stretch a time falls in when two stretches are compared: the selection, the baseline
    # (a stretch of its own, or with ``rest`` everything outside the selection and its guard
    # margins, as period_of's baseline), or neither (null); the selection wins an overlap
    con.execute(
        "create or replace temp macro stretch_of(t, s_start, s_end, b_start, b_end, rest, guard) "
        "as case when t >= s_start and t < s_end then 'selection' "
        "when rest and (t < s_start - guard or t >= s_end + guard) then 'baseline' "
        "when not rest and t >= b_start and t < b_end then 'baseline' end"
    )
    # what iso() writes, for columns of many rows
    con.execute(
        "create or replace temp macro iso_text(t) as case "
        "when epoch_us(t) % 1000000 <> 0 then strftime(t, '%Y-%m-%dT%H:%M:%S.%g') || 'Z' "
        "else strftime(t, '%Y-%m-%dT%H:%M:%SZ') end"
    )
    # a keyed hash: without the key a pseudonym cannot be turned back into a user id
    con.execute(
        "create or replace temp macro pseudonym(key, uid) as "
        "'user-' || left(sha256(key || chr(0) || uid), 12)"
    )


def scope(
    con: duckdb.DuckDBPyConnection,
    *,
    auth: Sequence[int] | None = None,
    queries: Sequence[int] | None = None,
    timeline: Sequence[int] | None = None,
    auth_caller: str | None = None,
    time_range: tuple[datetime, datetime] | None = None,
    attached: bool = False,
) -> Scope:
    """Create the temp views every figure reads, limited to the given source ids.

    ``None`` means every source of that kind in the database (for exploration).
    ``time_range`` (start, end exclusive) limits auth events and queries to it. With
    ``attached``, ``v_auth`` and ``v_queries`` were made by an engine that reads the rows
    where they are (Parquet in place, Spark) and are kept.
    """
    install_macros(con)
    if not attached:
        lo, hi = time_range or ALL_TIME
        con.execute("set variable pm_range_start = ?", [lo])
        con.execute("set variable pm_range_end = ?", [hi])
    ids = _source_ids(con, {"auth": auth, "queries": queries, "timeline": timeline})
    _scoped_views(con, ids, attached=attached)
    _server_events_view(con, in_range=not attached)
    method, callers = _auth_queries_view(con, auth_caller)
    return Scope(
        tuple(ids["auth"]), tuple(ids["queries"]), tuple(ids["timeline"]), method, callers
    )


def _source_ids(
    con: duckdb.DuckDBPyConnection, given: dict[str, Sequence[int] | None]
) -> dict[str, list[int]]:
    """Return the source ids of each kind: the given ones, or (``None``) all of the database."""
    ids: dict[str, list[int]] = {}
    for kind, chosen in given.items():
        if chosen is None:
            rows = con.execute("select source_id from sources where kind = ?", [kind]).fetchall()
            ids[kind] = [r[0] for r in rows]
        else:
            ids[kind] = list(chosen)
    return ids


def _scoped_views(
    con: duckdb.DuckDBPyConnection, ids: dict[str, list[int]], *, attached: bool
) -> None:
    """Create ``_scope`` and the views of its sources' rows: a report sees no other run's."""
    con.execute("create or replace temp table _scope (kind varchar, source_id integer)")
    for kind, values in ids.items():
        if values:
            con.executemany("insert into _scope values (?, ?)", [[kind, v] for v in values])
    for view, table, kind in (
        ("v_auth", "auth_events", "auth"),
        ("v_queries", "db_queries", "queries"),
        ("v_timeline", "timeline", "timeline"),
    ):
        if attached and kind != "timeline":
            continue
        in_range = (
            "and ts >= getvariable('pm_range_start') and ts < getvariable('pm_range_end')"
            if kind != "timeline"
            else ""
        )
        con.execute(
            f"create or replace temp view {view} as select * from {table} "  # noqa: S608
            f"where source_id in (select source_id from _scope where kind = '{kind}') {in_range}"
        )


def _auth_queries_view(
    con: duckdb.DuckDBPyConnection, auth_caller: str | None
) -> tuple[str, tuple[str, ...]]:
    """Return how ``v_auth_queries`` ties queries to auth attempts, and the callers it took."""
    linked = db.one(
        con,
        "select count(*) from (select 1 from v_queries q join v_auth a using (request_id) "
        "limit 1)",
    )[0]
    if not linked:
        return _caller_view(con, auth_caller)
    # a query belongs to the attempt that issued it; it counts in that attempt's period
    # one attempt per request_id (the first): a retry that reuses its id, or sshd's pid,
    # must not count the same query twice
    con.execute(
        "create or replace temp view v_auth_queries as "
        "select a.ts, q.ts as query_ts, q.fingerprint, q.duration_ms, q.request_id "
        "from v_queries q join (select request_id, min(ts) as ts from v_auth "
        "where request_id is not null group by request_id) a using (request_id)"
    )
    return "request_id", ()


def _caller_view(
    con: duckdb.DuckDBPyConnection, auth_caller: str | None
) -> tuple[str, tuple[str, ...]]:
    """Return the method and callers of ``v_auth_queries`` by caller, when no request_id links."""
    callers = _auth_callers(con, auth_caller)
    con.execute("create or replace temp table _auth_callers (caller varchar)")
    others = [
        r[0]
        for r in con.execute(
            "select distinct caller from v_queries where caller is not null order by 1"
        ).fetchall()
    ]
    has_queries = db.one(con, "select count(*) > 0 from v_queries")[0]
    if callers:
        method = "caller-ratio"
        con.executemany("insert into _auth_callers values (?)", [[c] for c in callers])
        where = "where caller in (select caller from _auth_callers)"
    elif has_queries and len(others) <= 1:
        # a query log of one application (a PostgreSQL log of the auth database): all of
        # its queries stand for the auth service's, and the method says so
        method, where, callers = "all-queries", "", tuple(others)
    else:
        # several applications and none of them the auth service: no figure rather than
        # a wrong one
        method = "none"
        where = "where false"
    con.execute(
        "create or replace temp view v_auth_queries as "  # noqa: S608 - fixed text
        "select ts, ts as query_ts, fingerprint, duration_ms, request_id "
        f"from v_queries {where}"
    )
    return method, callers


def _server_events_view(con: duckdb.DuckDBPyConnection, *, in_range: bool) -> None:
    """``v_server_events``: the non-query entries of this report's query logs (PostgreSQL's
    own log lines, :mod:`analysis.figures.server_events`), in the time range."""
    if db.columns_of(con, "server_events"):
        where = (
            "and ts >= getvariable('pm_range_start') and ts < getvariable('pm_range_end')"
            if in_range
            else ""
        )
        con.execute(
            "create or replace temp view v_server_events as select * from server_events "  # noqa: S608 - fixed text
            f"where source_id in (select source_id from _scope where kind = 'queries') {where}"
        )
    else:
        # no server log loaded into this database yet: the same columns, no row
        con.execute(
            "create or replace temp view v_server_events as select null::integer as source_id, "
            "null::bigint as line, null::timestamp as ts, null::varchar as severity, "
            'null::varchar as message, null::varchar as "user", null::varchar as database, '
            "null::varchar as client where false"
        )


def _auth_callers(con: duckdb.DuckDBPyConnection, given: str | None) -> tuple[str, ...]:
    """Which callers' queries stand for the auth service when queries carry no request_id."""
    if given:
        return (given,)
    rows = con.execute(
        "select distinct caller from v_queries where caller ilike '%auth%' order by caller"
    ).fetchall()
    return tuple(r[0] for r in rows)
