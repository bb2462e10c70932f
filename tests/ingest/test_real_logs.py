"""The real server logs of ../shared/real-logs, counted as the peers count them.

pgbadger and pt-query-digest are not installed where CI runs: their numbers were recorded
in tests/peer_results/*.json, each with the exact command that produced it (run from the
project root on the files of ../shared/real-logs). For sshd the ground truth is loghub's
own parse of the same file, OpenSSH_2k.log_structured.csv, read here.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import re
import shutil
from collections import Counter
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pytest

from analysis import fingerprint as fingerprints
from analysis.fingerprint import fingerprint
from analysis.ingest import loader as load
from analysis.ingest.formats import pg_common, sshd
from tests.conftest import require_shared

PEERS = Path(__file__).resolve().parents[1] / "peer_results"
PGBADGER = json.loads((PEERS / "pgbadger.json").read_text(encoding="utf-8"))
PT_QUERY_DIGEST = json.loads((PEERS / "pt-query-digest.json").read_text(encoding="utf-8"))

#: pgBadger 12.0 (Debian's) has no CloudNativePG reader: checked against the file itself
NOT_COMPARABLE = {"pgbadger/cnpg.log.gz"}
#: class sizes that legitimately differ from pgbadger's, and why
OUR_CLASS_SIZES = {
    # Three executions of one prepared statement (`... in ($1, $2, $3) and ... && $4::tsrange`,
    # 7, 3 and 2 parameters). pgbadger first puts the DETAIL parameter values in place of $n,
    # then its normalizer leaves pieces of the tsrange literal ('[?-02-24t00:?' and
    # '[?-02-23t00:?'...) in the text: one class per execution. We keep $n as ? and fold
    # the IN list, so the statement is one class of 3, as pg_stat_statements would count it.
    "pgbadger/postgresql_param_range.log": [3],
}
#: what the load must say it inferred (pgbadger needs -p for some of these)
PREFIXES = {
    "pgbadger/begin_end.log": "%t [%p]: db=%d,user=%u,app=%a,client=%h ",
    "pgbadger/cloudsql.log.gz": "[%p]: [%l-1] db=%d,user=%u ",
    "pgbadger/light.postgres.log.bz2": "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ",
    "pgbadger/logplex.gz": " sql_error_code = %e ",
    "pgbadger/multiline_param.log": "%m [%p] user=%u,db=%d ",
    "pgbadger/pg-timezones.log": "%t:%h:%u@%d:[%p]:",
    "pgbadger/pg_rawcsv.log": "%m [%p] %q%u@%d ",
    "pgbadger/postgresql_param_range.log": "%t [%p]: [%l-1] [%x] usr=%u,db=%d,appli=%a ",
    "pgbadger/queryid.log.gz": "%m [%p] [queryid=%Q] %u@%d ",
    "pgbadger/stmt_type.log": "%m [%p] ",
    "pgbadger/tempfile_only.log.gz": "%t [%p]: [%l-1] user=%u,db=%d ",
    "lnav/logfile_postgres.1": "%m [%p] ",
    "elastic-beats/postgresql-9.6-debian-with-slowlog.log": "%m [%p] %q%u@%d ",
}


def class_sizes(con, source_id: int) -> list[int]:
    rows = con.execute(
        "select count(*) as n from db_queries where source_id = ? group by fingerprint "
        "order by n desc",
        [source_id],
    ).fetchall()
    return [r[0] for r in rows]


def load_one(con, path: Path, **kwargs) -> load.FileResult:
    return load.load(con, **kwargs, queries=path).files[0]


def statements_without_duration(con, source_id: int) -> list[str]:
    """The ``statement:`` entries of log_statement that no duration follows: pgbadger
    counts them as queries (without a duration), we keep them in server_events."""
    rows = con.execute(
        "select message from server_events e where source_id = ? and severity = 'LOG' "
        "and starts_with(message, 'statement: ')",
        [source_id],
    ).fetchall()
    return [r[0].removeprefix("statement: ") for r in rows]


def test_every_postgres_file_is_compared(con):
    real = require_shared()
    files = {
        str(p.relative_to(real))
        for p in real.rglob("*")
        if p.is_file() and p.suffix not in (".md",) and p.name != "LICENSE"
        and (p.parent.name == "pgbadger" or "postgres" in p.name)
    }  # fmt: skip
    assert files == set(PGBADGER["files"])


@pytest.mark.parametrize("name", sorted(set(PGBADGER["files"]) - NOT_COMPARABLE))
def test_postgres_logs_count_as_pgbadger(con, statement_key, name):
    real = require_shared()
    peer = PGBADGER["files"][name]
    # no log_line_prefix given: the layout and the prefix come from the lines
    fr = load_one(con, real / name, query_format="postgres")
    if name in PREFIXES:
        assert fr.notes[0].endswith(f"log_line_prefix {PREFIXES[name]!r}"), fr.notes
    # pgbadger's queries_number counts `statement` and `execute` durations; parse and
    # bind durations are steps of an execute, counted apart by both (multiline_param.log,
    # anonymize.log). It also counts a log_statement `statement:` entry that has no
    # duration (cloudsql.log.gz, csv_statement_without_duration.log): a query without a
    # duration is not a row of db_queries (duration_ms is required), so we keep it in
    # server_events, counted in the notes; ours plus those are pgbadger's.
    untimed = statements_without_duration(con, fr.source_id)
    assert fr.rows_read == fr.rows_loaded == peer["queries_number"] - len(untimed)
    if untimed:
        assert any(pg_common.STATEMENTS in n for n in fr.notes)
    ours = class_sizes(con, fr.source_id) + [1] * len(set(map(fingerprint, untimed)))
    assert sorted(ours, reverse=True) == OUR_CLASS_SIZES.get(name, peer["class_sizes"])
    if fr.rows_loaded:
        assert_fingerprinted_row_by_row(con, fr.source_id)


def test_managed_services_logs_as_pgbadger_tests_read_them(con, statement_key):
    # pgbadger's t/03_consistency.t: the Heroku log's CTE durations of database GREEN sum to
    # 21761.546 ms; t/04_advanced.t-era consistency: the Cloud SQL log has 151 connections
    # of user cloudsqladmin to database cloudsqladmin
    real = require_shared()
    fr = load_one(con, real / "pgbadger/logplex.gz", query_format="postgres")
    total = con.execute(
        "select round(sum(duration_ms), 3) from db_queries where source_id = ? "
        "and db_host = 'GREEN' and fingerprint like 'with %'",
        [fr.source_id],
    ).fetchone()[0]
    assert float(total) == 21761.546
    assert con.execute(
        "select distinct pid from db_queries where source_id = ? order by 1", [fr.source_id]
    ).fetchall() == [("4821",), ("4882",), ("4886",), ("5925",)]
    fr = load_one(con, real / "pgbadger/cloudsql.log.gz", query_format="postgres")
    assert con.execute(
        "select count(*) from server_events where source_id = ? and \"user\" = 'cloudsqladmin' "
        "and database = 'cloudsqladmin' and starts_with(message, 'connection authorized')",
        [fr.source_id],
    ).fetchone() == (151,)
    # the entries' times are Cloud Logging's, the server is the instance's id
    assert (
        con.execute("select min(ts) from server_events where source_id = ?", [fr.source_id])
        .fetchone()[0]
        .isoformat()
        == "2020-05-02T13:00:20.382318"
    )


def test_the_native_key_is_the_macros_on_every_statement_of_every_real_log(con):
    """The native key of every statement of every PostgreSQL and MySQL log is byte for byte the
    DuckDB macro's, and so is the fingerprint of the key."""
    real = require_shared()
    if fingerprints.key_implementation() != "native":
        if os.environ.get("POSTMORTEM_REQUIRE_SHARED"):  # CI builds it: its absence fails
            pytest.fail("the statement key's C extension is not built")
        pytest.skip("the C extension is not built")
    names = sorted(set(PGBADGER["files"]) | set(PT_QUERY_DIGEST["files"]))
    for name in names:
        fmt = "mysql-slow" if name in PT_QUERY_DIGEST["files"] else "postgres"
        load_one(con, real / name, query_format=fmt)
    statements = con.sql(
        "select statement from db_queries where statement is not null"
    ).to_arrow_table()["statement"]
    native = fingerprints.statement_keys(statements)
    con.register("_native_keys", pa.Table.from_arrays([statements, native], names=["s", "k"]))
    rows, keys_differ, fingerprints_differ = con.execute(
        "select count(*), count(*) filter (where k is distinct from fingerprint_key(s)), "
        "count(*) filter (where fingerprint(k) is distinct from fingerprint(s)) "
        "from _native_keys"
    ).fetchall()[0]
    con.unregister("_native_keys")
    assert rows > 1_000
    assert (keys_differ, fingerprints_differ) == (0, 0)


