"""The log_line_prefix inferred from the lines, on logs generated with a known prefix.

``render`` writes a line's prefix the way PostgreSQL's elog.c does: session-only escapes
(%u %d %a %r %h %i) are empty in a background process, and %q ends the prefix there. The
sessions' values are chosen here, so the right split of every line is known: each test
loads a generated log with no prefix given and checks the prefix the load inferred, what
its note says, and every field of every query row.
"""

from __future__ import annotations

import json
import re
from datetime import datetime

import pytest

from analysis.ingest import loader as load
from analysis.ingest.formats import pg_infer
from tests.conftest import write

SESSIONS = [
    # user, database, application, client, port, pid
    ("app", "shop", "auth-service", "10.0.0.7", 52834, 4101),
    ("report_ro", "shop_dw", "metabase v0.48", "10.0.3.21", 40112, 4102),
    ("postgres", "postgres", "psql", "[local]", None, 4103),
]
BACKGROUND_PID = 77


def render(prefix: str, *, at: datetime, n: int, session: tuple | None) -> str:
    """One line's prefix as PostgreSQL writes it (``session`` None: a background process)."""
    out = []
    pos = 0
    for m in re.finditer(r"%(-?\d+)?(.)", prefix):
        out.append(prefix[pos : m.start()])
        pos = m.end()
        letter = m.group(2)
        user, dbname, app, host, port, pid = session or ("", "", "", "", None, BACKGROUND_PID)
        if letter == "q":
            if session is None:
                return "".join(out)
            continue
        value = {
            "m": at.strftime("%Y-%m-%d %H:%M:%S.") + f"{at.microsecond // 1000:03d} UTC",
            "t": at.strftime("%Y-%m-%d %H:%M:%S UTC"),
            "s": "2024-01-19 10:00:00 UTC",
            "n": f"{at.timestamp():.3f}",
            "p": str(pid),
            "l": str(n),
            "c": f"65aa3a80.{pid:x}",
            "v": f"3/{n}" if session else "",
            "x": "0",
            "e": "00000",
            "Q": str(-4266247047529477710 if session else 0),
            "b": "client backend" if session else "checkpointer",
            "u": user,
            "d": dbname,
            "a": app,
            "h": host,
            "r": host if port is None else f"{host}({port})",
            "i": "SELECT" if session else "",
            "%": "%",
        }[letter]
        out.append(value)
    out.append(prefix[pos:])
    return "".join(out)


def generate(prefix: str, lines: int = 60, sessions=SESSIONS) -> tuple[str, list[dict]]:
    """A log of queries by the sessions and checkpoints in between; the queries' fields."""
    text, queries = [], []
    for i in range(lines):
        at = datetime(2024, 1, 19, 10, 30, i % 60, 123000)
        if i % 5 == 4:
            text.append(
                render(prefix, at=at, n=i, session=None) + "LOG:  checkpoint starting: time"
            )
            continue
        s = sessions[i % len(sessions)]
        head = render(prefix, at=at, n=i, session=s)
        if i % 7 == 0:
            text.append(f"{head}LOG:  duration: 1.{i:03d} ms  statement: SELECT id,")
            text.append("\t       name")
            text.append(f"\tFROM users WHERE id = {i}")
            statement = f"SELECT id,\n       name\nFROM users WHERE id = {i}"
        else:
            text.append(
                f"{head}LOG:  duration: 1.{i:03d} ms  execute <unnamed>: SELECT ${i % 3 + 1}"
            )
            statement = f"SELECT ${i % 3 + 1}"
        queries.append({"line": len(text) - (2 if i % 7 == 0 else 0), "session": s,
                        "statement": statement, "at": at})  # fmt: skip
    return "\n".join(text) + "\n", queries


