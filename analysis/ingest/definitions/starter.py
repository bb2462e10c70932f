"""A starter source definition inferred from a log's first records.

``postmortem definition FILE`` reads the first records of a JSON (lines or one document) or
CSV export, looks at every field's values, and writes a commented YAML definition: where
the records are, the timestamp field and its unit (chosen by how many values parse, with the
range seen), the candidate user fields, the outcome field with each value mapped to success
or failure where its words say so and to ``?`` where the user must decide (a ``?`` left in
the map is refused by the definition check, so nothing is loaded on a guess), and the field
that tells attempts from other events with its value counts. It guesses nothing silently:
every choice is written with the evidence beside it.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from analysis.errors import UnreadableFile
from analysis.ingest import lines

#: records read to infer from
SAMPLE_RECORDS = 500
#: a field with at most this many distinct values is a category (outcome, event type)
FEW_VALUES = 30
SUCCESS_WORDS = re.compile(
    r"(^|[^a-z])(success|successful|succeeded|ok|allow|allowed|accept|accepted|passed|"
    r"granted|true|login_no_error)([^a-z]|$)",
    re.I,
)
FAILURE_WORDS = re.compile(
    r"(fail|failed|failure|denied|deny|error|invalid|reject|rejected|blocked|false|bad|"
    r"locked|expired|unauthori[sz]ed|forbidden)",
    re.I,
)
TIME_NAMES = re.compile(r"(time|date|^ts$|timestamp|created|when|@timestamp)", re.I)
#: words of a user field, the likeliest first
USER_WORDS = ("user", "username", "uid", "email", "actor", "principal", "subject", "member")
TYPE_NAMES = re.compile(r"(type|action|event|name|category|operation|activity)", re.I)
ERROR_WORDS = ("error", "reason", "failure", "result", "status", "code")
REQUEST_WORDS = ("request", "correlation", "trace", "txid", "transaction", "txn", "uuid")
LOGIN_WORDS = re.compile(r"(log_?in|logon|sign_?in|signin|auth|session\.start|sso)", re.I)
#: epoch units by the magnitude of a number of today's times
EPOCH_UNITS = (("epoch_s", 1), ("epoch_ms", 10**3), ("epoch_us", 10**6), ("epoch_ns", 10**9))


@dataclass
class Field:
    """What the sample holds at one path."""

    path: str
    present: int = 0
    values: Counter = field(default_factory=Counter)


@dataclass
class Sample:
    """The records of a file and where they are."""

    input: str
    records_path: str
    records: list[dict]


def read_sample(path: Path, *, limit: int = SAMPLE_RECORDS) -> Sample:
    """The first records of a JSON or CSV file.

    Raises
    ------
    UnreadableFile
        for a file that is neither (a text log needs a pattern, which no sample can give).
    """
    head = lines.first_lines(path, limit=limit + 1)
    text = "\n".join(head)
    if not text.strip():
        raise UnreadableFile(f"{path}: the file is empty")
    if text.lstrip().startswith(("{", "[")):
        return _json_sample(path, head, limit)
    if _looks_like_csv(head):
        rows = list(csv.DictReader(head))[:limit]
        return Sample("csv", "$", [dict(r) for r in rows])
    raise UnreadableFile(
        f"{path}: neither JSON nor CSV; a text log is read with `input: text` and a pattern "
        "whose named groups are the fields (see the docs' page Your own logs)"
    )


def _looks_like_csv(head: list[str]) -> bool:
    """Most of the first lines split into the same number (three or more) of fields."""
    try:
        widths = Counter(len(r) for r in csv.reader(head[:50]) if r)
    except csv.Error:
        return False
    if not widths:
        return False
    width, count = widths.most_common(1)[0]
    return width > 2 and count >= 0.8 * sum(widths.values())


def _json_sample(path: Path, head: list[str], limit: int) -> Sample:
    records = [r for r in map(_json_or_none, head) if isinstance(r, dict)][:limit]
    if records and len(records) * 2 >= len([s for s in head if s.strip()]):
        return Sample("json", "$", records)  # JSON Lines, a broken line or two among them
    try:
        doc = json.loads(lines.open_bytes(path).read())
    except (ValueError, RecursionError) as exc:
        raise UnreadableFile(f"{path}: neither JSON Lines nor one JSON document ({exc})") from exc
    where, found = _records_in(doc)
    return Sample("json", where, [r for r in found if isinstance(r, dict)][:limit])


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _records_in(doc: Any, prefix: str = "", depth: int = 0) -> tuple[str, list]:
    """The records of a JSON document: the document's own array, else its longest array
    of objects (to two levels down), else the document as one record."""
    if isinstance(doc, list):
        return prefix + "[]" if prefix else "$", doc
    best: tuple[str, list] = ("$", [doc])
    if isinstance(doc, dict) and depth < 2:
        for key, value in doc.items():
            name = f"{prefix}.{key}" if prefix else key
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                candidate = (name + "[]", value)
            elif isinstance(value, dict):
                candidate = _records_in(value, name, depth + 1)
            else:
                continue
            if len(candidate[1]) > len(best[1]) or (best[0] == "$" and candidate[0] != "$"):
                best = candidate
    return best


def fields_of(records: list[dict]) -> dict[str, Field]:
    """Every path of the records (``a.b``; a list of objects as ``a[].b``), with the values
    seen at it (as text) and how many records have it."""
    found: dict[str, Field] = {}
    for record in records:
        seen: dict[str, Any] = {}
        _walk(record, "", seen)
        for path, value in seen.items():
            f = found.setdefault(path, Field(path))
            f.present += 1
            f.values[_text(value)] += 1
    return found


def _walk(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            name = json.dumps(key) if re.search(r"[.\[\]\"]|:json", str(key)) else str(key)
            _walk(inner, f"{prefix}.{name}" if prefix else name, out)
    elif isinstance(value, list) and value and isinstance(value[0], dict):
        for inner in value[:1]:
            _walk(inner, prefix + "[]", out)
    elif (
        isinstance(value, str)
        and value.startswith("{")
        and isinstance(decoded := _json_or_none(value), dict)
    ):
        _walk(decoded, prefix + ":json", out)  # JSON written as text: read inside it
    elif value is not None and value != "":
        out[prefix] = value


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)
    return str(value)


# --- choosing ---


def _parse_time(text: str) -> tuple[str, datetime] | None:
    """The unit a value reads as a time in (iso or an epoch unit), and the time."""
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None:
        for unit, per_second in EPOCH_UNITS:
            try:
                when = datetime.fromtimestamp(number / per_second, UTC)
            except (OverflowError, OSError, ValueError):
                continue
            if 1990 <= when.year <= datetime.now(UTC).year + 1:
                return unit, when
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        return None
    return "iso", when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass
class TimeChoice:
    path: str
    unit: str
    share: float
    first: datetime
    last: datetime


def choose_time(fields: dict[str, Field], n: int) -> list[TimeChoice]:
    """The fields whose values parse as times, most often first (a time-like name breaks
    ties)."""
    found = []
    for f in fields.values():
        parsed = [p for p in map(_parse_time, f.values.elements()) if p is not None]
        if not parsed or len(parsed) < f.present / 2:
            continue
        unit = Counter(u for u, _ in parsed).most_common(1)[0][0]
        times = [t for u, t in parsed if u == unit]
        found.append(TimeChoice(f.path, unit, len(times) / n, min(times), max(times)))
    return sorted(found, key=lambda c: (-c.share, not TIME_NAMES.search(c.path), c.path))


def outcome_word(value: str) -> str:
    """success, failure, or ? (the words do not say)."""
    if FAILURE_WORDS.search(value) and value.lower() not in ("no_error", "login_no_error"):
        return "failure"
    if SUCCESS_WORDS.search(value):
        return "success"
    return "?"


def choose_outcome(fields: dict[str, Field]) -> Field | None:
    """The category field whose values the outcome words classify best."""
    scored = []
    for f in fields.values():
        if not 2 <= len(f.values) <= FEW_VALUES or max(map(len, f.values)) > 60:
            continue
        words = [outcome_word(v) for v in f.values]
        known = sum(w != "?" for w in words)
        both = {"success", "failure"} <= set(words)
        if known:
            scored.append((both, known / len(words), f.present, f.path, f))
    return max(scored)[-1] if scored else None


def choose_type(fields: dict[str, Field], outcome: Field | None) -> Field | None:
    """The category field that tells events apart (event type, action), other than the
    outcome: a type-like name first, then values that mention logging in."""
    scored = []
    for f in fields.values():
        if f is outcome or not 2 <= len(f.values) <= FEW_VALUES * 2:
            continue
        if any(w in USER_WORDS for w in _words(f.path)):
            continue  # a user's name is not an event type
        logins = sum(bool(LOGIN_WORDS.search(v)) for v in f.values)
        named = bool(TYPE_NAMES.search(f.path.rsplit(".", 1)[-1]))
        if named or logins:
            scored.append((logins > 0, named, f.present, f.path, f))
    return max(scored)[-1] if scored else None


def _words(path: str) -> list[str]:
    """The words of a path's names: ``actor.alternateId`` -> actor, alternate, id."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", path.replace("[]", ""))
    return [w.lower() for w in re.split(r"[^A-Za-z0-9]+", spaced) if w]


