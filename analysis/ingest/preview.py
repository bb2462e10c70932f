"""How the first records of a file map, without writing anything.

``postmortem load … --preview N`` reads the head of each input (a JSON document whole) into
a database in memory with exactly the reader and settings a real load would use, and tells,
record by record, whether it is an attempt (with each column's value), skipped (and why:
the definition's attempt rule, a comment line, a line of another program) or rejected (with
the reason the load would store). The incident database is never opened.
"""

from __future__ import annotations

import os
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from analysis import db
from analysis.errors import LoadError
from analysis.ingest import lines, loader
from analysis.ingest.definitions import reader as sources
from analysis.kinds import AUTH, Kind, ReadOptions

#: the head read for N records: lines of other programs may come between them
LINES_PER_RECORD = 20
LEAST_LINES = 2000


@dataclass
class Mapped:
    """One record as a load would take it."""

    line: int
    status: str  # attempt, skipped or rejected
    why: str = ""
    values: dict[str, object] = field(default_factory=dict)


@dataclass
class Preview:
    """The first records of one file, and what read them."""

    path: Path
    reader: str
    chosen_because: str | None
    records: list[Mapped]


def preview(
    path: Path, *, fmt: str = "auto", kind: Kind = AUTH, n: int = 20, **options: object
) -> Preview:
    """The first ``n`` records of ``path`` as a load with ``fmt`` and ``options`` (those of
    :func:`loader.load`) would map them."""
    reader, why = loader.choose_reader(path, fmt, kind)
    definition = reader.definition
    whole = definition is not None and definition.input == "json" and sources.is_document(path)
    given = fmt if fmt and fmt != "auto" else reader.name
    with tempfile.TemporaryDirectory(prefix="postmortem-preview-") as tmp:
        head = path if whole else _head(path, Path(tmp), n)
        con = db.connect(":memory:")
        try:
            flag = "auth_format" if kind is AUTH else "query_format"
            key = "auth" if kind is AUTH else "queries"
            try:
                loader.load(con, **{key: head, flag: given}, **options)  # type: ignore[arg-type]
            except LoadError as exc:  # named after the file the user gave, not the head's copy
                raise LoadError(str(exc).replace(str(head), str(path))) from exc
            skips = {}
            if definition is not None:
                opts = ReadOptions(tz=str(options.get("source_timezone", "UTC")))
                skips = sources.skip_kinds(con, definition, head, opts)
            is_csv = reader.name == "csv" or (definition is not None and definition.input == "csv")
            records = _mapped(con, kind, head, skips, whole=whole, csv=is_csv)
        finally:
            con.close()
    return Preview(path, reader.name, why, records[:n])


def _head(path: Path, folder: Path, n: int) -> Path:
    """The first lines of a file in a file of the same name (and so the same ending)."""
    name = path.name
    for ending in (".gz", ".bz2", ".xz"):
        name = name.removesuffix(ending)
    head = folder / name
    wanted = max(n * LINES_PER_RECORD, LEAST_LINES)
    with head.open("wb") as out:
        for chunk in lines.iter_chunks(path, chunk_bytes=1 << 20):
            for raw in chunk.table.column("raw").to_pylist():
                out.write(raw + b"\n")
                wanted -= 1
                if wanted <= 0:
                    break
            if wanted <= 0:
                break
    # a syslog line has no year: the load takes the file's date, so the copy keeps it
    stat = path.stat()
    os.utime(head, (stat.st_atime, stat.st_mtime))
    return head


def _mapped(
    con, kind: Kind, head: Path, skips: dict[int, str], *, whole: bool, csv: bool
) -> list[Mapped]:
    """Every record of the loaded head, in order: attempts with their values, rejects with
    their reason, and the rest as skipped."""
    cur = con.execute(f"select * exclude (source_id) from {kind.table} order by line")  # noqa: S608 - a fixed name
    names = [d[0] for d in cur.description]
    out = {
        row[0]: Mapped(row[0], "loaded", values=dict(zip(names[1:], row[1:], strict=True)))
        for row in cur.fetchall()
    }
    for line, reason in con.execute("select line, reason from rejects order by line").fetchall():
        out[line] = Mapped(line, "rejected", reason)
    for line, why in skips.items():
        out.setdefault(line, Mapped(line, "skipped", why))
    if not whole:
        for chunk in lines.iter_chunks(head):
            for line, raw in zip(*chunk.table.to_pydict().values(), strict=True):
                if raw.strip():
                    out.setdefault(line, Mapped(line, "skipped", "not a record of this format"))
        if csv and out:
            first = min(out)
            out[first] = Mapped(first, "header", "the CSV header (the column names)")
    return [out[k] for k in sorted(out)]


def describe(p: Preview, *, width: int = 100) -> list[str]:
    """The preview as lines for a terminal: one record, then its values wrapped beneath."""
    chosen = f" ({p.chosen_because})" if p.chosen_because else ""
    out = [f"{p.path}: read as {p.reader}{chosen}; the first {len(p.records)} records:"]
    for r in p.records:
        if r.status != "loaded":
            # a skip kind of one word is the value of the attempt field (an event type)
            why = r.why if " " in r.why else f"not an attempt ({r.why})"
            out.append(f"  {r.line:>6}  {r.status:<9} {why}")
            continue
        shown = "  ".join(
            f"{k}={_text(v)}" for k, v in r.values.items() if v is not None and k != "line"
        )
        out += textwrap.wrap(
            shown,
            width=width,
            initial_indent=f"  {r.line:>6}  attempt   ",
            subsequent_indent=" " * 20,
            break_on_hyphens=False,
        )
    if not p.records:
        out.append("  (no record)")
    return out


def _text(value: object) -> str:
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
