"""Server logs (analysis.ingest.formats) on tiny fixtures whose right answer is known by hand:
PostgreSQL stderr, syslog, csvlog and jsonlog, the MySQL slow log and sshd."""

from __future__ import annotations

import bz2
import gzip
import json
import os
from datetime import datetime
from pathlib import Path

import pytest

from analysis import cli, errors
from analysis.ingest import lines
from analysis.ingest import loader as load
from analysis.ingest.formats import pg_prefix, postgres, sshd
from tests.conftest import write

PREFIX = "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h "


def pg_line(msg: str, *, pid: int = 36, n: int = 1, sev: str = "LOG", at: str = "08:41:41") -> str:
    return (
        f"2017-09-06 {at} UTC [{pid}]: [{n}-1] user=alice,db=shop,app=auth-api,"
        f"client=10.0.0.7 {sev}:  {msg}\n"
    )


def queries(con) -> list[tuple]:
    return con.execute(
        "select line, ts, duration_ms, statement, fingerprint from db_queries order by line"
    ).fetchall()


def events(con) -> list[tuple]:
    return con.execute(
        'select line, severity, message, "user", database, client from server_events order by line'
    ).fetchall()


STDERR = (
    pg_line("duration: 2.280 ms  statement: END;")  # noqa: S608 - log text
    + pg_line("duration: 12.5 ms  statement: SELECT id,", n=2)
    + "\t       name\n"
    + "\tFROM users\n"
    + "\tWHERE id = 42;\n"
    + pg_line("connection authorized: user=alice database=shop", pid=37)
    + pg_line('password authentication failed for user "bob"', pid=38, sev="FATAL")
    + pg_line(
        'Connection matched pg_hba.conf line 99: "host all all 0.0.0.0/0 md5"',
        pid=38,
        sev="DETAIL",
    )
    + pg_line("duration: 0.5 ms  parse S_1: SELECT * FROM t WHERE a = $1", n=3)
    + pg_line("duration: 0.2 ms  bind S_1: SELECT * FROM t WHERE a = $1", n=4)
    + pg_line("duration: 1.25 ms  execute S_1: SELECT * FROM t WHERE a = $1", n=5)
    + pg_line("parameters: $1 = 'x\n\ty'", n=6, sev="DETAIL")
    + pg_line('relation "nope" does not exist at character 15', sev="ERROR", n=7)
    + pg_line("SELECT * FROM nope;", sev="STATEMENT", n=8)
)


def test_stderr_queries_multiline_statements_and_server_events(con, tmp_path):
    f = write(tmp_path / "pg.log", STDERR)
    result = load.load(con, queries=f, query_format="postgres")
    fr = result.files[0]
    assert (fr.rows_read, fr.rows_loaded, fr.rows_rejected) == (3, 3, 0)
    assert fr.notes[0] == f"PostgreSQL stderr log, log_line_prefix {PREFIX!r}"
    assert queries(con) == [
        (1, datetime(2017, 9, 6, 8, 41, 41), 2.28, "END;", "end"),
        (
            2,
            datetime(2017, 9, 6, 8, 41, 41),
            12.5,
            "SELECT id,\n       name\nFROM users\nWHERE id = 42;",
            "select id, name from users where id = ?",
        ),
        (
            11,
            datetime(2017, 9, 6, 8, 41, 41),
            1.25,
            "SELECT * FROM t WHERE a = $1",
            "select * from t where a = ?",
        ),
    ]
    extras = con.execute(
        "select caller, db_user, database, client_ip, pid from db_queries where line = 2"
    ).fetchall()
    assert extras == [("auth-api", "alice", "shop", "10.0.0.7", "36")]
    # everything else is a server event; parse and bind are steps of the execute on line 11
    assert [(e[0], e[1]) for e in events(con)] == [
        (6, "LOG"),
        (7, "FATAL"),
        (8, "DETAIL"),
        (9, "LOG"),
        (10, "LOG"),
        (12, "DETAIL"),
        (14, "ERROR"),
        (15, "STATEMENT"),
    ]
    assert events(con)[1][2:] == (
        'password authentication failed for user "bob"',
        "alice",
        "shop",
        "10.0.0.7",
    )
    assert events(con)[5][2] == "parameters: $1 = 'x\ny'"
    assert any("parse/bind durations" in n for n in fr.notes)


def test_a_statement_logged_apart_from_its_duration_is_joined_by_process(con, tmp_path):
    # log_statement = all and log_duration = on: the statement first, the duration at the end
    text = (
        pg_line("statement: SELECT 1", pid=1)
        + pg_line("statement: SELECT 2", pid=2)
        + pg_line("duration: 5.000 ms", pid=2)
        + pg_line("duration: 7.000 ms", pid=1)
        + pg_line("duration: 9.000 ms", pid=3)  # no statement before it: rejected, not lost
    )
    f = write(tmp_path / "pg.log", text)
    result = load.load(con, queries=f, query_format="postgres")
    assert result.totals("queries") == {
        "rows_read": 3,
        "rows_loaded": 2,
        "rows_rejected": 1,
        "rows_skipped": 0,
    }
    assert [(q[0], q[2], q[3]) for q in queries(con)] == [
        (3, 5.0, "SELECT 2"),
        (4, 7.0, "SELECT 1"),
    ]
    assert con.execute("select line, reason from rejects").fetchall() == [
        (5, "missing required field statement or fingerprint")
    ]


