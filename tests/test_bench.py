"""The bench's summary: the target figures at the top level of results.json, each with the
rows it was measured at, judged held or MISSED (synthetic measurements, known answers)."""

from __future__ import annotations

from tools import bench


def _size(load_vs_floor: float) -> dict:
    return {
        "scale": 2.2,
        "rows": {"auth": 400, "queries": 5600},
        "load_vs_floor": load_vs_floor,
        "report_vs_floor": 2.5,
        "inplace_analysis_vs_loaded": 1.8,
        "report_in_place": {"ok": True, "seconds": 30.0},
        "peak_rss_mb": 1200.0,
        "speedup_vs_pandas": 3.0,
        "report": {"ok": True, "seconds": 40.0},
        "report_misdated": {"ok": True, "seconds": 41.0},
        "misdated_vs_report": 1.02,
    }


def test_every_target_key_is_at_the_top_with_its_rows_and_a_verdict():
    fixed = {"fixed_cost_s": 6.0, "charts_s": 1.2, "rows": 600}
    pg = {"speedup": 12.0, "log_mb": 101.3, "rows": 1000}
    top = bench.headline([_size(9.0), _size(4.0)], fixed, pg)
    keys = [k for k, *_ in bench.TARGETS]
    assert set(keys) <= set(top) and "pgbadger_log_mb" in top
    assert top["load_vs_floor"] == 4.0  # the largest size measured
    assert top["rows"]["load_vs_floor"] == 6000 and top["rows"]["fixed_cost_s"] == 600
    lines = dict(zip(keys, bench.targets([_size(4.0)], top), strict=False))
    assert lines["load_vs_floor"].split(": ")[1].startswith("MISSED (4 at 6,000 rows)")
    assert "held (1.8" in lines["inplace_analysis_vs_loaded"]
    assert "held (30" in lines["inplace_report_s"]
    assert "MISSED (6" in lines["fixed_cost_s"] and "held (1.2" in lines["charts_s"]
    assert "held (12" in lines["speedup_vs_pgbadger"]
    assert "MISSED (3" in lines["speedup_vs_pandas"]


def test_a_peer_that_was_not_measured_says_so_and_is_neither_held_nor_missed():
    top = bench.headline([_size(1.2)], {}, {"skipped": "no pgbadger"})
    lines = bench.targets([_size(1.2)], top)
    pg = next(x for x in lines if x.startswith("PostgreSQL log"))
    assert "not measured" in pg and "held" not in pg and "MISSED" not in pg
    assert any(x.startswith("load ÷") and "held (1.2" in x for x in lines)
