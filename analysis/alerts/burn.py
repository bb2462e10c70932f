"""Multi-window, multi-burn-rate alerts on the login SLO, as the Google SRE workbook's chapter
"Alerting on SLOs" and Sloth define them.

The SLI is the share of auth attempts without a system failure; its error ratio is recorded
over 5m, 30m, 1h, 6h and 3d. An alert fires when the ratio exceeds ``factor × (1 − target)``
over a long and a short window together: page at 14.4× over 1h and 5m (2% of a 30-day budget
in an hour) or 6× over 6h and 30m (5% in six hours); ticket at 1× over 3d and 6h. ``for`` is
0s, as in the workbook: the short window is what makes an alert stop soon after the burn does.

The names stay clear of a Sloth-generated file beside them: records ``login_slo:…`` (Sloth
writes ``slo:…``) labelled ``slo="login"``, alerts ``LoginSLOErrorBudgetBurn``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis.alerts.promql import prom_duration, prom_number, prom_string, re2_escape, selector
from analysis.alerts.signals import Buckets, Counter, Rule, buckets_baseline, ratio, sum_rates
from analysis.figures import Params

ALERT = "LoginSLOErrorBudgetBurn"
RECORD = "login_slo:sli_error:ratio_rate{window}"
SLO_LABELS = {"slo": "login"}
#: the windows whose error ratio is recorded, in seconds
WINDOWS = {"5m": 300, "30m": 1800, "1h": 3600, "6h": 21600, "3d": 259200}


@dataclass(frozen=True)
class Policy:
    """One alert of the workbook's table: a burn factor over a long and a short window."""

    severity: str
    factor: float
    long: str
    short: str


POLICIES = (
    Policy("page", 14.4, "1h", "5m"),
    Policy("page", 6.0, "6h", "30m"),
    Policy("ticket", 1.0, "3d", "6h"),
)


def threshold(factor: float, target: float) -> float:
    """The error ratio of a burn factor, as the rule file writes it (12 decimals, so that
    Prometheus and the backtest compare the same number)."""
    return round(factor * (1 - target), 12)


def usable(bucket_s: int) -> str | None:
    """Why the report's buckets cannot replay these windows, or None when they can."""
    bad = [w for w, s in WINDOWS.items() if s % bucket_s]
    if bad:
        return (
            f"the report's buckets ({prom_duration(bucket_s)}) do not divide the SLO windows "
            f"{', '.join(bad)}: no burn-rate rule is replayed (use --bucket 1min)"
        )
    return None


def _ratios(buckets: Buckets, failing: list[Counter], attempts: list[Counter]) -> dict:
    """Each window's error ratio at every evaluation, as the recording rules compute it."""
    out = {}
    for name, seconds in WINDOWS.items():
        k = seconds // buckets.seconds
        out[name] = ratio(
            sum_rates(failing, k, seconds, buckets.n), sum_rates(attempts, k, seconds, buckets.n)
        )
    return out


def records(mapping: dict[str, Any], user_error_codes: tuple[str, ...]) -> list[dict[str, Any]]:
    """The recording rules: the SLI's error ratio over each window."""
    m = mapping
    matchers = [f"{m['outcome_label']}={prom_string(m['failure_outcome'])}"]
    if user_error_codes:
        codes = "|".join(re2_escape(c) for c in user_error_codes)
        matchers.append(f"{m['error_code_label']}!~{prom_string(codes)}")
    bad = selector(m["auth_attempts"], matchers, m)
    total = selector(m["auth_attempts"], [], m)
    return [
        {
            "record": RECORD.format(window=w),
            "expr": f"(sum(rate({bad}[{w}])) or vector(0)) / sum(rate({total}[{w}]))",
            "labels": dict(SLO_LABELS),
        }
        for w in WINDOWS
    ]


def rules(
    buckets: Buckets, params: Params, mapping: dict[str, Any]
) -> tuple[list[Rule], list[dict[str, Any]]]:
    """The burn-rate alerts with their firing at every evaluation, and their records."""
    m = mapping
    attempts = [c for c in buckets.counters if c.metric == m["auth_attempts"]]
    failing = [
        c
        for c in attempts
        if c.label(m["outcome_label"]) == m["failure_outcome"]
        and c.label(m["error_code_label"]) not in params.user_error_codes
    ]
    ratios = _ratios(buckets, failing, attempts)
    allowed = 1 - params.slo_target
    out = []
    for p in POLICIES:
        limit = threshold(p.factor, params.slo_target)
        long_name, short_name = RECORD.format(window=p.long), RECORD.format(window=p.short)
        with np.errstate(invalid="ignore"):
            firing = (ratios[p.long] > limit) & (ratios[p.short] > limit)
        rule = Rule(
            "slo_burn_rate",
            ALERT,
            long_name,
            f"{long_name} > {prom_number(limit)} and {short_name} > {prom_number(limit)}",
            f"burn rate of the login SLO's error budget over {p.long} and {p.short}",
            "× the budget rate",
            ratios[p.long] / allowed,
            labels=dict(SLO_LABELS),
        )
        rule.threshold = p.factor
        rule.firing = firing
        rule.condition = rule.record_expr
        rule.basis = {
            "method": "SLO burn rate (Google SRE workbook, multiwindow multi-burn-rate)",
            "slo_target": params.slo_target,
            "factor": p.factor,
            "long_window": p.long,
            "short_window": p.short,
            "error_ratio_threshold": limit,
        }
        rule.alert_labels = {
            "severity": p.severity,
            "signal": "slo_burn_rate",
            "long_window": p.long,
            "short_window": p.short,
        }
        # the baseline of an alert over a long window: evaluations whose long window (the
        # data's start, when longer) lies wholly outside the incident
        rule.baseline = buckets_baseline(buckets, WINDOWS[p.long] // buckets.seconds)
        out.append(rule)
    return out, records(m, params.user_error_codes)
