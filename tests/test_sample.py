"""The generated sample carries the postmortem's story in its rows, deterministically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from analysis.sample import CLIENTS, KINDS, REGIONS, STATUSES, WORDS, generate

SCALE = 0.05
SEED = 7
WINDOW = {"start": "2024-01-19T10:30:00Z", "end": "2024-01-19T14:45:00Z"}

# One statement per reader: only the table function differs, from this fixed list.
LOAD = {
    "jsonl": (
        "create table auth as select * replace (ts::timestamptz as ts) from read_json(?)",
        "create table queries as select * replace (ts::timestamptz as ts) from read_json(?)",
    ),
    "csv": (
        "create table auth as select * replace (ts::timestamptz as ts) from read_csv(?)",
        "create table queries as select * replace (ts::timestamptz as ts) from read_csv(?)",
    ),
    "parquet": (
        "create table auth as select * replace (ts::timestamptz as ts) from read_parquet(?)",
        "create table queries as select * replace (ts::timestamptz as ts) from read_parquet(?)",
    ),
}


def _connect(paths: dict[str, Path], fmt: str) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    load_auth, load_queries = LOAD[fmt]
    con.execute(load_auth, [str(paths["auth"])])
    con.execute(load_queries, [str(paths["queries"])])
    return con


def _one(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, str] | None = None) -> Any:
    return con.execute(sql, params or {}).fetchone()[0]


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return generate(tmp_path_factory.mktemp("sample"), scale=SCALE, seed=SEED)


@pytest.fixture(scope="module")
def con(sample: dict[str, Path]) -> duckdb.DuckDBPyConnection:
    return _connect(sample, "jsonl")


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_same_seed_gives_identical_files_and_another_seed_differs(
    tmp_path: Path, fmt: str
) -> None:
    first = generate(tmp_path / "a", scale=SCALE, seed=SEED, fmt=fmt)
    again = generate(tmp_path / "b", scale=SCALE, seed=SEED, fmt=fmt)
    other = generate(tmp_path / "c", scale=SCALE, seed=SEED + 1, fmt=fmt)
    assert set(first) == {"auth", "queries", "timeline"}
    assert first["auth"].name == f"auth_events.{fmt}"
    assert first["queries"].name == f"db_queries.{fmt}"
    for key in first:
        assert first[key].read_bytes() == again[key].read_bytes(), key
    assert first["auth"].read_bytes() != other["auth"].read_bytes()
    assert first["queries"].read_bytes() != other["queries"].read_bytes()


def test_about_30_percent_of_active_users_hit_a_system_failure(
    con: duckdb.DuckDBPyConnection,
) -> None:
    share = _one(
        con,
        "select count(distinct user_id) filter (where error_code in "
        "('db_timeout', 'db_pool_exhausted')) / count(distinct user_id) "
        "from auth where ts >= $start and ts < $end",
        WINDOW,
    )
    assert 0.27 <= share <= 0.33


def test_system_failures_only_inside_the_window(con: duckdb.DuckDBPyConnection) -> None:
    outside, inside, first, last = con.execute(
        """
        select
            count(*) filter (where ts < $start or ts >= $end),
            count(*) filter (where ts >= $start and ts < $end),
            min(ts),
            max(ts)
        from auth
        where error_code in ('db_timeout', 'db_pool_exhausted')
        """,
        WINDOW,
    ).fetchone()
    assert outside == 0
    assert inside > 0
    assert first.strftime("%H:%M") == "10:30"
    assert last.strftime("%H:%M") >= "14:40"


def test_queries_per_login_rise_at_least_threefold_in_the_window(
    con: duckdb.DuckDBPyConnection,
) -> None:
    per_login = con.execute(
        """
        with attempts as (
            select a.request_id, a.ts >= $start and a.ts < $end as inside from auth as a
        ),
        issued as (
            select q.request_id, count(*) as n from queries as q
            where q.request_id is not null group by q.request_id
        ),
        final as (
            select t.inside, sum(coalesce(i.n, 0)) / count(*) as per_login
            from attempts as t left join issued as i on i.request_id = t.request_id
            group by t.inside
        )
        select * from final
        """,
        WINDOW,
    ).fetchall()
    rates = dict(per_login)
    assert 3.0 <= rates[False] <= 4.5
    assert rates[True] >= 3 * rates[False]


def test_every_query_request_id_belongs_to_one_auth_attempt(
    con: duckdb.DuckDBPyConnection,
) -> None:
    assert _one(con, "select count(*) = count(distinct request_id) from auth")
    orphans = _one(
        con,
        "select count(*) from queries as q anti join auth as a on a.request_id = q.request_id "
        "where q.request_id is not null",
    )
    assert orphans == 0
    background = _one(con, "select avg((request_id is null)::int) from queries")
    assert 0.25 <= background <= 0.40


def test_database_latency_saturates_during_the_incident(con: duckdb.DuckDBPyConnection) -> None:
    p95 = dict(
        con.execute(
            "select ts >= $start and ts < $end, quantile_cont(duration_ms, 0.95) "
            "from queries group by all",
            WINDOW,
        ).fetchall()
    )
    assert p95[False] < 20
    assert p95[True] > 1000


def test_bypass_outlives_the_fix_and_ends_by_16_12(con: duckdb.DuckDBPyConnection) -> None:
    after_fix = _one(
        con,
        "select count(*) from auth where auth_path = 'bypass' and ts >= $end",
        {"end": WINDOW["end"]},
    )
    assert after_fix > 0
    late = "select count(*) from auth where auth_path = 'bypass' and ts >= '2024-01-19T16:12:00Z'"
    assert _one(con, late) == 0
    early = "select count(*) from auth where auth_path = 'bypass' and ts < '2024-01-19T11:40:00Z'"
    assert _one(con, early) == 0
    issued = _one(
        con,
        "select count(*) from queries as q join auth as a on a.request_id = q.request_id "
        "where a.auth_path = 'bypass'",
    )
    assert issued == 0


def test_user_failures_stay_near_two_percent_outside_the_window(
    con: duckdb.DuckDBPyConnection,
) -> None:
    rate = _one(
        con,
        "select avg(coalesce(error_code = 'invalid_credentials', false)::int) from auth "
        "where ts < $start or ts >= $end",
        WINDOW,
    )
    assert 0.01 <= rate <= 0.03


def test_system_failures_concentrate_in_eu_west_but_hit_every_region(
    con: duckdb.DuckDBPyConnection,
) -> None:
    shares = con.execute(
        "select region, avg(coalesce(error_code in ('db_timeout', 'db_pool_exhausted'), false)"
        "::int) from auth where ts >= $start and ts < $end group by region",
        WINDOW,
    ).fetchall()
    rate = dict(shares)
    assert set(rate) == {"eu-west", "us-east", "ap-south"}
    assert all(r > 0 for r in rate.values())
    assert rate["eu-west"] > 1.3 * max(rate["us-east"], rate["ap-south"])


def test_timeline_lists_the_responders_events(sample: dict[str, Path]) -> None:
    events = yaml.safe_load(sample["timeline"].read_text(encoding="utf-8"))
    assert [(e["ts"][11:16], e["kind"]) for e in events] == [
        ("10:26", "change"),
        ("10:33", "detection"),
        ("10:41", "note"),
        ("11:40", "mitigation"),
        ("12:15", "escalation"),
        ("14:40", "resolution"),
        ("16:10", "mitigation"),
    ]
    assert all(e["ts"].endswith("Z") and e["text"] for e in events)


def test_all_formats_carry_the_same_rows(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    expected = con.execute(
        "select (select count(*) from auth), (select count(*) from queries), "
        "(select sum(latency_ms) from auth), (select max(ts) from queries)"
    ).fetchone()
    for fmt in ("csv", "parquet"):
        paths = generate(tmp_path / fmt, scale=SCALE, seed=SEED, fmt=fmt)
        other = (
            _connect(paths, fmt)
            .execute(
                "select (select count(*) from auth), (select count(*) from queries), "
                "(select sum(latency_ms) from auth), (select max(ts) from queries)"
            )
            .fetchone()
        )
        assert other[:2] == expected[:2]
        assert other[2] == pytest.approx(expected[2])
        assert other[3] == expected[3]


def test_jsonl_lines_are_valid_json_with_nulls(sample: dict[str, Path]) -> None:
    # The writer puts strings between quotes without escaping: valid only while no template,
    # vocabulary word or label contains a quote, a backslash or a control character.
    texts = [t for *_, template in KINDS.values() for t in template]
    texts += [*WORDS, *STATUSES, *REGIONS, *CLIENTS]
    assert not [t for t in texts if any(c in t for c in '"\\\n\r\t')]
    with sample["auth"].open(encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    assert list(rows[0]) == [
        "ts", "user_id", "outcome", "request_id", "error_code", "latency_ms", "auth_path",
        "region", "instance", "client", "auth_method",
    ]  # fmt: skip
    assert {r["error_code"] for r in rows if r["outcome"] == "success"} == {None}
    with sample["queries"].open(encoding="utf-8") as f:
        first = [json.loads(next(f)) for _ in range(2000)]
    assert list(first[0]) == [
        "ts", "duration_ms", "statement", "request_id", "caller", "db_host", "rows"
    ]  # fmt: skip
    assert any(r["request_id"] is None for r in first)


def test_bad_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fmt"):
        generate(tmp_path, scale=SCALE, fmt="xml")
    with pytest.raises(ValueError, match="scale"):
        generate(tmp_path, scale=0)
