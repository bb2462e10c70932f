"""The signals of the alert rules: an incident's buckets as counters, each rule's value at
every evaluation, and the threshold and ``for`` that keep it quiet on the baseline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Any

import numpy as np
import pandas as pd

from analysis import times
from analysis.alerts.promql import (
    histogram_quantile,
    prom_duration,
    prom_number,
    prom_string,
    re2_escape,
    runs,
    selector,
    window_rates,
)
from analysis.figures import Params

#: how a threshold is chosen (README, "Monitoring"): max(median + K_MAD * 1.4826 * MAD, the
#: HIGH_QUANTILE of the baseline), times 1 + MARGIN, at least FLOOR_EVENTS events in a typical
#: baseline window, rounded up to SIG_DIGITS significant digits
K_MAD = 5.0
HIGH_QUANTILE = 0.99
MARGIN = 0.10
FLOOR_EVENTS = 3
SIG_DIGITS = 3
#: the longest ``for`` (in minutes) before the threshold is raised above the baseline's max
MAX_FOR_MINUTES = 10
FP_RULES = 5
#: the fingerprint label of the auth service's queries that no rule names, summed
OTHER = "(other)"


@dataclass(frozen=True)
class Counter:
    """One counter series: metric, labels, and its increase in each bucket."""

    metric: str
    labels: tuple[tuple[str, str], ...]
    increments: np.ndarray

    def label(self, name: str) -> str:
        return dict(self.labels).get(name, "")


@dataclass
class Buckets:
    """An incident's buckets as the counters a service would export."""

    start: datetime
    seconds: int
    baseline: np.ndarray
    counters: list[Counter] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.baseline)

    def evaluation_time(self, j: int) -> datetime:
        """Evaluation ``j`` runs at the end of bucket ``j - 1``."""
        return self.start + timedelta(seconds=j * self.seconds)


def _aligned(buckets: pd.Series, df: pd.DataFrame, value: str) -> np.ndarray:
    index = pd.Index(pd.to_datetime(buckets))
    out = pd.Series(0, index=index, dtype="int64")
    if not df.empty:
        got = df.groupby(pd.to_datetime(df["bucket"]))[value].sum()
        out = out.add(got.reindex(index, fill_value=0).astype("int64"), fill_value=0)
    return out.to_numpy(dtype="int64")


def counters_from(
    series_df: pd.DataFrame,
    error_codes: pd.DataFrame,
    *,
    params: Params,
    mapping: dict[str, Any],
    fingerprints: pd.DataFrame | None = None,
    latency: pd.DataFrame | None = None,
    keep: tuple[str, ...] = (),
) -> Buckets:
    """The report's buckets as counters: auth attempts by outcome and error code, the auth
    service's queries by fingerprint, and the query-duration histogram's buckets.

    ``error_codes`` has ``bucket, error_code, failures`` (as ``sql/error_codes.sql``; the
    code ``(none)`` is a failure without one), ``fingerprints`` ``bucket, fingerprint,
    queries`` and ``latency`` ``bucket, le_ms, observations`` (cumulative, as
    ``sql/alerts_latency.sql``). The fingerprints in ``keep`` get a series each, the others
    one series together (fingerprint ``OTHER``).
    """
    b = series_df["bucket"]
    seconds = times.bucket_seconds(params.bucket)
    starts = pd.to_datetime(b)
    guard = pd.Timedelta(minutes=params.guard_minutes)
    base = (starts + pd.Timedelta(seconds=seconds) <= pd.Timestamp(params.start) - guard) | (
        starts >= pd.Timestamp(params.end) + guard
    )
    out = Buckets(starts.iloc[0].to_pydatetime(), seconds, base.to_numpy(dtype=bool))
    m = mapping
    failures = np.zeros(out.n, dtype="int64")
    for code in sorted(error_codes["error_code"].unique()) if not error_codes.empty else []:
        incr = _aligned(b, error_codes[error_codes["error_code"] == code], "failures")
        failures += incr
        labels = [(m["outcome_label"], m["failure_outcome"])]
        if code != "(none)":
            labels.append((m["error_code_label"], str(code)))
        out.counters.append(Counter(m["auth_attempts"], _labels(labels, m), incr))
    success = series_df["attempts"].to_numpy(dtype="int64") - failures
    out.counters.insert(
        0,
        Counter(
            m["auth_attempts"], _labels([(m["outcome_label"], m["success_outcome"])], m), success
        ),
    )
    if fingerprints is not None and not fingerprints.empty:
        # the fingerprints the rules name, each its own series; all others as one
        named = [fp for fp in sorted(fingerprints["fingerprint"].unique()) if fp in keep]
        groups = [(fp, fingerprints["fingerprint"] == fp) for fp in named]
        groups.append((OTHER, ~fingerprints["fingerprint"].isin(named)))
        for fp, rows in groups:
            incr = _aligned(b, fingerprints[rows], "queries")
            labels = [(m["caller_label"], m["auth_caller"]), (m["fingerprint_label"], fp)]
            out.counters.append(Counter(m["db_queries"], _labels(labels, m), incr))
    if latency is not None and not latency.empty and m["latency_histogram"]:
        name = f"{m['latency_histogram']}_bucket"
        by_ms = {bound_ms(le): le for le in m["latency_buckets"]}
        for le_ms in sorted(latency["le_ms"].unique()):
            rows = latency[latency["le_ms"] == le_ms]
            incr = _aligned(b, rows, "observations")
            out.counters.append(Counter(name, _labels([("le", _le(by_ms[le_ms]))], m), incr))
        total = series_df["queries"].to_numpy(dtype="int64")
        out.counters.append(Counter(name, _labels([("le", "+Inf")], m), total))
    return out