@pytest.mark.parametrize(
    ("prefix", "line", "pid", "user", "db"),
    [
        ("%m [%p] ", "2024-01-19 10:30:00.123 UTC [77] LOG:  ", "77", None, None),
        (
            "%m [%p] %q%u@%d ",
            "2024-01-19 10:30:00.123 UTC [77] app@shop LOG:  ",
            "77",
            "app",
            "shop",
        ),
        ("%t [%p]: ", "2024-01-19 10:30:00 UTC [77]: LOG:  ", "77", None, None),
        (
            "%m [%p] user=%u,db=%d ",
            "2024-01-19 10:30:00.123 UTC [77] user=app,db=shop LOG:  ",
            "77",
            "app",
            "shop",
        ),
        (
            "%m [%p] [queryid=%Q] %u@%d ",
            "2024-01-19 10:30:00.123 UTC [77] [queryid=-42] app@shop LOG:  ",
            "77",
            "app",
            "shop",
        ),
        (
            PREFIX,
            "2024-01-19 10:30:00 UTC [77]: [1-1] user=app,db=shop,app=x y,client=::1 LOG:  ",
            "77",
            "app",
            "shop",
        ),
    ],
)
def test_common_prefixes_are_detected(con, tmp_path, prefix, line, pid, user, db):
    f = write(tmp_path / "pg.log", line + "duration: 1.0 ms  statement: SELECT 1\n")
    result = load.load(con, queries=f, query_format="postgres")
    assert result.totals("queries")["rows_loaded"] == 1
    cols = {r[0] for r in con.execute("describe db_queries").fetchall()}
    row = con.execute("select * from db_queries").fetchdf().iloc[0]
    assert row["ts"] == datetime(2024, 1, 19, 10, 30, 0, 123000 if "%m" in prefix else 0)
    assert row["pid"] == pid
    assert (row["db_user"] if "db_user" in cols else None) == user
    assert (row["database"] if "database" in cols else None) == db


def test_a_given_prefix_is_translated_and_used(con, tmp_path):
    text = "1705660200.250|77|app|shop|10.1.2.3(5432)|LOG:  duration: 3 ms  statement: SELECT 1\n"
    f = write(tmp_path / "pg.log", text)
    result = load.load(con, queries=f, query_format="postgres", log_line_prefix="%n|%p|%u|%d|%r|")
    assert result.totals("queries")["rows_loaded"] == 1
    assert con.execute(
        "select ts, pid, db_user, database, client_ip from db_queries"
    ).fetchall() == [(datetime(2024, 1, 19, 10, 30, 0, 250000), "77", "app", "shop", "10.1.2.3")]


def test_prefix_translation():
    p = pg_prefix.translate("%m [%p] %q%u@%d 100%% ")
    assert p.names == ("ts", "pid", "db_user", "database")
    # %q: background processes stop there, so the rest is optional
    import re

    assert re.match(p.start_regex(), "2024-01-19 10:30:00.1 UTC [7] LOG:  x")
    assert re.match(p.start_regex(), "2024-01-19 10:30:00.1 UTC [7] a@b 100% LOG:  x")
    assert pg_prefix.translate("%-10u|").regex == r" *(\S*?) *\|"
    with pytest.raises(ValueError, match="%z is not a PostgreSQL escape"):
        pg_prefix.translate("%z")


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        ("UTC", datetime(2024, 7, 1, 12, 0)),
        ("CEST", datetime(2024, 7, 1, 10, 0)),
        ("MSK", datetime(2024, 7, 1, 9, 0)),
        ("+03", datetime(2024, 7, 1, 9, 0)),
        ("-0330", datetime(2024, 7, 1, 15, 30)),
        ("EDT", datetime(2024, 7, 1, 16, 0)),
    ],
)
def test_log_timezone_abbreviations_and_offsets(con, tmp_path, zone, expected):
    f = write(
        tmp_path / "pg.log",
        f"2024-07-01 12:00:00.000 {zone} [1] LOG:  duration: 1 ms  statement: SELECT 1\n",
    )
    load.load(con, queries=f, query_format="postgres", log_line_prefix="%m [%p] ")
    assert con.execute("select ts from db_queries").fetchall() == [(expected,)]


