"""Turning JSON Lines, CSV, Parquet and YAML files into records of text fields.

Text files are read as numbered physical lines (:mod:`analysis.ingest.lines`) and parsed in DuckDB;
Parquet is read by DuckDB itself. Each reader hands batches of records to
:func:`analysis.ingest.validate.store`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable
from pathlib import Path

import duckdb
import pyarrow as pa
import yaml

from analysis import db
from analysis.errors import UnreadableFile
from analysis.ingest import fastjson, lines
from analysis.ingest.validate import store
from analysis.kinds import (
    KINDS,
    RAW_KEEP_CHARS,
    RESERVED,
    FileResult,
    Kind,
    Progress,
    ReadOptions,
    Records,
)

FORMAT_NAMES = {"jsonl": "JSON Lines", "csv": "CSV", "parquet": "Parquet", "yaml": "YAML"}


def json_records(
    con: duckdb.DuckDBPyConnection, kind: Kind, state: dict, chunk: pa.Table
) -> Records:
    """The records of the JSON lines in ``_chunk``.

    Each line is parsed twice: once for its keys (the extra columns to keep), once into a
    struct of text fields (``json_transform``); a broken line fails both, and only then is
    its reason worked out. Both passes read ``_chunk``: keeping the decoded lines in a table
    of their own cost more than decoding twice.
    """
    keys = [
        r[0]
        for r in db.scratch_sql(
            con,
            "select distinct unnest(try(json_keys(case when line = 1 "
            "then ltrim(try(decode(raw)), chr(65279)) else try(decode(raw)) end))) as k "
            "from _chunk order by k",
            _chunk=chunk,
        ).fetchall()
    ]
    extras = extras_from(keys, kind, state)
    names = list(kind.fields) + extras
    structure = json.dumps({n: "VARCHAR" for n in names})
    cols = ", ".join(
        f"v.{db.quote_identifier(n)} as {db.quote_identifier('f_' + n)}" for n in names
    )
    state["seen"] = state.get("seen", set()) | {n for n in kind.fields if n in keys}
    sql = rf"""
        with decoded as (
            select line, raw as blob, try(decode(raw)) as txt0 from _chunk
        ), cleaned as (
            select line, blob,
                   case when line = 1 then ltrim(txt0, chr(65279)) else txt0 end as txt
            from decoded
        )
        select line,
               left(coalesce(txt, blob::varchar), $keep) as raw,
               case when txt is null then 'invalid UTF-8'
                    when v is null then 'broken JSON'
                    when left(ltrim(txt), 1) <> '{{' then 'not a JSON object'
               end as pre_reason,
               {cols}
        from (select line, blob, txt, try(json_transform(txt, $structure)) as v from cleaned
              where txt is null or not regexp_full_match(txt, '\s*'))
    """  # noqa: S608 - column names are checked identifiers
    return Records(sql, {"structure": structure, "keep": RAW_KEEP_CHARS}, extras)


def csv_records(
    con: duckdb.DuckDBPyConnection, kind: Kind, state: dict, chunk: pa.Table
) -> Records | None:
    """The records of the CSV lines in ``_chunk``; the header comes from the first line."""
    if "header" not in state:
        if not chunk.num_rows:
            return None
        first = (chunk["line"][0].as_py(), chunk["raw"][0].as_py())
        text = first[1].decode("utf-8", errors="replace").lstrip("\ufeff")
        try:
            header = [h.strip() for h in next(csv.reader([text]))]
        except csv.Error as exc:  # a stray carriage return or quote in the header line
            raise UnreadableFile(
                f"{state['path']}: line {first[0]}: the CSV header cannot be read ({exc})"
            ) from exc
        state["header"] = header
        state["header_line"] = first[0]
        state["extras"] = extras_from(header, kind, state)
        state["seen"] = {n for n in kind.fields if n in header}
        missing = [n for n in kind.required_columns if n not in header]
        if missing:
            raise UnreadableFile(
                f"{state['path']}: the CSV header has no {', '.join(missing)} column "
                f"(columns: {', '.join(header)})"
            )
        if kind.one_of and not any(n in header for n in kind.one_of):
            raise UnreadableFile(
                f"{state['path']}: the CSV header has none of {', '.join(kind.one_of)}"
            )
    header: list[str] = state["header"]
    wanted = list(kind.fields) + state["extras"]
    cols = []
    for n in wanted:
        alias = db.quote_identifier("f_" + n)
        if n in header:
            idx = header.index(n) + 1
            cols.append(f"nullif(csv_unquote(fields[{idx}]), '') as {alias}")
        else:
            cols.append(f"null::varchar as {alias}")
    sql = f"""
        with decoded as (
            select line, raw as blob, try(decode(raw)) as txt from _chunk where line > $hdr
        ), split as (
            select line, blob, txt,
                   regexp_extract_all(',' || txt, $pattern, 1) as fields
            from decoded
            where txt is null or not regexp_full_match(txt, '\\s*')
        )
        select line,
               left(coalesce(txt, blob::varchar), $keep) as raw,
               case when txt is null then 'invalid UTF-8'
                    when array_to_string(fields, ',') <> txt then 'malformed CSV quoting'
                    when len(fields) <> $ncols then
                        'wrong column count: expected ' || $ncols || ', got ' || len(fields)
               end as pre_reason,
               {", ".join(cols)}
        from split
    """  # noqa: S608 - column names are checked identifiers
    values = {
        "hdr": state["header_line"],
        "pattern": db.CSV_FIELD,
        "keep": RAW_KEEP_CHARS,
        "ncols": len(header),
    }
    return Records(sql, values, state["extras"])


def extras_from(names: Iterable[str], kind: Kind, state: dict) -> list[str]:
    """Extra columns to keep: plain identifiers that are not fields of ours.

    DuckDB's names ignore case, so a name is compared in lower case: ``FP_key`` would stand
    in the place of the load's own ``fp_key`` and ``TS`` of the table's ``ts``."""
    extras = list(state.get("extras", []))
    taken = {n.lower() for n in extras}
    for n in names:
        if n in kind.fields or n in extras:
            continue
        low = n.lower()
        if (
            low in RESERVED
            or low in kind.fields
            or low in taken
            or not db.is_identifier(n)
            or low.startswith("f_")
        ):
            state.setdefault("skipped_columns", set()).add(n)
            continue
        extras.append(n)
        taken.add(low)
    return extras


def load_text(
    con: duckdb.DuckDBPyConnection,
    kind: Kind,
    path: Path,
    res: FileResult,
    to_records: Callable[[duckdb.DuckDBPyConnection, Kind, dict, pa.Table], Records | None],
    *,
    tz: str,
    progress: Progress | None,
) -> None:
    state: dict = {"path": str(path)}
    for chunk in lines.iter_chunks(path):
        table = db.batched(chunk.table)
        rec = to_records(con, kind, state, table)
        if rec is not None:
            store(con, kind, res, rec, tz, chunk=table)
        if progress:
            total = f" of {chunk.bytes_total / 1e6:,.0f} MB" if chunk.bytes_total else ""
            progress(
                f"{path.name}: {chunk.bytes_done / 1e6:,.0f} MB{total} read, "
                f"{res.rows_read:,} rows"
            )
    res.rows_rejected = res.rows_read - res.rows_loaded
    _check_whole_file(res, kind, state, fmt_name=FORMAT_NAMES[res.format])


def _check_whole_file(res: FileResult, kind: Kind, state: dict, *, fmt_name: str) -> None:
    """Stop when a file is not what it claims or lacks a required field everywhere."""
    bad_json = res.not_json
    if res.rows_read and res.format == "jsonl" and bad_json == res.rows_read:
        raise UnreadableFile(f"{res.path}: no line is a JSON object; is it {fmt_name}?")
    if res.rows_read and res.rows_read > bad_json and res.format == "jsonl":
        seen = state.get("seen", set())
        missing = [n for n in kind.required_columns if n not in seen]
        if missing:
            raise UnreadableFile(f"{res.path}: no row has the required field {', '.join(missing)}")
        if kind.one_of and not any(n in seen for n in kind.one_of):
            raise UnreadableFile(f"{res.path}: no row has any of {', '.join(kind.one_of)}")
    if state.get("skipped_columns"):
        res.notes.append(
            "columns not kept (not plain names or reserved): "
            + ", ".join(sorted(state["skipped_columns"]))
        )


def load_parquet(
    con: duckdb.DuckDBPyConnection, kind: Kind, path: Path, res: FileResult, *, tz: str
) -> None:
    try:
        schema = con.execute(
            "select column_name, column_type from (describe select * from read_parquet(?))",
            [str(path)],
        ).fetchall()
    except duckdb.Error as exc:
        raise UnreadableFile(f"{path}: is not a readable Parquet file ({exc})") from exc
    names = [r[0] for r in schema]
    types = {r[0]: r[1] for r in schema}
    missing = [n for n in kind.required_columns if n not in names]
    if missing:
        raise UnreadableFile(
            f"{path}: the Parquet file has no {', '.join(missing)} column "
            f"(columns: {', '.join(names)})"
        )
    state: dict = {"path": str(path)}
    extras = extras_from(names, kind, state)
    present = [n for n in names if n in kind.fields or n in extras]
    cols = []
    for n in list(kind.fields) + extras:
        alias = db.quote_identifier("f_" + n)
        if n in names and types[n] == "JSON":
            # a column of mixed types arrives as JSON: its text, not its JSON quoting
            cols.append(f"json_extract_string(p.{db.quote_identifier(n)}, '$') as {alias}")
        elif n in names:
            cols.append(f"cast(p.{db.quote_identifier(n)} as varchar) as {alias}")
        else:
            cols.append(f"null::varchar as {alias}")
    raw = ", ".join(f"{db.quote_identifier(n)} := p.{db.quote_identifier(n)}" for n in present)
    sql = f"""
        select file_row_number + 1 as line,
               left(to_json(struct_pack({raw}))::varchar, $keep) as raw,
               null::varchar as pre_reason,
               {", ".join(cols)}
        from read_parquet($path, file_row_number = true) p
    """  # noqa: S608 - identifiers checked
    store(con, kind, res, Records(sql, {"path": str(path), "keep": RAW_KEEP_CHARS}, extras), tz)
    res.rows_rejected = res.rows_read - res.rows_loaded
    _check_whole_file(res, kind, state, fmt_name="Parquet")


def load_yaml(
    con: duckdb.DuckDBPyConnection, kind: Kind, path: Path, res: FileResult, *, tz: str
) -> None:
    """A timeline in YAML: a list of mappings; small, so read with PyYAML."""
    text = lines.open_bytes(path).read().decode("utf-8", errors="replace")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UnreadableFile(f"{path}: is not valid YAML ({exc})") from exc
    if data is None:
        data, items = [], []
    elif not isinstance(data, list) or not isinstance(node, yaml.SequenceNode):
        raise UnreadableFile(f"{path}: a timeline in YAML must be a list of {{ts, kind, text}}")
    else:
        items = node.value
    rows = []
    for item, item_node in zip(data, items, strict=True):
        line = item_node.start_mark.line + 1
        if not isinstance(item, dict):
            rows.append((line, json.dumps(item, default=str), "not a mapping", None, None, None))
            continue
        vals = [_yaml_text(item.get(n)) for n in kind.fields]
        rows.append((line, json.dumps(item, default=str, sort_keys=True), None, *vals))
    table = pa.table(
        {
            "line": pa.array([r[0] for r in rows], pa.int64()),
            "raw": pa.array([r[1] for r in rows], pa.string()),
            "pre_reason": pa.array([r[2] for r in rows], pa.string()),
            **{
                "f_" + n: pa.array([r[3 + i] for r in rows], pa.string())
                for i, n in enumerate(kind.fields)
            },
        }
    )
    con.register("_yaml_view", table)
    con.execute("create or replace temp table _yaml as select * from _yaml_view")
    con.unregister("_yaml_view")
    store(con, kind, res, Records("select * from _yaml", {}, []), tz)
    res.rows_rejected = res.rows_read - res.rows_loaded


def _yaml_text(value: object) -> str | None:
    """YAML turns unquoted times into datetimes: give them back as ISO text."""
    if value is None:
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()  # type: ignore[no-any-return]
    return str(value)


# --- the registry's entry points (see analysis.ingest.registry) ---


def read_jsonl(
    con: duckdb.DuckDBPyConnection, kind: Kind, path: Path, res: FileResult, opts: ReadOptions
) -> None:
    """JSON Lines with the canonical field names: a large clean file through DuckDB's
    ``read_json`` (:mod:`analysis.ingest.fastjson`), any other line by line."""
    lines.refuse_binary(path, FORMAT_NAMES["jsonl"])
    state: dict = {"path": str(path)}
    if fastjson.try_load(con, kind, path, res, opts, state, extras_from, json_records):
        _check_whole_file(res, kind, state, fmt_name=FORMAT_NAMES["jsonl"])
        return
    load_text(con, kind, path, res, json_records, tz=opts.tz, progress=opts.progress)


def read_csv(
    con: duckdb.DuckDBPyConnection, kind: Kind, path: Path, res: FileResult, opts: ReadOptions
) -> None:
    """CSV with a header row of the canonical field names."""
    lines.refuse_binary(path, FORMAT_NAMES["csv"])
    load_text(con, kind, path, res, csv_records, tz=opts.tz, progress=opts.progress)


def read_parquet(
    con: duckdb.DuckDBPyConnection, kind: Kind, path: Path, res: FileResult, opts: ReadOptions
) -> None:
    """Parquet with columns of the canonical names."""
    load_parquet(con, kind, path, res, tz=opts.tz)


def read_yaml(
    con: duckdb.DuckDBPyConnection, kind: Kind, path: Path, res: FileResult, opts: ReadOptions
) -> None:
    """A timeline as a YAML list."""
    load_yaml(con, kind, path, res, tz=opts.tz)


def sniff_jsonl(sample: list[str]) -> str | None:
    """Why the first lines look like JSON Lines with our field names, or None."""
    objects = []
    for s in sample[:50]:
        try:
            value = json.loads(s)
        except (ValueError, RecursionError):
            return None
        if not isinstance(value, dict):
            return None
        objects.append(value)
    # 'ts' alone is not ours (CloudNativePG's log lines have one): a field of our own too
    ours = {n for kind in KINDS.values() for n in kind.fields} - {"ts"}
    if objects and all("ts" in o and ours & o.keys() for o in objects):
        return f"its first {len(objects)} lines are JSON objects with our 'ts' and fields"
    return None


def sniff_csv(sample: list[str]) -> str | None:
    """Why the first lines look like CSV with our field names, or None."""
    if len(sample) < 1:
        return None
    try:
        header = [h.strip() for h in next(csv.reader([sample[0]]))]
    except (csv.Error, StopIteration):
        return None
    if "ts" in header and len(header) > 1:
        return f"a CSV header with ts and {len(header) - 1} other columns"
    return None
