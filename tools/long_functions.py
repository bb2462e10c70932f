"""Functions longer than the house allows: ``python -m tools.long_functions`` lists every
function of ``analysis/`` over :data:`LIMIT` lines and fails when one is not in
:data:`ALLOWED`, or when an entry of :data:`ALLOWED` is no longer that long (the list may only
shrink: a function cut under the limit leaves it). ``make lint`` runs it."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 80

#: ``module:function`` → why it is still longer than the limit
ALLOWED: dict[str, str] = {}


def lengths(root: Path = ROOT / "analysis") -> dict[str, int]:
    """Every function and method of the package, ``module:qualified.name`` → its lines."""
    found: dict[str, int] = {}
    for path in sorted(root.rglob("*.py")):
        module = ".".join(path.relative_to(root.parent).with_suffix("").parts)
        tree = ast.parse(path.read_text(encoding="utf-8"))

        def walk(node: ast.AST, prefix: str, module: str = module) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    name = f"{prefix}{child.name}"
                    found[f"{module}:{name}"] = child.end_lineno - child.lineno + 1
                    walk(child, f"{name}.")
                elif isinstance(child, ast.ClassDef):
                    walk(child, f"{prefix}{child.name}.")

        walk(tree, "")
    return found


def problems(found: dict[str, int], allowed: dict[str, str] = ALLOWED) -> list[str]:
    """What breaks the rule: a long function not allowed, an allowance no longer needed."""
    out = [
        f"{name}: {n} lines (over {LIMIT}; cut it at its seams)"
        for name, n in sorted(found.items())
        if n > LIMIT and name not in allowed
    ]
    out += [
        f"{name}: allowed but now {found.get(name, 0)} lines; take it off the list"
        for name in sorted(allowed)
        if found.get(name, 0) <= LIMIT
    ]
    return out


def main() -> int:
    found = problems(lengths())
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