def test_lines_that_match_no_prefix_are_one_clear_error(con, tmp_path):
    before = load.load(con, auth=write(tmp_path / "a.jsonl", ""))  # an empty, valid load
    assert before.files[0].rows_read == 0
    f = write(tmp_path / "pg.log", "12:00:01 db LOG duration 1 ms SELECT 1\nsecond line\n")
    with pytest.raises(errors.LoadError) as err:
        load.load(con, queries=f, query_format="postgres")
    message = str(err.value)
    assert "no line looks like a PostgreSQL log entry" in message
    assert "first line: '12:00:01 db LOG duration 1 ms SELECT 1'" in message
    with pytest.raises(errors.LoadError) as err:
        load.load(
            con,
            queries=write(tmp_path / "pg2.log", pg_line("duration: 1 ms  statement: SELECT 1")),
            query_format="postgres",
            log_line_prefix="%t [%p]: user=%u ",
        )
    assert "then expects 'user=' but has '[1-1] user=alice,db=shop" in str(err.value)
    # the load is one transaction: nothing of the failed files is in the database
    assert con.execute("select count(*) from sources").fetchone() == (1,)
    assert con.execute("select count(*) from db_queries").fetchone() == (0,)


def test_syslog_parts_tabs_split_lines_and_interleaved_processes(con, tmp_path):
    text = (
        "Jan 10 12:00:00 db1 postgres[100]: [1-1] user=app,db=shop LOG:  duration: 1.5 ms  "
        "statement: SELECT *\n"
        "Jan 10 12:00:00 db1 postgres[101]: [7-1] user=app,db=shop LOG:  connection received\n"
        "Jan 10 12:00:00 db1 postgres[100]: [1-2] #011FROM users WHERE id = 1\n"
        "Jan 10 12:00:00 db1 postgres[100]: [1-3]  AND name = 'a#011b'\n"
        "Jan 10 12:00:01 db1 postgres[101]: [8-1] user=app,db=shop FATAL:  no pg_hba.conf "
        'entry for host "10.0.0.9", user "app", database "shop"\n'
    )
    f = write(tmp_path / "pg.log", text)
    result = load.load(con, queries=f, query_format="postgres", year=2023)
    fr = result.files[0]
    assert fr.notes[0] == "PostgreSQL syslog log, log_line_prefix 'user=%u,db=%d '"
    assert "syslog timestamps have no year: 2023 as given (--year)" in fr.notes
    assert con.execute("select line, ts, statement, pid, db_host from db_queries").fetchall() == [
        (
            1,
            datetime(2023, 1, 10, 12),
            "SELECT *\nFROM users WHERE id = 1 AND name = 'a\tb'",
            "100",
            "db1",
        )
    ]
    assert [(e[0], e[1]) for e in events(con)] == [(2, "LOG"), (5, "FATAL")]


def test_syslog_year_from_the_file_date_with_a_new_year_inside(con, tmp_path):
    text = (
        "Dec 31 23:59:59 db1 postgres[1]: [1-1] LOG:  duration: 1 ms  statement: SELECT 1\n"
        "Jan  1 00:00:01 db1 postgres[1]: [2-1] LOG:  duration: 1 ms  statement: SELECT 2\n"
    )
    f = write(tmp_path / "pg.log", text)
    stamp = datetime(2025, 2, 1).timestamp()
    os.utime(f, (stamp, stamp))
    result = load.load(con, queries=f, query_format="postgres")
    assert con.execute("select ts from db_queries order by line").fetchall() == [
        (datetime(2024, 12, 31, 23, 59, 59),),
        (datetime(2025, 1, 1, 0, 0, 1),),
    ]
    assert any("modification date (2025-02" in n for n in result.files[0].notes)
    # with --year, the year of the first line; the turn to January adds one
    for table in ("sources", "db_queries"):
        con.execute(f"delete from {table}")  # noqa: S608 - fixed names
    load.load(con, queries=f, query_format="postgres", year=2019)
    assert con.execute("select ts from db_queries order by line").fetchall() == [
        (datetime(2019, 12, 31, 23, 59, 59),),
        (datetime(2020, 1, 1, 0, 0, 1),),
    ]


CSVLOG = (
    '2021-01-22 10:03:22.785 CET,"alice","shop",1486,"127.0.0.1:52306",6009c305.5ce,3,"SELECT",'
    "2021-01-21 19:08:05 CET,14/10903,0,LOG,00000,"
    '"duration: 26.120 ms  execute S_65: select * from f($1, ""x"")","parameters: $1 = \'1\'"'
    ',,,,,,,,"JDBC"\n'
    '2021-01-22 10:03:23.000 CET,"alice","shop",1486,"127.0.0.1:52306",6009c305.5ce,4,"SELECT",'
    "2021-01-21 19:08:05 CET,14/10904,0,LOG,00000,"
    '"duration: 1.000 ms  statement: SELECT a,\n       b\nFROM t",,,,,,,,,"psql","client '
    'backend",,-123\n'
    '2021-01-22 10:03:24.000 CET,"bob","shop",1487,"10.0.0.9:1",6009c305.5cf,1,"authentication",'
    "2021-01-21 19:08:05 CET,3/1,0,FATAL,28P01,"
    '"password authentication failed for user ""bob""",,,,,,,,,""\n'
    "2021-01-22 10:03:25.000 CET,broken,record\n"
)


