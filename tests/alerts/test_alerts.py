"""The alert rules of issue 18: thresholds and firing minutes known by construction, Prometheus's
own promtool checking them, and the sample report end to end (with and without a query log)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from analysis import db, errors
from analysis.alerts import promql, promtool, signals
from analysis.alerts import rules as alerts
from analysis.figures.metrics import Params
from analysis.report import draft, params
from tests.conftest import require_promtool

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
T0 = datetime(2024, 1, 19, 8, 0)
START, END = datetime(2024, 1, 19, 10, 30), datetime(2024, 1, 19, 11, 30)
CHANGE = datetime(2024, 1, 19, 10, 26)  # the queries per login jump in this bucket
FAILING = datetime(2024, 1, 19, 10, 30)  # system failures from this bucket on
SPIKE = datetime(2024, 1, 19, 9, 0)  # one baseline minute of 30 system failures
N = 720  # 08:00 to 20:00, one-minute buckets


# --- known answers -----------------------------------------------------------------------


def test_a_threshold_is_robust_and_for_outlasts_the_baseline_runs():
    values = np.full(101, 2.0)
    values[0] = np.nan
    values[50] = 2.5  # one baseline evaluation above the threshold
    base = np.ones(101, dtype=bool)
    base[0] = False
    threshold, for_evals, basis = signals.choose(values, base)
    # median 2, MAD 0; the 99th percentile of 99 twos and a 2.5 is 2.005; +10% = 2.2055
    assert basis["median"] == 2.0 and basis["sigma_mad"] == 0.0
    assert basis["quantile_99"] == pytest.approx(2.005)
    assert threshold == 2.21
    assert for_evals == 1  # the spike lasts one evaluation: for = 1 evaluation outlasts it
    assert not promql.firing(values, threshold, for_evals)[base].any()
    assert promql.firing(values, threshold, 0)[50]


def test_a_baseline_run_longer_than_the_longest_for_raises_the_threshold_instead():
    values = np.full(2001, 2.0)
    values[20:32] = 2.5  # 12 evaluations in a row, too few to move the 99th percentile
    base = np.ones(2001, dtype=bool)
    threshold, for_evals, basis = signals.choose(values, base, max_for=10)
    assert basis["method"] == "above baseline max"
    assert (threshold, for_evals) == (2.75, 0)
    assert not promql.firing(values, threshold, for_evals).any()


def test_for_holds_an_alert_pending_as_prometheus_does():
    values = np.array([np.nan, 1, 5, 5, 1, 5, 5, 5, 5])
    assert promql.firing(values, 2, 0).tolist() == [0, 0, 1, 1, 0, 1, 1, 1, 1]
    # for = 2 evaluations: active at 5, pending at 6, firing at 7 (5 + 2 intervals)
    assert promql.firing(values, 2, 2).tolist() == [0, 0, 0, 0, 0, 0, 0, 1, 1]


def test_histogram_quantile_interpolates_like_prometheus():
    bounds = [0.01, 0.1, 1.0, math.inf]
    assert promql.histogram_quantile(0.95, bounds, [300, 300, 300, 300]) == pytest.approx(0.0095)
    # 1200 fast, 1500 in (0.1, 1]: rank 2565 is the 1365th of 1500 in that bucket
    got = promql.histogram_quantile(0.95, bounds, [1200, 1200, 2700, 2700])
    assert got == pytest.approx(0.1 + 0.9 * 1365 / 1500)
    assert promql.histogram_quantile(0.95, bounds, [0, 0, 10, 20]) == 1.0  # in +Inf: last bound
    assert math.isnan(promql.histogram_quantile(0.95, bounds, [0, 0, 0, 0]))


def test_window_rates_sum_the_last_buckets():
    rates = promql.window_rates(np.array([1, 2, 3, 4, 5]), 2, 10)
    assert math.isnan(rates[0])
    assert rates[1:].tolist() == [0.1, 0.3, 0.5, 0.7, 0.9]


def test_promql_text_is_quoted_and_never_in_exponent_notation():
    assert promql.prom_string('a "b" \\c') == '"a \\"b\\" \\\\c"'
    assert promql.prom_number(1e-05) == "0.00001" and promql.prom_number(4.0) == "4"
    assert [promql.prom_duration(s) for s in (0, 30, 60, 300, 3600, 22.5)] == [
        "0s",
        "30s",
        "1m",
        "5m",
        "1h",
        "22500ms",
    ]
    assert promql.re2_escape("a.b|c") == "a\\.b\\|c"


def test_the_metric_mapping_is_checked():
    m = alerts.metric_mapping("{auth_caller: login, labels: {job: auth}}")
    assert m["auth_caller"] == "login" and m["labels"] == {"job": "auth"}
    assert m["auth_attempts"] == "auth_attempts_total"
    for bad in ({"nope": 1}, {"db_queries": "not a name"}, {"latency_buckets": [1, 0.5]}):
        with pytest.raises(errors.AlertConfigError):
            alerts.metric_mapping(bad)
    with pytest.raises(errors.ParameterError, match="unknown key"):
        params.resolve({"alert_metrics": {"nope": 1}})
    assert params.resolve({"alert_metrics": "{window: 10m}"})["alert_metrics"] == {"window": "10m"}


# --- a small incident whose answer is known by construction ------------------------------


def _incident(*, queries: bool = True) -> alerts.AlertSet:
    """100 logins a minute; 3 queries each (300 of 'select a'), and from 10:26 to the declared
    end 1200 more of 'select b', all slow; 30 system failures a minute in the declared window
    and in the baseline minute 09:00; detection at 10:33."""
    buckets = [T0 + timedelta(minutes=i) for i in range(N)]
    changed = np.array([CHANGE <= b < END for b in buckets])
    failing = np.array([START <= b < END for b in buckets])
    series = pd.DataFrame(
        {
            "bucket": buckets,
            "attempts": 100,
            "queries": np.where(changed, 1500, 300) if queries else 0,
        }
    )
    codes = pd.DataFrame(
        [
            {"bucket": b, "error_code": "db_timeout", "failures": 30}
            for b, f in zip(buckets, failing, strict=True)
            if f or b == SPIKE
        ]
        + [{"bucket": b, "error_code": "invalid_password", "failures": 2} for b in buckets]
    )
    fps = pd.DataFrame(
        [{"bucket": b, "fingerprint": "select a", "queries": 300} for b in buckets]
        + [
            {"bucket": b, "fingerprint": "select b", "queries": 1200}
            for b, c in zip(buckets, changed, strict=True)
            if c
        ]
    )
    # cumulative counts under 10 ms, 100 ms, 1 s: all fast, then all 1500 between 0.1 and 1 s
    latency = pd.DataFrame(
        [
            {"bucket": b, "le_ms": le, "observations": (1500 if le == 1000 else 0) if c else 300}
            for b, c in zip(buckets, changed, strict=True)
            for le in (10.0, 100.0, 1000.0)
        ]
    )
    summary = {
        "incident_id": "known",
        "db": {
            "queries_per_auth": {"method": "request_id" if queries else "none"},
            "top_fingerprints": [
                {"fingerprint": "select b", "baseline_per_auth": 0.0, "incident_per_auth": 12.0},
                {"fingerprint": "select a", "baseline_per_auth": 3.0, "incident_per_auth": 3.0},
            ],
        },
    }
    events = pd.DataFrame(
        {"ts": [datetime(2024, 1, 19, 10, 33)], "kind": ["detection"], "text": ["page"]}
    )
    return alerts.build(
        summary,
        series,
        Params(start=START, end=END),
        error_codes=codes,
        fingerprints=fps if queries else None,
        latency=latency if queries else None,
        events=events,
        mapping={"latency_buckets": [0.01, 0.1, 1]},
    )


@pytest.fixture(scope="module")
def known() -> alerts.AlertSet:
    return _incident()


def test_the_known_incident_gives_the_thresholds_and_minutes_of_its_construction(known):
    got = {
        (r["name"], r.get("fingerprint")): r
        for r in known.summary
        if r["signal"] != "slo_burn_rate"
    }
    assert set(got) == {
        ("AuthSystemFailureRatioHigh", None),
        ("AuthDbQueriesPerLoginHigh", None),
        ("AuthDbFingerprintPerLoginHigh", "select b"),
        ("DbQueryLatencyP95High", None),
    }
    qpa = got["AuthDbQueriesPerLoginHigh", None]
    # baseline: exactly 3 per login, so 3 × 1.1; at 10:27 the 5-minute window holds the
    # first changed bucket: (4 × 300 + 1500) / 500 = 5.4 > 3.3; no baseline run above it, so
    # for is the 2-minute margin: firing from 10:29, a page (it leads the detection at 10:33)
    assert (qpa["threshold"], qpa["for"], qpa["fired_at"]) == (3.3, "2m", "2024-01-19T10:29:00Z")
    assert (qpa["lead_over_detection_s"], qpa["lead_over_declared_start_s"]) == (240, 60)
    assert qpa["severity"] == "page"
    fail = got["AuthSystemFailureRatioHigh", None]
    # the baseline's system failures are one minute (09:00) of 30 in ~620 evaluations: the 99th
    # percentile is 0, so the threshold is the floor, 3 failures in a window of 500 logins;
    # the 09:00 spike is above it in the 5 windows that hold it (09:01 to 09:05), so for is
    # 5 minutes, plus the 2-minute margin: the failures from 10:30 (above from 10:31) fire at
    # 10:38, after the detection: a ticket
    assert (fail["threshold"], fail["for"]) == (0.006, "7m")
    assert fail["fired_at"] == "2024-01-19T10:38:00Z"
    assert (fail["lead_over_detection_s"], fail["lead_over_declared_start_s"]) == (-300, -480)
    assert fail["severity"] == "ticket"
    assert fail["expr"] == "auth:system_failure_ratio:rate5m > 0.006"
    spike = next(r for r in known.backtest["rules"] if r["name"] == "AuthSystemFailureRatioHigh")
    assert spike["first_above_at"] == "2024-01-19T10:31:00Z"
    fp = got["AuthDbFingerprintPerLoginHigh", "select b"]
    assert fp["threshold"] == 0.006 and fp["fired_at"] == "2024-01-19T10:29:00Z"
    lat = got["DbQueryLatencyP95High", None]
    # p95 of 300 queries under 10 ms is 9.5 ms by interpolation; +10% rounded up: 10.5 ms
    assert lat["threshold"] == 0.0105 and lat["fired_at"] == "2024-01-19T10:29:00Z"
    assert all(r["baseline_fires"] == 0 for r in got.values())
    assert known.backtest["detection"] == "2024-01-19T10:33:00Z"
    assert known.skipped == []


def test_the_rule_file_is_prometheus_yaml_with_recording_rules_first(known):
    doc = yaml.safe_load(known.rules_yaml)
    (group,) = doc["groups"]
    assert group["interval"] == "1m"
    kinds = ["record" if "record" in r else "alert" for r in group["rules"]]
    assert kinds == sorted(kinds, key=lambda k: k != "record")
    alerts_ = [r for r in group["rules"] if "alert" in r]
    assert {r["annotations"]["postmortem"] for r in alerts_} == {"known"}
    assert all(r["labels"]["severity"] in ("page", "ticket") and "for" in r for r in alerts_)
    burn = [r for r in alerts_ if r["alert"] == "LoginSLOErrorBudgetBurn"]
    assert [(r["labels"]["long_window"], r["labels"]["severity"]) for r in burn] == [
        ("1h", "page"),
        ("6h", "page"),
        ("3d", "ticket"),
    ]
    records = {r["record"]: r for r in group["rules"] if "record" in r}
    assert (
        'error_code!~"invalid_credentials|invalid_password'
        in (records["auth:system_failures:rate5m"]["expr"])
    )
    assert records["auth:db_fingerprint_queries_per_attempt:ratio_rate5m"]["labels"] == {
        "fingerprint": "select b"
    }


def test_without_a_query_log_only_the_auth_rules_are_written_and_the_draft_says_why():
    a = _incident(queries=False)
    assert [r["name"] for r in a.summary] == ["AuthSystemFailureRatioHigh"] + [
        "LoginSLOErrorBudgetBurn"
    ] * 3
    assert "db_queries_total" not in a.rules_yaml
    assert [s["signal"] for s in a.skipped] == ["database"]
    text = "\n".join(alerts.draft_section({"alerts": a.summary, "alerts_skipped": a.skipped}))
    assert "## Monitoring that would have caught it" in text
    assert "Not written (database): no query log in this report" in text


def test_promtool_checks_the_rules_and_replays_the_known_incident(known, tmp_path):
    require_promtool()
    folder = tmp_path / "alerts"
    known.write(folder)
    check = promtool.check(folder)
    assert check.returncode == 0, check.stdout
    assert "SUCCESS: 19 rules found" in check.stdout  # 11, and 5 records and 3 burn alerts
    replay = promtool.replay(folder)
    assert replay.returncode == 0, replay.stdout
    assert "SUCCESS" in replay.stdout


def test_promtool_fails_the_replay_when_an_alert_is_expected_a_minute_early(known, tmp_path):
    require_promtool()
    folder = tmp_path / "alerts"
    known.write(folder)
    doc = yaml.safe_load((folder / "rules_test.yaml").read_text())
    cases = doc["tests"][0]["alert_rule_test"]
    # 10:28 is minute 148 after 08:00: the queries-per-login alert is not firing yet
    early = next(
        c
        for c in cases
        if c["eval_time"] == "148m" and c["alertname"] == "AuthDbQueriesPerLoginHigh"
    )
    firing = next(
        c
        for c in cases
        if c["eval_time"] == "149m" and c["alertname"] == "AuthDbQueriesPerLoginHigh"
    )
    assert early["exp_alerts"] == [] and firing["exp_alerts"]
    early["exp_alerts"] = firing["exp_alerts"]
    (folder / "rules_test.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    replay = promtool.replay(folder)
    assert replay.returncode != 0
    assert "alertname: AuthDbQueriesPerLoginHigh, time: 2h28m" in replay.stdout


# --- the sample, end to end --------------------------------------------------------------


def _check(database: Path, check_sql: str, at: str) -> dict[str, tuple[float, bool]]:
    import duckdb

    text = check_sql.replace(
        "set variable pm_at = null::timestamp;", f"set variable pm_at = TIMESTAMP '{at}';"
    )
    con = duckdb.connect(str(database), read_only=True)
    try:
        rows = con.execute(text).fetchall()
    finally:
        con.close()
    return {row[0]: (row[6], row[7]) for row in rows}


def _report(sample: dict[str, Path], base: Path, *, queries: bool = True) -> Path:
    out = base / "report"
    args = ["--auth", str(sample["auth"]), "--timeline", str(sample["timeline"])]
    if queries:
        args += ["--queries", str(sample["queries"])]
    proc = subprocess.run(
        [str(BIN / "postmortem"), "-q", "report", *args, "--database", str(base / "a.duckdb")]
        + ["--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def sample_report(small_sample, tmp_path_factory) -> Path:
    return _report(small_sample, tmp_path_factory.mktemp("alerts-report"))


def test_on_the_sample_queries_per_login_fires_before_the_detection_and_never_on_baseline(
    sample_report,
):
    s = json.loads((sample_report / "summary.json").read_text())
    by_name = {r["name"]: r for r in s["alerts"]}
    qpa = by_name["AuthDbQueriesPerLoginHigh"]
    # the config deploy at 10:26 doubles the queries at once; the detection came at 10:33
    assert "2024-01-19T10:26:00Z" <= qpa["fired_at"] <= "2024-01-19T10:31:00Z"
    assert qpa["lead_over_detection_s"] >= 120
    assert {r["baseline_fires"] for r in s["alerts"]} == {0}
    assert "permissions" in by_name["AuthDbFingerprintPerLoginHigh"]["fingerprint"]
    assert set(by_name) == {
        "AuthSystemFailureRatioHigh",
        "AuthDbQueriesPerLoginHigh",
        "AuthDbFingerprintPerLoginHigh",
        "DbQueryLatencyP95High",
        "LoginSLOErrorBudgetBurn",
    }
    backtest = json.loads((sample_report / "alerts" / "backtest.json").read_text())
    assert [r["fired_at"] for r in backtest["rules"]] == [r["fired_at"] for r in s["alerts"]]
    assert backtest["baseline"]["evaluations"] > 400
    md = (sample_report / "postmortem.md").read_text()
    assert "## Monitoring that would have caught it" in md
    assert f"| AuthDbQueriesPerLoginHigh | page | `{qpa['expr']}`" in md
    manifest = json.loads((sample_report / "manifest.json").read_text())
    hashed = {o["path"] for o in manifest["outputs"] if o["sha256"]}
    assert {"alerts/rules.yaml", "alerts/rules_test.yaml", "alerts/backtest.json"} <= hashed
    assert draft.render(s).count("## Monitoring that would have caught it") == 1
    # the login SLO: the failures from 10:30 page within 5 minutes (1h and 5m above 14.4×)
    slo = s["slo"]
    pages = [r for r in s["alerts"] if r["signal"] == "slo_burn_rate" and r["severity"] == "page"]
    assert slo["fast_burn_page_at"] == min(r["fired_at"] for r in pages)
    assert "2024-01-19T10:30:00Z" < slo["fast_burn_page_at"] <= "2024-01-19T10:35:00Z"
    assert slo["budget_consumed"] > 1  # an outage of hours spends more than a month's budget
    assert f"consumed {round(slo['budget_consumed'] * 100)}% of a 30-day budget" in md


def test_promtool_passes_the_sample_reports_rules_and_replay(sample_report):
    require_promtool()
    folder = sample_report / "alerts"
    check = promtool.check(folder)
    assert check.returncode == 0 and "SUCCESS" in check.stdout, check.stdout
    replay = promtool.replay(folder)
    assert replay.returncode == 0 and "SUCCESS" in replay.stdout, replay.stdout


def test_the_duckdb_check_fires_with_the_rules_on_the_loaded_tables(sample_report):
    check = (sample_report / "alerts" / "check.sql").read_text()
    database = sample_report.parent / "a.duckdb"
    before = _check(database, check, "2024-01-19 10:26:00")
    after = _check(database, check, "2024-01-19 10:29:00")  # above from 10:27, for 2m
    assert set(after) == {
        "AuthSystemFailureRatioHigh",
        "AuthDbQueriesPerLoginHigh",
        "AuthDbFingerprintPerLoginHigh",
    }
    assert not any(firing for _, firing in before.values())
    assert after["AuthDbQueriesPerLoginHigh"][1] and after["AuthDbFingerprintPerLoginHigh"][1]
    assert not after["AuthSystemFailureRatioHigh"][1]  # the failures start at 10:30
    assert _check(database, check, "2024-01-19 10:35:00")["AuthSystemFailureRatioHigh"][1]
    baseline = _check(database, check, "2024-01-19 08:00:00")
    assert not any(firing for _, firing in baseline.values())


def test_the_sample_without_a_query_log_gets_only_the_auth_rules(small_sample, tmp_path):
    out = _report(small_sample, tmp_path, queries=False)
    s = json.loads((out / "summary.json").read_text())
    assert [r["name"] for r in s["alerts"]] == ["AuthSystemFailureRatioHigh"] + [
        "LoginSLOErrorBudgetBurn"
    ] * 3
    assert s["alerts_skipped"][0]["signal"] == "database"
    rules = (out / "alerts" / "rules.yaml").read_text()
    assert "auth_attempts_total" in rules and "db_queries_total" not in rules
    assert "Not written (database): no query log" in (out / "postmortem.md").read_text()


def test_a_report_leaves_the_exploration_out_unless_asked(sample_report):
    # the report fixture here is made without --explore: only the report's own notebook
    assert (sample_report / "incident_report.html").is_file()
    assert not list(sample_report.glob("explore.*"))
    manifest = json.loads((sample_report / "manifest.json").read_text())
    assert manifest["parameters"]["exploration"] is False
    assert not [o for o in manifest["outputs"] if o["path"].startswith("explore")]


def test_the_yaml_of_rules_and_tests_is_the_text_of_pyyamls_own_emitter():
    # the files are written by libyaml (12x faster on a report's 40k-node test file): the
    # text must stay what PyYAML's Python emitter writes, quoting and all
    doc = {
        "rule_files": ["rules.yaml"],
        "groups": [
            {
                "name": "postmortem-2024-01-19-auth",
                "expr": 'sum by (fp) (rate(x{fp="select * from t where a = ?"}[5m])) > 0.5',
                "labels": {"severity": "page", "on": "yes", "n": "1.0", "empty": ""},
                "annotations": {
                    "summary": "ünïcode — quotes ' and \" and: colons # hash",
                    "multi": "line one\nline two\n",
                    "lead": "  leading spaces",
                },
                "values": "0+1x59 60+0x10",
                "numbers": [0, 1.5, -2, 1e-9, None, True],
                "empty_list": [],
                "empty_map": {},
            }
        ],
    }
    expected = yaml.safe_dump(
        doc, sort_keys=False, allow_unicode=True, width=10_000, default_flow_style=False
    )
    assert promtool.yaml_text(doc) == expected
    assert yaml.safe_load(promtool.yaml_text(doc)) == doc


def test_the_latency_histogram_counts_each_bound_as_prometheus_would(con):
    """``alerts_latency``: per bucket and bound, the queries that took at most that long,
    against the definition counted in Python (durations on a bound, above every bound, none)."""
    rng = np.random.default_rng(5)
    bounds = [1.0, 2.5, 10.0, 100.0]
    rows = [
        (T0 + timedelta(seconds=int(s)), float(d))
        for s, d in zip(
            rng.integers(0, 300, 400),
            rng.choice([0.2, 1.0, 2.5, 3.0, 10.0, 99.9, 100.0, 500.0], 400),
            strict=True,
        )
    ]
    rows += [(T0 + timedelta(minutes=7), None), (T0 + timedelta(minutes=7, seconds=1), None)]
    rows += [(T0 + timedelta(minutes=2), None)]
    con.execute("create temp table q (ts timestamp, duration_ms double)")
    con.executemany("insert into q values (?, ?)", rows)
    con.execute("create temp view v_queries as select * from q")
    got = db.run(
        con, "alerts_latency", {"bucket": "1 minutes", "bounds_ms": [*bounds, math.inf]}
    ).fetchall()
    minutes = sorted({ts.replace(second=0) for ts, _ in rows})
    expected = [
        (
            m,
            le,
            sum(1 for ts, d in rows if ts.replace(second=0) == m and d is not None and d <= le),
        )
        for m in minutes
        for le in bounds
    ]
    assert got == expected
    assert (T0 + timedelta(minutes=7), 100.0, 0) in got  # a minute of queries without durations
    assert sum(n for _, le, n in got if le == 100.0) < len(rows) - 3  # 500 ms counts nowhere


def test_bounds_closer_than_a_nanosecond_are_one_bound_of_the_histogram(con):
    con.execute(
        "create temp view v_queries as select * from (values "
        "(timestamp '2024-01-19 08:00:10', 1.0), (timestamp '2024-01-19 08:00:20', 5.0)) "
        "t(ts, duration_ms)"
    )
    con.execute(
        "create temp view v_auth_queries as select ts, 'select ?' as fingerprint from v_queries"
    )
    mapping = alerts.metric_mapping({"latency_buckets": [0.001, 0.0010000000001, 0.01]})
    _, latency = alerts.gather(con, Params(start=START, end=END), mapping)
    assert latency[["le_ms", "observations"]].values.tolist() == [[1.0, 1], [10.0, 2]]


def test_a_ratio_threshold_above_one_is_left_out_with_the_reason():
    # one attempt every 5 minutes: the floor of 3 events in a 5-minute window that holds one
    # attempt is a share of 3, which no ratio can pass
    buckets = [T0 + timedelta(minutes=i) for i in range(N)]
    series = pd.DataFrame(
        {"bucket": buckets, "attempts": [i % 5 == 0 for i in range(N)], "queries": 0}
    )
    series["attempts"] = series["attempts"].astype(int)
    codes = pd.DataFrame([{"bucket": START, "error_code": "db_timeout", "failures": 1}])
    a = alerts.build(
        {"incident_id": "sparse", "db": {"queries_per_auth": {"method": "none"}}},
        series,
        Params(start=START, end=END),
        error_codes=codes,
    )
    assert "AuthSystemFailureRatioHigh" not in a.rules_yaml
    reasons = {s["signal"]: s["reason"] for s in a.skipped}
    assert "above 1" in reasons["system_failure_ratio"]
