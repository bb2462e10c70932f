"""PostgreSQL server logs: the layout of a file, and the prefix of its text forms.

``--query-format postgres`` reads any of PostgreSQL's log destinations, as written by the
server or exported by a managed service; the layout is told from the first lines: JSON
objects are ``jsonlog`` (:mod:`.pg_jsonlog`, also CloudNativePG's) or Google Cloud SQL's
export (``cloudsql``, entries with a ``textPayload``), CSV records that start with a
timestamp are ``csvlog`` (:mod:`.pg_csvlog`), Heroku's lines are ``logplex``, syslog headers
``syslog``, anything else is ``stderr`` (AWS RDS and Aurora, Azure and every self-hosted
server write it, each with its own ``log_line_prefix``). The text forms are read by
:mod:`.pg_text`; their ``log_line_prefix`` is the given one or the one inferred from the
lines (:mod:`.pg_infer`).
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from analysis import errors, kinds
from analysis.ingest import lines
from analysis.ingest.formats import (
    common,
    pg_common,
    pg_csvlog,
    pg_infer,
    pg_jsonlog,
    pg_prefix,
    pg_text,
    syslog,
)

_CSVLOG_START = re.compile(
    r'^"?\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?(?: [^,"]*)?"?,.*,(?:'
    + pg_prefix.SEVERITIES
    + r"),[0-9A-Z]{5},"
)


def detect_layout(sample: list[str]) -> str:
    """``jsonlog``, ``cloudsql``, ``csvlog``, ``logplex``, ``syslog`` or ``stderr``, from a
    file's first lines."""
    if not sample:
        return "stderr"
    half = len(sample) / 2
    if sum(s.lstrip().startswith("{") for s in sample) >= half:
        cloud = sum(all(k in s for k in pg_text.CLOUDSQL_KEYS) for s in sample)
        return "cloudsql" if cloud >= half else "jsonlog"
    if _CSVLOG_START.match(sample[0]):
        return "csvlog"
    for layout in ("logplex", "syslog"):
        header = re.compile(pg_text.header(layout))
        if sum(bool(header.match(s)) for s in sample) >= half:
            return layout
    return "stderr"


def load_postgres(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    res: kinds.FileResult,
    *,
    tz: str,
    progress: kinds.Progress | None,
    log_line_prefix: str | None,
    year: int | None,
) -> None:
    """Load a PostgreSQL log of any layout: queries to ``db_queries``, the rest to
    ``server_events``."""
    lines.refuse_binary(path, "a PostgreSQL log")
    sample = lines.first_lines(path)
    if not sample:
        res.notes.append("empty file: no log entry")
        return
    layout = detect_layout(sample)
    counts = common.Counts()
    described = f"PostgreSQL {layout} log"
    if layout == "jsonlog":
        pg_jsonlog.load_jsonlog(con, path, res, tz=tz, progress=progress, counts=counts)
    elif layout == "csvlog":
        pg_csvlog.load_csvlog(con, path, res, tz=tz, progress=progress, counts=counts)
    else:
        used = load_text(
            con,
            path,
            res,
            layout=layout,
            sample=sample,
            tz=tz,
            progress=progress,
            log_line_prefix=log_line_prefix,
            year=year,
            counts=counts,
        )
        described += f", log_line_prefix {used!r}"
    res.rows_rejected = res.rows_read - res.rows_loaded
    res.notes.insert(0, described)
    note = common.other_note(counts, "query records", unit="log entry", units="log entries")
    if note:
        res.notes.append(note + "; kept in server_events")
    if res.rows_read == 0:
        res.notes.append(
            "no 'duration:' entries: set log_min_duration_statement (or log_duration with "
            "log_statement) to log queries"
        )