def test_csvlog_records_span_lines_and_keep_their_columns(con, tmp_path):
    f = write(tmp_path / "postgresql.csv", CSVLOG)
    result = load.load(con, queries=f, query_format="postgres")
    fr = result.files[0]
    assert fr.notes[0] == "PostgreSQL csvlog log"
    assert (fr.rows_read, fr.rows_loaded, fr.rows_rejected) == (3, 2, 1)
    assert con.execute(
        "select line, ts, duration_ms, statement, caller, client_ip, query_id from db_queries "
        "order by line"
    ).fetchall() == [
        (
            1,
            datetime(2021, 1, 22, 9, 3, 22, 785000),
            26.12,
            'select * from f($1, "x")',
            "JDBC",
            "127.0.0.1",
            None,
        ),
        (
            2,
            datetime(2021, 1, 22, 9, 3, 23),
            1.0,
            "SELECT a,\n       b\nFROM t",
            "psql",
            "127.0.0.1",
            "-123",
        ),
    ]
    assert events(con) == [
        (5, "FATAL", 'password authentication failed for user "bob"', "bob", "shop", "10.0.0.9")
    ]
    assert con.execute("select line, reason from rejects").fetchall() == [
        (6, "wrong column count: expected 23 to 26, got 3")
    ]


def test_jsonlog_and_cloudnativepg_records(con, tmp_path):
    native = {
        "timestamp": "2024-06-27 00:00:07.369 CEST",
        "user": "app",
        "dbname": "shop",
        "pid": 58151,
        "remote_host": "10.0.0.5",
        "error_severity": "LOG",
        "message": "duration: 3.5 ms  statement: SELECT 1\nFROM t",
        "application_name": "auth",
        "query_id": 99,
    }
    cnpg = {
        "level": "info",
        "logger": "postgres",
        "msg": "record",
        "record": {
            "log_time": "2024-06-27 00:00:08.000 UTC",
            "user_name": "app",
            "database_name": "shop",
            "process_id": "600",
            "connection_from": "10.0.0.6:5555",
            "error_severity": "FATAL",
            "message": 'password authentication failed for user "app"',
        },
    }
    operator = {"level": "info", "msg": "starting up"}
    text = "\n".join(json.dumps(d) for d in (native, cnpg, operator)) + "\n"
    f = write(tmp_path / "pg.json", text)
    result = load.load(con, queries=f, query_format="postgres")
    fr = result.files[0]
    assert fr.notes[0] == "PostgreSQL jsonlog log"
    assert con.execute(
        "select ts, duration_ms, statement, caller, pid, query_id, client_ip from db_queries"
    ).fetchall() == [
        (
            datetime(2024, 6, 26, 22, 0, 7, 369000),
            3.5,
            "SELECT 1\nFROM t",
            "auth",
            "58151",
            "99",
            "10.0.0.5",
        )
    ]
    assert events(con) == [
        (2, "FATAL", 'password authentication failed for user "app"', "app", "shop", "10.0.0.6")
    ]
    assert fr.notes[1:] == [
        "1 line is not a PostgreSQL entry (e.g. an operator's own message): skipped",
        "1 other log entry not query records (FATAL: 1); kept in server_events",
    ]


SLOW = """\
/usr/sbin/mysqld, Version: 5.7.12-log ((Ubuntu)). started with:
Tcp port: 3306  Unix socket: /var/run/mysqld/mysqld.sock
Time                 Id Command    Argument
# Time: 071218 11:48:27 # User@Host: app[app] @ web1 [10.0.0.1]  Id:     3
# Query_time: 0.500000  Lock_time: 0.000100 Rows_sent: 7  Rows_examined: 70
use shop;
SET timestamp=1197996507;
SELECT *
FROM users
WHERE id = 1;
/usr/sbin/mysqld, Version: 5.7.12-log ((Ubuntu)). started with:
Tcp port: 3306  Unix socket: /var/run/mysqld/mysqld.sock
Time                 Id Command    Argument
# User@Host: app[app] @ web1 [10.0.0.1]  Id:     4
# Query_time: 0.001  Lock_time: 0.0 Rows_sent: 0  Rows_examined: 0
SET timestamp=1197996508;
# administrator command: Ping;
# Time: 2016-07-20T18:13:25.698433Z
# User@Host: root[root] @ localhost []  Id:     5
# Query_time: 0.25  Lock_time: 0.0 Rows_sent: 1  Rows_examined: 1
SELECT 2;
# User@Host: cut[cut] @ localhost []
"""


