"""The incident folder: defaults resolve against it, ``postmortem init`` starts one,
``postmortem report`` reads its ``incident.yaml``, ``postmortem lab`` prepares its notebook."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from analysis import config, sample
from analysis.report import folder, params

ROOT = Path(__file__).resolve().parents[2]
POSTMORTEM = [sys.executable, "-m", "analysis.cli"]


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != config.ROOT_ENV}
    environment.update(env)
    # the checkout on the path, as an installed package would be, whatever the cwd
    environment["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [*POSTMORTEM, *args], cwd=cwd, env=environment, capture_output=True, text=True
    )


def test_the_starter_config_lists_every_parameter_commented_and_each_uncomments(tmp_path):
    written = folder.init(tmp_path)
    text = (tmp_path / "incident.yaml").read_text(encoding="utf-8")
    assert written == [tmp_path / "incident.yaml", tmp_path / "definitions"]
    assert yaml.safe_load(text) is None  # all commented: the defaults
    for p in params.PARAMETERS:
        line = next(x for x in text.splitlines() if x.startswith(f"# {p.name}: "))
        # each line, uncommented alone, is that parameter at its default
        assert yaml.safe_load(line[2:]) == {p.name: p.default}, line
        assert f"# {p.help}" in text


def test_init_keeps_an_existing_config_unless_forced(tmp_path):
    (tmp_path / "incident.yaml").write_text("incident_id: mine\n", encoding="utf-8")
    done = _run(["init", str(tmp_path)], cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("postmortem: error: ") and "--force" in done.stderr
    assert (tmp_path / "incident.yaml").read_text(encoding="utf-8") == "incident_id: mine\n"
    assert _run(["init", "--force", str(tmp_path)], cwd=tmp_path).returncode == 0
    assert yaml.safe_load((tmp_path / "incident.yaml").read_text(encoding="utf-8")) is None


def test_a_report_in_an_incident_folder_reads_its_config_and_writes_only_there(tmp_path):
    here = tmp_path / "incident"
    files = sample.generate(here / "logs", scale=0.02, seed=3, fmt="jsonl")
    folder.init(here)
    (here / "incident.yaml").write_text(
        yaml.safe_dump(
            {
                "incident_id": "from-the-yaml",
                "auth_logs": "logs/" + files["auth"].name,
                "query_logs": "logs/" + files["queries"].name,
                "timeline": "logs/" + files["timeline"].name,
            }
        ),
        encoding="utf-8",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = _run(["-q", "--project-dir", str(here), "report"], cwd=here)
    assert done.returncode == 0, done.stderr
    summary = json.loads((here / "reports/from-the-yaml/summary.json").read_text())
    assert summary["incident_id"] == "from-the-yaml"
    assert summary["ingest"]["auth"]["rows_loaded"] == sum(1 for _ in files["auth"].open())
    assert (here / "data/incident.duckdb").is_file() and (here / ".postmortem-key").is_file()
    assert sorted(p.name for p in here.iterdir()) == [
        ".postmortem-key",
        "data",
        "definitions",
        "incident.yaml",
        "logs",
        "reports",
    ]
    assert list(elsewhere.iterdir()) == []


def test_project_dir_names_the_incident_folder_from_anywhere(tmp_path):
    here, elsewhere = tmp_path / "incident", tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = _run(["-q", "--project-dir", str(here), "init"], cwd=elsewhere)
    assert done.returncode == 2 and "no such folder" in done.stderr
    here.mkdir()
    done = _run(["--project-dir", str(here), "sample", "--scale", "0.01"], cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert (here / "data/sample/auth_events.jsonl").is_file()
    done = _run(["sample", "--scale", "0.01"], cwd=elsewhere, POSTMORTEM_ROOT=str(here / "x"))
    assert done.returncode == 0 and (here / "x/data/sample/timeline.yaml").is_file()
    assert list(elsewhere.iterdir()) == []


def test_lab_copies_the_notebook_with_the_incident_parameters_and_keeps_a_copy(tmp_path):
    installed = (config.NOTEBOOKS_DIR / "explore.ipynb").read_bytes()
    (tmp_path / "incident.yaml").write_text(
        "incident_id: lab-test\nauth_logs: logs/a.jsonl\n", encoding="utf-8"
    )
    done = _run(["lab", "--prepare-only", "--port", "8899", "--queries", "q.jsonl"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    nb = json.loads((tmp_path / "explore.ipynb").read_text(encoding="utf-8"))
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    code = "".join(injected[0]["source"])
    assert 'incident_id = "lab-test"' in code
    assert 'auth_logs = "logs/a.jsonl"' in code and 'query_logs = ["q.jsonl"]' in code
    assert 'timeline = ""' in code  # named inputs only: not the sample's timeline
    assert nb["metadata"]["kernelspec"]["name"] == folder.KERNEL_NAME
    command = done.stdout.split()
    assert "--ServerApp.ip=127.0.0.1" in command and "--ServerApp.port=8899" in command
    assert f"--ServerApp.root_dir={tmp_path}" in command
    assert "--LabApp.default_url=/lab/tree/explore.ipynb" in command
    # a second run keeps the user's copy; the installed notebook is never edited
    (tmp_path / "explore.ipynb").write_text("{mine}", encoding="utf-8")
    assert _run(["lab", "--prepare-only"], cwd=tmp_path).returncode == 0
    assert (tmp_path / "explore.ipynb").read_text(encoding="utf-8") == "{mine}"
    assert (config.NOTEBOOKS_DIR / "explore.ipynb").read_bytes() == installed


def test_lab_refuses_a_bad_parameter_in_one_line(tmp_path):
    (tmp_path / "incident.yaml").write_text("incident_start: yesterday\n", encoding="utf-8")
    done = _run(["lab", "--prepare-only"], cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "incident_start 'yesterday'" in done.stderr
    assert not (tmp_path / "explore.ipynb").exists()


def test_version_is_the_installed_distribution_s():
    from importlib import metadata

    done = _run(["--version"], cwd=ROOT)
    assert done.stdout.strip() == f"postmortem-lab {metadata.version('postmortem-lab')}"


def test_lab_takes_times_written_unquoted_as_the_starter_config_shows_them(tmp_path):
    # YAML reads an unquoted time as a datetime; the notebook's parameters are text
    (tmp_path / "incident.yaml").write_text(
        "incident_start: 2024-03-02T08:00:00Z\nincident_end: 2024-03-02T09:10:00Z\n",
        encoding="utf-8",
    )
    done = _run(["lab", "--prepare-only"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    nb = json.loads((tmp_path / "explore.ipynb").read_text(encoding="utf-8"))
    injected = next(c for c in nb["cells"] if "injected-parameters" in c["metadata"]["tags"])
    assert 'incident_start = "2024-03-02T08:00:00Z"' in "".join(injected["source"])


def test_project_dir_may_follow_the_command(tmp_path):
    here = tmp_path / "incident"
    here.mkdir()
    done = _run(["init", "--project-dir", str(here)], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (here / "incident.yaml").is_file() and not (tmp_path / "incident.yaml").exists()


def test_a_failed_report_leaves_no_new_database_behind(tmp_path):
    # an sshd line read as Okta: the load in the notebook refuses the file
    log = tmp_path / "auth.log"
    log.write_text(
        "Jan 19 10:30:00 host sshd[1]: Accepted password for ann from 10.0.0.1 port 1\n"
    )
    done = _run(
        ["-q", "report", "--auth", str(log), "--auth-format", "okta", "--database", "d.duckdb"],
        cwd=tmp_path,
    )
    assert done.returncode == 2 and "okta" in done.stderr
    assert not list(tmp_path.glob("d.duckdb*"))
    assert not (tmp_path / "reports").exists() or not any((tmp_path / "reports").rglob("*.json"))
