"""The presets on real files of ../shared/real-logs (read there, never copied here).

Every count below was established from the file itself with grep, and is written next to it.
"""

from __future__ import annotations

import pytest

from analysis import db
from analysis.figures import views
from analysis.ingest import loader as load
from tests.conftest import require_shared


@pytest.fixture
def con(tmp_path):
    c = db.connect(tmp_path / "t.duckdb")
    views.install_macros(c)
    yield c
    c.close()


def _rows(con, sql):
    return con.execute(sql).fetchall()


def test_traefik_auth_401s_are_failed_logins_of_the_path_given(con):
    path = require_shared() / "fail2ban" / "traefik-auth"
    # grep -v '^#' traefik-auth | grep -c '" 401 '  -> 5;  '" 200 ' -> 1; 10 comment lines
    res = load.load(con, auth=path, auth_format="access", login_paths=["/dashboard/"]).files[0]
    assert (res.rows_read, res.rows_loaded, res.rows_rejected, res.rows_skipped) == (16, 6, 0, 10)
    assert res.skipped == {"comment line": 10}
    assert _rows(
        con, "select outcome, error_code, count(*) from auth_events group by all order by 1"
    ) == [
        ("failure", "401", 5),
        ("success", "200", 1),
    ]
    # the user of basic auth, where the line has one ("-" is none)
    assert _rows(con, "select user_id, count(*) from auth_events group by 1 order by 1") == [
        ("username", 4),
        (None, 2),
    ]
    assert _rows(con, "select min(latency_ms), max(latency_ms) from auth_events") == [(0.0, 4.0)]


def test_traefik_auth_without_a_login_path_loads_no_attempt_and_counts_why(con):
    path = require_shared() / "fail2ban" / "traefik-auth"
    res = load.load(con, auth=path).files[0]  # auto: recognised by its content
    assert res.format == "access"
    assert res.skipped == {"comment line": 10, "not a login path": 6}
    assert res.rows_loaded == 0
    # the note says what to do: name the path (these requests are to /dashboard/)
    assert any("--login-path" in note for note in res.notes), res.notes


def test_a_shop_access_log_reads_its_two_login_requests(con):
    path = require_shared() / "lnav" / "logfile_shop_access_log.0"
    # grep -cE '"[A-Z]+ /login' -> 2 (GET /login/auth, both 200); 1000 lines in all
    res = load.load(con, auth=path, auth_format="access").files[0]
    assert (res.rows_read, res.rows_loaded, res.rows_skipped) == (1000, 2, 998)
    # +0330: the times land in UTC
    assert _rows(
        con,
        "select strftime(min(ts), '%H:%M:%S'), "
        "count(*) filter (where outcome = 'success') from auth_events",
    ) == [("00:27:58", 2)]


def test_haproxy_http_lines_are_requests_and_its_start_up_lines_are_skipped(con):
    path = require_shared() / "lnav" / "logfile_haproxy.0"
    # 3 "Proxy … started." lines, 1 "SSL handshake failure" line, 13 HTTP requests (all 200),
    # 6 of them to /portal/ (grep -c portal) from 4 clients
    res = load.load(con, auth=path, login_paths=["/portal/"]).files[0]
    assert res.format == "haproxy"
    assert (res.rows_read, res.rows_loaded, res.rows_rejected, res.rows_skipped) == (17, 6, 0, 11)
    assert res.skipped == {"not a haproxy line": 4, "not a login path": 7}
    # Ta, the total time, is the latency: 62, 38, 328, 2707, 2442, 236 ms
    assert _rows(
        con, "select sum(latency_ms)::int, count(distinct client_ip) from auth_events"
    ) == [(5813, 4)]


def test_mysql_access_denied_lines_of_every_version_are_failed_logins(con):
    path = require_shared() / "fail2ban" / "mysqld-auth"
    # grep -c 'Access denied for user' -> 17; one of them has text after it (fail2ban's
    # injection test, "match": false) and is not read; 6 say "using password: NO"
    res = load.load(con, auth=path).files[0]
    assert res.format == "mysql-error"
    assert (res.rows_loaded, res.rows_rejected) == (16, 0)
    assert res.skipped == {"comment line": 18, "not a mysql-error line": 1}
    assert _rows(con, "select error_code, count(*) from auth_events group by 1 order by 1") == [
        ("access_denied", 10),
        ("no_password", 6),
    ]
    assert _rows(
        con, "select string_agg(distinct user_id, ',' order by user_id) from auth_events"
    ) == [("global,hacker,root,user",)]
    # 130324  0:04:00 (MySQL 5.1) and 2020-01-16 21:34:14 (MariaDB) are the first and last
    assert _rows(con, "select min(ts)::varchar, max(ts)::varchar from auth_events") == [
        ("2013-03-24 00:04:00", "2020-01-16 21:34:14")
    ]


def test_an_otel_collector_file_is_recognised_and_its_records_counted_by_severity(con):
    path = require_shared() / "lnav" / "logfile_otel_collector.jsonl"
    res = load.load(con, auth=path).files[0]
    assert res.format == "otel"
    assert (res.rows_read, res.rows_loaded, res.rows_skipped) == (11, 0, 11)


def test_a_cloudnativepg_log_is_told_by_content_as_postgres_not_json_lines_of_ours(con):
    # its lines carry a 'ts' (the operator's epoch) but none of our fields
    path = require_shared() / "pgbadger" / "cnpg.log.gz"
    res = load.load(con, queries=path).files[0]
    assert res.format == "postgres" and res.rows_loaded == 400
