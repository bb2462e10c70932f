"""Alerts: Prometheus rules that would have caught the incident, and their backtest.

The report's per-bucket series become the counters a service would export (:mod:`.signals`),
rules on them with thresholds from the incident's own baseline (:mod:`.rules`), an
evaluation as Prometheus does it (:mod:`.promql`) and a ``promtool test rules`` file
(:mod:`.promtool`).

This is the wing's door: the names below are what the other wings may use.
"""

from analysis.alerts.rules import AlertSet, draft_section, for_report, metric_mapping

__all__ = ["AlertSet", "draft_section", "for_report", "metric_mapping"]