PREFIXES = [
    "%m [%p] %q%u@%d/%a ",  # the documentation's example, and real PostgreSQL 15's
    "%t:%r:%u@%d:[%p]:",  # AWS RDS and Aurora (fixed by the service)
    "%t-%c-",  # Azure Database for PostgreSQL's default
    "%m [%p] %q%u@%d ",  # Debian's default
    "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ",  # pgbadger's documentation
    "%t [%p]: [%l-1] db=%d,user=%u,app=%a,client=%h ",
    "%m [%p] [queryid=%Q] %u@%d ",
    "%t [%p]: [%l-1] [%x] usr=%u,db=%d,appli=%a ",
    "%m %u@%d %p %r %a : ",
    "%n|%p|%u|%d|%r|",
    "%m [%p] %q[%c] %u@%d/%a %r ",
    "%m [%b] [%p] %q%u@%d ",
    "%t [%p-%l] %q%u@%d ",
    "< %m >",
    "%m [%p] ",
]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_a_generated_log_gives_back_its_prefix_and_fields(con, tmp_path, prefix):
    text, expected = generate(prefix)
    f = write(tmp_path / "postgresql.log", text)
    fr = load.load(con, queries=f, query_format="postgres").files[0]
    assert fr.notes[0] == f"PostgreSQL stderr log, log_line_prefix {prefix!r}"
    inferred = [n for n in fr.notes if n.startswith("log_line_prefix")]
    assert inferred and inferred[0].startswith(f"log_line_prefix {prefix!r} inferred"), fr.notes
    assert not any(n.startswith("two prefixes") for n in fr.notes), fr.notes
    assert (fr.rows_read, fr.rows_loaded) == (len(expected), len(expected))
    cols = {r[0] for r in con.execute("describe db_queries").fetchall()}
    rows = con.execute("select * from db_queries order by line").fetchdf().to_dict("records")
    for want, got in zip(expected, rows, strict=True):
        user, dbname, app, host, _port, pid = want["session"]
        assert got["line"] == want["line"]
        assert got["statement"] == want["statement"]
        if "%m" in prefix or "%n" in prefix:
            assert got["ts"] == want["at"]
        elif "%t" in prefix:
            assert got["ts"] == want["at"].replace(microsecond=0)
        field = {"%u": ("db_user", user), "%d": ("database", dbname), "%a": ("caller", app),
                 "%p": ("pid", str(pid)), "%c": ("session_id", f"65aa3a80.{pid:x}"),
                 "%Q": ("query_id", "-4266247047529477710")}  # fmt: skip
        for escape, (col, value) in field.items():
            if escape in prefix:
                assert got[col] == value, (col, got)
            elif col != "caller":
                assert col not in cols
        if "%r" in prefix or "%h" in prefix:
            assert got["client_ip"] == host
        if "%a" not in prefix:
            assert got["caller"] is None


def test_the_application_after_a_slash_is_not_swallowed_into_the_database(con, tmp_path):
    # issue 14: detection by a list chose '%m [%p] %q%u@%d ', read the database as
    # 'shop/auth-service' and lost the application name, silently
    prefix = "%m [%p] %q%u@%d/%a "
    # applications without spaces: the swallowing reading then starts every line too
    text, _ = generate(prefix, sessions=[SESSIONS[0], SESSIONS[2]])
    fits = pg_infer.fit(con, text.splitlines(), pg_infer.candidates(text.splitlines()))
    texts = [f.prefix.text for f in fits]
    assert texts[0] == prefix
    # the swallowing reading explains as many lines, and loses on the separators it takes
    swallowing = next(f for f in fits if f.prefix.text == "%m [%p] %q%u@%d ")
    assert (swallowing.lines, fits[0].lines) == (fits[0].lines, fits[0].lines)
    assert swallowing.swallowed > fits[0].swallowed == 0
    assert swallowing.first["database"] == "shop/auth-service"
    assert fits[0].first == {
        "ts": "2024-01-19 10:30:00.123 UTC",
        "pid": "4101",
        "db_user": "app",
        "database": "shop",
        "application": "auth-service",
    }
    fr = load.load(con, queries=write(tmp_path / "pg.log", text), query_format="postgres")
    note = fr.files[0].notes[1]
    assert note == (
        f"log_line_prefix {prefix!r} inferred from the lines (it starts 60 of the first 60); "
        "on line 1 it reads time '2024-01-19 10:30:00.123 UTC', pid '4101', user 'app', "
        "database 'shop', application 'auth-service'; give --log-line-prefix if that is wrong"
    )
    assert con.execute("select count(distinct caller) from db_queries").fetchone() == (2,)


