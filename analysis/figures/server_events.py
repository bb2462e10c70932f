"""The database's own evidence: what PostgreSQL itself logged as errors during the incident.

A PostgreSQL log holds more than queries: every entry that is not one goes to the table
``server_events`` (see :mod:`analysis.ingest.formats.pg_common`), and
:func:`analysis.figures.views.scope` gives a report the view ``v_server_events`` of its own query
logs' entries. Its FATAL, ERROR and PANIC entries are counted here by kind (:data:`KINDS`), per
period and per bucket, for ``summary.json`` (``db.server_events``), a chart of their own and one
sentence of the draft.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb
import pandas as pd

from analysis import db, times
from analysis.figures.metrics import Params
from analysis.times import iso

#: the kinds, in the order they are shown, with how a person reads them
KINDS: dict[str, str] = {
    "authentication_failed": "authentication failed",
    "too_many_connections": "too many connections",
    "statement_timeout": "statement timeout",
    "deadlock": "deadlock",
    "out_of_memory": "out of memory",
    "other_error": "other FATAL/ERROR",
}
COLOURS = {
    "authentication_failed": "#c0392b",
    "too_many_connections": "#d35400",
    "statement_timeout": "#8e44ad",
    "deadlock": "#2c3e50",
    "out_of_memory": "#16a085",
    "other_error": "#95a5a6",
}

# which kind an entry is: PostgreSQL's own message texts (the first words of errmsg), so
# that a log in any lc_messages other than English lands in other_error, not in a wrong kind
_KIND_MACRO = r"""
create or replace temp macro server_event_kind(severity, message) as case
    when severity is null or upper(severity) not in ('FATAL', 'ERROR', 'PANIC') then null
    when message ilike '%authentication failed for user%'
         or message ilike 'no pg\_hba.conf entry%' escape '\'
         or regexp_matches(message, '^role ".*" does not exist')
        then 'authentication_failed'
    when message ilike 'sorry, too many clients already%'
         or message ilike 'remaining connection slots are reserved%'
         or message ilike 'too many connections for %'
        then 'too_many_connections'
    when message ilike 'canceling statement due to % timeout%'
         or message ilike 'terminating connection due to %timeout%'
        then 'statement_timeout'
    when message ilike 'deadlock detected%' then 'deadlock'
    when message ilike 'out of memory%' then 'out_of_memory'
    else 'other_error'
end
"""


def install(con: duckdb.DuckDBPyConnection) -> None:
    """The macro ``server_event_kind(severity, message)`` that the SQL files use."""
    con.execute(_KIND_MACRO)


def figures(con: duckdb.DuckDBPyConnection, params: Params) -> dict[str, Any]:
    """``db.server_events`` of ``summary.json``: the database's errors in the window and the
    baseline, in all, their first and last times, and the same by kind (kinds that occur)."""
    install(con)
    rows = db.run(con, "server_events", params.bind()).fetchall()
    found = {r[0]: r for r in rows}
    by_kind = []
    for kind in KINDS:
        if kind in found:
            _k, incident, baseline, total, first, last, inc_first, inc_last = found[kind]
            by_kind.append(
                {
                    "kind": kind,
                    "incident": int(incident),
                    "baseline": int(baseline),
                    "total": int(total),
                    "first": iso(first),
                    "last": iso(last),
                    "incident_first": iso(inc_first),
                    "incident_last": iso(inc_last),
                }
            )

    def _edge(key: str, pick) -> str | None:
        values = [k[key] for k in by_kind if k[key] is not None]
        return pick(values) if values else None

    return {
        "incident": sum(k["incident"] for k in by_kind),
        "baseline": sum(k["baseline"] for k in by_kind),
        "total": sum(k["total"] for k in by_kind),
        # ISO texts of one form sort as their instants
        "first": _edge("first", min),
        "last": _edge("last", max),
        "incident_first": _edge("incident_first", min),
        "incident_last": _edge("incident_last", max),
        "by_kind": by_kind,
    }


def series(con: duckdb.DuckDBPyConnection, params: Params) -> pd.DataFrame:
    """Errors per bucket and kind (``bucket, kind, events``), for the chart."""
    install(con)
    values = params.bind(bucket=times.bucket_interval(params.bucket))
    return db.run(con, "server_events_series", values).df()


def _counts(items: list[dict[str, Any]], period: str) -> str:
    return ", ".join(f"{KINDS[k['kind']]} {k[period]:,}" for k in items if k[period])


def _t(text: str | None) -> str:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).strftime("%H:%M UTC")


def draft_sentence(summary: dict[str, Any]) -> str | None:
    """What the database itself reported, for the draft; None when it reported nothing."""
    ev = summary["db"].get("server_events")
    if not ev or not ev["total"]:
        return None
    items = ev["by_kind"]
    if not ev["incident"]:
        return (
            "- The database itself reported no error during the declared window "
            f"({ev['baseline']:,} in the baseline: {_counts(items, 'baseline') or 'none'})."
        )
    base = f"; baseline: {_counts(items, 'baseline')}" if ev["baseline"] else "; none at baseline"
    return (
        f"- The database itself reported {ev['incident']:,} error"
        f"{'' if ev['incident'] == 1 else 's'} during the declared window, "
        f"{_t(ev['incident_first'])} to {_t(ev['incident_last'])}: "
        f"{_counts(items, 'incident')}{base}."
    )


def title(summary: dict[str, Any]) -> str:
    """The chart's title: its finding."""
    ev = summary["db"].get("server_events") or {"total": 0}
    if not ev["total"]:
        return "The database logged no error of its own"
    items = sorted(ev["by_kind"], key=lambda k: -k["incident"])
    top = items[0]
    if not ev["incident"]:
        return f"The database logged {ev['baseline']:,} errors, none in the declared window"
    return (
        f"The database logged {ev['incident']:,} errors in the declared window "
        f"({ev['baseline']:,} in the baseline); most: {KINDS[top['kind']]} ({top['incident']:,})"
    )
