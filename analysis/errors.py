"""Turning any failure into the one line a person reads."""

from __future__ import annotations

import duckdb


def one_line(exc: BaseException) -> str:
    """A single-line message for ``exc``: its own text for our errors, the type otherwise."""
    from analysis.execute import ReportError
    from analysis.load import LoadError

    text = " ".join(str(exc).split())
    if isinstance(exc, (LoadError, ReportError, ValueError, FileNotFoundError, PermissionError)):
        return text
    if isinstance(exc, duckdb.IOException) and "lock" in text.lower():
        return (
            "the database is in use by another postmortem process; wait for it to finish "
            f"or give another --database ({text})"
        )
    return f"{type(exc).__name__}: {text}"
