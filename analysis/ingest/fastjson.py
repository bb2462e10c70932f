"""The fast path of a clean JSON Lines file: DuckDB's own parallel ``read_json``.

The line-level path (:func:`analysis.ingest.readers.load_text`) splits the file into numbered lines
in Python and parses each chunk in SQL, so that a broken line is a reject with its line
number. A large file with no broken line pays for guarantees it does not need; DuckDB's
``read_json`` reads it on every core instead. The guarantees stay:

- *line numbers*: a private connection first checks, in one scan of the file's physical
  lines grouped by their keys (the extra columns are read there too), that none is blank
  (``read_json`` skips those), that each starts with ``{`` and that each is JSON;
  ``read_json`` with ``ignore_errors`` then gives one row per line (a line that is not one
  JSON object, all nulls, which fail validation below; a key twice, its first value, as
  ``json_transform`` does), inserted in file order
  (``preserve_insertion_order``), so that a row's line is its rank in the insert;
- *rejects*: validation is the same query as every other format's
  (:func:`analysis.ingest.validate.validation_sql`); when any row fails it, the rows of the file
  are deleted and the file is read again line by line, rejects and all, in the same
  transaction;
- *fingerprints*: each statement's key is stored, then replaced by its fingerprint once per
  key, as the line-level path does per chunk.

Files smaller than :data:`MIN_BYTES` or larger than :data:`MAX_BYTES`, compressed files,
and files with a ``fingerprint`` field of their own take the line-level path.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from analysis import db
from analysis.ingest import lines, validate
from analysis.kinds import QUERIES, FileResult, Kind, ReadOptions, Records

#: below this size the line-level path is about as fast, and the check costs more than it saves
MIN_BYTES = 64 * 1024 * 1024
#: above this size the line-level path reads the file: the one ordered insert and update of
#: a whole file ran out of DuckDB's 3 GB memory limit on 12.3 GB (55M lines, 2026-12-02),
#: where 1.25 GB (5.5M lines) peaked at 1.2 GB; the line-level path works in chunks
MAX_BYTES = 2 * 1024 * 1024 * 1024

#: the file as physical lines, split on newlines only (a lone carriage return stays inside
#: its line, as in the line-level path); no quoting, no header
_LINES = (
    "read_csv($path, columns = {'j': 'VARCHAR'}, header = false, delim = '\\x01', "
    "quote = '', escape = '', new_line = '\\n', auto_detect = false)"
)


def _check(path: Path) -> tuple[int, list[str]] | None:
    """The number of lines and the keys of a file every line of which ``read_json`` reads
    as the line-level path does, or None (the line-level path must read it)."""
    probe = duckdb.connect(
        config={"preserve_insertion_order": False, "memory_limit": db.DEFAULT_MEMORY_LIMIT}
    )
    # outside the try: inside a Jupyter kernel DuckDB refuses this setting, and the
    # refusal, caught below, sent every file of a report to the line-level path (a load of
    # 0.6M rows took 4.7 s in the report against 2.7 s outside it)
    db.no_progress_bar(probe)
    try:
        # one scan: the lines by their keys (a logger writes a handful of key lists), each
        # group with its number of lines that are blank (read_json skips those) or do not
        # start with '{' (a space or tab first: the line-level path says what it does with
        # them); json_keys fails on a line that is not JSON, which the line-level path must
        # name; the key lists are grouped as JSON text (grouping the lists themselves took
        # 1.7 s of 5.5M lines, their text 1.3 s)
        groups = probe.execute(
            f"select to_json(json_keys(j)), count(*), count(*) filter (where j is null or "  # noqa: S608 - fixed text
            f"not starts_with(j, '{{')) from {_LINES} group by all",
            {"path": str(path)},
        ).fetchall()
    except duckdb.Error:
        return None  # invalid UTF-8, broken JSON, a byte of 0x01: the line-level path says
    finally:
        probe.close()
    n = sum(count for _, count, _ in groups)
    if not n or any(unfit for _, _, unfit in groups):
        return None
    keys = {k for key_list, _, _ in groups for k in json.loads(key_list)}
    return n, sorted(keys)


def _fast_lines(
    con: duckdb.DuckDBPyConnection, kind: Kind, path: Path, opts: ReadOptions
) -> tuple[int, list[str]] | None:
    """The number of lines and the keys of a file the fast path may read, or None (the
    line-level path must read it: its size, compression or columns rule the fast path out)."""
    size = path.stat().st_size
    if lines.compression_of(path) is not None or not MIN_BYTES <= size <= MAX_BYTES:
        return None
    if opts.progress:
        opts.progress(f"{path.name}: checking its lines for the fast path")
    checked = _check(path)
    if checked is None:
        return None
    n, keys = checked
    if kind is QUERIES and "fingerprint" in keys:
        return None
    # lines are numbered by rowid: a column of that name (DuckDB's names ignore case) would
    # stand in its place
    if any(c.lower() == "rowid" for c in [*keys, *db.columns_of(con, kind.table)]):
        return None
    return n, keys


def _read_json_records(
    kind: Kind, path: Path, keys: list[str], state: dict, extras_from
) -> Records:
    """The ``read_json`` query of the file as :class:`Records`, so that the same validation
    as every other format's reads it; notes in ``state`` which fields the file has."""
    extras = extras_from(keys, kind, state)
    names = list(kind.fields) + extras
    state["seen"] = {f for f in kind.fields if f in keys}
    cols = ", ".join(f"{db.quote_identifier(c)} as {db.quote_identifier('f_' + c)}" for c in names)
    return Records(
        f"select 0::bigint as line, null::varchar as raw, null::varchar as pre_reason, {cols} "  # noqa: S608 - checked identifiers
        "from read_json($path, columns = $columns, format = 'newline_delimited', "
        "records = true, ignore_errors = true)",
        {"path": str(path), "columns": {c: "VARCHAR" for c in names}},
        extras,
    )


