"""Assemble ``summary.json``: every figure of CONTRACT section 3, from the scoped views.

Key order is fixed by construction and floats are rounded here, once, so that the same
inputs give the same bytes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from analysis import compare, db, detect, metrics, privacy, server_events, times
from analysis.load import LoadResult
from analysis.metrics import Params
from analysis.times import iso
from analysis.views import Scope

RATE_DIGITS = 4
MS_DIGITS = 2


@dataclass
class Analysis:
    """Everything the report shows: the summary and the tables behind the charts."""

    summary: dict[str, Any]
    series: pd.DataFrame
    error_codes: pd.DataFrame
    fingerprints: pd.DataFrame
    dimensions: pd.DataFrame
    timeline: pd.DataFrame
    detected: detect.Window | None


def _r(value: Any, digits: int = RATE_DIGITS) -> float | None:
    if value is None or pd.isna(value) or not math.isfinite(float(value)):
        return None  # JSON has no NaN or infinity (a sum of huge durations can overflow)
    return round(float(value), digits)


def _ratio(a: Any, b: Any) -> float | None:
    if a is None or b is None or pd.isna(a) or pd.isna(b) or not b:
        return None
    return float(a) / float(b)


def timeline_events(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The responders' timeline, in time order, e-mail and IP addresses masked."""
    events = con.execute("select ts, kind, text from v_timeline order by ts, line").df()
    events["text"] = events["text"].map(privacy.mask)
    return events


def timeline_figures(
    events: pd.DataFrame, onset: datetime | None, *, guard: timedelta
) -> dict[str, Any]:
    """Seconds from the detected onset to the first detection, mitigation and resolution.

    An event counts from ``guard`` before the onset on (a page can precede the first failed
    bucket by a little); the result is negative then. Null where the timeline lacks the event
    or nothing was detected. The trigger is the last ``change`` before the onset.
    """
    out: dict[str, Any] = {}
    for key, kind in (
        ("time_to_detect_s", "detection"),
        ("time_to_mitigate_s", "mitigation"),
        ("time_to_resolve_s", "resolution"),
    ):
        value = None
        if onset is not None and not events.empty:
            hits = events[(events["kind"] == kind) & (events["ts"] >= onset - guard)]
            if not hits.empty:
                value = int((hits["ts"].iloc[0] - onset).total_seconds())
        out[key] = value
    trigger = None
    if onset is not None and not events.empty:
        changes = events[(events["kind"] == "change") & (events["ts"] <= onset)]
        if not changes.empty:
            last = changes.iloc[-1]
            trigger = {
                "ts": iso(last["ts"]),
                "text": last["text"],
                "lead_s": int((onset - last["ts"]).total_seconds()),
            }
    out["trigger"] = trigger
    return out


def error_classes(con: duckdb.DuckDBPyConnection, params: Params) -> list[dict[str, Any]]:
    """Every failure code with the class it was given (the user's or the system's) and its
    failures in the window and the baseline, so that a reader sees the assumption."""
    rows = con.execute(db.sql("error_classes"), params.bind()).fetchall()
    return [
        {"error_code": code, "class": cls, "incident": int(inc), "baseline": int(base)}
        for code, cls, inc, base in rows
    ]


def bypass_figures(
    con: duckdb.DuckDBPyConnection, params: Params, series_df: pd.DataFrame
) -> dict[str, Any]:
    """The audit of logins granted without the database check, over all the data."""
    row = db.one(con, db.sql("bypass"))
    logins, users, first, last, data_end = row
    after_end = db.one(
        con,
        "select count(*), count(distinct user_id) from v_auth "
        "where auth_path = 'bypass' and ts >= $end",
        {"end": params.end},
    )
    on_buckets = series_df[series_df["bypass_logins"] > 0]
    guard = timedelta(minutes=params.guard_minutes)
    return {
        "logins": int(logins),
        "users": int(users),
        "first": iso(first),
        "last": iso(last),
        "duration_s": int((last - first).total_seconds()) if logins else None,
        "buckets_on": int(len(on_buckets)),
        "logins_after_declared_end": int(after_end[0]),
        "users_after_declared_end": int(after_end[1]),
        "on_at_declared_end": bool(logins and last >= params.end),
        "on_at_data_end": bool(logins and data_end is not None and last >= data_end - guard),
    }


