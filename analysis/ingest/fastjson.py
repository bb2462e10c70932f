"""The fast path of a clean JSON Lines file: DuckDB's own parallel ``read_json``.

The line-level path (:func:`analysis.ingest.readers.load_text`) splits the file into numbered lines
in Python and parses each chunk in SQL, so that a broken line is a reject with its line
number. A large file with no broken line pays for guarantees it does not need; DuckDB's
``read_json`` reads it on every core instead. The guarantees stay:

- *line numbers*: a private connection first checks, in one scan of the file's physical
  lines grouped by their keys (the extra columns are read there too), that none is blank
  (``read_json`` skips those), that each starts with ``{`` and that each is JSON;
  ``read_json`` with ``ignore_errors`` then gives one row per line (a key twice, its first
  value, as ``json_transform`` does), read in the file's order, so that the rows are
  numbered as they come;
- *rejects*: validation is the same query as every other format's
  (:func:`analysis.ingest.validate.validation_sql`); a row that fails it is left out of the
  insert, and its line alone is read again by the line-level path, which gives it its
  reason and raw text as it would in a file read line by line (one odd line once sent the
  whole file down that path);
- *fingerprints*: each statement's key is computed as the rows are read, each new key
  fingerprinted once, and the insert joins them;
- *memory*: a large file is read a part of about :data:`PART_BYTES` at a time, each part's
  rows held as Arrow outside the load's transaction until they are stored.

Files smaller than :data:`MIN_BYTES`, compressed files, and files with a ``fingerprint`` field
of their own take the line-level path.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from analysis import db, fingerprint
from analysis.ingest import lines, validate
from analysis.kinds import QUERIES, FileResult, Kind, ReadOptions, Records

#: below this size the line-level path is about as fast, and the check costs more than it saves
MIN_BYTES = 64 * 1024 * 1024
#: a larger file is staged a part of about this size at a time (each part copied to a file of
#: its own, in the kernel, for ``read_json``): the staged text of a whole 1.26 GB file held
#: 2.2 GB, one insert of a whole 12.3 GB file ran out of DuckDB's 3 GB memory limit, and the
#: 60M report with parts of 512 MB peaked at 3,057-3,107 MiB (the Arrow part is held beside
#: DuckDB's own memory limit)
PART_BYTES = 256 * 1024 * 1024

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
    if lines.compression_of(path) is not None or size < MIN_BYTES:
        return None
    if opts.progress:
        opts.progress(f"{path.name}: checking its lines for the fast path")
    checked = _check(path)
    if checked is None:
        return None
    n, keys = checked
    if kind is QUERIES and "fingerprint" in keys:
        return None
    return n, keys


def _stage(
    con: duckdb.DuckDBPyConnection, kind: Kind, path: Path, names: list[str], offset: int
) -> pa.Table:
    """The rows ``read_json`` gives of the file (a part whose first line is ``offset + 1``)
    as text, in the file's order, each with its ``line`` and, of a query log, its
    statement's key (``fp_key``).

    Read with the insertion order kept, the rows come in the file's order, so that the
    check (every line one row) numbers them. They are held as an Arrow table, outside the
    load's transaction: a temporary table per part lived until the commit (3.0 GB of peak
    RSS and a 50 s commit for 60M rows). ``read_json … with ordinality`` numbered the same
    lines but read the file on one thread: 16.5 s for the 6M bench's queries against 4.7 s
    staged on two.
    """
    cols = ", ".join(db.quote_identifier(c) for c in names)
    # the native key runs on the Arrow rows where they are; through DuckDB's Python function
    # each vector crossed to Python and back (16.5 s of 60M statements against 43.5 s for the
    # floor's whole store of them); the macro, where the C key is not built, runs in the scan
    native = kind is QUERIES and fingerprint.key_implementation() == "native"
    in_sql = kind is QUERIES and not native
    key = f", {fingerprint.key_sql('statement')} as fp_key" if in_sql else ""
    kept_order = con.execute("select current_setting('preserve_insertion_order')").fetchall()
    con.execute("set preserve_insertion_order = true")
    try:
        table = con.sql(
            f"select {cols}{key} from read_json($path, columns = $columns, "  # noqa: S608 - checked identifiers
            "format = 'newline_delimited', records = true, ignore_errors = true)",
            params={"path": str(path), "columns": {c: "VARCHAR" for c in names}},
        ).to_arrow_table(db.SCRATCH_BATCH_ROWS)
    finally:
        con.execute("set preserve_insertion_order = ?", [kept_order[0][0]])
    numbers = np.arange(offset + 1, offset + table.num_rows + 1, dtype=np.int64)
    # an array from its buffer: pa.array() would import pandas (0.4 s a process)
    line = pa.Array.from_buffers(pa.int64(), table.num_rows, [None, pa.py_buffer(numbers)])
    table = table.append_column("line", pa.chunked_array([line]))
    if native:
        keys = fingerprint.statement_keys(table.column("statement"))
        table = table.append_column("fp_key", keys)
    return table


def _staged_records(kind: Kind, names: list[str], extras: list[str]) -> Records:
    """The staged rows (``_chunk``) as :class:`Records`, so that the same validation as every
    other format's reads them."""
    cols = ", ".join(f"{db.quote_identifier(c)} as {db.quote_identifier('f_' + c)}" for c in names)
    key = ", fp_key" if kind is QUERIES else ""
    return Records(
        f"select line, null::varchar as raw, null::varchar as pre_reason, "  # noqa: S608 - checked identifiers
        f"{cols}{key} from _chunk",
        {},
        extras,
    )


