"""The window found by the data: varied incidents whose true window is known by construction."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from analysis.detect import agrees, detect_window

T0 = datetime(2024, 1, 19, 6, 0)
MIN = timedelta(minutes=1)
ONSET = datetime(2024, 1, 19, 10, 30)
END = datetime(2024, 1, 19, 12, 45)


def minutes(n: int = 14 * 60) -> pd.DatetimeIndex:
    return pd.date_range(T0, periods=n, freq="1min")


def series(rate: np.ndarray, *, n: int | np.ndarray = 300, seed: int = 1) -> pd.DataFrame:
    """Per-minute attempts and system failures drawn with the given failure rate."""
    rng = np.random.default_rng(seed)
    attempts = np.broadcast_to(np.asarray(n), rate.shape).astype(int)
    attempts = rng.poisson(attempts)
    failures = rng.binomial(attempts, np.clip(rate, 0, 1))
    return pd.DataFrame(
        {"bucket": minutes(len(rate)), "attempts": attempts, "system_failures": failures}
    )


def idx(t: datetime) -> int:
    return int((t - T0) / MIN)


def close(a: datetime, b: datetime, tol: int = 2) -> bool:
    return abs(a - b) <= tol * MIN


def step(base: float = 0.001, level: float = 0.3, start=ONSET, end=END) -> np.ndarray:
    rate = np.full(14 * 60, base)
    rate[idx(start) : idx(end)] = level
    return rate


def test_sharp_step():
    w = detect_window(series(step()), bucket=MIN)
    assert w is not None and close(w.start, ONSET) and close(w.end, END)


def test_slow_ramp_is_dated_from_where_it_began():
    rate = np.full(14 * 60, 0.001)
    ramp = np.linspace(0.0, 0.4, 30)
    rate[idx(ONSET) : idx(ONSET) + 30] = np.maximum(ramp, 0.001)
    rate[idx(ONSET) + 30 : idx(END) - 20] = 0.4
    rate[idx(END) - 20 : idx(END)] = np.linspace(0.4, 0.01, 20)
    w = detect_window(series(rate), bucket=MIN)
    assert w is not None and close(w.start, ONSET) and close(w.end, END)


def test_outage_in_one_datacenter_only():
    # a datacenter with 8% of the traffic fails completely: 8% of all attempts, no more
    w = detect_window(series(step(base=0.002, level=0.08 + 0.002)), bucket=MIN)
    assert w is not None and close(w.start, ONSET) and close(w.end, END)


def test_a_partial_mitigation_inside_the_incident_keeps_it_one_window():
    rate = step(level=0.3)
    rate[idx(ONSET) + 40 : idx(END)] = 0.05
    w = detect_window(series(rate, n=60), bucket=MIN)
    assert w is not None and close(w.start, ONSET) and close(w.end, END)


def noisy_baseline(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rate = np.clip(0.01 + rng.normal(0, 0.002, 14 * 60), 0, 1)
    for at in (60, 200, 400, 700):  # short harmless spikes: two minutes each
        rate[at : at + 2] = 0.25
    return rate


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_noisy_baseline_with_short_spikes_is_no_incident(seed):
    assert detect_window(series(noisy_baseline(seed), seed=seed), bucket=MIN) is None


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_noisy_baseline_with_spikes_and_an_incident(seed):
    rate = noisy_baseline(seed)
    rate[idx(ONSET) : idx(END)] = 0.2
    w = detect_window(series(rate, seed=seed), bucket=MIN)
    assert w is not None and close(w.start, ONSET) and close(w.end, END)


def test_an_incident_that_runs_to_the_end_of_the_data():
    rate = step(end=T0 + 14 * 60 * MIN)
    w = detect_window(series(rate), bucket=MIN)
    assert w is not None and close(w.start, ONSET)
    assert w.end == T0 + 14 * 60 * MIN


@pytest.mark.parametrize("base", [0.0, 0.001, 0.02])
def test_no_incident_at_all(base):
    assert detect_window(series(np.full(14 * 60, base)), bucket=MIN) is None


def test_silent_minutes_and_empty_data():
    s = series(step())
    s.loc[idx(ONSET) - 30 : idx(ONSET) - 20, ["attempts", "system_failures"]] = 0
    w = detect_window(s, bucket=MIN)
    assert w is not None and close(w.start, ONSET)
    assert detect_window(s.iloc[0:0], bucket=MIN) is None


def test_agrees_within_five_minutes_at_both_ends():
    w = detect_window(series(step()), bucket=MIN)
    assert agrees((ONSET, END), w)
    assert agrees((ONSET - 5 * MIN, END + 4 * MIN), w) == (
        abs(w.start - (ONSET - 5 * MIN)) <= 5 * MIN and abs(w.end - (END + 4 * MIN)) <= 5 * MIN
    )
    assert not agrees((ONSET - 20 * MIN, END), w)
    assert not agrees((ONSET, END), None)
