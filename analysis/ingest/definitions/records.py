"""Where the records of a log are: one row per record, ``(line, raw, pre_reason, rec)``,
from the numbered lines of a chunk.

JSON (lines, or one document unnested along the definition's ``records`` paths), CSV (each
line after the header as an object of the header's names) and text (the named groups of the
definition's pattern, and ``key=value`` pairs) all become one JSON object per record, so that
the columns read every input alike.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from pathlib import Path

import pyarrow as pa

from analysis import db
from analysis.errors import UnreadableFile
from analysis.ingest import lines
from analysis.ingest.definitions.columns import Binder
from analysis.ingest.definitions.schema import (
    Column,
    Definition,
    json_path,
    split_path,
)


def _text_record_sql(d: Definition, bind: Binder) -> str:
    """The JSON object of a text line: its named groups, over the ``key=value`` pairs of
    the ``keyvalues`` group when there is one (so that the columns read both alike)."""
    names = bind(list(d.groups))
    obj = f"to_json(regexp_extract(txt, {bind(d.pattern)}, {names}::varchar[]))"
    if d.keyvalues:
        pairs = (
            f"regexp_extract_all(regexp_extract(txt, {bind(d.pattern)}, "
            f"{bind(re.compile(d.pattern).groupindex[d.keyvalues])}::integer), "
            + '\'([A-Za-z_][\\w.-]*)=("[^"]*"|[^,]*)\')'
        )
        kv = (
            f"to_json(map_from_entries(list_transform({pairs}, lambda x: struct_pack("
            "k := split_part(x, '=', 1), "
            "v := trim(substr(x, strpos(x, '=') + 1), '\"')))))"
        )
        obj = f"json_merge_patch({kv}, {obj})"
    return obj


def _text_records_sql(d: Definition, bind: Binder) -> str:
    """The records query of a text definition: one row per line, matched by its pattern,
    with comments and unmatched lines marked to be skipped or rejected as it says."""
    obj = _text_record_sql(d, bind)
    skip = bind(list(d.skip_lines))
    return f"""
            with decoded as (
                select line, try(decode(raw)) as txt, raw as blob from _chunk
            ), marked as (
                select line, txt, blob,
                       txt is not null and regexp_matches(txt, {bind(d.pattern)}) as hit,
                       txt is not null and len(
                           list_filter({skip}::varchar[], lambda p: starts_with(txt, p))
                       ) > 0 as comment
                from decoded
                where txt is null or not regexp_full_match(txt, '\\s*')
            )
            select line,
                   left(coalesce(txt, blob::varchar), $keep) as raw,
                   case when txt is null then 'invalid UTF-8'
                        when not hit and not comment and {bind(d.reject_unmatched)}
                            then 'not a {d.name} line'
                   end as pre_reason,
                   case when hit and not comment then {obj} end as rec,
                   case when comment then 'comment line'
                        when txt is not null and not hit and not {bind(d.reject_unmatched)}
                            then 'not a {d.name} line'
                   end as skip_kind
            from marked
        """  # noqa: S608 - the name is a checked definition name, values are bound


def _csv_records_sql(d: Definition, bind: Binder, header: CsvHeader) -> str:
    """The records of a CSV file: each line after the header as a JSON object of the
    header's names (quotes removed; an empty field is no value), split as the CSV format
    splits it; a line with the wrong number of fields is rejected with the count."""
    names = bind(list(header.names))
    return f"""
        with decoded as (
            select line, raw as blob, try(decode(raw)) as txt from _chunk
            where line > {bind(header.line)}
        ), split as (
            select line, blob, txt,
                   regexp_extract_all(',' || txt, {bind(db.CSV_FIELD)}, 1) as fields
            from decoded
            where txt is null or not regexp_full_match(txt, '\\s*')
        ), checked as (
            select line, blob, txt, fields,
                   case when txt is null then 'invalid UTF-8'
                        when array_to_string(fields, ',') <> txt then 'malformed CSV quoting'
                        when len(fields) <> {bind(len(header.names))} then
                            'wrong column count: expected ' || {bind(len(header.names))}
                            || ', got ' || len(fields)
                   end as pre_reason
            from split
        )
        select line, left(coalesce(txt, blob::varchar), $keep) as raw, pre_reason,
               case when pre_reason is null then to_json(map_from_entries(list_transform(
                   fields, lambda f, i: struct_pack(k := ({names}::varchar[])[i],
                                                    v := csv_unquote(f)))))
               end as rec,
               null::varchar as skip_kind
        from checked
    """  # noqa: S608 - values are bound


@dataclasses.dataclass(frozen=True)
class CsvHeader:
    """The header of a CSV file: its column names and the line it is on."""

    names: tuple[str, ...]
    line: int


def csv_header(path: Path, d: Definition) -> CsvHeader:
    """The header of a CSV log, checked against the definition: every column the
    definition reads has one of its paths in the header, else nothing would be read."""
    for chunk in lines.iter_chunks(path, chunk_bytes=1 << 20):
        rows = chunk.table.to_pydict()
        for line, raw in zip(rows["line"], rows["raw"], strict=True):
            text = raw.decode("utf-8", errors="replace").lstrip("\ufeff")
            if not text.strip():
                continue
            try:
                names = tuple(h.strip() for h in next(csv.reader([text])))
            except csv.Error as exc:
                raise UnreadableFile(
                    f"{path}: line {line}: the CSV header cannot be read ({exc})"
                ) from exc
            _check_header(path, d, names)
            return CsvHeader(names, line)
    raise UnreadableFile(f"{path}: the file is empty (a CSV log starts with its header)")


def _check_header(path: Path, d: Definition, names: tuple[str, ...]) -> None:
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        raise UnreadableFile(f"{path}: the CSV header names {', '.join(doubled)} twice")
    wanted = [(f"fields.{n}", c) for n, c in d.columns.items()]
    wanted += [(f"extras.{n}", c) for n, c in d.extras.items()]
    wanted += [("attempts.field", Column(paths=d.attempt_fields))]
    for where, column in wanted:
        roots = [(split_path(p) or [p])[0] for p in column.paths]
        if roots and not any(r in names for r in roots):
            raise UnreadableFile(
                f"{path}: {where} reads {', '.join(column.paths)}, which the CSV header does "
                f"not have (its columns: {', '.join(names)}) ({d.name})"
            )


def _record_lists(d: Definition, bind: Binder, *, document: bool) -> list[str]:
    """The SQL lists of records of a JSON ``doc``, one per records path, in the
    definition's order (the first that holds any is a document's records)."""
    self_record = "$" in d.records or "" in d.records
    lists = []
    for rp in d.records:
        if rp in ("$", ""):
            continue
        x = f"json_extract(doc, {bind(json_path(rp))})"
        if rp.endswith("[]"):
            lists.append(f"nullif({x}, []::json[])")
        else:
            # a path to an array of records, or to one record
            lists.append(
                f"case json_type({x}) when 'ARRAY' then nullif(json_extract({x}, '$[*]'), "
                f"[]::json[]) when 'OBJECT' then [{x}] end"
            )
    if document and self_record:
        # an array of records, or one record written over many lines
        lists.append(
            "case json_type(doc) when 'ARRAY' then json_extract(doc, '$[*]') "
            "when 'OBJECT' then [doc] end"
        )
    elif self_record:
        lists.append("case json_type(doc) when 'OBJECT' then [doc] end")
    return lists


def _expanded_sql(
    d: Definition, lists: list[str], bind: Binder, *, document: bool
) -> tuple[str, str, str, str, str]:
    """The unnesting CTEs, line, raw text, reject reason and source of the records of JSON
    input; none of it when each line is its own record (no unnesting to pay for)."""
    shown = ", ".join(d.records)
    if lists != ["case json_type(doc) when 'OBJECT' then [doc] end"]:
        recs = lists[0] if len(lists) == 1 else f"coalesce({', '.join(lists)})"
        unnest = f"""
            , listed as (
                select line, txt, blob, doc,
                       case when doc is null then null else {recs} end as recs
                from parsed
            ), expanded as (
                select line, txt, blob, doc,
                       unnest(case when recs is null or len(recs) = 0 then [null::json]
                                   else recs end) as rec,
                       unnest(case when recs is null or len(recs) = 0 then [0]
                                   else range(1, len(recs) + 1) end) as n,
                       recs is null or len(recs) = 0 as none
                from listed
            )"""  # noqa: S608 - values are bound
        line = "n" if document else "line"
        raw = "left(coalesce(rec::varchar, txt, blob::varchar), $keep)"
        reason = f"""case when txt is null then 'invalid UTF-8'
                          when doc is null then 'broken JSON'
                          when none then {bind("no records at " + shown)}
                          when json_type(rec) <> 'OBJECT' then 'not a JSON object'
                     end"""
        src = "expanded"
    else:
        unnest = ""
        line = "line"
        raw = "left(coalesce(txt, blob::varchar), $keep)"
        reason = """case when txt is null then 'invalid UTF-8'
                         when doc is null then 'broken JSON'
                         when json_type(doc) <> 'OBJECT' then 'not a JSON object'
                    end"""
        src = "(select *, doc as rec from parsed)"
    return unnest, line, raw, reason, src


def records_sql(
    d: Definition, bind: Binder, *, document: bool, header: CsvHeader | None = None
) -> str:
    """From ``_chunk(line, raw)`` to ``(line, raw, pre_reason, rec)``: one row per record."""
    if d.input == "text":
        return _text_records_sql(d, bind)
    if header is not None:
        return _csv_records_sql(d, bind, header)
    lists = _record_lists(d, bind, document=document)
    text_of = "try(decode(raw))"
    unnest, line, raw, reason, src = _expanded_sql(d, lists, bind, document=document)
    return f"""
        with decoded as (
            select line, raw as blob,
                   case when line = 1 then ltrim({text_of}, chr(65279)) else {text_of} end
                       as txt
            from _chunk
        ), parsed as (
            select line, blob, txt, try(txt::json) as doc from decoded
            where txt is null or not regexp_full_match(txt, '\\s*')
        ){unnest}
        select {line} as line, {raw} as raw, {reason} as pre_reason,
               rec, null::varchar as skip_kind
        from {src}
    """  # noqa: S608 - the records path is shown, not run; values are bound


def is_document(path: Path) -> bool:
    """A JSON file that is one document (an array, or an object over several lines), not
    JSON Lines: its first non-blank line is not a whole JSON value, or is an array."""
    for text in lines.first_lines(path, limit=5):
        s = text.strip()
        if not s:
            continue
        if s.startswith("["):
            return True
        try:
            json.loads(s)
        except (ValueError, RecursionError):
            return s.startswith("{")
        return False
    return False


def document_chunk(path: Path):
    """The whole file as one row, for a JSON document (an export is read at once)."""
    data = lines.open_bytes(path).read()
    table = pa.table(
        {"line": pa.array([1], pa.int64()), "raw": pa.array([data], pa.large_binary())}
    )
    yield lines.Chunk(table, len(data), len(data))


# --- the registry's entry points ---
