"""A definition's columns as SQL: every path, value map and timestamp format of a source
definition becomes one expression over a JSON record ``rec``, with every value bound.

A path is read with ``json_extract_string``; through ``[]`` it reaches every element, a
``list[key=value]`` selector picks one element of a list of key/value objects, and a part
ending ``:json`` or ``:xml`` decodes the text it holds before the rest of the path reads it.
"""

from __future__ import annotations

from analysis.errors import DefinitionError
from analysis.ingest.definitions.schema import (
    SELECTOR,
    Column,
    Definition,
    json_path,
    split_decode,
)


class Binder:
    """Collects the bound values of one query: every value of a definition is a parameter."""

    def __init__(self) -> None:
        self.values: dict[str, object] = {}

    def __call__(self, value: object) -> str:
        name = f"v{len(self.values)}"
        self.values[name] = value
        return "$" + name


def path_sql(path: str, bind: Binder, rec: str = "rec", *, every: bool = False) -> str:
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
        return path_sql(rest, bind, inner, every=every)
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


def _xml_record_sql(text: str, bind: Binder) -> str:
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


def value_sql(
    col: Column, bind: Binder, *, keep_unmapped: bool = False, every: bool = False
) -> str:
    """The SQL of one column: first non-null path, null values, then the value map."""
    if not col.paths:
        return "null::varchar" if col.constant is None else f"{bind(col.constant)}::varchar"
    exprs = [path_sql(p, bind, every=every) for p in col.paths]
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


def ts_sql(d: Definition, raw: str, bind: Binder) -> str:
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


#: an epoch as exact microseconds (an epoch in ns does not fit a double's 53 bits)
_EPOCH_MICROS = {
    "epoch_s": "try_cast({raw} as decimal(38, 6)) * 1000000",
    "epoch_ms": "try_cast({raw} as decimal(38, 3)) * 1000",
    "epoch_us": "try_cast({raw} as decimal(38, 0))",
    "epoch_ns": "try_cast({raw} as hugeint) // 1000",
}


# --- loading ---
