"""The one family of errors a user can cause, and the one line each reaches the user as.

Every error that bad input, a bad parameter or a busy database can raise is a
:class:`PostmortemError`; those about a value also subclass :class:`ValueError`, so that code
checking values keeps working. This module imports nothing of the package: every wing may
raise these, and the command turns any of them into one line (:func:`one_line`).
"""

from __future__ import annotations

import duckdb


class PostmortemError(Exception):
    """An error the user can act on; its message says what and where, in one line."""


class LoadError(PostmortemError):
    """A whole input cannot be loaded; the message names the file and the reason."""


class UnreadableFile(PostmortemError):
    """A whole file cannot be read: missing, truncated, or not the format it claims."""


class DefinitionError(PostmortemError, ValueError):
    """A source definition that cannot be used; the message names the file and the key."""


class SchemaError(PostmortemError):
    """The database file was made by an older version, with another schema."""


class ParameterError(PostmortemError, ValueError):
    """A parameter is unknown or its value is not usable."""


class AlertConfigError(ParameterError):
    """The ``alert_metrics`` mapping names an unknown key or an unusable value."""


class TranslationError(PostmortemError, ValueError):
    """A query that cannot run on Spark as written; the message says which construct."""


class ReportError(PostmortemError):
    """The report could not be made; the message says where and why."""


def one_line(exc: BaseException) -> str:
    """A single-line message for ``exc``: its own text for our errors, the type otherwise."""
    text = " ".join(str(exc).split())
    if isinstance(exc, (PostmortemError, ValueError, FileNotFoundError, PermissionError)):
        return text
    if isinstance(exc, duckdb.IOException) and "lock" in text.lower():
        return (
            "the database is in use by another postmortem process; wait for it to finish "
            f"or give another --database ({text})"
        )
    return f"{type(exc).__name__}: {text}"
