"""Alert rules that would have caught the incident, with thresholds from its own baseline.

:func:`build` turns a report's per-bucket series into a Prometheus rule file (recording rules
for the ratios, alerting rules on them) and a backtest: on this incident's buckets, when each
alert would have fired, its lead over the timeline's detection and over the declared start,
and how often it fires on the baseline. The buckets are first written as the counters a
service would export (:class:`Counter`); the backtest evaluates the rules on those counters
exactly as Prometheus does, and :mod:`analysis.promtool` writes the same counters as a
``promtool test rules`` file, so that Prometheus itself checks every minute of the backtest.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import yaml

from analysis import metrics, privacy
from analysis.metrics import Params, iso

#: the metric names and labels the rules read; override any of them with the report's
#: ``alert_metrics`` parameter (a mapping, e.g. in the ``--config`` YAML file)
DEFAULT_METRICS: dict[str, Any] = {
    "auth_attempts": "auth_attempts_total",  # counter of login attempts
    "outcome_label": "outcome",
    "success_outcome": "success",
    "failure_outcome": "failure",
    "error_code_label": "error_code",
    "db_queries": "db_queries_total",  # counter of database statements
    "caller_label": "caller",
    "auth_caller": "auth-service",  # the caller value of the auth service's own queries
    "fingerprint_label": "fingerprint",
    "latency_histogram": "db_query_duration_seconds",  # a histogram (its _bucket); "" for none
    "latency_buckets": [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    "labels": {},  # label="value" pairs every selector adds, e.g. {job: auth}
    "window": "5m",  # the rate() window of the recording rules
}
_NAME_KEYS = ("auth_attempts", "db_queries")
_LABEL_KEYS = ("outcome_label", "error_code_label", "caller_label", "fingerprint_label")
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

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
SEVERITY = "page"


class AlertConfigError(ValueError):
    """The ``alert_metrics`` mapping names an unknown key or an unusable value."""


def metric_mapping(given: dict[str, Any] | str | None) -> dict[str, Any]:
    """The defaults overlaid with the given mapping (a dict, or its YAML text), checked."""
    if isinstance(given, str):
        try:
            given = yaml.safe_load(given) if given.strip() else {}
        except yaml.YAMLError as exc:
            raise AlertConfigError(f"alert_metrics is not a YAML mapping ({exc})") from exc
    given = given or {}
    if not isinstance(given, dict):
        raise AlertConfigError("alert_metrics is a mapping of names, e.g. {auth_caller: login}")
    unknown = sorted(set(given) - set(DEFAULT_METRICS))
    if unknown:
        raise AlertConfigError(
            f"alert_metrics: unknown key(s) {', '.join(unknown)}; known: "
            f"{', '.join(DEFAULT_METRICS)}"
        )
    out = {**DEFAULT_METRICS, **given}
    for key in _NAME_KEYS:
        if not _METRIC_NAME.fullmatch(str(out[key])):
            raise AlertConfigError(f"alert_metrics.{key} {out[key]!r} is not a metric name")
    if out["latency_histogram"] and not _METRIC_NAME.fullmatch(str(out["latency_histogram"])):
        raise AlertConfigError(f"alert_metrics.latency_histogram {out['latency_histogram']!r}")
    for key in _LABEL_KEYS:
        if not _LABEL_NAME.fullmatch(str(out[key])):
            raise AlertConfigError(f"alert_metrics.{key} {out[key]!r} is not a label name")
    for key in ("success_outcome", "failure_outcome", "auth_caller"):
        out[key] = str(out[key])
    try:
        bounds = [float(b) for b in out["latency_buckets"]]
    except (TypeError, ValueError) as exc:
        raise AlertConfigError("alert_metrics.latency_buckets is a list of seconds") from exc
    if (
        not bounds
        or any(b <= 0 or not math.isfinite(b) for b in bounds)
        or bounds != sorted(set(bounds))
    ):
        raise AlertConfigError("alert_metrics.latency_buckets: increasing positive seconds")
    out["latency_buckets"] = bounds
    labels = out["labels"] or {}
    if not isinstance(labels, dict) or not all(_LABEL_NAME.fullmatch(str(k)) for k in labels):
        raise AlertConfigError("alert_metrics.labels is a mapping of label names to values")
    out["labels"] = {str(k): str(v) for k, v in sorted(labels.items())}
    out["window"] = str(out["window"])
    try:
        metrics.bucket_seconds(out["window"])
    except ValueError as exc:
        raise AlertConfigError(f"alert_metrics.window {out['window']!r}: {exc}") from exc
    return out


def window_seconds(mapping: dict[str, Any]) -> int:
    """The window of the rules in seconds (``5m`` → 300)."""
    return metrics.bucket_seconds(mapping["window"])


# --- PromQL text -------------------------------------------------------------------------


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


def _re2_escape(text: str) -> str:
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", text)


def prom_number(x: float) -> str:
    """A threshold as a PromQL number, never in exponent notation."""
    return np.format_float_positional(float(x), trim="-")


def _selector(metric: str, matchers: list[str], mapping: dict[str, Any]) -> str:
    extra = [f"{k}={prom_string(v)}" for k, v in mapping["labels"].items()]
    body = ", ".join(matchers + extra)
    return f"{metric}{{{body}}}" if body else metric


# --- the buckets as counters -------------------------------------------------------------


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
    seconds = metrics.bucket_seconds(params.bucket)
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
        by_ms = {round(le * 1000, 9): le for le in m["latency_buckets"]}
        for le_ms in sorted(latency["le_ms"].unique()):
            rows = latency[latency["le_ms"] == le_ms]
            incr = _aligned(b, rows, "observations")
            out.counters.append(Counter(name, _labels([("le", _le(by_ms[le_ms]))], m), incr))
        total = series_df["queries"].to_numpy(dtype="int64")
        out.counters.append(Counter(name, _labels([("le", "+Inf")], m), total))
    return out


def _labels(pairs: list[tuple[str, str]], mapping: dict[str, Any]) -> tuple:
    return tuple(sorted({**dict(pairs), **mapping["labels"]}.items()))


def _le(seconds: float) -> str:
    text = repr(float(seconds))
    return text[:-2] if text.endswith(".0") else text


# --- evaluating the rules as Prometheus does ---------------------------------------------


def window_rates(incr: np.ndarray, k: int, window_s: float) -> np.ndarray:
    """``rate(counter[window])`` at each evaluation ``j = 0..n`` (the end of bucket j - 1):
    the increase over the last ``k`` buckets (fewer at the start) per second; NaN at j = 0,
    where Prometheus has a single sample and no rate."""
    c = np.concatenate([[0], np.cumsum(incr, dtype="int64")])
    lag = np.concatenate([np.zeros(k, dtype="int64"), c[:-k]]) if k < len(c) else np.zeros_like(c)
    out = (c - lag).astype(float) / window_s
    out[0] = np.nan
    return out


def _sum_rates(counters: list[Counter], k: int, window_s: float, n: int) -> np.ndarray:
    total = np.zeros(n + 1)
    for c in counters:
        total = total + window_rates(c.increments, k, window_s)
    if not counters:
        total[0] = np.nan
    return total


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return num / den


def histogram_quantile(q: float, bounds: list[float], counts: list[float]) -> float:
    """Prometheus's ``histogram_quantile`` on cumulative bucket counts (the last bound is
    +Inf): linear interpolation inside the bucket that holds the rank."""
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

    @property
    def selector(self) -> str:
        matchers = [f"{k}={prom_string(v)}" for k, v in self.labels.items()]
        return f"{self.record}{{{', '.join(matchers)}}}" if matchers else self.record

    @property
    def expr(self) -> str:
        return f"{self.selector} > {prom_number(self.threshold)}"


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
    m = mapping
    w = window_seconds(m)
    k = max(1, w // buckets.seconds)
    ws = prom_duration(k * buckets.seconds)
    suffix = f"rate{ws}"
    n = buckets.n
    auth = [c for c in buckets.counters if c.metric == m["auth_attempts"]]
    failing = [
        c
        for c in auth
        if c.label(m["outcome_label"]) == m["failure_outcome"]
        and c.label(m["error_code_label"]) not in user_error_codes
    ]
    attempts = _sum_rates(auth, k, w, n)
    typical = float(np.median(attempts[1:][buckets_baseline(buckets, k)[1:]] * w)) if n else 0
    floor = FLOOR_EVENTS / typical if typical > 0 else 0.0
    recorded: list[dict[str, str]] = []
    skipped: list[dict[str, str]] = []
    rules: list[Rule] = []
    attempts_record = f"auth:attempts:{suffix}"
    recorded.append(
        {
            "record": attempts_record,
            "expr": f"sum(rate({_selector(m['auth_attempts'], [], m)}[{ws}]))",
        }
    )
    matchers = [f"{m['outcome_label']}={prom_string(m['failure_outcome'])}"]
    if user_error_codes:
        codes = "|".join(_re2_escape(c) for c in user_error_codes)
        matchers.append(f"{m['error_code_label']}!~{prom_string(codes)}")
    sysfail = f"sum(rate({_selector(m['auth_attempts'], matchers, m)}[{ws}])) or vector(0)"
    recorded.append({"record": f"auth:system_failures:{suffix}", "expr": sysfail})
    record = f"auth:system_failure_ratio:{suffix}"
    expr = f"auth:system_failures:{suffix} / {attempts_record}"
    recorded.append({"record": record, "expr": expr})
    rules.append(
        Rule(
            "system_failure_ratio",
            "AuthSystemFailureRatioHigh",
            record,
            expr,
            "system-failure ratio of auth attempts",
            "ratio",
            _ratio(_sum_rates(failing, k, w, n), attempts),
            floor=floor,
        )
    )
    if not queries:
        skipped.append(
            {
                "signal": "database",
                "reason": "no query log in this report: the rules on queries per login, on "
                "the fingerprints that rose and on query latency need one",
            }
        )
        return rules, recorded, skipped
    db = [c for c in buckets.counters if c.metric == m["db_queries"]]
    if not auth_queries or not db:
        skipped.append(
            {
                "signal": "queries_per_attempt",
                "reason": "no query could be tied to the auth service (no request_id match, "
                "no caller named like auth): no rule on queries per login",
            }
        )
    else:
        sel = _selector(
            m["db_queries"], [f"{m['caller_label']}={prom_string(m['auth_caller'])}"], m
        )
        recorded.append(
            {"record": f"auth:db_queries:{suffix}", "expr": f"sum(rate({sel}[{ws}])) or vector(0)"}
        )
        record = f"auth:db_queries_per_attempt:ratio_{suffix}"
        expr = f"auth:db_queries:{suffix} / {attempts_record}"
        recorded.append({"record": record, "expr": expr})
        rules.append(
            Rule(
                "queries_per_attempt",
                "AuthDbQueriesPerLoginHigh",
                record,
                expr,
                "database queries per auth attempt",
                "queries per attempt",
                _ratio(_sum_rates(db, k, w, n), attempts),
                floor=floor,
            )
        )
        rose = list(fingerprints)[:FP_RULES]
        if not rose:
            skipped.append(
                {"signal": "fingerprint", "reason": "no query fingerprint rose per login"}
            )
        for fp in rose:
            mine = [c for c in db if c.label(m["fingerprint_label"]) == fp]
            sel = _selector(
                m["db_queries"],
                [
                    f"{m['caller_label']}={prom_string(m['auth_caller'])}",
                    f"{m['fingerprint_label']}={prom_string(fp)}",
                ],
                m,
            )
            record = f"auth:db_fingerprint_queries_per_attempt:ratio_{suffix}"
            expr = f"(sum(rate({sel}[{ws}])) or vector(0)) / {attempts_record}"
            labels = {m["fingerprint_label"]: fp}
            recorded.append({"record": record, "expr": expr, "labels": labels})
            rules.append(
                Rule(
                    "fingerprint",
                    "AuthDbFingerprintPerLoginHigh",
                    record,
                    expr,
                    "queries of one fingerprint per auth attempt",
                    "queries per attempt",
                    _ratio(_sum_rates(mine, k, w, n), attempts),
                    floor=floor,
                    labels=labels,
                )
            )
    hist = [c for c in buckets.counters if c.metric == f"{m['latency_histogram']}_bucket"]
    if not m["latency_histogram"] or not hist:
        skipped.append(
            {
                "signal": "latency_p95",
                "reason": "no query-duration histogram is mapped (alert_metrics."
                "latency_histogram is empty): no rule on query latency",
            }
        )
    else:
        sel = _selector(f"{m['latency_histogram']}_bucket", [], m)
        record = f"db:query_duration_seconds:p95_{suffix}"
        expr = f"histogram_quantile(0.95, sum by (le) (rate({sel}[{ws}])))"
        recorded.append({"record": record, "expr": expr})
        bounds = [float(c.label("le")) for c in hist]
        rates = np.array([window_rates(c.increments, k, w) for c in hist])
        p95 = np.array([histogram_quantile(0.95, bounds, list(rates[:, j])) for j in range(n + 1)])
        rules.append(
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
    return rules, recorded, skipped


def buckets_baseline(buckets: Buckets, k: int) -> np.ndarray:
    """Which evaluations ``j = 0..n`` see only baseline buckets (all ``k`` of their window)."""
    base = np.concatenate([[False], buckets.baseline])
    out = np.zeros(buckets.n + 1, dtype=bool)
    for j in range(1, buckets.n + 1):
        out[j] = bool(base[max(1, j - k + 1) : j + 1].all())
    return out


# --- thresholds and the backtest ---------------------------------------------------------


def ceil_sig(x: float, digits: int = SIG_DIGITS) -> float:
    """``x`` rounded up to ``digits`` significant digits (0 stays 0)."""
    if x <= 0:
        return 0.0
    d = Decimal(repr(float(x)))
    step = Decimal(1).scaleb(d.adjusted() - (digits - 1))
    return float((d / step).to_integral_value(rounding=ROUND_CEILING) * step)


def _bump(x: float, digits: int = SIG_DIGITS) -> float:
    d = Decimal(repr(float(x)))
    return float(d + Decimal(1).scaleb(d.adjusted() - (digits - 1)))


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


# --- the rule set of a report ------------------------------------------------------------


def gather(
    con: duckdb.DuckDBPyConnection, params: Params, mapping: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per bucket, the auth queries by fingerprint and the query-duration histogram."""
    bucket = metrics.bucket_interval(params.bucket)
    fps = metrics.run(con, "alerts_fingerprints", {"bucket": bucket}).df()
    # the fingerprints of summary.json are masked; so are the counters' labels
    fps["fingerprint"] = fps["fingerprint"].map(privacy.mask)
    bounds_ms = [round(le * 1000, 9) for le in mapping["latency_buckets"]]
    latency = metrics.run(con, "alerts_latency", {"bucket": bucket, "bounds_ms": bounds_ms}).df()
    return fps, latency


