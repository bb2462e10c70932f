"""What each kind of input holds, and what a load hands back: the shared vocabulary of
:mod:`analysis.ingest.loader`, :mod:`analysis.ingest.readers`, :mod:`analysis.ingest.validate`
and the server-log formats."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

Progress = Callable[[str], None]


RAW_KEEP_CHARS = 65536  # a reject keeps this much of its line: enough to read, bounded


@dataclass(frozen=True)
class Kind:
    """What one kind of input holds: its table, fields, and which are required."""

    name: str
    table: str
    fields: tuple[str, ...]
    #: fields a row must have (else it is rejected)
    required: tuple[str, ...]
    numeric: tuple[str, ...] = ()
    #: fields of which at least one must be present
    one_of: tuple[str, ...] = ()
    #: columns a file must have somewhere (a file without one is refused as a whole);
    #: the required fields when not given
    columns: tuple[str, ...] = ()

    @property
    def required_columns(self) -> tuple[str, ...]:
        """The columns without which a file of this kind cannot be read at all."""
        return self.columns or self.required


AUTH = Kind(
    "auth",
    "auth_events",
    ("ts", "user_id", "outcome", "request_id", "error_code", "latency_ms", "auth_path"),
    # an attempt whose user the source does not know (a failure before the user is
    # identified) is kept with a null user_id: it counts in attempts, not in users
    ("ts", "outcome"),
    numeric=("latency_ms",),
    columns=("ts", "user_id", "outcome"),
)


QUERIES = Kind(
    "queries",
    "db_queries",
    (
        "ts",
        "duration_ms",
        "statement",
        "fingerprint",
        "request_id",
        "caller",
        "db_host",
        "rows",
        "error",
    ),
    ("ts", "duration_ms"),
    numeric=("duration_ms", "rows"),
    one_of=("statement", "fingerprint"),
)


TIMELINE = Kind("timeline", "timeline", ("ts", "kind", "text"), ("ts", "kind"))


KINDS = {k.name: k for k in (AUTH, QUERIES, TIMELINE)}


#: columns of ours that a data column may not take the name of
RESERVED = {
    "source_id", "line", "raw", "reason", "pre_reason", "not_json", "fp_key", "keyed", "rowid"
}  # fmt: skip


@dataclass(frozen=True)
class ReadOptions:
    """How a load reads its files, beyond their format (the same for every file)."""

    tz: str = "UTC"
    progress: Progress | None = None
    #: PostgreSQL's log_line_prefix; None: inferred from the lines
    log_line_prefix: str | None = None
    #: the year of syslog timestamps; None: the file's date
    year: int | None = None
    #: access logs: the URL paths (prefixes) whose requests are login attempts; empty: the
    #: preset's own (paths ending in /login, /signin, /oauth/token, …)
    login_paths: tuple[str, ...] = ()


@dataclass
class FileResult:
    """What happened to one input file."""

    kind: str
    path: str
    format: str
    sha256: str
    source_id: int
    rows_read: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    #: records the format says are not attempts or queries (rows_read = loaded + rejected +
    #: skipped), by kind in ``skipped`` (an Okta logout, a request to another path, …)
    rows_skipped: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    already_loaded: bool = False
    notes: list[str] = field(default_factory=list)
    #: rows that were not JSON objects at all (tells a file that is not JSON Lines)
    not_json: int = 0


@dataclass
class LoadResult:
    """Every file of one load, in the order given."""

    files: list[FileResult] = field(default_factory=list)
    #: the user-class error codes that the definitions behind the auth files name (a preset
    #: knows which of its source's codes are the user's: Auth0 ``fp``, Entra ``50126``…)
    user_codes: list[str] = field(default_factory=list)

    def source_ids(self, kind: str) -> list[int]:
        """Source ids of one kind of input (what a report is scoped to)."""
        return [f.source_id for f in self.files if f.kind == kind]

    def totals(self, kind: str) -> dict[str, int]:
        """rows_read, rows_loaded, rows_rejected and rows_skipped summed over one kind's
        files."""
        out = {"rows_read": 0, "rows_loaded": 0, "rows_rejected": 0, "rows_skipped": 0}
        seen: set[int] = set()
        for f in self.files:
            # the same file given twice is one source, counted once
            if f.kind == kind and f.source_id not in seen:
                seen.add(f.source_id)
                out["rows_read"] += f.rows_read
                out["rows_loaded"] += f.rows_loaded
                out["rows_rejected"] += f.rows_rejected
                out["rows_skipped"] += f.rows_skipped
        return out


@dataclass(frozen=True)
class Records:
    """A query giving ``(line, raw, pre_reason, f_<field>…)`` rows, all text, with its values."""

    sql: str
    params: dict[str, object]
    extras: list[str]
