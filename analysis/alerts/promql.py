"""PromQL as the alert rules write it, and Prometheus's evaluation as the backtest mirrors it.

The text helpers quote and format what goes into an expression; :func:`window_rates`,
:func:`histogram_quantile` and :func:`firing` compute what Prometheus computes for
``rate()`` over whole buckets, ``histogram_quantile`` and an alert's ``for``, so that the
backtest and ``promtool test rules`` agree minute by minute.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np


def prom_duration(seconds: float) -> str:
    """A duration as Prometheus writes it: ``1h``, ``5m``, ``30s``, ``22500ms``."""
    ms = round(seconds * 1000)
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        if ms % size == 0 and (ms or unit == "s"):
            return f"{ms // size}{unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def prom_string(text: str) -> str:
    """A PromQL double-quoted string literal."""
    body = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{body}"'


def re2_escape(text: str) -> str:
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", text)


def prom_number(x: float) -> str:
    """A threshold as a PromQL number, never in exponent notation."""
    return np.format_float_positional(float(x), trim="-")


def selector(metric: str, matchers: list[str], mapping: dict[str, Any]) -> str:
    extra = [f"{k}={prom_string(v)}" for k, v in mapping["labels"].items()]
    body = ", ".join(matchers + extra)
    return f"{metric}{{{body}}}" if body else metric


def window_rates(incr: np.ndarray, k: int, window_s: float) -> np.ndarray:
    """``rate(counter[window])`` at each evaluation ``j = 0..n`` (the end of bucket j - 1):
    the increase over the last ``k`` buckets (fewer at the start) per second; NaN at j = 0,
    where Prometheus has a single sample and no rate."""
    c = np.concatenate([[0], np.cumsum(incr, dtype="int64")])
    lag = np.concatenate([np.zeros(k, dtype="int64"), c[:-k]]) if k < len(c) else np.zeros_like(c)
    out = (c - lag).astype(float) / window_s
    out[0] = np.nan
    return out


def histogram_quantile(q: float, bounds: list[float], counts: list[float]) -> float:
    """Prometheus's ``histogram_quantile`` on cumulative bucket counts (the last bound is
    +Inf; monotonic, as SQL counts them): linear interpolation inside the bucket that holds
    the rank."""
    observations = counts[-1]
    if len(bounds) < 2 or not observations > 0:
        return math.nan
    rank = q * observations
    # sort.Search over all but the +Inf bucket: the first bucket holding the rank
    b = next((i for i in range(len(counts) - 1) if counts[i] >= rank), len(counts) - 1)
    if b == len(counts) - 1:
        return bounds[-2]
    start, count = 0.0, counts[b]
    if b > 0:
        start = bounds[b - 1]
        count -= counts[b - 1]
        rank -= counts[b - 1]
    return start + (bounds[b] - start) * (rank / count)


def runs(above: np.ndarray) -> np.ndarray:
    """At each evaluation, how many consecutive evaluations up to it were above."""
    out = np.zeros(len(above), dtype=int)
    run = 0
    for j, a in enumerate(above):
        run = run + 1 if a else 0
        out[j] = run
    return out


def firing(values: np.ndarray, threshold: float, for_evals: int) -> np.ndarray:
    """Which evaluations a Prometheus alert ``values > threshold`` with ``for`` =
    ``for_evals`` evaluations is firing at: active that many evaluations after it was first
    active, every one of them above (NaN compares false)."""
    with np.errstate(invalid="ignore"):
        return runs(values > threshold) >= for_evals + 1
