"""Every figure of summary.json on a fixture whose right answer is known by construction."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta

import pytest

from analysis import times
from analysis.figures import metrics, summary, views
from analysis.ingest import loader as load
from tests.conftest import write

START, END = "2024-01-19T10:00:00Z", "2024-01-19T11:00:00Z"


def at(hh: int, mm: int, ss: int = 0) -> str:
    return f"2024-01-19T{hh:02d}:{mm:02d}:{ss:02d}Z"


class Fixture:
    """Auth attempts and the queries they issue, written as JSON Lines."""

    def __init__(self) -> None:
        self.auth: list[dict] = []
        self.queries: list[dict] = []

    def attempt(
        self,
        ts,
        user,
        outcome="success",
        code=None,
        *,
        region="us",
        queries=("A", "B", "C"),
        ms=1.0,
        path="db",
    ):
        rid = f"r{len(self.auth)}"
        self.auth.append(
            {
                "ts": ts,
                "user_id": user,
                "outcome": outcome,
                "error_code": code,
                "request_id": rid,
                "auth_path": path,
                "region": region,
            }
        )
        for i, fp in enumerate(queries):
            self.queries.append(
                {
                    "ts": ts,
                    "duration_ms": ms,
                    "fingerprint": f"select {fp}",
                    "request_id": rid,
                    "caller": "auth-service",
                    "seq": i,
                }
            )


def build() -> Fixture:
    f = Fixture()
    # baseline (09:00-09:29): 10 attempts, 3 queries each, 1 user error
    for i in range(10):
        code = "invalid_credentials" if i == 0 else None
        f.attempt(at(9, i), f"u{i % 4 + 1}", "failure" if code else "success", code)
    # guard zone (09:50): in neither period
    f.attempt(at(9, 50), "u9", "failure", "db_timeout")
    # window: 16 successes with 8 queries each (A, B, C and P five times), 100 ms each
    amplified = ("A", "B", "C", "P", "P", "P", "P", "P")
    for i in range(16):
        minute = [5, 15, 25, 35, 45, 55, 58, 59][i % 8]
        region = "eu" if i < 4 else "us"
        f.attempt(at(10, minute, i), f"u{i % 4 + 1}", region=region, queries=amplified, ms=100)
    # failures: 10:10 two of two fail (the peak), then one per minute beside a success
    f.attempt(at(10, 10, 1), "u1", "failure", "db_timeout", region="eu", queries=amplified, ms=100)
    f.attempt(at(10, 10, 2), "u2", "failure", "db_timeout", region="eu", queries=amplified, ms=100)
    f.attempt(
        at(10, 20), "u2", "failure", "db_pool_exhausted", region="eu", queries=amplified, ms=100
    )
    f.attempt(at(10, 40), "u3", "failure", "invalid_credentials", queries=amplified, ms=100)
    f.attempt(at(10, 50), "u5", "failure", None, region="eu", queries=amplified, ms=100)
    # the bypass: one login inside the window, one after it (in the baseline period)
    f.attempt(at(10, 30), "u4", path="bypass", queries=())
    f.attempt(at(11, 30), "u6", path="bypass", queries=())
    return f


def summarise(con, tmp_path, f: Fixture) -> dict:
    """Write a fixture as JSON Lines, load it, and return its summary."""
    auth = write(tmp_path / "auth.jsonl", "".join(json.dumps(r) + "\n" for r in f.auth))
    queries = write(tmp_path / "q.jsonl", "".join(json.dumps(r) + "\n" for r in f.queries))
    result = load.load(con, auth=auth, queries=queries)
    scope = views.scope(
        con, auth=result.source_ids("auth"), queries=result.source_ids("queries"), timeline=[]
    )
    params = metrics.Params(start=times.parse_instant(START), end=times.parse_instant(END))
    return summary.analyse(con, params, scope, incident_id="t", load_result=result).summary


@pytest.fixture
def fixture_summary(con, tmp_path):
    return summarise(con, tmp_path, build())


def test_impact_and_auth_figures(fixture_summary):
    s = fixture_summary
    # window: 16 + 5 + 1 attempts; users u1..u5; system failures: u1, u2 (twice), u5 (no code)
    assert s["impact"] == {"users_active": 5, "users_affected": 3, "affected_share": 0.6}
    # one wrong password (u3) in the window, one in the baseline's 11: not far above it
    assert s["auth"]["user_class"] == {
        "failures": 1,
        "users": 1,
        "rate": round(1 / 22, 4),
        "baseline_rate": round(1 / 11, 4),
        "far_above_baseline": False,
    }
    a = s["auth"]
    assert (a["attempts"], a["failures"], a["system_failures"]) == (22, 5, 4)
    assert a["error_rate"] == round(5 / 22, 4)
    # baseline: 10 before the window and the bypass login at 11:30; the 09:50 one is guarded
    assert a["baseline_error_rate"] == round(1 / 11, 4)
    assert (a["peak_error_rate"], a["peak_minute"]) == (1.0, "2024-01-19T10:10:00Z")


def test_queries_per_auth_amplification_and_fingerprints(fixture_summary):
    d = fixture_summary["db"]
    assert d["queries_per_auth"] == {
        "baseline": round(30 / 11, 4),
        "incident": round(21 * 8 / 22, 4),
        "method": "request_id",
    }
    assert d["amplification"] == round((21 * 8 / 22) / (30 / 11), 2)
    top = d["top_fingerprints"][0]
    assert top["fingerprint"] == "select P"
    assert (top["baseline_per_auth"], top["incident_per_auth"]) == (0.0, round(105 / 22, 4))
    assert top["incident"] == {
        "count": 105,
        "total_ms": 10500.0,
        "mean_ms": 100.0,
        "p95_ms": 100.0,
    }
    assert top["baseline"]["count"] == 0
    rest = {f["fingerprint"]: f for f in d["top_fingerprints"][1:]}
    assert rest["select A"]["baseline_per_auth"] == round(10 / 11, 4)
    assert rest["select A"]["incident_per_auth"] == round(21 / 22, 4)
    assert d["latency_p95_ms"] == {"baseline": 1.0, "incident": 100.0}


def test_dimensions_put_the_failing_region_first(fixture_summary):
    first = fixture_summary["dimensions"][0]
    # all 4 system failures are in eu; eu has 4 + 4 of the 22 attempts
    assert (first["dimension"], first["value"]) == ("region", "eu")
    assert first["incident_share"] == 1.0
    assert first["baseline_share"] == round(8 / 22, 4)
    assert first["score"] == round(1 - 8 / 22, 4)
    assert all(
        d["dimension"] not in ("user_id", "request_id", "outcome", "error_code")
        for d in fixture_summary["dimensions"]
    )


def test_bypass_audit(fixture_summary):
    b = fixture_summary["bypass"]
    assert (b["logins"], b["users"], b["first"], b["last"]) == (
        2,
        2,
        "2024-01-19T10:30:00Z",
        "2024-01-19T11:30:00Z",
    )
    assert b["on_at_declared_end"] is True
    assert (b["logins_after_declared_end"], b["users_after_declared_end"]) == (1, 1)
    assert b["on_at_data_end"] is True


def test_ingest_counts(fixture_summary):
    i = fixture_summary["ingest"]
    nothing_outside = {"count": 0, "first": None, "last": None}
    assert i["auth"] == {
        "rows_read": 34,
        "rows_loaded": 34,
        "rows_rejected": 0,
        "rows_skipped": 0,
        "outside_span": nothing_outside,
    }
    assert i["queries"]["outside_span"] == nothing_outside
    assert i["queries"]["rows_read"] == i["queries"]["rows_loaded"] == 10 * 3 + 3 + 21 * 8


def test_timeline_figures_from_the_detected_onset():
    import pandas as pd

    t = lambda m: datetime(2024, 1, 19, 10, m)  # noqa: E731
    events = pd.DataFrame(
        {
            "ts": [t(0), t(5), t(20), t(25), t(50), t(55)],
            "kind": ["change", "detection", "note", "mitigation", "resolution", "mitigation"],
            "text": ["deploy", "page", "db?", "bypass", "fix", "bypass off"],
        }
    )
    onset = t(2)
    f = summary.timeline_figures(events, onset, guard=timedelta(minutes=15))
    assert (f["time_to_detect_s"], f["time_to_mitigate_s"], f["time_to_resolve_s"]) == (
        180,
        23 * 60,
        48 * 60,
    )
    assert f["trigger"] == {"ts": "2024-01-19T10:00:00Z", "text": "deploy", "lead_s": 120}
    none = summary.timeline_figures(
        events[events.kind != "resolution"], onset, guard=timedelta(minutes=15)
    )
    assert none["time_to_resolve_s"] is None
    assert summary.timeline_figures(events, None, guard=timedelta(minutes=15))["trigger"] is None


def test_without_request_ids_the_caller_ratio_is_used_and_said(con, tmp_path):
    f = build()
    for q in f.queries:
        q.pop("request_id")
    f.queries.append(
        {"ts": at(10, 5), "duration_ms": 1, "fingerprint": "select X", "caller": "billing"}
    )
    s = summarise(con, tmp_path, f)
    qpa = s["db"]["queries_per_auth"]
    assert qpa["method"] == "caller-ratio"
    assert qpa["auth_callers"] == ["auth-service"]
    # the same ratio as the join here: every auth-service query shares its attempt's time
    assert (qpa["baseline"], qpa["incident"]) == (round(30 / 11, 4), round(21 * 8 / 22, 4))


def test_a_report_sees_only_its_own_sources(con, tmp_path):
    f = build()
    auth = write(tmp_path / "auth.jsonl", "".join(json.dumps(r) + "\n" for r in f.auth))
    other = write(
        tmp_path / "other.jsonl",
        json.dumps(
            {"ts": at(10, 1), "user_id": "zz", "outcome": "failure", "error_code": "db_timeout"}
        )
        + "\n",
    )
    load.load(con, auth=other)
    mine = load.load(con, auth=auth)
    views.scope(con, auth=mine.source_ids("auth"), queries=[], timeline=[])
    params = metrics.Params(start=times.parse_instant(START), end=times.parse_instant(END))
    assert metrics.periods(con, params)["incident"]["users_active"] == 5


def test_summary_is_unchanged_by_shuffling_splitting_and_parquet(con, tmp_path, small_sample):
    import duckdb

    def run(auth, queries):
        c = __import__("analysis.db", fromlist=["connect"]).connect(":memory:")
        res = load.load(c, auth=auth, queries=queries, timeline=small_sample["timeline"])
        scope = views.scope(
            c,
            auth=res.source_ids("auth"),
            queries=res.source_ids("queries"),
            timeline=res.source_ids("timeline"),
        )
        params = metrics.Params(
            start=times.parse_instant("2024-01-19T10:30:00Z"),
            end=times.parse_instant("2024-01-19T14:45:00Z"),
        )
        out = summary.dumps(
            summary.analyse(c, params, scope, incident_id="x", load_result=res).summary
        )
        c.close()
        return out

    base = run(small_sample["auth"], small_sample["queries"])
    lines = small_sample["auth"].read_text().splitlines(keepends=True)
    random.Random(3).shuffle(lines)
    half = len(lines) // 2
    a1 = write(tmp_path / "a1.jsonl", "".join(lines[:half]))
    a2 = write(tmp_path / "a2.jsonl", "".join(lines[half:]))
    assert run([a1, a2], small_sample["queries"]) == base
    pq_a, pq_q = tmp_path / "a.parquet", tmp_path / "q.parquet"
    duckdb.read_json(str(small_sample["auth"]), format="newline_delimited").to_parquet(str(pq_a))
    duckdb.read_json(str(small_sample["queries"]), format="newline_delimited").to_parquet(
        str(pq_q)
    )
    assert run(pq_a, pq_q) == base


def test_exploration_helpers_slice_and_drill_down(con, tmp_path):
    from analysis import lab as explore

    f = build()
    auth = write(tmp_path / "auth.jsonl", "".join(json.dumps(r) + "\n" for r in f.auth))
    queries = write(tmp_path / "q.jsonl", "".join(json.dumps(r) + "\n" for r in f.queries))
    load.load(con, auth=auth, queries=queries)
    views.scope(con)
    eu = explore.slice_series(con, dimension="region", value="eu", start=START, end=END)
    assert int(eu["system_failures"].sum()) == 4 and int(eu["attempts"].sum()) == 8
    worst = explore.worst_buckets(con, n=1)
    assert worst["bucket"].iloc[0] == datetime(2024, 1, 19, 10, 10)
    assert int(worst["system_failures"].iloc[0]) == 2
    fps = explore.fingerprints_between(con, at(10, 10), at(10, 11))
    assert fps.set_index("fingerprint")["queries"].to_dict() == {
        "select P": 10,
        "select A": 2,
        "select B": 2,
        "select C": 2,
    }
    users = explore.users_between(con, at(10, 10), at(10, 11), key="k")
    assert set(users["user"]) == {explore_pseudonym(con, "u1"), explore_pseudonym(con, "u2")}
    assert not any(u in ("u1", "u2") for u in users["user"])
    clear = explore.users_between(con, at(10, 10), at(10, 11), key="k", redact=False)
    assert set(clear["user"]) == {"u1", "u2"}
    assert len(explore.queries_of_request(con, "r0")) == 3
    with pytest.raises(ValueError, match="no column"):
        explore.slice_series(con, dimension='region" = 1; drop table auth_events; --', value="x")
    assert con.execute("select count(*) from auth_events").fetchall() == [(34,)]


def explore_pseudonym(con, uid: str) -> str:
    return con.execute("select pseudonym('k', ?)", [uid]).fetchall()[0][0]


def test_a_partial_outage_puts_the_datacenter_above_its_instances(con, tmp_path):
    rows = []
    for i in range(1000):
        region = "dc3" if i % 10 == 0 else ("dc1" if i % 2 else "dc2")
        instance = f"{region}-{(i // 10) % 4}"
        failing = region == "dc3"
        rows.append(
            {
                "ts": at(10, i % 60, i % 50),
                "user_id": f"u{i}",
                "outcome": "failure" if failing else "success",
                "error_code": "db_timeout" if failing else None,
                "region": region,
                "instance": instance,
                "client": ["web", "ios"][(i // 10) % 2],
            }
        )
    auth = write(tmp_path / "auth.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    load.load(con, auth=auth)
    scope = views.scope(con)
    params = metrics.Params(start=times.parse_instant(START), end=times.parse_instant(END))
    dims = summary.analyse(con, params, scope, incident_id="t").summary["dimensions"]
    assert (dims[0]["dimension"], dims[0]["value"]) == ("region", "dc3")
    assert dims[0]["score"] == 0.9
    instances = [d for d in dims if d["dimension"] == "instance" and d["value"].startswith("dc3")]
    assert instances and all(d["score"] < dims[0]["score"] for d in instances)
    # after the datacenter come its instances, each a quarter of it, before anything else
    assert {d["value"] for d in dims[1:5]} == {"dc3-0", "dc3-1", "dc3-2", "dc3-3"}


def test_review_fixes_request_ids_callers_peak_and_overflow(con, tmp_path):
    """Found by review: a reused request_id, no auth caller, buckets across the window edge,
    and durations whose sum overflows."""
    auth = [
        {"ts": at(10, 5), "user_id": "u1", "outcome": "success", "request_id": "r1"},
        {"ts": at(10, 6), "user_id": "u1", "outcome": "success", "request_id": "r1"},  # reused
        {"ts": at(10, 2), "user_id": "u2", "outcome": "failure", "error_code": "db_timeout"},
        {"ts": at(10, 59), "user_id": "u3", "outcome": "success"},
        {"ts": at(11, 1), "user_id": "u4", "outcome": "failure", "error_code": "db_timeout"},
    ]
    queries = [
        {"ts": at(10, 5), "duration_ms": 1e308, "fingerprint": "select 1", "request_id": "r1"},
        {"ts": at(10, 5), "duration_ms": 1.5e308, "fingerprint": "select 1", "request_id": "r1"},
    ]
    a = write(tmp_path / "a.jsonl", "".join(json.dumps(r) + "\n" for r in auth))
    q = write(tmp_path / "q.jsonl", "".join(json.dumps(r) + "\n" for r in queries))
    res = load.load(con, auth=[a, a], queries=q)
    assert res.totals("auth")["rows_read"] == 5  # the same file twice counts once
    scope = views.scope(con)
    # a window that starts mid-bucket: the 10:02 failure is inside it, the 11:01 one is not
    p = metrics.Params(
        start=times.parse_instant("2024-01-19T10:02:00Z"),
        end=times.parse_instant("2024-01-19T11:00:00Z"),
        bucket="5min",
    )
    s = summary.analyse(con, p, scope, incident_id="t").summary
    assert s["db"]["queries_per_auth"]["incident"] == round(2 / 4, 4)  # 2 queries, 4 attempts
    assert s["db"]["top_fingerprints"][0]["incident"]["count"] == 2
    assert s["db"]["top_fingerprints"][0]["incident"]["total_ms"] is None  # inf, not a crash
    # buckets start at the window's start: 10:02-10:07 holds the failure and two successes
    assert (s["auth"]["peak_error_rate"], s["auth"]["peak_minute"]) == (
        0.3333,
        "2024-01-19T10:02:00Z",
    )
    summary.dumps(s)


def test_without_any_auth_caller_queries_per_auth_is_not_measured(con, tmp_path):
    f = build()
    for i, q in enumerate(f.queries):
        q.pop("request_id")
        q["caller"] = ("billing", "search")[i % 2]
    s = summarise(con, tmp_path, f)
    assert s["db"]["queries_per_auth"] == {
        "baseline": None,
        "incident": None,
        "method": "none",
        "auth_callers": [],
    }
    assert s["db"]["amplification"] is None and s["db"]["top_fingerprints"] == []
    from analysis.report import draft

    text = draft.render(s)
    assert "not measured" in text and "largest rise" not in text and "None" not in text


def test_a_pair_of_values_that_explains_more_than_either_alone(con, tmp_path):
    # failures only where region = eu-west and client = android, plus noise everywhere else
    rows = []
    for i in range(2000):
        region = ("eu-west", "us-east")[i % 2]
        client = ("android", "web", "ios", "api")[(i // 2) % 4]
        failing = (region, client) == ("eu-west", "android") and i % 3 != 0
        failing = failing or i % 97 == 0
        rows.append(
            {
                "ts": at(10, i % 60, i % 59),
                "user_id": f"u{i}",
                "outcome": "failure" if failing else "success",
                "error_code": "db_timeout" if failing else None,
                "region": region,
                "client": client,
                "instance": f"{region}-{i % 3}",
            }
        )
    load.load(con, auth=write(tmp_path / "a.jsonl", "".join(json.dumps(r) + "\n" for r in rows)))
    params = metrics.Params(start=times.parse_instant(START), end=times.parse_instant(END))
    s = summary.analyse(con, params, views.scope(con), incident_id="t").summary
    alone = {(d["dimension"], d["value"]): d for d in s["dimensions"]}
    pair = s["dimension_pairs"][0]
    assert dict(zip(pair["dimensions"], pair["values"], strict=True)) == {
        "region": "eu-west",
        "client": "android",
    }
    better = max(alone["region", "eu-west"]["score"], alone["client", "android"]["score"])
    assert pair["score"] > better and pair["gain"] == round(pair["score"] - better, 4)
    assert pair["p_value"] < 1e-10
    # a region and its own instances are the same rows, never a pair that explains more
    assert not any(
        "instance" in p["dimensions"] and "region" in p["dimensions"] for p in s["dimension_pairs"]
    )
    # significance: the failing values are far beyond chance, a value of pure noise is not
    assert alone["client", "android"]["p_value"] < 1e-10
    assert alone["client", "android"]["z"] > 10
    noise = [d for d in s["dimensions"] if d["dimension"] == "client" and d["value"] == "web"]
    assert noise and noise[0]["p_value"] > 0.01


def test_a_one_datacenter_outage_is_significant_and_first(con, tmp_path):
    rows = []
    for i in range(1000):
        region = "dc3" if i % 10 == 0 else ("dc1" if i % 2 else "dc2")
        failing = region == "dc3"
        rows.append(
            {
                "ts": at(10, i % 60, i % 50),
                "user_id": f"u{i}",
                "outcome": "failure" if failing else "success",
                "error_code": "db_timeout" if failing else None,
                "region": region,
                "instance": f"{region}-{(i // 10) % 4}",
            }
        )
    load.load(con, auth=write(tmp_path / "a.jsonl", "".join(json.dumps(r) + "\n" for r in rows)))
    params = metrics.Params(start=times.parse_instant(START), end=times.parse_instant(END))
    s = summary.analyse(con, params, views.scope(con), incident_id="t").summary
    first = s["dimensions"][0]
    assert (first["dimension"], first["value"], first["score"]) == ("region", "dc3", 0.9)
    assert first["p_value"] < 1e-100 and first["z"] > s["dimensions"][1]["z"]
    assert s["dimension_pairs"] == []
