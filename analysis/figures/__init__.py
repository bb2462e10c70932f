"""Figures: every figure of ``summary.json``, computed in DuckDB from the scoped views.

The figures read the views ``v_auth``, ``v_queries``, ``v_timeline`` (:func:`scope` makes
them for one report's sources and range), never a reader: where the rows came from is the
ingest wing's and the engines' business. :func:`compare_stretches` asks the report's
questions of any stretch against a baseline (exploration).

This is the wing's door: the names below are what the other wings may use. ``span`` (where
the data is dense), ``server_events`` (the database's own errors) and ``detect`` (the window
found from the data alone) are used as modules.
"""

from analysis.figures import detect, server_events, span
from analysis.figures.compare import scored_values
from analysis.figures.metrics import Params, error_codes, first_failures, series
from analysis.figures.stretch import REST, Comparison, compare_stretches
from analysis.figures.summary import (
    Analysis,
    analyse,
    bypass_users,
    dumps,
    timeline_events,
    with_alerts,
    write,
)
from analysis.figures.views import Scope, scope

__all__ = [
    "REST",
    "Analysis",
    "Comparison",
    "Params",
    "Scope",
    "analyse",
    "bypass_users",
    "compare_stretches",
    "detect",
    "dumps",
    "error_codes",
    "first_failures",
    "scope",
    "scored_values",
    "series",
    "server_events",
    "span",
    "timeline_events",
    "with_alerts",
    "write",
]
