"""Hostile or broken files: one line, exit 2, bounded memory, nothing written (issue 15).

Each case writes its bad file for real (an alias bomb, a 59 MB spec, duplicate keys, a
garbage NPZ, a loader that exits...) and runs the CLI in a subprocess whose address space
is capped (``RLIMIT_AS``), so a parser that expands a bomb fails by MemoryError instead
of passing slowly. Every case asserts exit code 2, exactly one ``Error:`` line naming the
problem, no traceback, and no database file. Time is not asserted: `benchmarks/` and the
report of issue 15 carry the figures.
"""

from __future__ import annotations

import contextlib
import os
import resource
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.conftest import ROOT, write_tiny_spec

MEMORY_LIMIT = 1536 * 2**20  # the 1 KB alias bomb took 2.3 GB before it was refused
OK_PARAM = {"type": "float", "low": 1e-4, "high": 1.0, "log": True, "tier": 1, "default": 0.01}
SPACE_FILE = str(ROOT / "search_spaces" / "importance-ranked.yaml")


def _bounded_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def bounded_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``tuner ARGS`` in a subprocess limited to :data:`MEMORY_LIMIT` of address space."""
    env = {k: v for k, v in os.environ.items() if k != "TUNER_STORAGE"}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "tuner", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_bounded_memory,
    )


# --- the bad files ------------------------------------------------------------------------


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """YAML lines (indented for a mapping) whose last key expands to width**levels leaves."""
    lines = [f"    l0: &l0 [{', '.join(['lol'] * width)}]"]
    for n in range(1, levels):
        lines.append(f"    l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def spec_text(space: str = "space:\n  file: " + SPACE_FILE + "\n", extra: str = "") -> str:
    """A small valid spec as text, with its ``space`` section (and more) given as text."""
    return (
        "name: tiny\nmetric: val_accuracy\ndirection: maximize\n"
        "data: {source: digits, max_rows: 600}\ntraining: {max_epochs: 3}\n"
        f"{space}pruner: none\nbudget: {{n_trials: 2}}\n{extra}"
    )


def space_yaml(**params: Any) -> str:
    return yaml.safe_dump({"parameters": params}, sort_keys=False)


def _big_spec(tmp: Path) -> None:
    with (tmp / "tiny.yaml").open("w") as fh:
        fh.write(spec_text())
        line = "# " + "padding " * 12 + "\n"
        fh.write(line * (59 * 2**20 // len(line)))


def _npz(name: str, **arrays: Any) -> Callable[[Path], None]:
    return lambda tmp: np.savez(tmp / name, **arrays)


def _npy(tmp: Path) -> None:
    np.save(tmp / "data.npz.npy", np.zeros((20, 3)))
    (tmp / "data.npz.npy").rename(tmp / "data.npz")


def csv_lines(header: str, rows: list[str]) -> str:
    return header + "\n" + "\n".join(rows) + "\n"


GOOD_ROWS = [f"{i},{i % 3},{i % 2}" for i in range(40)]

LOADERS = """\
import sys

def raises():
    raise RuntimeError("the share is not mounted")

def ragged():
    return [[1.0, 2.0], [3.0]] * 10, [0, 1] * 10

def strings():
    return [["a", "b"]] * 20, [0, 1] * 10

def exits():
    sys.exit(0)
