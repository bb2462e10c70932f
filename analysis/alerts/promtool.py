"""The alert rules' proof by Prometheus itself: a ``promtool test rules`` file that replays an
incident's buckets, and the two promtool commands that check a report's ``alerts/``.

The counters are written as Prometheus would have scraped them: one sample every half
bucket, each bucket's total at its end and again half a bucket later, every counter starting
at an offset as large as its whole increase. ``increase()`` over a window of k buckets then
sees exactly the last k buckets' counts, whether the range includes its left end (Prometheus
2) or not (Prometheus 3), and the extrapolation is the same for every series, so the ratios
of the rules are the bucket counts' ratios that :mod:`analysis.alerts.rules` backtests.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from analysis.alerts.promql import prom_duration, prom_string
from analysis.alerts.signals import Buckets, Rule
from analysis.times import iso

TIMEOUT_S = 300


def series_text(metric: str, labels: tuple[tuple[str, str], ...]) -> str:
    """``metric{a="x", b="y"}`` in the notation of ``input_series``."""
    body = ", ".join(f"{k}={prom_string(v)}" for k, v in labels)
    return f"{metric}{{{body}}}" if body else metric


def values_text(increments: np.ndarray) -> str:
    """A counter's samples in expanding notation (``v`` repeated r times is ``vx(r-1)``)."""
    c = np.concatenate([[0], np.cumsum(increments, dtype="int64")])
    offset = int(c[-1])
    samples = [int(v) + offset for v in np.repeat(c[:-1], 2)] + [int(c[-1]) + offset]
    parts, i = [], 0
    while i < len(samples):
        j = i
        while j + 1 < len(samples) and samples[j + 1] == samples[i]:
            j += 1
        parts.append(f"{samples[i]}x{j - i}" if j > i else str(samples[i]))
        i = j + 1
    return " ".join(parts)


def unit_test(buckets: Buckets, rules: list[Rule], *, rule_file: str) -> str:
    """The test file: the incident's counters as ``input_series``, and at every evaluation
    of every alert, the alerts the backtest says are firing then (none, mostly)."""
    inputs = [
        {"series": series_text(c.metric, c.labels), "values": values_text(c.increments)}
        for c in buckets.counters
    ]
    names: list[str] = []
    for rule in rules:
        if rule.alert not in names:
            names.append(rule.alert)
    cases: list[dict[str, Any]] = []
    for j in range(1, buckets.n + 1):
        for name in names:
            expected = [
                {
                    "exp_labels": {**rule.alert_labels, **rule.labels},
                    "exp_annotations": dict(rule.annotations),
                }
                for rule in rules
                if rule.alert == name and rule.firing[j]
            ]
            cases.append(
                {
                    "eval_time": prom_duration(j * buckets.seconds),
                    "alertname": name,
                    "exp_alerts": expected,
                }
            )
    doc = {
        "rule_files": [rule_file],
        "evaluation_interval": prom_duration(buckets.seconds),
        "tests": [
            {
                "name": f"the incident's {buckets.n} buckets from {iso(buckets.start)}",
                "interval": prom_duration(buckets.seconds / 2),
                "input_series": inputs,
                "alert_rule_test": cases,
            }
        ],
    }
    header = (
        "# promtool test rules rules_test.yaml: replays the incident's buckets (time 0 is\n"
        f"# {iso(buckets.start)}) and expects each alert exactly when backtest.json says.\n"
    )
    return header + yaml_text(doc)


def yaml_text(doc: Any) -> str:
    """``doc`` as block YAML in its own key order, by libyaml when PyYAML has it: the test
    file of a report's incident has 40k nodes, 1.2 s in PyYAML's Python emitter and 0.1 s
    in libyaml's, with the same text (tested)."""
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(
        doc,
        Dumper=dumper,
        sort_keys=False,
        allow_unicode=True,
        width=10_000,
        default_flow_style=False,
    )


def find() -> str | None:
    """The ``promtool`` on PATH (Debian's ``prometheus`` package has it), or None."""
    return shutil.which("promtool")


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run promtool; its output (stdout and stderr together) is the result's ``stdout``."""
    exe = find()
    if exe is None:
        raise FileNotFoundError("promtool is not installed (make prometheus installs it)")
    return subprocess.run(
        [exe, *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def check(folder: Path) -> subprocess.CompletedProcess:
    """``promtool check rules rules.yaml`` in a report's ``alerts/`` folder."""
    return run("check", "rules", "rules.yaml", cwd=folder)


def replay(folder: Path) -> subprocess.CompletedProcess:
    """``promtool test rules rules_test.yaml`` in a report's ``alerts/`` folder."""
    return run("test", "rules", "rules_test.yaml", cwd=folder)
