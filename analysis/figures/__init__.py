"""Figures: every figure of ``summary.json``, computed in DuckDB from the scoped views.

The figures read the views ``v_auth``, ``v_queries``, ``v_timeline`` (:func:`scope` makes
them for one report's sources and range), never a reader: where the rows came from is the
ingest wing's and the engines' business.

This is the wing's door: the names below are what the other wings may use. ``span`` (where
the data is dense) and ``server_events`` (the database's own errors) are used as modules.
"""

from analysis.figures import server_events, span
from analysis.figures.metrics import Params, error_codes, first_failures
from analysis.figures.summary import Analysis, analyse, bypass_users, dumps, with_alerts, write
from analysis.figures.views import Scope, scope

__all__ = [
    "Analysis",
    "Params",
    "Scope",
    "analyse",
    "bypass_users",
    "dumps",
    "error_codes",
    "first_failures",
    "scope",
    "server_events",
    "span",
    "with_alerts",
    "write",
]
