"""Source definitions: the YAML mapping that says how to read a log nobody here has seen.

A definition (no code) names where the records of a log are, which records are attempts,
and the path of every canonical column; :func:`parse` checks one and gives a
:class:`Definition`, with one error naming the file and the key for anything it cannot use.
The presets under ``presets/`` beside this module are definitions;
:mod:`analysis.ingest.definitions.reader` reads a log with one, in DuckDB.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from analysis import db, kinds
from analysis.errors import DefinitionError

PRESET_DIR = Path(__file__).with_name("presets")

#: the keys a definition may have, and what each is for (the error for a typo names them)
KEYS = {
    "name": "the preset's name (what --auth-format takes)",
    "title": "a short title for the load's output",
    "description": "one line for --help and the README",
    "docs": "where the field names come from",
    "kind": "auth (the only kind definitions describe so far)",
    "input": "json (JSON Lines or one JSON document), csv (a header row) or text (lines "
    "matched by pattern)",
    "records": "where the records are: $ (each line or array element), events[], …",
    "signature": "how auto recognises the source: fields (all present) or pattern",
    "attempts": "which records are attempts: field, values and/or prefixes",
    "fields": "canonical column <- path, list of paths, or {path, map, default, null_values}",
    "timestamp": "iso, epoch_s, epoch_ms, epoch_us, epoch_ns, a strptime format, or a list "
    "of these tried in order",
    "extras": "kept columns (dimensions): name <- path",
    "constants": "columns with one value for every record",
    "error_classes": "user: the codes that are the user's fault (all others: the system's)",
    "pattern": "text input: a regular expression with named groups",
    "keyvalues": "text input: a named group holding key=value pairs, read as fields",
    "skip_lines": "text input: line prefixes that are not records (comments)",
    "unmatched": "text input: skip (default) or reject the lines the pattern does not match",
}
#: json: JSON Lines or one JSON document; text: lines matched by a pattern; csv: a header
#: row whose names are the paths
INPUTS = ("json", "text", "csv")
TIMESTAMPS = ("iso", "epoch_s", "epoch_ms", "epoch_us", "epoch_ns")
#: a map value that skips the record (e.g. Okta's CHALLENGE: a step, not an outcome)
SKIP = "skip"
#: ``list[key=value].rest``: the element of a list whose ``key`` is ``value`` (the list's own
#: path may iterate or index arrays: ``events[].parameters[name=login_type].value``)
SELECTOR = re.compile(
    r"^(?P<list>(?:[^\[\]]|\[\d*\])+)\[(?P<key>[^=\]\[]+)=(?P<value>[^\]]*)\](?P<rest>.*)$"
)
#: a path part ending so holds JSON written as text (1Password's ``message``) or a flat XML
#: record (CyberArk's ``<audit_record>``): the rest of the path reads inside it
DECODERS = (":json", ":xml")


def split_decode(path: str) -> tuple[str, str, str]:
    """``message:json.a.b`` -> ``('message', ':json', 'a.b')``; a path that decodes nothing
    -> ``(path, '', '')``."""
    at = [(path.find(d), d) for d in DECODERS if d in path]
    if not at:
        return path, "", ""
    i, decoder = min(at)
    return path[:i], decoder, path[i + len(decoder) :].lstrip(".")


#: one part of a path: a key, then ``[]`` (every element) or ``[n]`` (the n-th, from 0)
_PART = re.compile(r"^(?P<key>[^\[\]]*)(?P<index>\[\d*\])?$")


#: a format given as a file with one of these endings is a source definition of the user's own
ENDINGS = (".yaml", ".yml")


def is_definition_file(fmt: str) -> bool:
    """Whether ``--auth-format`` names a definition file rather than a format or preset."""
    return fmt.lower().endswith(ENDINGS)


@dataclass(frozen=True)
class Column:
    """Where one column's value comes from."""

    paths: tuple[str, ...] = ()
    mapping: tuple[tuple[str, str | None], ...] = ()
    has_default: bool = False
    default: str | None = None
    null_values: tuple[str, ...] = ()
    constant: str | None = None
    #: the value when no path has one (default: null)
    missing: str | None = None


