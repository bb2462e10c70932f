"""The fast path of a clean JSON Lines file: DuckDB's own parallel ``read_json``.

The line-level path (:func:`analysis.ingest.readers.load_text`) splits the file into numbered lines
in Python and parses each chunk in SQL, so that a broken line is a reject with its line
number. A large file with no broken line pays for guarantees it does not need; DuckDB's
``read_json`` reads it on every core instead. The guarantees stay:

- *line numbers*: a private connection first checks, in one scan of the file's physical
  lines grouped by their keys (the extra columns are read there too), that none is blank
  (``read_json`` skips those), that each starts with ``{`` and that each is JSON;
  ``read_json`` with ``ignore_errors`` then gives one row per line (a key twice, its first
  value, as ``json_transform`` does), so that a row's line is the scan's ordinality;
- *rejects*: validation is the same query as every other format's
  (:func:`analysis.ingest.validate.validation_sql`); a row that fails it is left out of the
  insert, and its line alone is read again by the line-level path, which gives it its
  reason and raw text as it would in a file read line by line (one odd line once sent the
  whole file down that path);
- *fingerprints*: each statement's key is stored, then replaced by its fingerprint once per
  key, as the line-level path does per chunk.

Files smaller than :data:`MIN_BYTES` or larger than :data:`MAX_BYTES`, compressed files,
and files with a ``fingerprint`` field of their own take the line-level path.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

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
    # lines are numbered by the scan's ordinality: a field of that name (DuckDB's names
    # ignore case) would stand in its place
    if any(c.lower() == "ordinality" for c in keys):
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
        f"select ordinality::bigint as line, null::varchar as raw, null::varchar as pre_reason, "  # noqa: S608 - checked identifiers
        f"{cols} from read_json($path, columns = $columns, format = 'newline_delimited', "
        "records = true, ignore_errors = true) with ordinality",
        {"path": str(path), "columns": {c: "VARCHAR" for c in names}},
        extras,
    )


def _insert_valid(
    con: duckdb.DuckDBPyConnection, kind: Kind, res: FileResult, opts: ReadOptions, rec: Records
) -> int:
    """The number of rows of ``rec`` that pass validation, inserted with their lines (the
    scan's ordinality: the check made sure that every line is one row)."""
    extras = rec.extras
    validate.add_extra_columns(con, kind, extras)
    target, select = validate.insert_columns(kind, extras, fingerprint="c.fp_key")
    values = {**rec.params, "sid": res.source_id, **({} if opts.tz == "UTC" else {"tz": opts.tz})}
    return con.execute(
        f"insert into {kind.table} ({target}) select $sid, c.line, {select} "  # noqa: S608 - fixed table, checked columns
        f"from ({validate.validation_sql(kind, rec, utc=opts.tz == 'UTC')}) c "
        "where c.reason is null",
        values,
    ).fetchall()[0][0]


def _fingerprint(con: duckdb.DuckDBPyConnection, res: FileResult) -> None:
    """Nothing; gives the stored statements their fingerprints in place of their keys, the
    fingerprint computed once per key."""
    con.execute(
        "create or replace temp table _fast_fp as select k, fingerprint(k) as fp from "
        "(select distinct fingerprint as k from db_queries where source_id = ?)",
        [res.source_id],
    )
    con.execute(
        "update db_queries set fingerprint = _fast_fp.fp from _fast_fp "
        "where db_queries.source_id = ? and db_queries.fingerprint = _fast_fp.k",
        [res.source_id],
    )
    con.execute("drop table _fast_fp")


def _missing_lines(con: duckdb.DuckDBPyConnection, kind: Kind, res: FileResult, n: int) -> list:
    """The lines of the file (1 to ``n``) that the insert left out: those that failed."""
    rows = con.execute(
        f"select line from range(1, ? + 1) r(line) anti join "  # noqa: S608 - fixed table
        f"(select line from {kind.table} where source_id = ?) t using (line) order by line",
        [n, res.source_id],
    ).fetchall()
    return [r[0] for r in rows]


def _lines_of(path: Path, numbers: list[int]) -> pa.Table:
    """The physical lines ``numbers`` of a file the check passed, as the line-level path
    numbers them: an Arrow table ``(line, raw)`` (see :mod:`analysis.ingest.lines`)."""
    probe = duckdb.connect(config={"memory_limit": db.DEFAULT_MEMORY_LIMIT})
    db.no_progress_bar(probe)
    try:
        rows = probe.execute(
            f"select ordinality, j from {_LINES} with ordinality "  # noqa: S608 - fixed text
            "where ordinality in (select unnest($numbers)) order by ordinality",
            {"path": str(path), "numbers": numbers},
        ).fetchall()
    finally:
        probe.close()
    # the line-level path drops a carriage return before the newline
    raw = [j.encode("utf-8").removesuffix(b"\r") for _, j in rows]
    offsets = np.cumsum([0] + [len(r) for r in raw], dtype=np.int64)
    # arrays from buffers: pa.array() would import pandas (0.4 s a process)
    lines_array = pa.Array.from_buffers(
        pa.int64(), len(rows), [None, pa.py_buffer(np.array([r[0] for r in rows], np.int64))]
    )
    raw_array = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(raw), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(raw))]
    )
    return pa.Table.from_arrays([lines_array, raw_array], names=["line", "raw"])


def try_load(
    con: duckdb.DuckDBPyConnection,
    kind: Kind,
    path: Path,
    res: FileResult,
    opts: ReadOptions,
    state: dict,
    extras_from,
    line_records,
) -> bool:
    """Load ``path`` through ``read_json`` when its lines are JSON objects; False (nothing
    stored) when the line-level path must read it. ``line_records`` makes the records of a
    chunk of numbered lines, for the rows that fail validation."""
    checked = _fast_lines(con, kind, path, opts)
    if checked is None:
        return False
    n, keys = checked
    rec = _read_json_records(kind, path, keys, state, extras_from)
    if opts.progress:
        opts.progress(f"{path.name}: {n:,} clean lines, read by DuckDB's read_json")
    loaded = _insert_valid(con, kind, res, opts, rec)
    if kind is QUERIES:
        if opts.progress:
            opts.progress(f"{path.name}: {loaded:,} rows stored; fingerprinting them")
        _fingerprint(con, res)
    res.rows_read += loaded
    res.rows_loaded += loaded
    if loaded != n:
        # a row that fails validation costs itself only: its line goes through the line-level
        # path alone, which gives it its reason and raw text (it used to read the whole file
        # again, rejects and all)
        missing = _missing_lines(con, kind, res, n)
        if opts.progress:
            opts.progress(f"{path.name}: {len(missing):,} rows do not load; read line by line")
        chunk = db.batched(_lines_of(path, missing))
        line_rec = line_records(con, kind, state, chunk)
        validate.store(con, kind, res, line_rec, opts.tz, chunk=chunk)
    res.rows_rejected = res.rows_read - res.rows_loaded
    return True