def _insert_valid(
    con: duckdb.DuckDBPyConnection,
    kind: Kind,
    res: FileResult,
    opts: ReadOptions,
    rec: Records,
    staged: pa.Table,
) -> int:
    """The number of rows of ``rec`` (read from ``staged``) that pass validation, inserted
    with their lines."""
    extras = rec.extras
    validate.add_extra_columns(con, kind, extras)
    target, select = validate.insert_columns(kind, extras, fingerprint="k.fingerprint")
    values = {**rec.params, "sid": res.source_id, **({} if opts.tz == "UTC" else {"tz": opts.tz})}
    checked = validate.validation_sql(
        kind, rec, utc=opts.tz == "UTC", keyed_column=kind is QUERIES
    )
    join = " left join _fp_keys k on c.fp_key = k.fp_key" if kind is QUERIES else ""
    return db.scratch_sql(
        con,
        f"insert into {kind.table} ({target}) select $sid, c.line, {select} "  # noqa: S608 - fixed table, checked columns
        f"from ({checked}) c{join} where c.reason is null",
        values,
        _chunk=staged,
    ).fetchall()[0][0]


def _missing_lines(
    con: duckdb.DuckDBPyConnection, kind: Kind, res: FileResult, first: int, last: int
) -> list:
    """The lines ``first`` to ``last`` of the file that the insert left out: those that
    failed."""
    rows = con.execute(
        f"select line from range(?, ? + 1) r(line) anti join "  # noqa: S608 - fixed table
        f"(select line from {kind.table} where source_id = ? and line between ? and ?) t "
        "using (line) order by line",
        [first, last, res.source_id, first, last],
    ).fetchall()
    return [r[0] for r in rows]


def _lines_of(path: Path, numbers: list[int], offset: int = 0) -> pa.Table:
    """The physical lines ``numbers`` of a file the check passed, as the line-level path
    numbers them: an Arrow table ``(line, raw)`` (see :mod:`analysis.ingest.lines`), each
    line numbered ``offset`` more (``path`` a part of a file, its first line ``offset + 1``)."""
    probe = duckdb.connect(config={"memory_limit": db.DEFAULT_MEMORY_LIMIT})
    db.no_progress_bar(probe)
    try:
        rows = probe.execute(
            f"select ordinality, j from {_LINES} with ordinality "  # noqa: S608 - fixed text
            "where ordinality in (select unnest($numbers)) order by ordinality",
            {"path": str(path), "numbers": [k - offset for k in numbers]},
        ).fetchall()
    finally:
        probe.close()
    # the line-level path drops a carriage return before the newline
    raw = [j.encode("utf-8").removesuffix(b"\r") for _, j in rows]
    offsets = np.cumsum([0] + [len(r) for r in raw], dtype=np.int64)
    # arrays from buffers: pa.array() would import pandas (0.4 s a process)
    lines_array = pa.Array.from_buffers(
        pa.int64(),
        len(rows),
        [None, pa.py_buffer(np.array([r[0] + offset for r in rows], np.int64))],
    )
    raw_array = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(raw), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(raw))]
    )
    return pa.Table.from_arrays([lines_array, raw_array], names=["line", "raw"])


