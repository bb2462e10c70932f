"""Find the incident window from the data alone, from every signal the data carries.

Signals (each used when the series has its columns and data):

- ``system_failure_rate``: system failures per attempt that went through the database;
- ``queries_per_auth``: database queries issued per such attempt;
- ``latency_p95_ms``: the database's p95 statement latency;
- ``user_failure_rate``: user-class failures (wrong password, 401) per attempt, only when it
  rises *far* above its normal level (3×): a 401 storm after a broken deploy is an outage.

A bypass login (``auth_path = 'bypass'``) issues no query and cannot fail, so the three auth
signals are measured per database-path attempt (attempts − bypass logins). A bucket where the
bypass took most logins (two thirds or more) is *masked*: when it looks normal, nothing is
known of it, and it neither ends a segment nor counts as a gap, so a mitigation that hides
the symptom for an hour while the cause goes on neither splits nor shortens the window.

Each signal's normal level is found in two passes: first its lower quartile (robust to the
incident itself while it covers less than three quarters of the data), then the level of every
bucket outside the incident the first pass found (a quantile of sparse counts is 0, and
ordinary noise would look anomalous against it). The noise is the larger of the robust spread
(1.4826 × MAD) and the sampling noise a bucket of that many attempts would show anyway
(binomial for the rates, Poisson for queries per attempt); latency is compared on a log scale.
Queries per attempt and latency must also move by a factor (1.5× and 2× when hot, 1.25× and
1.5× at an edge), so that a large service's statistically clear but harmless wobble is no
incident; user-class failures are tested against 3× (2× at an edge) their level, with the
noise a bucket would show there.

A bucket is *hot* for a signal when it stands ``z`` noise units above the normal level (with
at least ``min_failures`` failures for the rates), *warm* above ``z_edge`` units. Buckets warm
for any signal, with gaps of up to ``max_gap`` quiet buckets, form segments: the lower
threshold dates a slow ramp from where it began rather than from where it became obvious,
and keeps a stretch where a partial mitigation eased the failures inside the incident. A
signal takes part in a segment when at least ``min_buckets`` of its buckets are hot there; a
segment without one is a short harmless spike. Each edge is the outermost pair of consecutive
buckets warm for a taking-part signal, so one noisy bucket does not move it, and the signals
warm in the edge's pair are its ``signals``. The segment with the largest sum of (capped)
excess noise units is the incident.

Buckets too sparse for this (fewer than ``min_attempts`` attempts at the median) are pooled
over a centred window of k buckets first (a p95 by the pool's median); the edges found on
the pooled series are then moved, within half a pool, to the first and last raw bucket that
stands clearly above the normal level of a taking-part signal, judged on the raw bucket's
own noise, and the edge signals are read there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

#: the signals in the order they are reported
SIGNALS = ("system_failure_rate", "queries_per_auth", "latency_p95_ms", "user_failure_rate")
#: a bucket where bypass logins are at least this share of attempts is masked
MASKED_SHARE = 2 / 3
#: user-class failures count only this far above their normal level (hot, edge)
USER_FAR = (3.0, 2.0)
#: queries per attempt must rise by this factor (hot, edge)
QPA_FACTOR = (1.5, 1.25)
#: latency p95 must rise by this factor (hot, edge)
LATENCY_FACTOR = (2.0, 1.5)
#: a bucket's p95 needs this many statements to count
MIN_QUERIES = 20
#: one bucket's excess is capped at this many noise units in a segment's strength
Z_CAP = 10.0


@dataclass(frozen=True)
class Window:
    """A detected window ``[start, end)`` and the evidence for it."""

    start: datetime
    end: datetime
    baseline_rate: float
    peak_rate: float
    excess_failures: float
    #: the signals anomalous at each edge: ``{"start": (...), "end": (...)}``
    signals: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: each taking-part signal's own first and last anomalous bucket in the window
    by_signal: dict[str, tuple[datetime, datetime]] = field(default_factory=dict)
    #: buckets inside the window where a bypass masked the auth signals
    masked_buckets: int = 0


@dataclass
class _Flags:
    """One signal's verdict per bucket."""

    name: str
    hot: np.ndarray
    warm: np.ndarray
    #: excess in noise units (0 where the signal is not measured)
    strength: np.ndarray
    #: raw (unpooled) buckets that stand above the normal level, for refining pooled edges
    above: np.ndarray
    level: float


