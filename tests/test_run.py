"""A real study end to end: `tuner run` and `tuner.tune` train Keras models on small data.

Everything here trains for real (digits, a few epochs) and stores trials in a real
SQLite file, read back with plain Optuna.
"""

from __future__ import annotations

import csv

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

import tuner
from tests.conftest import ROOT
from tuner.execution.run import execute, prepare_run
from tuner.outcome.warmstart import enqueue
from tuner.specs.spec import load_spec

pytestmark = pytest.mark.slow


def _trials(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=url).get_trials()


def test_shipped_digits_study_runs_and_plain_optuna_reads_the_declared_parameters(cli, sqlite_url):
    result = cli("run", "studies/digits-mlp.yaml", "--n-trials", "2", "--storage", sqlite_url)
    assert result.returncode == 0, result.stderr
    assert "Best val_accuracy:" in result.stdout
    baseline = _trials(sqlite_url, "digits-mlp")[0]
    assert f"Baseline (the space's defaults): {baseline.value:.6g}" in result.stdout
    assert (
        "tuner dashboard --storage" in result.stdout and "tuner report digits-mlp" in result.stdout
    )
    assert "Traceback" not in result.stderr
    trials = _trials(sqlite_url, "digits-mlp")
    assert len(trials) == 2
    declared = load_spec(ROOT / "studies" / "digits-mlp.yaml").space.distributions()
    for trial in trials:
        assert trial.params, "a trial searched nothing"
        for name, dist in trial.distributions.items():
            assert declared[name] == dist  # exactly the declared distribution
        assert trial.user_attrs["seed"] == trial.number and trial.user_attrs["seconds"] > 0
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert complete, "no trial completed"
    for trial in complete:
        assert trial.user_attrs["epochs"] == 15 and trial.user_attrs["n_params"] > 0
        assert len(trial.intermediate_values) == 15  # reported every epoch
        assert 0 < trial.value <= 1
    for trial in trials:
        if trial.state == TrialState.FAIL:  # a draw with a large α may blow up
            assert trial.user_attrs["fail_reason"] == "diverged"


def test_aggressive_pruner_stops_trials_before_the_last_epoch(cli, sqlite_url, tiny_spec):
    spec = tiny_spec(
        training={"max_epochs": 5},
        pruner={"name": "threshold", "options": {"lower": 0.97, "n_warmup_steps": 1}},
        budget={"n_trials": 5},
    )
    result = cli("run", str(spec), "--storage", sqlite_url)
    assert result.returncode == 0, result.stderr
    trials = _trials(sqlite_url, "tiny")
    # The default search's three start trials train to the end; the pruner stops the rest.
    assert [t.state for t in trials[:3]] == [TrialState.COMPLETE] * 3
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned, "no trial was pruned"
    for trial in pruned:
        assert trial.user_attrs["epochs"] < 5
        assert max(trial.intermediate_values) == trial.user_attrs["epochs"] - 1
    assert "pruned" in result.stdout


def test_learning_rate_ten_diverges_within_one_epoch_and_the_study_goes_on(sqlite_url, tiny_spec):
    resolved = load_spec(
        tiny_spec(
            training={"max_epochs": 4},
            space={
                "file": str(ROOT / "search_spaces" / "importance-ranked.yaml"),
                "overrides": {"learning_rate": {"high": 10.0}},
                "fixed": {"optimizer": "sgd"},
                "tiers": "1",
                "baseline_first": False,  # the trials are the ones enqueued below
            },
        )
    )
    prepared = prepare_run(resolved, storage_url=sqlite_url, n_trials=3)
    enqueue(prepared.study, [{"learning_rate": 10.0}, {"learning_rate": 0.05}])
    execute(prepared)
    first, *later = _trials(sqlite_url, "tiny")
    assert first.state == TrialState.FAIL
    assert first.user_attrs["fail_reason"] == "diverged"
    assert first.user_attrs["epochs"] <= 1
    assert len(later) == 2 and all(t.state == TrialState.COMPLETE for t in later)


def test_tier_one_searches_only_the_learning_rate(cli, sqlite_url, tiny_spec):
    result = cli("run", str(tiny_spec()), "--tiers", "1", "--storage", sqlite_url)
    assert result.returncode == 0, result.stderr
    for trial in _trials(sqlite_url, "tiny"):
        assert set(trial.params) == {"learning_rate"}
    summary = tuner.tune(str(tiny_spec()), storage=sqlite_url, resume=True, tiers="1", n_trials=2)
    defaults = load_spec(tiny_spec()).space.defaults()
    assert {k: v for k, v in summary.best_config.items() if k != "learning_rate"} == {
        k: v for k, v in defaults.items() if k != "learning_rate"
    }


