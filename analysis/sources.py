"""Source definitions: declarative readers for logs we do not know (stub)."""

from __future__ import annotations


def presets() -> list:
    return []
