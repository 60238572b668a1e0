"""A trial's fault stays in the trial; a broken setup trips the circuit breaker.

RELIABILITY rows 1-3 and 19, provoked for real through `tuner run` in a subprocess: a
user builder that raises for some parameters, a model whose validation loss is
infinite, SGD with a learning rate of 10, and a builder that always raises.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import optuna
import pytest
import yaml

from tests.conftest import ROOT

BUILDER = '''
import keras


class InfAtInference(keras.layers.Layer):
    """Finite while training, infinite when validating: a non-finite val_loss."""

    def call(self, x, training=None):
        return x if training else x * float("inf")


def build(params, *, input_shape, n_outputs):
    if params["mode"] == "raise":
        raise ValueError(f"odd combination: mode={params['mode']!r}, units={params['units']}")
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(params["units"], activation="relu")(x)
    if params["mode"] == "inf":
        x = InfAtInference()(x)
    return keras.Model(inputs, keras.layers.Dense(n_outputs, activation="softmax")(x))
'''

SPACE = {
    "parameters": {
        "mode": {
            "type": "categorical",
            "choices": ["ok", "raise", "inf"],
            "tier": 1,
            "default": "ok",
        },
        "units": {"type": "int", "low": 8, "high": 8, "tier": 2, "default": 8},
    }
}


@pytest.fixture
def builder_spec(tiny_spec, tmp_path: Path):
    """A spec whose model comes from a user builder module in tmp_path."""
    (tmp_path / "faulty_builder.py").write_text(BUILDER, encoding="utf-8")
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE), encoding="utf-8")

    def make(**changes) -> Path:
        base = {
            "model": {"builder": "faulty_builder:build"},
            "space": {"file": "space.yaml", "overrides": {}},
            "data": {"source": "digits", "max_rows": 300},
            "training": {"max_epochs": 2},
        }
        return tiny_spec(**{**base, **changes})

    return make


def _env(tmp_path: Path) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])}


def _trials(url: str, name: str = "tiny") -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=url).trials


@pytest.mark.slow
def test_raising_and_non_finite_trials_fail_with_reasons_and_the_study_goes_on(
    builder_spec, cli, sqlite_url: str, tmp_path: Path
) -> None:
    spec = builder_spec(
        metric="val_loss", direction="minimize", sampler="grid", budget={"n_trials": 3}
    )

    result = cli("run", str(spec), "--storage", sqlite_url, cwd=tmp_path, env=_env(tmp_path))

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    trials = {t.params["mode"]: t for t in _trials(sqlite_url)}
    assert set(trials) == {"ok", "raise", "inf"}, "the study ran all its trials"
    assert trials["ok"].state.name == "COMPLETE" and math.isfinite(trials["ok"].value)
    assert trials["raise"].state.name == "FAIL"
    assert trials["raise"].user_attrs["fail_reason"] == (
        "ValueError: odd combination: mode='raise', units=8"
    )
    assert trials["inf"].state.name == "FAIL"
    assert trials["inf"].user_attrs["fail_reason"].startswith("non-finite metric")
    study = optuna.load_study(study_name="tiny", storage=sqlite_url)
    assert study.best_trial.number == trials["ok"].number, "never a non-finite best value"
    assert "Failures: " in result.stdout and "ValueError: odd combination" in result.stdout
    assert f"Best val_loss: {trials['ok'].value:.6g}" in result.stdout


@pytest.mark.slow
def test_sgd_with_learning_rate_10_fails_as_diverged_in_the_first_epoch(
    cli, tiny_spec, sqlite_url: str, tmp_path: Path
) -> None:
    # Gradient descent on y = w·x + b diverges once α exceeds 2 / (largest curvature).
    spec = tiny_spec(
        data={"source": "synthetic_linear", "n_samples": 300},
        model={"family": "linear"},
        metric="val_mae",
        direction="minimize",
        training={"max_epochs": 2},
        space={
            "file": str(ROOT / "search_spaces" / "linear-sgd.yaml"),
            "overrides": {},
            "fixed": {"optimizer": "sgd", "learning_rate": 10.0, "batch_size": 8},
        },
        budget={"n_trials": 2},
    )

    result = cli("run", str(spec), "--storage", sqlite_url, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    trials = _trials(sqlite_url)
    assert [t.state.name for t in trials] == ["FAIL", "FAIL"]
    assert [t.user_attrs["fail_reason"] for t in trials] == ["diverged", "diverged"]
    assert all(t.user_attrs["epochs"] == 1 for t in trials), "stopped at the first epoch"
    assert "Failures: diverged ×2" in result.stdout
    assert "No trial completed" in result.stdout


def test_consecutive_failures_trip_the_breaker_with_its_message(
    builder_spec, cli, sqlite_url: str, tmp_path: Path
) -> None:
    spec = builder_spec(
        space={"file": "space.yaml", "overrides": {}, "fixed": {"mode": "raise"}},
        budget={"n_trials": 20, "max_consecutive_failures": 3},
    )

    result = cli("run", str(spec), "--storage", sqlite_url, cwd=tmp_path, env=_env(tmp_path))

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert (
        "Error: stopped after 3 consecutive failed trials (last: ValueError: odd combination"
        in result.stderr
    )
    assert "--resume" in result.stderr.splitlines()[-1], "says how to go on"
    trials = _trials(sqlite_url)
    assert [t.state.name for t in trials] == ["FAIL"] * 3
    assert "Study tiny: 3 trials (3 fail)" in result.stdout, "the summary so far is printed"
