"""What the exploration notebook uses: slice, drill down, look at the rows, and query them.

The helpers take the connection after :func:`analysis.figures.views.scope` and return a small
DataFrame; values are bound and a column name is only ever one of the table's own columns.
User ids come out as keyed pseudonyms unless ``redact=False``.

jupysql runs every query on ``connection.cursor()``. A DuckDB cursor is a second connection
to the same database that does not see the first one's temp views and macros, which are
exactly what a notebook queries (``v_auth``, ``v_queries``, ``v_timeline``, ``pseudonym``).
:func:`sql_connection` hands jupysql the notebook's own connection instead.

Values for ``%%sql`` cells are DuckDB variables set with a bound parameter (:func:`bind`)
and read in SQL with ``getvariable('name')``: a value from the data is never formatted into
SQL text (jupysql's ``{{name}}`` templating would do exactly that).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb
import pandas as pd

from analysis import db, times
from analysis.config import USER_ERROR_CODES

#: the Jupyter kernel of the project's .venv (registered by the Makefile); notebooks name it
KERNEL_NAME = "postmortem-lab"
KERNEL_DISPLAY_NAME = "Postmortem Lab (.venv)"


class SqlConnection:
    """A DB-API face of one open DuckDB connection whose cursor is the connection itself.

    Everything else (``execute``, ``df``, ``description``…) is the connection's, so jupysql
    still recognises a native DuckDB connection and builds DataFrames with ``.df()``.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """The connection itself: its temp views and macros are what the notebook queries."""
        return self._con

    def commit(self) -> None:
        """Nothing: DuckDB autocommits, and a commit here would end a transaction the
        notebook opened itself."""

    def close(self) -> None:
        """Nothing: the notebook closes its connection when it is done (jupysql closes
        its connections at exit, before the notebook would)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


def sql_connection(con: duckdb.DuckDBPyConnection) -> SqlConnection:
    """The connection to give jupysql: ``%sql sql_con --alias incident``."""
    return SqlConnection(con)


def bind(con: duckdb.DuckDBPyConnection, **values: Any) -> None:
    """Set DuckDB variables from Python values, bound (never formatted into the SQL).

    ``bind(con, who="user-1a2b3c4d5e6f")`` and then, in a ``%%sql`` cell,
    ``where pseudonym(getvariable('key'), user_id) = getvariable('who')``.
    """
    for name, value in values.items():
        if not db.is_identifier(name):
            raise ValueError(f"not a plain variable name: {name!r}")
        con.execute(f"set variable {name} = $value", {"value": value})


def _column(con: duckdb.DuckDBPyConnection, name: str) -> str:
    """A column of the report's auth events (``v_auth``), quoted; anything else is refused."""
    if name not in db.columns_of(con, "v_auth"):
        raise ValueError(f"the auth events have no column {name!r}")
    return db.quote_identifier(name)


def slice_series(
    con: duckdb.DuckDBPyConnection,
    *,
    dimension: str | None = None,
    value: str | None = None,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    bucket: str = "1min",
    user_error_codes: tuple[str, ...] = USER_ERROR_CODES,
) -> pd.DataFrame:
    """Attempts, failures and system failures per bucket for one dimension value and range."""
    where = ["ts >= $start", "ts < $end"]
    values: dict[str, object] = {
        "start": times.parse_instant(start) if start else datetime(1, 1, 1),
        "end": times.parse_instant(end) if end else datetime(9999, 1, 1),
        "bucket": times.bucket_interval(bucket),
        "codes": list(user_error_codes),
    }
    if dimension is not None:
        where.append(f"{_column(con, dimension)} = $value")
        values["value"] = value
    return con.execute(
        f"""
        select time_bucket($bucket::interval, ts) as bucket,
               count(*) as attempts,
               count(*) filter (where outcome = 'failure') as failures,
               count(*) filter (where is_system_failure(outcome, error_code, $codes))
                   as system_failures
        from v_auth
        where {" and ".join(where)}
        group by 1 order by 1
        """,  # noqa: S608 - the column is one of the table's own, quoted
        values,
    ).df()


def worst_buckets(
    con: duckdb.DuckDBPyConnection,
    *,
    n: int = 10,
    bucket: str = "1min",
    user_error_codes: tuple[str, ...] = USER_ERROR_CODES,
) -> pd.DataFrame:
    """The buckets with the most system failures (``sql/worst_buckets.sql``)."""
    return db.run(
        con,
        "worst_buckets",
        {"bucket": times.bucket_interval(bucket), "codes": list(user_error_codes), "n": n},
    ).df()


def fingerprints_between(
    con: duckdb.DuckDBPyConnection, start: datetime | str, end: datetime | str, *, n: int = 10
) -> pd.DataFrame:
    """The query fingerprints of a time range, by count, with their latency."""
    return db.run(
        con,
        "fingerprints_between",
        {"start": times.parse_instant(start), "end": times.parse_instant(end), "n": n},
    ).df()


def users_between(
    con: duckdb.DuckDBPyConnection,
    start: datetime | str,
    end: datetime | str,
    *,
    key: str,
    redact: bool = True,
    n: int = 20,
    user_error_codes: tuple[str, ...] = USER_ERROR_CODES,
) -> pd.DataFrame:
    """The users with the most system failures in a range (pseudonymized by default)."""
    return db.run(
        con,
        "users_between",
        {
            "start": times.parse_instant(start),
            "end": times.parse_instant(end),
            "redact": redact,
            "key": key,
            "codes": list(user_error_codes),
            "n": n,
        },
    ).df()


def requests_of_fingerprint(
    con: duckdb.DuckDBPyConnection,
    fingerprint: str,
    start: datetime | str,
    end: datetime | str,
    *,
    key: str,
    redact: bool = True,
    n: int = 20,
) -> pd.DataFrame:
    """The auth attempts of a range whose request issued a fingerprint, with how many of its
    queries were of it, most first (``sql/fingerprint_requests.sql``); users pseudonymized by
    default."""
    return db.run(
        con,
        "fingerprint_requests",
        {
            "fingerprint": fingerprint,
            "start": times.parse_instant(start),
            "end": times.parse_instant(end),
            "redact": redact,
            "key": key,
            "n": n,
        },
    ).df()


def queries_of_request(con: duckdb.DuckDBPyConnection, request_id: str) -> pd.DataFrame:
    """Every query one auth attempt issued, in order."""
    return con.execute(
        "select ts, duration_ms, fingerprint from v_queries where request_id = $rid "
        "order by ts, line",
        {"rid": request_id},
    ).df()


def values_of(con: duckdb.DuckDBPyConnection, dimension: str) -> list[str]:
    """The distinct values of one column of the auth events, sorted."""
    col = _column(con, dimension)
    rows = con.execute(
        f"select distinct {col} from v_auth where {col} is not null order by 1"  # noqa: S608
    ).fetchall()
    return [r[0] for r in rows]


def sample_rows(con: duckdb.DuckDBPyConnection, *, n: int = 5) -> pd.DataFrame:
    """The first auth events, without user and request ids, e-mail and IP addresses masked."""
    from analysis import privacy

    df = con.execute(
        "select * exclude (user_id, request_id) from v_auth order by ts, line limit $n", {"n": n}
    ).df()
    for col in df.columns:
        if df[col].dtype == object or str(df[col].dtype).startswith("str"):
            df[col] = df[col].map(lambda v: privacy.mask(v) if isinstance(v, str) else v)
    return df
