"""PostgreSQL's text logs, plain or wrapped by a log service: entries into ``_fmt_rec``.

Four layouts carry the same text (``log_line_prefix`` + severity + message):

- ``stderr``: the file PostgreSQL writes. A line that is prefix + severity starts an entry;
  any other line continues it (PostgreSQL starts continuation lines with a tab, dropped).
- ``cloudsql``: Google Cloud SQL's export from Cloud Logging, one JSON LogEntry per line
  whose ``textPayload`` is a stderr line (its prefix has no time: the entry's ``timestamp``
  is used, and ``resource.labels.database_id`` names the server). Continuation lines
  arrive as entries of their own, so they are joined as in stderr.
- ``syslog``: ``… host postgres[pid]: [N-k] text``; the parts ``k`` of message ``N`` of a
  process are joined in order: a part that starts with ``#011`` (rsyslog's escaped tab) or
  a tab after a newline, a part that starts with the prefix and a severity (the
  ``DETAIL``, ``STATEMENT``… lines of one report) as an entry of its own, any other (a long
  line split by PostgreSQL) directly.
- ``logplex``: Heroku's ``2019-03-14T00:22:56+00:00 app[postgres.4882]: [GREEN] [15-1] …``,
  or through a syslog drain, the syslog rules with the pid from ``postgres.N`` and the
  database's colour name as the server (``db_host``).
"""

from __future__ import annotations

import re

import duckdb

from analysis import db
from analysis.ingest.formats import common, pg_prefix, syslog

#: ``[COLOUR] `` (Heroku), then the part ``[N-k] `` of a syslog message
PART = r"^(?:\[([A-Z][A-Z0-9_]*)\] )?\[(\d+)-(\d+)\] ?((?s:.*))$"
PART_GROUPS = ["color", "seq", "part", "body"]

#: Heroku logplex, with the groups of :data:`syslog.HEADER` (the BSD time ones empty): as
#: ``heroku logs`` prints it (``… app[postgres.N]: …``) or through a syslog drain
#: (``… d.<drain id> app[postgres.N] …``)
LOGPLEX = (
    r"^()()()(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)"
    r" ((?:\S+ )?[a-z][a-z0-9_-]*)\[(postgres)\.(\d+)\]:? ?((?s:.*))$"
)

CLOUDSQL_KEYS = ('"textPayload"', '"logName"')


def header(layout: str) -> str:
    """The header regex of a wrapped layout (groups as :data:`syslog.HEADER`)."""
    return LOGPLEX if layout == "logplex" else syslog.HEADER


def bodies(sample: list[str], layout: str) -> list[str]:
    """The text that the prefix starts: after a syslog header and part number, or the
    ``textPayload`` of a Cloud SQL entry."""
    if layout == "stderr":
        return sample
    if layout == "cloudsql":
        import json

        out = []
        for s in sample:
            try:
                doc = json.loads(s)
            except ValueError:
                continue
            text = doc.get("textPayload") if isinstance(doc, dict) else None
            if isinstance(text, str):
                out.append(text)
        return out
    head = re.compile(header(layout))
    part = re.compile(PART, re.S)
    out = []
    for s in sample:
        m = head.match(s)
        if not m:
            continue
        body = m.group(8)
        p = part.match(body)
        text = p.group(4) if p else body
        if not text.startswith(("\t", "#011")):
            out.append(text)
    return out


def fields_sql(prefix: pg_prefix.Prefix, *, pid: str = "null::varchar") -> str:
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


def ts_field(prefix: pg_prefix.Prefix, fallback: str) -> str:
    """The entry's time: the prefix's, or the wrapper's (``fallback``)."""
    if "ts" in prefix.fields:
        return "nullif(p.ts, '')"
    if "ts_epoch" in prefix.fields:
        return "nullif(p.ts_epoch, '')"
    return fallback


def _marked_stderr(layout: str) -> str:
    """The lines of ``_fmt_src`` with their body, the wrapper's time and server."""
    if layout == "cloudsql":
        return """
            with j as (
                select line, txt,
                       case when try(json_type(txt)) = 'OBJECT' then txt::json end as doc
                from _fmt_src
            ), final as (
                select line, txt, json_extract_string(doc, '$.textPayload') as body,
                       json_extract_string(doc, '$.timestamp') as wts,
                       json_extract_string(doc, '$.resource.labels.database_id') as whost
                from j
            )
            select *, coalesce(regexp_matches(body, $start), false) as is_start from final
            where body is not null
        """
    return """
        select line, txt, txt as body, null::varchar as wts, null::varchar as whost,
               regexp_matches(txt, $start) as is_start
        from _fmt_src
    """


