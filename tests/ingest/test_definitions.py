"""Source definitions and the presets built from the vendors' documentation.

Each preset has a fixture written from its vendor's documentation (``tests/fixtures/presets``)
and the counts that fixture holds by construction (``<fixture>.expected.json``); the engine's
own rules are tested on tiny logs written here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from analysis import config, db, errors
from analysis.figures import views
from analysis.ingest import loader as load
from analysis.ingest import registry
from analysis.ingest.definitions import reader as sources
from analysis.ingest.definitions import schema as definitions
from tests.conftest import require_shared

FIXTURES = Path(
    os.environ.get(
        "POSTMORTEM_PRESET_FIXTURES", Path(__file__).resolve().parents[1] / "fixtures" / "presets"
    )
)
EXPECTED = sorted(FIXTURES.glob("*.expected.json"))


@pytest.fixture
def con(tmp_path):
    c = db.connect(tmp_path / "t.duckdb")
    views.install_macros(c)
    yield c
    c.close()


def _fixture(want: dict) -> Path:
    """A fixture of ours, or a real file of ../shared/real-logs (never copied here)."""
    if want["fixture"].startswith("../shared/"):
        return require_shared() / want["fixture"].removeprefix("../shared/real-logs/")
    return FIXTURES / want["fixture"]


def _figures(con, codes):
    return con.execute(
        """
        select count(*), count(*) filter (where outcome = 'failure'),
               count(*) filter (where is_system_failure(outcome, error_code, $codes)),
               count(*) filter (where user_id is null), count(distinct user_id),
               strftime(min(ts), '%Y-%m-%dT%H:%M:%S.%g') || 'Z',
               strftime(max(ts), '%Y-%m-%dT%H:%M:%S.%g') || 'Z'
        from auth_events
        """,
        {"codes": codes},
    ).fetchall()[0]


@pytest.mark.parametrize("expected", EXPECTED, ids=[p.name.split(".")[0] for p in EXPECTED])
def test_each_preset_reads_its_documented_fixture_to_the_known_counts(con, expected):
    want = json.loads(expected.read_text())
    path = _fixture(want)
    res = load.load(con, auth=path, auth_format=want["preset"]).files[0]
    assert (res.rows_read, res.rows_loaded, res.rows_rejected, res.rows_skipped) == (
        want["rows_read"],
        want["rows_loaded"],
        want["rows_rejected"],
        want["rows_skipped"],
    )
    assert res.rows_read == res.rows_loaded + res.rows_rejected + res.rows_skipped
    unmatched = f"not a {want['preset']} line"
    skipped = {("(unmatched)" if k == unmatched else k): n for k, n in res.skipped.items()}
    assert skipped == want["skipped_by_kind"]
    codes = list(config.USER_ERROR_CODES) + registry.user_codes([want["preset"]])
    attempts, failures, system, no_user, users, first, last = _figures(con, codes)
    assert attempts == want["attempts"]
    assert failures == want["failures"]
    assert system == want["system_failures"]
    assert no_user == want["attempts_without_user"]
    assert users == want["distinct_users"]
    assert (first, last) == (want["first_ts"], want["last_ts"])
    rejected = [r[0] for r in con.execute("select line from rejects order by line").fetchall()]
    assert rejected == sorted(r["record"] for r in want["rejected"])


@pytest.mark.parametrize("expected", EXPECTED, ids=[p.name.split(".")[0] for p in EXPECTED])
def test_auto_recognises_each_preset_by_its_content(tmp_path, expected):
    want = json.loads(expected.read_text())
    path = _fixture(want)
    # the ending says nothing: the content decides
    plain = tmp_path / "export.log"
    plain.write_bytes(path.read_bytes())
    reader, why = load.choose_reader(plain, "auto", load.AUTH)
    assert reader.name == want["preset"] and why


def test_a_preset_is_in_the_registry_and_the_choices(tmp_path):
    for name in ("okta", "auth0", "keycloak"):
        if (definitions.PRESET_DIR / f"{name}.yaml").exists():
            assert name in registry.names("auth")
            assert registry.READERS[name].preset


# --- the engine's rules, on logs written here ---

DEFINITION = """
name: gateway
description: our gateway's JSON log
input: json
records: entries[]
signature: {fields: [when, verdict, action]}
attempts: {field: action, values: [login], prefixes: ["sso."]}
fields:
  ts: when
  user_id: {path: [who.name, who.id], null_values: ["-"]}
  outcome: {path: verdict, map: {OK: success, "DENY*": failure, STEP: skip}}
  error_code: why
