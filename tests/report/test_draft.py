"""The draft says only what the summary holds: rendered from hand-written summaries with each
part present, then absent."""

from __future__ import annotations

import copy
import re

import pytest

from analysis.report import draft


def full() -> dict:
    """A hand-written summary of an incident that has every part."""
    return {
        "incident_id": "t-1",
        "window": {
            "declared": {"start": "2024-01-19T10:30:00Z", "end": "2024-01-19T14:45:00Z"},
            "detected": {
                "start": "2024-01-19T10:26:00Z",
                "end": "2024-01-19T14:45:00Z",
                "signals": {
                    "start": ["queries_per_auth", "latency_p95_ms"],
                    "end": ["system_failure_rate"],
                },
                "by_signal": {
                    "system_failure_rate": {
                        "start": "2024-01-19T10:30:00Z",
                        "end": "2024-01-19T14:45:00Z",
                    },
                    "queries_per_auth": {
                        "start": "2024-01-19T10:26:00Z",
                        "end": "2024-01-19T14:40:00Z",
                    },
                    "latency_p95_ms": {
                        "start": "2024-01-19T10:26:00Z",
                        "end": "2024-01-19T14:42:00Z",
                    },
                },
                "masked_buckets": 0,
            },
            "agrees": True,
        },
        "impact": {
            "users_active": 1000,
            "users_affected": 300,
            "affected_share": 0.3,
        },
        "auth": {
            "attempts": 4000,
            "failures": 820,
            "system_failures": 800,
            "error_rate": 0.205,
            "baseline_error_rate": 0.02,
            "peak_error_rate": 0.34,
            "peak_minute": "2024-01-19T10:41:00Z",
            "system_error_rate": 0.2,
            "baseline_system_error_rate": 0.0,
            "user_class": {
                "failures": 20,
                "users": 18,
                "rate": 0.02,
                "baseline_rate": 0.02,
                "far_above_baseline": False,
            },
        },
        "db": {
            "queries_per_auth": {"baseline": 3.25, "incident": 15.0, "method": "request_id"},
            "amplification": 4.62,
            "top_fingerprints": [
                {
                    "fingerprint": "select perm from permissions where user_id = ?",
                    "baseline_per_auth": 0.0,
                    "incident_per_auth": 12.5,
                    "incident": {"count": 50000, "total_ms": 1.0, "mean_ms": 1.0, "p95_ms": 1.0},
                    "baseline": {"count": 0, "total_ms": None, "mean_ms": None, "p95_ms": None},
                }
            ],
            "latency_p95_ms": {"baseline": 6.9, "incident": 1787.1},
            "queries": {"baseline": 30000, "incident": 60000},
        },
        "dimensions": [
            {
                "dimension": "region",
                "value": "eu-west",
                "incident_share": 0.61,
                "baseline_share": 0.48,
                "score": 0.13,
                "z": 35.3,
                "p_value": 7.8e-274,
            }
        ],
        "dimension_pairs": [
            {
                "dimensions": ["region", "client"],
                "values": ["eu-west", "android"],
                "incident_share": 0.5,
                "baseline_share": 0.1,
                "score": 0.4,
                "gain": 0.27,
                "z": 20.0,
                "p_value": 1e-80,
            }
        ],
        "bypass": {
            "logins": 350,
            "users": 170,
            "first": "2024-01-19T11:40:00Z",
            "last": "2024-01-19T16:11:00Z",
            "duration_s": 16260,
            "buckets_on": 272,
            "logins_after_declared_end": 99,
            "users_after_declared_end": 74,
            "on_at_declared_end": True,
            "on_at_data_end": False,
        },
        "timeline": {
            "time_to_detect_s": 420,
            "time_to_mitigate_s": 4440,
            "time_to_resolve_s": 15240,
            "trigger": {
                "ts": "2024-01-19T10:26:00Z",
                "text": "auth-service config deploy disabled the permission cache",
                "lead_s": 0,
            },
        },
        "span": {
            "start": "2024-01-19T06:00:00Z",
            "end": "2024-01-19T20:00:00Z",
            "bucket": "1min",
            "bucket_requested": "1min",
            "bucket_grown": False,
            "max_buckets": 4000,
        },
        "ingest": {
            "auth": {
                "rows_read": 9000,
                "rows_loaded": 9000,
                "rows_rejected": 0,
                "outside_span": {"count": 0, "first": None, "last": None},
            },
            "queries": {
                "rows_read": 90000,
                "rows_loaded": 90000,
                "rows_rejected": 0,
                "outside_span": {"count": 0, "first": None, "last": None},
            },
            "timeline": {"rows_read": 7, "rows_loaded": 7, "rows_rejected": 0},
        },
        "parameters": {"bucket": "1min", "user_error_codes": [], "baseline_guard_minutes": 15},
    }