def named(fields: dict[str, Field], words: tuple[str, ...], *, least: int) -> list[Field]:
    """Fields with one of ``words`` in their path (earlier words first, then the most
    present) that hold at least ``least`` distinct values."""
    hits = []
    for f in fields.values():
        rank = min((words.index(w) for w in _words(f.path) if w in words), default=None)
        if rank is not None and len(f.values) >= least:
            hits.append((rank, -f.present, f.path, f))
    return [h[-1] for h in sorted(hits, key=lambda h: h[:3])]


# --- writing ---


def _q(text: str) -> str:
    """A YAML scalar: quoted when it would not read back as the same text."""
    plain = re.fullmatch(r"[A-Za-z_][\w.-]*", text) and text.lower() not in (
        "null",
        "true",
        "false",
    )
    return text if plain else json.dumps(text)


def _short(value: str, width: int = 40) -> str:
    return value if len(value) <= width else value[: width - 1] + "…"


def _counts(f: Field, n: int = 8) -> str:
    shown = ", ".join(f"{_short(v)!r}: {c}" for v, c in f.values.most_common(n))
    more = f", … ({len(f.values)} values)" if len(f.values) > n else ""
    return shown + more


def starter(path: Path, *, name: str | None = None) -> str:
    """The commented YAML starter definition of a file."""
    sample = read_sample(path)
    if not sample.records:
        raise UnreadableFile(f"{path}: no record found to infer a definition from")
    fields = fields_of(sample.records)
    n = len(sample.records)
    times = choose_time(fields, n)
    when = times[0] if times else None
    outcome = choose_outcome(fields)
    kind_of = choose_type(fields, outcome)
    users = named(fields, USER_WORDS, least=2)[:4]
    errors_ = [f for f in named(fields, ERROR_WORDS, least=2) if f is not outcome][:3]
    requests = named(fields, REQUEST_WORDS, least=2)[:2]
    out = [
        f"# A starter source definition for {path.name}, inferred from its first {n} records.",
        "# Check every line; a `?` in the outcome map is for you to decide (success, failure,",
        "# skip: not an attempt yet, or null): the definition is refused until none is left.",
        f"# Then: postmortem load --auth {path.name} --auth-format THIS.yaml --preview 20",
        "# Put it in definitions/ of the incident folder: `auto` tries it (by its signature).",
        f"name: {name or _slug(path)}",
        f"input: {sample.input}",
    ]
    if sample.input == "json":
        out.append(f"records: {_q(sample.records_path)}")
    everywhere = [f.path for f in fields.values() if f.present == n and "[]" not in f.path]
    common = sorted(everywhere, key=lambda p: (p.count("."), everywhere.index(p)))[:4]
    if common:
        out += ["signature:", f"  fields: [{', '.join(_q(p) for p in common)}]"]
    else:
        out += ["# signature: {fields: [...]}   # no field is in every record: name a few"]
    out += _attempts_lines(kind_of)
    out += ["fields:"] + _time_lines(times) + _user_lines(users)
    out += _outcome_lines(outcome or kind_of)
    out += _optional_lines("error_code", errors_, n) + _optional_lines("request_id", requests, n)
    out += [f"timestamp: {when.unit if when else 'iso'}"]
    return "\n".join(out) + "\n"