@dataclass(frozen=True)
class Definition:
    """A parsed, checked source definition."""

    name: str
    title: str
    description: str
    kind: str
    input: str
    #: where the records are; several: the first that holds any, per document
    records: tuple[str, ...]
    columns: dict[str, Column]
    extras: dict[str, Column]
    #: formats tried in order; a value none of them reads is rejected with its text
    timestamps: tuple[str, ...] = ("iso",)
    #: sets of fields, each enough to recognise the source (all of one set present)
    signature_sets: tuple[tuple[str, ...], ...] = ()
    signature_pattern: str | None = None
    #: the paths of the field whose value decides (the first present); an array value is an
    #: attempt when any of its elements is
    attempt_fields: tuple[str, ...] = ()
    attempt_values: tuple[str, ...] = ()
    attempt_prefixes: tuple[str, ...] = ()
    attempt_exclude: tuple[str, ...] = ()
    attempt_suffixes: tuple[str, ...] = ()
    #: the attempt field is a URL path: ``--login-path`` replaces the attempt rules
    login_path: bool = False
    #: one label for every skipped record (e.g. "not a login path"), instead of its value
    skip_label: str | None = None
    #: the skipped records are counted by these paths' value (default: the attempt field's)
    count_by: tuple[str, ...] = ()
    user_codes: tuple[str, ...] = ()
    pattern: str | None = None
    keyvalues: str | None = None
    skip_lines: tuple[str, ...] = ()
    reject_unmatched: bool = False
    docs: tuple[str, ...] = ()
    origin: str = ""
    groups: tuple[str, ...] = field(default=())
    #: SHA-256 of the definition's data, part of the key of what a load read
    digest: str = ""


# --- reading a definition ---


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, int, float)):
        return (str(value),)
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return tuple(str(v) for v in value)
    raise DefinitionError(f"{where}: a text or a list of texts, not {value!r}")


def _column(spec: Any, where: str) -> Column:
    column = _column_of(spec, where)
    for path in column.paths:
        check_path(path, where)
    return column


def _column_of(spec: Any, where: str) -> Column:
    if isinstance(spec, (str, list)):
        return Column(paths=_strings(spec, where))
    if not isinstance(spec, dict):
        raise DefinitionError(f"{where}: a path, a list of paths, or a mapping")
    unknown = set(spec) - {"path", "map", "default", "null_values", "value", "missing"}
    if unknown:
        raise DefinitionError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))} "
            "(path, map, default, missing, null_values, value)"
        )
    if "value" in spec:
        return Column(constant=None if spec["value"] is None else str(spec["value"]))
    mapping = spec.get("map") or {}
    if not isinstance(mapping, dict):
        raise DefinitionError(f"{where}.map: a mapping of value -> value")
    return Column(
        paths=_strings(spec.get("path"), f"{where}.path"),
        mapping=tuple((str(k).lower(), None if v is None else str(v)) for k, v in mapping.items()),
        has_default="default" in spec,
        default=None if spec.get("default") is None else str(spec["default"]),
        null_values=_strings(spec.get("null_values"), f"{where}.null_values"),
        missing=None if spec.get("missing") is None else str(spec["missing"]),
    )


def _check_keys(data: Any, origin: str) -> None:
    """None; raises when ``data`` is not a mapping or has a key no definition may have."""
    if not isinstance(data, dict):
        raise DefinitionError(f"{origin}: a source definition is a mapping (see README)")
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        known = ", ".join(KEYS)
        raise DefinitionError(f"{origin}: unknown key(s) {', '.join(unknown)}; known: {known}")


def _kind_and_input(data: dict, origin: str) -> tuple[str, str]:
    """The checked ``kind`` and ``input`` of a definition, which the rest is read against."""
    kind = str(data.get("kind", "auth"))
    if kind not in ("auth",):
        raise DefinitionError(f"{origin}: kind {kind!r}: definitions describe auth logs")
    input_ = str(data.get("input", "json"))
    if input_ not in INPUTS:
        raise DefinitionError(f"{origin}: input {input_!r}: one of {', '.join(INPUTS)}")
    return kind, input_


