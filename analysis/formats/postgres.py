"""PostgreSQL server logs: the layout of a file, and its stderr and syslog forms.

``--query-format postgres`` reads any of PostgreSQL's log destinations; the layout is told
from the first lines: JSON objects are ``jsonlog`` (:mod:`.pg_jsonlog`), CSV records that
start with a timestamp are ``csvlog`` (:mod:`.pg_csvlog`), syslog headers are ``syslog``,
anything else is ``stderr``. For the two text forms the ``log_line_prefix`` is the given
one or the common layout that matches the most lines (:mod:`.pg_prefix`).

stderr: a line that is prefix + severity starts an entry; any other line continues it
(PostgreSQL starts continuation lines of a multi-line message with a tab, dropped here).
syslog: each line is ``… postgres[pid]: [N-k] text``; the parts ``k`` of entry ``N`` of a
process are joined in order, a part that starts with ``#011`` (rsyslog's escaped tab)
after a newline, any other (a long line split by PostgreSQL) directly.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from analysis import db, kinds, lines
from analysis.formats import common, pg_common, pg_csvlog, pg_jsonlog, pg_prefix, syslog

_CSVLOG_START = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?(?: [^,]*)?,.*,(?:"
    + pg_prefix.SEVERITIES
    + r"),[0-9A-Z]{5},"
)
_SYSLOG_PART = r"^\[(\d+)-(\d+)\] ?((?s:.*))$"


def detect_layout(sample: list[str]) -> str:
    """``jsonlog``, ``csvlog``, ``syslog`` or ``stderr``, from a file's first lines."""
    if not sample:
        return "stderr"
    half = len(sample) / 2
    if sum(s.lstrip().startswith("{") for s in sample) >= half:
        return "jsonlog"
    if _CSVLOG_START.match(sample[0]):
        return "csvlog"
    header = re.compile(syslog.HEADER)
    if sum(bool(header.match(s)) for s in sample) >= half:
        return "syslog"
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
    head = lines.sniff(path)
    binary = lines.binary_format(head)
    if binary:
        raise lines.UnreadableFile(f"{path}: is {binary} data, not a PostgreSQL log")
    sample = common.sample_lines(path)
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
    """The given prefix, or the common layout matching the most sample lines.

    A prefix that matches few of the lines gets a note in ``notes``.

    Raises
    ------
    UnreadableFile
        when no sample line matches: naming where the prefix stopped matching on the first
        line, since a prefix that matches nothing would silently find no query.
    """
    if given is not None:
        try:
            candidates = [pg_prefix.translate(given)]
        except ValueError as exc:
            raise lines.UnreadableFile(f"{path}: {exc}") from exc
    else:
        candidates = [pg_prefix.translate(t) for t in pg_prefix.COMMON]
    con.execute(
        "create or replace temp table _fmt_sample as select unnest($b::varchar[]) as txt",
        {"b": bodies},
    )
    sums = ", ".join(
        f"count(*) filter (where regexp_matches(txt, $p{i}))" for i in range(len(candidates))
    )
    params = {f"p{i}": c.start_regex() for i, c in enumerate(candidates)}
    scores = db.one(con, f"select {sums} from _fmt_sample", params)  # noqa: S608
    con.execute("drop table if exists _fmt_sample")
    best = max(range(len(candidates)), key=lambda i: (scores[i], -i))
    if scores[best]:
        # lines that start with a space or tab continue a multi-line message
        starts = sum(1 for b in bodies if b[:1] not in (" ", "\t"))
        if scores[best] < 0.9 * starts:
            notes.append(
                f"only {scores[best]:,} of the first {starts:,} unindented lines start with "
                f"log_line_prefix {candidates[best].text!r}; the others are read as the "
                "continuation of the entry before them: give --log-line-prefix if that is wrong"
            )
        return candidates[best]
    first = bodies[0] if bodies else ""
    shown = first if len(first) <= 160 else first[:160] + "…"
    if given is not None:
        _, why = pg_prefix.where_it_fails(candidates[0], first)
        raise lines.UnreadableFile(
            f"{path}: no line matches log_line_prefix {given!r}: the first line {why} "
            f"(line: {shown!r})"
        )
    # the layout that gets furthest on the first line shows where the file differs
    closest = max(candidates, key=lambda c: pg_prefix.where_it_fails(c, first)[0])
    _, why = pg_prefix.where_it_fails(closest, first)
    raise lines.UnreadableFile(
        f"{path}: no line matches a common log_line_prefix (the closest, {closest.text!r}, "
        f"{why}); give --log-line-prefix as set in postgresql.conf (first line: {shown!r})"
    )


