"""Generate the 2024-01-19 authentication incident of the postmortem as raw logs.

The story is carried only by the rows (error codes, query counts, durations, auth paths),
never by a summary column, so that the analysis has to find it the way it would in real logs.
Everything is vectorised with numpy and pyarrow; Python loops run over retry generations,
statement templates and write chunks, never over rows.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import yaml

log = logging.getLogger(__name__)

DAY = "2024-01-19"


def _ms(hms: str) -> int:
    """Milliseconds since midnight of ``DAY`` for ``HH:MM[:SS[.mmm]]``."""
    h, m, *rest = hms.split(":")
    return round((int(h) * 3600 + int(m) * 60 + float(rest[0] if rest else 0)) * 1000)


# The story's clock (UTC, ms since midnight of DAY).
SPAN_START = _ms("06:00")
SPAN_END = _ms("20:00")
CONFIG_CHANGE = _ms("10:26")  # auth-service deploy turns its permission cache off
FAILURES_START = _ms("10:30")  # first system failure; none before
BYPASS_START = _ms("11:40")  # temporary mitigation: a share of logins skip the database
FIX = _ms("14:40")  # configuration fixed: the permission queries stop
FAILURES_END = _ms("14:45")  # last system failures drain out before this instant
BYPASS_END = _ms("16:10")  # bypass switched off; instances drain for 90 s

TIMELINE: tuple[tuple[str, str, str], ...] = (
    ("10:26", "change", "auth-service config deploy disabled the permission cache"),
    ("10:33", "detection", "Alert: spike in authentication errors"),
    ("10:41", "note", "Investigating the database: connection pool and slow queries"),
    ("11:40", "mitigation", "Temporary bypass of the database check for logins"),
    ("12:15", "escalation", "Escalated to the DevOps and Database teams"),
    ("14:40", "resolution", "auth-service configuration fixed, permission cache re-enabled"),
    ("16:10", "mitigation", "Database bypass for logins removed"),
)

# Volumes at scale 1; every one is multiplied by ``scale``.
USERS = 40_000
BASE_ATTEMPTS = 186_000  # first attempts; retries bring the total to about 200k
BACKGROUND_QUERIES = 780_000  # billing/reporting/search: about 30% of all query rows

# Probabilities and shapes.
AFFECTED_SHARE = 0.30  # of the users active in [FAILURES_START, FAILURES_END)
USER_ERROR_P = 0.0175  # wrong password, at all times
USER_ERROR_AGAIN_P = 0.25  # a retry after a wrong password is often wrong again
RETRY_P = (0.7, 0.85)  # after a user failure, after a system failure
RETRY_DELAY_MS = ((3_000, 12_000), (1_500, 20_000))  # (minimum, exponential mean)
MAX_ATTEMPTS = 6  # per retry chain
RETRY_FAIL_P = 0.5  # a quick retry after a system failure meets the same saturated pool
BYPASS_SHARE = 0.4  # of logins from BYPASS_START to BYPASS_END
PERMISSION_QUERIES = (20, 25)  # extra permission queries per db login, inclusive
TIMEOUT_SHARE = 0.6  # of system failures: db_timeout, the rest db_pool_exhausted
ACTIVITY_SIGMA = 1.1  # lognormal per-user activity: a few users log in very often
REGIONS = ("eu-west", "us-east", "ap-south")
REGION_SHARE = (0.46, 0.36, 0.18)
REGION_FAILURE_WEIGHT = (1.8, 1.0, 0.85)  # eu-west's pool runs out first
INSTANCES_PER_REGION = 4
CLIENTS = ("web", "ios", "android", "api")
CLIENT_SHARE = (0.45, 0.22, 0.20, 0.13)
METHODS = ("password", "sso", "token")
METHOD_SHARE = (0.68, 0.27, 0.05)  # for web and mobile; api clients always use tokens
ERRORS = (None, "invalid_credentials", "db_timeout", "db_pool_exhausted")
PATHS = ("db", "bypass")
OUTCOMES = ("success", "failure")
DB_HOST = "db-primary-1"

# Piecewise-linear profiles over the day: (ms since midnight, value), zero outside the knots.
MINUTE = 60_000
TRAFFIC = ((SPAN_START, 0.25), (_ms("08:00"), 0.5), (_ms("10:00"), 0.85), (_ms("12:30"), 1.0),
           (_ms("15:30"), 0.95), (_ms("17:30"), 0.6), (SPAN_END, 0.3))  # fmt: skip
# The bypass takes 40% of logins off the database, but what is left of the permission-query
# storm still saturates it: db-path logins keep failing almost as often until the fix.
FAILURE_WEIGHT = ((FAILURES_START, 0.6), (FAILURES_START + 3 * MINUTE, 1.0), (BYPASS_START, 1.0),
                  (BYPASS_START + 10 * MINUTE, 0.9), (FIX, 0.9), (FAILURES_END, 0.0))  # fmt: skip
# Median extra wait of every statement in the saturated database's queue.
QUEUE_WAIT_MS = ((CONFIG_CHANGE, 0.0), (CONFIG_CHANGE + MINUTE, 60.0),
                 (CONFIG_CHANGE + 2 * MINUTE, 380.0), (BYPASS_START, 380.0),
                 (BYPASS_START + 10 * MINUTE, 320.0), (FIX, 320.0),
                 (FIX + 2 * MINUTE, 0.0))  # fmt: skip
BYPASS = ((BYPASS_START - 1, 0.0), (BYPASS_START, BYPASS_SHARE), (BYPASS_END, BYPASS_SHARE),
          (BYPASS_END + 90_000, 0.0))  # fmt: skip

# Statement kinds, their caller, median duration (ms), lognormal sigma and template.
# A template alternates constant text and literal slots named after their formatter.
LOOKUP, TOKEN, CREDENTIAL, MEMBERSHIP, PERMISSION, SESSION = range(6)
BILLING_SELECT, BILLING_UPDATE, REPORTING, SEARCH_IDS, SEARCH_TEXT = range(6, 11)
KINDS: dict[int, tuple[str, float, float, tuple[str, ...]]] = {
    LOOKUP: ("auth-service", 0.9, 0.5,
             ("SELECT id, pw_hash FROM users WHERE email = '", "user", "@example.com'")),
    TOKEN: ("auth-service", 0.7, 0.5,
            ("SELECT user_id, expires_at FROM api_tokens WHERE token_hash = '", "hex", "'")),
    CREDENTIAL: ("auth-service", 0.5, 0.5,
                 ("SELECT pw_hash, pw_salt FROM credentials WHERE user_id = ", "int")),
    MEMBERSHIP: ("auth-service", 0.6, 0.5,
                 ("SELECT role FROM memberships WHERE user_id = ", "int")),
    PERMISSION: ("auth-service", 0.4, 0.5,
                 ("SELECT perm FROM permissions WHERE user_id = ", "int",
                  " AND resource = 'r", "int_b", "'")),
    SESSION: ("auth-service", 1.4, 0.5,
              ("INSERT INTO sessions (user_id, token, created_at) VALUES (", "int", ", '", "hex",
               "', now())")),
    BILLING_SELECT: ("billing", 2.0, 0.6,
                     ("SELECT id, amount, status FROM invoices WHERE account_id = ", "int",
                      " AND status = '", "status", "'")),
    BILLING_UPDATE: ("billing", 1.5, 0.5,
                     ("UPDATE invoices SET status = 'paid', paid_at = now() WHERE id = ", "int")),
    REPORTING: ("reporting", 5.0, 0.7,
                ("SELECT region, count(*) AS n FROM orders WHERE created_at >= '2024-01-19 ",
                 "hour", ":00:00' AND status = '", "status", "' GROUP BY region")),
    SEARCH_IDS: ("search", 1.2, 0.5,
                 ("SELECT id, title FROM documents WHERE id IN (", "idlist", ")")),
    SEARCH_TEXT: ("search", 3.0, 0.6,
                  ("SELECT id, title FROM documents WHERE title ILIKE '%", "word", "%' LIMIT 20")),
}  # fmt: skip
BACKGROUND_SHARE = {BILLING_SELECT: 0.25, BILLING_UPDATE: 0.1, REPORTING: 0.2, SEARCH_IDS: 0.3,
                    SEARCH_TEXT: 0.15}  # fmt: skip
STATUSES = ("open", "overdue", "paid", "complete", "pending")
WORDS = ("invoice", "report", "roadmap", "budget", "release", "onboarding", "contract",
         "quarterly", "security", "migration", "pricing", "support")  # fmt: skip

FORMATS = {"jsonl": "jsonl", "csv": "csv", "parquet": "parquet"}
WRITE_CHUNK_ROWS = 1 << 20
# Threads that build chunks. The output does not depend on it; on 2 cores, 2 builders were
# slower than 1 (they compete with the writer and the allocator).
WORKERS = max(1, min(4, (os.cpu_count() or 2) // 2))
ROW_GROUP_ROWS = 1 << 18  # a divisor of WRITE_CHUNK_ROWS, so every row group but the last is full
AUTH_SCHEMA = pa.schema(
    [("ts", pa.string()), ("user_id", pa.string()), ("outcome", pa.string()),
     ("request_id", pa.string()), ("error_code", pa.string()), ("latency_ms", pa.float64()),
     ("auth_path", pa.string()), ("region", pa.string()), ("instance", pa.string()),
     ("client", pa.string()), ("auth_method", pa.string())]
)  # fmt: skip
QUERY_SCHEMA = pa.schema(
    [("ts", pa.string()), ("duration_ms", pa.float64()), ("statement", pa.string()),
     ("request_id", pa.string()), ("caller", pa.string()), ("db_host", pa.string()),
     ("rows", pa.int64())]
)  # fmt: skip

Frame = dict[str, np.ndarray]


def generate(
    out_dir: Path,
    *,
    scale: float = 1.0,
    seed: int = 7,
    fmt: str = "jsonl",
    progress: Callable[[str], None] | None = None,
) -> dict[str, Path]:
    """Write the sample incident (auth events, query log, timeline) into ``out_dir``.

    Parameters
    ----------
    out_dir : Path
        Folder to write into; created if missing.
    scale : float
        Volume multiplier: 1.0 is about 200k auth events and 2.5M query rows.
    seed : int
        Seed of ``numpy.random.default_rng``; the same (scale, seed, fmt) gives
        byte-identical files.
    fmt : str
        ``jsonl``, ``csv`` or ``parquet`` for the two logs (the timeline is always YAML).
    progress : callable, optional
        Called with a short message after each stage.

    Returns
    -------
    dict of str to Path
        ``{"auth": ..., "queries": ..., "timeline": ...}``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {sorted(FORMATS)}, not {fmt!r}")
    if not scale > 0:
        raise ValueError(f"scale must be positive, not {scale!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ext = FORMATS[fmt]
    paths = {
        "auth": out_dir / f"auth_events.{ext}",
        "queries": out_dir / f"db_queries.{ext}",
        "timeline": out_dir / "timeline.yaml",
    }

    started = time.perf_counter()

    def report(message: str) -> None:
        message = f"{message} ({time.perf_counter() - started:.1f}s)"
        log.info(message)
        if progress is not None:
            progress(message)

    rng = np.random.default_rng(seed)
    users = _users(rng, max(10, round(USERS * scale)))
    attempts = _attempts(rng, users, max(10, round(BASE_ATTEMPTS * scale)))
    report(f"simulated {attempts['ts'].size:,} auth attempts of {users['num'].size:,} users")
    queries = _queries(rng, attempts, users, max(1, round(BACKGROUND_QUERIES * scale)))
    report(f"simulated {queries['ts'].size:,} database queries")
    # Drawn last so that they do not shift the simulation's random stream.
    keys = _request_keys(rng)

    _write(
        paths["auth"],
        fmt,
        AUTH_SCHEMA,
        attempts["ts"].size,
        partial(_auth_table, attempts, users, keys),
    )
    report(f"wrote {paths['auth'].name}")
    _write(
        paths["queries"],
        fmt,
        QUERY_SCHEMA,
        queries["ts"].size,
        partial(_query_table, queries, users, keys),
    )
    report(f"wrote {paths['queries'].name}")
    _write_timeline(paths["timeline"])
    report(f"wrote {paths['timeline'].name}")
    return paths


# --- simulation ----------------------------------------------------------------------------


def _profile(knots: tuple[tuple[int, float], ...], ts: np.ndarray) -> np.ndarray:
    """Evaluate a piecewise-linear day profile at ``ts`` (ms), zero outside its knots."""
    xs = np.array([t for t, _ in knots], dtype=np.float64)
    ys = np.array([v for _, v in knots], dtype=np.float64)
    return np.interp(ts, xs, ys, left=0.0, right=0.0)


def _users(rng: np.random.Generator, n: int) -> Frame:
    """Draw the user population: id number, home region and activity weight."""
    return {
        "num": rng.choice(10 ** _id_width(n), size=n, replace=False).astype(np.int64),
        "region": rng.choice(len(REGIONS), size=n, p=REGION_SHARE).astype(np.int8),
        "weight": rng.lognormal(0.0, ACTIVITY_SIGMA, size=n),
    }


def _id_width(n_users: int) -> int:
    """Digits of a user id: ``u0012345`` style, sparse enough that ids look drawn, not counted."""
    return max(7, len(str(n_users * 5)))


def _first_attempts(rng: np.random.Generator, users: Frame, n: int) -> Frame:
    """Spontaneous logins: time from the daily traffic shape, user by activity weight."""
    # Stop short of the span's end so that every attempt's queries fall inside it too.
    grid = np.arange(SPAN_START, SPAN_END - 30_000 + 1, 1000, dtype=np.float64)
    cdf = np.cumsum(_profile(TRAFFIC, grid))
    cdf = (cdf - cdf[0]) / (cdf[-1] - cdf[0])
    ts = np.interp(rng.random(n), cdf, grid).astype(np.int64)
    weight = users["weight"]
    user = rng.choice(weight.size, size=n, p=weight / weight.sum())
    client = rng.choice(len(CLIENTS), size=n, p=CLIENT_SHARE).astype(np.int8)
    method = rng.choice(len(METHODS), size=n, p=METHOD_SHARE).astype(np.int8)
    method[client == CLIENTS.index("api")] = METHODS.index("token")
    return _new_attempts(rng, ts, user, client, method, np.ones(n, np.int8), USER_ERROR_P)


def _new_attempts(
    rng: np.random.Generator,
    ts: np.ndarray,
    user: np.ndarray,
    client: np.ndarray,
    method: np.ndarray,
    attempt_no: np.ndarray,
    user_error_p: float | np.ndarray,
    after_system: np.ndarray | None = None,
) -> Frame:
    """Attempts with the draws that do not depend on the calibrated failure probability."""
    n = ts.size
    return {
        "ts": ts,
        "user": user,
        "client": client,
        "method": method,
        "attempt_no": attempt_no,
        "after_system": np.zeros(n, dtype=bool) if after_system is None else after_system,
        "instance": rng.integers(0, INSTANCES_PER_REGION, size=n, dtype=np.int8),
        "user_fail": rng.random(n) < user_error_p,
        "u_bypass": rng.random(n),
        "u_system": rng.random(n),
    }


def _retries(rng: np.random.Generator, parents: Frame, system: np.ndarray) -> Frame:
    """Retries of failed attempts; ``system`` marks parents that failed for the system."""
    kind = system.astype(np.intp)
    keep = (rng.random(kind.size) < np.take(RETRY_P, kind)) & (
        parents["attempt_no"] < MAX_ATTEMPTS
    )
    delay = np.take([d[0] for d in RETRY_DELAY_MS], kind) + rng.exponential(
        np.take([d[1] for d in RETRY_DELAY_MS], kind)
    )
    ts = parents["ts"] + delay.astype(np.int64)
    # A retry that would fall after the span is not made; margin for its queries' offsets.
    keep &= ts < SPAN_END - 30_000
    p = _take(parents, keep)
    again = np.where(p["user_fail"] & ~system[keep], USER_ERROR_AGAIN_P, USER_ERROR_P)
    return _new_attempts(
        rng,
        ts[keep],
        p["user"],
        p["client"],
        p["method"],
        p["attempt_no"] + 1,
        again,
        system[keep],
    )


def _take(frame: Frame, index: np.ndarray) -> Frame:
    return {k: v[index] for k, v in frame.items()}


def _concat(frames: list[Frame]) -> Frame:
    return {k: np.concatenate([f[k] for f in frames]) for k in frames[0]}


def _decide(frame: Frame, users: Frame, scale_p: float | None) -> np.ndarray:
    """Set ``bypass`` (and ``system_fail`` when ``scale_p`` is known); return the failure ratio.

    An attempt fails for the system when ``u_system < scale_p * weight``; the returned ratio
    ``u_system / weight`` lets the caller choose ``scale_p`` from the rows themselves.
    """
    ts = frame["ts"]
    frame["bypass"] = ~frame["user_fail"] & (frame["u_bypass"] < _profile(BYPASS, ts))
    in_window = (ts >= FAILURES_START) & (ts < FAILURES_END)
    region_w = np.take(REGION_FAILURE_WEIGHT, users["region"][frame["user"]])
    weight = np.where(in_window, _profile(FAILURE_WEIGHT, ts) * region_w, 0.0)
    eligible = ~frame["user_fail"] & ~frame["bypass"] & (weight > 0)
    with np.errstate(divide="ignore"):
        ratio = np.where(eligible, frame["u_system"] / np.where(eligible, weight, 1.0), np.inf)
    if scale_p is not None:
        # Retries after a system failure only exist for users already affected, so making
        # them fail more often raises the error rate without moving the affected share.
        again = frame["after_system"] & eligible & (frame["u_system"] < RETRY_FAIL_P)
        frame["system_fail"] = (ratio < scale_p) | again
    return ratio


def _calibrate(ratio: np.ndarray, frame: Frame, n_users: int) -> float:
    """Scale of the system-failure probability that affects AFFECTED_SHARE of active users.

    A user is affected iff the smallest ratio over their attempts is below the scale, so the
    scale is a quantile of those minima. This keeps the share on target for any seed and
    scale instead of leaving it to sampling noise on a few thousand users.
    """
    ts, user = frame["ts"], frame["user"]
    active = np.zeros(n_users, dtype=bool)
    active[user[(ts >= FAILURES_START) & (ts < FAILURES_END)]] = True
    lowest = np.full(n_users, np.inf)
    np.minimum.at(lowest, user, ratio)
    lowest = np.sort(lowest[active])
    k = round(AFFECTED_SHARE * lowest.size)
    if k == 0:
        return 0.0
    if not np.isfinite(lowest[k - 1]):
        raise ValueError("too few users can fail in the window; raise the scale")
    upper = lowest[k] if k < lowest.size and np.isfinite(lowest[k]) else lowest[k - 1] * 1.01
    return float((lowest[k - 1] + upper) / 2)


def _attempts(rng: np.random.Generator, users: Frame, n_first: int) -> Frame:
    """All login attempts, sorted by time, with their outcome, path and latency."""
    # Whether an attempt is a user error does not depend on the incident, so the chains of
    # retries after wrong passwords are fixed first; the incident's failure probability is
    # then calibrated on them. Retries after system failures only add attempts of users who
    # are already affected (and active), so they cannot move the affected share.
    frames = [_first_attempts(rng, users, n_first)]
    while frames[-1]["ts"].size:
        failed = _take(frames[-1], frames[-1]["user_fail"])
        frames.append(_retries(rng, failed, np.zeros(failed["ts"].size, dtype=bool)))
    calm = _concat(frames)
    scale_p = _calibrate(_decide(calm, users, None), calm, users["num"].size)
    _decide(calm, users, scale_p)
    log.debug("system failure probability scale %.4f", scale_p)

    frames = [calm]
    parents = _take(calm, calm["system_fail"])
    while parents["ts"].size:
        kids = _retries(rng, parents, parents["system_fail"])
        _decide(kids, users, scale_p)
        frames.append(kids)
        parents = _take(kids, kids["user_fail"] | kids["system_fail"])
    att = _concat(frames)
    att = _take(att, np.argsort(att["ts"], kind="stable"))

    n, ts = att["ts"].size, att["ts"]
    error = np.where(att["user_fail"], 1, 0)
    error = np.where(att["system_fail"], np.where(rng.random(n) < TIMEOUT_SHARE, 2, 3), error)
    att["error"] = error.astype(np.int8)
    slow = _profile(QUEUE_WAIT_MS, ts) / max(v for _, v in QUEUE_WAIT_MS)
    latency = rng.lognormal(np.log(38.0), 0.35, n) + slow * rng.lognormal(np.log(1500.0), 0.5, n)
    latency = np.where(att["bypass"], rng.lognormal(np.log(9.0), 0.3, n), latency)
    latency = np.where(error == 2, 5000.0 + rng.exponential(25.0, n), latency)
    latency = np.where(error == 3, 2000.0 + rng.exponential(15.0, n), latency)
    att["latency"] = np.round(latency, 1)
    return att


def _queries(rng: np.random.Generator, att: Frame, users: Frame, n_background: int) -> Frame:
    """Query rows, sorted by time: each db-path login's statements and the background load.

    Columns are kept narrow (int32 times, ids and microsecond durations) because at the
    bench's scale there are over 100 million rows.
    """
    q = _concat([_login_queries(rng, att, users), _background_queries(rng, n_background)])
    q = _take(q, np.argsort(q["ts"], kind="stable"))
    n, k = q["ts"].size, q["kind"]
    median = np.array([KINDS[i][1] for i in range(len(KINDS))])
    sigma = np.array([KINDS[i][2] for i in range(len(KINDS))])
    # A saturated database makes every caller wait in the queue, not only the auth service.
    wait = _profile(QUEUE_WAIT_MS, q["ts"]) * rng.lognormal(0.0, 1.0, n)
    duration = median[k] * np.exp(sigma[k] * rng.standard_normal(n)) + wait
    q["duration_us"] = np.maximum(np.round(duration * 1000), 10).astype(np.int32)
    del wait, duration
    # Drawn only for the rows of each kind: full-length draws would cost seconds at scale.
    rows = np.ones(n, dtype=np.int32)
    draws: dict[int, Callable[[int], np.ndarray]] = {
        MEMBERSHIP: lambda m: rng.integers(1, 4, m),
        PERMISSION: lambda m: rng.random(m) < 0.85,
        BILLING_SELECT: lambda m: rng.poisson(2.0, m),
        REPORTING: lambda m: np.full(m, len(REGIONS)),
        SEARCH_TEXT: lambda m: rng.integers(0, 21, m),
        SEARCH_IDS: lambda m: q["a"][k == SEARCH_IDS],  # one row per listed id
    }
    for kind_id, draw in draws.items():
        mask = k == kind_id
        rows[mask] = draw(int(mask.sum()))
    q["rows"] = rows
    return q


def _login_queries(rng: np.random.Generator, att: Frame, users: Frame) -> Frame:
    """The statements each db-path login issues, in attempt order."""
    method, error, ts = att["method"], att["error"], att["ts"]
    has_cred = (method == METHODS.index("password")).astype(np.int32)
    amplified = (ts >= CONFIG_CHANGE) & (ts < FIX) & ~att["bypass"] & (error != 1)
    lo, hi = PERMISSION_QUERIES
    n_perm = np.where(amplified, rng.integers(lo, hi + 1, ts.size, dtype=np.int32), 0)
    n_full = 3 + has_cred + n_perm  # lookup, [credential], membership, permissions, session
    # A timeout hits somewhere before the session insert; an exhausted pool gives no query.
    n_timeout = 1 + (rng.random(ts.size) * (n_full - 1)).astype(np.int32)
    n_q = np.select(
        [att["bypass"], error == 1, error == 2, error == 3],
        [0, 1 + has_cred, n_timeout, 0],
        n_full,
    ).astype(np.int64)
    owner = np.repeat(np.arange(ts.size, dtype=np.int32), n_q)
    j = (np.arange(owner.size) - np.repeat(np.cumsum(n_q) - n_q, n_q)).astype(np.int32)
    hc, npm = has_cred[owner], n_perm[owner]
    first = np.where(method[owner] == METHODS.index("token"), TOKEN, LOOKUP)
    kind = np.select(
        [j == 0, j < 1 + hc, j == 1 + hc, j < 2 + hc + npm],
        [first, CREDENTIAL, MEMBERSHIP, PERMISSION],
        SESSION,
    ).astype(np.int8)
    del first, npm
    # Statements run one after the other inside the attempt's latency.
    offset = att["latency"][owner] * (j + 0.5) / n_q[owner]
    q_ts = (ts[owner] + offset.astype(np.int64)).astype(np.int32)
    del offset
    # Distinct resources within one login: a random start stepping by a unit modulo 400.
    resource = (rng.integers(0, 400, ts.size)[owner] + 7 * (j - 2 - hc)) % 400 + 1
    return {
        "ts": q_ts,
        "kind": kind,
        "owner": owner,
        "a": users["num"][att["user"][owner]].astype(np.int32),
        "b": np.where(kind == PERMISSION, resource, rng.integers(0, 1 << 62, owner.size)),
    }


def _background_queries(rng: np.random.Generator, n: int) -> Frame:
    """Billing, reporting and search statements at a steady rate, without a request id."""
    kinds = np.array(list(BACKGROUND_SHARE), dtype=np.int8)
    kind = rng.choice(kinds, size=n, p=list(BACKGROUND_SHARE.values()))
    # Sorted here so that the final stable sort meets two nearly ordered runs (much faster).
    ts = np.sort(rng.integers(SPAN_START, SPAN_END, n, dtype=np.int32))
    a = np.select(
        [kind == REPORTING, kind == SEARCH_IDS, kind == SEARCH_TEXT],
        [np.maximum(ts // 3_600_000 - 1, 0), rng.integers(1, 6, n),
         rng.integers(0, len(WORDS), n)],
        rng.integers(1_000, 5_000_000, n),
    )  # fmt: skip
    return {
        "ts": ts,
        "kind": kind,
        "owner": np.full(n, -1, dtype=np.int32),
        "a": a.astype(np.int32),
        "b": rng.integers(0, 1 << 62, n),
    }


# --- formatting ----------------------------------------------------------------------------


def _request_keys(rng: np.random.Generator) -> np.ndarray:
    return np.array([rng.integers(0, 1 << 40), *(rng.integers(0, 1 << 39, 2) * 2 + 1)], np.uint64)


def _request_numbers(index: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Scramble attempt numbers into unique 40-bit ids (a bijection: odd multiply, xorshift)."""
    mask = np.uint64((1 << 40) - 1)
    x = (index.astype(np.uint64) + keys[0]) & mask
    x = (x * keys[1]) & mask
    x ^= x >> np.uint64(19)
    x = (x * keys[2]) & mask
    return x ^ (x >> np.uint64(21))


def _fixed(chars: np.ndarray) -> pa.Array:
    """Fixed-width ASCII rows (an n x w uint8 matrix) as an Arrow string array, zero-copy."""
    n, width = chars.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(chars))


def _digits(values: np.ndarray, width: int, prefix: bytes = b"", base: int = 10) -> np.ndarray:
    """Zero-padded digits of non-negative integers as an n x (len(prefix)+width) matrix."""
    out = np.empty((values.size, len(prefix) + width), dtype=np.uint8)
    out[:, : len(prefix)] = np.frombuffer(prefix, np.uint8)
    table = np.frombuffer(b"0123456789abcdef", np.uint8)
    v = values.astype(np.uint64)
    for pos in range(width - 1, -1, -1):
        out[:, len(prefix) + pos] = table[(v % np.uint64(base)).astype(np.intp)]
        v //= np.uint64(base)
    return out


def _iso(ms: np.ndarray) -> pa.Array:
    """``2024-01-19T10:31:02.123Z`` for ms since midnight of DAY."""
    out = np.empty((ms.size, 24), dtype=np.uint8)
    out[:] = np.frombuffer(f"{DAY}T00:00:00.000Z".encode(), np.uint8)
    for pos, unit, radix in ((11, 36_000_000, 10), (12, 3_600_000, 10), (14, 600_000, 6),
                             (15, 60_000, 10), (17, 10_000, 6), (18, 1_000, 10),
                             (20, 100, 10), (21, 10, 10), (22, 1, 10)):  # fmt: skip
        out[:, pos] += (ms // unit % radix).astype(np.uint8)
    return _fixed(out)


def _labels(labels: tuple[str | None, ...], codes: np.ndarray) -> pa.Array:
    return pa.array(labels, pa.string()).take(pa.array(codes.astype(np.int32)))


def _user_ids(nums: np.ndarray, width: int) -> pa.Array:
    return _fixed(_digits(nums, width, b"u"))


def _request_ids(index: np.ndarray, keys: np.ndarray) -> pa.Array:
    return _fixed(_digits(_request_numbers(index, keys), 10, b"r", 16))


def _literal(slot: str, a: np.ndarray, b: np.ndarray, width: int) -> pa.Array:
    """One literal slot of a statement template for the rows ``a``, ``b``."""
    if slot == "int":
        return pc.cast(pa.array(a), pa.string())
    if slot == "int_b":
        return pc.cast(pa.array(b), pa.string())
    if slot == "user":
        return _user_ids(a, width)
    if slot == "hex":
        return _fixed(_digits(b, 16, base=16))
    if slot == "status":
        return _labels(STATUSES, b % len(STATUSES))
    if slot == "hour":
        return _fixed(_digits(a, 2))
    if slot == "word":
        return _labels(WORDS, a)
    if slot == "idlist":
        # Up to five ids of 12 bits each from b's random bits; a says how many.
        ids = [(b >> (12 * i)) % 4096 + 1 for i in range(5)]
        parts = [pa.array(v, mask=a <= i).cast(pa.string()) for i, v in enumerate(ids)]
        return pc.binary_join_element_wise(*parts, ", ", null_handling="skip")
    raise ValueError(f"unknown literal slot {slot!r}")


def _statements(kind: np.ndarray, a: np.ndarray, b: np.ndarray, width: int) -> pa.Array:
    """Raw SQL text with literals, built per template and put back in row order."""
    order = np.argsort(kind, kind="stable")
    bounds = np.searchsorted(kind[order], np.arange(len(KINDS) + 1))
    parts = []
    for k, (_, _, _, template) in KINDS.items():
        rows = order[bounds[k] : bounds[k + 1]]
        if rows.size:
            pieces = [
                text if i % 2 == 0 else _literal(text, a[rows], b[rows], width)
                for i, text in enumerate(template)
            ]
            parts.append(pc.binary_join_element_wise(*pieces, ""))
    inverse = np.empty_like(order)
    inverse[order] = np.arange(order.size)
    return pa.concat_arrays(parts).take(pa.array(inverse))


def _auth_table(att: Frame, users: Frame, keys: np.ndarray, s: slice) -> pa.Table:
    """Rows ``s`` of the auth events as an Arrow table of AUTH_SCHEMA."""
    width = _id_width(users["num"].size)
    instances = tuple(f"auth-{r}-{i}" for r in REGIONS for i in range(1, INSTANCES_PER_REGION + 1))
    user = att["user"][s]
    region = users["region"][user]
    return pa.Table.from_arrays(
        [
            _iso(att["ts"][s]),
            _user_ids(users["num"][user], width),
            _labels(OUTCOMES, att["error"][s] > 0),
            _request_ids(np.arange(s.start, s.stop), keys),
            _labels(ERRORS, att["error"][s]),
            pa.array(att["latency"][s]),
            _labels(PATHS, att["bypass"][s]),
            _labels(REGIONS, region),
            _labels(instances, region * INSTANCES_PER_REGION + att["instance"][s]),
            _labels(CLIENTS, att["client"][s]),
            _labels(METHODS, att["method"][s]),
        ],
        schema=AUTH_SCHEMA,
    )


def _query_table(q: Frame, users: Frame, keys: np.ndarray, s: slice) -> pa.Table:
    """Rows ``s`` of the query log as an Arrow table of QUERY_SCHEMA."""
    width = _id_width(users["num"].size)
    callers = sorted({c for c, *_ in KINDS.values()})
    caller_of = np.array([callers.index(KINDS[k][0]) for k in range(len(KINDS))])
    owner, kind = q["owner"][s], q["kind"][s]
    request = _request_ids(np.maximum(owner, 0), keys)
    return pa.Table.from_arrays(
        [
            _iso(q["ts"][s]),
            pa.array(q["duration_us"][s] / 1000),  # exact to the microsecond in text
            _statements(kind, q["a"][s], q["b"][s], width),
            pc.if_else(pa.array(owner >= 0), request, pa.scalar(None, pa.string())),
            _labels(tuple(callers), caller_of[kind]),
            _labels((DB_HOST,), np.zeros(kind.size, np.int8)),
            pa.array(q["rows"][s].astype(np.int64)),
        ],
        schema=QUERY_SCHEMA,
    )


# --- writing -------------------------------------------------------------------------------


def _jsonl(table: pa.Table) -> pa.Buffer:
    """JSON Lines text of a table whose strings need no escaping (ours: templates, ids)."""
    pieces: list[pa.Array | str] = []
    sep = "{"
    for i, field in enumerate(table.schema):
        column = table.column(i).combine_chunks()
        sep += f'"{field.name}":'
        if pa.types.is_string(field.type) and column.null_count == 0:
            # The quotes go into the constant separators: one join fewer per column.
            pieces += [sep + '"', column]
            sep = '",'
            continue
        if pa.types.is_string(field.type):
            value = pc.binary_join_element_wise('"', column, '"', "")
        else:
            value = pc.cast(column, pa.string())
        pieces += [sep, pc.coalesce(value, "null") if column.null_count else value]
        sep = ","
    lines = pc.binary_join_element_wise(*pieces, sep[:-1] + "}\n", "")
    offsets = np.frombuffer(lines.buffers()[1], np.int32)
    first, last = offsets[lines.offset], offsets[lines.offset + len(lines)]
    return lines.buffers()[2][first:last]


#: Parquet keeps ``ts`` as an instant (what Spark, Arrow and DuckDB write), so that a reader
#: can skip row groups by their time statistics
PARQUET_TS = pa.timestamp("ms", tz="UTC")


def _timestamped(table: pa.Table) -> pa.Table:
    """``table`` with its ISO-8601 text ``ts`` as a UTC timestamp."""
    i = table.schema.get_field_index("ts")
    return table.set_column(i, "ts", pc.cast(table["ts"], PARQUET_TS))


def _write(
    path: Path, fmt: str, schema: pa.Schema, n_rows: int, make: Callable[[slice], pa.Table]
) -> None:
    """Write ``make(chunk)`` for consecutive chunks of ``n_rows`` rows into one file.

    Chunks are built (and for JSON Lines serialised) on a few threads, since numpy and Arrow
    release the GIL, but written strictly in order: the bytes depend only on the rows.
    """
    chunks = [
        slice(start, min(start + WRITE_CHUNK_ROWS, n_rows))
        for start in range(0, max(n_rows, 1), WRITE_CHUNK_ROWS)
    ]

    def build(chunk: slice) -> pa.Table | pa.Buffer:
        if fmt == "jsonl":
            return _jsonl(make(chunk))
        if fmt == "parquet":
            return _timestamped(make(chunk))
        return make(chunk)

    with ExitStack() as stack:
        if fmt == "jsonl":
            f = stack.enter_context(path.open("wb"))
            sink = f.write
        elif fmt == "csv":
            options = pacsv.WriteOptions(include_header=True, quoting_style="needed")
            writer = stack.enter_context(pacsv.CSVWriter(str(path), schema, write_options=options))
            sink = writer.write_table
        else:
            schema = schema.set(schema.get_field_index("ts"), pa.field("ts", PARQUET_TS))
            writer = stack.enter_context(pq.ParquetWriter(str(path), schema, compression="zstd"))
            sink = partial(writer.write_table, row_group_size=ROW_GROUP_ROWS)
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=WORKERS))
        # A bounded look-ahead keeps memory at a few chunks whatever the scale.
        pending: deque[Future] = deque()
        for chunk in chunks:
            pending.append(pool.submit(build, chunk))
            if len(pending) > WORKERS:
                sink(pending.popleft().result())
        while pending:
            sink(pending.popleft().result())


def _write_timeline(path: Path) -> None:
    events = [{"ts": f"{DAY}T{t}:00Z", "kind": kind, "text": text} for t, kind, text in TIMELINE]
    path.write_text(yaml.safe_dump(events, sort_keys=False), encoding="utf-8")
