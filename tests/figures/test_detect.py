"""The window found by the data: varied incidents whose true window is known by construction."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from analysis.figures.detect import agrees, detect_window

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


# --- every signal: known-answer incidents with all the series' columns ---

N_MIN = 14 * 60


def level(base: float, value: float, start=ONSET, end=END) -> np.ndarray:
    out = np.full(N_MIN, base)
    out[idx(start) : idx(end)] = value
    return out


def full_series(
    *,
    failure: np.ndarray | float = 0.001,
    user: np.ndarray | float = 0.0175,
    bypass: np.ndarray | float = 0.0,
    qpa: np.ndarray | float = 3.0,
    latency: np.ndarray | float = 6.0,
    n: int = 300,
    seed: int = 1,
) -> pd.DataFrame:
    """Per-minute auth attempts and database queries drawn from the given levels.

    ``failure``, ``user`` and ``qpa`` apply to the attempts that reach the database; bypass
    logins (a share ``bypass`` of attempts) issue no query and cannot fail.
    """
    rng = np.random.default_rng(seed)

    def arr(v):
        return np.broadcast_to(np.asarray(v, dtype=float), (N_MIN,))

    attempts = rng.poisson(np.full(N_MIN, n))
    bypass_logins = rng.binomial(attempts, np.clip(arr(bypass), 0, 1))
    db_path = attempts - bypass_logins
    system = rng.binomial(db_path, np.clip(arr(failure), 0, 1))
    user_failures = rng.binomial(db_path - system, np.clip(arr(user), 0, 1))
    auth_queries = rng.poisson(db_path * arr(qpa))
    queries = auth_queries + rng.poisson(np.full(N_MIN, 1500))
    p95 = arr(latency) * rng.lognormal(0.0, 0.08, N_MIN)
    return pd.DataFrame(
        {
            "bucket": minutes(N_MIN),
            "attempts": attempts,
            "system_failures": system,
            "user_failures": user_failures,
            "bypass_logins": bypass_logins,
            "auth_queries": auth_queries,
            "queries": queries,
            "latency_p95_ms": p95,
        }
    )


BYPASS_ON, BYPASS_OFF = datetime(2024, 1, 19, 11, 0), datetime(2024, 1, 19, 12, 0)


def test_a_bypass_that_takes_every_login_for_an_hour_neither_splits_nor_shortens():
    # the cause (extra queries per login, a slow database) runs 10:30-12:45; from 11:00 to
    # 12:00 every login bypasses the database: no failure, no query, and the database, spared
    # the logins' queries, is fast again. Nothing of that hour says the incident ended.
    bypass = level(0.0, 1.0, BYPASS_ON, BYPASS_OFF)
    latency = level(6.0, 1500.0)
    latency[idx(BYPASS_ON) : idx(BYPASS_OFF)] = 6.0
    s = full_series(
        failure=level(0.001, 0.3), qpa=level(3.0, 15.0), latency=latency, bypass=bypass
    )
    w = detect_window(s, bucket=MIN)
    assert w is not None and close(w.start, ONSET) and close(w.end, END)
    assert 55 <= w.masked_buckets <= 62
    assert set(w.signals["start"]) == {"system_failure_rate", "queries_per_auth", "latency_p95_ms"}
    assert "system_failure_rate" in w.signals["end"]
    # failures over all attempts, the old signal, found only the part after the bypass
    old = detect_window(s[["bucket", "attempts", "system_failures"]], bucket=MIN)
    assert old is not None and close(old.start, BYPASS_OFF) and close(old.end, END)


def test_a_bypass_of_most_logins_hides_the_failure_rate_but_not_the_window():
    # 80% of logins bypass from 11:00 to 12:00: all attempts' failure rate drops from 30% to
    # 6%, yet the attempts that reach the database fail as often and issue as many queries
    bypass = level(0.0, 0.8, BYPASS_ON, BYPASS_OFF)
    s = full_series(
        failure=level(0.001, 0.3), qpa=level(3.0, 15.0), latency=level(6.0, 1500.0), bypass=bypass
    )
    w = detect_window(s, bucket=MIN)
    assert w is not None and close(w.start, ONSET) and close(w.end, END)
    assert w.masked_buckets > 50
    assert {"system_failure_rate", "queries_per_auth"} <= set(w.signals["start"])
    assert {"system_failure_rate", "queries_per_auth"} <= set(w.signals["end"])


def test_an_incident_seen_only_in_latency_and_queries_per_login():
    s = full_series(qpa=level(3.0, 15.0), latency=level(6.0, 1500.0))
    w = detect_window(s, bucket=MIN)
    assert w is not None and close(w.start, ONSET) and close(w.end, END)
    assert w.signals == {
        "start": ("queries_per_auth", "latency_p95_ms"),
        "end": ("queries_per_auth", "latency_p95_ms"),
    }
    assert w.excess_failures == 0.0


def test_an_incident_seen_only_in_queries_per_login():
    s = full_series(qpa=level(3.0, 9.0))
    w = detect_window(s, bucket=MIN)
    assert w is not None and close(w.start, ONSET) and close(w.end, END)
    assert w.signals == {"start": ("queries_per_auth",), "end": ("queries_per_auth",)}


def test_user_class_failures_rising_tenfold_with_no_system_failure():
    # a broken deploy answers 401 to good passwords: "the user's" code, the system's fault
    s = full_series(failure=0.0, user=level(0.0175, 0.175))
    w = detect_window(s, bucket=MIN)
    assert w is not None and close(w.start, ONSET) and close(w.end, END)
    assert w.signals == {"start": ("user_failure_rate",), "end": ("user_failure_rate",)}


def test_signals_that_move_before_the_failures_date_the_start():
    # the sample's story: the deploy at 10:26 multiplies the queries and slows the database;
    # logins fail from 10:30; the fix at 12:40 stops the queries, failures drain until 12:45
    early, fix = ONSET - 4 * MIN, END - 5 * MIN
    s = full_series(
        failure=level(0.0, 0.3),  # the sample has no system failure before the incident
        qpa=level(3.0, 20.0, early, fix),
        latency=level(6.0, 1500.0, early, fix),
    )
    w = detect_window(s, bucket=MIN)
    assert w is not None and close(w.start, early, 1) and close(w.end, END, 1)
    assert w.signals["start"] == ("queries_per_auth", "latency_p95_ms")
    assert w.signals["end"] == ("system_failure_rate",)
    assert close(w.by_signal["system_failure_rate"][0], ONSET, 1)
    assert close(w.by_signal["queries_per_auth"][1], fix, 1)


def test_a_bypass_left_on_after_the_incident_does_not_stretch_it():
    # 40% of logins keep bypassing until two hours after the end, like the sample
    bypass = level(0.0, 0.4, BYPASS_ON, END + 120 * MIN)
    s = full_series(
        failure=level(0.001, 0.3), qpa=level(3.0, 15.0), latency=level(6.0, 1500.0), bypass=bypass
    )
    w = detect_window(s, bucket=MIN)
    assert w is not None and close(w.start, ONSET) and close(w.end, END)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_signal_quiet_or_only_mildly_up_is_no_incident(seed):
    assert detect_window(full_series(seed=seed), bucket=MIN) is None
    # user errors at twice their level, queries per login 1.2×: noticeable, not an outage
    mild = full_series(user=level(0.0175, 0.035), qpa=level(3.0, 3.6), seed=seed)
    assert detect_window(mild, bucket=MIN) is None


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_sparse_service_pools_every_signal_and_dates_the_edges_from_raw_buckets(seed):
    # a dozen logins a minute: pooled over about nine minutes, which spreads every change;
    # the edges go back to the raw minutes where the queries and the failures moved
    early, fix = ONSET - 4 * MIN, END - 5 * MIN
    s = full_series(
        failure=level(0.0, 0.3),
        qpa=level(3.5, 25.0, early, fix),
        latency=level(6.5, 1800.0, early, fix),
        bypass=level(0.0, 0.4, ONSET + 60 * MIN, END + 60 * MIN),
        n=12,
        seed=seed,
    )
    w = detect_window(s, bucket=MIN)
    assert w is not None and close(w.start, early, 1) and close(w.end, END, 2)
    assert w.signals["start"] == ("queries_per_auth", "latency_p95_ms")
    assert close(w.by_signal["system_failure_rate"][0], ONSET, 1)
    # 40% of a dozen logins is now and then a majority: not a masked stretch
    assert w.masked_buckets == 0
