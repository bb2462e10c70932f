"""A real PostgreSQL server writes the logs: stderr, csvlog and jsonlog at once.

A private cluster (initdb in a temporary folder, loopback port, as the ``postgres`` user
when the tests run as root) logs every statement (``log_min_duration_statement = 0``) with
the documentation's ``log_line_prefix = '%m [%p] %q%u@%d/%a '``. A workload of two
applications runs through psycopg: extended-protocol statements with parameters (unnamed
and prepared), simple-protocol ones, a multi-line one and one that fails. The three logs,
loaded with ``--query-format postgres`` and no prefix, must give the same rows, the same
application names and fingerprints, and exactly the workload's own counts per application.
``make test`` installs Debian's ``postgresql`` when it is missing; without it the test
skips here and fails in CI (``POSTMORTEM_REQUIRE_SHARED``).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

from analysis.fingerprint import fingerprint
from analysis.ingest import loader as load

pytestmark = pytest.mark.slow

PREFIX = "%m [%p] %q%u@%d/%a "
AUTH, REPORT = "auth-service", "report-job"


def _missing(what: str) -> None:
    if os.environ.get("POSTMORTEM_REQUIRE_SHARED"):
        pytest.fail(f"{what}, and CI requires it (POSTMORTEM_REQUIRE_SHARED)")
    pytest.skip(f"{what} (make test installs Debian's postgresql when run as root)")


def server_bin() -> Path:
    """The folder of PostgreSQL's server programs (Debian keeps them out of PATH)."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if not versions:
        _missing("the PostgreSQL server (initdb, pg_ctl) is not installed")
    return Path(versions[-1]).parent


def as_server_user() -> list[str]:
    """The command prefix that runs the server's programs: PostgreSQL refuses root."""
    if os.geteuid() != 0:
        return []
    if shutil.which("runuser"):
        return ["runuser", "-u", "postgres", "--"]
    return ["su", "postgres", "-s", "/bin/sh", "-c"]  # pragma: no cover - no runuser


def run(cmd: list[str], prefix: list[str]) -> None:
    if prefix and prefix[0] == "su":
        cmd = [*prefix, " ".join(f"'{c}'" for c in cmd)]
    else:
        cmd = [*prefix, *cmd]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def workload(port: int) -> dict[str, list[str]]:
    """Run the statements; returns the statements each application had the server run
    (as the server logs them: parameters as $n), one entry per query the log must hold."""
    try:
        import psycopg
    except ImportError:
        _missing("psycopg is not installed (it is in the dev extra)")
    ran: dict[str, list[str]] = {AUTH: [], REPORT: []}

    def connect(app: str):
        return psycopg.connect(
            host="127.0.0.1",
            port=port,
            user="postgres",
            dbname="postgres",
            application_name=app,
            autocommit=True,  # no implicit BEGIN: every statement is the workload's
        )

    with connect(AUTH) as conn:
        for user_id in range(5):
            # extended protocol, unnamed statement, one parameter
            conn.execute("select %s::int + 1 as next_id", [user_id])
            ran[AUTH].append("select $1::int + 1 as next_id")
        for name in ("alice", "bob", "carol"):
            # extended protocol, a prepared (named) statement, two parameters
            conn.execute("select %s::text as login, %s::int as attempts", [name, 3], prepare=True)
            ran[AUTH].append("select $1::text as login, $2::int as attempts")
        # simple protocol: no parameters, sent as one query string
        conn.pgconn.exec_(b"SELECT 42 AS answer")
        ran[AUTH].append("SELECT 42 AS answer")
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("select * from no_such_table where id = %s", [1])
    with connect(REPORT) as conn:
        conn.pgconn.exec_(b"CREATE TEMP TABLE logins (id int, who text)")
        ran[REPORT].append("CREATE TEMP TABLE logins (id int, who text)")
        for i in range(4):
            conn.execute("insert into logins values (%s, %s)", [i, f"user{i}"])
            ran[REPORT].append("insert into logins values ($1, $2)")
        multi = "SELECT who,\n       count(*)\nFROM logins\nGROUP BY who"
        conn.pgconn.exec_(multi.encode())
        ran[REPORT].append(multi)
    return ran