def test_resume_continues_numbering_and_a_second_run_without_resume_refuses(
    cli, sqlite_url, tiny_spec
):
    spec = str(tiny_spec())
    assert cli("run", spec, "--storage", sqlite_url).returncode == 0
    again = cli("run", spec, "--storage", sqlite_url)
    assert again.returncode == 2
    assert "already exists" in again.stderr and "--resume" in again.stderr
    assert "--overwrite" in again.stderr and "Traceback" not in again.stderr
    assert len(_trials(sqlite_url, "tiny")) == 2  # the refused run wrote nothing
    resumed = cli("run", spec, "--storage", sqlite_url, "--resume", "--n-trials", "3")
    assert resumed.returncode == 0, resumed.stderr
    assert [t.number for t in _trials(sqlite_url, "tiny")] == [0, 1, 2]
    replaced = cli("run", spec, "--storage", sqlite_url, "--overwrite", "--n-trials", "1")
    assert replaced.returncode == 0 and len(_trials(sqlite_url, "tiny")) == 1


def _wine_arrays():
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split

    x, y = load_wine(return_X_y=True)
    return train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)


def test_python_api_with_a_user_builder_and_in_memory_arrays(sqlite_url):
    import keras

    seen = []

    def my_build(params, *, input_shape, n_outputs):
        seen.append(dict(params))
        inputs = keras.Input(shape=input_shape)
        hidden = keras.layers.Dense(int(params["units"]), activation="relu")(inputs)
        return keras.Model(inputs, keras.layers.Dense(n_outputs, activation="softmax")(hidden))

    x_train, x_val, y_train, y_val = _wine_arrays()
    result = tuner.tune(
        space=ROOT / "search_spaces" / "importance-ranked.yaml",
        data=(x_train, y_train, x_val, y_val),
        build_model=my_build,
        metric="val_accuracy",
        direction="maximize",
        n_trials=2,
        max_epochs=3,
        storage=sqlite_url,
        study_name="wine-api",
        tiers="1-2",
    )
    assert len(seen) == 2 and all("learning_rate" in p and "units" in p for p in seen)
    assert result.study_name == "wine-api" and result.states == {"complete": 2}
    assert 0 < result.best_value <= 1
    assert set(result.best_params) <= {"learning_rate", "units", "batch_size", "momentum"}
    assert result.best_params["learning_rate"] == pytest.approx(
        optuna.load_study(study_name="wine-api", storage=sqlite_url).best_params["learning_rate"]
    )


def test_python_api_with_a_csv_file(sqlite_url, tmp_path):
    x_train, x_val, y_train, y_val = _wine_arrays()
    path = tmp_path / "wine.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([f"f{i}" for i in range(x_train.shape[1])] + ["cultivar"])
        for row, label in zip(
            np.vstack([x_train, x_val]), np.concatenate([y_train, y_val]), strict=True
        ):
            writer.writerow([*row, f"class_{label}"])
    result = tuner.tune(
        space=ROOT / "search_spaces" / "importance-ranked.yaml",
        data={"source": "csv", "path": str(path), "target": "cultivar"},
        n_trials=2,
        max_epochs=3,
        storage=sqlite_url,
        tiers="1",
    )
    assert result.states == {"complete": 2} and result.best_value > 0.3


def test_a_new_study_starts_from_the_defaults_unless_told_not_to(sqlite_url, tiny_spec):
    resolved = load_spec(tiny_spec(training={"max_epochs": 1}, budget={"n_trials": 2}))
    baseline, searched = _run(resolved, storage_url=sqlite_url).trials
    assert baseline.user_attrs["baseline"] is True and "baseline" not in searched.user_attrs
    assert baseline.params == resolved.space.default_trial(tiers=resolved.tiers)
    assert baseline.params != searched.params
    resumed = _run(resolved, storage_url=sqlite_url, n_trials=3, resume=True)
    assert [t.user_attrs.get("baseline", False) for t in resumed.trials] == [True, False, False]

    plain = load_spec(
        tiny_spec(
            training={"max_epochs": 1}, budget={"n_trials": 1}, space={"baseline_first": False}
        )
    )
    [trial] = _run(plain, storage_url=sqlite_url, study_name="plain").trials
    assert "baseline" not in trial.user_attrs


def _run(resolved, **options) -> optuna.Study:
    prepared = prepare_run(resolved, **options)
    execute(prepared)
    return prepared.study
