"""The manifest of a report: every input with its hash and counts, the parameters, the
versions of what shaped the evidence, and every output with its hash; ``postmortem verify``
checks a report against it."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import analysis
from analysis import config
from analysis.ingest import sha256_of
from analysis.kinds import FileResult
from analysis.report import params

#: the packages whose versions shape the evidence
PACKAGES = ("duckdb", "pandas", "numpy", "pyarrow", "matplotlib", "papermill", "nbconvert")


def portable(path: Path | str) -> str:
    """A path as the manifest records it: relative to the project when inside it (a URI,
    which only Spark reads, as it is)."""
    if "://" in str(path):
        return str(path)
    path = Path(path)
    try:
        return path.resolve().relative_to(config.PROJECT_ROOT).as_posix()
    except ValueError:
        return str(path.resolve())


def package_versions(*, extra: Sequence[str] = ()) -> dict[str, str]:
    """Versions of Python and of the packages that shape the evidence, with those the
    report's engine adds (PySpark's when the figures ran on Spark)."""
    out = {"python": platform.python_version(), "postmortem-lab": analysis.__version__}
    for name in (*PACKAGES, *extra):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def build(
    parameters: dict[str, Any],
    files: Sequence[FileResult],
    out: Path,
    *,
    unhashed: Sequence[str] = (),
    packages: Sequence[str] = (),
) -> dict[str, Any]:
    """The manifest of the report folder ``out``: ``unhashed`` files are listed without a
    hash (the executed notebooks record when they ran)."""
    inputs = [
        {
            "kind": f.kind,
            "path": portable(f.path),
            "format": f.format,
            "sha256": f.sha256,
            "rows_read": f.rows_read,
            "rows_loaded": f.rows_loaded,
            "rows_rejected": f.rows_rejected,
            "rows_skipped": f.rows_skipped,
        }
        for f in files
    ]
    hashed = sorted(
        p
        for p in out.rglob("*")
        if p.is_file() and p.name not in unhashed and p.name != "manifest.json"
    )
    outputs: list[dict[str, Any]] = [
        {"path": p.relative_to(out).as_posix(), "sha256": sha256_of(p)} for p in hashed
    ]
    outputs += [
        {"path": name, "sha256": None, "note": "records when it ran; not hashed"}
        for name in unhashed
    ]
    kept = {k: v for k, v in parameters.items() if k not in params.LOCATIONS}
    for key in params.INPUTS:
        kept[key] = [portable(params.resolve_path(t)) for t in params.input_list(parameters[key])]
    return {
        "incident_id": parameters["incident_id"],
        "generator": f"postmortem-lab {analysis.__version__}",
        "parameters": kept,
        "inputs": inputs,
        "packages": package_versions(extra=packages),
        "outputs": outputs,
    }
