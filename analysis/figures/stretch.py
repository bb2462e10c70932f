"""What changed between two stretches of the data: any selection against a baseline.

The report compares the declared window with everything outside it and its guard minutes;
exploration asks the same of any stretch (a spike of five minutes, the hour after a deploy)
against the rest or against another stretch. :func:`compare_stretches` gives every table of
that comparison, each ranked by how much it moved and each with the counts behind it:

- ``signals``: attempts per minute, failure and system-failure rates, auth and database p95
  latency, queries per attempt, the share of users affected, bypass logins per minute;
- ``error_codes``: each code's failures per attempt, with a two-proportion z and p-value;
- ``dimensions`` and ``pairs``: the report's BubbleUp-style scores
  (:mod:`analysis.figures.compare`) computed in the selection;
- ``fingerprints``: queries per auth attempt and their latency (``fingerprints.sql``'s
  profile);
- ``users``: the users with the most system failures in the selection (keyed pseudonyms);
- ``server_events`` and ``bypass``: the database's own errors, and logins granted without
  the database check.

With the declared window as the selection and ``"rest"`` as the baseline, the dimensions and
fingerprints are the report's ``dimensions[]`` and ``db.top_fingerprints[]``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

import duckdb
import pandas as pd

from analysis import db, times
from analysis.figures import compare, server_events
from analysis.figures.metrics import Params

Stretch = tuple[datetime, datetime]
REST: Literal["rest"] = "rest"
#: dimension values and fingerprints shown of a comparison
TOP = 15


@dataclass
class Comparison:
    """Every table of a comparison of two stretches (see the module's text)."""

    selection: Stretch
    #: a stretch, or ``"rest"``: everything outside the selection and its guard minutes
    baseline: Stretch | Literal["rest"]
    guard_minutes: int
    #: minutes of data in each stretch (from the first to the last auth event of the data)
    minutes: dict[str, float]
    signals: pd.DataFrame
    error_codes: pd.DataFrame
    dimensions: pd.DataFrame
    pairs: pd.DataFrame
    fingerprints: pd.DataFrame
    users: pd.DataFrame
    server_events: pd.DataFrame
    bypass: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables by the name a person reads, in the order they are shown."""
        return {
            "signals": self.signals,
            "error codes": self.error_codes,
            "dimensions": self.dimensions,
            "dimension pairs": self.pairs,
            "fingerprints": self.fingerprints,
            "users": self.users,
            "server events": self.server_events,
            "bypass": self.bypass,
        }

    def describe(self) -> str:
        """One line naming the two stretches, e.g. for a title."""
        return f"{describe(self.selection)} against {describe_baseline(self)}"

    def describe_selection(self) -> str:
        """The selection as a person reads it."""
        return describe(self.selection)


def describe(stretch: Stretch) -> str:
    """``2024-01-19 10:26–14:45 UTC`` (the date written once when both ends share it)."""
    lo, hi = (pd.Timestamp(t) for t in stretch)
    right = f"{hi:%H:%M}" if hi.date() == lo.date() else f"{hi:%Y-%m-%d %H:%M}"
    return f"{lo:%Y-%m-%d %H:%M}–{right} UTC"


def describe_baseline(comparison: Comparison) -> str:
    """The baseline as a person reads it."""
    if comparison.baseline == REST:
        return f"the rest (outside it and {comparison.guard_minutes} guard minutes)"
    return describe(comparison.baseline)


def _values(
    params: Params, selection: Stretch, baseline: Stretch | Literal["rest"]
) -> dict[str, Any]:
    rest = baseline == REST
    base = selection if rest else baseline
    return {
        "sel_start": selection[0],
        "sel_end": selection[1],
        "base_start": base[0],
        "base_end": base[1],
        "rest": rest,
        "guard": f"{params.guard_minutes} minutes",
        "codes": list(params.user_error_codes),
    }


def _instant(value: Any) -> datetime:
    """A naive UTC datetime from an ISO-8601 text with a zone, a datetime or a Timestamp."""
    if isinstance(value, str):
        return times.parse_instant(value)
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.to_pydatetime()


def as_stretch(value: tuple[Any, Any]) -> Stretch:
    """``(start, end)`` as naive UTC datetimes; a stretch that does not end after it starts
    is refused (ValueError)."""
    lo, hi = (_instant(v) for v in value)
    if not lo < hi:
        raise ValueError(f"a stretch must end after it starts: {value!r}")
    return lo, hi


def stretch_minutes(
    con: duckdb.DuckDBPyConnection,
    selection: Stretch,
    baseline: Stretch | Literal["rest"],
    *,
    guard_minutes: int,
) -> dict[str, float]:
    """Minutes of data in each stretch: its overlap with the data's first to last auth event
    (a selection past the end of the data is no longer for it)."""
    first, last = db.one(con, "select min(ts), max(ts) from v_auth")
    if first is None:
        return {"selection": 0.0, "baseline": 0.0}

    def overlap(lo: datetime, hi: datetime) -> float:
        return max((min(hi, last) - max(lo, first)).total_seconds(), 0.0) / 60

    sel = overlap(*selection)
    if baseline == REST:
        guard = timedelta(minutes=guard_minutes)
        shadow = overlap(selection[0] - guard, selection[1] + guard)
        base = max(overlap(first, last) - shadow, 0.0)
    else:
        base = overlap(*baseline)
    return {"selection": sel, "baseline": base}


def _ratio(a: Any, b: Any) -> float | None:
    if a is None or b is None or pd.isna(a) or pd.isna(b) or not b:
        return None
    return float(a) / float(b)


def moved(selection: float | None, baseline: float | None) -> float:
    """How much a figure moved: ``|s − b| / max(|s|, |b|)``, from 0 (not at all) to 1 (from
    or to nothing, or a change of sign); 0 when either side is unknown. Bounded, so figures
    of different units rank together."""
    if selection is None or baseline is None or pd.isna(selection) or pd.isna(baseline):
        return 0.0
    top = max(abs(selection), abs(baseline))
    return 0.0 if top == 0 else abs(selection - baseline) / top


#: each signal: its name, the figure and what it is divided by (a rate), or the figure and
#: the count it was taken over (a percentile, ``None`` as its divisor)
_SIGNALS: list[tuple[str, str, str | None, str | None]] = [
    # in this order where they moved as much (the more telling first)
    ("system-failure rate", "system_failures", "attempts", None),
    ("failure rate", "failures", "attempts", None),
    ("share of users with a system failure", "users_affected", "users_active", None),
    ("DB queries per auth attempt", "auth_queries", "attempts", None),
    ("DB latency p95 (ms)", "db_latency_p95_ms", None, "queries"),
    ("auth latency p95 (ms)", "auth_latency_p95_ms", None, "attempts"),
    ("attempts per minute", "attempts", "minutes", None),
    ("bypass logins per minute", "bypass_logins", "minutes", None),
]


def _signal(row: dict[str, Any], figure: str, of: str | None, over: str | None) -> tuple:
    """A signal of one stretch: its value, the count behind it and what that is out of."""
    if of is None:
        value = None if pd.isna(row[figure]) else float(row[figure])
        return value, row[over], None
    return _ratio(row[figure], row[of]), row[figure], row[of]


def signals_table(rows: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """The signals of both stretches, with the counts behind each, ranked by how much they
    moved (see :func:`moved`); ``rows`` is ``stretch_signals.sql``'s rows with ``minutes``."""
    out = []
    for order, (name, figure, of, over) in enumerate(_SIGNALS):
        record: dict[str, Any] = {"signal": name, "order": order}
        for side in ("selection", "baseline"):
            value, count, total = _signal(rows[side], figure, of, over)
            record.update({side: value, f"{side}_count": count, f"{side}_of": total})
        sel, base = record["selection"], record["baseline"]
        record["change"] = None if sel is None or base is None else sel - base
        record["moved"] = moved(sel, base)
        out.append(record)
    df = pd.DataFrame(out)
    df = df.sort_values(["moved", "order"], ascending=[False, True]).drop(columns="order")
    cols = ["signal", "selection", "baseline", "change", "moved"]
    cols += ["selection_count", "selection_of", "baseline_count", "baseline_of"]
    return df.reset_index(drop=True)[cols]


def error_codes_table(
    con: duckdb.DuckDBPyConnection, values: dict[str, Any], attempts: dict[str, int]
) -> pd.DataFrame:
    """Each error code's failures per attempt in both stretches, ranked by the rise of that
    rate, with its two-proportion z and one-sided p-value."""
    df = db.run(con, "stretch_error_codes", values).df()
    sel, base = attempts["selection"], attempts["baseline"]
    df["selection_rate"] = [_ratio(x, sel) for x in df["selection_failures"]]
    df["baseline_rate"] = [_ratio(x, base) for x in df["baseline_failures"]]
    df["change"] = df["selection_rate"].fillna(0) - df["baseline_rate"].fillna(0)
    df["z"] = [
        compare.two_proportion_z(x, sel, y, base)
        for x, y in zip(df["selection_failures"], df["baseline_failures"], strict=True)
    ]
    df["p_value"] = [compare.p_upper(z) for z in df["z"]]
    df = df.sort_values(["change", "error_code"], ascending=[False, True])
    cols = ["error_code", "class", "selection_rate", "baseline_rate", "change", "z", "p_value"]
    return df.reset_index(drop=True)[[*cols, "selection_failures", "baseline_failures"]]


def server_events_table(
    con: duckdb.DuckDBPyConnection, values: dict[str, Any], minutes: dict[str, float]
) -> pd.DataFrame:
    """The database's own errors per kind and minute in both stretches, ranked by the rise."""
    server_events.install(con)
    df = db.run(con, "stretch_server_events", values).df()
    df["kind"] = [server_events.KINDS.get(k, k) for k in df["kind"]]
    for side in ("selection", "baseline"):
        df[f"{side}_per_minute"] = [_ratio(n, minutes[side]) for n in df[f"{side}_events"]]
    df["change"] = df["selection_per_minute"].fillna(0) - df["baseline_per_minute"].fillna(0)
    df = df.sort_values(["change", "kind"], ascending=[False, True])
    cols = ["kind", "selection_per_minute", "baseline_per_minute", "change"]
    return df.reset_index(drop=True)[[*cols, "selection_events", "baseline_events"]]


def bypass_table(rows: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Logins granted without the database check in each stretch: how many, by how many
    users, the first and the last."""
    return pd.DataFrame(
        [
            {
                "stretch": side,
                "logins": int(rows[side]["bypass_logins"]),
                "users": int(rows[side]["bypass_users"]),
                "first": rows[side]["bypass_first"],
                "last": rows[side]["bypass_last"],
                "per_minute": _ratio(rows[side]["bypass_logins"], rows[side]["minutes"]),
            }
            for side in ("selection", "baseline")
        ]
    )


def _signal_rows(
    con: duckdb.DuckDBPyConnection, values: dict[str, Any], minutes: dict[str, float]
) -> dict[str, dict[str, Any]]:
    cur = db.run(con, "stretch_signals", values)
    names = [d[0] for d in cur.description]
    rows = {}
    for row in cur.fetchall():
        record = dict(zip(names, row, strict=True))
        record["minutes"] = minutes[record["stretch"]]
        rows[record.pop("stretch")] = record
    return rows


def compare_stretches(
    con: duckdb.DuckDBPyConnection,
    params: Params,
    selection: tuple[Any, Any],
    baseline: tuple[Any, Any] | Literal["rest"] = REST,
    *,
    key: str,
    redact: bool = True,
    top: int = TOP,
) -> Comparison:
    """What changed in ``selection`` against ``baseline``: every table of :class:`Comparison`.

    Parameters
    ----------
    con
        A connection after :func:`analysis.figures.views.scope`.
    params
        The analysis parameters (user error codes, guard minutes); their window is not used.
    selection, baseline
        ``(start, end)``, end excluded: datetimes (naive UTC) or ISO-8601 texts with a zone.
        ``baseline="rest"``: everything outside the selection and ``params.guard_minutes``
        on each side of it, as the report's baseline around its window.
    key, redact
        User ids come out as pseudonyms keyed with ``key`` unless ``redact`` is False.
    top
        How many dimension values, fingerprints and users to keep.
    """
    sel = as_stretch(selection)
    base: Stretch | Literal["rest"] = REST if baseline == REST else as_stretch(baseline)
    values = _values(params, sel, base)
    minutes = stretch_minutes(con, sel, base, guard_minutes=params.guard_minutes)
    rows = _signal_rows(con, values, minutes)
    attempts = {side: int(rows[side]["attempts"]) for side in rows}
    window = replace(params, start=sel[0], end=sel[1])
    scored = compare.scored_values(con, window)
    fps = db.run(
        con,
        "stretch_fingerprints",
        {
            **values,
            "selection_attempts": attempts["selection"],
            "baseline_attempts": attempts["baseline"],
            "limit": top,
        },
    ).df()
    users = db.run(con, "stretch_users", {**values, "redact": redact, "key": key, "n": top}).df()
    return Comparison(
        selection=sel,
        baseline=base,
        guard_minutes=params.guard_minutes,
        minutes=minutes,
        signals=signals_table(rows),
        error_codes=error_codes_table(con, values, attempts),
        dimensions=scored.head(top).reset_index(drop=True),
        pairs=compare.pairs(con, window, values=scored),
        fingerprints=fps,
        users=users,
        server_events=server_events_table(con, values, minutes),
        bypass=bypass_table(rows),
    )
