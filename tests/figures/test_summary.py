"""Each top-level key of summary.json is one function: each one against hand-written inputs
and the summary part it must give."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from analysis.figures import detect, span, summary
from analysis.figures.metrics import Params
from analysis.figures.views import Scope
from analysis.kinds import FileResult, LoadResult

T = datetime(2024, 1, 19, 10, 30)
PARAMS = Params(start=T, end=datetime(2024, 1, 19, 14, 45))
WINDOW = {
    "attempts": 4000,
    "failures": 820,
    "system_failures": 800,
    "users_active": 1000,
    "users_affected": 300,
    "users_user_failed": 18,
    "auth_queries": 60000,
    "queries": 70000,
    "latency_p95_ms": 1787.123,
}
BASE = {
    "attempts": 8000,
    "failures": 160,
    "system_failures": 0,
    "users_active": 2000,
    "users_affected": 0,
    "users_user_failed": 150,
    "auth_queries": 26000,
    "queries": 30000,
    "latency_p95_ms": 6.874,
}


def test_window_figures():
    w = detect.Window(
        start=datetime(2024, 1, 19, 10, 26),
        end=datetime(2024, 1, 19, 14, 45),
        baseline_rate=0.0,
        peak_rate=0.3,
        excess_failures=800.0,
        signals={"start": ("queries_per_auth",), "end": ("system_failure_rate",)},
        by_signal={
            "queries_per_auth": (datetime(2024, 1, 19, 10, 26), datetime(2024, 1, 19, 14, 40))
        },
        masked_buckets=3,
    )
    assert summary.window_figures(PARAMS, w) == {
        "declared": {"start": "2024-01-19T10:30:00Z", "end": "2024-01-19T14:45:00Z"},
        "detected": {
            "start": "2024-01-19T10:26:00Z",
            "end": "2024-01-19T14:45:00Z",
            "signals": {"start": ["queries_per_auth"], "end": ["system_failure_rate"]},
            "by_signal": {
                "queries_per_auth": {
                    "start": "2024-01-19T10:26:00Z",
                    "end": "2024-01-19T14:40:00Z",
                }
            },
            "masked_buckets": 3,
        },
        "agrees": True,
    }
    assert summary.window_figures(PARAMS, None)["detected"] is None


def test_impact_figures():
    assert summary.impact_figures(WINDOW) == {
        "users_active": 1000,
        "users_affected": 300,
        "affected_share": 0.3,
    }


def test_user_class_figures():
    assert summary.user_class_figures(WINDOW, BASE) == {
        "failures": 20,
        "users": 18,
        "rate": 0.005,
        "baseline_rate": 0.02,
        "far_above_baseline": False,
    }
    # a 401 storm: user-class failures ten times their baseline
    storm = {**WINDOW, "failures": 800 + 800, "users_user_failed": 700}
    uc = summary.user_class_figures(storm, BASE)
    assert uc == {
        "failures": 800,
        "users": 700,
        "rate": 0.2,
        "baseline_rate": 0.02,
        "far_above_baseline": True,
    }
    # twice the baseline is not far above it
    twice = {**WINDOW, "failures": 800 + 160}
    assert summary.user_class_figures(twice, BASE)["far_above_baseline"] is False


def test_auth_figures():
    peak = (0.33694, datetime(2024, 1, 19, 10, 41))
    assert summary.auth_figures(WINDOW, BASE, peak) == {
        "attempts": 4000,
        "failures": 820,
        "system_failures": 800,
        "attempts_without_user": 0,
        "error_rate": 0.205,
        "baseline_error_rate": 0.02,
        "peak_error_rate": 0.3369,
        "peak_minute": "2024-01-19T10:41:00Z",
        "system_error_rate": 0.2,
        "baseline_system_error_rate": 0.0,
        "user_class": summary.user_class_figures(WINDOW, BASE),
    }
    no_user = summary.auth_figures({**WINDOW, "attempts_without_user": 12}, BASE, peak)
    assert no_user["attempts_without_user"] == 12
    empty = dict.fromkeys(WINDOW, 0) | {"latency_p95_ms": None}
    a = summary.auth_figures(empty, empty, (None, None))
    assert a["error_rate"] is None and a["peak_minute"] is None


def test_db_figures():
    fps = pd.DataFrame(
        {
            "fingerprint": ["select p"],
            "baseline_per_auth": [0.0],
            "incident_per_auth": [12.5],
            "incident_count": [50000],
            "incident_total_ms": [10.0],
            "incident_mean_ms": [0.5],
            "incident_p95_ms": [1.0],
            "baseline_count": [float("nan")],
            "baseline_total_ms": [None],
            "baseline_mean_ms": [None],
            "baseline_p95_ms": [None],
        }
    )
    scope = Scope((1,), (2,), (), "request_id")
    d = summary.db_figures(WINDOW, BASE, fps, scope)
    assert d == {
        "queries_per_auth": {"baseline": 3.25, "incident": 15.0, "method": "request_id"},
        "amplification": 4.62,
        "top_fingerprints": [
            {
                "fingerprint": "select p",
                "baseline_per_auth": 0.0,
                "incident_per_auth": 12.5,
                "incident": {"count": 50000, "total_ms": 10.0, "mean_ms": 0.5, "p95_ms": 1.0},
                "baseline": {"count": 0, "total_ms": None, "mean_ms": None, "p95_ms": None},
            }
        ],
        "latency_p95_ms": {"baseline": 6.87, "incident": 1787.12},
        "queries": {"baseline": 30000, "incident": 70000},
    }
    none = summary.db_figures(WINDOW, BASE, fps.iloc[0:0], Scope((1,), (), (), "none"))
    assert none["queries_per_auth"] == {
        "baseline": None,
        "incident": None,
        "method": "none",
        "auth_callers": [],
    }
    assert none["amplification"] is None


def test_dimension_and_pair_figures():
    dims = pd.DataFrame(
        {
            "dimension": ["region"],
            "value": ["eu-west"],
            "incident_share": [0.60971],
            "baseline_share": [0.479],
            "score": [0.13071],
            "z": [35.3412],
            "p_value": [7.81234e-274],
        }
    )
    assert summary.dimension_figures(dims) == [
        {
            "dimension": "region",
            "value": "eu-west",
            "incident_share": 0.6097,
            "baseline_share": 0.479,
            "score": 0.1307,
            "z": 35.34,
            "p_value": 7.81e-274,
        }
    ]
    pairs = pd.DataFrame(
        {
            "dimensions": [["region", "client"]],
            "values": [["eu-west", "android"]],
            "incident_share": [0.5],
            "baseline_share": [0.1],
            "score": [0.4],
            "gain": [0.27],
            "z": [20.004],
            "p_value": [0.0],
        }
    )
    assert summary.pair_figures(pairs) == [
        {
            "dimensions": ["region", "client"],
            "values": ["eu-west", "android"],
            "incident_share": 0.5,
            "baseline_share": 0.1,
            "score": 0.4,
            "gain": 0.27,
            "z": 20.0,
            "p_value": 0.0,
        }
    ]


def test_ingest_figures_count_the_rows_outside_the_span():
    loaded = LoadResult(
        [
            FileResult("auth", "a.jsonl", "jsonl", "x", 1, 10, 9, 1),
            FileResult("queries", "q.jsonl", "jsonl", "y", 2, 30, 30, 0),
        ]
    )
    far = {"count": 1, "first": "2014-01-19T10:00:00Z", "last": "2014-01-19T10:00:00Z"}
    none = {"count": 0, "first": None, "last": None}
    found = span.Span(T, T, "1min", "1min", {"auth": far, "queries": none})
    assert summary.ingest_figures(loaded, found) == {
        "auth": {
            "rows_read": 10,
            "rows_loaded": 9,
            "rows_rejected": 1,
            "rows_skipped": 0,
            "outside_span": far,
        },
        "queries": {
            "rows_read": 30,
            "rows_loaded": 30,
            "rows_rejected": 0,
            "rows_skipped": 0,
            "outside_span": none,
        },
        "timeline": {"rows_read": 0, "rows_loaded": 0, "rows_rejected": 0, "rows_skipped": 0},
    }
    assert summary.ingest_figures(None)["auth"] is None


def test_parameter_figures():
    assert summary.parameter_figures(PARAMS) == {
        "bucket": "1min",
        "user_error_codes": list(PARAMS.user_error_codes),
        "baseline_guard_minutes": 15,
        "slo_target": 0.999,
        "slo_window_days": 30,
    }
