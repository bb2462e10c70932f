"""Syslog lines: the header regex and the year that BSD-style timestamps leave out.

``Dec 10 06:55:46 host prog[pid]: message`` (RFC 3164, what rsyslog and journald write to
files by default) or ``2024-12-10T06:55:46.123+01:00 host prog[pid]: message`` (RFC 3339
timestamps), and for sshd's reader the looser forms of :data:`LOOSE_HEADER` and RFC 5424
(:data:`RFC5424_HEADER`). The BSD form has no year: it comes from ``year`` when given (the
year of the file's first line; a later month turning back, December to January, adds one) or
else from the file's modification date (months after that date's month are the year before).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

#: groups: 1 BSD month, 2 BSD day, 3 BSD time, 4 RFC 3339 time, 5 host, 6 program,
#: 7 pid, 8 message
HEADER = (
    r"^(?:<\d{1,3}>(?:1 )?)?"
    r"(?:([A-Z][a-z]{2}) +(\d{1,2}) (\d\d:\d\d:\d\d)(?:\.\d+)?"
    r"|(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?))"
    r" (\S+) ([^\s\[:]+)(?:\[(\d+)\])?: ?"
    r"((?s:.*))$"
)
HEADER_GROUPS = ["mon", "day", "clock", "iso", "host", "prog", "pid", "msg"]

#: HEADER, and also what older or smaller syslog daemons write: no host name
#: (``Nov 23 21:50:19 sshd[8148]: …``) or the program in brackets (``[sshd]: …``,
#: ``[sshd] …``). A host name never holds brackets nor ends with a colon, so
#: ``sshd[8148]:`` is never taken for one. Groups: HEADER's, then 8 the bracketed program,
#: 9 the message.
LOOSE_HEADER = (
    r"^(?:<\d{1,3}>(?:1 )?)?"
    r"(?:([A-Z][a-z]{2}) +(\d{1,2}) (\d\d:\d\d:\d\d)(?:\.\d+)?"
    r"|(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?))"
    r" (?:([^\s\[\]]*[^\s\[\]:]) )?"
    r"(?:([^\s\[:]+)(?:\[(\d+)\])?: ?|\[([^\s\[\]:]+)\]:? )"
    r"((?s:.*))$"
)
LOOSE_GROUPS = ["mon", "day", "clock", "iso", "host", "prog", "pid", "bprog", "msg"]

#: RFC 5424 (``<38>1 2019-07-08T17:40:16.954-04:00 host app procid msgid [sd…] msg``):
#: groups 1 time, 2 host, 3 app, 4 procid (``-`` for none), 5 the message after the
#: structured data (``-`` or ``[id k="v"…]`` elements, whose quoted values may hold brackets)
RFC5424_HEADER = (
    r"^<\d{1,3}>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d))"
    r" (\S+) (\S+) (\S+) \S+ "
    r"(?:-|(?:\[(?:[^\]\"\\]|\\.|\"(?:[^\"\\]|\\.)*\")*\])+) ?((?s:.*))$"
)
RFC5424_GROUPS = ["iso", "host", "prog", "pid", "msg"]


@dataclass
class Year:
    """Where a year-less timestamp's year comes from."""

    year: int
    #: True: ``year`` was given (first line's year); False: from the file's date
    given: bool
    #: month of the file's modification date (only when not given)
    month: int = 12
    #: the largest month of the chunks read so far (only when given)
    prev_month: int = 0

    def note(self, path: Path) -> str:
        """What a person should know about the year of the timestamps."""
        if self.given:
            return f"syslog timestamps have no year: {self.year} as given (--year)"
        return (
            f"syslog timestamps have no year: taken from the file's modification date "
            f"({self.year}-{self.month:02d}; later months are {self.year - 1}); "
            "give --year if that is wrong"
        )


def year_of(path: Path, given: int | None) -> Year:
    """The year rule for a file: the given year, or the file's modification date."""
    if given is not None:
        return Year(int(given), True)
    stamp = dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.UTC)
    return Year(stamp.year, False, stamp.month)


def ts_sql(mon: str, day: str, clock: str, iso: str, *, year: Year) -> tuple[str, dict]:
    """SQL for the timestamp text of a syslog line, and its bound values.

    The BSD form becomes ``YYYY-MM-DD HH:MM:SS`` (local time, read in source_timezone);
    an RFC 3339 time is kept as written. The expression holds a window function over
    ``line``; ``$syslog_prev_month`` is the largest month of earlier chunks (0 at first).
    """
    month = f"list_position($syslog_months, {mon})"
    if year.given:
        running = (
            f"greatest($syslog_prev_month, max({month}) over "
            "(order by line rows between unbounded preceding and current row))"
        )
        yr = f"$syslog_year + case when {month} < {running} then 1 else 0 end"
    else:
        yr = f"$syslog_year - case when {month} > $syslog_file_month then 1 else 0 end"
    text = (
        f"case when {iso} <> '' then {iso} when {mon} <> '' then "
        f"printf('%04d-%02d-%02d %s', {yr}, {month}, try_cast({day} as integer), {clock}) end"
    )
    values: dict[str, object] = {"syslog_months": MONTHS, "syslog_year": year.year}
    if year.given:
        values["syslog_prev_month"] = year.prev_month
    else:
        values["syslog_file_month"] = year.month
    return text, values


def month_sql(mon: str) -> str:
    """SQL for the month number (1-12) of a BSD month name; bind ``syslog_months``."""
    return f"list_position($syslog_months, {mon})"
