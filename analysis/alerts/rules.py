"""Alert rules that would have caught the incident, with thresholds from its own baseline.

:func:`build` turns a report's per-bucket series into a Prometheus rule file (recording rules
for the ratios, alerting rules on them) and a backtest: on this incident's buckets, when each
alert would have fired, its lead over the timeline's detection and over the declared start,
and how often it fires on the baseline. The buckets are first written as the counters a
service would export (:mod:`analysis.alerts.signals`); the backtest evaluates the rules on those
counters as Prometheus does (:mod:`analysis.alerts.promql`), and
:mod:`analysis.alerts.promtool` writes the same counters as a ``promtool test rules`` file, so that
Prometheus itself checks every minute of the backtest.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import yaml

from analysis import db, privacy, times
from analysis.alerts import burn, promtool
from analysis.alerts.promql import firing, prom_duration, prom_number
from analysis.alerts.signals import (
    FP_RULES,
    MAX_FOR_MINUTES,
    Buckets,
    Rule,
    bound_ms,
    buckets_baseline,
    choose,
    counters_from,
    signals,
)
from analysis.errors import AlertConfigError
from analysis.figures import Params
from analysis.times import iso

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

#: a threshold rule pages only when the backtest shows it leads the detection; else a ticket
PAGE, TICKET = "page", "ticket"
#: the margin added to the longest run above a threshold on the baseline, to make its ``for``
FOR_MARGIN_S = 120


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
        times.bucket_seconds(out["window"])
    except ValueError as exc:
        raise AlertConfigError(f"alert_metrics.window {out['window']!r}: {exc}") from exc
    return out


def window_seconds(mapping: dict[str, Any]) -> int:
    """The window of the rules in seconds (``5m`` → 300)."""
    return times.bucket_seconds(mapping["window"])


# --- the rule set of a report ------------------------------------------------------------


def gather(
    con: duckdb.DuckDBPyConnection, params: Params, mapping: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per bucket, the auth queries by fingerprint and the query-duration histogram."""
    bucket = times.bucket_interval(params.bucket)
    fps = db.run(con, "alerts_fingerprints", {"bucket": bucket}).df()
    # the fingerprints of summary.json are masked; so are the counters' labels
    fps["fingerprint"] = fps["fingerprint"].map(privacy.mask)
    # distinct, as the histogram query counts bounds below a duration and ranks them
    bounds_ms = sorted({bound_ms(le) for le in mapping["latency_buckets"]})
    latency = db.run(con, "alerts_latency", {"bucket": bucket, "bounds_ms": bounds_ms}).df()
    return fps, latency


@dataclass
class AlertSet:
    """What a report writes under ``alerts/`` and what its summary says about it."""

    rules_yaml: str
    backtest: dict[str, Any]
    unit_test: str
    summary: list[dict[str, Any]]
    skipped: list[dict[str, str]]
    check_sql: str = ""

    def write(self, folder) -> list:
        """Write ``rules.yaml``, ``rules_test.yaml``, ``check.sql`` and ``backtest.json``."""
        import json

        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        if self.rules_yaml:  # without a series there is no rule to write, only the reason
            paths += [folder / "rules.yaml", folder / "rules_test.yaml"]
            paths[0].write_text(self.rules_yaml, encoding="utf-8")
            paths[1].write_text(self.unit_test, encoding="utf-8")
        if self.check_sql:
            paths.append(folder / "check.sql")
            paths[-1].write_text(self.check_sql, encoding="utf-8")
        text = json.dumps(self.backtest, indent=2, ensure_ascii=False, allow_nan=False)
        paths.append(folder / "backtest.json")
        paths[-1].write_text(text + "\n", encoding="utf-8")
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
    m = metric_mapping(mapping)
    incident_id = summary["incident_id"]
    if series_df.empty:
        skipped = [{"signal": "auth", "reason": "no auth event in this report: no series"}]
        return AlertSet(
            "", {"incident_id": incident_id, "rules": [], "skipped": skipped}, "", [], skipped
        )
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
    kept = _with_thresholds(rules, buckets, base_eval, skipped)
    recorded = _records_read(recorded, kept)
    why = burn.usable(buckets.seconds)
    if why:
        skipped.append({"signal": "slo_burn_rate", "reason": why})
    else:
        slo_rules, slo_records = burn.rules(buckets, params, m)
        kept, recorded = kept + slo_rules, recorded + slo_records
    detection = _first_detection(events, params)
    results = _backtests(kept, buckets, base_eval, params, detection, incident_id)
    rules_yaml = render_rules(incident_id, buckets.seconds, recorded, kept)
    entries = [_entry(rule, res) for rule, res in zip(kept, results, strict=True)]
    backtest = {
        **_backtest_head(incident_id, params, buckets, k, base_eval, detection),
        "metrics": m,
        "rules": [
            {**e, "record": r.record, "record_expr": r.record_expr, **res}
            for e, r, res in zip(entries, kept, results, strict=True)
        ],
        "skipped": skipped,
    }
    unit_test = promtool.unit_test(buckets, kept, rule_file="rules.yaml")
    check = check_sql(kept, bucket_s=buckets.seconds, k=k, mapping=m, params=params)
    return AlertSet(rules_yaml, backtest, unit_test, entries, skipped, check)