def test_mysql_slow_log_entries_banners_and_a_truncated_entry(con, tmp_path):
    f = write(tmp_path / "slow.log", SLOW)
    result = load.load(con, queries=f, query_format="mysql-slow")
    fr = result.files[0]
    assert (fr.rows_read, fr.rows_loaded, fr.rows_rejected) == (4, 3, 1)
    assert fr.notes == ["6 other lines not query entries (server start-up banners: 6)"]
    assert con.execute(
        "select line, ts, duration_ms, statement, fingerprint, rows, database, db_user, "
        "client_ip, thread_id, lock_time_ms, rows_examined from db_queries order by line"
    ).fetchall() == [
        (
            4,
            datetime(2007, 12, 18, 16, 48, 27),
            500.0,
            "SELECT *\nFROM users\nWHERE id = 1;",
            "select * from users where id = ?",
            7,
            "shop",
            "app",
            "10.0.0.1",
            "3",
            "0.1",
            "70",
        ),
        (
            14,
            datetime(2007, 12, 18, 16, 48, 28),
            1.0,
            "# administrator command: Ping;",
            "",
            0,
            "shop",
            "app",
            "10.0.0.1",
            "4",
            "0.0",
            "0",
        ),
        (
            18,
            datetime(2016, 7, 20, 18, 13, 25, 698433),
            250.0,
            "SELECT 2;",
            "select ?",
            1,
            "shop",
            "root",
            "localhost",
            "5",
            "0.0",
            "1",
        ),
    ]
    assert con.execute("select line, reason from rejects").fetchall() == [
        (22, "missing required field duration_ms")
    ]


def test_mysql_time_without_set_timestamp_is_the_last_time_line(con, tmp_path):
    text = (
        "# Time: 131128  1:05:31\n# User@Host: a[a] @ h []\n"
        "# Query_time: 1  Lock_time: 0 Rows_sent: 0  Rows_examined: 0\nSELECT 1;\n"
        "# User@Host: a[a] @ h []\n"
        "# Query_time: 1  Lock_time: 0 Rows_sent: 0  Rows_examined: 0\nSELECT 2;\n"
    )
    f = write(tmp_path / "slow.log", text)
    load.load(con, queries=f, query_format="mysql-slow", source_timezone="America/New_York")
    assert con.execute("select ts from db_queries order by line").fetchall() == [
        (datetime(2013, 11, 28, 6, 5, 31),),
        (datetime(2013, 11, 28, 6, 5, 31),),
    ]


def test_mysql_iso_time_line_wins_over_set_timestamp_and_lock_time_is_exact(con, tmp_path):
    text = (
        "# Time: 2019-03-24T14:01:47.811234Z\n# User@Host: a[a] @ h []\n"
        "# Query_time: 2.475469  Lock_time: 0.000090 Rows_sent: 0  Rows_examined: 0\n"
        "SET timestamp=1553436105;\nSELECT 1;\n"
        # no '# Time:' of its own: the carried one is another entry's, SET timestamp wins
        "# User@Host: a[a] @ h []\n"
        "# Query_time: 0.000001  Lock_time: 0.000287 Rows_sent: 0  Rows_examined: 0\n"
        "SET timestamp=1553436200;\nSELECT 2;\n"
    )
    f = write(tmp_path / "slow.log", text)
    load.load(con, queries=f, query_format="mysql-slow")
    assert con.execute(
        "select ts, duration_ms, lock_time_ms from db_queries order by line"
    ).fetchall() == [
        (datetime(2019, 3, 24, 14, 1, 47, 811234), 2475.469, "0.09"),
        (datetime(2019, 3, 24, 14, 3, 20), 0.001, "0.287"),
    ]


def test_a_file_that_is_no_slow_log_is_one_clear_error(con, tmp_path):
    f = write(tmp_path / "slow.log", pg_line("duration: 1 ms  statement: SELECT 1"))
    with pytest.raises(errors.LoadError, match="no '# Time:'.*not a MySQL slow query log"):
        load.load(con, queries=f, query_format="mysql-slow")


SSHD = """\
Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186
Dec 10 06:55:46 LabSZ sshd[24200]: input_userauth_request: invalid user webmaster [preauth]
Dec 10 06:55:46 LabSZ sshd[24200]: pam_unix(sshd:auth): check pass; user unknown
Dec 10 06:55:46 LabSZ sshd[24200]: pam_unix(sshd:auth): authentication failure; logname= uid=0 \
euid=0 tty=ssh ruser= rhost=173.234.31.186
Dec 10 06:55:48 LabSZ sshd[24200]: Failed password for invalid user webmaster from 173.234.31.186\
 port 38926 ssh2
Dec 10 07:13:31 LabSZ sshd[24227]: pam_unix(sshd:auth): authentication failure; logname= uid=0 \
euid=0 tty=ssh ruser= rhost=5.36.59.76  user=root
Dec 10 07:13:43 LabSZ sshd[24227]: Failed password for root from 5.36.59.76 port 42393 ssh2
Dec 10 07:13:56 LabSZ sshd[24227]: message repeated 2 times: [ Failed password for root from \
5.36.59.76 port 42393 ssh2]
Dec 10 07:13:56 LabSZ sshd[24227]: PAM 2 more authentication failures; logname= uid=0 euid=0 \
tty=ssh ruser= rhost=5.36.59.76  user=root
Dec 10 09:32:20 LabSZ sshd[24680]: Accepted publickey for fztu from 119.137.62.142 port 49116 ssh2
Dec 10 09:32:20 LabSZ sshd[24680]: pam_unix(sshd:session): session opened for user fztu by (uid=0)
Dec 10 09:40:00 LabSZ sshd[24700]: Failed publickey for carol from 10.0.0.1 port 1 ssh2
Dec 10 10:00:00 LabSZ sshd(pam_unix)[19939]: authentication failure; logname= uid=0 euid=0 \
tty=NODEVssh ruser= rhost=218.188.2.4
Dec 10 10:00:05 LabSZ CRON[1]: pam_unix(cron:session): session opened for user root
this line is no syslog line
"""


