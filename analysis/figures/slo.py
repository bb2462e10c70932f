"""The login SLO: how much of a window's error budget the incident consumed.

The SLO is a share of attempts without a system failure (``slo_target``, 0.999) over a window
(``slo_window``, 30 days). Its error budget is the bad attempts a window may hold: (1 − target)
× the attempts of one window at the data's baseline traffic. The incident's bad attempts are
its system failures in the declared window; the share of the budget they consumed is what a
postmortem's impact section states. The burn rate of a bucket is its error ratio ÷ (1 −
target): 1 spends the budget exactly over the window, 14.4 spends 2% of it in an hour (the
Google SRE workbook's fast-burn page).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from analysis.figures.metrics import Params
from analysis.times import bucket_seconds, iso

BUDGET_DIGITS = 4


def plain_number(x: float) -> float | int:
    return int(x) if float(x).is_integer() else x


def baseline_mask(series: pd.DataFrame, params: Params) -> pd.Series:
    """The buckets of the baseline: wholly outside the declared window and its guards."""
    starts = pd.to_datetime(series["bucket"])
    width = pd.Timedelta(seconds=bucket_seconds(params.bucket))
    guard = pd.Timedelta(minutes=params.guard_minutes)
    return (starts + width <= pd.Timestamp(params.start) - guard) | (
        starts >= pd.Timestamp(params.end) + guard
    )


def slo_figures(series: pd.DataFrame, params: Params, bad_attempts: int) -> dict[str, Any]:
    """``summary.json``'s ``slo``: the target and window, the incident's bad attempts, the
    budget of one window at baseline traffic, the share consumed, and the peak burn rate.

    The budget is null with a ``reason`` when the data has no baseline traffic to scale a
    window by (never computed another way).
    """
    allowed = 1 - params.slo_target
    out: dict[str, Any] = {
        "target": params.slo_target,
        "window_days": plain_number(params.slo_window_days),
        "bad_attempts": int(bad_attempts),
        "budget_attempts": None,
        "budget_consumed": None,
        "baseline_attempts_per_hour": None,
        "peak_burn_rate": None,
        "peak_burn_at": None,
    }
    if series.empty:
        out["reason"] = "no auth attempt in the data"
        return out
    base = series[baseline_mask(series, params)]
    seconds = len(base) * bucket_seconds(params.bucket)
    attempts = float(base["attempts"].sum())
    if seconds and attempts > 0:
        per_second = attempts / seconds
        budget = allowed * per_second * params.slo_window_days * 86400
        out["baseline_attempts_per_hour"] = round(per_second * 3600, 1)
        out["budget_attempts"] = round(budget, 1)
        out["budget_consumed"] = round(bad_attempts / budget, BUDGET_DIGITS)
    else:
        out["reason"] = (
            "no baseline traffic (no attempt outside the declared window and its guards): "
            "a window's budget cannot be scaled"
        )
    live = series[series["attempts"] > 0]
    if not live.empty:
        burn = live["system_failures"] / live["attempts"] / allowed
        at = burn.idxmax()  # the earliest of equal peaks
        out["peak_burn_rate"] = round(float(burn[at]), 1)
        out["peak_burn_at"] = iso(pd.Timestamp(live.loc[at, "bucket"]).to_pydatetime())
    return out