@dataclass
class _Signal:
    """A signal's pooled and raw values, and how to judge them against a normal level."""

    name: str
    kind: str  # "rate" (binomial), "count" (Poisson per attempt) or "latency" (log scale)
    x: np.ndarray
    n: np.ndarray
    raw_x: np.ndarray
    raw_n: np.ndarray
    valid: np.ndarray
    value: np.ndarray
    raw_value: np.ndarray
    factor: tuple[float, float] = (1.0, 1.0)


def detect_window(
    series: pd.DataFrame,
    *,
    bucket: timedelta,
    z: float = 4.0,
    z_edge: float = 2.5,
    min_failures: int = 3,
    min_buckets: int = 5,
    max_gap: int = 3,
    min_attempts: int = 100,
) -> Window | None:
    """The incident window from a per-bucket series, or None when nothing is anomalous.

    ``series`` needs ``bucket``, ``attempts`` and ``system_failures``, one row per bucket with
    empty buckets present as zeros (``sql/series.sql`` gives exactly that); ``bypass_logins``,
    ``user_failures``, ``auth_queries``, ``queries`` and ``latency_p95_ms`` add their signals.
    """
    if series.empty:
        return None
    attempts = series["attempts"].to_numpy(dtype=float)
    bypass = _col(series, "bypass_logins")
    n_db = np.maximum(attempts - bypass, 0.0)
    if not (attempts > 0).any():
        return None
    k = _pool_size(n_db, min_attempts, len(series))
    # masked where the bypass took most logins (pooled like the signals, so that a sparse
    # bucket's chance majority of bypass logins does not count)
    pooled_bypass, pooled_attempts = _pool(bypass, k), _pool(attempts, k)
    masked = (pooled_bypass > 0) & (pooled_bypass >= MASKED_SHARE * np.maximum(pooled_attempts, 1))
    signals = _signals(series, n_db, k)
    if not signals:
        return None
    opts = {"z": z, "z_edge": z_edge, "min_failures": min_failures}
    found, flags = _two_passes(signals, masked, len(series), min_buckets, max_gap, opts)
    if found is None:
        return None
    return _window(series, bucket, signals, flags, found, masked, k)


def _pool_size(n_db: np.ndarray, min_attempts: int, length: int) -> int:
    """Return the (odd) number of buckets to pool: enough for ``min_attempts`` attempts."""
    # sparse buckets (a small service, a short bucket) are pooled over a centred window of
    # k buckets, enough for about `min_attempts` attempts; the edges are refined afterwards
    positive = n_db[n_db > 0]
    k = (
        int(max(1, np.ceil(min_attempts / max(float(np.median(positive)), 1.0))))
        if len(positive)
        else 1
    )
    if k > 1:
        k += 1 - k % 2
    # no longer than the series: a longer kernel would lengthen the pooled arrays
    if k > length:
        k = max(1, length - 1 + length % 2)
    return k


def _two_passes(
    signals: list[_Signal],
    masked: np.ndarray,
    length: int,
    min_buckets: int,
    max_gap: int,
    opts: dict,
) -> tuple[tuple[int, int, tuple[str, ...]] | None, list[_Flags]]:
    """Return the incident and its flags, with normal levels from outside a first guess."""
    # first pass: each signal's lower quartile as its normal level
    first = [_flags(s, _first_level(s), None, **opts) for s in signals]
    found = _best(first, masked, min_buckets, max_gap)
    # second pass: the normal level outside the first pass's incident
    outside = np.ones(length, dtype=bool)
    if found is not None:
        outside[max(0, found[0] - max_gap) : found[1] + max_gap + 1] = False
    second = []
    for s, f in zip(signals, first, strict=True):
        quiet = s.valid & outside
        second.append(_flags(s, _level(s, quiet), quiet, **opts) if quiet.any() else f)
    return _best(second, masked, min_buckets, max_gap), second