def _insert_valid(
    con: duckdb.DuckDBPyConnection, kind: Kind, res: FileResult, opts: ReadOptions, rec: Records
) -> int:
    """The number of rows of ``rec`` that pass validation, inserted in file order (a row's
    line is its rank in the insert)."""
    extras = rec.extras
    validate.add_extra_columns(con, kind, extras)
    target, select = validate.insert_columns(kind, extras, fingerprint="c.fp_key")
    values = {**rec.params, "sid": res.source_id, **({} if opts.tz == "UTC" else {"tz": opts.tz})}
    con.execute("set preserve_insertion_order = true")
    try:
        return con.execute(
            f"insert into {kind.table} ({target}) select $sid, 0, {select} "  # noqa: S608 - fixed table, checked columns
            f"from ({validate.validation_sql(kind, rec, utc=opts.tz == 'UTC')}) c "
            "where c.reason is null",
            values,
        ).fetchall()[0][0]
    finally:
        con.execute("set preserve_insertion_order = false")


def _number_lines(con: duckdb.DuckDBPyConnection, kind: Kind, res: FileResult) -> None:
    """Nothing; gives the stored rows their line numbers (and statements their
    fingerprints), which the insert could not."""
    base = db.one(con, f"select min(rowid) from {kind.table} where source_id = ?", [res.source_id])  # noqa: S608
    if kind is QUERIES:
        con.execute(
            "create or replace temp table _fast_fp as select k, fingerprint(k) as fp from "
            "(select distinct fingerprint as k from db_queries where source_id = ?)",
            [res.source_id],
        )
        con.execute(
            "update db_queries set line = db_queries.rowid - ? + 1, fingerprint = _fast_fp.fp "
            "from _fast_fp where db_queries.source_id = ? and db_queries.fingerprint = _fast_fp.k",
            [base[0], res.source_id],
        )
        con.execute("drop table _fast_fp")
    else:
        con.execute(
            f"update {kind.table} set line = rowid - ? + 1 where source_id = ?",  # noqa: S608
            [base[0], res.source_id],
        )


def try_load(
    con: duckdb.DuckDBPyConnection,
    kind: Kind,
    path: Path,
    res: FileResult,
    opts: ReadOptions,
    state: dict,
    extras_from,
) -> bool:
    """Load ``path`` through ``read_json`` when it is clean; False (nothing stored) when the
    line-level path must read it."""
    checked = _fast_lines(con, kind, path, opts)
    if checked is None:
        return False
    n, keys = checked
    rec = _read_json_records(kind, path, keys, state, extras_from)
    if opts.progress:
        opts.progress(f"{path.name}: {n:,} clean lines, read by DuckDB's read_json")
    loaded = _insert_valid(con, kind, res, opts, rec)
    if loaded != n:
        # a row fails validation: the line-level path reads the file, rejects and all
        con.execute(f"delete from {kind.table} where source_id = ?", [res.source_id])  # noqa: S608
        if opts.progress:
            opts.progress(f"{path.name}: {n - loaded:,} rows do not load; read line by line")
        return False
    # the rows went in in file order: a row's line is its rank; a statement's key becomes
    # its fingerprint (one update for both: each rewrites the rows at the commit)
    if opts.progress:
        opts.progress(f"{path.name}: {loaded:,} rows stored; numbering their lines")
    _number_lines(con, kind, res)
    res.rows_read += n
    res.rows_loaded += loaded
    return True
