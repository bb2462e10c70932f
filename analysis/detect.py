"""Find the incident window from the data alone.

The signal is the per-bucket system-failure rate. Its normal level is found in two passes:
first the lower quartile of the rates (robust to the incident itself while it covers less
than three quarters of the data), then the pooled rate of every bucket outside the incident
the first pass found (a quantile of sparse counts is 0, and ordinary noise would look
anomalous against it). The noise is the larger of the robust spread (1.4826 × MAD) and the
binomial noise a bucket of that many attempts would show anyway.

A bucket is *hot* when its rate is ``z`` noise units above the normal level and it holds at
least ``min_failures`` system failures, *warm* above ``z_edge`` units. Warm buckets, with
gaps of up to ``max_gap`` quiet buckets, form segments: the lower threshold dates a slow
ramp from where it began rather than from where it became obvious, and keeps a stretch where
a partial mitigation eased the failures inside the incident. A segment with fewer than
``min_buckets`` hot buckets is a short harmless spike and does not count. Each edge is the
outermost pair of consecutive warm buckets, so one noisy bucket does not move it. The
segment with the most excess failures is the incident.

Buckets too sparse for this (fewer than ``min_attempts`` attempts at the median) are pooled
over a centred window of k buckets first; the edges found on the pooled series are then
moved, within half a pool, to the first and last raw bucket whose failures stand above the
normal level.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Window:
    """A detected window ``[start, end)`` and the evidence for it."""

    start: datetime
    end: datetime
    baseline_rate: float
    peak_rate: float
    excess_failures: float


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

    ``series`` needs the columns ``bucket``, ``attempts`` and ``system_failures``, one row per
    bucket with empty buckets present as zeros (``sql/series.sql`` gives exactly that).
    """
    if series.empty:
        return None
    n = series["attempts"].to_numpy(dtype=float)
    x = series["system_failures"].to_numpy(dtype=float)
    if not (n > 0).any():
        return None
    raw_x, raw_n = x, n
    # sparse buckets (a small service, a short bucket) are pooled over a centred window of
    # k buckets, enough for about `min_attempts` attempts; the edges are refined afterwards
    k = int(max(1, np.ceil(min_attempts / max(float(np.median(n[n > 0])), 1.0))))
    if k > 1:
        k += 1 - k % 2
        kernel = np.ones(k)
        x = np.convolve(x, kernel, mode="same")
        n = np.convolve(n, kernel, mode="same")
    valid = n > 0
    rate = np.divide(x, n, out=np.zeros_like(x), where=valid)
    # first pass: the lower quartile as the normal level, robust while the incident covers
    # less than three quarters of the data (an incident that runs to the end of it)
    found = _segment(
        x,
        n,
        valid,
        rate,
        float(np.quantile(rate[valid], 0.25)),
        None,
        z,
        z_edge,
        min_failures,
        min_buckets,
        max_gap,
    )
    # second pass: the normal level is the pooled rate outside the first pass's incident
    # (a median of sparse counts is 0 and would make ordinary noise look anomalous)
    quiet = valid.copy()
    if found is not None:
        quiet[max(0, found[0] - max_gap) : found[1] + max_gap + 1] = False
    if quiet.any():
        p0 = float(x[quiet].sum() / n[quiet].sum())
        found = _segment(
            x, n, valid, rate, p0, quiet, z, z_edge, min_failures, min_buckets, max_gap
        )
    else:
        p0 = float(np.median(rate[valid]))
    if found is None:
        return None
    lo, hi, excess = found
    if k > 1:
        lo, hi = _refine(raw_x, raw_n, lo, hi, k, p0)
    buckets = pd.to_datetime(series["bucket"]).dt.to_pydatetime()
    return Window(
        start=buckets[lo],
        end=buckets[hi] + bucket,
        baseline_rate=p0,
        peak_rate=float(rate[lo : hi + 1].max()) if hi >= lo else 0.0,
        excess_failures=excess,
    )


def _refine(x: np.ndarray, n: np.ndarray, lo: int, hi: int, k: int, p0: float) -> tuple[int, int]:
    """Move pooled edges to the first and last raw bucket, within half a pool, whose
    failures stand above the normal level."""
    half = k // 2
    above = (x >= 1) & (x > 2 * p0 * n)
    first = [i for i in range(max(0, lo - half), min(len(x), lo + half + 1)) if above[i]]
    last = [i for i in range(max(0, hi - half), min(len(x), hi + half + 1)) if above[i]]
    new_lo = first[0] if first else lo
    new_hi = last[-1] if last else hi
    return (new_lo, new_hi) if new_lo <= new_hi else (lo, hi)


def _segment(
    x: np.ndarray,
    n: np.ndarray,
    valid: np.ndarray,
    rate: np.ndarray,
    p0: float,
    quiet: np.ndarray | None,
    z: float,
    z_edge: float,
    min_failures: int,
    min_buckets: int,
    max_gap: int,
) -> tuple[int, int, float] | None:
    """The strongest qualifying segment ``(lo, hi, excess)`` for a normal level ``p0``."""
    # the spread of the quiet buckets; in the first pass nothing is known to be quiet yet
    mad = float(np.median(np.abs(rate[quiet] - p0))) if quiet is not None else 0.0
    # the binomial noise of a bucket; a floor of half a failure per bucket keeps p0 = 0 sane
    p_noise = max(p0, 0.5 / max(float(np.median(n[valid])), 1.0))
    binom = np.sqrt(p_noise * (1 - p_noise) / np.maximum(n, 1))
    noise = np.maximum(1.4826 * mad, binom)
    hot = valid & (rate > p0 + z * noise) & (x >= min_failures)
    warm = valid & (rate > p0 + z_edge * noise) & (x >= 2)
    best = None
    # segments are built on the lower threshold, so that a stretch where the failures ease
    # off (a partial mitigation) stays one incident; a segment counts only when enough of
    # its buckets pass the high threshold
    for lo, hi in _runs(warm | hot, max_gap):
        if hot[lo : hi + 1].sum() < min_buckets:
            continue
        # an edge is where the failures are sustained (two buckets running), so that one
        # noisy bucket a few minutes off does not move it
        while lo < hi and not (warm[lo] and warm[lo + 1]):
            lo += 1
        while hi > lo and not (warm[hi] and warm[hi - 1]):
            hi -= 1
        excess = float((x[lo : hi + 1] - p0 * n[lo : hi + 1]).sum())
        if best is None or excess > best[2]:
            best = (lo, hi, excess)
    return best


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
