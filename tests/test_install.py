"""The tool as a stranger installs it: the wheel, with its dependencies, in a fresh virtual
environment, run in an empty folder that is the incident folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _new_files_in_checkout() -> set[str]:
    """The checkout's files that git does not track (untracked or ignored), but bytecode."""
    listed = subprocess.run(
        ["git", "status", "--porcelain", "--ignored", "--untracked-files=all"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    return {line[3:] for line in listed if line[:2] in ("??", "!!") and "__pycache__" not in line}


@pytest.mark.slow
def test_the_wheel_installs_and_reports_in_an_empty_folder(tmp_path):
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-q", "-w", str(wheels)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("postmortem_lab-*.whl")
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "analysis/ingest/formats/postgres.py",
        "analysis/ingest/definitions/presets/okta.yaml",
        "analysis/sql/series.sql",
        "analysis/notebooks/incident_report.ipynb",
        "analysis/notebooks/explore.ipynb",
    ):
        assert needed in names, needed
    # the statement key's C extension, compiled by the build hook (hatch_build.py)
    assert any(n.startswith("analysis/statement_key.") and n.endswith(".so") for n in names)

    env_dir = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    installed = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            # no bytecode compiled at install (the interpreter compiles what it imports):
            # about 40 s instead of 70 s for its ~150 packages
            "--no-compile",
            "-c",
            str(ROOT / "requirements.lock"),
            str(wheel),
        ],
        capture_output=True,
        text=True,
    )
    assert installed.returncode == 0, installed.stderr[-2000:]

    before = _new_files_in_checkout()
    incident = tmp_path / "incident"
    incident.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": f"{env_dir / 'bin'}:{os.environ['PATH']}",
        "HOME": str(home),
        "LANG": "C.UTF-8",
    }
    postmortem = str(env_dir / "bin" / "postmortem")
    for args in (["sample", "--scale", "0.1"], ["-q", "report"]):
        done = subprocess.run(
            [postmortem, *args], cwd=incident, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-3000:]

    summary = json.loads((incident / "reports/2024-01-19-auth/summary.json").read_text())
    assert summary["window"]["agrees"] is True
    assert 0.28 <= summary["impact"]["affected_share"] <= 0.32
    assert summary["db"]["amplification"] > 3
    assert sorted(p.name for p in incident.iterdir()) == [".postmortem-key", "data", "reports"]
    # nothing in the checkout, nothing in the installed package
    assert _new_files_in_checkout() == before
    site = next((env_dir / "lib").glob("python3*/site-packages/analysis"))
    assert not (site / "reports").exists() and not (site / "data").exists()
    assert not list(site.glob("**/*.duckdb")) and not (site / ".postmortem-key").exists()
    # the home folder holds caches at most, no output
    written = [p.relative_to(home).as_posix() for p in home.rglob("*") if p.is_file()]
    assert [
        w
        for w in written
        if not w.startswith(
            (".cache/", ".local/share/jupyter/", ".ipython/", ".config/matplotlib/")
        )
    ] == []

    probe = subprocess.run(
        [str(python), "-c", "import analysis.ingest.registry, analysis; print(analysis.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip().startswith(str(env_dir))
    native = subprocess.run(
        [
            str(python),
            "-c",
            "from analysis import fingerprint; print(fingerprint.key_implementation())",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert native.stdout.strip() == "native", native.stderr