def _with_thresholds(
    rules: list[Rule], buckets: Buckets, base_eval: np.ndarray, skipped: list[dict[str, str]]
) -> list[Rule]:
    """Return the rules given a threshold, ``for`` and firing (the others go to ``skipped``)."""
    max_for = max(0, MAX_FOR_MINUTES * 60 // buckets.seconds)
    margin = -(-FOR_MARGIN_S // buckets.seconds)  # whole evaluations, rounded up
    kept = []
    for rule in rules:
        chosen = choose(rule.values, base_eval, floor=rule.floor, max_for=max_for)
        if chosen is None:
            skipped.append(
                {"signal": rule.key, "reason": "no baseline evaluation to take a threshold from"}
            )
            continue
        if rule.unit == "ratio" and chosen[0] > 1:
            skipped.append(
                {
                    "signal": rule.key,
                    "reason": "too little traffic for a rule on a ratio: 3 events in a window "
                    f"of the baseline's attempts is a share of {chosen[0]:g}, above 1",
                }
            )
            continue
        rule.threshold, longest, rule.basis = chosen
        # a run as long as the baseline's longest is no news: for = that run plus a margin
        rule.for_evals = longest + margin
        rule.basis["for"] = {
            "longest_baseline_run_evaluations": longest,
            "margin_evaluations": margin,
            "rule": "for = the longest run of baseline evaluations above the threshold "
            f"+ {prom_duration(FOR_MARGIN_S)}",
        }
        rule.for_s = rule.for_evals * buckets.seconds
        rule.firing = firing(rule.values, rule.threshold, rule.for_evals)
        kept.append(rule)
    return kept


def _backtests(
    kept: list[Rule],
    buckets: Buckets,
    base_eval: np.ndarray,
    params: Params,
    detection: datetime | None,
    incident_id: str,
) -> list[dict[str, Any]]:
    """Return each kept alert's backtest, and label and annotate the alert with what it found."""
    results = [
        _backtest(rule, buckets, rule.baseline if rule.baseline is not None else base_eval,
                  params, detection)
        for rule in kept
    ]  # fmt: skip
    for rule, res in zip(kept, results, strict=True):
        if not rule.alert_labels:  # a burn-rate alert has its severity from its policy
            lead = res["lead_over_detection_s"]
            severity = PAGE if lead is not None and lead > 0 else TICKET
            rule.alert_labels = {"severity": severity, "signal": rule.key}
        rule.annotations = _annotations(rule, res, incident_id, buckets)
    return results


def _records_read(recorded: list[dict[str, str]], kept: list[Rule]) -> list[dict[str, str]]:
    """Return the recording rules the kept alerts read: a rule file without dead records."""
    # a recording rule only for what a kept alert (or another recording rule) reads
    wanted = {r.record for r in kept}
    return [
        r
        for r in recorded
        if r["record"] in wanted
        or any(r["record"] in o["expr"] for o in recorded if o["record"] in wanted)
    ]


def _backtest_head(
    incident_id: str,
    params: Params,
    buckets: Buckets,
    k: int,
    base_eval: np.ndarray,
    detection: datetime | None,
) -> dict[str, Any]:
    """Return the backtest's first keys: how and against what its rules were evaluated."""
    return {
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
    }


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
    if rule.key == "fingerprint":
        out["fingerprint"] = next(iter(rule.labels.values()))
    if rule.key == "slo_burn_rate":
        out["windows"] = f"{rule.alert_labels['long_window']}/{rule.alert_labels['short_window']}"
    out.update(
        {
            "expr": rule.expr,
            "threshold": rule.threshold,
            "unit": rule.unit,
            "for": prom_duration(rule.for_s),
            "severity": rule.alert_labels["severity"],
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
    return header + promtool.yaml_text(doc)


#: the signals alerts/check.sql computes from the loaded tables
CHECKED = ("system_failure_ratio", "queries_per_attempt", "fingerprint")


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def check_sql(rules: list[Rule], *, bucket_s: int, k: int, mapping: dict[str, Any], params) -> str:
    """``alerts/check.sql``: the thresholds as DuckDB variables, then
    ``sql/alerts_check.sql``, which evaluates the rules on the loaded tables."""
    checked = [r for r in rules if r.key in CHECKED]
    structs = ", ".join(
        "{"
        f"'name': {_sql_text(r.alert)}, 'signal': {_sql_text(r.key)}, "
        f"'fingerprint': {_sql_text(next(iter(r.labels.values()), ''))}, "
        f"'threshold': {prom_number(r.threshold)}::double, 'for_evals': {r.for_evals}"
        "}"
        for r in checked
    )
    codes = ", ".join(_sql_text(c) for c in params.user_error_codes)
    max_for = max((r.for_evals for r in checked), default=0)
    head = [
        "-- The alert rules of rules.yaml as a DuckDB check on a database loaded by",
        "-- `postmortem load`, for a scheduled job without Prometheus:",
        "--     duckdb incident.duckdb < alerts/check.sql",
        "-- One row per rule: its value at the last whole bucket, and whether it fires. Set",
        "-- pm_at to an instant (e.g. TIMESTAMP '2024-01-19 10:27:00', UTC) to evaluate then.",
        f"set variable pm_bucket = {_sql_text(f'{bucket_s} seconds')};",
        f"set variable pm_window = {_sql_text(f'{k * bucket_s} seconds')};",
        f"set variable pm_max_for = {max_for};",
        f"set variable pm_user_codes = [{codes}]::varchar[];",
        f"set variable pm_auth_caller = {_sql_text(mapping['auth_caller'])};",
        f"set variable pm_rules = [{structs}];",
        "set variable pm_at = null::timestamp;",
        "",
    ]
    return "\n".join(head) + db.sql("alerts_check").rstrip() + ";\n"


def for_report(
    con: duckdb.DuckDBPyConnection,
    result: Any,
    params: Params,
    mapping: dict[str, Any] | None = None,
) -> AlertSet:
    """The alert set of a report, from its :class:`analysis.figures.summary.Analysis`."""
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
            "| alert | severity | fires when | for | would have fired | lead over detection "
            "| lead over declared start | baseline fires |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in rules:
            what = _md(r["expr"])
            lines.append(
                f"| {r['name']} | {r['severity']} | `{what}` | {r['for']} | {_hm(r['fired_at'])} "
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
            "- Two families: thresholds from this incident's baseline (`for` is the longest run "
            "above the threshold on the baseline plus 2 minutes; a page only where the backtest "
            "shows it leads the detection, else a ticket), and the login SLO's multi-window "
            "burn-rate alerts (Google SRE workbook: page at 14.4× over 1h and 5m or 6× over 6h "
            "and 30m, ticket at 1× over 3d and 6h)."
        )
        lines.append(
            "- Baseline fires are 0: no run of baseline evaluations above a threshold lasts "
            "longer than its `for`, and no burn rate reached its factor there."
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
