"""Shared fixtures: a small sample incident and one report of it, made once per session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from analysis import db, fingerprint, sample

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REAL_LOGS = SHARED / "real-logs"
SAMPLE_SCALE = 0.05


def require_shared() -> Path:
    """The real logs of ../shared: skip in a user's clone, fail in CI where they must exist."""
    if REAL_LOGS.is_dir():
        return REAL_LOGS
    if os.environ.get("POSTMORTEM_REQUIRE_SHARED"):
        pytest.fail(f"{REAL_LOGS} is missing, and CI requires it (POSTMORTEM_REQUIRE_SHARED)")
    pytest.skip(f"{REAL_LOGS} is not here (only the team's checkout has ../shared/real-logs)")


def require_promtool() -> str:
    """Prometheus's promtool: skip where it is not installed, fail in CI where it must be."""
    found = shutil.which("promtool")
    if found:
        return found
    if os.environ.get("POSTMORTEM_REQUIRE_SHARED"):
        pytest.fail(
            "promtool is missing, and CI requires it (make test installs Debian's prometheus "
            "package as root)"
        )
    pytest.skip("promtool is not installed (make prometheus installs it when run as root)")


@pytest.fixture(scope="session")
def small_sample(tmp_path_factory) -> dict[str, Path]:
    """The sample incident at a small scale, as JSON Lines."""
    out = tmp_path_factory.mktemp("sample")
    return sample.generate(out, scale=SAMPLE_SCALE, seed=7, fmt="jsonl")


@pytest.fixture
def con():
    """An empty in-memory incident database."""
    c = db.connect(":memory:")
    yield c
    c.close()


def write(path: Path, text: str | bytes) -> Path:
    """Write a fixture file (bytes as they are, text as UTF-8)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(params=fingerprint.KEY_IMPLEMENTATIONS)
def statement_key(request, monkeypatch) -> str:
    """Each implementation of the statement key in turn: the compiled one, then the DuckDB
    macro (the fallback where the install could not compile it); a test using it passes with
    both."""
    if request.param == "native" and fingerprint.key_implementation() != "native":
        why = "the statement key's C extension is not built: only the macro is tested"
        if os.environ.get("POSTMORTEM_REQUIRE_SHARED"):  # CI builds it: its absence is a failure
            pytest.fail(why)
        pytest.skip(why)
    monkeypatch.setenv(fingerprint.KEY_ENV, request.param)
    assert fingerprint.key_implementation() == request.param
    return request.param
