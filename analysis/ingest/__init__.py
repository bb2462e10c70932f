"""Ingest: a file into rows or rejects.

A log goes in as a path, a glob or a list; the registry of readers (built-in formats, the
server-log ``formats/`` and the YAML ``definitions/presets/``) chooses how to read it, every
record is validated in DuckDB, and each row lands in its table or in ``rejects`` with its
file, line and reason, in one transaction.

This is the wing's door: the names below are what the other wings may use; the modules
behind them are the wing's own.
"""

from analysis.ingest.definitions import is_definition_file
from analysis.ingest.definitions.starter import starter
from analysis.ingest.loader import (
    cached_sha256,
    check_timezone,
    describe,
    expand_inputs,
    load,
    sha256_of,
)
from analysis.ingest.preview import describe as describe_preview
from analysis.ingest.preview import preview
from analysis.ingest.readers import extras_from
from analysis.ingest.registry import READERS, Reader, choices_text, names, user_codes
from analysis.ingest.validate import ts_expr

__all__ = [
    "READERS",
    "Reader",
    "cached_sha256",
    "check_timezone",
    "choices_text",
    "describe",
    "describe_preview",
    "expand_inputs",
    "extras_from",
    "is_definition_file",
    "load",
    "names",
    "preview",
    "sha256_of",
    "starter",
    "ts_expr",
    "user_codes",
]
