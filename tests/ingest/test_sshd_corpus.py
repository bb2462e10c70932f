"""The sshd reader line by line against fail2ban's corpus and its ``# failJSON`` annotations.

``../shared/real-logs/fail2ban/sshd`` is fail2ban's own test file for its sshd filter. Its
test (``fail2ban/tests/samplestestcase.py``) reads it so, and :func:`annotations` does the
same: a line ``# failJSON: {…}`` describes the next line; ``# filterOptions: […]`` starts a
block tested under each of the option sets it gives (``mode``: normal, ``ddos``, ``extra``,
``aggressive``), a set whose ``test.condition`` is false for the filter named ``sshd`` being
left out; a ``constraint`` (a Python expression over ``opts`` and ``name``) leaves a line out
of the sets where it is false. ``"match": true`` says that fail2ban reports a failure on that
line in that mode; ``false``, or a line without annotation, that it does not. Times are
local times of fail2ban's test clock (``TZ=CET-01CEST-02``, Europe/Zurich), which also gives a
BSD time its year (the year that puts it before Sun Aug 14 12:00 2005).

fail2ban's *normal* mode reports failed logins: those lines are compared with the lines where
we count a failed attempt. Its ``ddos`` and ``extra`` modes report abuse of the connection
(no identification string, no common cipher, a disconnect before authentication); of the
lines tested only there, we count as attempts exactly those that name a user being
authenticated. Where fail2ban and we differ, the line is listed below with the reason.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from analysis.ingest import loader as load
from tests.conftest import require_shared, write

CORPUS = "fail2ban/sshd"
F2B_ZONE = ZoneInfo("Europe/Zurich")
_DIRECTIVE = re.compile(r"^#+ ?(failJSON|(?:file|filter)Options|addFILE):(.+)$")

#: lines fail2ban's normal mode and we see differently: line -> (fail2ban, ours, why)
DISAGREE = {
    # tcp wrappers (hosts.deny) refused the connection before sshd asked for any credential:
    # no login was attempted
    49: (True, False, "connection refused by tcp wrappers, no authentication"),
    # a connection's PAM failures: fail2ban holds each back until the next line of the
    # connection shows that no success forgave it (gh-2070), then reports it one line later
    # (on the Accepted line of another user); we count each PAM failure of a user that no
    # later attempt line of the same user follows, on its own line
    222: (False, True, "PAM failure, fail2ban waits for the connection's next line"),
    248: (False, True, "PAM failure of root, fail2ban reports it on the next line"),
    252: (True, False, "an Accepted login (known): fail2ban reports the failures before"),
    258: (False, True, "PAM failure of root, fail2ban reports it on the Accepted line"),
    260: (False, True, "PAM failure of root, fail2ban reports it on the Accepted line"),
    262: (True, False, "an Accepted login (known): fail2ban reports the failures before"),
    # a line naming the user and the reason, but no address: fail2ban needs an address to
    # ban and reports the connection's disconnect line that has one; we count the attempt
    # where it is stated, with the address of that later line of the process
    99: (False, True, "account locked: the attempt, address from line 103"),
    103: (True, False, "the disconnect after line 99's attempt"),
    114: (False, True, "account locked: the attempt, address from line 118"),
    118: (True, False, "the disconnect after line 114's attempt"),
    214: (False, True, "account locked: the attempt, address from line 218"),
    218: (True, False, "the disconnect after line 214's attempt"),
    180: (False, True, "too many failures for root: the attempt, address from line 182"),
    182: (True, False, "the connection closing after line 180's attempt"),
    # no address on the line nor on any other line of its process: still a failed login
    185: (False, True, "too many failures for root; fail2ban cannot ban without an address"),
    # publickey failures of a known user: fail2ban holds them back (gh-1263) until the
    # connection ends without success and then reports them on the Disconnecting line; we
    # count each key that was refused, and the Disconnecting line closes those attempts
    169: (False, True, "a refused key of git, no later success"),
    171: (False, True, "a refused key of git, no later success"),
    173: (True, False, "closes the attempts of lines 169 and 171"),
    # the corpus gives two examples one process id and second: one process ends once, so
    # its second closing line is the same end of the same attempts
    198: (True, False, "second disconnect of process 24077 (line 195), same second"),
    208: (True, False, "second 'Too many authentication failures' of process 26713 (line 203)"),
    # the corpus gives this line another host name than the lines of its process (srv, not
    # test): for us another process, whose only line is a disconnect during authentication
    271: (False, True, "process 5672 of host srv: a disconnect of admin while authenticating"),
}

#: lines tested only in fail2ban's ddos/extra modes that we count as attempts: they name the
#: user being authenticated when the connection ended (or, 347, an empty user name)
ATTEMPTS_BEYOND_NORMAL = {308, 311, 313, 347, 407}


def annotations(path: Path) -> list[tuple[int, dict[str, bool], dict, str]]:
    """Each log line of the corpus: (line number, {mode: match}, its failJSON, text)."""
    text = path.read_text(encoding="utf-8").split("\n")
    opt_sets: list[dict] = [{}]
    out = []
    i = 0
    while i < len(text):
        line, i = text[i], i + 1
        m = _DIRECTIVE.match(line)
        if m:
            data = json.loads(m.group(2))
            if m.group(1) == "filterOptions":
                sets = data if isinstance(data, list) else [data]
                opt_sets = [
                    o
                    for o in sets
                    if not o.get("test.condition") or eval(o["test.condition"], {"name": "sshd"})  # noqa: S307 - the corpus' own test expressions
                ]
                continue
            if m.group(1) != "failJSON":
                continue
            fail, number, line, i = data, i + 1, text[i], i + 1
        elif line.startswith("#") or not line.strip():
            continue
        else:
            fail, number = {}, i
        modes = {}
        for opts in opt_sets:
            constraint = fail.get("constraint")
            if constraint and not eval(constraint, {"opts": opts, "name": "sshd"}):  # noqa: S307
                continue
            modes[opts.get("mode", "normal")] = bool(fail.get("match", False))
        out.append((number, modes, fail, line))
    return out


@pytest.fixture
def corpus(con):
    real = require_shared()
    path = real / CORPUS
    fr = load.load(con, auth=path, auth_format="sshd").files[0]
    rows = con.execute(
        "select line, count(*) filter (where outcome = 'failure'), "
        "count(*) filter (where outcome = 'success'), any_value(client_ip), "
        "any_value(user_id), any_value(ts) from auth_events group by line"
    ).fetchall()
    ours = {r[0]: r[1:] for r in rows}
    return fr, annotations(path), ours


def test_normal_mode_failures_line_by_line(corpus):
    _fr, lines, ours = corpus
    disagree = {}
    agree = 0
    for number, modes, fail, text in lines:
        if "normal" not in modes:
            continue
        theirs = modes["normal"]
        failures = ours.get(number, (0,))[0]
        if theirs != (failures > 0):
            disagree[number] = (theirs, failures > 0)
            continue
        agree += 1
        if not theirs:
            continue
        assert failures == 1, (number, text)
        _f, _s, ip, user, ts = ours[number]
        if "host" in fail:
            assert ip == fail["host"], (number, text)
        if "user" in fail:
            assert user == (fail["user"] or None), (number, text)
        want = datetime.fromisoformat(fail["time"])
        if re.match(r"^(<\d+>1 )?\d{4}-", text):
            # a zoned time: fail2ban's local time, back to UTC
            want = want.replace(tzinfo=F2B_ZONE).astimezone(ZoneInfo("UTC")).replace(tzinfo=None)
            assert ts.replace(microsecond=0) == want, (number, text)
        else:
            # a BSD time, read as written; its year is the reader's rule, not fail2ban's
            assert ts.strftime("%m-%d %H:%M:%S") == want.strftime("%m-%d %H:%M:%S"), number
    assert {n: d[:2] for n, d in DISAGREE.items()} == disagree
    assert agree == 82


def test_lines_beyond_normal_mode_are_attempts_only_when_they_name_a_user(corpus):
    _fr, lines, ours = corpus
    beyond = [(n, t) for n, modes, _f, t in lines if "normal" not in modes]
    assert len(beyond) == 51
    counted = {n for n, _t in beyond if ours.get(n, (0,))[0]}
    assert counted == ATTEMPTS_BEYOND_NORMAL
    # the empty user name of line 347 is an attempt without a user
    assert ours[347][3] is None


def test_corpus_counts(corpus):
    fr, lines, ours = corpus
    failures = sum(v[0] for v in ours.values())
    successes = sum(v[1] for v in ours.values())
    assert (failures, successes) == (75, 4)
    # every line is read: attempts, and the rest skipped by kind
    assert fr.rows_read == fr.rows_loaded + fr.rows_rejected + fr.rows_skipped
    assert (fr.rows_loaded, fr.rows_rejected) == (79, 0)
    assert fr.skipped == {
        "not a syslog line": 193,
        "sshd, not an attempt (connections, key exchange, disconnects…)": 66,
        "sshd, the same attempt as another line of its process": 10,
    }
    assert len(lines) == 155


def test_elastic_beats_auth_log(con):
    # grep: 2 'Accepted', 1 'Failed password', 1 'Invalid user' (no other line of its process
    # 3430), 1 'Did not receive identification string' (no authentication), 5 lines of sudo,
    # groupadd and useradd
    real = require_shared()
    fr = load.load(con, auth=real / "elastic-beats/system-auth-test.log", year=2018).files[0]
    assert fr.format == "sshd"  # told by its content
    assert (fr.rows_read, fr.rows_loaded, fr.rows_rejected, fr.rows_skipped) == (10, 4, 0, 6)
    assert fr.skipped == {
        "another program's syslog line": 5,
        "sshd, not an attempt (connections, key exchange, disconnects…)": 1,
    }
    assert con.execute(
        "select line, user_id, outcome, error_code, client_ip from auth_events order by line"
    ).fetchall() == [
        (1, "vagrant", "success", None, "10.0.2.2"),
        (2, "vagrant", "success", None, "192.168.33.1"),
        (3, "test", "failure", "user_not_found", "10.0.2.2"),
        (4, "root", "failure", "invalid_password", "216.160.83.57"),
    ]


RULES = """\
Mar  7 18:53:20 bar sshd[10]: pam_unix(sshd:auth): authentication failure; logname= uid=0 \
euid=0 tty=ssh ruser= rhost=192.0.2.1  user=rda
Mar  7 18:53:21 bar sshd[10]: Accepted password for rda from 192.0.2.1 port 5 ssh2
Mar  7 18:54:00 bar sshd[11]: pam_unix(sshd:auth): authentication failure; logname= uid=0 \
euid=0 tty=ssh ruser=root rhost=192.0.2.2
Mar  7 18:54:01 bar sshd[11]: Accepted password for known from 192.0.2.2 port 5 ssh2
Mar  7 18:55:00 bar sshd[12]: Failed publickey for git from 192.0.2.3 port 6 ssh2: RSA SHA256:x
Mar  7 18:55:00 bar sshd[12]: Accepted publickey for git from 192.0.2.3 port 6 ssh2: ED25519 y
Mar  7 18:56:00 bar sshd[13]: Connection from 192.0.2.4 port 7 on 10.0.0.1 port 22
Mar  7 18:56:03 bar sshd[13]: Disconnecting: Too many authentication failures for root [preauth]
Mar  7 18:57:00 bar sshd[14]: error: maximum authentication attempts exceeded for invalid user \
xxx from 192.0.2.5 port 8 ssh2 [preauth]
Mar  7 18:57:00 bar sshd[14]: Disconnecting invalid user xxx 192.0.2.5 port 8: Too many \
authentication failures [preauth]
Mar  7 18:58:00 sshd[15]: Invalid user  from ::ffff:192.0.2.6 port 9
<38>1 2024-03-07T18:59:00.5Z h2 sshd-session 16 - - Failed password for root from 192.0.2.7 \
port 10 ssh2
Mar  7 19:00:00 bar sshd[17]: [ID 800047 auth.info] Failed keyboard-interactive for \
<invalid username> from 192.0.2.8 port 11 ssh2
Mar  7 19:01:00 bar sshd[18]: User root from 192.0.2.9 not allowed because not listed in AllowUsers
Mar  7 19:02:00 bar sshd[19]: Did not receive identification string from 192.0.2.10
"""


def test_each_attempt_once_by_process_and_user(con, tmp_path):
    f = write(tmp_path / "auth.log", RULES)
    fr = load.load(con, auth=f, auth_format="sshd", year=2024).files[0]
    assert con.execute(
        "select line, ts, user_id, outcome, error_code, client_ip, event from auth_events "
        "order by line"
    ).fetchall() == [
        # a PAM failure of rda, then rda's Accepted: one login
        (2, datetime(2024, 3, 7, 18, 53, 21), "rda", "success", None, "192.0.2.1", "accepted"),
        # a PAM failure of root (the name asked for, ruser=; no user=: unknown to the system)
        # then another user's login: two attempts
        (
            3,
            datetime(2024, 3, 7, 18, 54),
            "root",
            "failure",
            "user_not_found",
            "192.0.2.2",
            "pam_failure",
        ),
        (4, datetime(2024, 3, 7, 18, 54, 1), "known", "success", None, "192.0.2.2", "accepted"),
        # a key offered before the one that worked: one login
        (6, datetime(2024, 3, 7, 18, 55), "git", "success", None, "192.0.2.3", "accepted"),
        # no address on the line: the process's 'Connection from' lends it
        (
            8,
            datetime(2024, 3, 7, 18, 56, 3),
            "root",
            "failure",
            "invalid_credentials",
            "192.0.2.4",
            "too_many",
        ),
        # the Disconnecting line after it closes the same attempts
        (
            9,
            datetime(2024, 3, 7, 18, 57),
            "xxx",
            "failure",
            "user_not_found",
            "192.0.2.5",
            "too_many",
        ),
        # no host name in the header, an empty user name, an IPv4-mapped address
        (
            11,
            datetime(2024, 3, 7, 18, 58),
            None,
            "failure",
            "user_not_found",
            "192.0.2.6",
            "invalid_user",
        ),
        # RFC 5424: its own time and zone, sshd-session
        (
            12,
            datetime(2024, 3, 7, 18, 59, 0, 500000),
            "root",
            "failure",
            "invalid_password",
            "192.0.2.7",
            "failed",
        ),
        # Solaris
        (13, datetime(2024, 3, 7, 19), None, "failure", "user_not_found", "192.0.2.8", "failed"),
        (
            14,
            datetime(2024, 3, 7, 19, 1),
            "root",
            "failure",
            "account_locked",
            "192.0.2.9",
            "not_allowed",
        ),
    ]
    assert (fr.rows_read, fr.rows_loaded, fr.rows_rejected, fr.rows_skipped) == (15, 10, 0, 5)
    assert fr.skipped == {
        "sshd, the same attempt as another line of its process": 3,
        "sshd, not an attempt (connections, key exchange, disconnects…)": 2,
    }
