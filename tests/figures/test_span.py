"""The cost follows the rows, not the calendar: the span where the data is dense, the rows
outside it counted, a bucket that grows, and time axes with a bounded number of ticks."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from analysis import db, times
from analysis.figures import metrics, span, summary, views
from analysis.ingest import loader as load
from analysis.report import charts
from tests.conftest import write

H = timedelta(hours=1)
DAY = datetime(2024, 1, 19)


def hours(*offsets: float) -> list[datetime]:
    return [DAY + h * H for h in offsets]


def test_the_span_reaches_over_nights_but_not_over_years():
    window = (DAY + 10 * H, DAY + 14 * H)
    gap = timedelta(hours=24)
    # a day of data around the window, a quiet night, the next day: one span
    dense = hours(*range(6, 20), *range(30, 44))
    assert span.reach(dense, window, max_gap=gap) == (DAY + 6 * H, DAY + 44 * H)
    # one hour a decade earlier and one a year later are beyond the gap
    stray = [DAY - timedelta(days=3650), *dense, DAY + timedelta(days=365)]
    assert span.reach(stray, window, max_gap=gap) == (DAY + 6 * H, DAY + 44 * H)
    # data that does not cover the window: the window is the span
    assert span.reach([DAY - timedelta(days=900)], window, max_gap=gap) == window


def test_the_bucket_grows_only_past_the_limit():
    assert span.grown_bucket("1min", timedelta(hours=14)) == "1min"
    assert span.grown_bucket("1min", timedelta(days=2)) == "1min"  # 2,880 buckets
    assert span.grown_bucket("1min", timedelta(days=14)) == "10min"  # 5min would be 4,032
    assert span.grown_bucket("30s", timedelta(days=1)) == "30s"  # 2,880
    assert span.grown_bucket("30s", timedelta(days=3)) == "2min"  # 1min would be 4,320
    assert span.grown_bucket("1h", timedelta(days=3650)) == "24h"


def figures_of(con, tmp_path, auth, queries, timeline) -> dict:
    res = load.load(con, auth=auth, queries=queries, timeline=timeline)
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
    a = summary.analyse(con, params, scope, incident_id="s", load_result=res)
    return {"summary": a.summary, "series": a.series}


def test_the_sample_plus_one_line_a_decade_early_gives_the_same_figures(small_sample, tmp_path):
    clean = db.connect(":memory:")
    base = figures_of(
        clean, tmp_path, small_sample["auth"], small_sample["queries"], small_sample["timeline"]
    )
    clean.close()
    lines = small_sample["auth"].read_text().splitlines(keepends=True)
    stray = json.loads(lines[0])
    stray["ts"] = "2014-01-19T10:31:00Z"
    stray["auth_path"] = "bypass"
    misdated = write(tmp_path / "auth.jsonl", json.dumps(stray) + "\n" + "".join(lines))
    con = db.connect(":memory:")
    got = figures_of(con, tmp_path, misdated, small_sample["queries"], small_sample["timeline"])
    s, b = got["summary"], base["summary"]
    for key in s:
        if key != "ingest":
            assert s[key] == b[key], key
    assert s["ingest"]["auth"]["outside_span"] == {
        "count": 1,
        "first": "2014-01-19T10:31:00Z",
        "last": "2014-01-19T10:31:00Z",
    }
    assert s["ingest"]["auth"]["rows_loaded"] == b["ingest"]["auth"]["rows_loaded"] + 1
    assert s["ingest"]["queries"] == b["ingest"]["queries"]
    pd.testing.assert_frame_equal(got["series"], base["series"])
    # the list of users to re-verify still names the misdated bypass login
    with span.everything(con):
        n = con.execute("select count(*) from v_auth where auth_path = 'bypass'").fetchone()[0]
    assert n == s["bypass"]["logins"] + 1
    con.close()


def test_sixteen_rows_over_years_give_a_small_series(con, tmp_path):
    rows = []
    for i in range(12):  # around the window
        rows.append((f"2024-01-19T{9 + i // 2:02d}:{(i * 7) % 60:02d}:00Z", "failure"))
    for year in (2009, 2014, 2019, 2031):  # misdated
        rows.append((f"{year}-06-01T00:00:00Z", "success"))
    text = "".join(
        json.dumps({"ts": ts, "user_id": f"u{i}", "outcome": o, "error_code": "db_timeout"}) + "\n"
        for i, (ts, o) in enumerate(rows)
    )
    auth = write(tmp_path / "a.jsonl", text)
    res = load.load(con, auth=auth)
    scope = views.scope(con)
    params = metrics.Params(start=datetime(2024, 1, 19, 10), end=datetime(2024, 1, 19, 12))
    a = summary.analyse(con, params, scope, incident_id="t", load_result=res)
    assert len(a.series) <= span.MAX_BUCKETS
    assert a.summary["ingest"]["auth"]["outside_span"] == {
        "count": 4,
        "first": "2009-06-01T00:00:00Z",
        "last": "2031-06-01T00:00:00Z",
    }
    assert a.summary["span"]["bucket_grown"] is False


def test_two_weeks_of_sparse_rows_grow_the_bucket(con, tmp_path):
    # a row every 11 hours for two weeks: every gap is under a day, so all of it is the span
    start = datetime(2024, 1, 12)
    rows = [start + timedelta(hours=11 * i) for i in range(33)]  # 352 h
    text = "".join(
        json.dumps({"ts": t.strftime("%Y-%m-%dT%H:%M:%SZ"), "user_id": "u", "outcome": "success"})
        + "\n"
        for t in rows
    )
    res = load.load(con, auth=write(tmp_path / "a.jsonl", text))
    params = metrics.Params(start=datetime(2024, 1, 19, 10), end=datetime(2024, 1, 19, 12))
    a = summary.analyse(con, params, views.scope(con), incident_id="t", load_result=res)
    assert a.summary["span"]["bucket"] == "10min" and a.summary["span"]["bucket_grown"]
    assert a.params.bucket == "10min"
    assert len(a.series) <= span.MAX_BUCKETS
    assert a.summary["ingest"]["auth"]["outside_span"]["count"] == 0


@pytest.mark.parametrize("days", [0.5, 14, 3650])
def test_time_axes_have_a_bounded_number_of_ticks(days):
    t = pd.date_range(DAY, DAY + timedelta(days=days), periods=500)
    series = pd.DataFrame(
        {
            "bucket": t,
            "system_error_rate": 0.0,
            "user_error_rate": 0.0,
            "error_rate": 0.0,
            "queries_per_auth": 3.0,
            "auth_queries": 3,
            "latency_p95_ms": 5.0,
        }
    )
    fig = charts.plot_overview(
        series,
        declared=(DAY, DAY + H),
        detected=None,
        events=pd.DataFrame({"ts": [DAY + H], "kind": ["note"], "text": ["x"]}),
        title="t",
    )
    FigureCanvasAgg(fig).draw()
    ax = fig.axes[0]
    assert 2 <= len(ax.xaxis.get_majorticklocs()) <= charts.MAX_TICKS + 2
    assert len(ax.xaxis.get_minorticklocs()) <= 4 * charts.MAX_TICKS + 8