@pytest.fixture(scope="module")
def server_logs():
    """Start a private cluster, run the workload, stop it; the three logs and the
    workload's statements."""
    bindir = server_bin()
    prefix = as_server_user()
    base = Path(tempfile.mkdtemp(prefix="postmortem-pg-"))
    try:
        if prefix:
            shutil.chown(base, "postgres")
        data, logs = base / "data", base / "log"
        port = free_port()
        run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
             "-E", "UTF8", "--locale=C", "-N"], prefix)  # fmt: skip
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(port),
            "unix_socket_directories": f"'{base}'",
            "logging_collector": "on",
            "log_destination": "'stderr,csvlog,jsonlog'",
            "log_directory": f"'{logs}'",
            "log_filename": "'postgresql.log'",
            "log_min_duration_statement": "0",
            "log_line_prefix": f"'{PREFIX}'",
            "log_timezone": "'UTC'",
            "log_connections": "on",
            "fsync": "off",
        }
        with open(data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.writelines(f"{k} = {v}\n" for k, v in settings.items())
        pg_ctl = str(bindir / "pg_ctl")
        run([pg_ctl, "-D", str(data), "-w", "-l", str(base / "startup.log"), "start"], prefix)
        try:
            ran = workload(port)
        finally:
            run([pg_ctl, "-D", str(data), "-w", "-m", "fast", "stop"], prefix)
        files = {ext: logs / f"postgresql.{ext}" for ext in ("log", "csv", "json")}
        for f in files.values():
            assert f.stat().st_size > 0, f
        out = base / "copies"
        out.mkdir()
        copies = {ext: Path(shutil.copy(f, out / f.name)) for ext, f in files.items()}
        yield copies, ran
    finally:
        for _ in range(3):
            shutil.rmtree(base, ignore_errors=True)
            if not base.exists():
                break
            time.sleep(0.5)


QUERY_COLUMNS = "ts, duration_ms, statement, fingerprint, caller, pid, db_user, database"


def test_the_three_logs_of_a_real_server_agree_with_the_workload(con, server_logs):
    files, ran = server_logs
    result = load.load(con, queries=[files["log"], files["csv"], files["json"]],
                       query_format="postgres")  # fmt: skip
    by_name = {Path(f.path).suffix: f for f in result.files}
    stderr = by_name[".log"]
    assert stderr.notes[0] == f"PostgreSQL stderr log, log_line_prefix {PREFIX!r}"
    assert any(
        n.startswith(f"log_line_prefix {PREFIX!r} inferred from the lines")
        and f"application {AUTH!r}" in n
        for n in stderr.notes
    ), stderr.notes
    assert not any(n.startswith("two prefixes") for n in stderr.notes), stderr.notes
    assert by_name[".csv"].notes[0] == "PostgreSQL csvlog log"
    assert by_name[".json"].notes[0] == "PostgreSQL jsonlog log"
    expected = {app: len(statements) for app, statements in ran.items()}
    rows = {}
    for suffix, fr in by_name.items():
        total = sum(expected.values())
        assert (fr.rows_read, fr.rows_loaded, fr.rows_rejected) == (total, total, 0), suffix
        per_app = dict(
            con.execute(
                "select caller, count(*) from db_queries where source_id = ? group by all",
                [fr.source_id],
            ).fetchall()
        )
        assert per_app == expected, suffix
        rows[suffix] = con.execute(
            f"select {QUERY_COLUMNS} from db_queries where source_id = ? order by all",  # noqa: S608
            [fr.source_id],
        ).fetchall()
    assert rows[".log"] == rows[".csv"] == rows[".json"]
    # the statements and fingerprints are the workload's own, application by application
    for app, statements in ran.items():
        logged = con.execute(
            "select statement, fingerprint from db_queries where source_id = ? and caller = ?",
            [stderr.source_id, app],
        ).fetchall()
        assert Counter(s for s, _ in logged) == Counter(statements)
        assert Counter(f for _, f in logged) == Counter(fingerprint(s) for s in statements)
    assert {r[6] for r in rows[".log"]} == {"postgres"}
    # the failing statement is the database's own evidence, in each of the three logs
    errors = con.execute(
        "select source_id, count(*) from server_events where severity = 'ERROR' "
        "and message like 'relation \"no_such_table\" does not exist%' and \"user\" = 'postgres' "
        "group by all order by all"
    ).fetchall()
    assert errors == sorted((fr.source_id, 1) for fr in by_name.values())
