"""Any stretch against a baseline: a fixture whose answer is known by construction, and the
report's own figures when the selection is the declared window."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pandas as pd
import pytest

from analysis import privacy, times
from analysis.figures import REST, compare_stretches, metrics, summary, views
from analysis.ingest import loader
from tests.conftest import write

DAY = datetime(2024, 1, 19)
SELECTION = (DAY.replace(hour=10), DAY.replace(hour=10, minute=30))
EARLY = (DAY.replace(hour=9), DAY.replace(hour=10))
PARAMS = metrics.Params(start=SELECTION[0], end=SELECTION[1])
KEY = "test-key"


def _rows() -> tuple[list[dict], list[dict]]:
    """09:00-12:00, ten attempts a minute, half in eu and half in us, each issuing two queries
    of one statement. From 10:00 to 10:30 only: every eu attempt fails with db_timeout and every
    attempt issues three queries of a second statement; one us login bypasses the database."""
    auth, queries = [], []
    for minute in range(180):
        t0 = DAY.replace(hour=9) + timedelta(minutes=minute)
        inside = SELECTION[0] <= t0 < SELECTION[1]
        for i in range(10):
            ts = t0 + timedelta(seconds=6 * i)
            region = "eu" if i % 2 == 0 else "us"
            failed = inside and region == "eu"
            rid = f"r{minute}-{i}"
            auth.append(
                {
                    "ts": ts.isoformat() + "Z",
                    "user_id": f"{region}-{i // 2}",
                    "outcome": "failure" if failed else "success",
                    "error_code": "db_timeout" if failed else None,
                    "request_id": rid,
                    "latency_ms": 900.0 if failed else 40.0,
                    "auth_path": "bypass" if inside and minute == 70 and i == 1 else "db",
                    "region": region,
                }
            )
            n = 2 + (3 if inside else 0)
            for q in range(n):
                statement = (
                    "SELECT a FROM t WHERE id = 1" if q < 2 else "SELECT b FROM u WHERE k = 2"
                )
                queries.append(
                    {
                        "ts": (ts + timedelta(milliseconds=10 * (q + 1))).isoformat() + "Z",
                        "duration_ms": 50.0 if q >= 2 else 1.0,
                        "statement": statement,
                        "request_id": rid,
                    }
                )
    return auth, queries


@pytest.fixture
def known(con, tmp_path):
    auth, queries = _rows()
    a = write(tmp_path / "auth.jsonl", "\n".join(json.dumps(r) for r in auth) + "\n")
    q = write(tmp_path / "queries.jsonl", "\n".join(json.dumps(r) for r in queries) + "\n")
    res = loader.load(con, auth=a, queries=q)
    # the database's own errors: three in the selection, one an hour before
    con.execute(
        "create table server_events (source_id integer, line bigint, ts timestamp, "
        'severity varchar, message varchar, "user" varchar, database varchar, client varchar)'
    )
    sid = res.source_ids("queries")[0]
    for n, minute in enumerate((5, 6, 7, -60)):
        con.execute(
            "insert into server_events values (?, ?, ?, 'FATAL', "
            "'sorry, too many clients already', null, null, null)",
            [sid, n + 1, SELECTION[0] + timedelta(minutes=minute)],
        )
    views.scope(con, auth=res.source_ids("auth"), queries=res.source_ids("queries"))
    return con


def _signal(c, name: str) -> pd.Series:
    return c.signals.set_index("signal").loc[name]


def test_the_value_that_carries_the_failures_only_in_the_selection_comes_first(known):
    c = compare_stretches(known, PARAMS, SELECTION, REST, key=KEY)
    eu = c.dimensions.iloc[0]
    assert (eu["dimension"], eu["value"]) == ("region", "eu")
    # all 150 system failures (5 a minute for 30 minutes) in eu, which has half the attempts
    assert (eu["failures"], eu["attempts"]) == (150, 150)
    assert (eu["incident_share"], eu["baseline_share"], eu["score"]) == (1.0, 0.5, 0.5)
    assert eu["z"] == pytest.approx(1 / (0.25 * 2 / 150) ** 0.5)
    assert c.dimensions.iloc[-1]["value"] == "us" and c.dimensions.iloc[-1]["score"] == -0.5
    # at baseline there is no failure at all: nothing to concentrate
    assert compare_stretches(known, PARAMS, EARLY, REST, key=KEY).dimensions.empty


def test_the_fingerprint_that_rises_only_in_the_selection_comes_first(known):
    c = compare_stretches(known, PARAMS, SELECTION, EARLY, key=KEY)
    fps = c.fingerprints.set_index("fingerprint")
    assert list(fps.index) == ["select b from u where k = ?", "select a from t where id = ?"]
    risen = fps.loc["select b from u where k = ?"]
    assert (risen["selection_per_auth"], risen["baseline_per_auth"]) == (3.0, 0.0)
    assert (risen["selection_count"], risen["baseline_count"]) == (900, 0)
    assert (risen["selection_mean_ms"], risen["selection_p95_ms"]) == (50.0, 50.0)
    steady = fps.loc["select a from t where id = ?"]
    assert (steady["selection_per_auth"], steady["baseline_per_auth"]) == (2.0, 2.0)
    assert (steady["selection_count"], steady["baseline_count"]) == (600, 1200)


def test_signals_error_codes_users_events_and_bypass_against_a_stretch(known):
    c = compare_stretches(known, PARAMS, SELECTION, EARLY, key=KEY)
    assert c.minutes == {"selection": 30.0, "baseline": 60.0}
    rate = _signal(c, "system-failure rate")
    assert (rate["selection"], rate["baseline"], rate["moved"]) == (0.5, 0.0, 1.0)
    assert (rate["selection_count"], rate["selection_of"]) == (150, 300)
    assert (rate["baseline_count"], rate["baseline_of"]) == (0, 600)
    per_auth = _signal(c, "DB queries per auth attempt")
    assert (per_auth["selection"], per_auth["baseline"]) == (5.0, 2.0)
    assert _signal(c, "attempts per minute")[["selection", "baseline", "moved"]].tolist() == [
        10.0,
        10.0,
        0.0,
    ]
    assert c.signals["moved"].is_monotonic_decreasing
    assert c.signals["signal"].iloc[0] == "system-failure rate"  # first of those that moved 1
    code = c.error_codes.iloc[0]
    assert (code["error_code"], code["class"]) == ("db_timeout", "system")
    assert (code["selection_failures"], code["baseline_failures"]) == (150, 0)
    assert (code["selection_rate"], code["baseline_rate"]) == (0.5, 0.0)
    # five eu users, each failing once a minute for 30 minutes, as pseudonyms
    assert c.users["selection_system_failures"].tolist() == [30] * 5
    assert c.users["baseline_attempts"].tolist() == [60] * 5
    assert all(u.startswith("user-") for u in c.users["user"])
    events = c.server_events.iloc[0]
    assert (events["kind"], events["selection_events"], events["baseline_events"]) == (
        "too many connections",
        3,
        1,
    )
    assert events["selection_per_minute"] == 0.1 and events["baseline_per_minute"] == 1 / 60
    bypass = c.bypass.set_index("stretch")
    assert bypass.loc["selection", ["logins", "users"]].tolist() == [1, 1]
    assert bypass.loc["baseline", "logins"] == 0


def test_the_rest_leaves_out_the_guard_minutes_and_users_come_in_clear_only_when_asked(known):
    c = compare_stretches(known, PARAMS, SELECTION, REST, key=KEY, redact=False)
    attempts = _signal(c, "attempts per minute")
    # 09:00-09:45 and 10:45-12:00: 120 minutes of ten attempts; the data ends at 11:59:54
    assert attempts["baseline_count"] == 1200
    assert c.minutes["baseline"] == pytest.approx(120 - 0.1)
    assert sorted(c.users["user"]) == [f"eu-{i}" for i in range(5)]
    assert "against the rest (outside it and 15 guard minutes)" in c.describe()


def test_a_stretch_that_does_not_end_after_it_starts_is_refused(known):
    with pytest.raises(ValueError, match="must end after it starts"):
        compare_stretches(known, PARAMS, (SELECTION[1], SELECTION[0]), key=KEY)
    # ISO texts with a zone are read as UTC
    c = compare_stretches(
        known, PARAMS, ("2024-01-19T11:00:00+01:00", "2024-01-19T10:30:00Z"), key=KEY
    )
    assert c.selection == SELECTION


def test_the_declared_window_against_the_rest_gives_the_reports_figures(small_sample, con):
    res = loader.load(
        con,
        auth=small_sample["auth"],
        queries=small_sample["queries"],
        timeline=small_sample["timeline"],
    )
    scope = views.scope(
        con,
        auth=res.source_ids("auth"),
        queries=res.source_ids("queries"),
        timeline=res.source_ids("timeline"),
    )
    params = metrics.Params(
        start=times.parse_instant("2024-01-19T10:30:00Z"),
        end=times.parse_instant("2024-01-19T14:45:00Z"),
    )
    report = summary.analyse(con, params, scope, incident_id="s", load_result=res)
    c = compare_stretches(con, params, (params.start, params.end), key=KEY, top=20)
    s = report.summary

    dims = c.dimensions.assign(value=c.dimensions["value"].map(privacy.mask))
    assert summary.dimension_figures(dims) == s["dimensions"]
    assert summary.pair_figures(c.pairs) == s["dimension_pairs"]
    fps = c.fingerprints.head(10)
    assert [
        {
            "fingerprint": privacy.mask(r.fingerprint),
            "baseline_per_auth": round(r.baseline_per_auth, 4),
            "incident_per_auth": round(r.selection_per_auth, 4),
            "incident": {"count": int(r.selection_count)},
            "baseline": {"count": int(r.baseline_count)},
        }
        for r in fps.itertuples()
    ] == [
        {
            **{k: f[k] for k in ("fingerprint", "baseline_per_auth", "incident_per_auth")},
            "incident": {"count": f["incident"]["count"]},
            "baseline": {"count": f["baseline"]["count"]},
        }
        for f in s["db"]["top_fingerprints"]
    ]
    assert fps["selection_p95_ms"].round(2).tolist() == [
        f["incident"]["p95_ms"] for f in s["db"]["top_fingerprints"]
    ]
    rate = _signal(c, "system-failure rate")
    assert rate["selection_count"] == s["auth"]["system_failures"]
    assert rate["selection_of"] == s["auth"]["attempts"]
    assert round(rate["baseline"], 4) == s["auth"]["baseline_system_error_rate"]
    qpa = _signal(c, "DB queries per auth attempt")
    assert round(qpa["selection"], 4) == s["db"]["queries_per_auth"]["incident"]
    assert round(qpa["baseline"], 4) == s["db"]["queries_per_auth"]["baseline"]
    latency = _signal(c, "DB latency p95 (ms)")
    assert round(latency["selection"], 2) == s["db"]["latency_p95_ms"]["incident"]
    assert round(latency["baseline"], 2) == s["db"]["latency_p95_ms"]["baseline"]
