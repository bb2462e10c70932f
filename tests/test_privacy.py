"""Privacy and escaping: what a report writes holds no user id, e-mail or IP address in
clear, and text from the logs is shown as text in Markdown and HTML."""

from __future__ import annotations

import json
import re

import pytest

from analysis import privacy
from analysis.report import draft
from analysis.report.run import Run
from tests.conftest import write


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("paged alice.smith+ops@example.co.uk", "paged <email>"),
        ("from 10.1.2.3 and 192.168.0.254:5432", "from <ip> and <ip>:5432"),
        ("v6 2001:db8::8a2e:370:7334 and ::1 here", "v6 <ip> and <ip> here"),
        ("at 10:30:00 on 2024-01-19, version 1.2.3", "at 10:30:00 on 2024-01-19, version 1.2.3"),
        ("select * from t where a = ?", "select * from t where a = ?"),
        (None, None),
    ],
)
def test_mask_emails_and_ip_addresses_but_not_times_or_versions(text, expected):
    assert privacy.mask(text) == expected


def test_markdown_and_html_control_characters_are_shown_as_text():
    hostile = "<script>alert(1)</script> **bold** [x](javascript:1) | # `code`"
    out = draft.md(hostile)
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert "**" not in out.replace("\\*", "")
    assert "\\[x\\]\\(javascript:1\\)" in out


def hostile_incident(tmp_path):
    auth, queries = [], []
    for i in range(400):
        minute = i % 60
        failing = 10 <= minute < 40 and i % 3 == 0
        rid = f"r{i}"
        auth.append(
            {
                "ts": f"2024-01-19T10:{minute:02d}:{i % 60:02d}Z",
                "user_id": f"secret-user-{i % 50}",
                "outcome": "failure" if failing else "success",
                "error_code": "db_timeout" if failing else None,
                "request_id": rid,
                "client_ip": f"10.0.0.{i % 3}",
                "client": "<script>alert('x')</script>" if failing else "web",
                "contact": "ops@example.com" if i % 2 else "dba@example.com",
                "auth_path": "bypass" if minute > 50 else "db",
            }
        )
        queries.append(
            {
                "ts": auth[-1]["ts"],
                "duration_ms": 1.5,
                "request_id": rid,
                "statement": f"SELECT * FROM users WHERE email = 'u{i}@example.com' "  # noqa: S608 - a log line, not run
                f"AND ip = '172.16.0.{i % 200}'",
            }
        )
    timeline = (
        "- ts: 2024-01-19T10:05:00Z\n  kind: change\n"
        "  text: 'deploy by carol@example.com from 192.168.7.7; drop table auth_events; --'\n"
        "- ts: 2024-01-19T10:12:00Z\n  kind: detection\n  text: '<b>page</b> | **now** [x](y)'\n"
    )
    return (
        write(tmp_path / "auth.jsonl", "".join(json.dumps(r) + "\n" for r in auth)),
        write(tmp_path / "q.jsonl", "".join(json.dumps(r) + "\n" for r in queries)),
        write(tmp_path / "t.yaml", timeline),
    )


def build_report(tmp_path, *, redact=True):
    auth, queries, timeline = hostile_incident(tmp_path)
    run = Run.from_parameters(
        auth_logs=str(auth),
        query_logs=str(queries),
        timeline=str(timeline),
        database=str(tmp_path / "db.duckdb"),
        report_dir=str(tmp_path / "report"),
        incident_start="2024-01-19T10:10:00Z",
        incident_end="2024-01-19T10:40:00Z",
        redact_users=redact,
        say=lambda _m: None,
    )
    run.load()
    run.analyse()
    for name in draft.CHARTS:
        run.chart(name)
    run.write()
    return tmp_path / "report"


SECRETS = re.compile(
    r"secret-user-\d+|[A-Za-z0-9._%+-]+@example\.com|\b(?:10|172|192)\.\d+\.\d+\.\d+\b"
)


def test_no_user_id_email_or_ip_in_any_written_file(tmp_path):
    report = build_report(tmp_path)
    files = [p for p in report.rglob("*") if p.is_file()]
    assert len(files) >= 15
    for path in files:
        found = SECRETS.findall(path.read_text(errors="replace"))
        assert not found, f"{path.relative_to(report)} holds {found[:3]}"
    md = (report / "postmortem.md").read_text()
    assert "<script>" not in md
    assert "Not redacted" not in md
    bypass = (report / "SENSITIVE-bypass-users.csv").read_text()
    assert bypass.startswith("# SENSITIVE") and "user-" in bypass


def test_the_database_is_untouched_by_hostile_text(tmp_path):
    import duckdb

    report = build_report(tmp_path)
    con = duckdb.connect(str(tmp_path / "db.duckdb"), read_only=True)
    assert con.execute("select count(*) from auth_events").fetchall() == [(400,)]
    assert con.execute("select count(*) from timeline").fetchall() == [(2,)]
    con.close()
    assert {p.name for p in tmp_path.iterdir()} <= {
        "auth.jsonl",
        "q.jsonl",
        "t.yaml",
        "db.duckdb",
        "db.duckdb.wal",
        "report",
    }
    summary = json.loads((report / "summary.json").read_text())
    top = summary["dimensions"][0]
    # the hostile client carries every failure: it is kept as data in the summary, and the
    # draft that names it shows it escaped
    assert (top["dimension"], top["value"]) == ("client", "<script>alert('x')</script>")
    md = (report / "postmortem.md").read_text()
    assert "client = &lt;script&gt;alert\\('x'\\)&lt;/script&gt;" in md
    assert "<script>" not in md


def test_without_redaction_the_report_says_so(tmp_path):
    report = build_report(tmp_path, redact=False)
    assert "Not redacted" in (report / "postmortem.md").read_text()
    bypass = (report / "SENSITIVE-bypass-users.csv").read_text()
    assert "IN CLEAR" in bypass and "secret-user-" in bypass


def test_hostile_text_is_escaped_in_the_html_report(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    auth, queries, timeline = hostile_incident(tmp_path)
    out = tmp_path / "reports" / "hostile"
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "postmortem"),
            "-q",
            "report",
            "--explore",
            "--auth",
            str(auth),
            "--queries",
            str(queries),
            "--timeline",
            str(timeline),
            "--database",
            str(tmp_path / "h.duckdb"),
            "--out",
            str(out),
            "--start",
            "2024-01-19T10:10:00Z",
            "--end",
            "2024-01-19T10:40:00Z",
            "--incident-id",
            "hostile",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    for name in ("incident_report.html", "explore.html"):
        html = (out / name).read_text()
        assert "<script>alert('x')</script>" not in html, name
        assert not SECRETS.findall(html), f"{name}: {SECRETS.findall(html)[:3]}"
    # the report's dimension table shows the hostile client as text
    html = (out / "incident_report.html").read_text()
    assert "<td>&lt;script&gt;alert('x')&lt;/script&gt;</td>" in html
    written = {p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*")}
    assert written <= {"auth.jsonl", "q.jsonl", "t.yaml", "h.duckdb", "h.duckdb.wal", "reports"}


def test_the_pseudonym_key_file_is_never_committed():
    import shutil
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    ignored = subprocess.run(["git", "check-ignore", "-q", ".postmortem-key"], cwd=root)
    assert ignored.returncode == 0
    tracked = subprocess.run(
        ["git", "ls-files", ".postmortem-key"], cwd=root, capture_output=True, text=True
    ).stdout
    assert tracked == ""
