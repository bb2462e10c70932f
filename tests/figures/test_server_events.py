"""The database's own evidence (analysis.figures.server_events) on a PostgreSQL log written by
hand: every FATAL/ERROR entry's kind, period and time is known, so are the figures."""

from __future__ import annotations

import json

from analysis import times
from analysis.figures import server_events, views
from analysis.figures.metrics import Params
from analysis.ingest import loader as load
from analysis.report import draft
from analysis.report import run as report
from tests.conftest import write

PREFIX = "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h "
WINDOW = ("2024-03-02T08:00:00Z", "2024-03-02T09:00:00Z")


def entry(at: str, sev: str, msg: str, *, pid: int = 40) -> str:
    prefix = f"2024-03-02 {at} UTC [{pid}]: [1-1] user=app,db=shop,app=auth-api,client=10.0.0.9"
    return f"{prefix} {sev}:  {msg}\n"


PG_LOG = "".join(
    [
        entry("06:59:00", "LOG", "duration: 1.5 ms  statement: SELECT 1"),
        # baseline: before the window less its 15 minutes
        entry("07:00:00", "FATAL", 'password authentication failed for user "app"'),
        entry("07:00:00", "DETAIL", "Connection matched pg_hba.conf line 99"),
        entry("07:10:00", "ERROR", "deadlock detected"),
        entry("07:10:00", "DETAIL", "Process 41 waits for ShareLock on transaction 7"),
        entry("07:10:00", "STATEMENT", "UPDATE t SET a = 1"),
        # the guard margin before the window: in neither period, in the totals
        entry("07:50:00", "ERROR", "canceling statement due to statement timeout"),
        # the declared window
        entry("08:05:00", "FATAL", 'password authentication failed for user "app"'),
        entry("08:06:00", "FATAL", 'password authentication failed for user "bob"'),
        entry("08:10:00", "LOG", "connection authorized: user=app database=shop"),
        entry("08:20:00", "FATAL", 'password authentication failed for user "app"'),
        entry("08:30:00", "FATAL", "sorry, too many clients already"),
        entry("08:31:00", "FATAL", "sorry, too many clients already"),
        entry("08:40:00", "ERROR", "canceling statement due to statement timeout"),
        entry("08:45:00", "ERROR", "out of memory"),
        entry("08:45:00", "DETAIL", "Failed on request of size 8192."),
        entry("08:50:00", "ERROR", 'relation "nope" does not exist at character 15'),
        entry("08:51:00", "LOG", "duration: 900.5 ms  statement: SELECT 2"),
        # baseline again: after the window and its margin
        entry(
            "09:30:00",
            "FATAL",
            "remaining connection slots are reserved for non-replication superuser connections",
        ),
    ]
)
#: another incident's log in the same database: never part of this report
OTHER_LOG = entry("08:10:00", "FATAL", 'password authentication failed for user "eve"', pid=9)

EXPECTED = {
    "incident": 8,
    "baseline": 3,
    "total": 12,
    "first": "2024-03-02T07:00:00Z",
    "last": "2024-03-02T09:30:00Z",
    "incident_first": "2024-03-02T08:05:00Z",
    "incident_last": "2024-03-02T08:50:00Z",
    "by_kind": [
        {
            "kind": "authentication_failed",
            "incident": 3,
            "baseline": 1,
            "total": 4,
            "first": "2024-03-02T07:00:00Z",
            "last": "2024-03-02T08:20:00Z",
            "incident_first": "2024-03-02T08:05:00Z",
            "incident_last": "2024-03-02T08:20:00Z",
        },
        {
            "kind": "too_many_connections",
            "incident": 2,
            "baseline": 1,
            "total": 3,
            "first": "2024-03-02T08:30:00Z",
            "last": "2024-03-02T09:30:00Z",
            "incident_first": "2024-03-02T08:30:00Z",
            "incident_last": "2024-03-02T08:31:00Z",
        },
        {
            "kind": "statement_timeout",
            "incident": 1,
            "baseline": 0,
            "total": 2,
            "first": "2024-03-02T07:50:00Z",
            "last": "2024-03-02T08:40:00Z",
            "incident_first": "2024-03-02T08:40:00Z",
            "incident_last": "2024-03-02T08:40:00Z",
        },
        {
            "kind": "deadlock",
            "incident": 0,
            "baseline": 1,
            "total": 1,
            "first": "2024-03-02T07:10:00Z",
            "last": "2024-03-02T07:10:00Z",
            "incident_first": None,
            "incident_last": None,
        },
        {
            "kind": "out_of_memory",
            "incident": 1,
            "baseline": 0,
            "total": 1,
            "first": "2024-03-02T08:45:00Z",
            "last": "2024-03-02T08:45:00Z",
            "incident_first": "2024-03-02T08:45:00Z",
            "incident_last": "2024-03-02T08:45:00Z",
        },
        {
            "kind": "other_error",
            "incident": 1,
            "baseline": 0,
            "total": 1,
            "first": "2024-03-02T08:50:00Z",
            "last": "2024-03-02T08:50:00Z",
            "incident_first": "2024-03-02T08:50:00Z",
            "incident_last": "2024-03-02T08:50:00Z",
        },
    ],
}
SENTENCE = (
    "- The database itself reported 8 errors during the declared window, 08:05 UTC to "
    "08:50 UTC: authentication failed 3, too many connections 2, statement timeout 1, out "
    "of memory 1, other FATAL/ERROR 1; baseline: authentication failed 1, too many "
    "connections 1, deadlock 1."
)


