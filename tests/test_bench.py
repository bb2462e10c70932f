"""The bench's summary: the target figures at the top level of results.json, each with the
rows it was measured at, judged held or MISSED (synthetic measurements, known answers)."""

from __future__ import annotations

import json

import pytest

from tools import bench, peers

#: every key the issue asks for at the top level of results.json
TOP_KEYS = {
    "load_vs_floor",
    "report_vs_floor",
    "inplace_analysis_vs_loaded",
    "inplace_report_s",
    "rereport_s",
    "rereport_vs_own_figures",
    "misdated_vs_report",
    "fixed_cost_s",
    "charts_s",
    "speedup_vs_pgbadger",
    "pgbadger_log_mb",
    "speedup_vs_pandas",
    "vs_pandas_pyarrow",
    "vs_polars",
    "statement_key_share",
    "peak_rss_mb",
}


def _m(seconds: float, **extra) -> dict:
    return {"ok": True, "seconds": seconds, **extra}


def _size(load_vs_floor: float, *, peers_measured: bool = True) -> dict:
    out = {
        "scale": 2.2,
        "rows": {"auth": 400, "queries": 5600},
        "load_vs_floor": load_vs_floor,
        "report_vs_floor": 2.5,
        "inplace_analysis_vs_loaded": 1.8,
        "report_in_place": _m(30.0),
        "peak_rss_mb": 1200.0,
        "report": _m(40.0, analysis_s=10.0),
        "report_misdated": _m(41.0),
        "misdated_vs_report": 1.02,
        "rereport": _m(18.0, analysis_s=9.0),
        "floor_ctas": _m(20.0),
        "floor_queries": _m(18.0),
        "floor_queries_key": _m(20.4),
    }
    if peers_measured:
        out.update(speedup_vs_pandas=3.0, vs_polars=2.5, vs_pandas_pyarrow=1.5)
    return out


def test_every_target_key_is_at_the_top_with_its_rows_and_a_verdict():
    fixed = {"fixed_cost_s": 6.0, "charts_s": 1.2, "rows": 600}
    pg = {"speedup": 12.0, "log_mb": 101.3, "rows": 1000}
    small, large = _size(9.0), _size(4.0, peers_measured=False)
    large["rows"] = {"auth": 4000, "queries": 56000}
    top = bench.headline([small, large], fixed, pg)
    assert TOP_KEYS <= set(top) and {k for k, *_ in bench.TARGETS} <= TOP_KEYS
    assert all(top["rows"].get(k) for k in TOP_KEYS - {"pgbadger_log_mb"})
    assert top["load_vs_floor"] == 4.0  # the largest size measured
    assert top["rows"]["load_vs_floor"] == 60000 and top["rows"]["fixed_cost_s"] == 600
    # the peers where they were measured, with those rows
    assert (top["vs_polars"], top["rows"]["vs_polars"]) == (2.5, 6000)
    # the second report ÷ (its own figures + the fixed cost): 18 / (9 + 6)
    assert (top["rereport_s"], top["rereport_vs_own_figures"]) == (18.0, 1.2)
    # the key: (20.4 - 18) ÷ 20
    assert top["statement_key_share"] == 0.12
    lines = dict(zip([k for k, *_ in bench.TARGETS], bench.targets([large], top), strict=False))
    assert lines["load_vs_floor"].split(": ")[1].startswith("MISSED (4 at 60,000 rows)")
    assert "held (1.8" in lines["inplace_analysis_vs_loaded"]
    assert "held (30" in lines["inplace_report_s"] and "held (18" in lines["rereport_s"]
    assert "held (1.2" in lines["rereport_vs_own_figures"]
    assert "held (1.02" in lines["misdated_vs_report"]
    assert "MISSED (6" in lines["fixed_cost_s"] and "held (1.2" in lines["charts_s"]
    assert "held (12" in lines["speedup_vs_pgbadger"]
    assert "MISSED (3" in lines["speedup_vs_pandas"]
    assert "MISSED (2.5 at 6,000 rows)" in lines["vs_polars"]
    assert "held (0.12" in lines["statement_key_share"]


def test_the_native_keys_share_is_its_own_time_over_the_floor():
    # the native key runs on the Arrow rows a load has read: timed on its own, not as the
    # difference of two stores (the fallback macro runs in the scan, so its share is that)
    measured = bench._key_named("key_s 2.5\nnative\n")
    assert measured == {"statement_key": "native", "key_s": 2.5}
    size = {**_size(3.0), "floor_queries_key": _m(30.0, **measured)}
    assert bench._key_share(size) == 0.125  # 2.5 ÷ 20, not (30 - 18) ÷ 20
    assert bench._key_named("duckdb\n") == {"statement_key": "duckdb"}


def test_a_peer_that_was_not_measured_says_so_and_is_neither_held_nor_missed():
    top = bench.headline([_size(1.2, peers_measured=False)], {}, {"skipped": "no pgbadger"})
    lines = bench.targets([_size(1.2)], top)
    for start in ("PostgreSQL log", "our report ÷ Polars"):
        line = next(x for x in lines if x.startswith(start))
        assert "not measured" in line and "held" not in line and "MISSED" not in line
    assert any(x.startswith("load ÷") and "held (1.2" in x for x in lines)


@pytest.mark.parametrize("name", sorted(peers.PEERS))
def test_each_peer_computes_the_core_figures_of_a_known_sample(tmp_path, name):
    if name == "polars":
        pytest.importorskip("polars")
    auth = tmp_path / "auth.jsonl"
    queries = tmp_path / "q.jsonl"
    auth.write_text(
        '{"ts": "2024-01-19T10:30:10Z", "user_id": "u1", "outcome": "failure", '
        '"request_id": "r1", "error_code": "db_timeout"}\n'
        '{"ts": "2024-01-19T10:31:10Z", "user_id": "u2", "outcome": "success", '
        '"request_id": "r2", "error_code": null}\n'
        '{"ts": "2024-01-19T09:00:00Z", "user_id": "u3", "outcome": "failure", '
        '"request_id": "r3", "error_code": "invalid_password"}\n',
        encoding="utf-8",
    )
    template = "SELECT a FROM t WHERE id = {i} AND b = 'x{i}'"
    queries.write_text(
        "".join(
            json.dumps(
                {
                    "ts": "2024-01-19T10:30:11Z",
                    "statement": template.format(i=i),
                    "request_id": f"r{1 + i % 2}",
                }
            )
            + "\n"
            for i in range(3)
        ),
        encoding="utf-8",
    )
    # 3 minutes; in the window 2 attempts, 1 failure, 1 affected user; 3 queries over the
    # window's 2 attempts; one statement shape
    assert peers.PEERS[name](str(auth), str(queries)) == (
        "3 minutes, (2, 1, 1), 1.500 queries an attempt, "
        "top ('select a from t where id = ? and b = ?', 3)"
    )