@dataclass
class AlertSet:
    """What a report writes under ``alerts/`` and what its summary says about it."""

    rules_yaml: str
    backtest: dict[str, Any]
    unit_test: str
    summary: list[dict[str, Any]]
    skipped: list[dict[str, str]]

    def write(self, folder) -> list:
        """Write ``rules.yaml``, ``rules_test.yaml`` and ``backtest.json`` into ``folder``."""
        import json

        folder.mkdir(parents=True, exist_ok=True)
        paths = [folder / "rules.yaml", folder / "rules_test.yaml", folder / "backtest.json"]
        paths[0].write_text(self.rules_yaml, encoding="utf-8")
        paths[1].write_text(self.unit_test, encoding="utf-8")
        text = json.dumps(self.backtest, indent=2, ensure_ascii=False, allow_nan=False)
        paths[2].write_text(text + "\n", encoding="utf-8")
        return paths


def rose(summary: dict[str, Any]) -> list[str]:
    """The fingerprints of ``db.top_fingerprints`` whose rate per login rose, in its order."""
    out = []
    for fp in summary.get("db", {}).get("top_fingerprints", []):
        inc, base = fp.get("incident_per_auth"), fp.get("baseline_per_auth") or 0.0
        if inc is not None and inc > base:
            out.append(fp["fingerprint"])
    return out


