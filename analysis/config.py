"""Paths, resolved against the incident folder, and the defaults of CONTRACT section 2.

The incident folder is where the user stands: the working directory, or the folder given by
``--project-dir`` or the environment variable ``POSTMORTEM_ROOT``. Every default path (the
database, the reports, the pseudonym key, the sample, the user's definitions and
``incident.yaml``) hangs off it; nothing is ever written into the installed package, from
which only the SQL, the presets and the notebooks are read.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
SQL_DIR = PACKAGE_DIR / "sql"
#: the environment variable that names the incident folder (kernels inherit it)
ROOT_ENV = "POSTMORTEM_ROOT"
#: the incident's own parameters, read by ``postmortem report`` when present
CONFIG_NAME = "incident.yaml"


def _notebooks_dir() -> Path:
    """The notebooks: the wheel's copies inside the package, else the checkout's own."""
    packaged = PACKAGE_DIR / "notebooks"
    return packaged if packaged.is_dir() else PACKAGE_DIR.parent / "notebooks"


NOTEBOOKS_DIR = _notebooks_dir()

PROJECT_ROOT: Path
DATA_DIR: Path
SAMPLE_DIR: Path
REPORTS_DIR: Path
KEY_FILE: Path
DEFINITIONS_DIR: Path
CONFIG_FILE: Path


def use_root(root: str | Path | None = None) -> Path:
    """Make ``root`` (by default ``POSTMORTEM_ROOT``, else the working directory) the
    incident folder that every default path resolves against; returns it."""
    global PROJECT_ROOT, DATA_DIR, SAMPLE_DIR, REPORTS_DIR, KEY_FILE, DEFINITIONS_DIR, CONFIG_FILE
    chosen = root if root is not None else os.environ.get(ROOT_ENV) or Path.cwd()
    PROJECT_ROOT = Path(chosen).expanduser().resolve()
    DATA_DIR = PROJECT_ROOT / "data"
    SAMPLE_DIR = DATA_DIR / "sample"
    REPORTS_DIR = PROJECT_ROOT / "reports"
    KEY_FILE = PROJECT_ROOT / ".postmortem-key"
    DEFINITIONS_DIR = PROJECT_ROOT / "definitions"
    CONFIG_FILE = PROJECT_ROOT / CONFIG_NAME
    return PROJECT_ROOT


use_root()

DEFAULT_INCIDENT_ID = "2024-01-19-auth"
DEFAULT_START = "2024-01-19T10:30:00Z"
DEFAULT_END = "2024-01-19T14:45:00Z"
DEFAULT_BUCKET = "1min"
USER_ERROR_CODES: tuple[str, ...] = (
    "invalid_credentials",
    "invalid_password",
    "user_not_found",
    "account_locked",
    "mfa_failed",
    "password_expired",
)
TIMELINE_KINDS: tuple[str, ...] = (
    "change",
    "detection",
    "escalation",
    "mitigation",
    "resolution",
    "note",
)
#: minutes excluded on each side of the declared window when computing the baseline
BASELINE_GUARD_MINUTES = 15
#: the login SLO: the share of attempts without a system failure, over a window of days
DEFAULT_SLO_TARGET = 0.999
DEFAULT_SLO_WINDOW = "30d"
