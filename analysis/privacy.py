"""Masking personal data in free text before it is written to a report.

User ids are pseudonymized in SQL (the ``pseudonym`` macro, keyed); this module masks what
turns up inside text: e-mail addresses and IPv4/IPv6 addresses in timeline notes, dimension
values, query fingerprints and the like, as pgbadger's ``--anonymize`` does for literals.
"""

from __future__ import annotations

import os
import re
import secrets

from analysis import config

KEY_ENV = "POSTMORTEM_KEY"

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
# an IPv6 address has at least two colons and hex groups; times like 10:30:00 have no hex
# letters and at most two colons, so they are told apart by requiring a hex letter or '::'
_IPV6 = re.compile(
    r"(?<![0-9A-Fa-f:])(?=[0-9A-Fa-f:]*(?:[A-Fa-f]|::))"
    r"(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![0-9A-Fa-f:])"
)

EMAIL_MASK = "<email>"
IP_MASK = "<ip>"


def mask(text: str | None) -> str | None:
    """``text`` with e-mail and IP addresses replaced by placeholders."""
    if text is None:
        return None
    out = _EMAIL.sub(EMAIL_MASK, str(text))
    out = _IPV4.sub(IP_MASK, out)
    return _IPV6.sub(IP_MASK, out)


def pseudonym_key() -> str:
    """The key of the user pseudonyms: ``$POSTMORTEM_KEY``, else a local key file made once.

    The key never goes into a report; the same key gives the same pseudonyms.
    """
    if os.environ.get(KEY_ENV):
        return os.environ[KEY_ENV]
    path = config.KEY_FILE
    if not path.exists():
        path.write_text(secrets.token_hex(32) + "\n", encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()