def without_queries(s: dict) -> dict:
    """No query log at all: no queries, no latency, no fingerprint."""
    s["db"] = {
        "queries_per_auth": {
            "baseline": None,
            "incident": None,
            "method": "none",
            "auth_callers": [],
        },
        "amplification": None,
        "top_fingerprints": [],
        "latency_p95_ms": {"baseline": None, "incident": None},
        "queries": {"baseline": 0, "incident": 0},
    }
    s["ingest"]["queries"] = None
    det = s["window"]["detected"]
    det["signals"] = {"start": ["system_failure_rate"], "end": ["system_failure_rate"]}
    det["by_signal"] = {"system_failure_rate": det["by_signal"]["system_failure_rate"]}
    return s


def without_bypass(s: dict) -> dict:
    s["bypass"] = {
        "logins": 0,
        "users": 0,
        "first": None,
        "last": None,
        "duration_s": None,
        "buckets_on": 0,
        "logins_after_declared_end": 0,
        "users_after_declared_end": 0,
        "on_at_declared_end": False,
        "on_at_data_end": False,
    }
    return s


def without_system_failures(s: dict) -> dict:
    s["auth"].update(system_failures=0, failures=20, error_rate=0.005)
    s["impact"].update(users_affected=0, affected_share=0.0)
    s["dimensions"], s["dimension_pairs"] = [], []
    return s


def without_detection(s: dict) -> dict:
    s["window"]["detected"], s["window"]["agrees"] = None, False
    s["timeline"] = {
        "time_to_detect_s": None,
        "time_to_mitigate_s": None,
        "time_to_resolve_s": None,
        "trigger": None,
    }
    return s


def without_timeline(s: dict) -> dict:
    s["timeline"] = {
        "time_to_detect_s": None,
        "time_to_mitigate_s": None,
        "time_to_resolve_s": None,
        "trigger": None,
    }
    return s


def without_dimensions(s: dict) -> dict:
    s["dimensions"], s["dimension_pairs"] = [], []
    return s


def insignificant_dimension(s: dict) -> dict:
    s["dimensions"][0].update(p_value=0.2, z=0.8)
    s["dimension_pairs"] = []
    return s


def user_class_storm(s: dict) -> dict:
    s = without_system_failures(s)
    s["auth"]["user_class"] = {
        "failures": 700,
        "users": 640,
        "rate": 0.175,
        "baseline_rate": 0.0175,
        "far_above_baseline": True,
    }
    s["auth"].update(failures=700, error_rate=0.175)
    return s


def render(change=None, **kw) -> str:
    s = full()
    if change is not None:
        s = change(copy.deepcopy(s))
    return draft.render(s, **kw)


def test_the_full_summary_says_everything_it_holds():
    text = render()
    for heading in (
        "## Duration",
        "## Impact",
        "## Timeline",
        "## Root cause and resolution",
        "## Security finding",
        "## Corrective and preventive measures",
        "## Evidence",
    ):
        assert heading in text
    assert "Set by: DB queries per login and DB p95 latency at the start, system failures" in text
    assert "300 of 1,000 users active in the declared window (30.0%)" in text
    assert "rose from 3.25 to 15.00 (×4.62; method: request_id)" in text
    assert "select perm from permissions" in text
    assert "6.9 ms at baseline, 1,787.1 ms in the window" in text
    assert (
        "region = eu-west (61.0% of system failures against 48.0% of attempts; p < 0.0001)" in text
    )
    assert "region = eu-west and client = android explain more than either alone" in text
    assert "350 logins by 170 users" in text and "The bypass outlived the fix" in text
    assert "confirm that the bypass of the database check is gone" in text
    assert "communicate with affected users" in text
    assert "alert on queries per login" in text and "p95 latency against its baseline" in text
    assert "the signals moved the same minute" in text
    assert "Time to detect: 7 min" in text
    # every chart but the database's own errors, which this summary has none of
    assert len(re.findall(r"\]\(figures/", text)) == len(draft.CHARTS) - 1
    assert draft.charts_for(full()) == [c for c in draft.CHARTS if c != "server_events"]
    assert "user-class failures" not in text.lower().split("## impact")[1].split("##")[0]
    assert "None" not in text and "n/a" not in text


def test_without_a_query_log_no_amplification_latency_or_query_advice():
    text = render(without_queries)
    for absent in (
        "queries per auth attempt",
        "largest rise",
        "p95 latency",
        "alert on queries per login",
        "queries rows",
        "figures/fingerprints.png",
        "×",
        "not measured",  # no query log at all is not "no query tied to auth"
    ):
        assert absent not in text, absent
    assert "Set by: system failures at the start, system failures at the end" in text
    assert "None" not in text and "n/a" not in text
    titles = draft.chart_titles(without_queries(full()))
    assert "queries" not in titles["overview"] and "latency" not in titles["overview"]
    assert "fingerprints" not in draft.charts_for(without_queries(full()))


def test_without_bypass_logins_no_bypass_finding_or_advice():
    text = render(without_bypass)
    assert "bypass" not in text.lower()
    assert "mitigation" not in text.lower()
    assert "bypass" not in draft.charts_for(without_bypass(full()))