def test_sshd_attempts_codes_and_companion_lines(con, tmp_path):
    f = write(tmp_path / "auth.log", SSHD)
    result = load.load(con, auth=f, auth_format="sshd", year=2024)
    fr = result.files[0]
    # 14 lines, one of them 2 failures: 7 attempts and 9 lines that are none
    assert (fr.rows_read, fr.rows_loaded, fr.rows_rejected, fr.rows_skipped) == (16, 7, 0, 9)
    assert fr.skipped == {
        "sshd, the same attempt as another line of its process": 3,
        "sshd, not an attempt (connections, key exchange, disconnects…)": 4,
        "another program's syslog line": 1,
        "not a syslog line": 1,
    }
    assert con.execute(
        "select line, ts, user_id, outcome, request_id, error_code, client_ip, event, "
        "auth_method from auth_events order by line, ts"
    ).fetchall() == [
        (
            5,
            datetime(2024, 12, 10, 6, 55, 48),
            "webmaster",
            "failure",
            "24200",
            "user_not_found",
            "173.234.31.186",
            "failed",
            "password",
        ),
        (
            7,
            datetime(2024, 12, 10, 7, 13, 43),
            "root",
            "failure",
            "24227",
            "invalid_password",
            "5.36.59.76",
            "failed",
            "password",
        ),
        (
            8,
            datetime(2024, 12, 10, 7, 13, 56),
            "root",
            "failure",
            "24227",
            "invalid_password",
            "5.36.59.76",
            "failed",
            "password",
        ),
        (
            8,
            datetime(2024, 12, 10, 7, 13, 56),
            "root",
            "failure",
            "24227",
            "invalid_password",
            "5.36.59.76",
            "failed",
            "password",
        ),
        (
            10,
            datetime(2024, 12, 10, 9, 32, 20),
            "fztu",
            "success",
            "24680",
            None,
            "119.137.62.142",
            "accepted",
            "publickey",
        ),
        (
            12,
            datetime(2024, 12, 10, 9, 40),
            "carol",
            "failure",
            "24700",
            "invalid_credentials",
            "10.0.0.1",
            "failed",
            "publickey",
        ),
        # a PAM line with no Failed line after it is the attempt; no user= means none exists
        # (and without ruser= the name asked for is not known: no user_id)
        (
            13,
            datetime(2024, 12, 10, 10),
            None,
            "failure",
            "19939",
            "user_not_found",
            "218.188.2.4",
            "pam_failure",
            None,
        ),
    ]
    notes = "\n".join(fr.notes)
    assert "3 'Invalid user' / PAM / closing lines are the same attempt" in notes
    assert "'message repeated N times' lines: 1, each counted as N failures" in notes
    assert (
        "9 lines skipped, not auth attempts (sshd, not an attempt (connections, key exchange, "
        "disconnects…): 4, sshd, the same attempt as another line of its process: 3, "
        "another program's syslog line: 1, not a syslog line: 1)"
    ) in notes
    assert "2024 as given" in notes


def test_an_auth_log_that_is_no_syslog_is_one_clear_error(con, tmp_path):
    f = write(tmp_path / "auth.log", '{"ts": 1}\n')
    with pytest.raises(errors.LoadError, match="no line is a syslog line"):
        load.load(con, auth=f, auth_format="sshd")


def test_a_format_of_the_other_kind_or_unknown_is_refused(con, tmp_path):
    f = write(tmp_path / "auth.log", SSHD)
    with pytest.raises(errors.LoadError, match="sshd logs hold auth, not queries"):
        load.load(con, queries=f, query_format="sshd")
    with pytest.raises(errors.LoadError, match="unknown format 'nginx'"):
        load.load(con, auth=f, auth_format="nginx")


