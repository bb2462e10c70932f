"""Source definitions: declarative readers for the logs that real systems write.

A *definition* is a YAML mapping (no code) that says where the records of a log are, which
of them are authentication attempts, and where each canonical column is. The presets under
``analysis/ingest/definitions/presets/`` are definitions (Okta, Auth0, Keycloak, CloudTrail, Entra
ID, ECS, OpenTelemetry, access logs, HAProxy, Envoy, MySQL's error log); a user's own is given as
``--auth-format FILE.yaml`` or under ``auth_format`` in the ``--config`` file.

Everything happens in DuckDB: a JSON file (JSON Lines, or one document such as
``{"Records": [...]}``) is unnested along the ``records`` path with ``json_extract``; a text
log is matched line by line with one regular expression whose named groups (and, with
``keyvalues``, the ``key=value`` pairs of one group) become a JSON object; then every column
is one ``json_extract_string`` of its path, with value maps, constants and the timestamp
format applied in SQL. Every value of a definition is bound as a parameter. Records that are
not attempts are counted per value of the attempt field (``rows_skipped``), never rejected;
the rest go through the same validation as every other input (:func:`validate.store`).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from analysis import db, kinds
from analysis.errors import DefinitionError, UnreadableFile
from analysis.ingest import lines, validate
from analysis.ingest.definitions.schema import (
    SELECTOR,
    SKIP,
    Column,
    Definition,
    json_path,
    split_decode,
    split_path,
)
from analysis.kinds import RAW_KEEP_CHARS, FileResult, Kind, ReadOptions, Records


class _Binder:
    """Collects the bound values of one query: every value of a definition is a parameter."""

    def __init__(self) -> None:
        self.values: dict[str, object] = {}

    def __call__(self, value: object) -> str:
        name = f"v{len(self.values)}"
        self.values[name] = value
        return "$" + name


def _path_sql(path: str, bind: _Binder, rec: str = "rec", *, every: bool = False) -> str:
    """The text at ``path`` of the JSON record ``rec`` (NULL when absent or JSON null).

    A path through ``[]`` reaches every element: the first value found, or with ``every``
    all of them (one value as it is, several as a JSON array, which the attempt rule reads
    element by element). ``key:json`` decodes the JSON text held at ``key``.
    """
    if path.startswith("{"):
        raise DefinitionError(
            f"path {path!r}: a path to an element enclosing the record is not read yet"
        )
    head, decoder, rest = split_decode(path)
    if decoder:
        text = f"json_extract_string({rec}, {bind(json_path(head))})"
        inner = f"try({text}::json)" if decoder == ":json" else _xml_record_sql(text, bind)
        if not rest:
            return f"nullif({inner}::varchar, '')"
        return _path_sql(rest, bind, inner, every=every)
    m = SELECTOR.match(path)
    if m:
        # a list of {key, value} objects (OpenTelemetry attributes, Google's parameters): the
        # first whose key is the given one, then the rest of the path inside it
        items = f"json_extract({rec}, {bind(json_path(m['list'] + '[]'))})"
        key = bind(m["value"])
        pick = (
            f"list_filter({items}, lambda x: json_extract_string(x, {bind(json_path(m['key']))})"
            f" = {key})[1]"
        )
        rest = m["rest"].lstrip(".")
        return f"nullif(json_extract_string({pick}, {bind(json_path(rest))}), '')"
    if "[]" in path:
        found = (
            f"list_filter(json_extract_string({rec}, {bind(json_path(path))}), "
            "lambda x: coalesce(x, '') <> '')"
        )
        if not every:
            return f"{found}[1]"
        return (
            f"list_transform([{found}], lambda _l: case len(_l) when 0 then null "
            "when 1 then _l[1] else to_json(_l)::varchar end)[1]"
        )
    # an empty text is no value (a regex group that took no part, an empty JSON string)
    return f"nullif(json_extract_string({rec}, {bind(json_path(path))}), '')"


#: a leaf element of a flat XML record: its tag and its text (no markup inside)
_XML_LEAF = r"<([A-Za-z_][\w.-]*)(?:\s[^>]*)?>([^<]*)</[A-Za-z_][\w.-]*>"
#: the five entities XML predefines, ``&amp;`` last so that ``&amp;lt;`` stays ``&lt;``
_XML_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'"), ("&amp;", "&"))


def _xml_record_sql(text: str, bind: _Binder) -> str:
    """A JSON object of the leaf elements of an XML text, by tag (the first of a repeated
    tag wins; nesting is flattened): enough for the one-level records of an audit feed,
    not a parser of XML documents."""
    leaf = bind(_XML_LEAF)
    value = f"regexp_extract(el, {leaf}, 2)"
    for entity, char in _XML_ENTITIES:
        value = f"replace({value}, {bind(entity)}, {bind(char)})"
    pairs = (
        f"list_transform(regexp_extract_all({text}, {leaf}), lambda el: "
        f"to_json(regexp_extract(el, {leaf}, 1))::varchar || ':' || to_json({value})::varchar)"
    )
    return (
        f"try(case when {text} is not null then "
        f"('{{' || array_to_string({pairs}, ',') || '}}')::json end)"
    )


def _value_sql(
    col: Column, bind: _Binder, *, keep_unmapped: bool = False, every: bool = False
) -> str:
    """The SQL of one column: first non-null path, null values, then the value map."""
    if not col.paths:
        return "null::varchar" if col.constant is None else f"{bind(col.constant)}::varchar"
    exprs = [_path_sql(p, bind, every=every) for p in col.paths]
    if col.null_values:
        nulls = bind(list(col.null_values))
        exprs = [
            f"case when list_contains({nulls}::varchar[], {e}) then null else {e} end"
            for e in exprs
        ]
    v = exprs[0] if len(exprs) == 1 else f"coalesce({', '.join(exprs)})"
    if col.missing is not None:
        v = f"coalesce({v}, {bind(col.missing)})"
    if not col.mapping:
        return v
    whens = []
    for key, out in col.mapping:
        target = "null" if out is None else bind(out)
        if key.endswith("*"):
            whens.append(f"when starts_with(lower(_v), {bind(key[:-1])}) then {target}")
        else:
            whens.append(f"when lower(_v) = {bind(key)} then {target}")
    if col.has_default and not (keep_unmapped and col.default is None):
        other = "null" if col.default is None else bind(col.default)
    else:
        other = "_v"
    # a lambda binds the value once, however many branches read it
    return (
        f"list_transform([{v}], lambda _v: case when _v is null then null "
        f"{' '.join(whens)} else {other} end)[1]"
    )


def _ts_sql(d: Definition, raw: str, bind: _Binder) -> str:
    """The timestamp as text that :func:`validate.ts_expr` reads; each format of the
    definition is tried in order, and a value none of them reads stays as it was, so that its
    reject names it (``iso`` leaves the value to :func:`validate.ts_expr`)."""
    tries = []
    for fmt in d.timestamps:
        if fmt == "iso":
            continue
        if fmt in _EPOCH_MICROS:
            micros = _EPOCH_MICROS[fmt].format(raw=raw)
            tries.append(
                f"strftime(try(make_timestamp(cast({micros} as bigint))), '%Y-%m-%dT%H:%M:%S.%fZ')"
            )
            continue
        # runs of spaces are one (MySQL pads a one-digit hour: '130324  0:04:00')
        text = f"regexp_replace({raw}, '\\s+', ' ', 'g')"
        if "%z" in fmt or "%Z" in fmt:
            tries.append(
                f"strftime(timezone('UTC', try_strptime({text}, {bind(fmt)})::timestamptz), "
                "'%Y-%m-%dT%H:%M:%S.%fZ')"
            )
        else:
            tries.append(
                f"strftime(try_strptime({text}, {bind(fmt)})::timestamp, '%Y-%m-%dT%H:%M:%S.%f')"
            )
    if not tries:
        return raw
    return f"coalesce({', '.join(tries)}, {raw})"


#: how many of each epoch unit make a second
_EPOCH_PER_SECOND = {"epoch_s": 1, "epoch_ms": 10**3, "epoch_us": 10**6, "epoch_ns": 10**9}
#: the times a sign-in log can hold: a unit that puts a file's times outside is the wrong one
EARLIEST = datetime(1990, 1, 1)


def _plausible(times: tuple[datetime, datetime]) -> bool:
    return EARLIEST <= times[0] and times[1] <= datetime.now(UTC).replace(tzinfo=None) + timedelta(
        days=1
    )


def _fits(epoch: datetime, raw: list[float], per_second: int) -> bool:
    """Whether the raw numbers, read as ``per_second`` to a second, are plausible times."""
    try:
        return _plausible(tuple(epoch + timedelta(seconds=r / per_second) for r in raw))
    except OverflowError:
        return False


def _check_epoch_unit(
    con: duckdb.DuckDBPyConnection, d: Definition, kind: Kind, path: Path, res: FileResult
) -> None:
    """Refuse the load (rolled back: nothing is written) when the definition's epoch unit
    puts the file's times before 1990 or after tomorrow, naming the unit that fits: epoch
    seconds read as milliseconds are January 1970, silently, otherwise. The middle half of
    the times decides, so that one odd record does not cost the file."""
    units = [u for u in d.timestamps if u in _EPOCH_PER_SECOND]
    yearless = [f for f in d.timestamps if f not in _EPOCH_PER_SECOND and f != "iso"]
    yearless = [f for f in yearless if not any(y in f for y in ("%Y", "%y", "%G", "%s"))]
    if not (units or yearless) or not res.rows_loaded:
        return
    row = db.one(
        con,
        f"select quantile_disc(ts, 0.25), quantile_disc(ts, 0.75) from {kind.table} "  # noqa: S608 - a fixed name
        "where source_id = ?",
        [res.source_id],
    )
    if row is None or row[0] is None or _plausible((row[0], row[1])):
        return
    if not units:
        raise UnreadableFile(
            f"{path}: timestamp {yearless[0]!r} has no year, so its times fall in "
            f"{row[0]:%Y}; put the year in the format (%Y) ({d.name})"
        )
    epoch = datetime(1970, 1, 1)
    raw = [(t - epoch) / timedelta(seconds=1) * _EPOCH_PER_SECOND[units[0]] for t in row]
    fits = [u for u, per in _EPOCH_PER_SECOND.items() if _fits(epoch, raw, per)]
    hint = f"`timestamp: {fits[0]}` fits them" if fits else "no epoch unit fits them"
    raise UnreadableFile(
        f"{path}: timestamp {units[0]} puts its times at {row[0]:%Y-%m-%d} to "
        f"{row[1]:%Y-%m-%d}, before 1990 or after tomorrow; {hint} ({d.name})"
    )


#: an epoch as exact microseconds (an epoch in ns does not fit a double's 53 bits)
_EPOCH_MICROS = {
    "epoch_s": "try_cast({raw} as decimal(38, 6)) * 1000000",
    "epoch_ms": "try_cast({raw} as decimal(38, 3)) * 1000",
    "epoch_us": "try_cast({raw} as decimal(38, 0))",
    "epoch_ns": "try_cast({raw} as hugeint) // 1000",
}


# --- loading ---


def _text_record_sql(d: Definition, bind: _Binder) -> str:
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


def _text_records_sql(d: Definition, bind: _Binder) -> str:
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


def _csv_records_sql(d: Definition, bind: _Binder, header: CsvHeader) -> str:
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


def _record_lists(d: Definition, bind: _Binder, *, document: bool) -> list[str]:
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
    d: Definition, lists: list[str], bind: _Binder, *, document: bool
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


def _records_sql(
    d: Definition, bind: _Binder, *, document: bool, header: CsvHeader | None = None
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


def _stage_sql(
    d: Definition, bind: _Binder, *, document: bool, header: CsvHeader | None = None
) -> tuple[str, list[str]]:
    """The records with ``f_<column>`` text fields and ``skip_kind`` (null: an attempt)."""
    kind = kinds.KINDS[d.kind]
    cols = []
    for n in kind.fields:
        col = d.columns.get(n, Column())
        # an outcome the map does not know stays as it is: its reject names it
        v = _value_sql(col, bind, keep_unmapped=n == "outcome")
        if n == "ts":
            v = _ts_sql(d, v, bind)
        cols.append(f"{v} as {db.quote_identifier('f_' + n)}")
    extras = list(d.extras)
    for n in extras:
        cols.append(f"{_value_sql(d.extras[n], bind)} as {db.quote_identifier('f_' + n)}")
    attempt = "true"
    what = "null::varchar"
    counted = "_a"
    if d.attempt_fields:
        what = _value_sql(Column(paths=d.attempt_fields), bind, every=True)
        tests = []
        if d.attempt_values:
            tests.append(f"list_contains({bind(list(d.attempt_values))}::varchar[], x)")
        if d.attempt_prefixes:
            tests.append(
                f"len(list_filter({bind(list(d.attempt_prefixes))}::varchar[], "
                "lambda p: starts_with(x, p))) > 0"
            )
        if d.attempt_suffixes:
            tests.append(
                f"len(list_filter({bind(list(d.attempt_suffixes))}::varchar[], "
                "lambda p: ends_with(rtrim(x, '/'), p))) > 0"
            )
        match = " or ".join(tests) if tests else "true"
        if d.attempt_exclude:
            match = (
                f"({match}) and not list_contains({bind(list(d.attempt_exclude))}::varchar[], x)"
            )
        # an array value (ECS event.category) is an attempt when any element is
        elements = (
            "case when starts_with(_a, '[') then "
            "coalesce(try(json_extract_string(_a::json, '$[*]')), [_a]) else [_a] end"
        )
        attempt = f"_a is null or len(list_filter({elements}, lambda x: {match})) > 0"
        counted = f"array_to_string({elements}, ',')"
    counted_missing = "'(none)'"
    # a record without the field is not an attempt, unless the definition only excludes
    # values (every record is one but those): then it is, and its validation says what it lacks
    only_excludes = d.attempt_exclude and not (
        d.attempt_values or d.attempt_prefixes or d.attempt_suffixes
    )
    positive = bool(d.attempt_fields and not only_excludes)
    if d.count_by:
        counted = f"coalesce({_value_sql(Column(paths=d.count_by), bind)}, '(none)')"
        counted_missing = "_counted"
    if d.skip_label:
        counted = counted_missing = bind(d.skip_label)
    skipped_outcomes = [k for k, v in d.columns["outcome"].mapping if v == SKIP]
    outcome_f = db.quote_identifier("f_outcome")
    sql = f"""
        with r as (
            {_records_sql(d, bind, document=document, header=header)}
        ), f as (
            select line, raw, pre_reason, skip_kind, {what} as _a, {counted} as _counted,
                   {", ".join(cols)}
            from r
        )
        select line, raw, pre_reason,
               * exclude (line, raw, pre_reason, skip_kind, _a, _counted),
               case when skip_kind is not null then skip_kind
                    when pre_reason is not null then null
                    when _a is null and {bind(positive)} then {counted_missing}
                    when not coalesce({attempt}, false) then _counted
                    when {bind(bool(skipped_outcomes))} and lower({outcome_f}) = {bind(SKIP)}
                        then 'outcome not final'
               end as skip_kind
        from f
    """  # noqa: S608 - identifiers are checked column names, values are bound
    return sql, extras


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


def load_definition(
    con: duckdb.DuckDBPyConnection,
    d: Definition,
    kind: Kind,
    path: Path,
    res: FileResult,
    opts: ReadOptions,
) -> None:
    """Load one file as the definition says: attempts to ``auth_events``, bad records to
    ``rejects``, the others counted in ``res.skipped`` by kind."""
    lines.refuse_binary(path, f"a {d.title} log")
    if kind.name != d.kind:
        raise UnreadableFile(f"{path}: {d.name} logs hold {d.kind}, not {kind.name}")
    d = _with_login_paths(d, opts)
    document = d.input == "json" and is_document(path)
    header = csv_header(path, d) if d.input == "csv" else None
    bind = _Binder()
    sql, extras = _stage_sql(d, bind, document=document, header=header)
    values = {**bind.values, "keep": RAW_KEEP_CHARS}
    chunks = _document_chunk(path) if document else lines.iter_chunks(path)
    for chunk in chunks:
        table = db.batched(chunk.table)
        staged = db.scratch_sql(con, sql, values, _chunk=table).to_arrow_table()
        # the staged records are the next query's _chunk (see db.scratch_sql)
        skipped = db.scratch_sql(
            con,
            "select skip_kind, count(*) from _chunk where skip_kind is not null group by 1",
            _chunk=staged,
        ).fetchall()
        for what, n in skipped:
            res.skipped[what] = res.skipped.get(what, 0) + n
            res.rows_skipped += n
        cols = ", ".join(
            db.quote_identifier("f_" + n) for n in [*kinds.KINDS[d.kind].fields, *extras]
        )
        rec = Records(
            f"select line, raw, pre_reason, {cols} from _chunk where skip_kind is null",  # noqa: S608
            {},
            extras,
        )
        validate.store(con, kind, res, rec, opts.tz, chunk=staged)
        if opts.progress:
            opts.progress(f"{path.name}: {res.rows_read + res.rows_skipped:,} records")
    if d.input == "json" and res.rows_read and res.not_json == res.rows_read:
        raise UnreadableFile(
            f"{path}: no record is a JSON object; is it a {d.title} log ({d.name})?"
        )
    res.rows_read += res.rows_skipped
    res.rows_rejected = res.rows_read - res.rows_loaded - res.rows_skipped
    _check_epoch_unit(con, d, kind, path, res)
    if document:
        res.notes.append("one JSON document: rejects are numbered by record, not by line")
    if res.rows_read and res.rows_loaded == 0 and res.rows_rejected == 0:
        if d.login_path and d.skip_label and res.skipped.get(d.skip_label):
            # requests, none of them to a login path: the service's own path is the likely cause
            res.notes.append(
                "no record is an attempt: no request is to a login path; name the path your "
                "service logs in on with --login-path (repeatable), e.g. --login-path /api/auth"
            )
        else:
            article = "an" if d.title[:1].lower() in "aeiou" else "a"
            res.notes.append(f"no record is an attempt: is this {article} {d.title} ({d.name})?")
    if res.skipped:
        parts = sorted(res.skipped.items(), key=lambda kv: (-kv[1], kv[0]))
        shown = ", ".join(f"{k}: {n:,}" for k, n in parts[:12])
        more = f", and {len(parts) - 12} other kinds" if len(parts) > 12 else ""
        noun = "record is not an attempt" if res.rows_skipped == 1 else "records are not attempts"
        res.notes.append(f"{res.rows_skipped:,} {noun} ({shown}{more})")


def _with_login_paths(d: Definition, opts: ReadOptions) -> Definition:
    """The definition with the load's ``--login-path`` prefixes as its attempt rule, when
    its attempts are requests to login paths."""
    if opts.login_paths and d.login_path:
        return dataclasses.replace(
            d, attempt_values=(), attempt_prefixes=opts.login_paths, attempt_suffixes=()
        )
    return d


def skip_kinds(
    con: duckdb.DuckDBPyConnection, d: Definition, path: Path, opts: ReadOptions
) -> dict[int, str]:
    """Why each record of ``path`` that is not an attempt is skipped, by record number, as
    :func:`load_definition` counts them (for a preview: nothing is written)."""
    d = _with_login_paths(d, opts)
    document = d.input == "json" and is_document(path)
    header = csv_header(path, d) if d.input == "csv" else None
    bind = _Binder()
    sql, _ = _stage_sql(d, bind, document=document, header=header)
    values = {**bind.values, "keep": RAW_KEEP_CHARS}
    out: dict[int, str] = {}
    for chunk in _document_chunk(path) if document else lines.iter_chunks(path):
        staged = db.scratch_sql(con, sql, values, _chunk=db.batched(chunk.table)).to_arrow_table()
        found = db.scratch_sql(
            con, "select line, skip_kind from _chunk where skip_kind is not null", _chunk=staged
        ).fetchall()
        out.update(dict(found))
    return out


def _document_chunk(path: Path):
    """The whole file as one row, for a JSON document (an export is read at once)."""
    data = lines.open_bytes(path).read()
    table = pa.table(
        {"line": pa.array([1], pa.int64()), "raw": pa.array([data], pa.large_binary())}
    )
    yield lines.Chunk(table, len(data), len(data))


# --- the registry's entry points ---


def reader_for(d: Definition) -> Callable[..., None]:
    """The read function of a definition, for :mod:`analysis.ingest.registry`."""

    def read(
        con: duckdb.DuckDBPyConnection, kind: Kind, path: Path, res: FileResult, opts: ReadOptions
    ) -> None:
        load_definition(con, d, kind, path, res, opts)

    return read


def _lookup(obj: Any, path: str) -> Any:
    """A path's value in a small Python object (for the content signature only)."""
    head, decoder, rest = split_decode(path)
    if decoder:
        inner = _lookup(obj, head)
        if decoder != ":json" or not isinstance(inner, str):
            return None
        try:
            return _lookup(json.loads(inner), rest) if rest else inner
        except (ValueError, RecursionError):
            return None
    m = SELECTOR.match(path)
    if m:
        items = _lookup(obj, m["list"])
        if not isinstance(items, list):
            return None
        for it in items:
            if isinstance(it, dict) and str(_lookup(it, m["key"])) == m["value"]:
                return _lookup(it, m["rest"].lstrip(".")) if m["rest"] else it
        return None
    for part in split_path(path):
        key = part[:-2] if part.endswith("[]") else part
        if isinstance(obj, dict) and key in obj:
            obj = obj[key]
        elif isinstance(obj, dict) and path in obj:  # a dotted key written flat
            return obj[path]
        else:
            return None
        if part.endswith("[]"):
            obj = obj[0] if isinstance(obj, list) and obj else None
    return obj