def stderr_chunk(
    con: duckdb.DuckDBPyConnection,
    prefix: pg_prefix.Prefix,
    layout: str,
    *,
    last: bool,
    counts: common.Counts,
) -> tuple[str, dict[str, object]]:
    """Group a chunk's stderr (or Cloud SQL) lines; the query of its entries."""
    if layout == "cloudsql":
        skipped = db.one(
            con,
            "select count(*) from _fmt_src where try(json_extract_string(txt, '$.textPayload'))"
            " is null",
        )[0]
        counts.add("not a Cloud SQL PostgreSQL entry (no textPayload)", skipped)
    common.group_chunk(
        con, _marked_stderr(layout), {"start": prefix.start_regex()}, last=last, counts=counts
    )
    # most entries are one line: only the others pay for string_agg
    sql = f"""
        with more as (
            select rec,
                   string_agg(regexp_replace(body, '^\t', ''), chr(10) order by line) as body,
                   string_agg(txt, chr(10) order by line) as raw
            from _fmt_lines where line > rec group by rec
        ), entries as (
            select h.line,
                   case when m.body is null then h.body else h.body || chr(10) || m.body end
                       as txt,
                   case when m.raw is null then h.txt else h.txt || chr(10) || m.raw end as raw,
                   h.wts, h.whost
            from _fmt_lines h left join more m on m.rec = h.line
            where h.line = h.rec
        ), parsed as (
            select line, txt, raw, wts, whost, regexp_extract(txt, $head, $names) as p
            from entries
        ), final as (
            select line, raw, null::varchar as pre_reason,
                   {ts_field(prefix, "wts")} as ts,
                   p.severity as severity, txt[length(p.head) + 1:] as msg, {fields_sql(prefix)},
                   whost as db_host
            from parsed
        )
        select * from final
    """  # noqa: S608 - columns from the fixed escape table
    return sql, {"head": prefix.head_regex(), "names": prefix.head_names()}


def syslog_chunk(
    con: duckdb.DuckDBPyConnection,
    prefix: pg_prefix.Prefix,
    yr: syslog.Year,
    layout: str,
    *,
    last: bool,
    counts: common.Counts,
) -> tuple[str, dict[str, object]]:
    """Group a chunk's syslog (or logplex) parts; the query of its entries."""
    ts_text, values = syslog.ts_sql("s.mon", "s.day", "s.clock", "s.iso", year=yr)
    values.update(
        {
            "header": header(layout),
            "header_names": syslog.HEADER_GROUPS,
            "part": PART,
            "part_names": PART_GROUPS,
            "start": prefix.start_regex(),
        }
    )
    marked = f"""
        with h as (
            select line, txt, regexp_extract(txt, $header, $header_names) as s from _fmt_src
        ), p as (
            select *, regexp_extract(s.msg, $part, $part_names) as q from h
        ), b as (
            select *, case when q.seq <> '' then q.body else s.msg end as body from p
        ), final as (
            select line, txt,
                   case when q.color <> '' then q.color else s.host end as host,
                   nullif(s.pid, '') as pid,
                   {syslog.month_sql("s.mon")} as mon,
                   {ts_text} as sys_ts,
                   body,
                   coalesce(s.pid, '') || ':' || q.seq as grp,
                   s.prog <> '' and regexp_matches(body, $start) as is_start
            from b
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
                            when starts_with(body, chr(9)) then chr(10) || body[2:]
                            else body end, '' order by line), '#011', chr(9)) as txt,
                   string_agg(txt, chr(10) order by line) as raw,
                   arg_min(sys_ts, line) as sys_ts,
                   arg_min(host, line) as host,
                   arg_min(pid, line) as sys_pid
            from _fmt_lines group by rec
        ), parsed as (
            select *, regexp_extract(txt, $head, $names) as p from entries
        ), final as (
            select line, raw, null::varchar as pre_reason, {ts_field(prefix, "sys_ts")} as ts,
                   p.severity as severity, txt[length(p.head) + 1:] as msg,
                   {fields_sql(prefix, pid="sys_pid")}, nullif(host, '') as db_host
            from parsed
        )
        select * from final
    """  # noqa: S608 - columns from the fixed escape table
    return sql, {"head": prefix.head_regex(), "names": prefix.head_names()}
