"""Figures of the incident, computed in DuckDB from the loaded rows.

Every query reads the temp views that :func:`analysis.figures.views.scope` creates (``v_auth``,
``v_queries``, ``v_timeline``, ``v_auth_queries``), so a report sees exactly the sources it was
given and never rows that another run loaded into the same database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import pandas as pd

from analysis import db
from analysis.config import (
    BASELINE_GUARD_MINUTES,
    DEFAULT_SLO_TARGET,
    USER_ERROR_CODES,
)
from analysis.db import run
from analysis.times import bucket_interval


@dataclass(frozen=True)
class Params:
    """The analysis parameters that every figure needs."""

    start: datetime
    end: datetime
    bucket: str = "1min"
    user_error_codes: tuple[str, ...] = USER_ERROR_CODES
    guard_minutes: int = BASELINE_GUARD_MINUTES
    #: the login SLO: the target share of attempts without a system failure, and its window
    slo_target: float = DEFAULT_SLO_TARGET
    slo_window_days: float = 30.0

    def bind(self, **extra: object) -> dict[str, object]:
        """The named values the SQL files take."""
        values: dict[str, object] = {
            "start": self.start,
            "end": self.end,
            "codes": list(self.user_error_codes),
            "guard": f"{self.guard_minutes} minutes",
        }
        values.update(extra)
        return values


def series(con: duckdb.DuckDBPyConnection, params: Params) -> pd.DataFrame:
    """Per-bucket series over all the data (see ``sql/series.sql``)."""
    return run(con, "series", params.bind(bucket=bucket_interval(params.bucket))).df()


def error_codes(con: duckdb.DuckDBPyConnection, params: Params) -> pd.DataFrame:
    """Failures per bucket and error code."""
    return run(con, "error_codes", params.bind(bucket=bucket_interval(params.bucket))).df()


def periods(con: duckdb.DuckDBPyConnection, params: Params) -> dict[str, dict]:
    """Figures of the declared window (``incident``) and of the baseline around it, in one
    pass over the data."""
    cur = run(con, "period", params.bind())
    names = [d[0] for d in cur.description]
    out = {}
    for row in cur.fetchall():
        figures = dict(zip(names, row, strict=True))
        out[figures.pop("period")] = figures
    return out


def top_fingerprints(
    con: duckdb.DuckDBPyConnection,
    params: Params,
    *,
    incident_attempts: int,
    baseline_attempts: int,
    limit: int = 10,
) -> pd.DataFrame:
    """Fingerprints ranked by the rise of their per-auth rate, with their profiles."""
    return run(
        con,
        "fingerprints",
        params.bind(
            incident_attempts=incident_attempts, baseline_attempts=baseline_attempts, limit=limit
        ),
    ).df()


def peak(con: duckdb.DuckDBPyConnection, params: Params) -> tuple[float | None, datetime | None]:
    """Highest per-bucket error rate inside the declared window, and its bucket (earliest).

    Buckets start at the window's start, so none of them reaches outside it.
    """
    row = db.one(
        con,
        """
        select time_bucket($bucket::interval, ts, $start) as bucket,
               count(*) filter (where outcome = 'failure') / count(*) as error_rate
        from v_auth
        where ts >= $start and ts < $end
        group by 1
        order by error_rate desc, bucket
        limit 1
        """,
        {"bucket": bucket_interval(params.bucket), "start": params.start, "end": params.end},
    )
    if row is None:
        return None, None
    return float(row[1]), row[0]


def first_failures(con: duckdb.DuckDBPyConnection, params: Params) -> pd.DataFrame:
    """Per bucket, how many users had their first system failure then."""
    return run(
        con,
        "first_failures",
        {"codes": list(params.user_error_codes), "bucket": bucket_interval(params.bucket)},
    ).df()