def _window(
    series: pd.DataFrame,
    bucket: timedelta,
    signals: list[_Signal],
    second: list[_Flags],
    found: tuple[int, int, tuple[str, ...]],
    masked: np.ndarray,
    k: int,
) -> Window:
    """Return the found segment as a window: its edges in time, evidence and signals."""
    lo, hi, names = found
    part = [f for f in second if f.name in names]
    # where each signal is anomalous: its warm buckets, or, on a pooled series (which spreads
    # every change over half a pool), its raw buckets above the normal level
    seen_at = {f.name: f.above if k > 1 else f.warm for f in part}
    if k > 1:
        above = np.logical_or.reduce([f.above for f in part])
        lo, hi = _refine(above, lo, hi, k)
    buckets = pd.to_datetime(series["bucket"]).dt.to_pydatetime()
    fail = next((f for f in second if f.name == "system_failure_rate"), None)
    fs = next(s for s in signals if s.name == "system_failure_rate")
    p0 = fail.level if fail is not None else 0.0
    sl = slice(lo, hi + 1)
    excess = float((fs.x[sl] - p0 * fs.n[sl]).sum()) if "system_failure_rate" in names else 0.0
    by_signal = {}
    for f in part:
        seen = np.flatnonzero(seen_at[f.name][sl])
        if len(seen):
            by_signal[f.name] = (buckets[lo + seen[0]], buckets[lo + seen[-1]] + bucket)
    return Window(
        start=buckets[lo],
        end=buckets[hi] + bucket,
        baseline_rate=p0,
        peak_rate=float(fs.value[sl][fs.valid[sl]].max()) if fs.valid[sl].any() else 0.0,
        excess_failures=excess,
        signals={
            "start": _at_edge(part, seen_at, lo, lo + 1),
            "end": _at_edge(part, seen_at, hi, hi - 1),
        },
        by_signal={name: by_signal[name] for name in SIGNALS if name in by_signal},
        masked_buckets=int(masked[sl].sum()),
    )


def _col(series: pd.DataFrame, name: str) -> np.ndarray:
    if name not in series:
        return np.zeros(len(series))
    return series[name].fillna(0).to_numpy(dtype=float)


def _pool(values: np.ndarray, k: int) -> np.ndarray:
    return np.convolve(values, np.ones(k), mode="same") if k > 1 else values


def _signals(series: pd.DataFrame, n_db: np.ndarray, k: int) -> list[_Signal]:
    """The signals the series can give, pooled over k buckets."""
    n = _pool(n_db, k)
    valid = n > 0
    out = []

    def ratio(x: np.ndarray, d: np.ndarray) -> np.ndarray:
        return np.divide(x, d, out=np.zeros_like(x), where=d > 0)

    counts = [("system_failure_rate", "system_failures", "rate", (1.0, 1.0))]
    if "user_failures" in series:
        counts.append(("user_failure_rate", "user_failures", "rate", USER_FAR))
    if "auth_queries" in series and _col(series, "auth_queries").sum() > 0:
        counts.append(("queries_per_auth", "auth_queries", "count", QPA_FACTOR))
    for name, column, kind, factor in counts:
        raw = _col(series, column)
        x = _pool(raw, k)
        out.append(
            _Signal(name, kind, x, n, raw, n_db, valid, ratio(x, n), ratio(raw, n_db), factor)
        )
    if "latency_p95_ms" in series and series["latency_p95_ms"].notna().any():
        raw = series["latency_p95_ms"].astype(float)
        queries = _col(series, "queries") if "queries" in series else np.full(len(series), 1e9)
        usable = raw.notna().to_numpy() & (raw.to_numpy() > 0) & (queries >= MIN_QUERIES)
        raw = raw.where(usable)
        # a pooled p95 is the median of the pool's p95s (percentiles do not add up)
        pooled = raw.rolling(k, center=True, min_periods=1).median() if k > 1 else raw
        value = np.log(pooled.to_numpy(dtype=float))
        raw_log = np.log(raw.to_numpy(dtype=float))
        lvalid = np.isfinite(value)
        if lvalid.sum() >= 2:
            out.append(
                _Signal(
                    "latency_p95_ms",
                    "latency",
                    np.nan_to_num(value),
                    lvalid.astype(float),
                    np.nan_to_num(raw_log),
                    np.isfinite(raw_log).astype(float),
                    lvalid,
                    np.nan_to_num(value),
                    np.nan_to_num(raw_log, nan=-np.inf),
                    LATENCY_FACTOR,
                )
            )
    order = {name: i for i, name in enumerate(SIGNALS)}
    return sorted(out, key=lambda s: order[s.name])