def _slug(path: Path) -> str:
    stem = path.name.split(".")[0]
    return re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-") or "my-source"


def _attempts_lines(f: Field | None) -> list[str]:
    if f is None:
        return ["# attempts: no field tells event kinds apart; every record is an attempt"]
    logins = [v for v in f.values if LOGIN_WORDS.search(v)]
    lines_ = [f"# {f.path} holds: {_counts(f)}"]
    if logins:
        lines_ += [
            "attempts:",
            f"  field: {_q(f.path)}",
            f"  values: [{', '.join(_q(v) for v in logins)}]   # these mention logging in",
        ]
    else:
        lines_ += [
            "# attempts:                 # name the values that are sign-in attempts",
            f"#   field: {_q(f.path)}",
            "#   values: [...]",
        ]
    return lines_


def _time_lines(times: list[TimeChoice]) -> list[str]:
    if not times:
        return ['  ts: "?"                   # no field reads as a time: name it and its format']

    def seen(c: TimeChoice) -> str:
        return (
            f"{c.share:.0%} of the records read as {c.unit}, "
            f"{c.first:%Y-%m-%dT%H:%M:%SZ} to {c.last:%Y-%m-%dT%H:%M:%SZ}"
        )

    out = [f"  ts: {_q(times[0].path)}   # {seen(times[0])}"]
    out += [f"  # or {_q(c.path)}: {seen(c)}" for c in times[1:3]]
    return out