def build(
    summary: dict[str, Any],
    series_df: pd.DataFrame,
    params: Params,
    *,
    error_codes: pd.DataFrame,
    fingerprints: pd.DataFrame | None = None,
    latency: pd.DataFrame | None = None,
    events: pd.DataFrame | None = None,
    mapping: dict[str, Any] | None = None,
) -> AlertSet:
    """The rules, their backtest on this incident and the promtool unit test that proves it."""
    from analysis import promtool

    m = metric_mapping(mapping)
    incident_id = summary["incident_id"]
    has_queries = bool(series_df["queries"].sum() > 0) if not series_df.empty else False
    qpa_method = summary.get("db", {}).get("queries_per_auth", {}).get("method")
    buckets = counters_from(
        series_df,
        error_codes,
        params=params,
        mapping=m,
        fingerprints=fingerprints if has_queries and qpa_method != "none" else None,
        latency=latency if has_queries else None,
        keep=tuple(rose(summary)[:FP_RULES]),
    )
    k = max(1, window_seconds(m) // buckets.seconds)
    base_eval = buckets_baseline(buckets, k)
    rules, recorded, skipped = signals(
        buckets,
        mapping=m,
        user_error_codes=params.user_error_codes,
        fingerprints=rose(summary),
        queries=has_queries,
        auth_queries=qpa_method != "none",
    )
    max_for = max(0, MAX_FOR_MINUTES * 60 // buckets.seconds)
    kept = []
    for rule in rules:
        chosen = choose(rule.values, base_eval, floor=rule.floor, max_for=max_for)
        if chosen is None:
            skipped.append(
                {"signal": rule.key, "reason": "no baseline evaluation to take a threshold from"}
            )
            continue
        rule.threshold, rule.for_evals, rule.basis = chosen
        rule.for_s = rule.for_evals * buckets.seconds
        rule.firing = firing(rule.values, rule.threshold, rule.for_evals)
        kept.append(rule)
    # a recording rule only for what a kept alert (or another recording rule) reads
    wanted = {r.record for r in kept}
    recorded = [
        r
        for r in recorded
        if r["record"] in wanted
        or any(r["record"] in o["expr"] for o in recorded if o["record"] in wanted)
    ]
    detection = _first_detection(events, params)
    results = [_backtest(rule, buckets, base_eval, params, detection) for rule in kept]
    for rule, res in zip(kept, results, strict=True):
        rule.alert_labels = {"severity": SEVERITY, "signal": rule.key}
        rule.annotations = _annotations(rule, res, incident_id, buckets)
    rules_yaml = render_rules(incident_id, buckets.seconds, recorded, kept)
    entries = [_entry(rule, res) for rule, res in zip(kept, results, strict=True)]
    backtest = {
        "incident_id": incident_id,
        "bucket": params.bucket,
        "evaluation_interval": prom_duration(buckets.seconds),
        "window": prom_duration(k * buckets.seconds),
        "declared": {"start": iso(params.start), "end": iso(params.end)},
        "detection": iso(detection) if detection else None,
        "baseline": {
            "evaluations": int(base_eval.sum()),
            "definition": "evaluations whose whole window lies outside the declared window "
            f"and its {params.guard_minutes}-minute margins",
        },
        "metrics": m,
        "rules": [
            {**e, "record": r.record, "record_expr": r.record_expr, **res}
            for e, r, res in zip(entries, kept, results, strict=True)
        ],
        "skipped": skipped,
    }
    unit_test = promtool.unit_test(buckets, kept, rule_file="rules.yaml")
    return AlertSet(rules_yaml, backtest, unit_test, entries, skipped)


def _first_detection(events: pd.DataFrame | None, params: Params) -> datetime | None:
    if events is None or events.empty:
        return None
    guard = timedelta(minutes=params.guard_minutes)
    hits = events[(events["kind"] == "detection") & (events["ts"] >= params.start - guard)]
    return None if hits.empty else pd.Timestamp(hits["ts"].iloc[0]).to_pydatetime()


def _episodes(mask: np.ndarray) -> list[tuple[int, int]]:
    out, begin = [], None
    for j, on in enumerate(mask):
        if on and begin is None:
            begin = j
        if not on and begin is not None:
            out.append((begin, j - 1))
            begin = None
    if begin is not None:
        out.append((begin, len(mask) - 1))
    return out


def _backtest(
    rule: Rule, buckets: Buckets, base_eval: np.ndarray, params: Params, detection
) -> dict[str, Any]:
    at = buckets.evaluation_time
    zone = ~base_eval
    zone[0] = False
    episodes = _episodes(rule.firing)
    in_zone = [e for e in episodes if zone[e[0] : e[1] + 1].any()]
    baseline_fires = sum(1 for a, b in episodes if base_eval[a : b + 1].any())
    first = next((j for a, b in in_zone for j in range(a, b + 1) if zone[j]), None)
    fired = at(first) if first is not None else None
    above = np.zeros_like(rule.firing)
    with np.errstate(invalid="ignore"):
        above[1:] = rule.values[1:] > rule.threshold
    crossed = next((j for j in range(len(above)) if above[j] and zone[j]), None)
    return {
        "fired_at": iso(fired),
        "lead_over_detection_s": (
            int((detection - fired).total_seconds()) if fired and detection else None
        ),
        "lead_over_declared_start_s": (
            int((params.start - fired).total_seconds()) if fired else None
        ),
        "baseline_fires": baseline_fires,
        "first_above_at": iso(at(crossed)) if crossed is not None else None,
        "firing_evaluations": int(rule.firing[zone].sum()),
        "episodes": [{"from": iso(at(a)), "to": iso(at(b))} for a, b in episodes],
        "threshold_basis": rule.basis,
    }


def _entry(rule: Rule, res: dict[str, Any]) -> dict[str, Any]:
    """The rule as ``summary.json`` lists it under ``alerts``."""
    out: dict[str, Any] = {"name": rule.alert, "signal": rule.key}
    if rule.labels:
        out["fingerprint"] = next(iter(rule.labels.values()))
    out.update(
        {
            "expr": rule.expr,
            "threshold": rule.threshold,
            "unit": rule.unit,
            "for": prom_duration(rule.for_s),
            "fired_at": res["fired_at"],
            "lead_over_detection_s": res["lead_over_detection_s"],
            "lead_over_declared_start_s": res["lead_over_declared_start_s"],
            "baseline_fires": res["baseline_fires"],
        }
    )
    return out


def _annotations(rule: Rule, res: dict[str, Any], incident_id: str, buckets: Buckets):
    fired = res["fired_at"]
    when = (
        f"would have fired at {_hm(fired)}"
        + (
            f", {_lead(res['lead_over_detection_s'])} the detection"
            if res["lead_over_detection_s"] is not None
            else ""
        )
        + f" and {_lead(res['lead_over_declared_start_s'])} the declared start"
        if fired
        else "would not have fired"
    )
    return {
        "summary": f"{rule.title[0].upper()}{rule.title[1:]} above "
        f"{prom_number(rule.threshold)}" + ("" if rule.unit == "ratio" else f" {rule.unit}"),
        "description": f"From the postmortem of incident {incident_id}: on its data this alert "
        f"{when}; on its baseline it fired {res['baseline_fires']} times.",
        "postmortem": incident_id,
    }


def _hm(text: str | None) -> str:
    if not text:
        return "n/a"
    return datetime.fromisoformat(text.replace("Z", "+00:00")).strftime("%H:%M UTC")


def _lead(seconds: int | None) -> str:
    if seconds is None:
        return "n/a"
    minutes = abs(seconds) / 60
    text = f"{minutes:.0f} min" if minutes == int(minutes) else f"{minutes:.1f} min"
    return f"{text} before" if seconds > 0 else ("at" if seconds == 0 else f"{text} after")


def render_rules(
    incident_id: str, bucket_s: int, recorded: list[dict[str, Any]], rules: list[Rule]
) -> str:
    """The Prometheus rule file: one group, recording rules first, so that every alert reads
    the value recorded in the same evaluation."""
    items: list[dict[str, Any]] = []
    for r in recorded:
        item: dict[str, Any] = {"record": r["record"], "expr": r["expr"]}
        if r.get("labels"):
            item["labels"] = dict(r["labels"])
        items.append(item)
    for rule in rules:
        items.append(
            {
                "alert": rule.alert,
                "expr": rule.expr,
                "for": prom_duration(rule.for_s),
                "labels": dict(rule.alert_labels),
                "annotations": dict(rule.annotations),
            }
        )
    doc = {
        "groups": [
            {
                "name": f"postmortem-{incident_id}",
                "interval": prom_duration(bucket_s),
                "rules": items,
            }
        ]
    }
    header = (
        f"# Prometheus rules written by Postmortem Lab from incident {incident_id}.\n"
        "# Thresholds come from the incident's baseline; alerts/backtest.json says when each\n"
        "# alert would have fired. Check: promtool check rules rules.yaml;\n"
        "# replay the incident: promtool test rules rules_test.yaml\n"
    )
    return header + yaml.safe_dump(
        doc, sort_keys=False, allow_unicode=True, width=10_000, default_flow_style=False
    )


def for_report(
    con: duckdb.DuckDBPyConnection,
    result: Any,
    params: Params,
    mapping: dict[str, Any] | None = None,
) -> AlertSet:
    """The alert set of a report, from its :class:`analysis.summary.Analysis`."""
    m = metric_mapping(mapping)
    fps, latency = gather(con, params, m)
    return build(
        result.summary,
        result.series,
        params,
        error_codes=result.error_codes,
        fingerprints=fps,
        latency=latency,
        events=result.timeline,
        mapping=m,
    )


# --- the postmortem's section ------------------------------------------------------------


def draft_section(s: dict[str, Any]) -> list[str]:
    """The lines of "Monitoring that would have caught it", from ``summary.json`` alone."""
    if "alerts" not in s:
        return []
    lines = ["## Monitoring that would have caught it", ""]
    rules = s["alerts"]
    if rules:
        lines += [
            "Prometheus rules in `alerts/rules.yaml`, thresholds from this incident's baseline; "
            "`alerts/backtest.json` replays them on its buckets, and "
            "`promtool test rules alerts/rules_test.yaml` checks that replay with Prometheus "
            "itself.",
            "",
            "| alert | fires when | for | would have fired | lead over detection "
            "| lead over declared start | baseline fires |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in rules:
            what = _md(r["expr"])
            lines.append(
                f"| {r['name']} | `{what}` | {r['for']} | {_hm(r['fired_at'])} "
                f"| {_signed(r['lead_over_detection_s'])} "
                f"| {_signed(r['lead_over_declared_start_s'])} | {r['baseline_fires']} |"
            )
        lines.append("")
        first = min((r for r in rules if r["fired_at"]), key=lambda r: r["fired_at"], default=None)
        if first and first["lead_over_detection_s"] is not None:
            lines += [
                f"- First to fire: {first['name']} at {_hm(first['fired_at'])}, "
                f"{_lead(first['lead_over_detection_s'])} the detection.",
            ]
        lines.append(
            "- Baseline fires are 0 by construction: no run of baseline evaluations above a "
            "threshold lasts longer than its `for`."
            if all(r["baseline_fires"] == 0 for r in rules)
            else "- Some rules fire on the baseline (its values there reach the threshold for "
            "longer than the longest `for` allowed): see `alerts/backtest.json`."
        )
    else:
        lines.append("- No alert rule could be written.")
    for skip in s.get("alerts_skipped", []):
        lines.append(f"- Not written ({skip['signal']}): {_md(skip['reason'])}.")
    lines.append("")
    return lines


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("`", "'")


def _signed(seconds: int | None) -> str:
    if seconds is None:
        return "n/a"
    minutes = seconds / 60
    text = f"{minutes:.0f}" if minutes == int(minutes) else f"{minutes:.1f}"
    return f"{text} min"
