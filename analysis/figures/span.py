"""The span a report analyses: where the data is dense around the declared window.

The rule: the span is the declared window and, on each side, every hour of data reachable
from it without a gap of more than ``max_gap`` (24 hours, or the declared window's length
when longer) between consecutive hours that hold rows, auth events and queries together. One
line misdated by years, or a stray file of another month, lies beyond such a gap: its rows
are left out of every figure, series and chart, and counted in ``ingest.*.outside_span``
with their first and last time. They stay in ``rows_read`` and ``rows_loaded``: nothing is
dropped from the counts. A night without logins does not break the span; a year does.

The cost of the series then follows the rows, not the calendar; and when even the span would
give more than :data:`MAX_BUCKETS` buckets, the bucket grows to the first of
:data:`LADDER` that gives fewer (the summary says which).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb

from analysis import db, times
from analysis.figures.metrics import Params
from analysis.times import iso

#: more buckets than this and the bucket grows
MAX_BUCKETS = 4000
#: the buckets it grows through, in seconds and as the ``bucket`` parameter writes them
LADDER = (
    (60, "1min"),
    (120, "2min"),
    (300, "5min"),
    (600, "10min"),
    (900, "15min"),
    (1800, "30min"),
    (3600, "1h"),
    (7200, "2h"),
    (10800, "3h"),
    (21600, "6h"),
    (43200, "12h"),
    (86400, "24h"),
)
#: the smallest gap that ends the span
MIN_GAP = timedelta(hours=24)
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Span:
    """The instants analysed ``[start, end)``, the bucket used, and what lies outside."""

    start: datetime
    end: datetime
    bucket: str
    bucket_requested: str
    #: per kind (``auth``, ``queries``): ``{"count", "first", "last"}`` of the rows outside
    outside: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def bucket_grown(self) -> bool:
        """True when the span was too long for the requested bucket."""
        return self.bucket != self.bucket_requested


def hours_of_data(con: duckdb.DuckDBPyConnection) -> list[tuple[str, datetime, int, Any, Any]]:
    """``(kind, hour, rows, first, last)`` for every hour holding rows, in order."""
    return [tuple(r) for r in con.execute(db.sql("span_hours")).fetchall()]


def reach(
    hours: list[datetime], window: tuple[datetime, datetime], *, max_gap: timedelta
) -> tuple[datetime, datetime]:
    """The declared window grown over the hours reachable from it by gaps of ``max_gap`` at
    most (single linkage on the hours with data)."""
    lo, hi = window
    before = [h for h in hours if h + HOUR <= lo]
    after = [h for h in hours if h >= hi]
    inside = [h for h in hours if lo < h + HOUR and h < hi]
    edge_lo = min([lo, *inside])
    for h in reversed(before):
        if edge_lo - (h + HOUR) > max_gap:
            break
        edge_lo = h
    edge_hi = max([hi, *(h + HOUR for h in inside)])
    for h in after:
        if h - edge_hi > max_gap:
            break
        edge_hi = h + HOUR
    return min(edge_lo, lo), max(edge_hi, hi)


def grown_bucket(requested: str, length: timedelta) -> str:
    """The requested bucket, or the first of :data:`LADDER` that gives at most
    :data:`MAX_BUCKETS` buckets over ``length``."""
    seconds = times.bucket_seconds(requested)
    if length.total_seconds() / seconds <= MAX_BUCKETS:
        return requested
    for step, name in LADDER:
        if step > seconds and length.total_seconds() / step <= MAX_BUCKETS:
            return name
    return LADDER[-1][1]


def find(con: duckdb.DuckDBPyConnection, params: Params) -> Span:
    """The span of the report's rows around the declared window, and what lies outside it."""
    window = (params.start, params.end)
    max_gap = max(MIN_GAP, params.end - params.start)
    per_hour = hours_of_data(con)
    hours = sorted({h for _, h, *_ in per_hour})
    lo, hi = reach(hours, window, max_gap=max_gap) if hours else window
    # whole hours, so that every hour of data is inside the span or outside it
    lo = _floor_hour(lo)
    hi = _floor_hour(hi) + (HOUR if _floor_hour(hi) < hi else timedelta(0))
    outside: dict[str, dict[str, Any]] = {}
    firsts, lasts = [], []
    for kind in ("auth", "queries"):
        far = [r for r in per_hour if r[0] == kind and not lo <= r[1] < hi]
        near = [r for r in per_hour if r[0] == kind and lo <= r[1] < hi]
        outside[kind] = {
            "count": sum(r[2] for r in far),
            "first": iso(min(r[3] for r in far)) if far else None,
            "last": iso(max(r[4] for r in far)) if far else None,
        }
        firsts += [r[3] for r in near]
        lasts += [r[4] for r in near]
    # the series runs from the first to the last row inside the span
    length = (max(lasts) - min(firsts)) if firsts else hi - lo
    bucket = grown_bucket(params.bucket, max(length, params.end - params.start))
    return Span(lo, hi, bucket, params.bucket, outside)


def _floor_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def limit(con: duckdb.DuckDBPyConnection, span: Span) -> None:
    """Narrow the report's views (``v_auth``, ``v_queries``) to the span.

    The views read their range from session variables
    (:func:`analysis.figures.views.scope`), so this
    narrows them without re-creating them; a range given to the report (``range_start``, …)
    is kept where it is narrower, and :func:`everything` can widen them again.
    """
    outer = _current(con)
    lo = span.start if outer[0] is None else max(outer[0], span.start)
    hi = span.end if outer[1] is None else min(outer[1], span.end)
    con.execute("set variable pm_span_outer = ?", [list(outer)])
    con.execute("set variable pm_range_start = ?", [lo])
    con.execute("set variable pm_range_end = ?", [hi])


def _current(con: duckdb.DuckDBPyConnection) -> tuple[Any, Any]:
    row = db.one(con, "select getvariable('pm_range_start'), getvariable('pm_range_end')")
    return (row[0], row[1]) if row else (None, None)


@contextmanager
def everything(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """The views over every row of the report again, outside the span too, for as long as the
    block runs (the list of bypass users to re-verify must name a misdated login as well)."""
    outer = db.one(con, "select getvariable('pm_span_outer')")
    if not outer or outer[0] is None:
        yield
        return
    inner = _current(con)
    con.execute("set variable pm_range_start = ?", [outer[0][0]])
    con.execute("set variable pm_range_end = ?", [outer[0][1]])
    try:
        yield
    finally:
        con.execute("set variable pm_range_start = ?", [inner[0]])
        con.execute("set variable pm_range_end = ?", [inner[1]])


def as_dict(span: Span) -> dict[str, Any]:
    """The ``span`` key of ``summary.json``."""
    return {
        "start": iso(span.start),
        "end": iso(span.end),
        "bucket": span.bucket,
        "bucket_requested": span.bucket_requested,
        "bucket_grown": span.bucket_grown,
        "max_buckets": MAX_BUCKETS,
    }
