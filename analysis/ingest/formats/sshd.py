"""OpenSSH ``sshd`` logs (syslog or ``/var/log/auth.log``): one auth event per attempt.

The header may be BSD syslog (``Dec 10 06:55:46 host sshd[24200]: …``, also without the host
or with ``[sshd]`` in brackets), RFC 3339 times, or RFC 5424 (``<38>1 2019-07-08T17:40:16Z
host sshd 57915 - - …``); the program is ``sshd``, ``sshd-session`` (OpenSSH 9.8+) or another
``sshd…``; Solaris' ``[ID 800047 auth.info]`` before the message is dropped.

Three sorts of lines say that someone tried to log in:

- *attempt lines*, each one attempt: ``Accepted <method> for U from H …`` (success);
  ``Failed <method> for [invalid user] U from H [port P] [ssh2][: …]`` (failure; the host is
  the last ``from`` before the end, so a user name holding ``from 10.0.0.1`` cannot move it);
  ``message repeated N times: [ Failed … ]`` (rsyslog folding N such lines: N failures);
  ``Disconnecting [invalid user] U H port P: Change of username or service not allowed``
  (a request for another user in U's connection, refused: a failure of U's connection).
- *announcing lines*, logged before the attempt line of the same attempt: ``Invalid user U
  from H``, PAM's ``authentication failure; … rhost=H [user=U]`` (the user from ``user=``,
  else ``ruser=``, which sshd sets to the name asked for), ``error: PAM: Authentication
  failure|authentication error|User not known … for [illegal user] U from H [via …]``,
  ``User U [from H] not allowed because …`` and ``ROOT LOGIN REFUSED FROM H``. Each is the
  attempt only when no ``Accepted``/``Failed`` line of its process for the same user (or an
  unknown one) follows within 5 minutes (sshd's LoginGraceTime is 2): old sshd versions and
  some PAM set-ups log nothing else (loghub's Linux log).
- *closing lines*, logged when a connection ends during authentication: ``Disconnecting:
  Too many authentication failures [for U]``, ``error: maximum authentication attempts
  exceeded for U from H``, ``Received disconnect from H: 3: … Auth fail``, ``Connection
  closed|reset by authenticating|invalid user U H port P``, ``Disconnected from
  authenticating user U H port P``. Each is one failed attempt only when it is the first
  auth line of its process in 5 minutes: otherwise the attempts it closes were counted.

``Failed publickey`` for a known user followed by ``Accepted`` for that user in the same
process is a key the client offered before the one that worked (one login, not a failure).
A line without the client's address (``Disconnecting: Too many …``, a locked account) takes
the address from the nearest line of its process within 5 minutes (``Connection from H``,
``Connection closed by H``…); IPv4-mapped addresses (``::ffff:1.2.3.4``) are written as IPv4.
Every other line is skipped and counted by kind (``rows_skipped``): another program's,
sshd's own lines that are no attempt (connections, key exchange, disconnects), announcing
and closing lines of an attempt counted on another line, and lines that are not syslog.

Error codes (``invalid_password``, ``invalid_credentials``, ``user_not_found`` and
``account_locked`` are in the default ``user_error_codes``: a brute-force attack is not a
system failure):

- ``Failed password`` / ``keyboard-interactive``, PAM failures of a known user:
  ``invalid_password``;
- ``Failed`` with another method (publickey, hostbased, none…), closing lines, a change of
  user: ``invalid_credentials``;
- an unknown user (``invalid user``, ``Invalid user``, ``illegal user``, PAM without
  ``user=``, Solaris' ``<invalid username>``): ``user_not_found``;
- refused by the server's rules (``not allowed because …``, ``ROOT LOGIN REFUSED``):
  ``account_locked``.

An attempt without a user name (``Invalid user  from H``, ``<invalid username>``, PAM naming
none) has a null ``user_id``. Columns: ``request_id`` is the sshd process id (one per
connection); ``client_ip``, ``event`` (the kind of line: ``accepted``, ``failed``,
``invalid_user``, ``pam_failure``, ``pam_error``, ``not_allowed``, ``root_refused``,
``too_many``, ``auth_fail``, ``closed_auth``, ``changed_user``), ``auth_method`` and ``host``
(the syslog host name) are extra text columns.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from analysis import db, errors, kinds
from analysis.ingest import lines, validate
from analysis.ingest.formats import common, syslog

#: seconds within which the lines of one attempt are logged by its process
ABSORB_SECONDS = 300

#: kinds of line (``_fmt_stage.kind``) by what they are
ATTEMPT_KINDS = ("accepted", "failed", "repeated", "changed_user")
#: the attempt lines that carry the attempt an announcing line announced (a change of user
#: is another request than the one announced)
CARRYING_KINDS = ("accepted", "failed", "repeated")
ANNOUNCING_KINDS = ("invalid_user", "pam_failure", "pam_error", "not_allowed", "root_refused")
CLOSING_KINDS = ("too_many", "auth_fail", "closed_auth")

# one regex per kind of line; the groups are named where _STAGE extracts them.
# the end of an attempt line: port, protocol, sshd's own ": RSA SHA256:…" details
_END = r"(?: port (\d+))?(?: ssh[12])?(?:: .*)?(?: \[preauth\])?\s*$"
_ACCEPTED = r"^Accepted (\S+) for (.*?) from (\S+)" + _END
_FAILED = r"^Failed (\S+) for (invalid user )?(.*?) from (\S+)" + _END
_REPEATED = (
    r"^message repeated (\d+) times: \[ ?Failed (\S+) for (invalid user )?(.*?) from (\S+)"
    r"(?: port (\d+))?(?: ssh[12])?(?:: [^\]]*)?\s*\]\s*$"
)
_CHANGED = (
    r"^Disconnecting (?:(invalid|authenticating) )?user (.*?) (\S+) port (\d+): "
    r"Change of username or service not allowed"
)
_INVALID = r"^(?:Invalid|Illegal) user (.*?) from (\S+)(?: port (\d+))?\s*$"
# pam_unix(sshd:auth): or sshd(pam_unix)'s bare form; not "PAM 2 more authentication
# failures", which sums up lines already counted
_PAM = r"^(?:\w+\([^)]*\): )?authentication failure;.*\brhost=(\S*)(?:\s+user=(\S+))?"
_PAM_RUSER = r"\bruser=(\S+)"
_PAM_ERROR = (
    r"^error: PAM: (?:[Aa]uthentication (?:failure|error)"
    r"|(User not known to the underlying authentication module))"
    r" for (illegal user )?(.*?) from (\S+?)(?: via \S+)?\s*$"
)
_NOT_ALLOWED = r"^User (.*?) (?:from (\S+) )?not allowed because .*$"
_ROOT_REFUSED = r"^ROOT LOGIN REFUSED FROM (\S+?)(?: port (\d+))?(?: \[preauth\])?\s*$"
_TOO_MANY = (
    r"^(?:Disconnecting: Too many authentication failures(?: for (invalid user )?(.*?))?"
    r"|Disconnecting (invalid |authenticating )?user (.*?) (\S+) port (\d+): "
    r"Too many authentication failures)(?: \[preauth\])?\s*$"
)
_MAX_TRIES = (
    r"^error: maximum authentication attempts exceeded for (invalid user )?(.*?) "
    r"from (\S+) port (\d+) ssh2(?: \[preauth\])?\s*$"
)
_AUTH_FAIL = (
    r"^(?:error: )?Received disconnect from (\S+?)(?: port (\d+))?: ?3: .*\bAuth fail"
    r"(?: \[preauth\])?\s*$"
)
_CLOSED_AUTH = (
    r"^(?:Connection (?:closed|reset) by|Disconnected from) (authenticating|invalid) user "
    r"(.*?) (\S+) port (\d+)(?: \[preauth\])?\s*$"
)
# the client's address on any other sshd line (Connection from H, Connection closed by H,
# Received disconnect from H…), for the lines of its process that name none
_ANY_ADDR = (
    r"^(?:Connection from|Connection (?:closed|reset) by|(?:error: )?Received disconnect from"
    r"|Disconnected from|Did not receive identification string from) "
    r"((?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]*:[0-9A-Fa-f:.]*[0-9A-Fa-f])\b"
)
_SOLARIS_ID = r"^\[ID \d+ [\w.]+\] "

_STAGE = r"""
    with h as (
        select line, txt, regexp_extract(txt, $header, $header_names) as b,
               regexp_extract(txt, $rfc5424, $rfc5424_names) as r
        from _fmt_src
    ), parts as (
        select line, txt,
               r.iso <> '' as is_5424,
               b.mon, b.day, b.clock, coalesce(nullif(r.iso, ''), b.iso) as iso,
               coalesce(nullif(r.host, ''), nullif(b.host, '')) as host,
               coalesce(nullif(r.prog, ''), nullif(b.prog, ''), nullif(b.bprog, '')) as prog,
               coalesce(nullif(nullif(r.pid, ''), '-'), nullif(b.pid, '')) as pid,
               regexp_replace(case when r.iso <> '' then r.msg else b.msg end, $solaris, '')
                   as msg
        from h
    ), marked as (
        select * exclude (msg), prog is not null as is_syslog,
               starts_with(prog, 'sshd') as is_sshd,
               -- the message patterns are tried on sshd's lines only
               case when starts_with(prog, 'sshd') then msg end as msg
        from parts
    ), sshd as (
        select line, txt, is_syslog, is_sshd, host, pid, {ts} as ts, {month} as mon_n,
               regexp_extract(msg, $accepted, ['method', 'user', 'ip', 'port']) as a,
               regexp_extract(msg, $failed, ['method', 'invalid', 'user', 'ip', 'port']) as f,
               regexp_extract(msg, $repeated,
                              ['n', 'method', 'invalid', 'user', 'ip', 'port']) as r,
               regexp_extract(msg, $changed, ['invalid', 'user', 'ip', 'port']) as c,
               regexp_extract(msg, $invalid, ['user', 'ip', 'port']) as i,
               regexp_extract(msg, $pam, ['ip', 'user']) as p,
               nullif(regexp_extract(msg, $pam_ruser, 1), '') as p_ruser,
               regexp_matches(msg, $pam) as pam_line,
               regexp_extract(msg, $pam_error, ['unknown', 'illegal', 'user', 'ip']) as e,
               regexp_matches(msg, $not_allowed) as na_line,
               regexp_extract(msg, $not_allowed, ['user', 'ip']) as na,
               regexp_extract(msg, $root_refused, ['ip', 'port']) as rr,
               regexp_matches(msg, $too_many) as tm_line,
               regexp_extract(msg, $too_many,
                              ['invalid', 'user', 'invalid2', 'user2', 'ip', 'port']) as tm,
               regexp_extract(msg, $max_tries, ['invalid', 'user', 'ip', 'port']) as mt,
               regexp_extract(msg, $auth_fail, ['ip', 'port']) as af,
               regexp_extract(msg, $closed_auth, ['which', 'user', 'ip', 'port']) as ca,
               nullif(regexp_extract(msg, $any_addr, 1), '') as any_ip
        from marked
    ), classed as (
        select *,
               case when not is_sshd then null
                    when a.method <> '' then 'accepted'
                    when f.method <> '' then 'failed'
                    when r.n <> '' then 'repeated'
                    when c.ip <> '' then 'changed_user'
                    when i.ip <> '' then 'invalid_user'
                    when pam_line then 'pam_failure'
                    when e.ip <> '' then 'pam_error'
                    when na_line then 'not_allowed'
                    when rr.ip <> '' then 'root_refused'
                    when tm_line or mt.ip <> '' then 'too_many'
                    when af.ip <> '' then 'auth_fail'
                    when ca.ip <> '' then 'closed_auth'
               end as kind
        from sshd
    ), final as (
        select line, txt as raw, ts, mon_n as mon, is_syslog, is_sshd, host, pid, kind,
               coalesce(nullif(a.method, ''), nullif(f.method, ''), nullif(r.method, ''))
                   as method,
               case kind when 'accepted' then a.user when 'failed' then f.user
                    when 'repeated' then r.user when 'changed_user' then c.user
                    when 'invalid_user' then i.user
                    when 'pam_failure' then coalesce(nullif(p.user, ''), p_ruser)
                    when 'pam_error' then e.user when 'not_allowed' then na.user
                    when 'root_refused' then 'root'
                    when 'too_many' then coalesce(nullif(tm.user, ''), nullif(tm.user2, ''),
                                                  mt.user)
                    when 'closed_auth' then ca.user end as user_name,
               case kind when 'accepted' then a.ip when 'failed' then f.ip
                    when 'repeated' then r.ip when 'changed_user' then c.ip
                    when 'invalid_user' then i.ip when 'pam_failure' then p.ip
                    when 'pam_error' then e.ip when 'not_allowed' then na.ip
                    when 'root_refused' then rr.ip
                    when 'too_many' then coalesce(nullif(tm.ip, ''), mt.ip)
                    when 'auth_fail' then af.ip when 'closed_auth' then ca.ip end as ip_text,
               case kind when 'failed' then f.invalid <> '' or f.user = '<invalid username>'
                    when 'repeated' then r.invalid <> ''
                    when 'changed_user' then c.invalid = 'invalid'
                    when 'invalid_user' then true
                    when 'pam_failure' then nullif(p.user, '') is null
                    when 'pam_error' then e.unknown <> '' or e.illegal <> ''
                    when 'too_many' then tm.invalid <> '' or tm.invalid2 = 'invalid '
                                         or mt.invalid <> ''
                    when 'closed_auth' then ca.which = 'invalid'
                    else false end as invalid,
               case when kind = 'repeated' then r.n::integer else 1 end as n,
               any_ip
        from classed
    )
    select *,
           case when user_name = '<invalid username>' then null
                else nullif(user_name, '') end as user_id,
           regexp_replace(coalesce(nullif(ip_text, ''), any_ip),
                          '^::ffff:(\d+\.\d+\.\d+\.\d+)$', '\1') as client_ip
    from final