def params(bucket: str = "30min") -> Params:
    return Params(
        start=times.parse_instant(WINDOW[0]),
        end=times.parse_instant(WINDOW[1]),
        bucket=bucket,
    )


def test_server_events_by_kind_period_and_time(con, tmp_path):
    ours = write(tmp_path / "pg.log", PG_LOG)
    other = write(tmp_path / "other.log", OTHER_LOG)
    loaded = load.load(con, queries=[ours, other], query_format="postgres", log_line_prefix=PREFIX)
    mine = [f.source_id for f in loaded.files if f.path == str(ours)]
    views.scope(con, auth=[], queries=mine, timeline=[])
    assert server_events.figures(con, params()) == EXPECTED
    per_bucket = server_events.series(con, params()).to_dict("records")
    assert [(str(r["bucket"])[11:16], r["kind"], r["events"]) for r in per_bucket] == [
        ("07:00", "authentication_failed", 1),
        ("07:00", "deadlock", 1),
        ("07:30", "statement_timeout", 1),
        ("08:00", "authentication_failed", 3),
        ("08:30", "other_error", 1),
        ("08:30", "out_of_memory", 1),
        ("08:30", "statement_timeout", 1),
        ("08:30", "too_many_connections", 2),
        ("09:30", "too_many_connections", 1),
    ]
    # scoped to every source, the other incident's failure is there too
    views.scope(con)
    assert server_events.figures(con, params())["incident"] == 9


def test_draft_sentence_and_title():
    s = {"db": {"server_events": EXPECTED}}
    assert server_events.draft_sentence(s) == SENTENCE
    assert server_events.title(s) == (
        "The database logged 8 errors in the declared window (3 in the baseline); most: "
        "authentication failed (3)"
    )
    quiet = {
        **EXPECTED,
        "incident": 0,
        "by_kind": [{**k, "incident": 0} for k in EXPECTED["by_kind"]],
    }
    assert server_events.draft_sentence({"db": {"server_events": quiet}}) == (
        "- The database itself reported no error during the declared window (3 in the "
        "baseline: authentication failed 1, too many connections 1, deadlock 1)."
    )
    none = {"incident": 0, "baseline": 0, "total": 0, "by_kind": []}
    assert server_events.draft_sentence({"db": {"server_events": none}}) is None
    assert server_events.title({"db": {"server_events": none}}) == (
        "The database logged no error of its own"
    )


def test_a_report_shows_the_database_errors(tmp_path):
    auth = write(
        tmp_path / "auth.jsonl",
        "".join(
            json.dumps({"ts": f"2024-03-02T0{h}:{m:02d}:00Z", "user_id": f"u{m}", "outcome": o})
            + "\n"
            for h in (6, 7, 8, 9)
            for m in range(0, 60, 5)
            for o in ("success", "failure")
        ),
    )
    pg = write(tmp_path / "pg.log", PG_LOG)
    run = report.Run.from_parameters(
        say=lambda _m: None,
        auth_logs=str(auth),
        query_logs=str(pg),
        timeline="",
        query_format="postgres",
        log_line_prefix=PREFIX,
        database=str(tmp_path / "incident.duckdb"),
        report_dir=str(tmp_path / "report"),
        incident_id="db-errors",
        incident_start=WINDOW[0],
        incident_end=WINDOW[1],
        bucket="5min",
    )
    run.load()
    run.analyse()
    assert run.summary["db"]["server_events"] == EXPECTED
    run.chart("server_events")
    run.write()
    out = tmp_path / "report"
    assert (out / "figures" / "server_events.png").stat().st_size > 0
    written = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert written["db"]["server_events"] == EXPECTED
    md = (out / "postmortem.md").read_text(encoding="utf-8")
    assert SENTENCE in md
    assert "](figures/server_events.png)" in md
    assert draft.chart_titles(written)["server_events"].startswith("The database logged 8 errors")
