"""The starter definition inferred from a file, and the preview of how records map.

Each log is written here with the answer known by construction: which field is the time
and in which unit, who the user is, which words say success or failure, which records are
sign-ins.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from analysis import cli, config, db, errors
from analysis.ingest import loader as load
from analysis.ingest.definitions import starter

T0 = 1705660200000  # 2024-01-19T10:30:00Z in epoch milliseconds


def _events(tmp_path: Path) -> Path:
    """Six events: four sign-ins (two succeeded, one failed, one 'challenged'), a logout and
    a password change; times in epoch milliseconds one minute apart."""
    rows = [
        ("login", "SUCCEEDED", "ann"),
        ("login", "FAILED", "bob"),
        ("login", "CHALLENGED", "bob"),
        ("logout", "SUCCEEDED", "ann"),
        ("login", "SUCCEEDED", "bob"),
        ("password_change", "SUCCEEDED", "cy"),
    ]
    path = tmp_path / "gateway-export.jsonl"
    path.write_text(
        "".join(
            json.dumps(
                {
                    "t": T0 + 60_000 * i,
                    "kind": kind,
                    "result": result,
                    "actor": {"user": who, "ip": f"10.0.0.{i}"},
                    "request": {"uuid": f"r-{i}"},
                }
            )
            + "\n"
            for i, (kind, result, who) in enumerate(rows)
        )
    )
    return path


def test_the_starter_names_time_unit_user_outcome_and_attempts_from_the_values(tmp_path):
    text = starter.starter(_events(tmp_path))
    data = yaml.safe_load(text)
    assert data["name"] == "gateway-export" and data["input"] == "json"
    assert data["fields"]["ts"] == "t" and data["timestamp"] == "epoch_ms"
    assert (
        "100% of the records read as epoch_ms, 2024-01-19T10:30:00Z to 2024-01-19T10:35:00Z"
        in (text)
    )
    assert data["fields"]["user_id"] == "actor.user"
    assert data["fields"]["outcome"] == {
        "path": "result",
        "map": {"SUCCEEDED": "success", "FAILED": "failure", "CHALLENGED": "?"},
    }
    assert data["attempts"] == {"field": "kind", "values": ["login"]}  # logout is no sign-in
    assert data["fields"]["request_id"] == "request.uuid"


def test_a_starter_with_a_question_mark_is_refused_and_once_decided_loads_right(tmp_path):
    log = _events(tmp_path)
    definition = tmp_path / "mine.yaml"
    definition.write_text(starter.starter(log))
    con = db.connect(tmp_path / "t.duckdb")
    with pytest.raises(errors.LoadError, match="'challenged' maps to '\\?'"):
        load.load(con, auth=log, auth_format=str(definition))
    assert con.execute("select count(*) from auth_events").fetchall() == [(0,)]
    # decided: a challenge is not an outcome; only login is a sign-in
    data = yaml.safe_load(definition.read_text())
    data["fields"]["outcome"]["map"]["CHALLENGED"] = "skip"
    data["attempts"]["values"] = ["login"]
    definition.write_text(yaml.safe_dump(data))
    res = load.load(con, auth=log, auth_format=str(definition)).files[0]
    assert (res.rows_loaded, res.skipped) == (
        3,
        {"outcome not final": 1, "logout": 1, "password_change": 1},
    )
    rows = con.execute("select user_id, outcome from auth_events order by line").fetchall()
    assert rows == [("ann", "success"), ("bob", "failure"), ("bob", "success")]


def test_the_starter_finds_the_records_of_a_wrapped_export_and_reads_csv(tmp_path):
    wrapped = tmp_path / "api.json"
    records = [{"when": "2024-01-19T10:30:00Z", "email": "a@x", "status": "ok"}]
    records.append({"when": "2024-01-19T10:31:00+01:00", "email": "b@x", "status": "denied"})
    wrapped.write_text(json.dumps({"meta": {"next": None}, "data": {"events": records}}, indent=2))
    data = yaml.safe_load(starter.starter(wrapped))
    assert data["records"] == "data.events[]"
    assert data["fields"]["outcome"]["map"] == {"ok": "success", "denied": "failure"}
    csv_log = tmp_path / "export.csv"
    csv_log.write_text(
        "Time,User Name,Result\n2024-01-19T10:30:00Z,ann,Success\n2024-01-19T10:31:00Z,bob,Fail\n"
    )
    data = yaml.safe_load(starter.starter(csv_log))
    assert (data["input"], data["fields"]["ts"], data["fields"]["user_id"]) == (
        "csv",
        "Time",
        "User Name",
    )


def test_a_text_log_gets_the_way_to_describe_it_not_a_guess(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("2024-01-19 10:30:00 login ok user=ann\n" * 3)
    with pytest.raises(errors.UnreadableFile, match="input: text"):
        starter.starter(log)


def test_preview_shows_each_record_and_writes_nothing(tmp_path, monkeypatch, capsys):
    log = _events(tmp_path)
    definition = tmp_path / "mine.yaml"
    definition.write_text(
        "name: mine\nattempts: {field: kind, values: [login]}\n"
        "fields: {ts: t, user_id: actor.user, outcome: {path: result, map: "
        "{SUCCEEDED: success, FAILED: failure, CHALLENGED: skip}}}\ntimestamp: epoch_ms\n"
    )
    monkeypatch.setattr(config, "DATA_DIR", tmp_path / "data")
    before = sorted(p.name for p in tmp_path.iterdir())
    code = cli.main(
        ["load", "--auth", str(log), "--auth-format", str(definition), "--preview", "4"]
    )
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0].endswith("read as mine; the first 4 records:")
    assert out[1].split()[:5] == [
        "1",
        "attempt",
        "ts=2024-01-19T10:30:00.000Z",
        "user_id=ann",
        "outcome=success",
    ]
    assert out[2].split()[:2] == ["2", "attempt"] and "outcome=failure" in out[2]
    assert out[3].split() == ["3", "skipped", "outcome", "not", "final"]
    assert out[4].split() == ["4", "skipped", "not", "an", "attempt", "(logout)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no database, no file