def _bodies(sample: list[str], layout: str) -> list[str]:
    """The text after the syslog header and part number: what the prefix starts."""
    if layout != "syslog":
        return sample
    header = re.compile(syslog.HEADER)
    part = re.compile(_SYSLOG_PART, re.S)
    out = []
    for s in sample:
        m = header.match(s)
        if not m:
            continue
        body = m.group(8)
        p = part.match(body)
        if p and p.group(2) != "1":
            continue
        out.append(p.group(3) if p else body)
    return out


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
    """Load the stderr or syslog form; returns the log_line_prefix used."""
    prefix = choose_prefix(con, path, _bodies(sample, layout), log_line_prefix, res.notes)
    yr = syslog.year_of(path, year) if layout == "syslog" else None
    extras = [n for n in pg_common.EXTRAS if _gives(prefix, n) or (n, layout) == ("pid", "syslog")]
    for chunk, last in common.chunks(path):
        counts.lines += common.load_chunk(con, chunk)
        if layout == "syslog":
            assert yr is not None
            rec = _syslog_chunk(con, prefix, yr, last=last, counts=counts)
        else:
            rec = _stderr_chunk(con, prefix, last=last, counts=counts)
        pg_common.finish_chunk(con, res, rec, tz=tz, extras=extras, counts=counts)
        if progress:
            progress(
                f"{path.name}: {chunk.bytes_done / 1e6:,.0f} MB read, {res.rows_read:,} queries"
            )
    if yr is not None and "ts" not in prefix.fields:
        res.notes.append(yr.note(path))
    return prefix.text


def _gives(prefix: pg_prefix.Prefix, extra: str) -> bool:
    """Whether a prefix gives an extra column (``client_ip`` comes from %h or %r)."""
    return ("client" if extra == "client_ip" else extra) in prefix.fields


def _fields_sql(prefix: pg_prefix.Prefix, *, pid: str = "null::varchar") -> str:
    """The ``_fmt_rec`` columns from the struct ``p`` of prefix groups."""
    have = prefix.fields
    cols = []
    for col in ("db_user", "database", "application", "pid", "session_id", "query_id"):
        fallback = pid if col == "pid" else "null::varchar"
        cols.append(f"nullif(p.{col}, '') as {col}" if col in have else f"{fallback} as {col}")
    if "client" in have:
        # %r is host(port): the port is not part of the client's address
        cols.append(r"nullif(regexp_replace(p.client, '\(\d*\)$', ''), '') as client_ip")
    else:
        cols.append("null::varchar as client_ip")
    return ", ".join(cols)


def _ts_field(prefix: pg_prefix.Prefix, fallback: str) -> str:
    if "ts" in prefix.fields:
        return "nullif(p.ts, '')"
    if "ts_epoch" in prefix.fields:
        return "nullif(p.ts_epoch, '')"
    return fallback


def _stderr_chunk(
    con: duckdb.DuckDBPyConnection,
    prefix: pg_prefix.Prefix,
    *,
    last: bool,
    counts: common.Counts,
) -> tuple[str, dict[str, object]]:
    """Group a chunk's stderr lines; the query of its entries (``_fmt_rec``)."""
    common.group_chunk(
        con,
        "select line, txt, regexp_matches(txt, $start) as is_start from _fmt_src",
        {"start": prefix.start_regex()},
        last=last,
        counts=counts,
    )
    # most entries are one line: only the others pay for string_agg
    sql = f"""
        with more as (
            select rec, string_agg(regexp_replace(txt, '^\t', ''), chr(10) order by line) as txt
            from _fmt_lines where line > rec group by rec
        ), entries as (
            select h.line,
                   case when m.txt is null then h.txt else h.txt || chr(10) || m.txt end as txt
            from _fmt_lines h left join more m on m.rec = h.line
            where h.line = h.rec
        ), parsed as (
            select line, txt, regexp_extract(txt, $head, $names) as p from entries
        ), final as (
            select line, txt as raw, null::varchar as pre_reason,
                   {_ts_field(prefix, "null::varchar")} as ts,
                   p.severity as severity, txt[length(p.head) + 1:] as msg, {_fields_sql(prefix)},
                   null::varchar as db_host
            from parsed
        )
        select * from final
    """  # noqa: S608 - columns from the fixed escape table
    return sql, {"head": prefix.head_regex(), "names": prefix.head_names()}


