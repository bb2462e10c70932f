"""Where the failures concentrate: each dimension value's share of system failures in the
window against its share of all attempts in the window (BubbleUp-style), with its
significance, and the pairs of values that together explain more than either alone.

Score = incident_share − baseline_share: the share of the failures a value carries beyond
what its traffic alone would give it. A datacenter that carries 10% of the traffic and all
of the failures scores 0.9; each of its four instances scores about 0.225, so a partial
outage puts the datacenter first, above its instances. The score is bounded (−1 to 1), reads
as a share, and needs no distributional assumption.

Significance (as Kibana's log-rate analysis ranks field values): a two-proportion z test of
the system-failure rate of the attempts with the value against the attempts without it, and
its one-sided p-value. The ranking stays the score's; the p-value says whether the difference
could be chance (a value with a handful of attempts can score high and mean nothing).

Pairs (as Kibana's frequent item sets): two values of two dimensions taken together, scored
the same way; a pair is kept when it scores more than either of its values alone (by
:data:`PAIR_GAIN`) and is significant. Failures confined to android clients in eu-west give
``region = eu-west, client = android`` a score above both; a datacenter and one of its
instances are the same rows as the instance and are never a pair.
"""

from __future__ import annotations

import math
from itertools import combinations

import duckdb
import numpy as np
import pandas as pd

from analysis import db
from analysis.figures.metrics import Params

#: columns of auth_events that are never dimensions: ids, the outcome itself, bookkeeping
NOT_DIMENSIONS = {
    "source_id",
    "line",
    "ts",
    "user_id",
    "request_id",
    "outcome",
    "error_code",
    "latency_ms",
    # how the attempt was decided: a bypassed login cannot fail, so auth_path would always
    # "explain" the failures; the bypass has its own audit instead
    "auth_path",
}
MAX_CARDINALITY = 50
#: a pair must score this much more than the better of its two values alone
PAIR_GAIN = 0.02
#: a pair must be at least this significant
PAIR_P = 0.001
#: pairs are looked for among the dimensions of the best this many single values
PAIR_DIMENSIONS = 6


def dimension_columns(con: duckdb.DuckDBPyConnection, params: Params) -> list[str]:
    """Low-cardinality text columns of the report's auth events: every one is a dimension."""
    rows = con.execute(
        "select column_name from information_schema.columns "
        "where table_name = 'v_auth' and data_type = 'VARCHAR' order by ordinal_position"
    ).fetchall()
    out = []
    for (name,) in rows:
        if name in NOT_DIMENSIONS or not db.is_identifier(name):
            continue
        col = db.quote_identifier(name)
        distinct, total = db.one(
            con,
            f"select count(distinct {col}), count({col}) from v_auth "  # noqa: S608
            "where ts >= $start and ts < $end",
            {"start": params.start, "end": params.end},
        )
        if 2 <= distinct <= MAX_CARDINALITY and distinct < max(total, 1) / 2:
            out.append(name)
    return out


def two_proportion_z(x1: float, n1: float, x2: float, n2: float) -> float:
    """The z statistic of rate ``x1/n1`` against ``x2/n2`` (pooled variance); 0 when either
    side has no attempts or nothing varies."""
    if n1 <= 0 or n2 <= 0:
        return 0.0
    p = (x1 + x2) / (n1 + n2)
    var = p * (1 - p) * (1 / n1 + 1 / n2)
    return 0.0 if var <= 0 else (x1 / n1 - x2 / n2) / math.sqrt(var)


def p_upper(z: float) -> float:
    """The one-sided p-value of a z statistic (the chance of one at least this high)."""
    return 0.5 * math.erfc(z / math.sqrt(2))


def _counts(
    con: duckdb.DuckDBPyConnection, params: Params, names: list[str], sets: list[tuple[str, ...]]
) -> pd.DataFrame:
    """System failures and attempts in the window per value of each grouping set, one pass."""
    cols = {n: db.quote_identifier(n) for n in names}
    select = ", ".join(f"coalesce({c}::varchar, '(none)') as {c}" for c in cols.values())
    grouping = ", ".join("(" + ", ".join(cols[n] for n in s) + ")" for s in sets)
    return con.execute(
        f"""
        with rows as (
            select {select}, is_system_failure(outcome, error_code, $codes) as failed
            from v_auth
            where ts >= $start and ts < $end
        ), final as (
            select {", ".join(cols.values())},
                   count(*) filter (where failed) as failures,
                   count(*) as attempts
            from rows
            group by grouping sets ({grouping})
        )
        select * from final
        """,  # noqa: S608 - checked column names of the table
        {"codes": list(params.user_error_codes), "start": params.start, "end": params.end},
    ).df()