timestamp: epoch_ns
extras:
  region: '"geo.region"'
  tenant: attrs[key=tenant].value.stringValue
constants: {auth_path: gateway}
error_classes: {user: [bad_password]}
"""

DOCUMENT = {
    "entries": [
        {
            "when": "1705660200123456789",
            "who": {"name": "ann"},
            "verdict": "OK",
            "action": "login",
            "geo.region": "eu",
            "attrs": [{"key": "tenant", "value": {"stringValue": "t1"}}],
        },
        {
            "when": "1705660260000000000",
            "who": {"id": "u-2"},
            "verdict": "DENY_PASSWORD",
            "action": "sso.saml",
            "why": "bad_password",
        },
        {
            "when": "1705660320000000000",
            "who": {"name": "-"},
            "verdict": "deny",
            "action": "login",
            "why": "upstream_timeout",
        },
        {
            "when": "1705660380000000000",
            "who": {"name": "ann"},
            "verdict": "STEP",
            "action": "login",
        },
        {
            "when": "1705660440000000000",
            "who": {"name": "ann"},
            "verdict": "OK",
            "action": "logout",
        },
        {"when": "soon", "who": {"name": "bob"}, "verdict": "OK", "action": "login"},
        {
            "when": "1705660500000000000",
            "who": {"name": "bob"},
            "verdict": "MAYBE",
            "action": "login",
        },
    ]
}


def test_a_definition_reads_nested_paths_maps_epochs_and_counts_what_it_skips(con, tmp_path):
    d = tmp_path / "gateway.yaml"
    d.write_text(DEFINITION)
    log = tmp_path / "gw.json"
    log.write_text(json.dumps(DOCUMENT, indent=2))
    res = load.load(con, auth=log, auth_format=str(d)).files[0]
    assert (res.rows_read, res.rows_loaded, res.rows_rejected, res.rows_skipped) == (7, 3, 2, 2)
    assert res.skipped == {"logout": 1, "outcome not final": 1}
    rows = con.execute(
        "select strftime(ts, '%Y-%m-%dT%H:%M:%S.%f'), user_id, outcome, error_code, region, "
        "tenant, auth_path from auth_events order by line"
    ).fetchall()
    assert rows == [
        ("2024-01-19T10:30:00.123456", "ann", "success", None, "eu", "t1", "gateway"),
        ("2024-01-19T10:31:00.000000", "u-2", "failure", "bad_password", None, None, "gateway"),
        ("2024-01-19T10:32:00.000000", None, "failure", "upstream_timeout", None, None, "gateway"),
    ]
    reasons = con.execute("select line, reason from rejects order by line").fetchall()
    assert reasons == [(6, "unparseable or impossible time: soon"), (7, "unknown outcome: MAYBE")]
    assert registry.user_codes([res.format], given=str(d)) == ["bad_password"]


def test_the_same_definition_reads_json_lines_and_is_recognised_by_content(con, tmp_path):
    d = tmp_path / "gateway.yaml"
    d.write_text(DEFINITION)
    log = tmp_path / "gw.ndjson"
    log.write_text(
        "\n".join(json.dumps({"entries": [e]}) for e in DOCUMENT["entries"]) + "\n{oops\n"
    )
    res = load.load(con, auth=log, auth_format=str(d)).files[0]
    assert (res.rows_read, res.rows_loaded, res.rows_rejected, res.rows_skipped) == (8, 3, 3, 2)
    # JSON Lines keep their line numbers
    assert con.execute("select line from rejects order by line").fetchall() == [(6,), (7,), (8,)]
    sniff = sources.sniffer_for(definitions.read_definition(d))
    assert sniff(log.read_text().splitlines()[:3])


TEXT_DEFINITION = r"""
name: portal
input: text
pattern: '^(?P<ts>\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}) (?P<rest>.*)$'
keyvalues: rest
skip_lines: ["#"]
attempts: {field: event}
fields:
  ts: ts
  user_id: {path: user, null_values: ["null"]}
  outcome: {path: status, map: {"2*": success, "3*": success, "4*": failure, "5*": failure}}
  error_code: status
