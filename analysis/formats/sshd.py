"""OpenSSH ``sshd`` logs (syslog or ``/var/log/auth.log``): one auth event per attempt.

The attempt lines, one per authentication attempt:

- ``Accepted <method> for U from IP port P ssh2`` -> success;
- ``Failed <method> for [invalid user] U from IP port P ssh2`` -> failure;
- ``message repeated N times: [ Failed … ]`` (rsyslog folding N more such lines) -> N
  failures.

sshd also says ``Invalid user U from IP`` when a connection names an unknown user, and
PAM says ``authentication failure; … rhost=IP [user=U]`` when a password is refused;
both come *before* the ``Failed`` line of the same attempt, in the same sshd process.
Counting them too would count one attempt two or three times, so they are events only
when no attempt line of their process follows within 5 minutes (sshd's LoginGraceTime
is 2): old sshd versions and some PAM set-ups log nothing else (loghub's Linux log).

Error codes (``invalid_password`` and ``user_not_found`` are in the default
``user_error_codes``: a brute-force attack is not a system failure):

- ``Failed password`` / ``keyboard-interactive``: ``invalid_password``;
- ``Failed`` with another method (publickey, none…): ``invalid_credentials``;
- ``Failed … for invalid user`` and ``Invalid user``: ``user_not_found``;
- PAM ``authentication failure`` naming a user: ``invalid_password``; naming none (PAM
  leaves ``user=`` out for an unknown user): ``user_not_found``, user ``(unknown)``.

Columns: ``request_id`` is the sshd process id (one per connection), ``client_ip``,
``event`` (``accepted``, ``failed``, ``invalid_user``, ``pam_failure``),
``auth_method`` and ``host`` (the syslog host name) are extra text columns.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from analysis import db, kinds, lines, validate
from analysis.formats import common, syslog

#: seconds within which an attempt line of the same process absorbs a companion line
ABSORB_SECONDS = 300

# one regex per kind of line; the groups are named where _STAGE extracts them
_ACCEPTED = r"^Accepted (\S+) for (.*?) from (\S+) port (\d+)"
_FAILED = r"^Failed (\S+) for (invalid user )?(.*?) from (\S+) port (\d+)"
_REPEATED = (
    r"^message repeated (\d+) times: \[ ?Failed (\S+) for (invalid user )?(.*?) from (\S+)"
    r" port (\d+)"
)
_INVALID = r"^(?:Invalid|Illegal) user (.*?) from (\S+)(?: port (\d+))?\s*$"
# pam_unix(sshd:auth): or sshd(pam_unix)'s bare form; not "PAM 2 more authentication
# failures", which sums up lines already counted
_PAM = r"^(?:\w+\([^)]*\): )?authentication failure;.*\brhost=(\S*)(?:\s+user=(\S+))?"

_STAGE = r"""
    with h as (
        select line, txt, regexp_extract(txt, $header, $header_names) as s from _fmt_src
    ), marked as (
        select *, s.host <> '' as is_syslog, starts_with(s.prog, 'sshd') as is_sshd from h
    ), sshd as (
        select line, txt, s, is_syslog, is_sshd, {ts} as ts, {month} as mon,
               regexp_extract(s.msg, $accepted, ['method', 'user', 'ip', 'port']) as a,
               regexp_extract(s.msg, $failed, ['method', 'invalid', 'user', 'ip', 'port']) as f,
               regexp_extract(s.msg, $repeated,
                              ['n', 'method', 'invalid', 'user', 'ip', 'port']) as r,
               regexp_extract(s.msg, $invalid, ['user', 'ip', 'port']) as i,
               regexp_extract(s.msg, $pam, ['ip', 'user']) as p,
               regexp_matches(s.msg, $pam) as pam_line
        from marked
    ), final as (
        select line, txt as raw, ts, mon, is_syslog, is_sshd,
               nullif(s.host, '') as host, nullif(s.pid, '') as pid,
               case when not is_sshd then null
                    when a.method <> '' then 'accepted'
                    when f.method <> '' then 'failed'
                    when r.n <> '' then 'repeated'
                    when i.ip <> '' then 'invalid_user'
                    when pam_line then 'pam_failure'
               end as kind,
               coalesce(nullif(a.method, ''), nullif(f.method, ''), nullif(r.method, ''))
                   as method,
               case when a.method <> '' then a.user when f.method <> '' then f.user
                    when r.n <> '' then r.user when i.ip <> '' then i.user
                    when pam_line then nullif(p.user, '') end as user_id,
               coalesce(nullif(a.ip, ''), nullif(f.ip, ''), nullif(r.ip, ''),
                        nullif(i.ip, ''), nullif(p.ip, '')) as client_ip,
               f.invalid <> '' or r.invalid <> '' as invalid,
               case when r.n <> '' then r.n::integer else 1 end as n
        from sshd
    )
    select * from final
