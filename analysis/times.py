"""Instants and time buckets: how the report reads a time it is given and writes one."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

_BUCKET = re.compile(r"\s*(\d+)\s*(s|sec|second|seconds|m|min|minute|minutes|h|hour|hours)\s*")


#: no time range: the widest instants DuckDB's timestamp holds
ALL_TIME = (datetime(1, 1, 1), datetime(9999, 12, 31))


def bucket_interval(bucket: str) -> str:
    """Turn ``1min``, ``30s``, ``1h`` into a DuckDB interval text (``1 minutes``).

    Raises
    ------
    ValueError
        for anything else.
    """
    m = _BUCKET.fullmatch(bucket or "")
    if not m:
        raise ValueError(f"bucket {bucket!r} is not a duration such as 30s, 1min, 5min or 1h")
    n, unit = int(m.group(1)), m.group(2)[0]
    if n <= 0:
        raise ValueError(f"bucket {bucket!r} must be longer than zero")
    return f"{n} " + {"s": "seconds", "m": "minutes", "h": "hours"}[unit]


def bucket_seconds(bucket: str) -> int:
    """Length of a bucket in seconds."""
    n, unit = bucket_interval(bucket).split()
    return int(n) * {"seconds": 1, "minutes": 60, "hours": 3600}[unit]


def parse_instant(text: str | datetime) -> datetime:
    """An ISO-8601 instant (``Z`` or an offset) as a naive UTC datetime.

    Raises
    ------
    ValueError
        when the text is not an instant with a zone.
    """
    if isinstance(text, datetime):
        value = text
    else:
        try:
            value = datetime.fromisoformat(str(text).strip().replace("z", "Z"))
        except ValueError:
            raise ValueError(
                f"{text!r} is not an ISO-8601 instant such as 2024-01-19T10:30:00Z"
            ) from None
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone; write it with Z or an offset")
    return value.astimezone(UTC).replace(tzinfo=None)


def iso(value: datetime | pd.Timestamp | None) -> str | None:
    """A naive UTC datetime as ``2024-01-19T10:30:00Z`` (milliseconds only when present)."""
    # pandas here, not at the top: ``postmortem load`` never writes an instant, and pandas
    # was half of its start-up (0.28 of 0.53 s of imports)
    import pandas as pd

    if value is None or (isinstance(value, float) and value != value) or pd.isna(value):
        return None
    ts = pd.Timestamp(value)
    if ts.microsecond:
        return ts.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")
