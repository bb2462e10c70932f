"""What a summary supports, and how its figures read: the predicates every sentence and chart
of the draft is conditional on, the chart titles (each states its finding), the terminal
headline, and the formatting of times, shares and durations.

Kept apart from :mod:`analysis.report.draft` so that a chart's title and the draft's sentence about
the same figure follow one rule: a figure that is absent or not significant is not claimed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from analysis.figures import server_events


def clock(iso: str | None) -> str:
    """An instant as ``10:26 UTC``."""
    if not iso:
        return "n/a"
    dt = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return dt.strftime("%H:%M UTC")


def date_time(iso: str | None) -> str:
    """An instant as ``January 19, 2024, 10:26 UTC``."""
    if not iso:
        return "n/a"
    dt = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return dt.strftime("%B %-d, %Y, %H:%M UTC")


def pct(x: float | None, digits: int = 1) -> str:
    """A share as a percentage."""
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"


def duration(seconds: int | None) -> str:
    """Seconds as ``4 h 14 min`` or ``7 min``."""
    if seconds is None:
        return "n/a"
    sign = "-" if seconds < 0 else ""
    s = abs(int(seconds))
    h, rem = divmod(s, 3600)
    m, _ = divmod(rem, 60)
    return f"{sign}{h} h {m:02d} min" if h else f"{sign}{m} min"


def num(x: float | None, fmt: str = ",.0f") -> str:
    """A number in ``fmt``."""
    return "n/a" if x is None else format(x, fmt)


#: how the draft names the detector's signals
SIGNAL_NAMES = {
    "system_failure_rate": "system failures",
    "queries_per_auth": "DB queries per login",
    "latency_p95_ms": "DB p95 latency",
    "user_failure_rate": "user-class failures",
}
#: a dimension value is named as where failures concentrate only below this p-value
SIGNIFICANT_P = 0.01
#: queries per login must rise this much for the draft to call it a rise worth alerting on
AMPLIFIED = 1.5


def signal_names(names: list[str] | tuple[str, ...] | None) -> str:
    """Detector signal names as the draft writes them, joined with "and"."""
    names = [SIGNAL_NAMES.get(n, n) for n in names or ()]
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def has_queries(s: dict[str, Any]) -> bool:
    """True when the report had a query log with rows."""
    q = s["db"].get("queries") or {}
    return bool(q.get("baseline") or q.get("incident"))


def qpa_measured(s: dict[str, Any]) -> bool:
    qpa = s["db"]["queries_per_auth"]
    return has_queries(s) and qpa["baseline"] is not None and qpa["incident"] is not None


def latency_measured(s: dict[str, Any]) -> bool:
    lat = s["db"]["latency_p95_ms"]
    return lat["baseline"] is not None and lat["incident"] is not None


def top_dimension(s: dict[str, Any]) -> dict[str, Any] | None:
    """The first dimension value when it scores above zero and is significant."""
    dims = s.get("dimensions") or []
    if not dims:
        return None
    d = dims[0]
    p = d.get("p_value")
    if (d.get("score") or 0) <= 0 or (p is not None and p >= SIGNIFICANT_P):
        return None
    return d


def user_class_far(s: dict[str, Any]) -> dict[str, Any] | None:
    """The user-class failure figures when they rose far above their baseline."""
    uc = s["auth"].get("user_class")
    return uc if uc and uc.get("far_above_baseline") else None


def steady_system_failures(s: dict[str, Any]) -> bool:
    """True when the window's system failures run at about their baseline rate (under twice
    it) and the detector did not see them rise: codes that may be the user's under another
    name (a source's own "bad_password"), not an outage."""
    auth = s["auth"]
    rate, base = auth.get("system_error_rate"), auth.get("baseline_system_error_rate")
    det = s["window"]["detected"] or {}
    if "system_failure_rate" in (det.get("by_signal") or {}):
        return False
    return bool(auth["system_failures"] and rate is not None and base and rate < 2 * base)


def _overview_title(s: dict[str, Any]) -> str:
    db, auth = s["db"], s["auth"]
    amp, lat = db["amplification"], db["latency_p95_ms"]
    title = f"Auth errors peaked at {pct(auth['peak_error_rate'], 0)}"
    if amp is not None and qpa_measured(s):
        title += f" while DB queries per login rose {amp:.1f}×"
        if latency_measured(s):
            title += (
                f" and p95 latency {num(lat['baseline'], ',.0f')} → "
                f"{num(lat['incident'], ',.0f')} ms"
            )
    elif latency_measured(s):
        title += (
            f"; DB p95 latency {num(lat['baseline'], ',.0f')} → {num(lat['incident'], ',.0f')} ms"
        )
    return title


def _error_codes_title(s: dict[str, Any]) -> str:
    auth = s["auth"]
    if auth["baseline_error_rate"] is None:
        return (
            f"{auth['system_failures']:,} system failures in the declared window "
            "(no data outside it to compare)"
        )
    return (
        f"{auth['system_failures']:,} system failures in the declared window, "
        f"against a baseline error rate of {pct(auth['baseline_error_rate'])}"
    )


def _fingerprints_title(s: dict[str, Any]) -> str:
    fps = s["db"]["top_fingerprints"]
    if not fps:
        return f"No query fingerprints (queries per auth: {s['db']['queries_per_auth']['method']})"
    top = fps[0]
    fp = top["fingerprint"]
    fp = fp if len(fp) <= 50 else fp[:49] + "…"
    return (
        f"'{fp}' went from {num(top['baseline_per_auth'], '.2f')} to "
        f"{num(top['incident_per_auth'], '.2f')} per login"
    )


def _affected_users_title(s: dict[str, Any]) -> str:
    imp = s["impact"]
    return (
        f"{imp['users_affected']:,} users ({pct(imp['affected_share'], 0)} of "
        f"{imp['users_active']:,} active) hit a system failure"
    )


def _dimensions_title(s: dict[str, Any]) -> str:
    d = top_dimension(s)
    if s["dimensions"] and d is None:
        return "No dimension value stands out among the system failures beyond chance"
    if d is None:
        return "No system failure in the window to compare"
    return (
        f"Failures concentrate in {d['dimension']} = {d['value']}: "
        f"{pct(d['incident_share'], 0)} of system failures, "
        f"{pct(d['baseline_share'], 0)} of attempts"
    )


def _bypass_title(s: dict[str, Any]) -> str:
    bp = s["bypass"]
    if not bp["logins"]:
        return "No login bypassed the database check"
    return (
        f"{bp['logins']:,} logins skipped the database check, {clock(bp['first'])} to "
        f"{clock(bp['last'])}; {bp['logins_after_declared_end']:,} after the declared end"
    )


@dataclass(frozen=True)
class Chart:
    """Everything a report knows of one chart but its drawing (:mod:`analysis.report.charts`):
    adding a chart is its drawing, one row of :data:`CHART_TABLE` and one notebook cell."""

    name: str
    #: whether the summary has the figure the chart shows
    shown: Callable[[dict[str, Any]], bool]
    #: the title, which states the finding
    title: Callable[[dict[str, Any]], str]
    #: why it is not drawn, as the notebook says it
    absent: str
    #: drawn by the notebook's own process while a helper draws the others: the overview
    #: (three panels, more than a third of the work) and the dimensions chart balance the
    #: helper's four on the sample (1.5 s for six charts; alternating: 1.6 to 2.0 s)
    own_process: bool = False


#: the charts of a report, in the order the draft links them
CHART_TABLE: tuple[Chart, ...] = (
    Chart("overview", lambda s: True, _overview_title, "no auth attempt", own_process=True),
    Chart(
        "error_codes",
        lambda s: bool(s["auth"]["failures"] or s["auth"]["baseline_error_rate"]),
        _error_codes_title,
        "no failed login in the data",
    ),
    Chart(
        "fingerprints",
        lambda s: bool(s["db"]["top_fingerprints"]),
        _fingerprints_title,
        "no query tied to the auth attempts",
    ),
    Chart(
        "affected_users",
        lambda s: bool(s["impact"]["users_affected"]),
        _affected_users_title,
        "no user had a system failure",
    ),
    Chart(
        "dimensions",
        lambda s: bool(s.get("dimensions")),
        _dimensions_title,
        "no system failure in the window to compare",
        own_process=True,
    ),
    Chart(
        "bypass",
        lambda s: bool(s["bypass"]["logins"]),
        _bypass_title,
        "no login bypassed the database check",
    ),
    Chart(
        "server_events",
        lambda s: bool((s["db"].get("server_events") or {}).get("total")),
        server_events.title,
        "the database logged no error",
    ),
)
CHARTS = tuple(c.name for c in CHART_TABLE)
_BY_NAME = {c.name: c for c in CHART_TABLE}


def charts_for(s: dict[str, Any]) -> list[str]:
    """The charts that have a figure to show, in the draft's order."""
    return [c.name for c in CHART_TABLE if c.shown(s)]


def chart_titles(s: dict[str, Any]) -> dict[str, str]:
    """A title for each chart that states its finding."""
    return {c.name: c.title(s) for c in CHART_TABLE}


def absent(name: str) -> str:
    """Why the chart ``name`` is not drawn, as the notebook says it."""
    return _BY_NAME[name].absent


def own_charts() -> tuple[str, ...]:
    """The charts the notebook's own process draws."""
    return tuple(c.name for c in CHART_TABLE if c.own_process)


def headline(s: dict[str, Any]) -> str:
    """Two lines for the terminal after a report."""
    imp, db, w = s["impact"], s["db"], s["window"]
    det = w["detected"]
    detected = f"{clock(det['start'])}–{clock(det['end'])}" if det else "none"
    qpa = (
        f"queries per auth ×{num(db['amplification'], '.2f')}; "
        if db["amplification"] is not None
        else ""
    )
    return (
        f"affected {imp['users_affected']:,} of {imp['users_active']:,} active users "
        f"({pct(imp['affected_share'])}); {qpa}"
        f"detected window {detected} (agrees with declared: {w['agrees']})"
    )