def test_two_readings_that_explain_the_lines_equally_are_both_named(con, tmp_path):
    # a lone name without a key may be a user, a database or an application
    text = "".join(
        f"2024-01-19 10:30:0{i}.000 UTC [7{i}] shop LOG:  duration: 1 ms  statement: SELECT {i}\n"
        for i in range(3)
    )
    fr = load.load(con, queries=write(tmp_path / "pg.log", text), query_format="postgres")
    notes = fr.files[0].notes
    assert notes[0] == "PostgreSQL stderr log, log_line_prefix '%m [%p] %u '"
    assert notes[2] == (
        "two prefixes explain the lines equally: '%m [%p] %u ' (used: time "
        "'2024-01-19 10:30:00.000 UTC', pid '70', user 'shop') and '%m [%p] %d ' (time "
        "'2024-01-19 10:30:00.000 UTC', pid '70', database 'shop'); give --log-line-prefix "
        "to choose"
    )
    # the override: the same lines read with the prefix as set in postgresql.conf
    con.execute("delete from db_queries; delete from sources")
    load.load(
        con, queries=tmp_path / "pg.log", query_format="postgres", log_line_prefix="%m [%p] %d "
    )
    assert con.execute("select distinct database from db_queries").fetchall() == [("shop",)]


def test_syslog_with_an_inner_prefix_of_keys(con, tmp_path):
    # issue 14: syslog with 'db=%d,user=%u,app=%a,client=%h ' was refused
    lines = []
    for i in range(12):
        user, dbname, app, host, _port, pid = SESSIONS[i % 3]
        body = f"db={dbname},user={user},app={app},client={host} "
        lines.append(
            f"Jan 19 10:30:{i:02d} db1 postgres[{pid}]: [{i + 1}-1] {body}LOG:  duration: "
            f"0.5{i:02d} ms  statement: SELECT {i}"
        )
        lines.append(f"Jan 19 10:30:{i:02d} db1 postgres[{pid}]: [{i + 1}-2] {body}DETAIL:  x")
    # without %q, a background process prints the keys with empty values
    lines.append(
        "Jan 19 10:30:59 db1 postgres[77]: [99-1] db=,user=,app=,client= LOG:  checkpoint "
        "starting: time"
    )
    f = write(tmp_path / "postgresql.log", "\n".join(lines) + "\n")
    fr = load.load(con, queries=f, query_format="postgres", year=2024).files[0]
    assert fr.notes[0] == (
        "PostgreSQL syslog log, log_line_prefix 'db=%d,user=%u,app=%a,client=%h '"
    )
    assert (fr.rows_read, fr.rows_loaded) == (12, 12)
    rows = con.execute(
        "select caller, db_user, database, client_ip, pid, statement from db_queries order by line"
    ).fetchall()
    assert rows[:3] == [
        ("auth-service", "app", "shop", "10.0.0.7", "4101", "SELECT 0"),
        ("metabase v0.48", "report_ro", "shop_dw", "10.0.3.21", "4102", "SELECT 1"),
        ("psql", "postgres", "postgres", "[local]", "4103", "SELECT 2"),
    ]
    # the DETAIL part of each message is an entry of its own, not glued to the statement
    assert con.execute(
        "select count(*) from server_events where severity = 'DETAIL' and message = 'x'"
    ).fetchone() == (12,)


def test_an_rds_log_as_the_service_writes_it(con, tmp_path):
    # AWS RDS / Aurora: log_line_prefix is fixed to '%t:%r:%u@%d:[%p]:'; background
    # processes print the session fields empty ('::@:')
    text = (
        "2024-01-19 10:30:00 UTC::@:[5120]:LOG:  checkpoint starting: time\n"
        "2024-01-19 10:30:01 UTC:10.0.0.123(52834):app@shop:[20175]:LOG:  duration: 2.5 ms  "
        "statement: SELECT * FROM users WHERE id = 7\n"
        "2024-01-19 10:30:02 UTC:10.0.0.123(52834):app@shop:[20175]:FATAL:  password "
        'authentication failed for user "app"\n'
        "2024-01-19 10:30:02 UTC:10.0.0.123(52834):app@shop:[20175]:DETAIL:  Connection "
        "matched pg_hba.conf line 13\n"
        "2024-01-19 10:30:03 UTC:[local]:rdsadmin@rdsadmin:[20190]:LOG:  duration: 0.1 ms  "
        "statement: SELECT 1\n"
    )
    fr = load.load(con, queries=write(tmp_path / "postgresql.log.2024-01-19-10", text),
                   query_format="postgres").files[0]  # fmt: skip
    assert fr.notes[0] == "PostgreSQL stderr log, log_line_prefix '%t:%r:%u@%d:[%p]:'"
    assert con.execute(
        "select ts, client_ip, db_user, database, pid from db_queries order by line"
    ).fetchall() == [
        (datetime(2024, 1, 19, 10, 30, 1), "10.0.0.123", "app", "shop", "20175"),
        (datetime(2024, 1, 19, 10, 30, 3), "[local]", "rdsadmin", "rdsadmin", "20190"),
    ]
    assert con.execute(
        "select severity, \"user\", client from server_events where severity = 'FATAL'"
    ).fetchall() == [("FATAL", "app", "10.0.0.123")]