"""

_KEPT = rf"""
    case
        when kind in {ATTEMPT_KINDS!r} then not (
            kind = 'failed' and method = 'publickey' and not invalid and user_id is not null
            and coalesce(next_ok_same - t <= to_seconds($absorb), false))
        when kind in {ANNOUNCING_KINDS!r} then pid is null or coalesce(
            case when user_id is null then next_any else least(next_same, next_anon) end
            - t > to_seconds($absorb), true)
        when kind in {CLOSING_KINDS!r} then pid is null
            or coalesce(t - prev_auth > to_seconds($absorb), true)
        else false
    end
"""

# every auth line of the file with whether it is counted (see the module's docstring);
# lines of other kinds only lend their address to the lines of their process
_EVENTS = rf"""
    with s as (
        select *, try_cast(ts as timestamptz) as t from _fmt_stage
    ), addressed as (
        select * exclude (client_ip, seen_ip),
               coalesce(client_ip, case when pid is not null then coalesce(
                   last_value(seen_ip ignore nulls) over (
                       partition by host, pid order by t
                       range between interval {ABSORB_SECONDS} seconds preceding
                       and current row),
                   first_value(seen_ip ignore nulls) over (
                       partition by host, pid order by t
                       range between current row
                       and interval {ABSORB_SECONDS} seconds following)) end) as client_ip
        from s
    ), auth as (
        select * from addressed where kind is not null
    ), w as (
        select *,
               min(case when kind in {CARRYING_KINDS!r} then t end) over (
                   partition by host, pid order by line
                   rows between 1 following and unbounded following) as next_any,
               min(case when kind in {CARRYING_KINDS!r} and user_id is null then t end) over (
                   partition by host, pid order by line
                   rows between 1 following and unbounded following) as next_anon,
               min(case when kind in {CARRYING_KINDS!r} then t end) over (
                   partition by host, pid, user_id order by line
                   rows between 1 following and unbounded following) as next_same,
               min(case when kind = 'accepted' then t end) over (
                   partition by host, pid, user_id order by line
                   rows between 1 following and unbounded following) as next_ok_same,
               max(t) over (
                   partition by host, pid order by line
                   rows between unbounded preceding and 1 preceding) as prev_auth
        from auth
    ), final as (
        select *, {_KEPT} as kept from w
    )
    select * from final
