"""A definition's content signature: why a file's first lines look like its source.

JSON records hold the signature's fields (most of the first records, so that one broken
record does not hide the source), a CSV header names them, or a text log's lines match its
pattern.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from typing import Any

from analysis.ingest.definitions.schema import (
    SELECTOR,
    Definition,
    split_decode,
    split_path,
)


def _lookup(obj: Any, path: str) -> Any:
    """A path's value in a small Python object (for the content signature only)."""
    head, decoder, rest = split_decode(path)
    if decoder:
        inner = _lookup(obj, head)
        if decoder != ":json" or not isinstance(inner, str):
            return None
        try:
            return _lookup(json.loads(inner), rest) if rest else inner
        except (ValueError, RecursionError):
            return None
    m = SELECTOR.match(path)
    if m:
        items = _lookup(obj, m["list"])
        if not isinstance(items, list):
            return None
        for it in items:
            if isinstance(it, dict) and str(_lookup(it, m["key"])) == m["value"]:
                return _lookup(it, m["rest"].lstrip(".")) if m["rest"] else it
        return None
    for part in split_path(path):
        key = part[:-2] if part.endswith("[]") else part
        if isinstance(obj, dict) and key in obj:
            obj = obj[key]
        elif isinstance(obj, dict) and path in obj:  # a dotted key written flat
            return obj[path]
        else:
            return None
        if part.endswith("[]"):
            obj = obj[0] if isinstance(obj, list) and obj else None
    return obj


#: a signature pattern recognises a text log when this share of its first lines match it (a
#: server log holds its events among many other lines); the definition's own pattern, which
#: reads the records, when most of them do
SIGNATURE_SHARE = 0.05


def _sniff_text(d: Definition, sample: list[str]) -> str | None:
    """Why a text log looks like ``d``'s, from its first lines, or None."""
    pat = re.compile(d.signature_pattern or d.pattern or "")
    body = [s for s in sample if s.strip() and not s.startswith(tuple(d.skip_lines))]
    hits = sum(bool(pat.search(s)) for s in body)
    least = len(body) * SIGNATURE_SHARE if d.signature_pattern else len(body) // 2
    if body and hits >= max(1, least):
        return f"{hits} of the first {len(body)} lines match its pattern"
    return None


def _sniff_csv(d: Definition, sample: list[str]) -> str | None:
    """Why a CSV file looks like ``d``'s: its header holds every column of a signature set."""
    head = next((s for s in sample if s.strip()), None)
    if head is None:
        return None
    try:
        names = {h.strip() for h in next(csv.reader([head]))}
    except csv.Error:
        return None
    for fields in d.signature_sets:
        if all(f in names for f in fields):
            return f"its CSV header has {', '.join(fields)}"
    return None


def sniffer_for(d: Definition) -> Callable[[list[str]], str | None]:
    """The content signature of a definition: its signature fields in the first records
    (JSON), or its pattern on most of the first lines (text)."""

    def sniff(sample: list[str]) -> str | None:
        if d.input == "text":
            return _sniff_text(d, sample)
        if d.input == "csv":
            return _sniff_csv(d, sample)
        if not d.signature_sets:
            return None
        objs = []
        for s in sample[:20]:
            try:
                objs.append(json.loads(s))
            except (ValueError, RecursionError):
                objs = []
                break
        if objs:
            recs = []
            for o in objs:
                got = None
                for rp in d.records:
                    got = o if rp in ("$", "") else _lookup(o, rp.removesuffix("[]"))
                    if isinstance(got, list):
                        got = got[0] if got else None
                    if got is not None:
                        break
                if got is None:
                    return None
                recs.append((o, got))
            for fields in d.signature_sets:
                # most, not all: one broken record among the first must not hide the source
                have = sum(
                    isinstance(r, dict)
                    and all(_lookup(r, f) is not None or _lookup(o, f) is not None for f in fields)
                    for o, r in recs
                )
                if have * 2 > len(recs):
                    return f"its records have {', '.join(fields)}"
            return None
        # one document over many lines: its keys, as they are written, in the first lines
        text = "\n".join(sample)
        heads = [split_path(r)[0].removesuffix("[]") for r in d.records if r not in ("$",)]
        wrapped = not heads or "$" in d.records or any(f'"{h}"' in text for h in heads)
        if not text.lstrip().startswith(("{", "[")) or not wrapped:
            return None
        for fields in d.signature_sets:
            keys = [split_path(f)[-1].removesuffix("[]") for f in fields]
            if all(f'"{k}"' in text for k in keys):
                return f"a JSON document with {', '.join(keys)}"
        return None

    return sniff
