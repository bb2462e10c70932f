"""Real server logs: PostgreSQL, the MySQL slow query log and OpenSSH sshd.

One module per format; each reads the file as numbered lines (:mod:`analysis.lines`),
parses it inside DuckDB (regexes and window functions over whole chunks, never a Python
loop per line), and hands its records to :func:`analysis.load._store`, which validates,
fingerprints and stores them like every other input. Lines that are not records are
counted in the file's notes; PostgreSQL's go to the ``server_events`` table.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from analysis import load
from analysis.formats import common
from analysis.lines import UnreadableFile

#: format name -> the kind of input it gives
FORMATS = {"postgres": "queries", "mysql-slow": "queries", "sshd": "auth"}


def load_server_log(
    con: duckdb.DuckDBPyConnection,
    kind: load.Kind,
    path: Path,
    fmt: str,
    res: load.FileResult,
    *,
    tz: str,
    progress: load.Progress | None = None,
    log_line_prefix: str | None = None,
    year: int | None = None,
) -> None:
    """Load one server log into the kind's table; counts and notes go to ``res``.

    Raises
    ------
    UnreadableFile
        when the format is unknown or not one of this kind's, or the file is not that
        format at all (e.g. no line matches the PostgreSQL ``log_line_prefix``).
    """
    if fmt not in FORMATS:
        known = ", ".join(["jsonl", "csv", "parquet", *(f for f, k in FORMATS.items())])
        raise UnreadableFile(f"{path}: unknown format {fmt!r} (one of {known})")
    if FORMATS[fmt] != kind.name:
        raise UnreadableFile(
            f"{path}: {fmt} logs hold {FORMATS[fmt]}, not {kind.name} "
            f"(give it with --{'queries' if FORMATS[fmt] == 'queries' else 'auth'})"
        )
    common.drop_temp(con)
    try:
        if fmt == "postgres":
            from analysis.formats import postgres

            postgres.load_postgres(
                con,
                path,
                res,
                tz=tz,
                progress=progress,
                log_line_prefix=log_line_prefix,
                year=year,
            )
        elif fmt == "mysql-slow":
            from analysis.formats import mysql_slow

            mysql_slow.load_slow_log(con, path, res, tz=tz, progress=progress)
        else:
            from analysis.formats import sshd

            sshd.load_sshd(con, path, res, tz=tz, progress=progress, year=year)
    finally:
        common.drop_temp(con)