def test_a_bypass_still_on_at_the_end_of_the_data_is_to_be_removed():
    def still_on(s):
        s["bypass"]["on_at_data_end"] = True
        return s

    text = render(still_on)
    assert "remove the temporary mitigation that bypassed the database" in text
    assert "still on at the end of the data" in text


def test_without_system_failures_no_users_affected_and_no_outage_claim():
    text = render(without_system_failures)
    assert "Users affected" not in text
    assert "failed for a system reason" in text  # "no login ... failed for a system reason"
    assert "communicate with affected users" not in text
    assert "concentrate" not in text
    assert {"affected_users", "dimensions"}.isdisjoint(
        draft.charts_for(without_system_failures(full()))
    )


def test_user_class_failures_far_above_baseline_get_a_line_of_their_own():
    text = render(user_class_storm)
    impact = text.split("## Impact")[1].split("## ")[0]
    assert "Users affected" not in impact
    line = next(x for x in impact.splitlines() if "User-class failures" in x)
    assert "17.5% of attempts against 1.8%" in line
    assert "700 failures of 640 users" in line
    assert "may be part of the outage" in line
    assert "before telling users it was their password" in text
    # …and not when they stay near their baseline
    assert "User-class failures" not in render()


def test_no_chart_title_says_n_a():
    def no_baseline(s):
        s["auth"]["baseline_error_rate"] = None
        return s

    for change in (None, without_queries, without_bypass, without_system_failures, no_baseline):
        s = full() if change is None else change(full())
        for name in draft.charts_for(s):
            assert "n/a" not in draft.chart_titles(s)[name], (change, name)


def test_without_a_detected_window_or_a_timeline():
    text = render(without_detection)
    assert "nothing anomalous found" in text
    assert "rise above baseline" not in text and "back to baseline" not in text
    assert "Time to" not in text and "Likely trigger" not in text
    assert "Nothing to place" in text
    assert "None" not in text and "n/a" not in text
    text = render(without_timeline)
    assert "Time to" not in text and "Likely trigger" not in text
    assert "review configuration changes" not in text
    assert "rise above baseline" in text


def test_system_failures_at_their_baseline_rate_are_not_called_an_outage():
    # every failure has a code of the source's own ("bad_password") that the report counts
    # as the system's: 100% of the users who failed, at the same rate as any other day
    def steady(s):
        s = without_detection(s)
        s["auth"].update(system_error_rate=0.02, baseline_system_error_rate=0.021)
        s["impact"].update(users_affected=1000, affected_share=1.0)
        return s

    text = render(steady)
    assert "Users affected" not in text
    assert "ran at their baseline rate (2.00% against 2.10%): not an outage" in text
    assert "user_error_codes" in text
    assert "communicate with affected users" not in text

    # the same rates while the detector saw the system failures rise: an outage
    def seen(s):
        s["auth"].update(system_error_rate=0.02, baseline_system_error_rate=0.021)
        return s

    assert "Users affected" in render(seen)


def test_a_masked_stretch_and_a_disagreement_are_said():
    def masked(s):
        s["window"]["detected"]["masked_buckets"] = 60
        s["window"]["agrees"] = False
        return s

    text = render(masked)
    assert "For 60 buckets inside it, most logins bypassed the database" in text
    assert "The data disagrees with the declared window" in text


def test_dimensions_absent_or_not_significant_are_not_named():
    for change in (without_dimensions, insignificant_dimension):
        text = render(change)
        assert "concentrate" not in text and "explain more" not in text


def test_nothing_at_all_still_renders_and_says_so():
    def nothing(s):
        for f in (without_queries, without_bypass, without_system_failures, without_detection):
            s = f(s)
        return s

    text = render(nothing)
    assert "The logs give no cause" in text
    assert "None follows from the data alone" in text
    assert "None" not in text.replace("None follows", "")


def test_outside_span_rows_and_a_grown_bucket_are_said():
    def far(s):
        s["ingest"]["auth"]["outside_span"] = {
            "count": 1,
            "first": "2014-01-19T10:00:00Z",
            "last": "2014-01-19T10:00:00Z",
        }
        s["span"].update(bucket="5min", bucket_grown=True)
        return s

    text = render(far)
    assert "1 auth event lies far from the window (on January 19, 2014, 10:00 UTC)" in text
    assert "left out of every figure and chart" in text
    assert "the series uses 5min buckets, not the 1min asked for" in text
    assert draft.span_notes(full()) == []


@pytest.mark.parametrize(
    "section",
    [
        draft.header_section,
        draft.duration_section,
        draft.impact_section,
        draft.timeline_section,
        draft.root_cause_section,
        draft.bypass_section,
        draft.measures_section,
        draft.evidence_section,
    ],
)
def test_every_section_is_its_own_function_and_ends_with_a_blank_line(section):
    lines = section(full())
    assert lines and lines[-1] == ""
    assert all(isinstance(x, str) for x in lines)
    assert draft.render(full()).count("\n".join(lines)) == 1