def _columns(data: dict, origin: str, kind: str) -> dict[str, Column]:
    """The canonical columns (``fields``, then ``constants`` of the kind's columns), checked
    to have a ``ts`` and an ``outcome``, without which no record can be an attempt."""
    fields_spec = data.get("fields") or {}
    if not isinstance(fields_spec, dict):
        raise DefinitionError(f"{origin}: fields: a mapping of column -> path")
    the_kind = kinds.KINDS[kind]
    columns: dict[str, Column] = {}
    for n, spec in fields_spec.items():
        if n not in the_kind.fields:
            raise DefinitionError(
                f"{origin}: fields.{n}: not a column of {kind} ({', '.join(the_kind.fields)}); "
                "put other columns under extras"
            )
        columns[n] = _column(spec, f"{origin}: fields.{n}")
    for n, v in (data.get("constants") or {}).items():
        if n in the_kind.fields and n not in columns:
            columns[n] = Column(constant=None if v is None else str(v))
    missing = [n for n in ("ts", "outcome") if n not in columns]
    if missing:
        raise DefinitionError(f"{origin}: fields: no path for {', '.join(missing)}")
    return columns


def _extras(data: dict, origin: str, kind: str) -> dict[str, Column]:
    """The kept columns (``extras``, then ``constants`` that are not the kind's columns),
    each checked to be a plain name that clashes with none of ours."""
    the_kind = kinds.KINDS[kind]
    extras: dict[str, Column] = {}
    for n, spec in (data.get("extras") or {}).items():
        if not db.is_identifier(str(n)) or n in kinds.RESERVED or n in the_kind.fields:
            raise DefinitionError(f"{origin}: extras.{n}: not a plain column name of our own")
        extras[str(n)] = _column(spec, f"{origin}: extras.{n}")
    for n, v in (data.get("constants") or {}).items():
        if n not in the_kind.fields:
            if not db.is_identifier(str(n)) or n in kinds.RESERVED:
                raise DefinitionError(f"{origin}: constants.{n}: not a plain column name")
            extras[str(n)] = Column(constant=None if v is None else str(v))
    return extras


def _timestamps(data: dict, origin: str) -> tuple[str, ...]:
    """The checked timestamp formats, tried in order (``iso`` when none is given)."""
    ts_formats = _strings(data.get("timestamp", "iso"), f"{origin}: timestamp") or ("iso",)
    for ts_format in ts_formats:
        if ts_format not in TIMESTAMPS and "%" not in ts_format:
            raise DefinitionError(
                f"{origin}: timestamp {ts_format!r}: one of {', '.join(TIMESTAMPS)} "
                "or a strptime format such as '%d/%b/%Y:%H:%M:%S %z'"
            )
    return ts_formats


def _attempts(data: dict, origin: str) -> Any:
    """The ``attempts`` mapping, checked to name its field and to hold only known keys."""
    attempts = data.get("attempts") or {}
    if attempts and not attempts.get("field"):
        raise DefinitionError(f"{origin}: attempts: needs the field whose values decide")
    attempt_keys = {
        "field", "values", "prefixes", "suffixes", "exclude", "count_by", "login_path",
        "skip_label",
    }  # fmt: skip
    if set(attempts) - attempt_keys:
        unknown = ", ".join(sorted(set(attempts) - attempt_keys))
        raise DefinitionError(
            f"{origin}: attempts: unknown key(s) {unknown} ({', '.join(sorted(attempt_keys))})"
        )
    return attempts


