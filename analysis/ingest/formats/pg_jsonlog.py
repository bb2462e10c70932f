"""PostgreSQL ``jsonlog`` (15+): one JSON object per log entry, newlines escaped.

Also reads CloudNativePG's stream, where each PostgreSQL entry is the ``record`` object
of a line and carries the csvlog column names (``log_time``, ``user_name``…). Lines that
are no PostgreSQL entry (the operator's own messages, broken JSON) are counted, not read.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from analysis import kinds
from analysis.ingest.formats import common, pg_common

#: each column of ``_fmt_rec``: the jsonlog key, then the csvlog-style key of CloudNativePG
KEYS = {
    "ts": ("timestamp", "log_time"),
    "severity": ("error_severity", "error_severity"),
    "msg": ("message", "message"),
    "db_user": ("user", "user_name"),
    "database": ("dbname", "database_name"),
    "client": ("remote_host", "connection_from"),
    "application": ("application_name", "application_name"),
    "pid": ("pid", "process_id"),
    "session_id": ("session_id", "session_id"),
    "query_id": ("query_id", "query_id"),
}


def load_jsonlog(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    res: kinds.FileResult,
    *,
    tz: str,
    progress: kinds.Progress | None,
    counts: common.Counts,
) -> None:
    """Load a jsonlog file chunk by chunk (every line is a whole entry)."""
    paths = [f"$.{k}" for pair in KEYS.values() for k in pair]
    cols = []
    for i, name in enumerate(KEYS):
        value = f"nullif(coalesce(v[{2 * i + 1}], v[{2 * i + 2}]), '')"
        if name == "client":
            # CloudNativePG's connection_from is host:port, like csvlog's
            value = rf"regexp_replace({value}, ':\d+$', '')"
            name = "client_ip"
        cols.append(f"{value} as {name}")
    skipped = 0
    for chunk, _last in common.chunks(path):
        n = common.load_chunk(con, chunk)
        counts.lines += n
        sql = f"""
            with docs as (
                select line, txt,
                       case when try(json_type(txt)) = 'OBJECT' then
                           case when json_type(txt, '$.record') = 'OBJECT'
                                then json_extract(txt, '$.record') else txt::json end
                       end as doc
                from _fmt_src
            ), vals as (
                select line, txt, json_extract_string(doc, $paths) as v
                from docs where doc is not null
            ), final as (
                select line, txt as raw, null::varchar as pre_reason, {", ".join(cols)},
                       null::varchar as db_host
                from vals
            )
            -- an object without a severity and a message is not a PostgreSQL entry
            select * from final where severity is not null and msg is not null
        """  # noqa: S608 - fixed column names
        entries = pg_common.finish_chunk(
            con, res, (sql, {"paths": paths}), tz=tz, extras=list(pg_common.EXTRAS), counts=counts
        )
        skipped += n - entries
        if progress:
            progress(
                f"{path.name}: {chunk.bytes_done / 1e6:,.0f} MB read, {res.rows_read:,} queries"
            )
    if skipped:
        res.notes.append(
            f"{skipped:,} line{' is' if skipped == 1 else 's are'} not a PostgreSQL entry "
            "(e.g. an operator's own message): skipped"
        )
