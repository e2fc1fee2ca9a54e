"""The floors of ARCHITECTURE.md: a module imports only from its own floor or below."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLOORS = {  # the first matching prefix names a module's floor
    "app.core": 1,
    "app.llm": 2,
    "app.wire": 3,
    "app.rag": 4,
    "app.agent": 4,
    "app.batch": 4,
    "app.api": 5,
    "app.main": 6,
    "app.cli": 6,
    "app.bootstrap": 6,
    "app.finetune": 6,
    "app": 0,  # the package itself: its version only
}


def floor_of(module: str) -> int:
    """The floor of a dotted module name inside `app`."""
    for prefix, floor in FLOORS.items():
        if module == prefix or module.startswith(prefix + "."):
            return floor
    raise AssertionError(f"{module} is on no floor: add it to FLOORS")


def modules() -> list[tuple[str, Path]]:
    """Every module of the app with its dotted name."""
    found = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found.append((".".join(parts), path))
    return found


def imported(path: Path) -> set[str]:
    """The `app` modules a file imports, at any depth (imports inside functions count too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {name for name in names if name == "app" or name.startswith("app.")}


@pytest.mark.parametrize(("module", "path"), modules(), ids=[name for name, _ in modules()])
def test_layers_no_import_from_a_higher_floor(module: str, path: Path) -> None:
    floor = floor_of(module)
    higher = sorted(name for name in imported(path) if floor_of(name) > floor)
    assert not higher, f"{module} (floor {floor}) imports from higher floors: {higher}"


def test_layers_know_every_module() -> None:
    assert all(floor_of(name) >= 0 for name, _ in modules())


def test_layers_catch_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from app.api.deps import ChatDep\n", encoding="utf-8")
    assert {floor_of(name) for name in imported(bad)} == {5}
