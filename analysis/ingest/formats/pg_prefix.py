"""PostgreSQL's ``log_line_prefix``: translated into a regex (:mod:`.pg_infer` infers it).

Every ``%`` escape of the PostgreSQL documentation (runtime-config-logging) becomes a
capture group; the text between escapes is matched literally. ``%q`` makes the rest of the
prefix optional (background processes stop there). A padded escape (``%-10u``) may carry
spaces. The regex is RE2 (DuckDB's ``regexp_*``), so there are no back-references.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: one log line is the prefix, then a severity, a colon and two spaces
SEVERITIES = (
    "LOG|ERROR|FATAL|PANIC|WARNING|NOTICE|INFO|DEBUG[1-5]?"
    "|DETAIL|HINT|STATEMENT|CONTEXT|QUERY|LOCATION"
)

# %t and %s: "2024-01-19 10:30:00 UTC"; %m adds milliseconds. The zone is an
# abbreviation (UTC, CEST, MSK) or a numeric offset (+03) as log_timezone prints it.
_ZONE = r"(?: [A-Za-z+-][A-Za-z0-9+:_/-]*)?"
_TS = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d" + _ZONE
_TS_MS = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?" + _ZONE

#: escape letter -> (field name, regex of its value)
ESCAPES: dict[str, tuple[str, str]] = {
    "a": ("application", r".*?"),  # application_name may hold spaces
    "u": ("db_user", r"\S*?"),
    "d": ("database", r"\S*?"),
    "r": ("client", r"\S*?"),  # host(port)
    "h": ("client", r"\S*?"),
    "b": ("backend_type", r".*?"),
    "p": ("pid", r"\d+"),
    "P": ("leader_pid", r"\d*"),
    "t": ("ts", _TS),
    "m": ("ts", _TS_MS),
    "n": ("ts_epoch", r"\d+(?:\.\d+)?"),
    "i": ("command_tag", r".*?"),
    "e": ("sqlstate", r"[0-9A-Z]{5}"),
    "c": ("session_id", r"[0-9a-f]+\.[0-9a-f]+"),
    "l": ("session_line", r"\d+"),
    "s": ("session_start", _TS),
    "v": ("vxid", r"\S*?"),
    "x": ("txid", r"\d+"),
    "Q": ("query_id", r"-?\d+"),
}

_ESCAPE = re.compile(r"%(-?\d+)?(.)")
_RE2_SPECIAL = set("\\.^$|?*+()[]{}")


@dataclass(frozen=True)
class Prefix:
    """A ``log_line_prefix`` as a regex of its values."""

    text: str
    #: the prefix alone, with one group per escape
    regex: str
    #: field name of each group, in order (``None`` for a second use of a name)
    names: tuple[str | None, ...]
    #: the pieces (literal text or ``%x``) with the regex matching up to each one's end
    steps: tuple[tuple[str, str], ...]

    @property
    def fields(self) -> set[str]:
        """The names of the fields this prefix gives."""
        return {n for n in self.names if n}

    def head_regex(self) -> str:
        """Regex of a log line's head: group 1 the whole head, then the prefix's groups,
        then the severity. The message is what follows the head; leaving it out of the
        regex keeps RE2 from scanning long statements for submatches."""
        return f"^({self.regex}({SEVERITIES}):  ?)"

    def head_names(self) -> list[str]:
        """Names of :meth:`head_regex`'s groups, for ``regexp_extract``."""
        names = [n or f"_unused{i}" for i, n in enumerate(self.names)]
        return ["head", *names, "severity"]

    def start_regex(self) -> str:
        """Regex that tells a first line of a log entry (cheap: no message group)."""
        return f"^{self.regex}(?:{SEVERITIES}): "


def _literal(text: str) -> str:
    return "".join("\\" + ch if ch in _RE2_SPECIAL else ch for ch in text)


def translate(text: str) -> Prefix:
    """Translate a ``log_line_prefix`` into a :class:`Prefix`.

    Raises
    ------
    ValueError
        on an escape PostgreSQL does not have.
    """
    parts: list[str] = []
    names: list[str | None] = []
    steps: list[tuple[str, str]] = []
    optional_from: int | None = None
    pos = 0
    for m in _ESCAPE.finditer(text):
        if m.start() > pos:
            lit = text[pos : m.start()]
            parts.append(_literal(lit))
            steps.append((lit, "".join(parts)))
        pos = m.end()
        pad, letter = m.group(1), m.group(2)
        if letter == "%":
            parts.append("%")
            steps.append(("%%", "".join(parts)))
            continue
        if letter == "q":
            optional_from = len(parts)
            continue
        if letter not in ESCAPES:
            raise ValueError(f"log_line_prefix {text!r}: %{letter} is not a PostgreSQL escape")
        name, value = ESCAPES[letter]
        group = f"({value})"
        if pad:
            group = f" *{group} *"
        parts.append(group)
        names.append(None if name in names else name)
        steps.append((m.group(0), "".join(parts)))
    if pos < len(text):
        parts.append(_literal(text[pos:]))
        steps.append((text[pos:], "".join(parts)))
    if optional_from is not None:
        parts = parts[:optional_from] + ["(?:" + "".join(parts[optional_from:]) + ")?"]
    return Prefix(text, "".join(parts), tuple(names), tuple(steps))


def where_it_fails(prefix: Prefix, line: str) -> tuple[int, str]:
    """How far ``line`` follows ``prefix``: the characters matched, and a sentence naming
    what matched, the piece (escape or text) that failed and the text found there."""
    matched, at, previous = "", 0, ""
    for piece, upto in prefix.steps:
        m = re.match(upto, line)
        if m:
            matched, at, previous = matched + piece, m.end(), upto
            continue
        if not piece.startswith("%"):
            # how much of a literal piece still matches, to point at the first difference
            k = max(
                (i for i in range(len(piece)) if re.match(previous + _literal(piece[:i]), line)),
                default=0,
            )
            matched, at, piece = matched + piece[:k], at + k, piece[k:]
        found = line[at : at + 30] or "(end of line)"
        return at, (
            f"matches {matched or '(nothing)'!r}, then expects {piece!r} but has {found!r}"
        )
    return at, (
        f"matches the whole prefix {prefix.text!r}, but no severity (LOG:, ERROR:…) follows"
    )