"""  # noqa: S608 - fixed SQL

_RECORDS = rf"""
    with events as (
        select * from ({_EVENTS}) where kept
    ), repeated as (
        select *, unnest(range(n)) as copy from events
    )
    select line, left(raw, $keep) as raw, null::varchar as pre_reason,
           ts as f_ts,
           user_id as f_user_id,
           case when kind = 'accepted' then 'success' else 'failure' end as f_outcome,
           pid as f_request_id,
           case when kind = 'accepted' then null
                when kind in ('not_allowed', 'root_refused') then 'account_locked'
                when invalid then 'user_not_found'
                when kind in ('pam_failure', 'pam_error') then 'invalid_password'
                when kind in ('failed', 'repeated') and method in (
                    'password', 'keyboard-interactive/pam', 'keyboard-interactive')
                    then 'invalid_password'
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

#: how the skipped lines of a file are counted (``FileResult.skipped``)
SKIP_OTHER_PROGRAMS = "another program's syslog line"
SKIP_NOT_ATTEMPT = "sshd, not an attempt (connections, key exchange, disconnects…)"
SKIP_SAME_ATTEMPT = "sshd, the same attempt as another line of its process"
SKIP_NOT_SYSLOG = "not a syslog line"


def load_sshd(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    res: kinds.FileResult,
    *,
    tz: str,
    progress: kinds.Progress | None,
    year: int | None,
) -> None:
    """Load an sshd log: one ``auth_events`` row per authentication attempt.

    Every line that is no attempt is counted in ``res.skipped`` by kind, and
    ``rows_read = rows_loaded + rows_rejected + rows_skipped``.
    """
    yr, counts = stage(con, path, year=year, progress=progress)
    syslog_lines = counts.other.pop("syslog", 0)
    sshd_lines = counts.other.pop("sshd", 0)
    if counts.lines and not syslog_lines:
        first = lines.first_lines(path, limit=1)
        shown = first[0][:160] if first else ""
        raise errors.UnreadableFile(
            f"{path}: no line is a syslog line ('Mon dd hh:mm:ss host prog[pid]: …'): "
            f"not an sshd log (first line: {shown!r})"
        )
    params = {"absorb": ABSORB_SECONDS}
    auth_lines, kept_lines, repeated = db.one(
        con,
        f"select count(*), count(*) filter (where kept), "  # noqa: S608 - fixed SQL
        f"count(*) filter (where kept and kind = 'repeated') from ({_EVENTS})",
        params,
    )
    rec = kinds.Records(_RECORDS, {"keep": kinds.RAW_KEEP_CHARS, **params}, list(EXTRAS))
    validate.store(con, kinds.AUTH, res, rec, tz)
    res.rows_rejected = res.rows_read - res.rows_loaded
    skipped = {
        SKIP_OTHER_PROGRAMS: syslog_lines - sshd_lines,
        SKIP_NOT_ATTEMPT: sshd_lines - auth_lines,
        SKIP_SAME_ATTEMPT: auth_lines - kept_lines,
        SKIP_NOT_SYSLOG: counts.lines - syslog_lines,
    }
    res.skipped = {k: n for k, n in skipped.items() if n}
    res.rows_skipped = sum(res.skipped.values())
    res.rows_read += res.rows_skipped
    if skipped[SKIP_SAME_ATTEMPT]:
        res.notes.append(
            f"{skipped[SKIP_SAME_ATTEMPT]:,} 'Invalid user' / PAM / closing lines are the same "
            "attempt as another line of their sshd process: not counted twice"
        )
    if repeated:
        res.notes.append(
            f"'message repeated N times' lines: {repeated:,}, each counted as N failures"
        )
    if res.rows_skipped:
        parts = sorted(res.skipped.items(), key=lambda kv: (-kv[1], kv[0]))
        detail = ", ".join(f"{k}: {n:,}" for k, n in parts)
        res.notes.append(f"{res.rows_skipped:,} lines skipped, not auth attempts ({detail})")
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

    Lines of the other kinds that name the client's address are kept too, with a null
    ``kind``, to lend it to the lines of their process. Returns the year rule used for
    year-less timestamps (None when every line had its year) and the counts of lines: all,
    ``syslog`` ones and ``sshd`` ones.
    """
    lines.refuse_binary(path, "an sshd log")
    yr = syslog.year_of(path, year)
    con.execute(
        "create or replace temp table _fmt_stage (line bigint, raw varchar, ts varchar, "
        "host varchar, pid varchar, kind varchar, method varchar, "
        "user_id varchar, client_ip varchar, seen_ip varchar, invalid boolean, n integer)"
    )
    counts = common.Counts()
    bsd = False
    for chunk, _last in common.chunks(path):
        counts.lines += common.load_chunk(con, chunk)
        con.execute(_JOURNAL_AS_SYSLOG)
        ts, values = syslog.ts_sql("mon", "day", "clock", "iso", year=yr)
        values.update(
            {
                "header": syslog.LOOSE_HEADER,
                "header_names": syslog.LOOSE_GROUPS,
                "rfc5424": syslog.RFC5424_HEADER,
                "rfc5424_names": syslog.RFC5424_GROUPS,
                "solaris": _SOLARIS_ID,
                "accepted": _ACCEPTED,
                "failed": _FAILED,
                "repeated": _REPEATED,
                "changed": _CHANGED,
                "invalid": _INVALID,
                "pam": _PAM,
                "pam_ruser": _PAM_RUSER,
                "pam_error": _PAM_ERROR,
                "not_allowed": _NOT_ALLOWED,
                "root_refused": _ROOT_REFUSED,
                "too_many": _TOO_MANY,
                "max_tries": _MAX_TRIES,
                "auth_fail": _AUTH_FAIL,
                "closed_auth": _CLOSED_AUTH,
                "any_addr": _ANY_ADDR,
            }
        )
        sql = _STAGE.format(ts=ts, month=syslog.month_sql("mon"))
        con.execute(f"create or replace temp table _fmt_lines as {sql}", values)  # noqa: S608
        con.execute(
            "insert into _fmt_stage by name "
            "select line, raw, ts, host, pid, kind, method, user_id, client_ip, "
            "client_ip as seen_ip, invalid, n from _fmt_lines "
            "where kind is not null or (is_sshd and client_ip is not null)"
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


#: a journal entry of ``journalctl -o json`` (systemd's JSON export format: one object a line,
#: ``__REALTIME_TIMESTAMP`` in microseconds since the epoch, ``SYSLOG_IDENTIFIER``,
#: ``_PID``/``SYSLOG_PID``, ``_HOSTNAME``, ``MESSAGE``) as the RFC 3339 syslog line it stands
#: for, so that the lines of the journal and of a syslog file are read by one rule. A
#: ``MESSAGE`` that was not UTF-8 is exported as an array of bytes: it matches no attempt.
_JOURNAL_AS_SYSLOG = r"""
    update _fmt_src set txt =
        strftime(make_timestamp(cast(json_extract_string(txt, '$.__REALTIME_TIMESTAMP')
                                     as bigint)), '%Y-%m-%dT%H:%M:%S.%f') || '+00:00 '
        || coalesce(nullif(json_extract_string(txt, '$._HOSTNAME'), ''), '-') || ' '
        || coalesce(json_extract_string(txt, '$.SYSLOG_IDENTIFIER'),
                    json_extract_string(txt, '$._COMM'), '-')
        || coalesce('[' || coalesce(json_extract_string(txt, '$.SYSLOG_PID'),
                                    json_extract_string(txt, '$._PID')) || ']', '')
        || ': ' || coalesce(json_extract_string(txt, '$.MESSAGE'), '')
    where starts_with(ltrim(txt), '{') and json_valid(txt)
      and try_cast(json_extract_string(txt, '$.__REALTIME_TIMESTAMP') as bigint) is not null
"""
_JOURNAL_SSHD = re.compile(r'"(?:SYSLOG_IDENTIFIER|_COMM)"\s*:\s*"sshd')

# any program whose name starts with sshd, as the reader takes them: sshd, sshd-session,
# sshd-auth, and old PAM's sshd(pam_unix)
_SSHD_LINE = re.compile(r"\bsshd[^\s\[:]*(?:\[\d+\])?: |^<\d+>1 \S+ \S+ sshd\S* ")


def sniff(sample: list[str]) -> str | None:
    """Why the first lines look like an sshd log, or None."""
    hits = sum(
        bool(_SSHD_LINE.search(s))
        or (s.lstrip().startswith("{") and bool(_JOURNAL_SSHD.search(s)))
        for s in sample
    )
    if hits and hits >= len(sample) / 10:
        return f"{hits} of the first {len(sample)} lines are sshd syslog lines"
    return None