def assert_fingerprinted_row_by_row(con, source_id: int) -> None:
    """A load fingerprints one statement per key: each row must still get its own."""
    rows, differ = con.execute(
        "select count(*), count(*) filter (where fingerprint <> fingerprint(statement)) "
        "from db_queries where source_id = ? and statement is not null",
        [source_id],
    ).fetchone()
    assert rows > 0
    assert differ == 0


def test_cloudnativepg_log_against_its_own_records(con, statement_key):
    # pgBadger 12.0 predates its CloudNativePG reader (upstream commit 5aa95bc, 2022-11-27)
    # and finds 0 queries with -f jsonlog; the expected numbers come from the JSON itself
    real = require_shared()
    name = "pgbadger/cnpg.log.gz"
    assert PGBADGER["files"][name]["queries_number"] == 0
    records = []
    with gzip.open(real / name, "rt", encoding="utf-8") as fh:
        for text in fh:
            record = json.loads(text).get("record")
            if isinstance(record, dict) and record.get("message") is not None:
                records.append(record)
    duration = re.compile(r"duration: [0-9.]+ ms  (?:statement|execute[^:]*): (.*)", re.S)
    statements = [
        m.group(1)
        for r in records
        if r.get("error_severity") == "LOG" and (m := duration.match(r["message"]))
    ]
    fr = load_one(con, real / name, query_format="postgres")
    assert (fr.rows_read, fr.rows_loaded) == (len(statements), len(statements)) == (400, 400)
    expected = sorted(Counter(fingerprint(s) for s in statements).values(), reverse=True)
    assert class_sizes(con, fr.source_id) == expected
    events = con.execute("select severity, count(*) from server_events group by all").fetchall()
    assert sum(n for _, n in events) == len(records) - 400
    assert ("FATAL", 1) in events


