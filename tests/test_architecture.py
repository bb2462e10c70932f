"""The house rules that a linter of imports cannot see: no module reaches into another's
private names (a name used elsewhere is public, and documented where it lives)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted((ROOT / "analysis").rglob("*.py")) + sorted((ROOT / "tools").glob("*.py"))


def _analysis_imports(tree: ast.Module) -> tuple[set[str], list[tuple[int, str]]]:
    """The local names bound to analysis modules, and private names imported from them."""
    modules: set[str] = set()
    private: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("analysis"):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    private.append((node.lineno, f"from {node.module} import {alias.name}"))
                modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("analysis"):
                    modules.add(alias.asname or alias.name.split(".")[0])
    return modules, private


def test_no_module_uses_a_private_name_of_another():
    found = []
    for path in MODULES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules, private = _analysis_imports(tree)
        found += [f"{path.relative_to(ROOT)}:{line}: {what}" for line, what in private]
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name)
                and node.value.id in modules
            ):
                found.append(
                    f"{path.relative_to(ROOT)}:{node.lineno}: {node.value.id}.{node.attr}"
                )
    assert found == []


def test_the_check_finds_a_private_name_when_there_is_one(tmp_path):
    tree = ast.parse("from analysis import validate\nvalidate._store(1)\n")
    modules, _ = _analysis_imports(tree)
    hits = [
        n.attr
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute) and n.attr.startswith("_") and n.value.id in modules
    ]
    assert hits == ["_store"]
