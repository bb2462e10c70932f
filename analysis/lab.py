"""JupyterLab helpers: the notebook's DuckDB connection for jupysql, and bound SQL values.

jupysql runs every query on ``connection.cursor()``. A DuckDB cursor is a second connection
to the same database that does not see the first one's temp views and macros, which are
exactly what a notebook queries (``v_auth``, ``v_queries``, ``v_timeline``, ``pseudonym``).
:func:`sql_connection` hands jupysql the notebook's own connection instead.

Values for ``%%sql`` cells are DuckDB variables set with a bound parameter (:func:`bind`)
and read in SQL with ``getvariable('name')``: a value from the data is never formatted into
SQL text (jupysql's ``{{name}}`` templating would do exactly that).
"""

from __future__ import annotations

from typing import Any

import duckdb

from analysis import db

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