def _groups(data: dict, origin: str, input_: str) -> tuple[str, ...]:
    """The named groups of a text definition's pattern (none for JSON), checked to exist
    and to hold the ``keyvalues`` group."""
    pattern = data.get("pattern")
    groups: tuple[str, ...] = ()
    if input_ == "text":
        if not pattern:
            raise DefinitionError(f"{origin}: input text needs a pattern with named groups")
        try:
            groups = tuple(re.compile(pattern).groupindex)
        except re.error as exc:
            raise DefinitionError(f"{origin}: pattern: {exc}") from exc
        if not groups:
            raise DefinitionError(f"{origin}: pattern has no named group (?P<name>…)")
        if data.get("keyvalues") and data["keyvalues"] not in groups:
            raise DefinitionError(
                f"{origin}: keyvalues {data['keyvalues']!r} is not a named group of the pattern"
            )
    return groups


def _check_named(
    columns: dict[str, Column],
    extras: dict[str, Column],
    groups: tuple[str, ...],
    data: dict,
    origin: str,
) -> None:
    """In a text definition without ``keyvalues``, every path names a group of the pattern:
    one that names none would load every value as null, silently."""
    if not groups or data.get("keyvalues"):
        return
    named = [(f"fields.{n}", c) for n, c in columns.items()]
    named += [(f"extras.{n}", c) for n, c in extras.items()]
    for where, column in named:
        for path in column.paths:
            root = (split_path(split_decode(path)[0]) or [path])[0]
            if root not in groups:
                raise DefinitionError(
                    f"{origin}: {where}: {path!r} names no group of the pattern "
                    f"(its groups: {', '.join(groups)})"
                )


#: what an outcome map may give: the two outcomes, skip (not an attempt) or null
OUTCOMES = ("success", "failure")


def _check_outcome_map(column: Column | None, origin: str) -> None:
    """An outcome map gives success, failure, skip or null: a typo (``succes``) would make
    every such record a reject."""
    if column is None:
        return
    given = [(k, v) for k, v in column.mapping if v is not None]
    if column.has_default and column.default is not None:
        given.append(("default", column.default))
    for key, value in given:
        if value.lower() not in (*OUTCOMES, SKIP):
            raise DefinitionError(
                f"{origin}: fields.outcome: {key!r} maps to {value!r}, not one of success, "
                f"failure, {SKIP} or null"
            )


def parse(data: Any, *, origin: str) -> Definition:
    """A definition from its YAML data; ``origin`` (a file name) goes into every error."""
    _check_keys(data, origin)
    name = str(data.get("name") or Path(origin).stem)
    kind, input_ = _kind_and_input(data, origin)
    columns = _columns(data, origin, kind)
    extras = _extras(data, origin, kind)
    ts_formats = _timestamps(data, origin)
    sig = data.get("signature") or {}
    attempts = _attempts(data, origin)
    pattern = data.get("pattern")
    groups = _groups(data, origin, input_)
    _check_named(columns, extras, groups, data, origin)
    _check_outcome_map(columns.get("outcome"), origin)
    classes = data.get("error_classes") or {}
    return Definition(
        name=name,
        title=str(data.get("title") or name),
        description=" ".join(str(data.get("description") or name).split()),
        kind=kind,
        input=input_,
        records=_strings(data.get("records", "$"), f"{origin}: records") or ("$",),
        columns=columns,
        extras=extras,
        timestamps=ts_formats,
        signature_sets=_signature(sig, origin),
        signature_pattern=_signature_pattern(sig, pattern),
        attempt_fields=_strings(attempts.get("field"), f"{origin}: attempts.field"),
        attempt_values=_strings(attempts.get("values"), f"{origin}: attempts.values"),
        attempt_prefixes=_strings(attempts.get("prefixes"), f"{origin}: attempts.prefixes"),
        attempt_exclude=_strings(attempts.get("exclude"), f"{origin}: attempts.exclude"),
        attempt_suffixes=_strings(attempts.get("suffixes"), f"{origin}: attempts.suffixes"),
        login_path=bool(attempts.get("login_path", False)),
        skip_label=attempts.get("skip_label"),
        count_by=_strings(attempts.get("count_by"), f"{origin}: attempts.count_by"),
        user_codes=_strings(classes.get("user"), f"{origin}: error_classes.user"),
        pattern=pattern,
        keyvalues=data.get("keyvalues"),
        skip_lines=_strings(data.get("skip_lines"), f"{origin}: skip_lines"),
        reject_unmatched=_unmatched(data.get("unmatched", "skip"), origin),
        docs=_strings(data.get("docs"), f"{origin}: docs"),
        origin=origin,
        groups=groups,
        digest=hashlib.sha256(
            json.dumps(data, sort_keys=True, default=str).encode("utf-8")
        ).hexdigest(),
    )


