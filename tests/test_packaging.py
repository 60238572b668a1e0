"""What a user meets first: a light import, a fast --help, and docs that match CI."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT

HEAVY = ("tensorflow", "keras", "plotly", "sklearn", "optuna")


def _modules_loaded_by(code: str) -> set[str]:
    probe = f"{code}\nimport sys; print(' '.join(sys.modules))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True
    ).stdout
    return set(out.split())


def test_import_tuner_loads_no_heavy_library():
    loaded = _modules_loaded_by("import tuner")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_cli_help_loads_no_heavy_library():
    loaded = _modules_loaded_by(
        "from tuner.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    )
    assert "tensorflow" not in loaded and "keras" not in loaded
    assert "optuna" not in loaded and "plotly" not in loaded


def test_help_lists_run_with_its_options(cli):
    result = cli("run", "--help")
    assert result.returncode == 0
    for option in (
        "--storage",
        "--study-name",
        "--n-trials",
        "--timeout",
        "--seed",
        "--tiers",
        "--resume",
        "--overwrite",
    ):
        assert option in result.stdout


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = next(line for line in ci.splitlines() if "pytest" in line and "pip install" in line)
    assert command.strip() in readme


def test_public_api_is_declared_documented_and_loaded_on_first_use():
    import tuner
    from tuner.api import optimize, tune
    from tuner.specs.space import SearchSpace

    assert tuner.tune is tune and tuner.optimize is optimize and tuner.SearchSpace is SearchSpace
    for name in tuner.__all__:
        public = getattr(tuner, name)
        assert public.__doc__, f"tuner.{name} has no docstring"
        if callable(public) and not isinstance(public, type):
            assert "Example:" in public.__doc__, f"tuner.{name}'s docstring shows no example"
    assert len(set(tuner.__all__)) == len(tuner.__all__)
    assert issubclass(tuner.SpecError, ValueError) and issubclass(tuner.SpecError, tuner.TunerError)


def test_type_hints_check_clean(tmp_path):
    # Users type-check their code against tuner's hints (py.typed ships): they must hold.
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "tuner", "--cache-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:]