"""

# companions (Invalid user, PAM) are dropped when an attempt line of the same process
# follows within $absorb seconds
_EVENTS = r"""
    with s as (
        select *, try_cast(ts as timestamptz) as t from _fmt_stage
    ), w as (
        select *, min(case when kind in ('accepted', 'failed', 'repeated') then t end) over (
                      partition by host, pid order by line
                      rows between current row and unbounded following) as next_attempt
        from s
    )
    select * from w
    where kind in ('accepted', 'failed', 'repeated')
       or pid is null or next_attempt is null
       or next_attempt - t > to_seconds($absorb)
"""

_RECORDS = rf"""
    with events as (
        {_EVENTS}
    ), repeated as (
        select *, unnest(range(n)) as copy from events
    )
    select line, left(raw, $keep) as raw, null::varchar as pre_reason,
           ts as f_ts,
           case when kind in ('invalid_user', 'pam_failure') and user_id is null
                then '(unknown)' else user_id end as f_user_id,
           case when kind = 'accepted' then 'success' else 'failure' end as f_outcome,
           pid as f_request_id,
           case when kind = 'accepted' then null
                when invalid or kind = 'invalid_user' or user_id is null then 'user_not_found'
                when kind = 'pam_failure' then 'invalid_password'
                when method in ('password', 'keyboard-interactive/pam',
                                'keyboard-interactive') then 'invalid_password'
                else 'invalid_credentials' end as f_error_code,
           null::varchar as f_latency_ms,
           null::varchar as f_auth_path,
           client_ip as f_client_ip,
           case when kind = 'repeated' then 'failed' else kind end as f_event,
           method as f_auth_method,
           host as f_host
    from repeated
