"""The login SLO: the error budget an incident consumed, and the multi-window burn-rate alerts,
on series whose answers are known by construction (the Google SRE workbook's formula)."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import yaml

from analysis.alerts import burn, promtool
from analysis.alerts.rules import metric_mapping
from analysis.alerts.signals import counters_from
from analysis.figures.metrics import Params
from analysis.figures.slo import slo_figures
from tests.conftest import require_promtool

T0 = datetime(2024, 1, 19, 0, 0)
ATTEMPTS = 1000  # per one-minute bucket
QUIET = 30  # buckets without a failure before the burn starts
N = QUIET + 420


def _buckets(errors_per_bucket: int, *, target: float = 0.999):
    """Constant traffic; from bucket QUIET on, a constant number of system failures."""
    times = [T0 + timedelta(minutes=i) for i in range(N)]
    params = Params(start=times[QUIET], end=times[-1], slo_target=target, guard_minutes=0)
    series = pd.DataFrame({"bucket": times, "attempts": ATTEMPTS, "queries": 0})
    codes = pd.DataFrame(
        [
            {"bucket": b, "error_code": "db_timeout", "failures": errors_per_bucket}
            for b in times[QUIET:]
        ]
    )
    return counters_from(series, codes, params=params, mapping=metric_mapping({})), params


def _workbook(errors_per_bucket: int, policy: burn.Policy, target: float) -> np.ndarray:
    """When the workbook's alert fires: both windows' error ratio above factor × (1 − target),
    each window holding the buckets of the data it covers (fewer at the data's start)."""
    limit = policy.factor * (1 - target)
    out = np.zeros(N + 1, dtype=bool)
    for j in range(1, N + 1):
        above = []
        for window in (policy.long, policy.short):
            k = burn.WINDOWS[window] // 60
            covered = min(k, j)
            burning = min(max(j - QUIET, 0), covered)
            above.append(errors_per_bucket * burning / (ATTEMPTS * covered) > limit)
        out[j] = all(above)
    return out


@pytest.mark.parametrize("errors", [0, 1, 2, 5, 7, 13, 15, 20, 200])
def test_each_burn_rate_alert_fires_exactly_when_the_workbook_says(errors):
    # 1 error per 1000 attempts is 1× the budget rate of 99.9%: 0.95×…200× around the factors
    buckets, params = _buckets(errors)
    rules, records = burn.rules(buckets, params, metric_mapping({}))
    for policy, rule in zip(burn.POLICIES, rules, strict=True):
        expected = _workbook(errors, policy, params.slo_target)
        assert list(np.flatnonzero(rule.firing)) == list(np.flatnonzero(expected)), policy
        # never below its factor: a constant burn of k× pages only when k > factor
        if errors / ATTEMPTS / (1 - params.slo_target) <= policy.factor:
            assert not rule.firing.any(), policy
    assert [r["record"] for r in records] == [
        f"login_slo:sli_error:ratio_rate{w}" for w in ("5m", "30m", "1h", "6h", "3d")
    ]


def test_a_fifteen_times_burn_pages_after_the_minutes_the_formula_gives():
    buckets, params = _buckets(15)  # 15× the budget rate
    page = burn.rules(buckets, params, metric_mapping({}))[0][0]
    # 1h window: 0.015 × m / 60 > 0.0144 first at m = 58 burning minutes (57.6 rounded up);
    # the 5m window is above from the first burning minute
    assert np.flatnonzero(page.firing)[0] == QUIET + 58


def test_promtool_agrees_with_the_burn_rate_backtest(tmp_path):
    require_promtool()
    buckets, params = _buckets(20)
    rules, records = burn.rules(buckets, params, metric_mapping({}))
    for rule in rules:
        rule.annotations = {"summary": rule.title}
    group = {
        "name": "slo",
        "interval": "1m",
        "rules": [
            {"record": r["record"], "expr": r["expr"], "labels": r["labels"]} for r in records
        ]
        + [
            {
                "alert": r.alert,
                "expr": r.expr,
                "labels": r.alert_labels,
                "annotations": r.annotations,
            }
            for r in rules
        ],
    }
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": [group]}), encoding="utf-8")
    (tmp_path / "rules_test.yaml").write_text(
        promtool.unit_test(buckets, rules, rule_file="rules.yaml"), encoding="utf-8"
    )
    assert promtool.check(tmp_path).returncode == 0
    replay = promtool.replay(tmp_path)
    assert replay.returncode == 0, replay.stdout[-3000:]


def test_the_budget_share_of_a_hand_built_incident_is_the_hand_count():
    # 3 hours at 100 attempts a minute; the middle hour is the incident with 50 system failures
    times = [T0 + timedelta(minutes=i) for i in range(180)]
    failures = [1 if 60 <= i < 110 else 0 for i in range(180)]
    series = pd.DataFrame({"bucket": times, "attempts": 100, "system_failures": failures})
    params = Params(start=times[60], end=times[120], guard_minutes=15)
    s = slo_figures(series, params, bad_attempts=50)
    # baseline: minutes 0-44 and 135-179 (15-minute guards), 100 a minute = 6000 an hour;
    # 30 days × 24 h × 6000 = 4,320,000 attempts, 0.1% of them = 4,320 bad attempts allowed
    assert s["baseline_attempts_per_hour"] == 6000.0
    assert s["budget_attempts"] == 4320.0
    assert s["budget_consumed"] == round(50 / 4320, 4)
    # a minute with 1 failure in 100 attempts burns 0.01 / 0.001 = 10× the budget rate
    assert (s["peak_burn_rate"], s["peak_burn_at"]) == (10.0, "2024-01-19T01:00:00Z")
    assert (s["target"], s["window_days"], s["bad_attempts"]) == (0.999, 30, 50)


def test_without_baseline_traffic_the_budget_is_null_with_a_reason():
    times = [T0 + timedelta(minutes=i) for i in range(60)]
    series = pd.DataFrame({"bucket": times, "attempts": 100, "system_failures": 1})
    params = Params(start=times[0], end=times[-1] + timedelta(minutes=1))
    s = slo_figures(series, params, bad_attempts=60)
    assert s["budget_attempts"] is None and s["budget_consumed"] is None
    assert "no baseline traffic" in s["reason"]
    assert s["peak_burn_rate"] == 10.0


def test_buckets_that_do_not_divide_the_windows_skip_the_burn_rules_with_a_reason():
    assert burn.usable(60) is None and burn.usable(300) is None
    assert "do not divide the SLO windows 5m" in burn.usable(420)
