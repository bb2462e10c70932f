"""Where the failures concentrate: each dimension value's share of system failures in the
window against its share of all attempts in the window (BubbleUp-style).

Score = incident_share − baseline_share: the share of the failures a value carries beyond
what its traffic alone would give it. A datacenter that carries 10% of the traffic and all
of the failures scores 0.9; each of its four instances scores about 0.225, so a partial
outage puts the datacenter first, above its instances. The score is bounded (−1 to 1), reads
as a share, and needs no distributional assumption.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from analysis import db
from analysis.metrics import Params

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


def dimensions(con: duckdb.DuckDBPyConnection, params: Params, *, limit: int = 20) -> pd.DataFrame:
    """Dimension values ranked by score; empty when the window has no system failure."""
    frames = []
    for name in dimension_columns(con, params):
        col = db.quote_identifier(name)
        frames.append(
            con.execute(
                f"""
                select $dim as dimension, coalesce({col}, '(none)') as value,
                       count(*) filter (
                           where is_system_failure(outcome, error_code, $codes)
                       ) as failures,
                       count(*) as attempts
                from v_auth
                where ts >= $start and ts < $end
                group by all
                """,  # noqa: S608 - col is a checked column of the table
                {
                    "dim": name,
                    "codes": list(params.user_error_codes),
                    "start": params.start,
                    "end": params.end,
                },
            ).df()
        )
    cols = ["dimension", "value", "incident_share", "baseline_share", "score"]
    if not frames:
        return pd.DataFrame(columns=cols)
    df = pd.concat(frames, ignore_index=True)
    totals = df.groupby("dimension")[["failures", "attempts"]].transform("sum")
    if (totals["failures"] == 0).all():
        return pd.DataFrame(columns=cols)
    df["incident_share"] = df["failures"] / totals["failures"]
    df["baseline_share"] = df["attempts"] / totals["attempts"]
    df["score"] = df["incident_share"] - df["baseline_share"]
    df = df.sort_values(["score", "dimension", "value"], ascending=[False, True, True])
    return df.head(limit).reset_index(drop=True)[cols + ["failures", "attempts"]]