def _first_level(s: _Signal) -> float:
    """The lower quartile: robust while the incident covers less than 3/4 of the data."""
    return float(np.quantile(s.value[s.valid], 0.25)) if s.valid.any() else 0.0


def _level(s: _Signal, quiet: np.ndarray) -> float:
    """The normal level of the quiet buckets: pooled for counts, the median for latency."""
    if s.kind == "latency":
        return float(np.median(s.value[quiet]))
    return float(s.x[quiet].sum() / s.n[quiet].sum())


def _flags(
    s: _Signal, p0: float, quiet: np.ndarray | None, *, z: float, z_edge: float, min_failures: int
) -> _Flags:
    """Hot and warm buckets of one signal against the normal level ``p0``."""
    v, valid = s.value, s.valid
    # the spread of the quiet buckets; in the first pass nothing is known to be quiet yet
    mad = float(np.median(np.abs(v[quiet] - p0))) if quiet is not None else 0.0
    if s.kind == "latency":
        noise = np.full_like(v, max(1.4826 * mad, 0.05))
        hot_floor, edge_floor = np.log(s.factor[0]), np.log(s.factor[1])
        excess = v - p0
        hot = valid & (excess > np.maximum(z * noise, hot_floor))
        warm = valid & (excess > np.maximum(z_edge * noise, edge_floor))
        # a raw bucket's p95 is noisier than a pooled one: judged on the raw spread, and by
        # the hot factor at least
        raw_ok = np.isfinite(s.raw_value) & (quiet if quiet is not None else True)
        raw_mad = float(np.median(np.abs(s.raw_value[raw_ok] - p0))) if raw_ok.any() else 0.0
        above = s.raw_value > p0 + max(z * 1.4826 * raw_mad, hot_floor)
        return _Flags(s.name, hot, warm, _strength(excess, noise, valid), above, p0)
    median_n = max(float(np.median(s.n[valid])), 1.0) if valid.any() else 1.0

    def noise_at(level: float) -> np.ndarray:
        # the sampling noise of a bucket at that level: binomial for a rate, Poisson for the
        # mean count per attempt; a floor of half an event per bucket keeps p0 = 0 sane
        p = max(level, 0.5 / median_n)
        var = p * (1 - min(p, 1.0)) if s.kind == "rate" else p
        return np.maximum(1.4826 * mad, np.sqrt(var / np.maximum(s.n, 1)))

    if s.kind == "rate":
        counted_hot, counted_warm = s.x >= min_failures, s.x >= 2
        above = (s.raw_x >= 1) & (s.raw_x > 2 * s.factor[1] * p0 * s.raw_n)
    else:
        counted_hot = counted_warm = np.ones_like(valid)
        raw_noise = np.sqrt(max(p0, 0.5 / median_n) / np.maximum(s.raw_n, 1))
        above = (
            (s.raw_n > 0) & (s.raw_value > s.factor[0] * p0) & (s.raw_value > p0 + z * raw_noise)
        )
    # a signal that must rise by a factor is tested against that multiple of its level, with
    # the noise a bucket would show there: clearly above 3×, not merely noisily near it
    hot_ref, edge_ref = s.factor[0] * p0, s.factor[1] * p0
    hot = valid & (v > hot_ref + z * noise_at(hot_ref)) & counted_hot
    warm = valid & (v > edge_ref + z_edge * noise_at(edge_ref)) & counted_warm
    return _Flags(s.name, hot, warm | hot, _strength(v - p0, noise_at(p0), valid), above, p0)