"""


@dataclass(frozen=True)
class Case:
    """A bad input: files to write (the spec is tiny.yaml), CLI arguments, expected words."""

    id: str
    words: tuple[str, ...]
    files: dict[str, str | bytes | Callable[[Path], None]] = field(default_factory=dict)
    spec: dict[str, Any] | None = None  # changes to the tiny spec, when not in `files`
    args: tuple[str, ...] = ("run", "tiny.yaml")


def data(source: str, **more: Any) -> dict[str, Any]:
    return {"data": {"source": source, **more}}


def space_spec() -> dict[str, Any]:
    return {"space": {"file": "space.yaml", "overrides": {}}}


CASES = [
    # --- 13: bombs, giant files, giant ranges -------------------------------------------
    Case(
        "alias-bomb-fixed",
        ("tiny.yaml", "line 10", "alias *l0", "not allowed"),
        files={"tiny.yaml": spec_text(f"space:\n  file: {SPACE_FILE}\n  fixed:\n{alias_bomb()}")},
    ),
    Case(
        "alias-bomb-condition",
        ("space.yaml", "alias", "not allowed"),
        files={
            "tiny.yaml": spec_text("space: {file: space.yaml}\n"),
            "space.yaml": "parameters:\n  bomb:\n"
            + alias_bomb().replace("    l", "    x_l")
            + "  lr: {type: float, low: 0.1, high: 1.0, tier: 1, default: 0.5,"
            " condition: {opt: *l8}}\n",
        },
    ),
    Case("spec-59-mb", ("tiny.yaml", "at most 64 KiB", "right file"), files={"*": _big_spec}),
    Case(
        "space-show-alias",
        ("space.yaml", "alias"),
        files={
            "space.yaml": "parameters:\n  a: &p {type: float, low: 0.1, high: 1.0, tier: 1,"
            " default: 0.5}\n  b: *p\n"
        },
        args=("space", "show", "space.yaml"),
    ),
    Case(
        "tiers-billion",
        ("--tiers", "within 1-4"),
        args=("run", "tiny.yaml", "--tiers", "1-1000000000"),
    ),
    # --- 14: duplicate keys ------------------------------------------------------------------
    Case(
        "duplicate-spec-key",
        ("tiny.yaml", "'direction' appears twice", "lines 3 and 10"),
        files={"tiny.yaml": spec_text(extra="direction: minimize\n")},
    ),
    Case(
        "duplicate-nested-key",
        ("tiny.yaml", "'max_epochs' appears twice", "lines 5 and 5"),
        files={
            "tiny.yaml": spec_text().replace("{max_epochs: 3}", "{max_epochs: 3, max_epochs: 9}")
        },
    ),
    Case(
        "duplicate-space-key",
        ("space.yaml", "'high' appears twice", "lines 5 and 8"),
        files={
            "tiny.yaml": spec_text("space: {file: space.yaml}\n"),
            "space.yaml": "parameters:\n  lr:\n    type: float\n    low: 0.1\n    high: 1.0\n"
            "    tier: 1\n    default: 0.5\n    high: 0.2\n",
        },
        args=("space", "validate", "space.yaml"),
    ),
    # --- 15: internal errors that are bad input ----------------------------------------------
    Case(
        "grid-space-not-mapping",
        ("sampler.options.search_space must map each parameter", "[1, 2]"),
        spec={"sampler": {"name": "grid", "options": {"search_space": [1, 2]}}},
    ),
    Case("seed-too-big", ("seed", "less than or equal to 4294967295"), spec={"seed": 2**32}),
    Case(
        "seed-negative-cli",
        ("seed must be", "0 to 4294967295", "-1"),
        args=("run", "tiny.yaml", "--seed", "-1"),
    ),
    Case(
        "npz-garbage",
        ("data.npz: not a readable .npz file", "numpy.savez"),
        spec=data("npz", path="data.npz"),
        files={"data.npz": b"\x00garbage, not a zip archive" * 40},
    ),
    Case(
        "npz-is-npy",
        ("holds one array, not an .npz",),
        spec=data("npz", path="data.npz"),
        files={"*": _npy},
    ),
    Case(
        "npz-string-y",
        ("target must hold numbers", "integers 0, 1"),
        spec=data("npz", path="data.npz"),
        files={"*": _npz("data.npz", x=np.zeros((20, 3)), y=np.array(["cat", "dog"] * 10))},
    ),
    Case(
        "npz-1d-x",
        ("x has shape (20,)", "one row per sample"),
        spec=data("npz", path="data.npz"),
        files={"*": _npz("data.npz", x=np.zeros(20), y=np.zeros(20))},
    ),
    Case(
        "npz-scalar-x",
        ("x has shape ()", "one row per sample"),
        spec=data("npz", path="data.npz"),
        files={"*": _npz("data.npz", x=np.float64(3.0), y=np.zeros(20))},
    ),
    Case(
        "loader-raises",
        ("loaders:raises raised RuntimeError", "share is not mounted"),
        spec=data("loaders:raises"),
        files={"loaders.py": LOADERS},
    ),
    Case(
        "loader-ragged",
        ("rows differ in length",),
        spec=data("loaders:ragged"),
        files={"loaders.py": LOADERS},
    ),
    Case(
        "loader-strings",
        ("features must be numeric",),
        spec=data("loaders:strings"),
        files={"loaders.py": LOADERS},
    ),
    Case(
        "sqlite-in-memory",
        ("in-memory SQLite", "sqlite:///tuner.db"),
        args=("run", "tiny.yaml", "--storage", "sqlite:///:memory:"),
    ),
    Case(
        "sqlite-read-only-uri",
        ("is read-only", "make it writable"),
        args=("run", "tiny.yaml", "--storage", "sqlite:///file:ro.db?mode=ro&uri=true"),
    ),
    Case("dashboard-port", ("--port", "'notaport'"), args=("dashboard", "--port", "notaport")),
    # --- 16: accepted silently before --------------------------------------------------------
    Case(
        "choices-bool-int",
        ("choices must differ", "0 and false, 1 and true"),
        spec=space_spec(),
        files={
            "space.yaml": space_yaml(
                flag={
                    "type": "categorical",
                    "choices": [0, 1, False, True],
                    "tier": 1,
                    "default": 0,
                }
            )
        },
    ),
    Case(
        "int-default-fraction",
        ("default must be a whole number", "2.5"),
        spec=space_spec(),
        files={
            "space.yaml": space_yaml(
                n={"type": "int", "low": 1, "high": 9, "tier": 1, "default": 2.5}
            )
        },
    ),
    Case(
        "int-default-off-step",
        ("default 4 is not low + a whole number of steps",),
        spec=space_spec(),
        files={
            "space.yaml": space_yaml(
                n={"type": "int", "low": 1, "high": 9, "step": 2, "tier": 1, "default": 4}
            )
        },
    ),
    Case(
        "stored-name-clash",
        ("one_minus_momentum and momentum are both stored as 'one_minus_momentum'",),
        spec=space_spec(),
        files={
            "space.yaml": space_yaml(
                one_minus_momentum={**OK_PARAM, "high": 0.2},
                momentum={**OK_PARAM, "low": 0.8, "high": 0.999, "one_minus": True, "default": 0.9},
            )
        },
    ),
    Case("n-trials-true", ("budget.n_trials", "got true"), spec={"budget": {"n_trials": True}}),
    Case(
        "csv-negative-labels",
        ("class labels must be 0, 1, 2", "-1"),
        spec=data("csv", path="data.csv", target="y", task="classification"),
        files={"data.csv": csv_lines("a,b,y", [f"{i},{i % 3},{i % 2 - 1}" for i in range(40)])},
    ),
    Case(
        "csv-empty-target",
        ("line 4 has no value in the target column 'y'",),
        spec=data("csv", path="data.csv", target="y"),
        files={"data.csv": csv_lines("a,b,y", [*GOOD_ROWS[:2], "2,2,", *GOOD_ROWS[3:]])},
    ),
    Case(
        "loader-exits",
        ("loaders:exits exited", "sys.exit(0)"),
        spec=data("loaders:exits"),
        files={"loaders.py": LOADERS},
    ),
    # --- 6: no feature at all ----------------------------------------------------------------
    Case(
        "csv-target-only",
        ("data.csv: the only column is the target 'y'", "feature column"),
        spec=data("csv", path="data.csv", target="y"),
        files={"data.csv": csv_lines("y", [str(i % 2) for i in range(40)])},
    ),
]


def _write(case: Case, tmp: Path) -> None:
    if case.spec is not None or "tiny.yaml" not in case.files:
        write_tiny_spec(tmp, **(case.spec or {}))
    for name, content in case.files.items():
        if callable(content):
            content(tmp)
        elif isinstance(content, bytes):
            (tmp / name).write_bytes(content)
        else:
            (tmp / name).write_text(content, encoding="utf-8")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_hostile_input_is_refused_in_one_line(case: Case, tmp_path: Path) -> None:
    _write(case, tmp_path)
    args = list(case.args)
    if args[0] == "run" and "--storage" not in args:
        args += ["--storage", f"sqlite:///{tmp_path / 'study.db'}"]

    result = bounded_cli(*args, cwd=tmp_path)

    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr[:2000]
    assert len(lines[0]) < 700, "the error line is not cut to a readable length"
    for word in case.words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"
    assert result.stdout == ""
    assert not list(tmp_path.glob("*.db*")), "a database file was written for a refused run"


def test_an_error_line_quoting_a_huge_value_is_cut(tmp_path: Path) -> None:
    """An unknown key 60,000 characters long (under the size cap) is quoted in one line cut
    to a readable length that says how much was left out (a 25 MB line before)."""
    # An explicit key (`? key`): YAML allows implicit ones up to 1024 characters only.
    (tmp_path / "tiny.yaml").write_text(spec_text(extra=f"? {'k' * 60_000}\n: 1\n"))

    result = bounded_cli("run", "tiny.yaml", "--storage", "sqlite:///study.db", cwd=tmp_path)

    assert result.returncode == 2, result.stderr[:2000]
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: tiny.yaml: kkkk") and line.endswith("more characters)")
    assert len(line) < 700


def test_a_condition_on_many_unknown_values_is_one_short_line(tmp_path: Path) -> None:
    values = [f"v{i}" for i in range(3000)]  # 40 KB written out, no alias
    (tmp_path / "space.yaml").write_text(
        space_yaml(
            opt={"type": "categorical", "choices": ["sgd"], "tier": 1, "default": "sgd"},
            lr={**OK_PARAM, "condition": {"opt": values}},
        )
    )

    result = bounded_cli("space", "validate", "space.yaml", cwd=tmp_path)

    assert result.returncode == 2, result.stderr[:2000]
    [line] = result.stderr.splitlines()
    assert "lr.condition: values ['v0'" in line and "are not choices of 'opt' ['sgd']" in line
    assert len(line) < 300


MAKE_STUDY = """
import sys, optuna
study = optuna.create_study(study_name="tiny", storage="sqlite:///" + sys.argv[1])
study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=0.5))
"""


@pytest.fixture
def read_only_folder(tmp_path: Path):
    """A folder holding a real study database, then made read-only for real: a tmpfs
    remounted read-only (root ignores file modes), or modes for other users."""
    folder = tmp_path / "ro"
    folder.mkdir()
    mounted = os.geteuid() == 0
    if mounted:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(folder)])
        if done.returncode != 0:
            pytest.skip("root cannot mount a tmpfs here, and ignores read-only file modes")
    # In a child process, so that no open handle keeps the mount busy.
    subprocess.run([sys.executable, "-c", MAKE_STUDY, str(folder / "study.db")], check=True)
    if mounted:
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
    else:
        (folder / "study.db").chmod(0o444)
        folder.chmod(0o555)
    try:
        yield folder
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], check=True)
        else:
            folder.chmod(0o755)


@pytest.mark.parametrize(
    ("database", "words"),
    [
        ("study.db", ("the database file", "study.db", "is read-only")),
        ("new.db", ("the folder", "is read-only")),
    ],
    ids=["file", "folder"],
)
def test_a_read_only_database_is_refused_in_one_line(
    database: str, words: tuple[str, ...], read_only_folder: Path, tmp_path: Path
) -> None:
    write_tiny_spec(tmp_path)
    url = f"sqlite:///{read_only_folder / database}"

    result = bounded_cli("run", "tiny.yaml", "--storage", url, "--resume", cwd=tmp_path)

    assert result.returncode == 2, result.stderr[-2000:]
    [line] = result.stderr.splitlines()
    assert "Traceback" not in line
    for word in words:
        assert word in line, line
    with contextlib.closing(
        sqlite3.connect(f"file:{read_only_folder / 'study.db'}?mode=ro", uri=True)
    ) as db:
        assert db.execute("select count(*) from trials").fetchone() == (1,)
