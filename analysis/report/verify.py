"""``postmortem verify``: check a report folder against its manifest, then re-run it from the
recorded inputs and parameters and compare every hashed output."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from analysis import config
from analysis.errors import ReportError
from analysis.ingest import sha256_of
from analysis.report import params
from analysis.report.command import execute


def _check_outputs(manifest: dict, folder: Path, *, missing: str, differs: str) -> list[str]:
    """Every hashed output of the manifest that is missing from ``folder`` or differs."""
    problems = []
    for item in manifest["outputs"]:
        if item.get("sha256") is None:
            continue
        path = folder / item["path"]
        if not path.exists():
            problems.append(f"output {item['path']}: {missing}")
        elif sha256_of(path) != item["sha256"]:
            problems.append(f"output {item['path']}: {differs}")
    return problems


def _fail(problems: list[str], verdict: str) -> int:
    for line in problems:
        print(f"MISMATCH {line}")
    print(f"verify: {verdict} ({len(problems)} problem(s))")
    return 1


def verify_main(report_dir: Path, say: Callable[[str], None]) -> int:
    """Re-run a report from its manifest into a temporary folder and compare every hash.

    Returns 0 when every input and every hashed output matches, 1 (naming each file) when not.
    """
    manifest_path = report_dir / "manifest.json"
    if not manifest_path.exists():
        raise ReportError(f"{report_dir}: no manifest.json; is it a report folder?")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    problems: list[str] = []
    # a URI (s3a://…) is read by Spark only: nothing here can hash it, and the manifest holds
    # no hash of it; the re-run reads it again, so a change to it shows in the outputs
    uris = [item["path"] for item in manifest["inputs"] if is_uri(item["path"])]
    for item in manifest["inputs"]:
        if is_uri(item["path"]):
            continue
        path = _from_portable(item["path"])
        if not path.exists():
            problems.append(f"input {item['path']}: missing")
        elif sha256_of(path) != item["sha256"]:
            problems.append(f"input {item['path']}: SHA-256 differs from the manifest")
    problems += _check_outputs(
        manifest, report_dir, missing="missing", differs="changed since the report was written"
    )
    if problems:
        return _fail(problems, f"{report_dir} does NOT match its manifest")
    given = dict(manifest["parameters"])
    with tempfile.TemporaryDirectory(prefix="postmortem-verify-") as tmp:
        staging = Path(tmp) / "report"
        staging.mkdir()
        given["database"] = str(Path(tmp) / "verify.duckdb")
        given["report_dir"] = str(staging)
        for key in params.INPUTS:
            given[key] = rerun_inputs(given[key])
        say("re-running the report from the manifest's inputs and parameters")
        execute(params.resolve(given), staging, quiet=True)
        problems = _check_outputs(
            manifest,
            staging,
            missing="not produced by the re-run",
            differs="the re-run gives different bytes",
        )
    if problems:
        return _fail(problems, f"{report_dir} is NOT reproduced")
    n = sum(1 for item in manifest["outputs"] if item.get("sha256"))
    unhashed = f" ({len(uris)} read by Spark from URIs: not hashed, re-read)" if uris else ""
    print(
        f"verify: OK, {len(manifest['inputs'])} inputs{unhashed} and {n} outputs match "
        f"{report_dir}"
    )
    return 0


def is_uri(text: str) -> bool:
    """Whether a recorded input is a URI (``s3a://…``, ``hdfs://…``) rather than a path."""
    return "://" in text


def rerun_inputs(recorded: list[str]) -> list[str]:
    """The inputs of the re-run: paths made absolute again, URIs as they are."""
    return [v if is_uri(v) else str(_from_portable(v)) for v in recorded]


def _from_portable(text: str) -> Path:
    p = Path(text)
    return p if p.is_absolute() else config.PROJECT_ROOT / p