@pytest.mark.parametrize("chunk_bytes", [40, 1000])
@pytest.mark.parametrize(
    ("fmt", "name", "text"),
    [
        ("postgres", "pg.log", STDERR * 3),
        ("postgres", "pg.csv", CSVLOG * 3),
        (
            "postgres",
            "pg.syslog",
            "".join(
                f"Jan 10 12:00:0{i} db1 postgres[{100 + i % 2}]: [{i}-1] LOG:  duration: 1 ms"
                f"  statement: SELECT {i}\nJan 10 12:00:0{i} db1 postgres[{100 + i % 2}]: "
                f"[{i}-2] #011FROM t{i}\n"
                for i in range(1, 8)
            ),
        ),
        ("mysql-slow", "slow.log", SLOW * 3),
        ("sshd", "auth.log", SSHD * 3),
    ],
)
def test_records_crossing_chunk_boundaries_are_read_whole(
    tmp_path, monkeypatch, fmt, name, text, chunk_bytes
):
    from analysis import db

    def load_all(path: Path) -> tuple:
        con = db.connect(":memory:")
        kind = "auth" if fmt == "sshd" else "queries"
        args = {kind: path, f"{'auth' if kind == 'auth' else 'query'}_format": fmt, "year": 2024}
        result = load.load(con, **args)
        table = "auth_events" if kind == "auth" else "db_queries"
        rows = con.execute(
            f"select * exclude (source_id) from {table} order by all"  # noqa: S608 - fixed
        ).fetchall()
        rejects = con.execute("select line, reason from rejects order by all").fetchall()
        ev = []
        if fmt == "postgres":
            ev = con.execute("select * exclude (source_id) from server_events order by all")
            ev = ev.fetchall()
        con.close()
        return result.totals(kind), rows, rejects, ev

    f = write(tmp_path / name, text)
    whole = load_all(f)
    monkeypatch.setattr(lines, "CHUNK_BYTES", chunk_bytes)
    assert load_all(f) == whole
    assert whole[0]["rows_read"] > 0