#: a signature pattern recognises a text log when this share of its first lines match it (a
#: server log holds its events among many other lines); the definition's own pattern, which
#: reads the records, when most of them do
SIGNATURE_SHARE = 0.05


def _sniff_text(d: Definition, sample: list[str]) -> str | None:
    """Why a text log looks like ``d``'s, from its first lines, or None."""
    pat = re.compile(d.signature_pattern or d.pattern or "")
    body = [s for s in sample if s.strip() and not s.startswith(tuple(d.skip_lines))]
    hits = sum(bool(pat.search(s)) for s in body)
    least = len(body) * SIGNATURE_SHARE if d.signature_pattern else len(body) // 2
    if body and hits >= max(1, least):
        return f"{hits} of the first {len(body)} lines match its pattern"
    return None


def _sniff_csv(d: Definition, sample: list[str]) -> str | None:
    """Why a CSV file looks like ``d``'s: its header holds every column of a signature set."""
    head = next((s for s in sample if s.strip()), None)
    if head is None:
        return None
    try:
        names = {h.strip() for h in next(csv.reader([head]))}
    except csv.Error:
        return None
    for fields in d.signature_sets:
        if all(f in names for f in fields):
            return f"its CSV header has {', '.join(fields)}"
    return None


def sniffer_for(d: Definition) -> Callable[[list[str]], str | None]:
    """The content signature of a definition: its signature fields in the first records
    (JSON), or its pattern on most of the first lines (text)."""

    def sniff(sample: list[str]) -> str | None:
        if d.input == "text":
            return _sniff_text(d, sample)
        if d.input == "csv":
            return _sniff_csv(d, sample)
        if not d.signature_sets:
            return None
        objs = []
        for s in sample[:20]:
            try:
                objs.append(json.loads(s))
            except (ValueError, RecursionError):
                objs = []
                break
        if objs:
            recs = []
            for o in objs:
                got = None
                for rp in d.records:
                    got = o if rp in ("$", "") else _lookup(o, rp.removesuffix("[]"))
                    if isinstance(got, list):
                        got = got[0] if got else None
                    if got is not None:
                        break
                if got is None:
                    return None
                recs.append((o, got))
            for fields in d.signature_sets:
                # most, not all: one broken record among the first must not hide the source
                have = sum(
                    isinstance(r, dict)
                    and all(_lookup(r, f) is not None or _lookup(o, f) is not None for f in fields)
                    for o, r in recs
                )
                if have * 2 > len(recs):
                    return f"its records have {', '.join(fields)}"
            return None
        # one document over many lines: its keys, as they are written, in the first lines
        text = "\n".join(sample)
        heads = [split_path(r)[0].removesuffix("[]") for r in d.records if r not in ("$",)]
        wrapped = not heads or "$" in d.records or any(f'"{h}"' in text for h in heads)
        if not text.lstrip().startswith(("{", "[")) or not wrapped:
            return None
        for fields in d.signature_sets:
            keys = [split_path(f)[-1].removesuffix("[]") for f in fields]
            if all(f'"{k}"' in text for k in keys):
                return f"a JSON document with {', '.join(keys)}"
        return None

    return sniff
