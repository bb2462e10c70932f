"""The incident folder: a starter ``incident.yaml`` (``postmortem init``) and the exploration
notebook prepared in it for JupyterLab (``postmortem lab``).

Both write only into the incident folder; the installed notebooks are read, never edited.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import yaml

from analysis import config
from analysis.errors import ParameterError
from analysis.report import params

#: the kernel the notebooks name; ``postmortem lab`` registers it in this environment
KERNEL_NAME = "postmortem-lab"
KERNEL_DISPLAY_NAME = "Postmortem Lab"
LAB_NOTEBOOK = "explore.ipynb"

_HEADER = """\
# The parameters of this incident, read by `postmortem report` when run in this folder (or
# given with --config). Every parameter is listed, commented out, with its default and what
# it means; uncomment and edit the ones you need. Flags on the command line override this
# file. Paths are relative to this folder; times are UTC instants (Z or an offset).
#
# The inputs, for example:
#   auth_logs: logs/auth-*.jsonl.gz        # a path, a glob, or a list of them
#   query_logs: [logs/postgresql.log]
#   query_format: postgres
#   incident_id: 2024-03-02-login
#   incident_start: 2024-03-02T08:00:00Z
#   incident_end: 2024-03-02T09:10:00Z
"""


def starter_config() -> str:
    """The text of a starter ``incident.yaml``: every parameter commented, with its help."""
    lines = [_HEADER]
    for p in params.PARAMETERS:
        value = yaml.safe_dump({p.name: p.default}, default_flow_style=True, width=1000)
        value = value.strip().removeprefix("{").removesuffix("}")
        lines.append(f"# {p.help}")
        lines.append(f"# {value}")
        lines.append("")
    return "\n".join(lines)


def init(folder: Path, *, force: bool = False) -> list[Path]:
    """Make ``folder`` an incident folder: ``incident.yaml`` (never over an existing one
    unless ``force``) and an empty ``definitions/`` for source definitions of its own.
    Returns what was written."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / config.CONFIG_NAME
    if target.exists() and not force:
        raise ParameterError(f"{target}: exists; edit it, or give --force to start it afresh")
    target.write_text(starter_config(), encoding="utf-8")
    written = [target]
    definitions = folder / "definitions"
    if not definitions.exists():
        definitions.mkdir()
        written.append(definitions)
    return written


def folder_parameters() -> dict[str, Any]:
    """The parameters of the incident folder's ``incident.yaml``, or none."""
    if config.CONFIG_FILE.is_file():
        return params.read_config(config.CONFIG_FILE)
    return {}


def ensure_kernel() -> str:
    """The notebooks' kernel, registered in this environment if it is not yet known there:
    a JupyterLab started by ``postmortem lab`` runs the notebook on this installation."""
    from jupyter_client.kernelspec import KernelSpecManager

    if KERNEL_NAME not in KernelSpecManager().find_kernel_specs():
        from ipykernel import kernelspec

        kernelspec.install(
            kernel_name=KERNEL_NAME, display_name=KERNEL_DISPLAY_NAME, prefix=sys.prefix
        )
    return KERNEL_NAME


def prepare_lab(folder: Path, given: dict[str, Any]) -> Path:
    """The exploration notebook copied into ``folder`` with the incident's parameters
    (``incident.yaml`` overlaid with ``given``) in its injected cell. A copy already there is
    kept as it is (it may hold the user's own cells); returns its path."""
    target = folder / LAB_NOTEBOOK
    if target.exists():
        return target
    import papermill

    parameters = {**folder_parameters(), **{k: v for k, v in given.items() if v is not None}}
    # as for a report: once one input is named, the others are none, not the sample's
    if any(key in parameters for key in params.INPUTS):
        for key in params.INPUTS:
            parameters.setdefault(key, "")
    # checked here, with the name, rather than in a cell; and as resolve writes them (an
    # unquoted time in YAML is a datetime, which a notebook's JSON cannot hold)
    resolved = params.resolve(parameters)
    papermill.execute_notebook(
        str(config.NOTEBOOKS_DIR / LAB_NOTEBOOK),
        str(target),
        parameters={key: resolved[key] for key in parameters},
        prepare_only=True,
        log_output=False,
        progress_bar=False,
    )
    return target


def lab_command(folder: Path, notebook: Path, *, port: int, browser: bool) -> list[str]:
    """The command line of a JupyterLab on loopback in ``folder``, opening ``notebook``."""
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        f"--ServerApp.root_dir={folder}",
        f"--LabApp.default_url=/lab/tree/{notebook.relative_to(folder).as_posix()}",
    ]
    if not browser:
        cmd.append("--no-browser")
    if hasattr(os, "getuid") and os.getuid() == 0:
        cmd.append("--allow-root")  # Jupyter refuses root unless told; containers run as root
    return cmd
