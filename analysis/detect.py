"""Find the incident window from the data alone.

The signal is the per-bucket system-failure rate. Its normal level is the median over all
buckets (robust to the incident itself while the incident covers less than half the data),
its noise the larger of the robust spread (1.4826 × MAD) and the binomial noise a bucket of
that many attempts would show anyway. A bucket is anomalous when its rate is far above that
level (``z`` noise units) and it holds at least ``min_failures`` system failures. Anomalous
buckets above a lower threshold (``z_edge``), separated by at most ``max_gap`` quiet buckets,
form a segment: the lower threshold dates a slow ramp from where it began rather than from
where it became obvious, and keeps a stretch where a partial mitigation eased the failures
inside the incident. A segment with fewer than ``min_buckets`` anomalous buckets is a short
harmless spike and does not count. The segment with the most excess failures is the
incident, from its first to its last bucket above the lower threshold.
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
) -> Window | None:
    """The incident window from a per-bucket series, or None when nothing is anomalous.

    ``series`` needs the columns ``bucket``, ``attempts`` and ``system_failures``, one row per
    bucket with empty buckets present as zeros (``sql/series.sql`` gives exactly that).
    """
    if series.empty:
        return None
    n = series["attempts"].to_numpy(dtype=float)
    x = series["system_failures"].to_numpy(dtype=float)
    valid = n > 0
    if not valid.any():
        return None
    rate = np.divide(x, n, out=np.zeros_like(x), where=valid)
    p0 = float(np.median(rate[valid]))
    mad = float(np.median(np.abs(rate[valid] - p0)))
    # the binomial noise of a bucket; a floor of half a failure per bucket keeps p0 = 0 sane
    p_noise = max(p0, 0.5 / max(float(np.median(n[valid])), 1.0))
    binom = np.sqrt(p_noise * (1 - p_noise) / np.maximum(n, 1))
    noise = np.maximum(1.4826 * mad, binom)
    hot = valid & (rate > p0 + z * noise) & (x >= min_failures)
    warm = valid & (rate > p0 + z_edge * noise) & (x >= max(1, min_failures - 1))
    best = None
    # segments are built on the lower threshold, so that a stretch where the failures ease
    # off (a partial mitigation) stays one incident; a segment counts only when enough of
    # its buckets pass the high threshold
    for lo, hi in _runs(warm | hot, max_gap):
        if hot[lo : hi + 1].sum() < min_buckets:
            continue
        excess = float((x[lo : hi + 1] - p0 * n[lo : hi + 1]).sum())
        if best is None or excess > best[2]:
            best = (lo, hi, excess)
    if best is None:
        return None
    lo, hi, excess = best
    buckets = pd.to_datetime(series["bucket"]).dt.to_pydatetime()
    return Window(
        start=buckets[lo],
        end=buckets[hi] + bucket,
        baseline_rate=p0,
        peak_rate=float(rate[lo : hi + 1].max()),
        excess_failures=excess,
    )


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
