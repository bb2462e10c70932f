"""Check that committed notebooks carry no outputs and exactly one ``parameters`` cell."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat


def problems(path: Path) -> list[str]:
    """What is wrong with a notebook as committed (empty when it is clean)."""
    nb = nbformat.read(path, as_version=4)
    out = []
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        out.append(f"{path}: {len(tagged)} cells tagged 'parameters', want exactly 1")
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count")):
            out.append(f"{path}: cell {i} has outputs; strip them (nbstripout)")
    return out


def main(argv: list[str]) -> int:
    """Exit 1 and name the notebooks that are not clean."""
    found = [p for arg in argv for p in problems(Path(arg))]
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
