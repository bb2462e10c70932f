"""The ``log_line_prefix`` of a PostgreSQL text log, inferred from its own lines.

Real prefixes are endless (every installation writes its own), so none is looked up in a
list. The head of a line (the text before ``LOG:``, ``ERROR:``…) is read as a grammar of
PostgreSQL's escapes and the literal text between them: a timestamp is ``%m`` (with
milliseconds) or ``%t``, then ``%s``; ``hex.hex`` is the session id ``%c``; ``N/N`` the
virtual transaction ``%v``; an address with a port in parentheses ``%r``, without ``%h``;
a SQLSTATE ``%e``; numbers are the pid ``%p`` first, ``N-1`` the line number ``%l``, then
``%x``; ``key=value`` pairs are named by their key (``user=``, ``db=``, ``app=``,
``client=``, ``sql_error_code =``…); names without a key follow the documentation's
``%u@%d/%a``. Each line's head gives one candidate; a shorter one that the longer continues
gives ``%q`` (background processes stop there); a name that swallows the separator and the
field after it (``%d`` for ``shop/auth-service``) is a candidate too, and so is every role a
lone name without a key could have.

The candidates are fitted to the first lines (:func:`fit`, in DuckDB): the one that starts
the most lines wins; a tie goes to the one that puts fewer separators (``/ @ : , ]``) inside
a user, database or application name, then to the one with more fields. What the winner
read on its first line, and any other fit as good that reads the lines differently, are said
in the load's notes.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import duckdb

from analysis import db
from analysis.ingest.formats import pg_prefix

#: a severity after the prefix: the end of a line's head
_SEVERITY = re.compile(r"(?<![A-Za-z0-9_])(?:" + pg_prefix.SEVERITIES + r"): ")

_END = r"(?![A-Za-z0-9_])"
_TS = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?"
    r"(?: (?:[A-Z][A-Za-z]{1,5}|[+-]\d\d(?::?\d\d)?))?" + _END
)
_EPOCH = re.compile(r"\d{9,11}\.\d{3}" + _END)
_SESSION = re.compile(r"[0-9a-f]{6,}\.[0-9a-f]{1,8}" + _END)
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}(\(\d*\))?" + _END)
_HOST_PORT = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*\(\d+\)")
_LINE = re.compile(r"(\d+)-(\d+)" + _END)
_VXID = re.compile(r"-?\d+/\d+" + _END)
_FIVE = re.compile(r"[0-9A-Z]{5}" + _END)
_INT = re.compile(r"\d+" + _END)
_SIGNED = re.compile(r"-?\d+" + _END)
_BACKEND = re.compile(
    r"(?:client backend|autovacuum (?:launcher|worker)|background (?:writer|worker)"
    r"|logical replication (?:launcher|worker)|parallel worker|standalone backend"
    r"|checkpointer|walwriter|walsender|walreceiver|walsummarizer|archiver|startup"
    r"|postmaster|slotsync worker|io worker)" + _END
)
_HOSTNAME = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_NAME = re.compile(r"""[^\s\[\]():,@/|<>;="'.\-][^\s\[\]():,@/|<>;="']*""")
_SPECIAL = {"[local]": "h", "[unknown]": "name"}
_KEY = re.compile(r" ?= ?")
_NEXT_KEY = re.compile(r"[,;| ]\s*[A-Za-z_]+ ?= ?")

#: what a key says its value is (lowercase key, without separators)
KEYS = {
    **dict.fromkeys(("user", "usr", "u", "username", "user_name", "role", "login"), "u"),
    **dict.fromkeys(("db", "database", "dbname", "d", "database_name", "base"), "d"),
    **dict.fromkeys(
        ("app", "appli", "application", "application_name", "appname", "a", "program"), "a"
    ),
    **dict.fromkeys(
        ("client", "host", "remote", "h", "client_addr", "ip", "remote_host", "from", "src"),
        "h",
    ),
    **dict.fromkeys(("pid", "process", "p", "process_id", "proc"), "p"),
    **dict.fromkeys(("session", "sess", "sid", "session_id", "c"), "c"),
    **dict.fromkeys(("line", "l", "session_line", "line_num"), "l"),
    **dict.fromkeys(("xid", "tx", "txid", "x", "transaction"), "x"),
    **dict.fromkeys(("vxid", "v", "vtxid"), "v"),
    **dict.fromkeys(("queryid", "query_id", "qid", "q", "query"), "Q"),
    **dict.fromkeys(("sqlstate", "sql_error_code", "code", "err", "e", "error", "state"), "e"),
    **dict.fromkeys(("backend", "backend_type", "b", "type"), "b"),
    **dict.fromkeys(("tag", "command", "command_tag", "i", "cmd"), "i"),
}
#: escapes whose value is a name a person chose: where a swallowed separator shows
NAME_FIELDS = ("db_user", "database", "application")
#: separators that a name swallowing the next field would hold
SEPARATORS = "/@:,]"
#: how the notes call each field
LABELS = {
    "ts": "time",
    "ts_epoch": "time",
    "pid": "pid",
    "db_user": "user",
    "database": "database",
    "application": "application",
    "client": "client",
    "session_id": "session",
    "session_line": "line number",
    "session_start": "session start",
    "txid": "transaction",
    "vxid": "virtual transaction",
    "query_id": "query id",
    "sqlstate": "SQLSTATE",
    "backend_type": "backend",
    "command_tag": "command",
    "leader_pid": "leader pid",
}

#: lines whose heads give candidates
HEAD_LINES = 300
#: the most frequent distinct heads kept
MAX_SHAPES = 12

Token = tuple[str, str]  # (escape letter or "" for literal text, the text on the line)


def head_of(line: str) -> str | None:
    """The text before the severity, or None when the line has none (a continuation)."""
    if line[:1] in (" ", "\t"):
        m = _SEVERITY.search(line)
        # a prefix may start with a space (Heroku's " sql_error_code = …"), a
        # continuation line starts with a tab
        if not m or line[:1] == "\t":
            return None
        return line[: m.start()]
    m = _SEVERITY.search(line)
    return line[: m.start()] if m else None


def lex(head: str) -> list[Token]:
    """The escapes and literal text of one line's head (see the module's rules)."""
    out: list[Token] = []
    used: set[str] = set()
    i, n = 0, len(head)
    key: str | None = None

    def emit(letter: str, text: str) -> None:
        out.append((letter, text))
        if letter:
            used.add(letter)

    def number(text: str) -> str:
        if int(text) > 4294967295:
            return "Q"
        for letter in ("p", "l", "x", "Q"):
            if letter not in used:
                return letter
        return ""

    while i < n:
        if key is not None:
            letter, key = key, None
            end = _keyed_value(head, i, letter, emit)
            if end is not None:
                i = end
                continue
        i, key = _next_token(head, i, out, used, emit, number)
    return out


def _keyed_value(head: str, i: int, letter: str, emit) -> int | None:
    """Emit the value of a key (``user=``…) whose escape is ``letter``; the position after
    it, or None when no such value is there (the text is then read as if no key preceded it)."""
    rest = head[i:]
    if letter == "a":
        # an application name may hold spaces: it ends where the next key starts
        m = _NEXT_KEY.search(head, i)
        end = m.start() if m else len(head.rstrip(" ])>:,;|"))
        emit("a", head[i:end])
        return end
    if rest.startswith(("[unknown]", "[local]")):
        text = "[unknown]" if rest.startswith("[unknown]") else "[local]"
        emit(letter, text)
        return i + len(text)
    m = (
        (_SIGNED if letter == "Q" else _INT).match(rest)
        if letter in "plxQ"
        else _VALUE_OF.get(letter, _NAME).match(rest)
    )
    if m and not _TS.match(rest):
        emit(letter, m.group(0))
        return i + m.end()
    if letter not in "plxQ" and (rest[:1] in ",; |)]" or not rest):
        emit(letter, "")  # an empty value (a background process)
        return i
    return None


def _next_token(
    head: str, i: int, out: list[Token], used: set[str], emit, number
) -> tuple[int, str | None]:
    """Emit the escape or literal text at ``i``; the position after it, and the escape of
    the value that comes next when the text is a key (``user=``), so that it reads that."""
    rest = head[i:]
    m = _TS.match(rest)
    if m:
        letter = "m" if m.group(1) else ("s" if "t" in used or "m" in used else "t")
        emit(letter, m.group(0))
        return i + m.end(), None
    for special, what in _SPECIAL.items():
        if rest.startswith(special):
            if what == "h":
                emit("h" if "h" not in used and "r" not in used else "", special)
            else:
                emit(_name_role(out, used, head, i, i + len(special)), special)
            return i + len(special), None
    step = _shape(rest, used, out, emit, number)
    if step:
        return i + step, None
    m = _NAME.match(rest)
    if m:
        after = head[i + m.end() :]
        k = _KEY.match(after)
        if k and after[k.end() : k.end() + 1] != "=":
            emit("", m.group(0) + k.group(0))
            return i + m.end() + k.end(), KEYS.get(m.group(0).lower().strip("_"))
        emit(_name_role(out, used, head, i, i + m.end()), m.group(0))
        return i + m.end(), None
    emit("", head[i])
    return i + 1, None


_VALUE_OF = {
    "c": _SESSION,
    "v": _VXID,
    "e": re.compile(r"[0-9A-Z]{5}" + _END),
    "h": re.compile(r"[^\s,;|\])]+"),
    "b": _BACKEND,
    "i": re.compile(r"[^\s,;|\])]+"),
}


def _shape(rest: str, used: set[str], out: list[Token], emit, number) -> int:
    """Emit the escape of a value recognised by its shape; the characters it took."""
    m = _EPOCH.match(rest)
    if m:
        emit("n", m.group(0))
        return m.end()
    m = _SESSION.match(rest)
    if m and not _IPV4.match(rest):
        emit("c", m.group(0))
        return m.end()
    m = _IPV4.match(rest)
    if m:
        emit("r" if m.group(1) else "h", m.group(0))
        return m.end()
    m = _HOST_PORT.match(rest)
    if m:
        emit("r", m.group(0))
        return m.end()
    m = _LINE.match(rest)
    if m:
        if "p" not in used:
            emit("p", m.group(1))
            emit("", "-")
            emit("l", m.group(2))
        elif m.group(2) == "1":
            emit("l", m.group(1))
            emit("", "-1")  # the "[%l-1]" of pgbadger's documentation: "-1" is literal
        else:
            emit("l", m.group(1))
            emit("", "-")
            emit(number(m.group(2)), m.group(2))
        return m.end()
    m = _VXID.match(rest)
    if m:
        emit("v", m.group(0))
        return m.end()
    m = _FIVE.match(rest)
    if m and _is_sqlstate(m.group(0)):
        emit("e", m.group(0))
        return m.end()
    m = _INT.match(rest)
    if m:
        emit(number(m.group(0)), m.group(0))
        return m.end()
    m = _BACKEND.match(rest)
    if m:
        emit("b", m.group(0))
        return m.end()
    return 0


def _is_sqlstate(text: str) -> bool:
    """A SQLSTATE: five digits and capitals with a digit, and a capital or a leading 0."""
    digits = any(c.isdigit() for c in text)
    return digits and (any(c.isalpha() for c in text) or text.startswith("0"))


def _name_role(out: list[Token], used: set[str], head: str, start: int, end: int) -> str:
    """The escape of a name without a key, by the documentation's ``%u@%d/%a``."""
    name = head[start:end]
    before = out[-1][1] if out and not out[-1][0] else ""
    if head[end : end + 1] == "@" and "u" not in used:
        return "u"
    if before.endswith("@") and "d" not in used:
        return "d"
    if before.endswith("/") and "d" in used and "a" not in used:
        return "a"
    if _HOSTNAME.fullmatch(name) and not used & {"h", "r"}:
        return "h"  # log_hostname: a client's name, not a user's
    for letter in ("u", "d", "a", "i"):
        if letter not in used:
            return letter
    return ""


def to_prefix(tokens: list[Token]) -> str:
    """The ``log_line_prefix`` text of a token list."""
    return "".join(f"%{letter}" if letter else text.replace("%", "%%") for letter, text in tokens)


def _pattern(tokens: list[Token]) -> tuple[str, ...]:
    """The tokens as the prefix sees them (escapes, and literal text as written)."""
    return tuple(f"%{letter}" if letter else text for letter, text in tokens)


def candidates(sample: list[str]) -> list[str]:
    """Every prefix the first lines suggest, the most frequent line shapes first."""
    shapes: Counter[tuple[str, ...]] = Counter()
    seen = 0
    for line in sample:
        head = head_of(line)
        if head is None:
            continue
        shapes[_pattern(lex(head))] += 1
        seen += 1
        if seen >= HEAD_LINES:
            break
    top = [list(p) for p, _ in shapes.most_common(MAX_SHAPES)]
    out: list[list[str]] = []

    def add(p: list[str]) -> None:
        if p not in out:
            out.append(p)

    for p in top:
        add(p)
    # %q: a shape that a longer one continues (a background process stops where %q is)
    for short in top:
        for long in top:
            if len(short) < len(long) and long[: len(short)] == short and "%q" not in long:
                add([*short, "%q", *long[len(short) :]])
    for p in list(out):
        for alt in _alternatives(p):
            add(alt)
    return ["".join(p) for p in out]


def _alternatives(p: list[str]) -> list[list[str]]:
    """Other readings of a pattern: a name swallowing the next field, a lone name's roles."""
    alts = []
    names = ("%u", "%d", "%a")
    for k in range(len(p) - 2):
        if p[k] in names and p[k + 1] in tuple(SEPARATORS) and p[k + 2] in names:
            alts.append(p[: k + 1] + p[k + 3 :])
    keyless = [k for k, piece in enumerate(p) if piece in names and not _keyed(p, k)]
    if len(keyless) == 1 and not any(p[k] in names for k in range(len(p)) if k not in keyless):
        k = keyless[0]
        alts.extend(p[:k] + [other] + p[k + 1 :] for other in names if other != p[k])
    return alts


def _keyed(p: list[str], k: int) -> bool:
    return k > 0 and not p[k - 1].startswith("%") and p[k - 1].rstrip().endswith("=")


@dataclass(frozen=True)
class Fit:
    """How well one prefix explains the first lines."""

    prefix: pg_prefix.Prefix
    lines: int
    swallowed: int
    #: the fields it reads on the first line it starts
    first: dict[str, str]
    first_line: int


def fit(con: duckdb.DuckDBPyConnection, bodies: list[str], texts: list[str]) -> list[Fit]:
    """Score prefixes on the lines (in DuckDB), best first."""
    prefixes = []
    for t in texts:
        try:
            prefixes.append(pg_prefix.translate(t))
        except ValueError:
            continue
    if not prefixes:
        return []
    con.execute(
        "create or replace temp table _fmt_sample as "
        "select generate_subscripts($b::varchar[], 1) as n, unnest($b::varchar[]) as txt",
        {"b": bodies},
    )
    params: dict[str, object] = {"sep": "[" + re.escape(SEPARATORS) + "]"}
    cols = []
    for i, p in enumerate(prefixes):
        params[f"s{i}"] = p.start_regex()
        params[f"h{i}"] = p.head_regex()
        params[f"n{i}"] = p.head_names()
        names = [f for f in p.names if f]
        swallow = " + ".join(
            f"coalesce((regexp_matches(x.{f}, $sep) and x.{f} <> '[unknown]')::int, 0)"
            for f in NAME_FIELDS
            if f in p.fields
        )
        # the line to show: the first of those where the prefix reads the most fields
        filled = " + ".join(f"(x.{f} not in ('', '[unknown]'))::int" for f in names) or "0"
        cols.append(
            f"""(select struct_pack(lines := count(*),
                                    swallowed := coalesce(sum({swallow or 0}), 0),
                                    first := arg_max(n, ({filled}) * 1000000 - n))
                 from (select n, regexp_extract(txt, $h{i}, $n{i}) as x from _fmt_sample
                       where regexp_matches(txt, $s{i})))"""  # noqa: S608 - fixed field names
        )
    row = db.one(con, "select " + ", ".join(cols) + ", $sep", params)  # noqa: S608 - fixed SQL
    row = row[:-1]
    con.execute("drop table if exists _fmt_sample")
    fits = []
    for p, r in zip(prefixes, row, strict=True):
        if not r["lines"]:
            continue
        first = r["first"] - 1
        fits.append(Fit(p, r["lines"], int(r["swallowed"]), _fields(p, bodies[first]), first))
    order = {id(f): k for k, f in enumerate(fits)}
    fits.sort(
        key=lambda f: (
            -f.lines,
            f.swallowed,
            -len(f.prefix.fields),
            "%q" in f.prefix.text,
            order[id(f)],
        )
    )
    return fits


def _fields(prefix: pg_prefix.Prefix, line: str) -> dict[str, str]:
    """The values a prefix reads on a line, by field name."""
    m = re.match(prefix.head_regex(), line)
    if not m:
        return {}
    out = {}
    for name, value in zip(prefix.head_names()[1:-1], m.groups()[1:-1], strict=True):
        if not name.startswith("_unused") and value:
            out[name] = value.strip()
    return out


def describe(fields: dict[str, str]) -> str:
    """``time '…', pid '77', user 'app'…`` for a note."""
    return ", ".join(f"{LABELS.get(k, k)} {v!r}" for k, v in fields.items()) or "no fields"


def notes(fits: list[Fit], starts: int, bodies: list[str]) -> list[str]:
    """What the load says about the inferred prefix: which one, what it read, and any
    other prefix that explains the lines as well but reads them differently."""
    best = fits[0]
    out = [
        f"log_line_prefix {best.prefix.text!r} inferred from the lines (it starts "
        f"{best.lines:,} of the first {starts:,}); on line {best.first_line + 1} it reads "
        f"{describe(best.first)}; give --log-line-prefix if that is wrong"
    ]
    for other in fits[1:]:
        if (other.lines, other.swallowed) != (best.lines, best.swallowed):
            break
        # the other reading of the line the note shows
        theirs = _fields(other.prefix, bodies[best.first_line])
        if theirs and theirs != best.first:
            out.append(
                f"two prefixes explain the lines equally: {best.prefix.text!r} (used: "
                f"{describe(best.first)}) and {other.prefix.text!r} "
                f"({describe(theirs)}); give --log-line-prefix to choose"
            )
            break
    return out
