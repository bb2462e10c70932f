"""Source definitions: a log nobody here has seen, described in YAML rather than code.

:mod:`.schema` says what a definition may hold and checks one; :mod:`.reader` reads a log
with one, in DuckDB; ``presets/`` holds the definitions that ship with the tool.
"""

from analysis.ingest.definitions.schema import (
    Definition,
    is_definition_file,
    presets,
    read_definition,
)

__all__ = ["Definition", "is_definition_file", "presets", "read_definition"]
