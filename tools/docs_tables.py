"""The documentation's tables that could drift, made from the code's registries: every
format and preset (``analysis.ingest.READERS``) and every report parameter
(``analysis.report.PARAMETERS``). ``python -m tools.docs_tables --write`` puts them between
their markers in ``docs/``; ``tests/test_docs.py`` fails when a page is not current."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def formats_table() -> str:
    """Every format and preset: name, the inputs it holds, the endings ``auto`` takes, what
    it reads."""
    from analysis import ingest

    rows = ["| format | inputs | chosen by `auto` from | reads |", "|---|---|---|---|"]
    for r in ingest.READERS.values():
        endings = ", ".join(f"`{e}`" for e in r.endings) or "its content"
        rows.append(f"| `{r.name}` | {', '.join(r.kinds)} | {endings} | {_cell(r.help)} |")
    rows.append(
        "| `FILE.yaml` | auth | — (named) | a [source definition](definitions.md) of your own |"
    )
    return "\n".join(rows)


def parameters_table() -> str:
    """Every report parameter: its name, its flags, its default and what it means."""
    from analysis import report

    rows = ["| parameter | flag | default | meaning |", "|---|---|---|---|"]
    for p in report.PARAMETERS:
        default = repr(p.default) if p.type is bool else json.dumps(p.default)
        flags = ", ".join(f"`{f}`" for f in p.flags) or "—"
        rows.append(f"| `{p.name}` | {flags} | `{_cell(default)}` | {_cell(p.help)} |")
    return "\n".join(rows)


#: page → marker name → the function that makes what goes between the markers
TABLES = {
    "formats.md": {"formats": formats_table},
    "running.md": {"parameters": parameters_table},
}


def _block(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(<!-- generated: {name} \(python -m tools.docs_tables --write\) -->\n)"
        rf"(.*?)(\n<!-- end generated: {name} -->)",
        re.S,
    )


def current(page: str, text: str) -> str:
    """``text`` of ``page`` with each generated table made anew."""
    for name, make in TABLES[page].items():
        pattern = _block(name)
        if not pattern.search(text):
            raise SystemExit(f"docs/{page}: no markers for the generated table {name!r}")
        text = pattern.sub(lambda m, make=make: m.group(1) + make() + m.group(3), text)
    return text


def main(argv: list[str]) -> int:
    stale = []
    for page in TABLES:
        path = DOCS / page
        text = path.read_text(encoding="utf-8")
        fresh = current(page, text)
        if fresh != text:
            stale.append(page)
            if "--write" in argv:
                path.write_text(fresh, encoding="utf-8")
    for page in stale:
        print(f"docs/{page}: " + ("written" if "--write" in argv else "not current"))
    return 1 if stale and "--write" not in argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
