"""The folders follow the flow of a study: no stage imports a later one.

specs -> search -> storage -> trial -> execution -> outcome -> reporting -> api and cli.
Imports inside functions count too: a lazy import of a later stage is the same knot,
only hidden. ``errors``, ``records`` and ``_optuna_compat`` are the shared floor.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "tuner"
FLOOR = {"errors", "records", "_optuna_compat", "__init__"}
STAGES = ["specs", "search", "storage", "trial", "execution", "outcome", "reporting"]
TOP = {"api", "cli", "__main__"}


def _stage(module: str) -> int | None:
    """Rank of a ``tuner.x.y`` module in the flow; None for the shared floor."""
    parts = module.split(".")
    if parts[0] != "tuner" or len(parts) == 1:
        return None
    first = parts[1]
    if first in FLOOR:
        return None
    if first in TOP:
        return len(STAGES)
    return STAGES.index(first)


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            # `from tuner import records` names a module, not an attribute
            if node.module == "tuner":
                found += [(node.lineno, f"tuner.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, name) for line, name in found if name.startswith("tuner")]


def _module_name(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    return ".".join(relative.parts)


def test_every_package_module_sits_in_a_known_stage():
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        parts = name.split(".")
        top_level = len(parts) == 2 and parts[1] in FLOOR | {"api", "__main__"}
        assert top_level or parts[1] in {*STAGES, "api", "cli"}, (
            f"{name}: put it in one of {STAGES} (or the floor: {sorted(FLOOR)})"
        )


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=_module_name)
def test_no_module_imports_a_later_stage(path):
    here = _stage(_module_name(path))
    if here is None:
        # The floor imports no stage at all (tuner/__init__ loads the API lazily by name).
        later = [(line, name) for line, name in _imports(path) if _stage(name) is not None]
        assert not later or (path.name == "__init__.py" and path.parent == PACKAGE), later
        return
    later = [(line, name) for line, name in _imports(path) if (_stage(name) or 0) > here]
    assert not later, f"{_module_name(path)} imports a later stage: {later}"


def test_the_check_sees_a_lazy_import_of_a_later_stage(tmp_path):
    # The rule must catch an import hidden inside a function, as a real one would be.
    module = tmp_path / "probe.py"
    module.write_text("def f():\n    from tuner.execution.run import execute\n")
    assert _imports(module) == [(2, "tuner.execution.run")]
    assert _stage("tuner.execution.run") > _stage("tuner.specs.spec")


def test_no_module_is_over_400_lines():
    long = {
        _module_name(path): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert not long, f"split these modules by idea: {long}"
