"""``module:function`` (data source, model builder) is found from the spec's folder and
the working directory without PYTHONPATH, as pytest and uvicorn find a user's code.

The CLI runs as the installed ``tuner`` console script does: a launcher file whose own
folder, not the working directory, is first on ``sys.path`` (``python -m tuner`` would
put the working directory there and hide the problem).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from tests.conftest import ROOT

DATA = """
import numpy as np
from helpers import noisy  # a sibling module of the user's, imported by their code


def load():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4)).astype("float32")
    return x, noisy(x @ np.array([1.0, -2.0, 0.5, 3.0]), rng)
"""
HELPERS = """
def noisy(y, rng):
    return y + 0.1 * rng.normal(size=y.shape)
"""
MODEL = """
import keras


def build(params, *, input_shape, n_outputs):
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Dense(params["units"], activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(n_outputs)(x))
"""
SPEC = {
    "name": "user-code",
    "metric": "val_loss",
    "direction": "minimize",
    "data": {"source": "mydata:load"},
    "model": {"builder": "mymodel:build"},
    "training": {"max_epochs": 1},
    "space": {"file": "space.yaml"},
    "pruner": "none",
    "budget": {"n_trials": 1},
}
SPACE = {
    "parameters": {
        "learning_rate": {
            "type": "float", "low": 1e-3, "high": 1e-2, "log": True, "tier": 1, "default": 1e-2,
        },
        "units": {"type": "int", "low": 4, "high": 8, "tier": 2, "default": 8},
    }
}  # fmt: skip


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A user's folder: a spec, a space, a data module, a model module and a helper."""
    folder = tmp_path / "project"
    folder.mkdir()
    for name, text in {"mydata.py": DATA, "helpers.py": HELPERS, "mymodel.py": MODEL}.items():
        (folder / name).write_text(text, encoding="utf-8")
    (folder / "spec.yaml").write_text(yaml.safe_dump(SPEC), encoding="utf-8")
    (folder / "space.yaml").write_text(yaml.safe_dump(SPACE), encoding="utf-8")
    return folder


def console_script(tmp_path: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``tuner ARGS`` as the installed console script runs it; PYTHONPATH holds only tuner."""
    launcher = tmp_path / "bin" / "tuner"
    launcher.parent.mkdir(exist_ok=True)
    launcher.write_text("import sys\nfrom tuner.cli import main\nsys.exit(main())\n")
    env = {k: v for k, v in os.environ.items() if k != "TUNER_STORAGE"}
    env["PYTHONPATH"] = str(ROOT)  # tuner itself, as an installed package would be
    return subprocess.run(
        [sys.executable, str(launcher), *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("where", ["the spec's folder", "another folder"])
def test_user_modules_are_found_without_pythonpath(project: Path, tmp_path: Path, where: str):
    cwd = project if where == "the spec's folder" else tmp_path
    url = f"sqlite:///{tmp_path / 'user.db'}"
    done = console_script(tmp_path, "run", str(project / "spec.yaml"), "--storage", url, cwd=cwd)
    assert done.returncode == 0, done.stderr
    [trial] = optuna.load_study(study_name="user-code", storage=url).trials
    assert trial.state.name == "COMPLETE", trial.user_attrs


def test_a_module_in_the_working_directory_is_found_for_a_spec_elsewhere(
    project: Path, tmp_path: Path
):
    # The spec in one folder, the data module in the working directory: --queue-only
    # loads the data (so imports it) before it queues anything.
    code = tmp_path / "code"
    code.mkdir()
    for name in ("mydata.py", "helpers.py", "mymodel.py"):
        (project / name).rename(code / name)
    url = f"sqlite:///{tmp_path / 'user.db'}"
    spec = str(project / "spec.yaml")
    done = console_script(tmp_path, "run", spec, "--storage", url, "--queue-only", cwd=code)
    assert done.returncode == 0, done.stderr
    elsewhere = console_script(tmp_path, "run", spec, "--storage", url, "--queue-only",
                               "--overwrite", cwd=tmp_path)  # fmt: skip
    assert elsewhere.returncode == 2 and len(elsewhere.stderr.splitlines()) == 1
    assert "data.source 'mydata:load' cannot be imported" in elsewhere.stderr
    assert "spec's folder, the working directory" in elsewhere.stderr
