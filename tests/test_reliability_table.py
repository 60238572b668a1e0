"""tests/README.md maps every row of the reliability catalogue to tests that exist."""

from __future__ import annotations

import ast
import re

from tests.conftest import ROOT

CATALOGUE = ROOT.parent / "shared" / "design" / "RELIABILITY.md"


def _rows(text: str) -> dict[int, str]:
    return {int(m[1]): m[2] for m in re.finditer(r"^\| (\d+) \|(.*)$", text, flags=re.MULTILINE)}


def _tests_in(path: str) -> set[str]:
    tree = ast.parse((ROOT / "tests" / path).read_text(encoding="utf-8"))
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


def test_every_catalogue_row_names_tests_that_exist():
    table = _rows((ROOT / "tests" / "README.md").read_text(encoding="utf-8"))
    if CATALOGUE.exists():  # ../shared sits beside the checkout here and in CI
        assert set(table) == set(_rows(CATALOGUE.read_text(encoding="utf-8")))
    for row, cells in table.items():
        named = re.findall(r"`(test_\w+\.py)::(test_\w+)`", cells)
        assert named, f"row {row} names no test"
        for path, name in named:
            assert name in _tests_in(path), f"row {row}: {path}::{name} does not exist"