def choose_prefix(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    bodies: list[str],
    given: str | None,
    notes: list[str],
) -> pg_prefix.Prefix:
    """The given prefix, or the one inferred from the lines (:mod:`.pg_infer`).

    What was inferred, and a prefix that matches few of the lines, get a note in ``notes``.

    Raises
    ------
    UnreadableFile
        when no sample line matches: naming where the prefix stopped matching on the first
        line, since a prefix that matches nothing would silently find no query.
    """
    # lines that start with a space or tab continue a multi-line message
    starts = sum(1 for b in bodies if b[:1] not in (" ", "\t") or pg_infer.head_of(b))
    first = bodies[0] if bodies else ""
    shown = first if len(first) <= 160 else first[:160] + "…"
    if given is not None:
        try:
            prefix = pg_prefix.translate(given)
        except ValueError as exc:
            raise errors.UnreadableFile(f"{path}: {exc}") from exc
        fits = pg_infer.fit(con, bodies, [given])
        if not fits:
            _, why = pg_prefix.where_it_fails(prefix, first)
            raise errors.UnreadableFile(
                f"{path}: no line matches log_line_prefix {given!r}: the first line {why} "
                f"(line: {shown!r})"
            )
        matched = fits[0].lines
    else:
        fits = pg_infer.fit(con, bodies, pg_infer.candidates(bodies))
        if not fits:
            raise errors.UnreadableFile(
                f"{path}: no line looks like a PostgreSQL log entry (a log_line_prefix, then "
                f"LOG:, ERROR:… and the message); give --log-line-prefix as set in "
                f"postgresql.conf if it is one (first line: {shown!r})"
            )
        prefix, matched = fits[0].prefix, fits[0].lines
        notes.extend(pg_infer.notes(fits, starts, bodies))
    if matched < 0.9 * starts:
        notes.append(
            f"only {matched:,} of the first {starts:,} unindented lines start with "
            f"log_line_prefix {prefix.text!r}; the others are read as the "
            "continuation of the entry before them: give --log-line-prefix if that is wrong"
        )
    return prefix


def load_text(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    res: kinds.FileResult,
    *,
    layout: str,
    sample: list[str],
    tz: str,
    progress: kinds.Progress | None,
    log_line_prefix: str | None,
    year: int | None,
    counts: common.Counts,
) -> str:
    """Load a text layout (:mod:`.pg_text`); returns the log_line_prefix used."""
    prefix = choose_prefix(con, path, pg_text.bodies(sample, layout), log_line_prefix, res.notes)
    wrapped = layout in ("syslog", "logplex")
    yr = syslog.year_of(path, year) if wrapped else None
    extras = [n for n in pg_common.EXTRAS if _gives(prefix, n) or (n == "pid" and wrapped)]
    for chunk, last in common.chunks(path):
        counts.lines += common.load_chunk(con, chunk)
        if yr is not None:
            rec = pg_text.syslog_chunk(con, prefix, yr, layout, last=last, counts=counts)
        else:
            rec = pg_text.stderr_chunk(con, prefix, layout, last=last, counts=counts)
        pg_common.finish_chunk(con, res, rec, tz=tz, extras=extras, counts=counts)
        if progress:
            progress(
                f"{path.name}: {chunk.bytes_done / 1e6:,.0f} MB read, {res.rows_read:,} queries"
            )
    if layout == "syslog" and yr is not None and "ts" not in prefix.fields:
        res.notes.append(yr.note(path))
    return prefix.text


def _gives(prefix: pg_prefix.Prefix, extra: str) -> bool:
    """Whether a prefix gives an extra column (``client_ip`` comes from %h or %r)."""
    return ("client" if extra == "client_ip" else extra) in prefix.fields


_STDERR_ENTRY = re.compile(
    r"\d\d:\d\d:\d\d.*\b(?:" + pg_prefix.SEVERITIES + r"):  ?(?:duration: |statement: |\S)"
)


def sniff(sample: list[str]) -> str | None:
    """Why the first lines look like a PostgreSQL log, or None."""
    layout = detect_layout(sample)
    if layout == "jsonlog":
        keys = ('"error_severity"', '"message"')
        if any(all(k in s for k in keys) for s in sample[:20]):
            return "jsonlog records (error_severity, message)"
        return None
    if layout == "csvlog":
        return "csvlog records (timestamp, …, severity, SQLSTATE)"
    if layout == "cloudsql":
        return "Cloud SQL log entries (textPayload)"
    # the lines that go on a message or a statement start with a tab (PostgreSQL writes one
    # after each newline of a message to stderr): an entry of many lines counts once
    heads = [s for s in sample if not s.startswith("\t")]
    hits = sum(bool(_STDERR_ENTRY.search(s)) for s in heads)
    if hits and hits >= len(heads) / 4:
        return (
            f"{hits} of the first {len(heads)} lines (tab-indented ones aside) are PostgreSQL "
            "entries ('LOG:  …')"
        )
    return None