def _score(df: pd.DataFrame, total_failures: float, total_attempts: float) -> pd.DataFrame:
    df = df.copy()
    df["incident_share"] = df["failures"] / total_failures
    df["baseline_share"] = df["attempts"] / total_attempts
    df["score"] = df["incident_share"] - df["baseline_share"]
    df["z"] = [
        two_proportion_z(x, n, total_failures - x, total_attempts - n)
        for x, n in zip(df["failures"], df["attempts"], strict=True)
    ]
    df["p_value"] = [p_upper(z) for z in df["z"]]
    return df


def scored_values(con: duckdb.DuckDBPyConnection, params: Params) -> pd.DataFrame:
    """Every dimension value with its failures, attempts, score and significance, ranked;
    empty when the window has no system failure."""
    cols = ["dimension", "value", "incident_share", "baseline_share", "score", "z", "p_value"]
    names = dimension_columns(con, params)
    if not names:
        return pd.DataFrame(columns=[*cols, "failures", "attempts"])
    wide = _counts(con, params, names, [(n,) for n in names])
    frames = [
        pd.DataFrame(
            {
                "dimension": name,
                "value": wide.loc[wide[name].notna(), name],
                "failures": wide.loc[wide[name].notna(), "failures"],
                "attempts": wide.loc[wide[name].notna(), "attempts"],
            }
        )
        for name in names
    ]
    df = pd.concat(frames, ignore_index=True)
    total_failures = float(df["failures"].sum()) / len(names)
    total_attempts = float(df["attempts"].sum()) / len(names)
    if total_failures == 0:
        return pd.DataFrame(columns=[*cols, "failures", "attempts"])
    df = _score(df, total_failures, total_attempts)
    df = df.sort_values(["score", "dimension", "value"], ascending=[False, True, True])
    return df.reset_index(drop=True)[[*cols, "failures", "attempts"]]


def dimensions(con: duckdb.DuckDBPyConnection, params: Params, *, limit: int = 20) -> pd.DataFrame:
    """Dimension values ranked by score, with their significance; empty when the window has
    no system failure."""
    return scored_values(con, params).head(limit).reset_index(drop=True)


def pairs(
    con: duckdb.DuckDBPyConnection,
    params: Params,
    *,
    values: pd.DataFrame | None = None,
    limit: int = 10,
) -> pd.DataFrame:
    """Pairs of values of two dimensions that together explain the failures better than
    either alone, ranked by score; ``values`` is :func:`scored_values`' result when known."""
    cols = [
        "dimensions",
        "values",
        "incident_share",
        "baseline_share",
        "score",
        "gain",
        "z",
        "p_value",
    ]
    every = scored_values(con, params) if values is None else values
    if every.empty:
        return pd.DataFrame(columns=cols)
    names = list(dict.fromkeys(every.loc[every["score"] > 0, "dimension"]))[:PAIR_DIMENSIONS]
    if len(names) < 2:
        return pd.DataFrame(columns=cols)
    alone = {
        (d, v): s
        for d, v, s in zip(every["dimension"], every["value"], every["score"], strict=True)
    }
    first = every[every["dimension"] == names[0]]
    total_failures = float(first["failures"].sum())
    total_attempts = float(first["attempts"].sum())
    wide = _counts(con, params, names, list(combinations(names, 2)))
    frames = []
    for a, b in combinations(names, 2):
        part = wide[wide[a].notna() & wide[b].notna()]
        frames.append(
            pd.DataFrame(
                {
                    "a": a,
                    "b": b,
                    "va": part[a],
                    "vb": part[b],
                    "failures": part["failures"],
                    "attempts": part["attempts"],
                }
            )
        )
    df = _score(pd.concat(frames, ignore_index=True), total_failures, total_attempts)
    either = np.array(
        [
            max(alone.get((a, va), 0.0), alone.get((b, vb), 0.0))
            for a, b, va, vb in zip(df["a"], df["b"], df["va"], df["vb"], strict=True)
        ]
    )
    df["gain"] = df["score"] - either
    df = df[(df["gain"] > PAIR_GAIN) & (df["p_value"] < PAIR_P)]
    if df.empty:
        return pd.DataFrame(columns=cols)
    df = df.sort_values(["score", "a", "va", "b", "vb"], ascending=[False, True, True, True, True])
    df["dimensions"] = [[a, b] for a, b in zip(df["a"], df["b"], strict=True)]
    df["values"] = [[va, vb] for va, vb in zip(df["va"], df["vb"], strict=True)]
    return df.head(limit).reset_index(drop=True)[cols]
