"""The report end to end: the CLI and plain papermill on the sample, byte-identical re-runs,
the postmortem draft, verify, and the failures a user meets."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
HASHED = ("summary.json", "postmortem.md", "manifest.json")


def postmortem(*args: str, cwd: Path | None = None, check: bool = True, env=None):
    proc = subprocess.run(
        [str(BIN / "postmortem"), "-q", *args],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"postmortem {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def sample_args(sample: dict[str, Path]) -> list[str]:
    return [
        "--auth",
        str(sample["auth"]),
        "--queries",
        str(sample["queries"]),
        "--timeline",
        str(sample["timeline"]),
    ]


@pytest.fixture(scope="session")
def report(small_sample, tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("report")
    out = base / "reports" / "first"
    postmortem(
        "report",
        *sample_args(small_sample),
        "--database",
        str(base / "a.duckdb"),
        "--out",
        str(out),
        "--explore",
    )
    return out


def test_the_report_folder_has_every_file(report):
    for name in (
        *HASHED,
        "incident_report.ipynb",
        "incident_report.html",
        "SENSITIVE-bypass-users.csv",
    ):
        assert (report / name).is_file(), name
    for chart in (
        "overview",
        "error_codes",
        "fingerprints",
        "affected_users",
        "dimensions",
        "bypass",
    ):
        for ext in ("png", "svg"):
            assert (report / "figures" / f"{chart}.{ext}").stat().st_size > 1000
    assert not list(report.parent.glob(".*partial*")), "the staging folder was left behind"


def test_the_exploration_html_shows_the_detected_window_as_tables_without_widgets(report):
    """Where no widget can be drawn, the explorer is its static chart and tables: the
    comparison of the detected window against the rest."""
    page = (report / "explore.html").read_text(encoding="utf-8")
    summary = json.loads((report / "summary.json").read_text(encoding="utf-8"))
    detected = summary["window"]["detected"]
    start = detected["start"][:16].replace("T", " ")
    assert f"{start}–{detected['end'][11:16]} UTC against the rest" in page
    for table in ("signals", "dimensions", "fingerprints", "error-codes", "worst-minutes"):
        assert f"pm-table-{table}" in page, table
    assert "widget-view+json" not in page and "widget-state+json" not in page
    # the explorer wrote nothing: every file of the folder is the report's own
    files = {p.relative_to(report).as_posix() for p in report.rglob("*") if p.is_file()}
    manifest = json.loads((report / "manifest.json").read_text(encoding="utf-8"))
    listed = {o["path"] for o in manifest["outputs"]} | {"manifest.json"}
    assert files - listed <= {
        "incident_report.ipynb",
        "incident_report.html",
        "explore.ipynb",
        "explore.html",
        "SENSITIVE-bypass-users.csv",
    }


def test_the_sample_tells_the_postmortems_story(report):
    s = json.loads((report / "summary.json").read_text())
    det = s["window"]["detected"]
    assert "2024-01-19T10:20:00Z" <= det["start"] <= "2024-01-19T10:35:00Z"
    assert "2024-01-19T14:40:00Z" <= det["end"] <= "2024-01-19T14:55:00Z"
    assert 0.27 <= s["impact"]["affected_share"] <= 0.33
    assert s["db"]["amplification"] >= 3
    assert s["db"]["queries_per_auth"]["method"] == "request_id"
    assert "permissions" in s["db"]["top_fingerprints"][0]["fingerprint"]
    assert (
        s["db"]["latency_p95_ms"]["incident"] > 1000 > 10 > s["db"]["latency_p95_ms"]["baseline"]
    )
    assert s["bypass"]["on_at_declared_end"] and s["bypass"]["logins_after_declared_end"] > 0
    assert s["dimensions"][0]["score"] > 0
    assert s["timeline"]["trigger"]["text"]
    for key in ("auth", "queries"):
        i = s["ingest"][key]
        assert i["rows_read"] == i["rows_loaded"] + i["rows_rejected"] > 0


def test_the_draft_takes_its_numbers_from_the_summary(report):
    s = json.loads((report / "summary.json").read_text())
    md = (report / "postmortem.md").read_text()
    for heading in (
        "## Duration",
        "## Impact",
        "## Timeline",
        "## Root cause and resolution",
        "## Corrective and preventive measures",
        "## Evidence",
    ):
        assert heading in md
    imp = s["impact"]
    assert f"{imp['users_affected']:,} of {imp['users_active']:,} users" in md
    assert f"({100 * imp['affected_share']:.1f}%)" in md
    assert f"×{s['db']['amplification']:.2f}" in md
    assert f"{s['bypass']['logins']:,} logins by {s['bypass']['users']:,} users" in md
    assert "The bypass outlived the fix" in md
    for link in re.findall(r"\]\((figures/[^)]+)\)", md):
        assert (report / link).is_file(), link
    assert len(re.findall(r"\]\((figures/[^)]+)\)", md)) == 6


def test_no_user_id_email_or_ip_in_clear_in_the_report(report, small_sample):
    users = {json.loads(line)["user_id"] for line in small_sample["auth"].open()}
    # ids are word characters only, so "u123 between word boundaries" is "u123 is one of the
    # text's words": one pass over each file instead of one search per user (95 s)
    assert all(re.fullmatch(r"\w+", u) for u in users)
    emails = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
    ips = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
    scanned = 0
    for path in report.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".md", ".csv", ".html", ".ipynb", ".svg"):
            text = path.read_text(errors="replace")
            scanned += 1
            leaked = sorted(users.intersection(re.findall(r"\w+", text)))
            assert not leaked, f"{path.name} holds user ids in clear: {leaked[:3]}"
            found = [e for e in emails.findall(text) if not e.endswith((".png", ".svg"))]
            assert not found, f"{path.name} holds e-mail addresses: {found[:3]}"
            assert not ips.findall(text), f"{path.name} holds IP addresses"
    assert scanned >= 10


def test_the_html_shows_a_short_loading_summary_and_no_path_of_the_machine(report, small_sample):
    where = [str(small_sample["auth"].parent), str(report.parent), str(ROOT)]
    for page in ("incident_report.html", "explore.html"):
        text = re.sub(
            r"data:image/[a-z+]+;base64,[A-Za-z0-9+/=]+", "", (report / page).read_text()
        )
        assert not [w for w in where if w in text], page
        # one line per kind of input, not the loader's progress lines
        assert "MB read" not in text, page
        summary = [x for x in text.splitlines() if "rows read" in x and "loaded" in x]
        assert len(summary) == 3, (page, summary)
        assert any(small_sample["auth"].name in x for x in summary), page


def test_the_manifest_records_inputs_parameters_versions_and_outputs(report):
    m = json.loads((report / "manifest.json").read_text())
    assert {i["kind"] for i in m["inputs"]} == {"auth", "queries", "timeline"}
    assert all(len(i["sha256"]) == 64 and i["rows_read"] >= i["rows_loaded"] for i in m["inputs"])
    assert "database" not in m["parameters"] and "report_dir" not in m["parameters"]
    assert m["packages"]["duckdb"]
    hashed = {o["path"]: o["sha256"] for o in m["outputs"] if o["sha256"]}
    assert "summary.json" in hashed and "figures/overview.png" in hashed
    text = (report / "manifest.json").read_text()
    assert str(report) not in text and "a.duckdb" not in text


def test_two_runs_from_other_directories_are_byte_identical(report, small_sample, tmp_path):
    # the same incident folder (its pseudonym key), named from another working directory
    other = tmp_path / "elsewhere" / "second"
    postmortem(
        "--project-dir",
        str(ROOT),
        "report",
        *sample_args(small_sample),
        "--database",
        str(tmp_path / "b.duckdb"),
        "--out",
        str(other),
        "--explore",
        cwd=tmp_path,
    )
    files = [*HASHED, *[p.relative_to(report).as_posix() for p in (report / "figures").iterdir()]]
    for name in files:
        assert (report / name).read_bytes() == (other / name).read_bytes(), name


def test_plain_papermill_cli_gives_the_same_summary(report, small_sample, tmp_path):
    out_dir = tmp_path / "pm"
    cmd = [
        str(BIN / "papermill"),
        str(ROOT / "notebooks" / "incident_report.ipynb"),
        str(tmp_path / "out.ipynb"),
        "-p",
        "auth_logs",
        str(small_sample["auth"]),
        "-p",
        "query_logs",
        str(small_sample["queries"]),
        "-p",
        "timeline",
        str(small_sample["timeline"]),
        "-p",
        "incident_start",
        "2024-01-19T10:30:00Z",
        "-p",
        "incident_end",
        "2024-01-19T14:45:00Z",
        "-p",
        "incident_id",
        "2024-01-19-auth",
        "-p",
        "database",
        str(tmp_path / "pm.duckdb"),
        "-p",
        "report_dir",
        str(out_dir),
    ]
    env = {k: v for k, v in os.environ.items() if k != "POSTMORTEM_STAGING_DIR"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out_dir / "summary.json").read_bytes() == (report / "summary.json").read_bytes()
    help_text = subprocess.run(
        [
            str(BIN / "papermill"),
            "--help-notebook",
            str(ROOT / "notebooks" / "incident_report.ipynb"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert "incident_start" in help_text and "declared start" in help_text


def test_verify_passes_and_then_fails_after_one_byte_changes(report, small_sample, tmp_path):
    ok = postmortem("verify", str(report), check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "OK" in ok.stdout
    copy = tmp_path / "timeline.yaml"
    # change one byte of an input the manifest names: verify must name that input
    m = json.loads((report / "manifest.json").read_text())
    victim = next(i for i in m["inputs"] if i["kind"] == "timeline")
    path = Path(victim["path"]) if Path(victim["path"]).is_absolute() else ROOT / victim["path"]
    original = path.read_bytes()
    copy.write_bytes(original)
    try:
        path.write_bytes(original[:-2] + b"X" + original[-1:])
        bad = postmortem("verify", str(report), check=False)
    finally:
        path.write_bytes(original)
    assert bad.returncode == 1
    assert "timeline.yaml" in bad.stdout and "MISMATCH" in bad.stdout


def test_unknown_parameter_in_config_stops_before_anything_runs(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("incident_id: x\nincident_strat: 2024-01-19T10:30:00Z\n")
    proc = postmortem("report", "--config", str(cfg), "--out", str(tmp_path / "r"), check=False)
    assert proc.returncode != 0
    assert "unknown parameter(s) incident_strat" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("bad_id", ["../escape", "a/b", "", "..", "x y"])
def test_an_incident_id_that_is_not_a_plain_name_is_refused(tmp_path, bad_id):
    proc = postmortem("report", "--incident-id", bad_id, check=False, cwd=tmp_path)
    assert proc.returncode != 0
    assert "not a plain name" in proc.stderr
    assert not (tmp_path / "reports").exists() and not (ROOT.parent / "escape").exists()


def test_a_failing_cell_names_the_notebook_and_cell_and_leaves_no_report(tmp_path):
    auth = tmp_path / "auth.jsonl"
    auth.write_text('{"ts": "2024-01-19T10:30:00Z", "outcome": "success"}\n')  # no user_id
    out = tmp_path / "reports" / "r"
    proc = postmortem(
        "report",
        "--auth",
        str(auth),
        "--queries",
        str(auth),
        "--timeline",
        str(auth),
        "--database",
        str(tmp_path / "d.duckdb"),
        "--out",
        str(out),
        check=False,
    )
    assert proc.returncode != 0
    line = proc.stderr.strip().splitlines()[-1]
    assert "incident_report.ipynb, cell" in line and "user_id" in line
    assert "Traceback" not in proc.stderr
    assert not out.exists()
    assert not [p for p in (tmp_path / "reports").iterdir()], "a partial folder was left"


def test_verify_does_not_call_an_input_that_only_spark_reads_missing(tmp_path, capsys):
    from analysis.report import verify

    folder = tmp_path / "r"
    folder.mkdir()
    (folder / "summary.json").write_text("{}\n")
    manifest = {
        "inputs": [
            {"kind": "auth", "path": "s3a://lake/auth/dt=2024-01-19/part-0.parquet", "sha256": ""}
        ],
        "outputs": [{"path": "summary.json", "sha256": "0" * 64}],
        "parameters": {},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert verify.verify_main(folder, say=print) == 1
    out = capsys.readouterr().out
    # the changed output is named; the URI, which nothing here can hash, is not a problem
    assert "MISMATCH output summary.json" in out and "s3a" not in out
    assert verify.rerun_inputs(["s3a://lake/auth/", "data/x.parquet"]) == [
        "s3a://lake/auth/",
        str(ROOT / "data" / "x.parquet"),
    ]


def test_charts_drawn_by_the_helper_process_are_the_bytes_drawn_here(
    small_sample, tmp_path, monkeypatch
):
    # the first chart hands the charts but OWN_CHARTS to a forked helper (issue 16); each
    # file it writes is the file this process writes when it draws every chart itself
    from analysis.report import draft
    from analysis.report import run as report

    def charts_of(folder: str) -> tuple[dict[str, bytes], list[str]]:
        run = report.Run.from_parameters(
            auth_logs=str(small_sample["auth"]),
            query_logs=str(small_sample["queries"]),
            timeline=str(small_sample["timeline"]),
            database=str(tmp_path / "db.duckdb"),
            report_dir=str(tmp_path / folder),
            say=lambda _m: None,
        )
        run.load()
        run.analyse()
        helped: list[str] = []
        for name in draft.CHARTS:
            run.chart(name)
            helped = helped or sorted(run._pending)
        run.write()
        files = sorted((tmp_path / folder / "figures").iterdir())
        return {p.name: p.read_bytes() for p in files}, helped

    helped_files, helped = charts_of("helped")
    monkeypatch.setattr(report, "OWN_CHARTS", tuple(draft.CHARTS))
    own_files, none = charts_of("own")
    assert helped and not none  # the helper drew some charts the first time, none the second
    assert len(helped_files) >= 10 and helped_files == own_files


def test_the_command_imports_papermill_without_building_the_iri_grammar():
    # jsonschema (under nbformat) builds rfc3987_syntax's Lark grammar on import (1.1 s of
    # every report, for a format check notebooks never make): the command marks it absent
    code = (
        "import sys\n"
        "import analysis.cli\n"
        "import nbconvert, nbformat, papermill\n"
        "nb = nbformat.read('notebooks/incident_report.ipynb', as_version=4)\n"
        "nbformat.validate(nb)\n"
        "bad = nbformat.from_dict({**nb, 'cells': [{'cell_type': 'code'}]})\n"
        "try:\n"
        "    nbformat.validate(bad)\n"
        "except nbformat.ValidationError:\n"
        "    print('invalid refused')\n"
        "print('grammar built:', sys.modules.get('rfc3987_syntax') is not None)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert "invalid refused" in out and "grammar built: False" in out, out


def test_the_kernel_started_early_stops_gracefully_and_closes_its_clients(tmp_path):
    # the report starts its kernel while papermill imports; stopping it must let the
    # kernel's exit handlers run (an in-place report removes its session file there)
    from jupyter_core.utils import run_sync

    from analysis.report import command as execute

    flag = tmp_path / "exited"
    km = execute.start_kernel()
    kc = km.client()  # asynchronous, as papermill's
    kc.start_channels()
    run_sync(kc.wait_for_ready)(timeout=60)
    reply = run_sync(kc.execute_interactive)(
        f"import atexit, pathlib; atexit.register(pathlib.Path({str(flag)!r}).write_text, 'x')",
        timeout=60,
    )
    assert reply["content"]["status"] == "ok"
    process = km.provisioner.process
    execute.stop_kernel(km)
    assert process.poll() is not None, "the kernel is still running"
    assert flag.read_text() == "x", "the kernel's exit handlers did not run"
    assert not kc.channels_running