def bound_ms(le: float) -> float:
    """A histogram bound in seconds as the query-duration histogram holds it, in ms (two
    bounds closer than a nanosecond are one)."""
    return round(le * 1000, 9)


def _labels(pairs: list[tuple[str, str]], mapping: dict[str, Any]) -> tuple:
    return tuple(sorted({**dict(pairs), **mapping["labels"]}.items()))


def _le(seconds: float) -> str:
    text = repr(float(seconds))
    return text[:-2] if text.endswith(".0") else text


def sum_rates(counters: list[Counter], k: int, window_s: float, n: int) -> np.ndarray:
    """``sum(rate(...[window]))`` of ``counters`` at every evaluation (NaN without one)."""
    total = np.zeros(n + 1)
    for c in counters:
        total = total + window_rates(c.increments, k, window_s)
    if not counters:
        total[0] = np.nan
    return total


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` per evaluation, NaN where PromQL's division would give none."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return num / den


@dataclass
class Rule:
    """One alert: its recorded signal, its value at every evaluation, and its threshold."""

    key: str
    alert: str
    record: str
    record_expr: str
    title: str
    unit: str
    values: np.ndarray
    floor: float = 0.0
    labels: dict[str, str] = field(default_factory=dict)
    threshold: float | None = None
    for_evals: int = 0
    basis: dict[str, Any] = field(default_factory=dict)
    firing: np.ndarray | None = None
    for_s: int = 0
    alert_labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    #: the alert's whole expression when it is more than ``record > threshold``
    condition: str | None = None
    #: the evaluations that are this alert's baseline, when not the report's rules' own
    baseline: np.ndarray | None = None

    @property
    def selector(self) -> str:
        matchers = [f"{k}={prom_string(v)}" for k, v in self.labels.items()]
        return f"{self.record}{{{', '.join(matchers)}}}" if matchers else self.record

    @property
    def expr(self) -> str:
        if self.condition:
            return self.condition
        return f"{self.selector} > {prom_number(self.threshold)}"


@dataclass
class _Evaluation:
    """What every signal's rules share (window, attempts' rate), and the rules made so far."""

    buckets: Buckets
    mapping: dict[str, Any]
    user_error_codes: tuple[str, ...]
    fingerprints: list[str]
    auth_queries: bool
    #: the window in buckets, in seconds (whole buckets) and as a Prometheus duration
    k: int
    w: int
    ws: str
    #: the attempts' rate at every evaluation, which every ratio divides by
    attempts: np.ndarray
    floor: float
    rules: list[Rule] = field(default_factory=list)
    recorded: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)

    @property
    def suffix(self) -> str:
        """Return the recorded names' suffix: it names the window they are rates over."""
        return f"rate{self.ws}"

    @property
    def attempts_record(self) -> str:
        """Return the attempts' recorded name: every ratio divides by it."""
        return f"auth:attempts:{self.suffix}"

    def counters(self, metric: str) -> list[Counter]:
        """Return the series of one metric: a signal sums them."""
        return [c for c in self.buckets.counters if c.metric == metric]

    def rate(self, counters: list[Counter]) -> np.ndarray:
        """Return the summed rate of ``counters`` per evaluation, as ``sum(rate(...))``."""
        return sum_rates(counters, self.k, self.w, self.buckets.n)


def _evaluation(buckets: Buckets, mapping: dict[str, Any], **given: Any) -> _Evaluation:
    """Return the rules' window in whole buckets and the attempts' rate: every rule uses them."""
    m = mapping
    w = times.bucket_seconds(m["window"])
    k = max(1, w // buckets.seconds)
    w = k * buckets.seconds  # the window the rules use: whole buckets
    ws = prom_duration(k * buckets.seconds)
    n = buckets.n
    auth = [c for c in buckets.counters if c.metric == m["auth_attempts"]]
    attempts = sum_rates(auth, k, w, n)
    typical = float(np.median(attempts[1:][buckets_baseline(buckets, k)[1:]] * w)) if n else 0
    floor = FLOOR_EVENTS / typical if typical > 0 else 0.0
    return _Evaluation(buckets, m, k=k, w=w, ws=ws, attempts=attempts, floor=floor, **given)


def signals(
    buckets: Buckets,
    *,
    mapping: dict[str, Any],
    user_error_codes: tuple[str, ...],
    fingerprints: list[str] = (),
    queries: bool = True,
    auth_queries: bool = True,
) -> tuple[list[Rule], list[dict[str, str]], list[dict[str, str]]]:
    """The rules' signals at every evaluation, the recording rules, and what is left out."""
    ev = _evaluation(
        buckets,
        mapping,
        user_error_codes=user_error_codes,
        fingerprints=fingerprints,
        auth_queries=auth_queries,
    )
    _system_failure_ratio(ev)
    if not queries:
        ev.skipped.append(
            {
                "signal": "database",
                "reason": "no query log in this report: the rules on queries per login, on "
                "the fingerprints that rose and on query latency need one",
            }
        )
        return ev.rules, ev.recorded, ev.skipped
    for signal in _QUERY_SIGNALS:
        signal(ev)
    return ev.rules, ev.recorded, ev.skipped


def _system_failure_ratio(ev: _Evaluation) -> None:
    """Add the system-failure ratio's records and alert to ``ev``: every report has them."""
    m, ws, suffix = ev.mapping, ev.ws, ev.suffix
    failing = [
        c
        for c in ev.counters(m["auth_attempts"])
        if c.label(m["outcome_label"]) == m["failure_outcome"]
        and c.label(m["error_code_label"]) not in ev.user_error_codes
    ]
    ev.recorded.append(
        {
            "record": ev.attempts_record,
            "expr": f"sum(rate({selector(m['auth_attempts'], [], m)}[{ws}]))",
        }
    )
    matchers = [f"{m['outcome_label']}={prom_string(m['failure_outcome'])}"]
    if ev.user_error_codes:
        codes = "|".join(re2_escape(c) for c in ev.user_error_codes)
        matchers.append(f"{m['error_code_label']}!~{prom_string(codes)}")
    sysfail = f"sum(rate({selector(m['auth_attempts'], matchers, m)}[{ws}])) or vector(0)"
    ev.recorded.append({"record": f"auth:system_failures:{suffix}", "expr": sysfail})
    record = f"auth:system_failure_ratio:{suffix}"
    expr = f"auth:system_failures:{suffix} / {ev.attempts_record}"
    ev.recorded.append({"record": record, "expr": expr})
    ev.rules.append(
        Rule(
            "system_failure_ratio",
            "AuthSystemFailureRatioHigh",
            record,
            expr,
            "system-failure ratio of auth attempts",
            "ratio",
            ratio(ev.rate(failing), ev.attempts),
            floor=ev.floor,
        )
    )


def _queries_per_attempt(ev: _Evaluation) -> None:
    """Add the queries-per-attempt and fingerprint alerts to ``ev``, or why there are none."""
    m = ev.mapping
    db = ev.counters(m["db_queries"])
    if not ev.auth_queries or not db:
        ev.skipped.append(
            {
                "signal": "queries_per_attempt",
                "reason": "no query could be tied to the auth service (no request_id match, "
                "no caller named like auth): no rule on queries per login",
            }
        )
        return
    sel = selector(m["db_queries"], [f"{m['caller_label']}={prom_string(m['auth_caller'])}"], m)
    ev.recorded.append(
        {
            "record": f"auth:db_queries:{ev.suffix}",
            "expr": f"sum(rate({sel}[{ev.ws}])) or vector(0)",
        }
    )
    record = f"auth:db_queries_per_attempt:ratio_{ev.suffix}"
    expr = f"auth:db_queries:{ev.suffix} / {ev.attempts_record}"
    ev.recorded.append({"record": record, "expr": expr})
    ev.rules.append(
        Rule(
            "queries_per_attempt",
            "AuthDbQueriesPerLoginHigh",
            record,
            expr,
            "database queries per auth attempt",
            "queries per attempt",
            ratio(ev.rate(db), ev.attempts),
            floor=ev.floor,
        )
    )
    _fingerprints(ev, db)


def _fingerprints(ev: _Evaluation, db: list[Counter]) -> None:
    """Add an alert per fingerprint that rose per login to ``ev``, or why there is none."""
    m = ev.mapping
    rose = list(ev.fingerprints)[:FP_RULES]
    if not rose:
        ev.skipped.append(
            {"signal": "fingerprint", "reason": "no query fingerprint rose per login"}
        )
    for fp in rose:
        mine = [c for c in db if c.label(m["fingerprint_label"]) == fp]
        sel = selector(
            m["db_queries"],
            [
                f"{m['caller_label']}={prom_string(m['auth_caller'])}",
                f"{m['fingerprint_label']}={prom_string(fp)}",
            ],
            m,
        )
        record = f"auth:db_fingerprint_queries_per_attempt:ratio_{ev.suffix}"
        expr = f"(sum(rate({sel}[{ev.ws}])) or vector(0)) / {ev.attempts_record}"
        labels = {m["fingerprint_label"]: fp}
        ev.recorded.append({"record": record, "expr": expr, "labels": labels})
        ev.rules.append(
            Rule(
                "fingerprint",
                "AuthDbFingerprintPerLoginHigh",
                record,
                expr,
                "queries of one fingerprint per auth attempt",
                "queries per attempt",
                ratio(ev.rate(mine), ev.attempts),
                floor=ev.floor,
                labels=labels,
            )
        )


def _latency_p95(ev: _Evaluation) -> None:
    """Add the alert on the queries' p95 latency to ``ev``, or why there is none (no histogram)."""
    m, k, w = ev.mapping, ev.k, ev.w
    hist = ev.counters(f"{m['latency_histogram']}_bucket")
    if not m["latency_histogram"] or not hist:
        ev.skipped.append(
            {
                "signal": "latency_p95",
                "reason": "no query-duration histogram is mapped (alert_metrics."
                "latency_histogram is empty): no rule on query latency",
            }
        )
        return
    sel = selector(f"{m['latency_histogram']}_bucket", [], m)
    record = f"db:query_duration_seconds:p95_{ev.suffix}"
    expr = f"histogram_quantile(0.95, sum by (le) (rate({sel}[{ev.ws}])))"
    ev.recorded.append({"record": record, "expr": expr})
    bounds = [float(c.label("le")) for c in hist]
    rates = np.array([window_rates(c.increments, k, w) for c in hist])
    p95 = np.array(
        [histogram_quantile(0.95, bounds, list(rates[:, j])) for j in range(ev.buckets.n + 1)]
    )
    ev.rules.append(
        Rule(
            "latency_p95",
            "DbQueryLatencyP95High",
            record,
            expr,
            "p95 latency of database queries",
            "seconds",
            p95,
        )
    )


#: the signals of a report with a query log, one function each, in the order of their rules
_QUERY_SIGNALS = (_queries_per_attempt, _latency_p95)


def buckets_baseline(buckets: Buckets, k: int) -> np.ndarray:
    """Which evaluations ``j = 0..n`` see only baseline buckets (all ``k`` of their window)."""
    base = np.concatenate([[False], buckets.baseline])
    out = np.zeros(buckets.n + 1, dtype=bool)
    for j in range(1, buckets.n + 1):
        out[j] = bool(base[max(1, j - k + 1) : j + 1].all())
    return out


def ceil_sig(x: float, digits: int = SIG_DIGITS) -> float:
    """``x`` rounded up to ``digits`` significant digits (0 stays 0); the last bits of a
    float's arithmetic do not count (3 × 1.1 is 3.3, not 3.31)."""
    if x <= 0:
        return 0.0
    d = Decimal(f"{float(x):.12g}")
    step = Decimal(1).scaleb(d.adjusted() - (digits - 1))
    return float((d / step).to_integral_value(rounding=ROUND_CEILING) * step)


def _bump(x: float, digits: int = SIG_DIGITS) -> float:
    d = Decimal(repr(float(x)))
    return float(d + Decimal(1).scaleb(d.adjusted() - (digits - 1)))


def choose(
    values: np.ndarray,
    baseline: np.ndarray,
    *,
    floor: float = 0.0,
    max_for: int = MAX_FOR_MINUTES,
) -> tuple[float, int, dict[str, Any]] | None:
    """A threshold and a ``for`` (in evaluations) under which no baseline evaluation fires.

    The threshold is robust to the baseline's spikes: max(median + 5 σ, its 99th percentile)
    where σ = 1.4826 × MAD, plus 10%, at least ``floor``, rounded up to 3 significant digits.
    ``for`` is the longest run of baseline evaluations above it; when that is more than
    ``max_for``, the threshold goes above the baseline's maximum instead (``for`` 0).
    None without a baseline.
    """
    b = values[baseline]
    b = b[np.isfinite(b)]
    if not len(b):
        return None
    med = float(np.median(b))
    sigma = 1.4826 * float(np.median(np.abs(b - med)))
    high = max(med + K_MAD * sigma, float(np.quantile(b, HIGH_QUANTILE)))
    threshold = ceil_sig(max(high * (1 + MARGIN), floor))
    method = "robust"
    # a baseline evaluation is in firing state when its run of evaluations above the
    # threshold, counted over all evaluations, reaches for + 1
    with np.errstate(invalid="ignore"):
        longest = runs(values > threshold)[baseline]
    for_evals = int(longest.max(initial=0))
    if for_evals > max_for:
        threshold = ceil_sig(max(float(b.max()) * (1 + MARGIN), floor))
        method = "above baseline max"
        with np.errstate(invalid="ignore"):
            for_evals = int(runs(values > threshold)[baseline].max(initial=0))
    finite = values[np.isfinite(values)]
    # a value equal to the threshold up to rounding would make Prometheus and this backtest
    # disagree in the last bit: move the threshold off it
    while threshold > 0 and np.any(np.abs(finite - threshold) <= 1e-9 * threshold):
        threshold = _bump(threshold)
    basis = {
        "method": method,
        "baseline_evaluations": int(baseline.sum()),
        "median": _sig(med),
        "sigma_mad": _sig(sigma),
        "quantile_99": _sig(float(np.quantile(b, HIGH_QUANTILE))),
        "max": _sig(float(b.max())),
        "floor": _sig(floor),
    }
    return threshold, for_evals, basis


def _sig(x: float, digits: int = 6) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return float(f"{x:.{digits}g}")
