"""Paths derived from the project root, and the defaults of CONTRACT section 2."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = Path(os.environ.get("POSTMORTEM_ROOT", PACKAGE_DIR.parent)).resolve()
SQL_DIR = PACKAGE_DIR / "sql"
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
DATA_DIR = PROJECT_ROOT / "data"
SAMPLE_DIR = DATA_DIR / "sample"
REPORTS_DIR = PROJECT_ROOT / "reports"
KEY_FILE = PROJECT_ROOT / ".postmortem-key"

DEFAULT_INCIDENT_ID = "2024-01-19-auth"
DEFAULT_START = "2024-01-19T10:30:00Z"
DEFAULT_END = "2024-01-19T14:45:00Z"
DEFAULT_DATABASE = DATA_DIR / "incident.duckdb"
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