def _signature_pattern(sig: dict, pattern: str | None) -> str | None:
    """The pattern that recognises a text log by some of its lines: ``signature.pattern``,
    or with ``pattern: true`` the definition's own pattern; None without one."""
    given = sig.get("pattern")
    if given is True:
        return pattern
    return given if isinstance(given, str) else None


def _signature(sig: Any, origin: str) -> tuple[tuple[str, ...], ...]:
    if not isinstance(sig, dict):
        raise DefinitionError(f"{origin}: signature: a mapping (fields, any or pattern)")
    unknown = set(sig) - {"fields", "any", "pattern"}
    if unknown:
        raise DefinitionError(f"{origin}: signature: unknown key(s) {', '.join(sorted(unknown))}")
    sets = []
    if sig.get("fields"):
        sets.append(_strings(sig["fields"], f"{origin}: signature.fields"))
    for i, one in enumerate(sig.get("any") or []):
        sets.append(_strings(one, f"{origin}: signature.any[{i}]"))
    return tuple(sets)


def _unmatched(value: Any, origin: str) -> bool:
    if value not in ("skip", "reject"):
        raise DefinitionError(f"{origin}: unmatched {value!r}: skip or reject")
    return value == "reject"


def read_definition(path: Path) -> Definition:
    """A definition from a YAML file."""
    try:
        # libyaml's safe loader: the same documents, a fifth of the time (the presets are
        # read by every command)
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
    except FileNotFoundError as exc:
        raise DefinitionError(f"{path}: no such source definition file") from exc
    except yaml.YAMLError as exc:
        raise DefinitionError(f"{path}: is not valid YAML ({exc})") from exc
    return parse(data, origin=str(path))


@cache
def presets() -> tuple[Definition, ...]:
    """The definitions shipped with the package, by name."""
    return tuple(read_definition(p) for p in sorted(PRESET_DIR.glob("*.yaml")))


# --- paths ---


def json_path(path: str) -> str:
    """A definition's path (``a.b``, ``a[]``, ``'"a.b"'`` for a key with dots) as a
    DuckDB JSON path (``$.a.b``, ``$.a[*]``, ``$."a.b"``)."""
    if path in ("$", ""):
        return "$"
    out = "$"
    for part in split_path(path):
        m = _PART.match(part)
        key, index = (m["key"], m["index"]) if m else (part, None)
        if key:
            out += "." + (key if re.fullmatch(r"[A-Za-z_@][\w@-]*", key) else json.dumps(key))
        if index:
            out += "[*]" if index == "[]" else index
    return out


def check_path(path: str, where: str) -> None:
    """None; raises when a path has a bracket that is neither ``[]``, ``[n]`` nor a
    ``[key=value]`` selector (it would match nothing, silently)."""
    if path.startswith("{"):
        return  # refused by the reader with its own reason
    pieces = []
    while path:
        head, _, path = split_decode(path)
        pieces.append(head)
    for piece in pieces:
        m = SELECTOR.match(piece.strip("."))
        parts = [m["list"], m["rest"].lstrip(".")] if m else [piece]
        for one in parts:
            for part in split_path(one):
                if not _PART.match(part):
                    raise DefinitionError(
                        f"{where}: path {path!r}: {part!r} is not a key, key[] (every element), "
                        "key[n] (one element, from 0) or list[key=value]"
                    )


def split_path(path: str) -> list[str]:
    """``a."b.c".d[]`` -> ``['a', 'b.c', 'd[]']``."""
    parts, cur, quoted = [], "", False
    for ch in path:
        if ch == '"':
            quoted = not quoted
        elif ch == "." and not quoted:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p for p in parts if p != ""]