timestamp: "%d/%b/%Y:%H:%M:%S %z"
"""


def test_a_text_definition_reads_key_value_lines_with_zoned_times(con, tmp_path):
    d = tmp_path / "portal.yaml"
    d.write_text(TEXT_DEFINITION)
    log = tmp_path / "portal.txt"
    log.write_text(
        "# started\n"
        '19/Jan/2024:11:30:00 +0100 event=login, user="ann", status=200\n'
        "19/Jan/2024:11:31:00 +0100 event=login, user=null, status=503\n"
        "garbage line\n"
        "19/Jan/2024:11:32:00 +0100 user=bob, status=401\n"
    )
    res = load.load(con, auth=log, auth_format=str(d)).files[0]
    assert (res.rows_read, res.rows_loaded, res.rows_rejected, res.rows_skipped) == (5, 2, 0, 3)
    assert res.skipped == {"comment line": 1, "not a portal line": 1, "(none)": 1}
    rows = con.execute(
        "select strftime(ts, '%H:%M'), user_id, outcome, error_code from auth_events order by line"
    ).fetchall()
    assert rows == [("10:30", "ann", "success", "200"), ("10:31", None, "failure", "503")]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("name: x\nfields: {ts: a, outcome: b}\nrecrods: x\n", "unknown key(s) recrods"),
        ("name: x\nfields: {ts: a}\n", "no path for outcome"),
        ("name: x\nfields: {ts: a, outcome: b, who: c}\n", "fields.who: not a column"),
        ("name: x\nfields: {ts: a, outcome: b}\ntimestamp: nanos\n", "timestamp 'nanos'"),
        ("name: x\ninput: text\npattern: '(a'\nfields: {ts: a, outcome: b}\n", "pattern:"),
        ("- a\n- b\n", "is a mapping"),
    ],
)
def test_a_definition_that_cannot_be_used_is_one_clear_error(con, tmp_path, text, fragment):
    d = tmp_path / "mine.yaml"
    d.write_text(text)
    log = tmp_path / "a.json"
    log.write_text('{"a": 1}\n')
    with pytest.raises(errors.LoadError, match=None) as err:
        load.load(con, auth=log, auth_format=str(d))
    assert str(d) in str(err.value) and fragment in str(err.value)
    assert con.execute("select count(*) from sources").fetchall() == [(0,)]


def test_json_paths_quote_dotted_keys_and_iterate_arrays():
    assert definitions.json_path("actor.alternateId") == "$.actor.alternateId"
    assert definitions.json_path('"event.outcome"') == '$."event.outcome"'
    assert definitions.json_path("resourceLogs[].scopeLogs[].logRecords[]") == (
        "$.resourceLogs[*].scopeLogs[*].logRecords[*]"
    )
    assert definitions.json_path("@timestamp") == "$.@timestamp"


def test_a_file_that_is_not_json_at_all_is_refused_by_a_json_preset(con, tmp_path):
    log = tmp_path / "access.log"
    log.write_text('10.0.0.2 - - [18/Nov/2018:21:34:30 +0000] "GET / HTTP/2.0" 401 17\n' * 3)
    with pytest.raises(errors.LoadError, match="no record is a JSON object; is it a .*okta"):
        load.load(con, auth=log, auth_format="okta")
    assert con.execute("select count(*) from rejects").fetchall() == [(0,)]


def test_an_access_log_without_a_login_request_says_to_name_the_path(con, tmp_path):
    path = tmp_path / "access.log"
    path.write_text(
        '10.0.0.1 - - [19/Jan/2024:10:30:00 +0000] "GET /home HTTP/1.1" 200 12 "-" "curl"\n'
        '10.0.0.2 - - [19/Jan/2024:10:30:01 +0000] "POST /api/auth HTTP/1.1" 401 3 "-" "curl"\n',
        encoding="utf-8",
    )
    res = load.load(con, auth=path, auth_format="access").files[0]
    assert (res.rows_loaded, res.skipped) == (0, {"not a login path": 2})
    assert any("--login-path" in note for note in res.notes), res.notes
    res = load.load(con, auth=path, auth_format="access", login_paths=["/api/auth"]).files[0]
    assert res.rows_loaded == 1


@pytest.mark.parametrize(
    # a unit too large makes impossible times, rejected with their reason; one too small
    # makes January 1970, which only this check catches
    ("given", "fits"),
    [("epoch_ms", "epoch_s"), ("epoch_us", "epoch_ms"), ("epoch_ns", "epoch_us")],
)
def test_an_epoch_unit_that_puts_the_times_before_1990_is_refused_with_the_unit_that_fits(
    con, tmp_path, given, fits
):
    per_second = {"epoch_s": 1, "epoch_ms": 1000, "epoch_us": 10**6, "epoch_ns": 10**9}
    d = tmp_path / "t.yaml"
    d.write_text(
        "name: t\ninput: json\nrecords: $\nfields: {ts: t, user_id: u, outcome: o}\n"
        f"timestamp: {given}\n"
    )
    log = tmp_path / "t.jsonl"
    # 2021-07-23 in the unit that fits, and one record of 0 (a single odd one is no matter)
    stamps = [1627024911 * per_second[fits] + i for i in range(5)]
    rows = [{"t": s, "u": "ann", "o": "success"} for s in stamps] + [
        {"t": 0, "u": "bob", "o": "success"}
    ]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    before = con.execute("select count(*) from sources").fetchall()
    with pytest.raises(
        errors.LoadError,
        match=rf"timestamp {given} puts its times at .* `timestamp: {fits}` fits them",
    ):
        load.load(con, auth=log, auth_format=str(d))
    assert con.execute("select count(*) from sources").fetchall() == before
    assert con.execute("select count(*) from auth_events").fetchall() == [(0,)]
    # with the unit that fits, the file loads, its odd record with it
    d.write_text(d.read_text().replace(given, fits))
    assert load.load(con, auth=log, auth_format=str(d)).files[0].rows_loaded == 6


def test_a_text_path_that_names_no_group_is_refused_before_any_row(con, tmp_path):
    d = tmp_path / "t.yaml"
    d.write_text(
        "name: t\ninput: text\n"
        "pattern: '^(?P<ts>\\S+) (?P<user>\\S+) (?P<result>\\S+)$'\n"
        "fields: {ts: ts, user_id: User, outcome: result}\n"
    )
    log = tmp_path / "t.log"
    log.write_text("2024-01-19T10:00:00Z ann success\n")
    with pytest.raises(errors.LoadError, match=r"fields.user_id: 'User' names no group .*user"):
        load.load(con, auth=log, auth_format=str(d))
    assert con.execute("select count(*) from auth_events").fetchall() == [(0,)]
    d.write_text(d.read_text().replace("user_id: User", "user_id: user"))
    assert load.load(con, auth=log, auth_format=str(d)).files[0].rows_loaded == 1
    assert con.execute("select user_id from auth_events").fetchall() == [("ann",)]


@pytest.mark.parametrize("typo", ["succes", "Failed", "skipped"])
def test_an_outcome_map_to_a_value_that_is_no_outcome_is_refused(tmp_path, typo):
    with pytest.raises(errors.DefinitionError, match=rf"'ok' maps to '{typo}', not one of"):
        definitions.parse(
            {"name": "t", "fields": {"ts": "t", "outcome": {"path": "r", "map": {"OK": typo}}}},
            origin="t.yaml",
        )
    ok = {"OK": "Success", "NO": "failure", "STEP": "skip", "X": None}
    assert definitions.parse(
        {"name": "t", "fields": {"ts": "t", "outcome": {"path": "r", "map": ok}}},
        origin="t.yaml",
    )


def test_a_refused_definition_leaves_no_database_behind(tmp_path):
    import subprocess
    import sys

    d = tmp_path / "bad.yaml"
    d.write_text("name: bad\nfields: {ts: t, outcome: {path: r, map: {OK: succes}}}\n")
    log = tmp_path / "a.jsonl"
    log.write_text('{"t": "2024-01-19T10:00:00Z", "r": "OK"}\n')
    database = tmp_path / "new.duckdb"
    done = subprocess.run(
        [sys.executable, "-m", "analysis.cli", "load", "--database", str(database)]
        + ["--auth", str(log), "--auth-format", str(d)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.strip().endswith("not one of success, failure, skip or null")
    assert done.stderr.count("\n") == 1
    assert not database.exists() and not list(tmp_path.glob("new.duckdb*"))


def test_auto_knows_a_keycloak_server_log_whose_events_are_a_few_of_its_lines(con, tmp_path):
    # a server's start-up, stack traces and JSON lines around a few event lines
    fixture = (FIXTURES / "keycloak-log.log").read_text(encoding="utf-8").splitlines()
    events = [line for line in fixture if "[org.keycloak.events]" in line][:4]
    noise = [
        "2024-01-19 10:29:5{i},000 INFO  [io.quarkus] (main) Installed features: [agroal, cdi]",
        '{"timestamp":"2024-01-19T10:29:5{i}Z","level":"INFO","loggerName":"io.quarkus"}',
        "\tat org.keycloak.services.resources.KeycloakApplication.<init>(App.java:{i})",
    ]
    lines = [n.replace("{i}", str(i % 10)) for i in range(12) for n in noise] + events
    log = tmp_path / "server.log"
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    res = load.load(con, auth=log).files[0]
    assert res.format == "keycloak-log"
    assert res.rows_loaded + res.rows_rejected + res.rows_skipped == res.rows_read


def test_auto_knows_an_ecs_export_whose_first_documents_are_not_sign_ins(con, tmp_path):
    # an application's own log lines, in ECS but with no event category
    other = {
        "@timestamp": "2024-01-19T10:00:00Z",
        "ecs": {"version": "8.11.0"},
        "log": {"level": "info"},
        "message": "worker started",
    }
    signins = (FIXTURES / "ecs.jsonl").read_text(encoding="utf-8")
    log = tmp_path / "export.ndjson"
    log.write_text("\n".join([json.dumps(other)] * 25) + "\n" + signins)
    res = load.load(con, auth=log).files[0]
    assert res.format == "ecs"
    assert res.rows_skipped >= 25


def test_a_timestamp_format_without_a_year_is_refused_not_loaded_as_1900(con, tmp_path):
    d = tmp_path / "t.yaml"
    d.write_text(
        "name: t\ninput: text\n"
        "pattern: '^(?P<ts>\\w+ +\\d+ [\\d:]+) (?P<user>\\S+) (?P<result>\\S+)$'\n"
        "fields: {ts: ts, user_id: user, outcome: result}\n"
        "timestamp: '%b %d %H:%M:%S'\n"
    )
    log = tmp_path / "t.log"
    log.write_text("Dec 10 06:55:46 ann success\nDec 10 06:55:48 bob failure\n")
    with pytest.raises(errors.LoadError, match=r"'%b %d %H:%M:%S' has no year, .* fall in 1900"):
        load.load(con, auth=log, auth_format=str(d))
    assert con.execute("select count(*) from auth_events").fetchall() == [(0,)]


ACTIVITY_DEFINITION = """
name: activities
records: ["items[]", "$"]
attempts: {field: "events[].name", values: [login_success, login_failure]}
fields:
  ts: id.time
  user_id: actor.email
  outcome: {path: "events[].name", map: {login_success: success, login_failure: failure}}
  error_code: "events[].parameters[name=login_failure_type].value"
