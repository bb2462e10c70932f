"""Assemble ``summary.json``: every figure of CONTRACT section 3, from the scoped views.

Key order is fixed by construction and floats are rounded here, once, so that the same
inputs give the same bytes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from analysis import db, privacy, times
from analysis.figures import compare, detect, metrics, server_events, slo, span
from analysis.figures.metrics import Params
from analysis.figures.views import Scope
from analysis.kinds import LoadResult
from analysis.times import iso

RATE_DIGITS = 4
MS_DIGITS = 2
#: user-class failures are far above their baseline with at least this many of them, 3×
#: the baseline rate (detect.USER_FAR) and this two-proportion z
USER_FAR_MIN = 10
USER_FAR_Z = 4.0


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
    pairs: pd.DataFrame | None = None
    #: the parameters the figures were computed with (the bucket may have grown)
    params: Params | None = None
    span: span.Span | None = None


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
    redacted: bool = True,
    top: int = 10,
) -> Analysis:
    """Compute every figure of the report from the scoped views.

    The views are first narrowed to the span where the data is dense around the declared
    window (:mod:`analysis.figures.span`); the bucket grows when the span is too long for it.
    """
    found = span.find(con, params)
    span.limit(con, found)
    used = replace(params, bucket=found.bucket)
    series_df = metrics.series(con, used)
    codes_df = metrics.error_codes(con, used)
    both = metrics.periods(con, used)
    window, base = both["incident"], both["baseline"]
    fps = metrics.top_fingerprints(
        con,
        used,
        incident_attempts=window["attempts"],
        baseline_attempts=base["attempts"],
        limit=top,
    )
    values = compare.scored_values(con, used)
    dims = values.head(20).reset_index(drop=True)
    pairs = compare.pairs(con, used, values=values)
    # what is charted and written carries no e-mail or IP address
    fps["fingerprint"] = fps["fingerprint"].map(privacy.mask)
    dims["value"] = dims["value"].map(privacy.mask)
    pairs["values"] = pairs["values"].map(lambda vs: [privacy.mask(v) for v in vs])
    bucket = timedelta(seconds=times.bucket_seconds(used.bucket))
    detected = detect.detect_window(series_df, bucket=bucket)
    events = timeline_events(con)
    guard = timedelta(minutes=params.guard_minutes)
    summary: dict[str, Any] = {
        "incident_id": incident_id,
        "window": window_figures(params, detected),
        "impact": impact_figures(window),
        "slo": slo.slo_figures(series_df, used, window["system_failures"]),
        "auth": {
            **auth_figures(window, base, metrics.peak(con, used)),
            "error_classes": error_classes(con, used),
        },
        "db": {
            **db_figures(window, base, fps, scope),
            "server_events": server_events.figures(con, used),
        },
        "dimensions": dimension_figures(dims),
        "dimension_pairs": pair_figures(pairs),
        "bypass": bypass_figures(con, used, series_df),
        "timeline": timeline_figures(events, detected.start if detected else None, guard=guard),
        "span": span.as_dict(found),
        "ingest": ingest_figures(load_result, found),
        "parameters": parameter_figures(params),
        "redacted": redacted,
    }
    return Analysis(summary, series_df, codes_df, fps, dims, events, detected, pairs, used, found)


def window_figures(params: Params, detected: detect.Window | None) -> dict[str, Any]:
    """The declared window, the detected one with the signals at its edges, and whether they
    agree."""
    det = None
    if detected is not None:
        det = {
            "start": iso(detected.start),
            "end": iso(detected.end),
            "signals": {edge: list(names) for edge, names in detected.signals.items()},
            "by_signal": {
                name: {"start": iso(lo), "end": iso(hi)}
                for name, (lo, hi) in detected.by_signal.items()
            },
            "masked_buckets": detected.masked_buckets,
        }
    return {
        "declared": {"start": iso(params.start), "end": iso(params.end)},
        "detected": det,
        "agrees": detect.agrees((params.start, params.end), detected),
    }


def impact_figures(window: dict[str, Any]) -> dict[str, Any]:
    """Users active in the declared window and those affected: by system-class failures
    only (user-class failures far above their baseline are ``auth.user_class``)."""
    return {
        "users_active": int(window["users_active"]),
        "users_affected": int(window["users_affected"]),
        "affected_share": _r(_ratio(window["users_affected"], window["users_active"])),
    }


def auth_figures(
    window: dict[str, Any], base: dict[str, Any], peak: tuple[float | None, datetime | None]
) -> dict[str, Any]:
    """Attempts and failures in the declared window, the baseline error rate, the peak, and
    the user-class failures against their baseline."""
    peak_rate, peak_minute = peak
    return {
        "attempts": int(window["attempts"]),
        "failures": int(window["failures"]),
        "system_failures": int(window["system_failures"]),
        "attempts_without_user": int(window.get("attempts_without_user", 0)),
        "error_rate": _r(_ratio(window["failures"], window["attempts"])),
        "baseline_error_rate": _r(_ratio(base["failures"], base["attempts"])),
        "peak_error_rate": _r(peak_rate),
        "peak_minute": iso(peak_minute),
        "system_error_rate": _r(_ratio(window["system_failures"], window["attempts"])),
        "baseline_system_error_rate": _r(_ratio(base["system_failures"], base["attempts"])),
        "user_class": user_class_figures(window, base),
    }


def user_class_figures(window: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """User-class failures (codes counted as the user's) in the window, the users who had
    them, and whether they rose far above their baseline: 3× its rate, at least
    :data:`USER_FAR_MIN` of them, and a two-proportion z of :data:`USER_FAR_Z` (a 401 storm
    after a broken deploy is an outage even though 401 is "the user's")."""
    user = window["failures"] - window["system_failures"]
    base_user = base["failures"] - base["system_failures"]
    rate = _ratio(user, window["attempts"])
    base_rate = _ratio(base_user, base["attempts"])
    z = compare.two_proportion_z(user, window["attempts"], base_user, base["attempts"])
    far = bool(
        rate is not None
        and base_rate is not None
        and user >= USER_FAR_MIN
        and rate >= detect.USER_FAR[0] * base_rate
        and z >= USER_FAR_Z
    )
    users = window.get("users_user_failed")
    return {
        "failures": int(user),
        "users": None if users is None else int(users),
        "rate": _r(rate),
        "baseline_rate": _r(base_rate),
        "far_above_baseline": far,
    }


def db_figures(
    window: dict[str, Any], base: dict[str, Any], fps: pd.DataFrame, scope: Scope
) -> dict[str, Any]:
    """Queries per auth attempt, the fingerprints behind the rise, latency and query counts."""
    if scope.qpa_method == "none":
        qpa_base = qpa_inc = None
    else:
        qpa_base = _ratio(base["auth_queries"], base["attempts"])
        qpa_inc = _ratio(window["auth_queries"], window["attempts"])
    qpa: dict[str, Any] = {
        "baseline": _r(qpa_base),
        "incident": _r(qpa_inc),
        "method": scope.qpa_method,
    }
    if scope.qpa_method != "request_id":
        qpa["auth_callers"] = list(scope.auth_callers)
    return {
        "queries_per_auth": qpa,
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
    }


def dimension_figures(dims: pd.DataFrame) -> list[dict[str, Any]]:
    """Dimension values ranked by score, with their significance."""
    return [
        {
            "dimension": r.dimension,
            "value": r.value,
            "incident_share": _r(r.incident_share),
            "baseline_share": _r(r.baseline_share),
            "score": _r(r.score),
            "z": _r(r.z, 2),
            "p_value": _sig(r.p_value),
        }
        for r in dims.itertuples()
    ]


def pair_figures(pairs: pd.DataFrame) -> list[dict[str, Any]]:
    """Pairs of values that together explain more than either alone."""
    return [
        {
            "dimensions": list(r.dimensions),
            "values": list(r.values),
            "incident_share": _r(r.incident_share),
            "baseline_share": _r(r.baseline_share),
            "score": _r(r.score),
            "gain": _r(r.gain),
            "z": _r(r.z, 2),
            "p_value": _sig(r.p_value),
        }
        for r in pairs.itertuples()
    ]


def parameter_figures(params: Params) -> dict[str, Any]:
    """The analysis parameters as given."""
    return {
        "bucket": params.bucket,
        "user_error_codes": list(params.user_error_codes),
        "baseline_guard_minutes": params.guard_minutes,
        "slo_target": params.slo_target,
        "slo_window_days": slo.plain_number(params.slo_window_days),
    }


def _profile(row: Any, period: str) -> dict[str, Any]:
    count = getattr(row, f"{period}_count")
    return {
        "count": int(count) if not pd.isna(count) else 0,
        "total_ms": _r(getattr(row, f"{period}_total_ms"), MS_DIGITS),
        "mean_ms": _r(getattr(row, f"{period}_mean_ms"), MS_DIGITS),
        "p95_ms": _r(getattr(row, f"{period}_p95_ms"), MS_DIGITS),
    }


def ingest_figures(result: LoadResult | None, found: span.Span | None = None) -> dict[str, Any]:
    """Rows read, loaded and rejected per kind; for auth events and queries, the rows outside
    the span (counted, with their first and last time, and left out of every figure)."""
    out: dict[str, Any] = {}
    for key in ("auth", "queries", "timeline"):
        totals = result.totals(key) if result else None
        if found is not None and key in found.outside:
            totals = {**(totals or {}), "outside_span": found.outside[key]}
        out[key] = totals
    return out


def _sig(value: Any, digits: int = 3) -> float | None:
    """A p-value to three significant digits (rounding to places would make them all 0)."""
    if value is None or pd.isna(value):
        return None
    return float(f"{float(value):.{digits}g}")


def dumps(summary: dict[str, Any]) -> str:
    """The JSON text of a summary: stable, readable, ending with a newline."""
    return json.dumps(summary, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def with_alerts(
    summary: dict[str, Any], alerts: list[dict[str, Any]], skipped: list[dict[str, Any]]
) -> dict[str, Any]:
    """The summary with the alert rules' figures (``alerts``, ``alerts_skipped``): the rules
    are made from the figures, so they come last."""
    summary["alerts"], summary["alerts_skipped"] = alerts, skipped
    pages = [
        a["fired_at"]
        for a in alerts
        if a["signal"] == "slo_burn_rate" and a["severity"] == "page" and a["fired_at"]
    ]
    if "slo" in summary:
        summary["slo"]["fast_burn_page_at"] = min(pages) if pages else None
    return summary


def bypass_users(con: duckdb.DuckDBPyConnection, *, redact: bool, key: str) -> pd.DataFrame:
    """Every user who logged in without the database check, over all of the report's rows (a
    misdated login far outside the span too: whoever got in unchecked must be re-verified);
    pseudonymised with ``key`` when ``redact``."""
    with span.everything(con):
        return con.execute(db.sql("bypass_users"), {"redact": redact, "key": key}).df()


def write(summary: dict[str, Any], path: Path) -> None:
    """Write ``summary.json``."""
    path.write_text(dumps(summary), encoding="utf-8")