def test_managed_services_wrappers_are_told_by_their_content(con, tmp_path):
    # Heroku (as `heroku logs` prints it) and Google Cloud SQL's JSON export, named .log:
    # --query-format auto reads them by content, and their prefixes are inferred inside
    heroku = (
        "2019-03-14T00:23:00+00:00 app[postgres.4821]: [GREEN] [20-1]  sql_error_code = 00000 "
        "LOG:  duration: 6679.293 ms  statement: SELECT 1\n"
        "2019-03-14T00:23:00+00:00 app[postgres.4821]: [GREEN] [20-2]  sql_error_code = 00000 "
        "DETAIL:  parameters: $1 = 'x'\n"
        "2019-03-14T00:23:01+00:00 app[postgres.4822]: [GREEN] [7-1]  sql_error_code = 28P01 "
        'FATAL:  password authentication failed for user "app"\n'
    )
    payloads = [
        "[24667]: [1-1] db=shop,user=app LOG:  duration: 1.5 ms  statement: SELECT 1",
        "\tFROM t",
        "[24668]: [1-1] db=[unknown],user=[unknown] LOG:  connection received",
    ]
    cloudsql = "".join(
        json.dumps(
            {
                "insertId": f"s=1;i={i}",
                "logName": "projects/p/logs/cloudsql.googleapis.com%2Fpostgres.log",
                "resource": {"labels": {"database_id": "p:db1"}, "type": "cloudsql_database"},
                "severity": "INFO",
                "textPayload": text,
                "timestamp": f"2020-05-02T13:00:2{i}.5Z",
            }
        )
        + "\n"
        for i, text in enumerate(payloads)
    )
    result = load.load(
        con,
        queries=[write(tmp_path / "heroku.log", heroku), write(tmp_path / "gcp.log", cloudsql)],
    )
    heroku_fr, gcp_fr = result.files
    assert heroku_fr.notes[0] == "PostgreSQL logplex log, log_line_prefix ' sql_error_code = %e '"
    assert (
        gcp_fr.notes[0] == "PostgreSQL cloudsql log, log_line_prefix '[%p]: [%l-1] db=%d,user=%u '"
    )
    assert con.execute(
        "select source_id, ts, pid, db_host, database, statement from db_queries order by all"
    ).fetchall() == [
        (heroku_fr.source_id, datetime(2019, 3, 14, 0, 23), "4821", "GREEN", None, "SELECT 1"),
        (gcp_fr.source_id, datetime(2020, 5, 2, 13, 0, 20, 500000), "24667", "p:db1", "shop",
         "SELECT 1\nFROM t"),
    ]  # fmt: skip
    assert con.execute(
        "select severity, message from server_events order by source_id, line"
    ).fetchall() == [
        ("DETAIL", "parameters: $1 = 'x'"),
        ("FATAL", 'password authentication failed for user "app"'),
        ("LOG", "connection received"),
    ]


@pytest.mark.parametrize(
    ("head", "prefix"),
    [
        ("2024-01-19 10:30:00 UTC:ip-10-0-0-1.ec2.internal:app@shop:[77]:", "%t:%h:%u@%d:[%p]:"),
        ("2024-01-19 10:30:00 UTC:db.example.com(5432):app@shop:[77]:", "%t:%r:%u@%d:[%p]:"),
        ("2024-01-19 10:30:00.1 UTC [77] [unknown]@[unknown]/[unknown] ", "%m [%p] %u@%d/%a "),
        (
            "[77]: [3-1] db=shop,user=app,app=psql 16.1,client=[local] ",
            "[%p]: [%l-1] db=%d,user=%u,app=%a,client=%h ",
        ),
        ("2024-01-19 10:30:00 UTC [77] 3/17 28P01 ", "%t [%p] %v %e "),
        (" sql_error_code = 00000 ", " sql_error_code = %e "),
        ("", ""),
    ],
)
def test_the_heads_of_lines_read_as_escapes(head, prefix):
    assert pg_infer.to_prefix(pg_infer.lex(head)) == prefix