def analyse(
    con: duckdb.DuckDBPyConnection,
    params: Params,
    scope: Scope,
    *,
    incident_id: str,
    load_result: LoadResult | None = None,
    top: int = 10,
) -> Analysis:
    """Compute every figure of the report from the scoped views."""
    series_df = metrics.series(con, params)
    codes_df = metrics.error_codes(con, params)
    both = metrics.periods(con, params)
    window, base = both["incident"], both["baseline"]
    fps = metrics.top_fingerprints(
        con,
        params,
        incident_attempts=window["attempts"],
        baseline_attempts=base["attempts"],
        limit=top,
    )
    dims = compare.dimensions(con, params)
    # what is charted and written carries no e-mail or IP address
    fps["fingerprint"] = fps["fingerprint"].map(privacy.mask)
    dims["value"] = dims["value"].map(privacy.mask)
    bucket = timedelta(seconds=times.bucket_seconds(params.bucket))
    detected = detect.detect_window(series_df, bucket=bucket)
    events = timeline_events(con)
    peak_rate, peak_minute = metrics.peak(con, params)
    if scope.qpa_method == "none":
        qpa_base = qpa_inc = None
    else:
        qpa_base = _ratio(base["auth_queries"], base["attempts"])
        qpa_inc = _ratio(window["auth_queries"], window["attempts"])
    guard = timedelta(minutes=params.guard_minutes)
    summary: dict[str, Any] = {
        "incident_id": incident_id,
        "window": {
            "declared": {"start": iso(params.start), "end": iso(params.end)},
            "detected": (
                {"start": iso(detected.start), "end": iso(detected.end)} if detected else None
            ),
            "agrees": detect.agrees((params.start, params.end), detected),
        },
        "impact": {
            "users_active": int(window["users_active"]),
            "users_affected": int(window["users_affected"]),
            "affected_share": _r(_ratio(window["users_affected"], window["users_active"])),
        },
        "auth": {
            "attempts": int(window["attempts"]),
            "failures": int(window["failures"]),
            "system_failures": int(window["system_failures"]),
            "attempts_without_user": int(window["attempts_without_user"]),
            "error_rate": _r(_ratio(window["failures"], window["attempts"])),
            "baseline_error_rate": _r(_ratio(base["failures"], base["attempts"])),
            "peak_error_rate": _r(peak_rate),
            "peak_minute": iso(peak_minute),
            "error_classes": error_classes(con, params),
        },
        "db": {
            "queries_per_auth": {
                "baseline": _r(qpa_base),
                "incident": _r(qpa_inc),
                "method": scope.qpa_method,
            },
            "amplification": _r(_ratio(qpa_inc, qpa_base), 2),
            "top_fingerprints": [
                {
                    "fingerprint": r.fingerprint,
                    "baseline_per_auth": _r(r.baseline_per_auth),
                    "incident_per_auth": _r(r.incident_per_auth),
                    "incident": _profile(r, "incident"),
                    "baseline": _profile(r, "baseline"),
                }
                for r in fps.itertuples()
            ],
            "latency_p95_ms": {
                "baseline": _r(base["latency_p95_ms"], MS_DIGITS),
                "incident": _r(window["latency_p95_ms"], MS_DIGITS),
            },
            "queries": {"baseline": int(base["queries"]), "incident": int(window["queries"])},
        },
        "dimensions": [
            {
                "dimension": r.dimension,
                "value": r.value,
                "incident_share": _r(r.incident_share),
                "baseline_share": _r(r.baseline_share),
                "score": _r(r.score),
            }
            for r in dims.itertuples()
        ],
        "bypass": bypass_figures(con, params, series_df),
        "timeline": timeline_figures(events, detected.start if detected else None, guard=guard),
        "ingest": _ingest(load_result),
        "parameters": {
            "bucket": params.bucket,
            "user_error_codes": list(params.user_error_codes),
            "baseline_guard_minutes": params.guard_minutes,
        },
    }
    summary["db"]["server_events"] = server_events.figures(con, params)
    if scope.qpa_method != "request_id":
        summary["db"]["queries_per_auth"]["auth_callers"] = list(scope.auth_callers)
    return Analysis(summary, series_df, codes_df, fps, dims, events, detected)


def _profile(row: Any, period: str) -> dict[str, Any]:
    count = getattr(row, f"{period}_count")
    return {
        "count": int(count) if not pd.isna(count) else 0,
        "total_ms": _r(getattr(row, f"{period}_total_ms"), MS_DIGITS),
        "mean_ms": _r(getattr(row, f"{period}_mean_ms"), MS_DIGITS),
        "p95_ms": _r(getattr(row, f"{period}_p95_ms"), MS_DIGITS),
    }


def _ingest(result: LoadResult | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, kind in (("auth", "auth"), ("queries", "queries"), ("timeline", "timeline")):
        out[key] = result.totals(kind) if result else None
    return out


def dumps(summary: dict[str, Any]) -> str:
    """The JSON text of a summary: stable, readable, ending with a newline."""
    return json.dumps(summary, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write(summary: dict[str, Any], path: Path) -> None:
    """Write ``summary.json``."""
    path.write_text(dumps(summary), encoding="utf-8")