def _strength(excess: np.ndarray, noise: np.ndarray, valid: np.ndarray) -> np.ndarray:
    units = np.divide(excess, noise, out=np.zeros_like(excess), where=noise > 0)
    return np.where(valid, np.clip(units, 0.0, Z_CAP), 0.0)


def _best(
    flags: list[_Flags], masked: np.ndarray, min_buckets: int, max_gap: int
) -> tuple[int, int, tuple[str, ...]] | None:
    """The strongest qualifying segment ``(lo, hi, signals taking part)``."""
    any_warm = np.logical_or.reduce([f.warm | f.hot for f in flags])
    # a masked bucket that looks normal says nothing: it is left out of the sequence, so it
    # neither ends a segment nor counts as a gap
    keep = np.flatnonzero(~masked | any_warm)
    best = None
    for clo, chi in _runs(any_warm[keep], max_gap):
        lo, hi = int(keep[clo]), int(keep[chi])
        part = [f for f in flags if f.hot[lo : hi + 1].sum() >= min_buckets]
        if not part:
            continue
        # an edge is where a taking-part signal is sustained (two buckets running), so that
        # one noisy bucket a few minutes off does not move it
        warm = np.logical_or.reduce([f.warm for f in part])[keep]
        while clo < chi and not (warm[clo] and warm[clo + 1]):
            clo += 1
        while chi > clo and not (warm[chi] and warm[chi - 1]):
            chi -= 1
        lo, hi = int(keep[clo]), int(keep[chi])
        part = [f for f in part if f.hot[lo : hi + 1].sum() >= min_buckets] or part
        strength = float(sum(f.strength[lo : hi + 1].sum() for f in part))
        if best is None or strength > best[3]:
            best = (lo, hi, tuple(f.name for f in part), strength)
    return None if best is None else best[:3]


def _at_edge(
    part: list[_Flags], seen_at: dict[str, np.ndarray], edge: int, inner: int
) -> tuple[str, ...]:
    """The taking-part signals anomalous at an edge: in its bucket or the one inside it (an
    edge is a pair of sustained buckets)."""
    names = tuple(
        f.name
        for f in part
        if any(0 <= i < len(f.warm) and seen_at[f.name][i] for i in (edge, inner))
    )
    return names or tuple(f.name for f in part)


def _refine(above: np.ndarray, lo: int, hi: int, k: int) -> tuple[int, int]:
    """Move pooled edges to the first and last raw bucket, within half a pool, that stands
    above the normal level."""
    half = k // 2
    first = [i for i in range(max(0, lo - half), min(len(above), lo + half + 1)) if above[i]]
    last = [i for i in range(max(0, hi - half), min(len(above), hi + half + 1)) if above[i]]
    new_lo = first[0] if first else lo
    new_hi = last[-1] if last else hi
    return (new_lo, new_hi) if new_lo <= new_hi else (lo, hi)


def _runs(flags: np.ndarray, max_gap: int) -> list[tuple[int, int]]:
    """Index ranges ``[lo, hi]`` of flagged positions, merging gaps of up to ``max_gap``."""
    idx = np.flatnonzero(flags)
    if len(idx) == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) > max_gap + 1)
    starts = np.concatenate([[idx[0]], idx[breaks + 1]])
    ends = np.concatenate([idx[breaks], [idx[-1]]])
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def agrees(
    declared: tuple[datetime, datetime],
    detected: Window | None,
    *,
    tolerance: timedelta = timedelta(minutes=5),
) -> bool:
    """False when declared and detected differ by more than ``tolerance`` at either end.

    No detected window does not agree with a declared one.
    """
    if detected is None:
        return False
    return (
        abs(detected.start - declared[0]) <= tolerance
        and abs(detected.end - declared[1]) <= tolerance
    )