extras:
  first_event: "events[0].name"
  second_event: "events[1].name"
"""


def _activity(t, who, *names, failure_type=None):
    params = [{"name": "login_failure_type", "value": failure_type}] if failure_type else []
    return {
        "id": {"time": t},
        "actor": {"email": who},
        "events": [{"name": n, "parameters": params} for n in names],
    }


def test_paths_through_arrays_read_every_element_index_one_and_select_by_key(con, tmp_path):
    d = tmp_path / "activities.yaml"
    d.write_text(ACTIVITY_DEFINITION)
    log = tmp_path / "activities.json"
    items = [
        _activity("2024-01-19T10:30:00Z", "ann", "login_success"),
        _activity("2024-01-19T10:31:00Z", "bob", "login_failure", failure_type="bad_password"),
        _activity("2024-01-19T10:32:00Z", "bob", "login_verification"),
        # two events: an attempt because one of them is; the first names the outcome
        _activity("2024-01-19T10:33:00Z", "cy", "login_success", "logout"),
    ]
    log.write_text(json.dumps({"items": items}, indent=2))
    res = load.load(con, auth=log, auth_format=str(d)).files[0]
    assert (res.rows_loaded, res.skipped) == (3, {"login_verification": 1})
    rows = con.execute(
        "select user_id, outcome, error_code, first_event, second_event from auth_events "
        "order by line"
    ).fetchall()
    assert rows == [
        ("ann", "success", None, "login_success", None),
        ("bob", "failure", "bad_password", "login_failure", None),
        ("cy", "success", None, "login_success", "logout"),
    ]


def test_a_pretty_printed_single_record_is_one_record(con, tmp_path):
    log = tmp_path / "one.json"
    event = {
        "eventTime": "2024-01-19T10:30:00Z",
        "eventName": "ConsoleLogin",
        "eventSource": "signin.amazonaws.com",
        "userIdentity": {"type": "IAMUser", "userName": "ann", "arn": "arn:aws:iam::1:user/ann"},
        "responseElements": {"ConsoleLogin": "Failure"},
        "errorMessage": "Failed authentication",
    }
    log.write_text(json.dumps(event, indent=2))
    res = load.load(con, auth=log, auth_format="cloudtrail").files[0]
    assert (res.rows_read, res.rows_loaded) == (1, 1)
    assert con.execute("select outcome from auth_events").fetchall() == [("failure",)]


def test_json_written_as_text_in_a_field_is_read_inside(con, tmp_path):
    d = tmp_path / "wrapped.yaml"
    d.write_text(
        "name: wrapped\nfields:\n  ts: message:json.t\n  user_id: message:json.who.id\n"
        "  outcome: {path: 'message:json.ok', map: {'true': success, 'false': failure}}\n"
    )
    log = tmp_path / "w.jsonl"
    inner = [{"t": "2024-01-19T10:30:00Z", "who": {"id": "ann"}, "ok": True}]
    inner.append({"t": "2024-01-19T10:31:00Z", "who": {"id": "bob"}, "ok": False})
    lines_ = [json.dumps({"message": json.dumps(i)}) for i in inner]
    log.write_text("\n".join([*lines_, json.dumps({"message": "{not json"})]) + "\n")
    res = load.load(con, auth=log, auth_format=str(d)).files[0]
    assert (res.rows_loaded, res.rows_rejected) == (2, 1)
    got = con.execute("select user_id, outcome from auth_events order by line").fetchall()
    assert got == [("ann", "success"), ("bob", "failure")]


def test_a_csv_definition_reads_by_header_name_and_refuses_a_column_the_header_lacks(
    con, tmp_path
):
    d = tmp_path / "vendor.yaml"
    d.write_text(
        "name: vendor\ninput: csv\nsignature: {fields: [When, Who, Result]}\n"
        "fields: {ts: When, user_id: Who, outcome: {path: Result, map: {OK: success}, "
        "default: failure}, error_code: {path: Result, map: {OK: null}}}\n"
    )
    log = tmp_path / "export.csv"
    log.write_text(
        'When,Who,Result\n2024-01-19T10:30:00Z,"Ann, A.",OK\n2024-01-19T10:31:00Z,bob,LOCKED\n'
        "2024-01-19T10:32:00Z,cy\n"
    )
    res = load.load(con, auth=log, auth_format=str(d)).files[0]
    assert (res.rows_read, res.rows_loaded, res.rows_rejected) == (3, 2, 1)
    rows = con.execute("select user_id, outcome, error_code from auth_events order by line")
    assert rows.fetchall() == [("Ann, A.", "success", None), ("bob", "failure", "LOCKED")]
    assert con.execute("select line, reason from rejects").fetchall() == [
        (4, "wrong column count: expected 3, got 2")
    ]
    # the same definition on a CSV whose header lacks a column it reads: nothing is loaded
    other = tmp_path / "other.csv"
    other.write_text("Time,Who,Result\n2024-01-19T10:30:00Z,ann,OK\n")
    with pytest.raises(errors.LoadError, match=r"fields.ts reads When, which the CSV header"):
        load.load(con, auth=other, auth_format=str(d))


def test_a_path_with_a_bracket_that_reads_nothing_is_refused():
    with pytest.raises(errors.DefinitionError, match=r"'events\[x\]' is not a key"):
        definitions.parse({"fields": {"ts": "events[x].t", "outcome": "o"}}, origin="d.yaml")


def test_auto_tries_the_incident_folders_own_definitions_first(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "DEFINITIONS_DIR", tmp_path / "definitions")
    log = tmp_path / "gw.log"
    log.write_text(json.dumps({"when": "2024-01-19T10:30:00Z", "who": "ann", "verdict": "OK"}))
    with pytest.raises(errors.LoadError) as refused:
        load.choose_reader(log, "auto", load.AUTH)
    # the refusal says what it saw and where a definition would go
    assert "keys when, who, verdict" in str(refused.value)
    assert "postmortem definition FILE" in str(refused.value)
    config.DEFINITIONS_DIR.mkdir()
    (config.DEFINITIONS_DIR / "gw.yaml").write_text(
        "name: gw\nsignature: {fields: [when, who, verdict]}\n"
        "fields: {ts: when, user_id: who, outcome: {path: verdict, map: {OK: success}}}\n"
        "error_classes: {user: [gw_denied]}\n"
    )
    reader, why = load.choose_reader(log, "auto", load.AUTH)
    assert (reader.name, why) == ("gw", "its records have when, who, verdict")
    assert load.choose_reader(log, "gw", load.AUTH)[0].name == "gw"
    assert registry.user_codes(["gw"]) == ["gw_denied"]
    (config.DEFINITIONS_DIR / "okta.yaml").write_text("name: okta\nfields: {ts: a, outcome: b}\n")
    with pytest.raises(errors.LoadError, match="name 'okta' is a format of ours"):
        load.choose_reader(log, "auto", load.AUTH)
