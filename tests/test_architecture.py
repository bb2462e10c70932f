"""The house rules: every module under the import contract, each wing entered by its door
only, one error family that imports nothing of the package, and no module reaching into
another's private names (a name used elsewhere is public, and documented where it lives)."""

from __future__ import annotations

import ast
import json
import tomllib
from pathlib import Path

import pytest

from tools import long_functions

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "analysis"
MODULES = sorted(PACKAGE.rglob("*.py")) + sorted((ROOT / "tools").glob("*.py"))
#: the wings: packages whose ``__init__.py`` is the door
WINGS = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _wing(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "analysis" and parts[1] in WINGS else None


def _door(wing: str) -> set[str]:
    """The names a wing's ``__init__.py`` lists in ``__all__`` (read, not imported)."""
    tree = ast.parse((PACKAGE / wing / "__init__.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            if isinstance(node.value, ast.Call):  # sorted(_DOOR): the keys of that mapping
                return _door_mapping(tree)
            return {ast.literal_eval(e) for e in node.value.elts}
    return set()


def _door_mapping(tree: ast.Module) -> set[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign | ast.Assign) and isinstance(node.value, ast.Dict):
            return {ast.literal_eval(k) for k in node.value.keys}
    return set()


def _crossings(tree: ast.AST, here: str | None) -> list[tuple[int, str]]:
    """Imports of another wing that do not go through its door."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("analysis"):
            target = _wing(node.module)
            names = [a.name for a in node.names]
            if node.module == "analysis":  # from analysis import ingest: the door itself
                continue
            if target is None or target == here:
                continue
            if node.module != f"analysis.{target}":
                found.append((node.lineno, f"from {node.module} import {', '.join(names)}"))
                continue
            inside = [n for n in names if n not in _door(target)]
            if inside:
                found.append((node.lineno, f"from {node.module} import {', '.join(inside)}"))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                target = _wing(alias.name)
                if target is not None and target != here:
                    found.append((node.lineno, f"import {alias.name}"))
    return found


def _notebook_code(path: Path) -> str:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    lines = [
        line
        for c in cells
        if c["cell_type"] == "code" and not "".join(c["source"]).startswith("%%")
        for line in "".join(c["source"]).splitlines()
        if not line.lstrip().startswith(("%", "!"))
    ]
    return "\n".join(lines)


def test_every_module_is_under_the_import_contract():
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in contracts["contracts"] if c["type"] == "layers")["layers"]
    named = {n.strip() for layer in layers for n in layer.replace(":", "|").split("|")}
    on_disk = {
        f"analysis.{p.stem}" if p.is_file() else f"analysis.{p.name}"
        for p in PACKAGE.iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()
    }
    assert on_disk == named


def test_no_module_enters_another_wing_but_by_its_door():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found += [f"{module}:{line}: {text}" for line, text in _crossings(tree, _wing(module))]
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        tree = ast.parse(_notebook_code(path))
        found += [f"{path.name}:{line}: {text}" for line, text in _crossings(tree, None)]
    assert found == []


@pytest.mark.parametrize("wing", WINGS)
def test_a_door_names_only_what_exists(wing):
    import importlib

    door = importlib.import_module(f"analysis.{wing}")
    names = _door(wing)
    assert names, f"analysis/{wing}/__init__.py lists nothing in __all__"
    assert [n for n in sorted(names) if not hasattr(door, n)] == []


def test_the_check_finds_an_import_past_a_door():
    tree = ast.parse(
        "from analysis.ingest.loader import load\n"
        "from analysis.ingest import ts_expr, validate\n"
        "from analysis.figures import Params\n"
    )
    assert [line for line, _ in _crossings(tree, "report")] == [1, 2]
    assert _crossings(tree, "ingest") == []  # its own wing, and a name of the figures' door


def test_errors_import_nothing_of_the_package():
    tree = ast.parse((PACKAGE / "errors.py").read_text(encoding="utf-8"))
    imported = [
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in getattr(node, "names", [])
    ]
    assert [m for m in imported if (m or "").startswith("analysis")] == []


def test_every_error_of_the_package_is_of_the_family():
    from analysis import errors

    classes = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        classes += [
            (path.relative_to(ROOT).as_posix(), n.name)
            for n in ast.walk(tree)
            if isinstance(n, ast.ClassDef) and n.name.endswith(("Error", "Exception"))
        ]
    assert {p for p, _ in classes} == {"analysis/errors.py"}
    for _, name in classes:
        assert issubclass(getattr(errors, name), errors.PostmortemError) or name == (
            "PostmortemError"
        )


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
    tree = ast.parse("from analysis.ingest import validate\nvalidate._store(1)\n")
    modules, _ = _analysis_imports(tree)
    hits = [
        n.attr
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute) and n.attr.startswith("_") and n.value.id in modules
    ]
    assert hits == ["_store"]


def test_no_function_is_longer_than_the_house_allows():
    assert long_functions.problems(long_functions.lengths()) == []


def test_the_length_check_finds_a_long_function_and_a_stale_allowance():
    found = {"analysis.x:long": 81, "analysis.x:short": 80}
    assert long_functions.problems(found, {}) == [
        "analysis.x:long: 81 lines (over 80; cut it at its seams)"
    ]
    assert long_functions.problems(
        found, {"analysis.x:long": "why", "analysis.x:short": "why"}
    ) == ["analysis.x:short: allowed but now 80 lines; take it off the list"]
