"""Parameters: defaults, config files, and hostile values refused before anything runs."""

from __future__ import annotations

import pytest

from analysis import config, db, errors, times
from analysis.figures import views
from analysis.ingest import loader as load
from analysis.report import params


def test_defaults_are_the_contracts():
    p = params.resolve({})
    assert p["incident_id"] == "2024-01-19-auth"
    assert (p["incident_start"], p["incident_end"]) == (
        "2024-01-19T10:30:00Z",
        "2024-01-19T14:45:00Z",
    )
    assert p["report_dir"] == "reports/2024-01-19-auth"
    assert p["bucket"] == "1min" and p["redact_users"] is True
    assert "invalid_credentials" in p["user_error_codes"]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"incident_id": "../../etc"}, "not a plain name"),
        ({"incident_id": "a;rm -rf /"}, "not a plain name"),
        ({"incident_start": "2024-01-19 10:30'; drop table auth_events; --"}, "incident_start"),
        ({"incident_start": "2024-01-19T10:30:00"}, "no time zone"),
        ({"incident_end": "2024-01-19T09:00:00Z"}, "after incident_start"),
        ({"bucket": "1 minute'; drop table x"}, "not a duration"),
        ({"bucket": "0min"}, "longer than zero"),
        ({"auth_format": "../../x"}, "auth_format"),
        ({"query_format": "sql; drop"}, "query_format"),
        ({"incident_strat": "x"}, "unknown parameter"),
    ],
)
def test_hostile_or_wrong_values_are_refused(given, message):
    with pytest.raises(ValueError, match=message):
        params.resolve(given)


def test_a_hostile_time_zone_is_refused_and_the_database_untouched(tmp_path):
    con = db.connect(":memory:")
    f = tmp_path / "a.jsonl"
    f.write_text('{"ts": "2024-01-19 10:30:00", "user_id": "u", "outcome": "success"}\n')
    with pytest.raises(errors.LoadError, match="not a known time zone"):
        load.load(con, auth=f, source_timezone="UTC'; drop table auth_events; --")
    assert con.execute("select count(*) from auth_events").fetchall() == [(0,)]


def test_hostile_error_codes_are_bound_values_not_sql(tmp_path):
    from analysis.figures import metrics

    con = db.connect(":memory:")
    f = tmp_path / "a.jsonl"
    f.write_text(
        '{"ts": "2024-01-19T10:30:00Z", "user_id": "u", "outcome": "failure",'
        ' "error_code": "x\'); drop table auth_events; --"}\n'
    )
    load.load(con, auth=f)
    views.scope(con)
    p = metrics.Params(
        start=times.parse_instant("2024-01-19T10:00:00Z"),
        end=times.parse_instant("2024-01-19T11:00:00Z"),
        user_error_codes=("x'); drop table auth_events; --",),
    )
    fig = metrics.periods(con, p)["incident"]
    assert (fig["failures"], fig["system_failures"]) == (1, 0)
    assert con.execute("select count(*) from auth_events").fetchall() == [(1,)]


def test_config_file_values_and_errors(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("incident_id: x1\nbucket: 5min\nredact_users: false\n")
    assert params.read_config(cfg) == {
        "incident_id": "x1",
        "bucket": "5min",
        "redact_users": False,
    }
    cfg.write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="mapping"):
        params.read_config(cfg)
    with pytest.raises(ValueError, match="no such config"):
        params.read_config(tmp_path / "missing.yaml")


def test_naming_one_input_does_not_bring_in_the_samples_other_inputs():
    from analysis import cli
    from analysis.report import command as execute

    args = cli.build_parser().parse_args(["report", "--auth", "mine.jsonl"])
    p = execute.gather_parameters(args)
    assert (p["auth_logs"], p["query_logs"], p["timeline"]) == (["mine.jsonl"], "", "")
    assert params.input_list(p["query_logs"]) == [] and params.input_list(["", " "]) == []
    default = execute.gather_parameters(cli.build_parser().parse_args(["report"]))
    assert default["query_logs"] == "data/sample/db_queries.jsonl"


def test_report_refuses_to_replace_a_folder_that_is_not_a_report(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    victim = tmp_path / "logs"
    victim.mkdir()
    (victim / "notes.txt").write_text("keep me")
    auth = tmp_path / "auth.jsonl"
    auth.write_text('{"ts": "2024-01-19T10:30:00Z", "user_id": "u", "outcome": "success"}\n')
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "postmortem"),
            "report",
            "--auth",
            str(auth),
            "--database",
            str(tmp_path / "d.duckdb"),
            "--out",
            str(victim),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "not a report folder" in proc.stderr
    assert (victim / "notes.txt").read_text() == "keep me"


def test_the_notebooks_parameters_are_the_one_definition():
    # papermill reads each notebook's parameters cell: names, types, defaults and help must be
    # exactly those of analysis.report.params.PARAMETERS, in order
    # (python -m analysis.report.params --write)
    import papermill

    # papermill cannot read a parameter line whose comment holds '=' (it drops the name)
    assert [p.name for p in params.PARAMETERS if "=" in p.help] == []
    for nb in ("incident_report.ipynb", "explore.ipynb"):
        found = papermill.inspect_notebook(str(config.NOTEBOOKS_DIR / nb))
        assert list(found) == [p.name for p in params.PARAMETERS], nb
        for p in params.PARAMETERS:
            got = found[p.name]
            assert got["inferred_type_name"] == p.type.__name__, (nb, p.name)
            assert eval(got["default"]) == p.default, (nb, p.name)  # noqa: S307 - a literal
            # papermill reads no help from a list written over several lines
            assert got["help"].strip() in (p.help, ""), (nb, p.name)
        import nbformat

        cell = [
            c
            for c in nbformat.read(config.NOTEBOOKS_DIR / nb, as_version=4).cells
            if "parameters" in c.metadata.get("tags", [])
        ]
        assert [c.source for c in cell] == [params.cell_source()], nb


def test_every_parameter_has_a_flag_and_the_flags_reach_the_parameters():
    from analysis import cli
    from analysis.report import command as execute

    args = cli.build_parser().parse_args(
        ["report", "--start", "2024-01-19T10:00:00Z", "--login-path", "/api/login", "/sso",
         "--no-redact-users", "--year", "2023", "--auth", "a.log", "--auth-format", "access"]
    )  # fmt: skip
    given = {k: getattr(args, k) for k in params.DEFAULTS if getattr(args, k, None) is not None}
    assert given["login_path"] == ["/api/login", "/sso"]
    assert given["redact_users"] is False and given["year"] == 2023
    assert given["incident_start"] == "2024-01-19T10:00:00Z"
    flags = {
        a.dest for a in cli.build_parser()._subparsers._group_actions[0].choices["report"]._actions
    }
    assert {p.name for p in params.PARAMETERS} <= flags
    assert execute.gather_parameters(args)["login_path"] == ["/api/login", "/sso"]


@pytest.mark.parametrize("value", ["maybe", "2", "redact"])
def test_a_yes_or_no_parameter_refuses_anything_else(value):
    # privacy fails closed: a value that is neither must never write user ids in clear
    with pytest.raises(errors.ParameterError, match=rf"redact_users '{value}': true or false"):
        params.resolve({"redact_users": value})
    assert params.resolve({"redact_users": "No"})["redact_users"] is False
    assert params.resolve({"redact_users": "yes"})["redact_users"] is True