def _syslog_chunk(
    con: duckdb.DuckDBPyConnection,
    prefix: pg_prefix.Prefix,
    yr: syslog.Year,
    *,
    last: bool,
    counts: common.Counts,
) -> tuple[str, dict[str, object]]:
    """Group a chunk's syslog parts; the query of its entries (``_fmt_rec``)."""
    ts_text, values = syslog.ts_sql("s.mon", "s.day", "s.clock", "s.iso", year=yr)
    values.update(
        {
            "header": syslog.HEADER,
            "header_names": syslog.HEADER_GROUPS,
            "part": _SYSLOG_PART,
            "start": prefix.start_regex(),
        }
    )
    marked = f"""
        with h as (
            select line, txt, regexp_extract(txt, $header, $header_names) as s from _fmt_src
        ), p as (
            select *, regexp_extract(s.msg, $part, ['seq', 'part', 'body']) as q from h
        ), final as (
            select line, txt, s.host as host, nullif(s.pid, '') as pid,
                   {syslog.month_sql("s.mon")} as mon,
                   {ts_text} as sys_ts,
                   case when q.seq <> '' then q.body else s.msg end as body,
                   coalesce(s.pid, '') || ':' || q.seq as grp,
                   q.part in ('', '1') and s.host <> ''
                       and regexp_matches(case when q.seq <> '' then q.body else s.msg end,
                                          $start) as is_start
            from p
        )
        select * from final
    """  # noqa: S608 - fixed SQL, values bound
    common.group_chunk(
        con, marked, values, last=last, counts=counts, partition="grp", process="pid"
    )
    if yr.given:
        top = db.one(con, "select max(mon) from _fmt_lines")[0]
        yr.prev_month = max(yr.prev_month, top or 0)
    sql = f"""
        with entries as (
            select rec as line,
                   replace(string_agg(
                       case when line = rec then body
                            when starts_with(body, '#011') then chr(10) || body[5:]
                            else body end, '' order by line), '#011', chr(9)) as txt,
                   string_agg(txt, chr(10) order by line) as raw,
                   arg_min(sys_ts, line) as sys_ts,
                   arg_min(host, line) as host,
                   arg_min(pid, line) as sys_pid
            from _fmt_lines group by rec
        ), parsed as (
            select *, regexp_extract(txt, $head, $names) as p from entries
        ), final as (
            select line, raw, null::varchar as pre_reason, {_ts_field(prefix, "sys_ts")} as ts,
                   p.severity as severity, txt[length(p.head) + 1:] as msg,
                   {_fields_sql(prefix, pid="sys_pid")}, nullif(host, '') as db_host
            from parsed
        )
        select * from final
    """  # noqa: S608 - columns from the fixed escape table
    return sql, {"head": prefix.head_regex(), "names": prefix.head_names()}


_STDERR_ENTRY = re.compile(
    r"\d\d:\d\d:\d\d.*\b(?:" + pg_prefix.SEVERITIES + r"):  (?:duration: |statement: |\S)"
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
    hits = sum(bool(_STDERR_ENTRY.search(s)) for s in sample)
    if hits and hits >= len(sample) / 4:
        return f"{hits} of the first {len(sample)} lines are PostgreSQL entries ('LOG:  …')"
    return None


def read(
    con: duckdb.DuckDBPyConnection,
    kind: kinds.Kind,
    path: Path,
    res: kinds.FileResult,
    opts: kinds.ReadOptions,
) -> None:
    """The registry's entry point: :func:`load_postgres` with the load's options."""
    load_postgres(
        con,
        path,
        res,
        tz=opts.tz,
        progress=opts.progress,
        log_line_prefix=opts.log_line_prefix,
        year=opts.year,
    )