def test_logs_without_queries_fill_server_events(con):
    real = require_shared()
    fr = load_one(con, real / "pgbadger/pg_vacuums.json.gz", query_format="postgres")
    assert fr.rows_read == 0
    assert con.execute("select count(*) from server_events").fetchone() == (3544,)
    fr = load_one(con, real / "lnav/logfile_postgres.1", query_format="postgres")
    assert fr.rows_read == 0
    # a multi-line STATEMENT is one event, its TAB-indented lines joined
    statement = con.execute(
        "select message from server_events where severity = 'STATEMENT' order by line limit 1"
    ).fetchone()[0]
    assert statement.startswith("create table if not exists scrape_memory (\n")
    assert statement.count("\n") > 5


def test_a_postgres_log_of_long_statements_is_told_by_its_entries_not_its_lines(con):
    """lnav's log: 7 entries on 45 lines, most of them a statement's TAB-indented lines; the
    format was not told without --query-format (7 of 45 lines looked like entries)."""
    real = require_shared()
    fr = load_one(con, real / "lnav/logfile_postgres.1")
    assert fr.format == "postgres"
    assert con.execute("select count(*) from server_events").fetchone() == (7,)


@pytest.mark.parametrize("name", sorted(PT_QUERY_DIGEST["files"]))
def test_mysql_slow_logs_count_as_pt_query_digest(con, statement_key, name):
    real = require_shared()
    peer = PT_QUERY_DIGEST["files"][name]
    fr = load_one(con, real / name, query_format="mysql-slow")
    assert fr.rows_loaded == peer["query_count"]
    assert class_sizes(con, fr.source_id) == peer["class_sizes"]
    if fr.rows_loaded:
        assert_fingerprinted_row_by_row(con, fr.source_id)
    if name.endswith("slow015.txt"):
        # a header cut short, no query: pt-query-digest drops it silently; we keep it
        # as a rejected row so that rows_read = rows_loaded + rows_rejected says so
        assert (fr.rows_read, fr.rows_rejected) == (1, 1)
    else:
        assert fr.rows_rejected == 0