def _user_lines(users: list[Field]) -> list[str]:
    if not users:
        return ["  # user_id: no field looks like a user; name the one that does"]
    first, others = users[0], users[1:]
    out = [f"  user_id: {_q(first.path)}   # {len(first.values)} distinct in the sample"]
    for f in others:
        out.append(f"  # or {_q(f.path)} ({len(f.values)} distinct)")
    return out


def _outcome_lines(f: Field | None) -> list[str]:
    if f is None:
        return [
            "  outcome:                   # no field's values say success or failure: name it",
            '    path: "?"',
            '    map: {"?": success}',
        ]
    out = [
        f"  outcome:                   # {f.path} holds: {_counts(f)}",
        f"    path: {_q(f.path)}",
    ]
    if not any(outcome_word(v) != "?" for v in f.values):
        out[0] += " (no value says success or failure: decide each)"
    out.append("    map:")
    for value, _ in f.values.most_common(FEW_VALUES):
        word = outcome_word(value)
        out.append(f"      {_q(value)}: {_q(word)}")
    return out


def _optional_lines(column: str, found: list[Field], n: int) -> list[str]:
    if not found:
        return []
    first = found[0]
    shown = f"{first.present} of {n} records, {len(first.values)} distinct"
    if len(first.values) <= FEW_VALUES:
        shown += f": {_counts(first, 4)}"
    return [f"  {column}: {_q(first.path)}   # {shown}"]