@contextlib.contextmanager
def _parts(path: Path, size: int) -> Iterator[Iterator[Path]]:
    """The file as parts of about ``PART_BYTES`` that end at a newline, each a file of its own
    (the file itself when it is one part), for a ``read_json`` whose staged rows fit in memory;
    each part's file is removed when the next is made."""
    if size <= PART_BYTES * 1.5:
        yield iter([path])
        return
    with tempfile.TemporaryDirectory(prefix="postmortem-part-") as tmp:

        def parts() -> Iterator[Path]:
            part = Path(tmp) / path.name
            # unbuffered: the copy moves the descriptor's position, which a buffered
            # reader would not know of
            with open(path, "rb", buffering=0) as src:
                start = 0
                while start < size:
                    src.seek(min(start + PART_BYTES, size))
                    src.readline()  # to the end of the line the boundary falls in
                    end = min(src.tell(), size)
                    with open(part, "wb") as dst:
                        _copy(src.fileno(), dst.fileno(), start, end - start)
                    yield part
                    start = end

        yield parts()


def _copy(src: int, dst: int, offset: int, count: int) -> None:
    """Nothing; copies ``count`` bytes of ``src`` from ``offset`` to ``dst``, in the kernel
    where it can (no copy through Python's memory)."""
    while count > 0:
        try:
            done = os.copy_file_range(src, dst, count, offset)
        except (AttributeError, OSError):
            done = 0
        if not done:  # another file system, or no copy_file_range: through a buffer
            os.lseek(src, offset, os.SEEK_SET)
            done = os.write(dst, os.read(src, min(count, 64 * 1024 * 1024)))
        offset += done
        count -= done


def _load_part(
    con: duckdb.DuckDBPyConnection,
    kind: Kind,
    part: Path,
    res: FileResult,
    opts: ReadOptions,
    fields: tuple[list[str], list[str]],
    offset: int,
) -> tuple[int, int]:
    """The number of rows of one part of a file (its first line ``offset + 1``) and how many
    of them were stored."""
    names, extras = fields
    staged = _stage(con, kind, part, names, offset)
    if kind is QUERIES:
        # each new key fingerprinted once, as the line-level path does for a chunk; the
        # insert then joins them (updating every stored row cost a second write)
        validate.fingerprint_keys(con, staged)
    loaded = _insert_valid(con, kind, res, opts, _staged_records(kind, names, extras), staged)
    return staged.num_rows, loaded


def _forget(con: duckdb.DuckDBPyConnection, kind: Kind, res: FileResult) -> None:
    """Nothing; removes what the fast path stored of a file it then gave up on."""
    con.execute(f"delete from {kind.table} where source_id = ?", [res.source_id])  # noqa: S608 - fixed table
    con.execute("delete from rejects where source_id = ?", [res.source_id])
    res.rows_read = res.rows_loaded = 0


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
    extras = extras_from(keys, kind, state)
    state["seen"] = {f for f in kind.fields if f in keys}
    if opts.progress:
        opts.progress(f"{path.name}: {n:,} clean lines, read by DuckDB's read_json")
    size, offset = path.stat().st_size, 0
    with _parts(path, size) as parts:
        for part in parts:
            staged, loaded = _load_part(
                con, kind, part, res, opts, (list(kind.fields) + extras, extras), offset
            )
            res.rows_read += loaded
            res.rows_loaded += loaded
            if loaded != staged:
                _reread(con, kind, (part, offset, staged), res, opts, state, line_records)
            offset += staged
            if opts.progress and size > PART_BYTES:
                opts.progress(f"{path.name}: {offset:,} of {n:,} lines stored")
    if offset != n:
        # read_json read the lines otherwise than the check: never seen (the check makes every
        # line one row), but a misnumbered line must not stay
        _forget(con, kind, res)
        return False
    res.rows_rejected = res.rows_read - res.rows_loaded
    return True


def _reread(
    con: duckdb.DuckDBPyConnection,
    kind: Kind,
    where: tuple[Path, int, int],
    res: FileResult,
    opts: ReadOptions,
    state: dict,
    line_records,
) -> None:
    """Nothing; the rows of a part that failed validation, each read again by the line-level
    path, which gives it its reason and raw text: an odd line costs itself only (it used to
    send the whole file down that path). ``where`` is the part's file, the number of lines
    before it and its number of lines."""
    part, offset, staged = where
    missing = _missing_lines(con, kind, res, offset + 1, offset + staged)
    if opts.progress:
        opts.progress(f"{res.path}: {len(missing):,} rows do not load; read line by line")
    chunk = db.batched(_lines_of(part, missing, offset))
    line_rec = line_records(con, kind, state, chunk)
    validate.store(con, kind, res, line_rec, opts.tz, chunk=chunk)