def _loghub() -> list[dict[str, str]]:
    real = require_shared()
    with open(real / "loghub/OpenSSH_2k.log_structured.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


ATTEMPTS = {"E1", "E8", "E9", "E10", "E14"}  # Accepted, Failed none/password, repeated
ANNOUNCING = {"E13", "E19", "E20"}  # Invalid user, PAM authentication failure
CLOSING = {"E4", "E5", "E6"}  # Disconnecting: Too many authentication failures, JSch Auth fail
_USER = re.compile(r"(?:for (?:invalid user )?|Invalid user |user=)(\S+)")


def test_sshd_lines_are_classified_as_loghub_parsed_them(con):
    real = require_shared()
    by_event = Counter(r["EventId"] for r in _loghub())
    sshd.stage(con, real / "loghub/OpenSSH_2k.log", year=2024)
    ours = dict(
        con.execute(
            "select kind, count(*) from _fmt_stage where kind is not null group by kind"
        ).fetchall()
    )
    assert ours == {
        "accepted": by_event["E1"],
        "failed": by_event["E8"] + by_event["E9"] + by_event["E10"],
        "repeated": by_event["E14"],
        "invalid_user": by_event["E13"],
        "pam_failure": by_event["E19"] + by_event["E20"],
        "too_many": by_event["E4"] + by_event["E5"],
        "auth_fail": by_event["E6"],
    }


def test_sshd_attempts_match_loghub(con):
    real = require_shared()
    rows = _loghub()
    # the same rules as analysis.ingest.formats.sshd, written again over loghub's parse: an attempt
    # line is an event (N for "message repeated N times"); an Invalid user / PAM line is
    # one only when no attempt line of its process for the same user (or an unknown one)
    # follows within 5 minutes; a closing line only when no auth line of its process
    # came in the 5 minutes before
    when = [
        datetime.strptime(f"2024 {r['Date']} {r['Day']} {r['Time']}", "%Y %b %d %H:%M:%S")
        for r in rows
    ]
    users = [(m.group(1) if (m := _USER.search(r["Content"])) else None) for r in rows]
    expected = 0
    for i, r in enumerate(rows):
        if r["EventId"] == "E14":
            expected += int(re.match(r"message repeated (\d+) times", r["Content"]).group(1))
        elif r["EventId"] in ATTEMPTS:
            expected += 1
        elif r["EventId"] in ANNOUNCING:
            later = [
                j
                for j in range(i + 1, len(rows))
                if rows[j]["Pid"] == r["Pid"]
                and rows[j]["EventId"] in ATTEMPTS
                and (users[i] is None or users[j] is None or users[j] == users[i])
            ]
            if not later or (when[later[0]] - when[i]).total_seconds() > sshd.ABSORB_SECONDS:
                expected += 1
        elif r["EventId"] in CLOSING:
            earlier = [
                j
                for j in range(i)
                if rows[j]["Pid"] == r["Pid"]
                and rows[j]["EventId"] in ATTEMPTS | ANNOUNCING | CLOSING
            ]
            if not earlier or (when[i] - when[earlier[-1]]).total_seconds() > sshd.ABSORB_SECONDS:
                expected += 1
    result = load.load(con, auth=real / "loghub/OpenSSH_2k.log", auth_format="sshd", year=2024)
    fr = result.files[0]
    assert (fr.rows_loaded, fr.rows_rejected) == (expected, 0)
    assert expected == 534
    # every line read: 2,000 lines, of which 2 'message repeated' lines are 10 attempts
    assert fr.rows_read == fr.rows_loaded + fr.rows_skipped == 2008
    outcomes = dict(
        con.execute("select outcome, count(*) from auth_events group by all").fetchall()
    )
    assert outcomes["success"] == Counter(r["EventId"] for r in rows)["E1"]


def test_old_sshd_logs_with_pam_lines_only(con):
    real = require_shared()
    path = real / "loghub/Linux_2k.log"
    text = path.read_text(encoding="utf-8")
    pam = [
        t for t in text.splitlines() if "sshd(pam_unix)[" in t and "authentication failure;" in t
    ]
    without_user = [t for t in pam if not re.search(r"\suser=\S", t)]
    fr = load.load(con, auth=path, auth_format="sshd", year=2005).files[0]
    assert fr.rows_loaded == len(pam) == 489
    # every other line is skipped, by kind: ftpd, su, kernel… and syslogd's own lines
    assert fr.rows_read == fr.rows_loaded + fr.rows_skipped == len(text.splitlines()) == 2000
    assert fr.skipped == {
        "another program's syslog line": 1315,
        "sshd, not an attempt (connections, key exchange, disconnects…)": 188,
        "not a syslog line": 8,
    }
    codes = dict(
        con.execute("select error_code, count(*) from auth_events group by all").fetchall()
    )
    assert codes == {
        "user_not_found": len(without_user),
        "invalid_password": len(pam) - len(without_user),
    }


def test_old_sshd_logs_with_pam_lines_only_are_told_without_the_format(con):
    """``auto`` took only sshd, sshd-session and sshd-auth for sshd's lines, where the reader
    takes any program named sshd…: Linux_2k.log's sshd(pam_unix) lines were not recognised."""
    real = require_shared()
    fr = load.load(con, auth=real / "loghub/Linux_2k.log", year=2005).files[0]
    assert (fr.format, fr.rows_loaded) == ("sshd", 489)


def test_a_report_from_an_sshd_log_and_a_postgres_log_alone(tmp_path):
    from analysis.report import run as report

    real = require_shared()
    # the year of the sshd log comes from the file's date: a copy dated January 2018 puts
    # its December lines in 2017, three months after the PostgreSQL log
    auth = tmp_path / "OpenSSH_2k.log"
    shutil.copyfile(real / "loghub/OpenSSH_2k.log", auth)
    stamp = datetime(2018, 1, 15).timestamp()
    os.utime(auth, (stamp, stamp))
    run = report.Run.from_parameters(
        say=lambda _m: None,
        auth_logs=str(auth),
        query_logs=str(real / "pgbadger/light.postgres.log.bz2"),
        timeline="",
        auth_format="sshd",
        query_format="postgres",
        database=str(tmp_path / "incident.duckdb"),
        report_dir=str(tmp_path / "report"),
        incident_id="ssh-brute-force",
        incident_start="2017-12-10T08:00:00Z",
        incident_end="2017-12-10T09:00:00Z",
    )
    loaded = run.load()
    assert loaded.totals("auth")["rows_loaded"] == 534
    assert loaded.totals("queries")["rows_loaded"] == 629
    run.analyse()
    s = run.summary
    # no query carries a request_id: the fallback is used, and said
    # (the pgbench log has one application, so all of its queries stand for the auth's)
    assert s["db"]["queries_per_auth"]["method"] == "all-queries"
    assert s["auth"]["attempts"] > 0
    assert s["auth"]["system_failures"] == 0  # wrong passwords and unknown users


#: each MySQL slow log: its entries' times and lock times as the files give them (read with
#: grep: '# Time:', 'Lock_time:' and 'SET timestamp=' of each entry). MySQL 5.7+ writes an
#: ISO '# Time:' with microseconds for every entry, the query's end; 'SET timestamp' is its
#: start in whole seconds (2 s earlier in the 8.0.15 log, where the queries ran 2.5 s)
MYSQL_TIMES = {
    "elastic-beats/mysql-ubuntu-8.0.15-slow.log": [
        (datetime(2019, 3, 24, 14, 1, 47, 811234), "0.287"),
        (datetime(2019, 3, 24, 14, 4, 53, 713951), "0.145"),
    ],
    "lnav/logfile_mysql_slow.0": [
        (datetime(2021, 1, 26, 23, 45, 57, 678222), "11.542"),
        (datetime(2021, 1, 26, 23, 45, 58, 73818), "11.599"),
        (datetime(2021, 1, 26, 23, 45, 58, 456739), "0.09"),
        (datetime(2021, 1, 26, 23, 45, 58, 470741), "0.073"),
        (datetime(2021, 1, 26, 23, 46, 0, 565861), "0.103"),
        (datetime(2021, 1, 26, 23, 46, 0, 584120), "0.074"),
    ],
    "percona-toolkit/mysql5.7.log": [
        (datetime(2016, 7, 20, 18, 13, 25, 698433), "0.324"),
        (datetime(2016, 7, 20, 18, 13, 25, 699880), "0.055"),
    ],
    # the old '# Time: 071218 11:48:27' (local, whole seconds): SET timestamp wins where the
    # entry has one (epoch 1197996507 is 16:48:27 UTC), as pt-query-digest reads it
    "percona-toolkit/slow002.txt": [
        (datetime(2007, 12, 18, 11, 48, 27), "0.0"),
        (datetime(2007, 12, 18, 16, 48, 27), "0.091"),
        (datetime(2007, 12, 18, 16, 48, 27), "0.077"),
        (datetime(2007, 12, 18, 11, 48, 27), "0.028"),
        (datetime(2007, 12, 18, 16, 48, 27), "0.027"),
        (datetime(2007, 12, 18, 11, 48, 27), "0.027"),
        (datetime(2007, 12, 18, 16, 48, 28), "0.027"),
        (datetime(2007, 12, 18, 11, 48, 27), "0.027"),
    ],
    "percona-toolkit/slow059.txt": [
        (datetime(2013, 11, 28, 1, 5, 31), "0.114"),
        (datetime(2013, 11, 28, 1, 5, 31), "0.122"),
        (datetime(2013, 11, 28, 1, 5, 31), "0.048"),
    ],
    "percona-toolkit/slow015.txt": [],
}


@pytest.mark.parametrize("name", sorted(MYSQL_TIMES))
def test_mysql_slow_log_times_and_lock_times(con, name):
    real = require_shared()
    fr = load_one(con, real / name, query_format="mysql-slow")
    rows = con.execute(
        "select ts, lock_time_ms from db_queries where source_id = ? order by line",
        [fr.source_id],
    ).fetchall()
    assert rows == MYSQL_TIMES[name]
