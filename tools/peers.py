"""The bench's DataFrame peers: the report's core figures as a data engineer would write them
with Polars or with pandas on pyarrow, on the same JSON Lines files.

Each computes, for the sample's declared window and one-minute buckets: attempts, failures,
error rate and system failures per bucket; attempts, failures and affected users in the
window; queries per auth attempt (queries joined to attempts on ``request_id``); the top
statements by count under a literal-stripping regex of its own. No validation, no rejects,
no line numbers, no fingerprint rules beyond the regex: what they skip is their advantage.

Run one with ``python -m tools.peers polars|pandas-pyarrow AUTH QUERIES``; it prints a line
of its figures (so that the work cannot be skipped) and the bench times the process.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

#: the sample's declared window (tools.bench's ANALYSIS uses the same)
START = datetime(2024, 1, 19, 10, 30, tzinfo=UTC)
END = datetime(2024, 1, 19, 14, 45, tzinfo=UTC)
#: the default user error codes of the contract: every other code is the system's
USER_CODES = [
    "invalid_credentials",
    "invalid_password",
    "user_not_found",
    "account_locked",
    "mfa_failed",
    "password_expired",
]
#: literals out of a statement: strings, numbers, then IN lists (their own, not ours)
STRINGS = r"'[^']*'"
NUMBERS = r"\b\d+(\.\d+)?\b"
IN_LIST = r"in \((\?, )*\?\)"


def polars_figures(auth: str, queries: str) -> str:
    """The figures with Polars: ``scan_ndjson`` with an explicit schema, lazy, all at once."""
    import polars as pl

    ts = pl.col("ts").str.to_datetime(time_zone="UTC", time_unit="us")
    a = pl.scan_ndjson(
        auth,
        schema={
            "ts": pl.String,
            "user_id": pl.String,
            "outcome": pl.String,
            "request_id": pl.String,
            "error_code": pl.String,
        },
    ).with_columns(ts=ts, failed=pl.col("outcome") == "failure")
    q = pl.scan_ndjson(
        queries, schema={"ts": pl.String, "statement": pl.String, "request_id": pl.String}
    ).with_columns(ts=ts)
    system = pl.col("failed") & ~pl.col("error_code").is_in(USER_CODES)
    per_minute = (
        a.group_by(minute=pl.col("ts").dt.truncate("1m"))
        .agg(attempts=pl.len(), failures=pl.col("failed").sum(), system=system.sum())
        .with_columns(error_rate=pl.col("failures") / pl.col("attempts"))
    )
    window = a.filter(pl.col("ts").is_between(START, END, closed="left"))
    totals = window.select(
        attempts=pl.len(),
        failures=pl.col("failed").sum(),
        affected=pl.col("user_id").filter(pl.col("failed")).n_unique(),
    )
    per_attempt = (
        q.filter(pl.col("request_id").is_not_null())
        .group_by("request_id")
        .agg(n=pl.len())
        .join(window.select("request_id"), on="request_id", how="right")
        .select(per_attempt=pl.col("n").fill_null(0).mean())
    )
    shape = (
        pl.col("statement")
        .str.to_lowercase()
        .str.replace_all(STRINGS, "?")
        .str.replace_all(NUMBERS, "?")
        .str.replace_all(IN_LIST, "in (?+)")
    )
    top = q.group_by(shape=shape).agg(n=pl.len()).sort("n", descending=True).head(10)
    minutes, total, ratio, statements = pl.collect_all([per_minute, totals, per_attempt, top])
    return (
        f"{minutes.height} minutes, {total.row(0)}, {ratio.item():.3f} queries an attempt, "
        f"top {statements.row(0)}"
    )


def pandas_pyarrow_figures(auth: str, queries: str) -> str:
    """The figures with pandas, reading with ``engine="pyarrow"`` into Arrow-backed columns."""
    import pandas as pd

    def read(path: str, columns: list[str]) -> pd.DataFrame:
        frame = pd.read_json(path, lines=True, engine="pyarrow", dtype_backend="pyarrow")
        frame = frame[[c for c in columns if c in frame.columns]]
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True, format="ISO8601")
        return frame

    a = read(auth, ["ts", "user_id", "outcome", "request_id", "error_code"])
    q = read(queries, ["ts", "statement", "request_id"])
    a["failed"] = a["outcome"] == "failure"
    a["system"] = a["failed"] & ~a["error_code"].isin(USER_CODES)
    per_minute = a.groupby(a["ts"].dt.floor("min")).agg(
        attempts=("failed", "size"), failures=("failed", "sum"), system=("system", "sum")
    )
    per_minute["error_rate"] = per_minute["failures"] / per_minute["attempts"]
    window = a[(a["ts"] >= START) & (a["ts"] < END)]
    total = (
        len(window),
        int(window["failed"].sum()),
        window.loc[window["failed"], "user_id"].nunique(),
    )
    counts = q.dropna(subset=["request_id"]).groupby("request_id").size().rename("n")
    joined = window[["request_id"]].join(counts, on="request_id")
    ratio = float(joined["n"].fillna(0).mean())
    shape = (
        q["statement"]
        .str.lower()
        .str.replace(STRINGS, "?", regex=True)
        .str.replace(NUMBERS, "?", regex=True)
        .str.replace(IN_LIST, "in (?+)", regex=True)
    )
    top = shape.value_counts().head(10)
    return (
        f"{len(per_minute)} minutes, {total}, {ratio:.3f} queries an attempt, "
        f"top {(top.index[0], int(top.iloc[0]))}"
    )


PEERS = {"polars": polars_figures, "pandas-pyarrow": pandas_pyarrow_figures}


def main(argv: list[str] | None = None) -> int:
    """Run one peer on an auth file and a query file; print its figures."""
    name, auth, queries = argv if argv is not None else sys.argv[1:]
    print(PEERS[name](auth, queries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
