"""Engines: where a report's rows are read — loaded into DuckDB, Parquet in place, or Spark.

Each engine is an entry of :data:`ENGINES` (:mod:`.registry`) saying what it checks before
the kernel starts, how it attaches the inputs, whether rows are local, and which versions it
adds to the manifest; :func:`engine_of` chooses one from a report's parameters, once.

This is the wing's door: the names below are what the other wings may use.
"""

from analysis.engines.registry import ALIAS_PARAMETER, ENGINES, Engine, engine_of, names

__all__ = ["ALIAS_PARAMETER", "ENGINES", "Engine", "engine_of", "names"]