"""  # noqa: S608 - fixed SQL

EXTRAS = ["client_ip", "event", "auth_method", "host"]


def load_sshd(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    res: kinds.FileResult,
    *,
    tz: str,
    progress: kinds.Progress | None,
    year: int | None,
) -> None:
    """Load an sshd log: one ``auth_events`` row per authentication attempt."""
    yr, counts = stage(con, path, year=year, progress=progress)
    syslog_lines = counts.other.pop("syslog", 0)
    sshd_lines = counts.other.pop("sshd", 0)
    if counts.lines and not syslog_lines:
        first = common.sample_lines(path, limit=1)
        shown = first[0][:160] if first else ""
        raise lines.UnreadableFile(
            f"{path}: no line is a syslog line ('Mon dd hh:mm:ss host prog[pid]: …'): "
            f"not an sshd log (first line: {shown!r})"
        )
    by_kind = dict(con.execute("select kind, count(*) from _fmt_stage group by kind").fetchall())
    params = {"absorb": ABSORB_SECONDS}
    kept = db.one(
        con,
        f"select count(*) from ({_EVENTS}) where kind in ('invalid_user', 'pam_failure')",  # noqa: S608
        params,
    )[0]
    rec = kinds.Records(_RECORDS, {"keep": kinds.RAW_KEEP_CHARS, **params}, list(EXTRAS))
    validate.store(con, kinds.AUTH, res, rec, tz)
    res.rows_rejected = res.rows_read - res.rows_loaded
    absorbed = by_kind.get("invalid_user", 0) + by_kind.get("pam_failure", 0) - kept
    counts.add("other programs", syslog_lines - sshd_lines)
    counts.add(
        "sshd, not an attempt (connections, disconnects…)",
        sshd_lines - sum(by_kind.values()),
    )
    counts.add("not syslog", counts.lines - syslog_lines)
    if absorbed:
        res.notes.append(
            f"{absorbed:,} 'Invalid user' / PAM 'authentication failure' lines are the same "
            "attempt as the 'Failed'/'Accepted' line of their sshd process: not counted twice"
        )
    if by_kind.get("repeated"):
        res.notes.append(
            f"'message repeated N times' lines: {by_kind['repeated']:,}, "
            "each counted as N failures"
        )
    note = common.other_note(counts, "auth attempts")
    if note:
        res.notes.append(note)
    if yr is not None:
        res.notes.append(yr.note(path))


def stage(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    *,
    year: int | None,
    progress: kinds.Progress | None = None,
) -> tuple[syslog.Year | None, common.Counts]:
    """Read every auth line of an sshd log into ``_fmt_stage`` (one row per line).

    Returns the year rule used for year-less timestamps (None when every line had its
    year) and the counts of lines: all, ``syslog`` ones and ``sshd`` ones.
    """
    head = lines.sniff(path)
    binary = lines.binary_format(head)
    if binary:
        raise lines.UnreadableFile(f"{path}: is {binary} data, not an sshd log")
    yr = syslog.year_of(path, year)
    con.execute(
        "create or replace temp table _fmt_stage (line bigint, raw varchar, ts varchar, "
        "host varchar, pid varchar, kind varchar, method varchar, "
        "user_id varchar, client_ip varchar, invalid boolean, n integer)"
    )
    counts = common.Counts()
    bsd = False
    for chunk, _last in common.chunks(path):
        counts.lines += common.load_chunk(con, chunk)
        ts, values = syslog.ts_sql("s.mon", "s.day", "s.clock", "s.iso", year=yr)
        values.update(
            {
                "header": syslog.HEADER,
                "header_names": syslog.HEADER_GROUPS,
                "accepted": _ACCEPTED,
                "failed": _FAILED,
                "repeated": _REPEATED,
                "invalid": _INVALID,
                "pam": _PAM,
            }
        )
        sql = _STAGE.format(ts=ts, month=syslog.month_sql("s.mon"))
        con.execute(f"create or replace temp table _fmt_lines as {sql}", values)  # noqa: S608
        con.execute(
            "insert into _fmt_stage by name "
            "select * exclude (mon, is_syslog, is_sshd) from _fmt_lines where kind is not null"
        )
        n_syslog, n_sshd, top = db.one(
            con,
            "select count(*) filter (where is_syslog), "
            "count(*) filter (where is_syslog and is_sshd), max(mon) from _fmt_lines",
        )
        counts.add("syslog", n_syslog)
        counts.add("sshd", n_sshd)
        if top:
            bsd = True
            yr.prev_month = max(yr.prev_month, top)
        if progress:
            progress(f"{path.name}: {chunk.bytes_done / 1e6:,.0f} MB read")
    con.execute("drop table if exists _fmt_lines")
    return (yr if bsd else None), counts


_SSHD_LINE = re.compile(r"\bsshd(?:-session)?(?:\[\d+\])?: ")


def sniff(sample: list[str]) -> str | None:
    """Why the first lines look like an sshd log, or None."""
    hits = sum(bool(_SSHD_LINE.search(s)) for s in sample)
    if hits and hits >= len(sample) / 10:
        return f"{hits} of the first {len(sample)} lines are sshd syslog lines"
    return None


def read(
    con: duckdb.DuckDBPyConnection,
    kind: kinds.Kind,
    path: Path,
    res: kinds.FileResult,
    opts: kinds.ReadOptions,
) -> None:
    """The registry's entry point: :func:`load_sshd` with the load's options."""
    load_sshd(con, path, res, tz=opts.tz, progress=opts.progress, year=opts.year)