def test_compressed_logs_and_the_command_line(tmp_path, capsys):
    gz = tmp_path / "pg.log.gz"
    gz.write_bytes(gzip.compress(STDERR.encode()))
    bz = tmp_path / "auth.log.bz2"
    bz.write_bytes(bz2.compress(SSHD.encode()))
    database = tmp_path / "x.duckdb"
    code = cli.main(
        [
            "-q",
            "load",
            "--database",
            str(database),
            "--queries",
            str(gz),
            "--query-format",
            "postgres",
            "--log-line-prefix",
            PREFIX,
            "--auth",
            str(bz),
            "--auth-format",
            "sshd",
            "--year",
            "2022",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert f"{bz}: 16 read, 7 loaded, 0 rejected, 9 skipped (sshd, loaded)" in out
    assert f"{gz}: 3 read, 3 loaded, 0 rejected (postgres, loaded)" in out
    assert "2022 as given (--year)" in out


def test_sshd_stage_classifies_each_line_once(con, tmp_path):
    f = write(tmp_path / "auth.log", SSHD)
    sshd.stage(con, f, year=2024)
    by_kind = con.execute(
        "select kind, count(*) from _fmt_stage where kind is not null group by kind"
    ).fetchall()
    assert dict(by_kind) == {
        "invalid_user": 1,
        "pam_failure": 3,
        "failed": 3,
        "repeated": 1,
        "accepted": 1,
    }


def test_rfc3339_syslog_times_need_no_year(con, tmp_path):
    text = (
        "2024-12-10T06:55:46.123456+01:00 bastion sshd[1]: Failed password for root from "
        "1.2.3.4 port 22 ssh2\n"
        "2024-12-10T06:55:47+0100 bastion sshd-session[2]: Accepted password for root from "
        "1.2.3.4 port 22 ssh2\n"
    )
    f = write(tmp_path / "auth.log", text)
    result = load.load(con, auth=f, auth_format="sshd")
    assert con.execute("select ts, outcome, host from auth_events order by ts").fetchall() == [
        (datetime(2024, 12, 10, 5, 55, 46, 123456), "failure", "bastion"),
        (datetime(2024, 12, 10, 5, 55, 47), "success", "bastion"),
    ]
    assert not any("no year" in n for n in result.files[0].notes)


@pytest.mark.parametrize(
    ("kind", "fmt"), [("queries", "postgres"), ("queries", "mysql-slow"), ("auth", "sshd")]
)
def test_an_empty_server_log_loads_nothing_without_error(con, tmp_path, kind, fmt):
    f = write(tmp_path / "empty.log", "")
    fmt_key = "auth_format" if kind == "auth" else "query_format"
    result = load.load(con, **{kind: f, fmt_key: fmt})
    assert result.totals(kind) == {
        "rows_read": 0,
        "rows_loaded": 0,
        "rows_rejected": 0,
        "rows_skipped": 0,
    }


def test_a_server_log_without_a_format_is_told_by_its_content(con, tmp_path):
    f = write(tmp_path / "postgresql.log", STDERR)
    res = load.load(con, queries=f).files[0]
    assert res.format == "postgres" and res.rows_loaded > 0
    assert any(n.startswith("read as PostgreSQL server log (postgres): ") for n in res.notes)


def test_a_log_that_no_format_fits_names_the_formats_and_the_flag(con, tmp_path):
    f = write(tmp_path / "notes.log", "hello\nworld\n")
    with pytest.raises(errors.LoadError, match="--query-format .*postgres, mysql-slow"):
        load.load(con, queries=f)


def test_a_postgres_entry_of_many_lines_counts_once_when_the_format_is_told():
    """PostgreSQL writes a tab after each newline of a message: those lines go on an entry."""
    head = "2024-01-19 10:00:0{} UTC [12] LOG:  statement: create table t{} ("
    sample = []
    for i in range(2):
        sample += [head.format(i, i)] + [f"\tcol_{c} int," for c in range(30)] + ["\t)"]
    assert postgres.sniff(sample) == (
        "2 of the first 2 lines (tab-indented ones aside) are PostgreSQL entries ('LOG:  …')"
    )
    # the same lines without PostgreSQL's tab: two entry-like lines of 64 are not a log
    assert postgres.sniff([s.lstrip("\t") for s in sample]) is None


def test_sshd_is_told_by_any_program_named_sshd_as_the_reader_takes_them():
    lines_ = [
        "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; rhost=10.0.0.1",
        "Jun 14 15:16:02 combo sshd-session[19940]: Failed password for root from 10.0.0.2",
        "Jun 14 15:16:03 combo sshd[19941]: Accepted password for bob from 10.0.0.3",
    ]
    assert sshd.sniff(lines_) == "3 of the first 3 lines are sshd syslog lines"
    assert sshd.sniff(["Jun 14 15:16:01 combo su(pam_unix)[1]: authentication failure;"]) is None


JOURNAL = [
    # (seconds after 2024-01-19 10:30 UTC, program, pid, message)
    (0, "sshd", 101, "Accepted password for ann from 203.0.113.5 port 50000 ssh2"),
    (60, "sshd", 102, "Failed password for bob from 203.0.113.6 port 50001 ssh2"),
    (120, "sshd", 103, "Invalid user eve from 203.0.113.7 port 50002"),
    (121, "sshd", 103, "Failed password for invalid user eve from 203.0.113.7 port 50002 ssh2"),
    (130, "systemd", 1, "Started Session 4 of User ann."),
    (140, "sshd", 104, "Connection closed by 203.0.113.8 port 50003 [preauth]"),
]


def test_a_journald_json_export_of_sshd_loads_as_its_syslog_lines_would(con, tmp_path):
    start = 1705660200  # 2024-01-19T10:30:00Z
    entries = [
        {
            "__REALTIME_TIMESTAMP": str((start + s) * 1_000_000 + 250),
            "__MONOTONIC_TIMESTAMP": "123",
            "_HOSTNAME": "bastion",
            "SYSLOG_IDENTIFIER": prog,
            "_PID": str(pid),
            "PRIORITY": "6",
            "MESSAGE": msg,
        }
        for s, prog, pid, msg in JOURNAL
    ]
    journal = write(tmp_path / "sshd.json", "".join(json.dumps(e) + "\n" for e in entries))
    syslog_lines = "".join(
        f"2024-01-19T10:{30 + s // 60:02d}:{s % 60:02d}.000250+00:00 bastion {p}[{pid}]: {m}\n"
        for s, p, pid, m in JOURNAL
    )
    text = write(tmp_path / "sshd.log", syslog_lines)
    got = load.load(con, auth=journal).files[0]
    assert got.format == "sshd"  # recognised by content
    # ann's success, bob's failure, eve's one attempt; systemd's line and the close skipped
    assert (got.rows_read, got.rows_loaded, got.rows_rejected) == (6, 3, 0)
    rows = (
        "select ts, user_id, outcome, error_code, client_ip from auth_events where source_id = ?"
    )
    from_journal = con.execute(rows + " order by ts", [got.source_id]).fetchall()
    want = load.load(con, auth=text, auth_format="sshd").files[0]
    assert from_journal == con.execute(rows + " order by ts", [want.source_id]).fetchall()
    assert [r[1:3] for r in from_journal] == [
        ("ann", "success"),
        ("bob", "failure"),
        ("eve", "failure"),
    ]
    assert from_journal[0][0] == datetime(2024, 1, 19, 10, 30, 0, 250)


def test_an_empty_statement_is_a_query_with_a_fingerprint_of_its_own(con, tmp_path):
    # a client's ping: 'statement: ' with nothing after it; pgbadger counts it as a query
    text = (
        pg_line("duration: 0.010 ms  statement: ", n=1)
        + pg_line("duration: 1.5 ms  statement: SELECT 1", n=2)
        + pg_line("duration: 0.020 ms  statement: ", n=3)
    )
    fr = load.load(con, queries=write(tmp_path / "pg.log", text), query_format="postgres").files[0]
    assert (fr.rows_read, fr.rows_loaded, fr.rows_rejected) == (3, 3, 0)
    assert [(q[2], q[3], q[4]) for q in queries(con)] == [
        (0.01, None, "(empty statement)"),
        (1.5, "SELECT 1", "select ?"),
        (0.02, None, "(empty statement)"),
    ]
