"""Budgets as people give them: a trial count, epochs, or a time alone, for every strategy.

An epoch is one ``report()`` step of a plain objective and one trained epoch of a Keras
trial; a study given epochs alone runs as many trials as they allow. Bad budgets get one
line and exit code 2.
"""

from __future__ import annotations

import optuna
import pytest
import yaml
from optuna.trial import TrialState

import tuner
from tuner.errors import SpecError

SPACE = {
    "parameters": {
        "x": {"type": "float", "low": 0.0, "high": 1.0, "tier": 1, "default": 0.5},
        "y": {"type": "float", "low": 0.0, "high": 1.0, "tier": 2, "default": 0.5},
    }
}
STEPS = 10


def curve(params: dict, report) -> float:
    """Ten report() steps (ten "epochs") approaching (x - 0.3)^2."""
    value = 0.0
    for step in range(STEPS):
        value = (params["x"] - 0.3) ** 2 + 1.0 / (step + 1)
        report(value, step)
    return value


def _epochs(study: optuna.Study) -> list[int]:
    return [len(t.intermediate_values) for t in study.get_trials() if t.state.is_finished()]


@pytest.mark.parametrize("strategy", ["flat", "staged"])
def test_an_epoch_budget_alone_stops_the_study_once_spent(strategy):
    study = tuner.optimize(
        curve, space=SPACE, direction="minimize", budget_epochs=120, strategy=strategy
    ).study
    epochs = _epochs(study)
    assert 120 <= sum(epochs) < 120 + STEPS  # the trial that crossed the budget finishes
    assert any(t.state == TrialState.PRUNED for t in study.get_trials())  # pruned ones count
    assert len(epochs) > 120 // STEPS  # pruned trials are cheaper: more trials than 12


def test_an_epoch_budget_and_a_trial_count_end_at_whichever_comes_first():
    study = tuner.optimize(
        curve, space=SPACE, direction="minimize", n_trials=3, budget_epochs=1000, pruner="none"
    ).study
    assert _epochs(study) == [STEPS] * 3


def test_staged_plans_from_a_timeout_alone():
    study = tuner.optimize(
        curve, space=SPACE, direction="minimize", timeout=3, strategy="staged", pruner="none"
    ).study
    stages = study.user_attrs["tuner_strategy"]["stages"]
    assert [s["tiers"] for s in stages] == [[1], [1, 2]]
    assert stages[0]["end"] == 20  # the trials importance needs for stage 1, then stage 2
    assert len(study.get_trials()) > 1


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        ({"budget_epochs": 0}, "budget_epochs must be a whole number of at least 1, got 0"),
        ({"n_trials": -3}, "n_trials must be a whole number of at least 1, got -3"),
        ({"timeout": 0}, "timeout must be a number of seconds above 0, got 0"),
        ({}, "optimize() needs a budget: give n_trials=, budget_epochs= or timeout="),
    ],
)
def test_a_bad_or_missing_budget_is_one_clear_error(budget, message):
    with pytest.raises(SpecError) as caught:
        tuner.optimize(curve, space=SPACE, direction="minimize", **budget)
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.slow
def test_tuner_run_with_an_epoch_budget_trains_as_many_trials_as_it_allows(
    cli, sqlite_url, tiny_spec
):
    spec = tiny_spec()
    written = yaml.safe_load(spec.read_text(encoding="utf-8"))
    del written["budget"]  # no trial count: the spec's default (20) must not cut it short
    spec.write_text(yaml.safe_dump(written), encoding="utf-8")
    result = cli("run", str(spec), "--storage", sqlite_url, "--epochs-budget", "7")
    assert result.returncode == 0, result.stderr
    assert "7 epochs to run" in result.stderr
    trials = optuna.load_study(study_name="tiny", storage=sqlite_url).get_trials()
    epochs = [t.user_attrs["epochs"] for t in trials]
    assert len(trials) > 2 and sum(epochs) >= 7 > sum(epochs[:-1])  # beyond the spec's 2


@pytest.mark.slow
def test_a_spec_with_a_time_budget_alone_runs_until_the_time_is_spent(cli, sqlite_url, tiny_spec):
    spec = tiny_spec()
    written = yaml.safe_load(spec.read_text(encoding="utf-8"))
    written["budget"] = {"timeout": 8}  # no trial count: not the default 20
    spec.write_text(yaml.safe_dump(written), encoding="utf-8")
    result = cli("run", str(spec), "--storage", sqlite_url)
    assert result.returncode == 0, result.stderr
    assert "8 s to run" in result.stderr
    trials = optuna.load_study(study_name="tiny", storage=sqlite_url).get_trials()
    assert 1 <= len(trials) < 20


@pytest.mark.slow
def test_tuner_run_staged_with_a_timeout_alone_runs(cli, sqlite_url, tiny_spec):
    spec = tiny_spec(budget={"n_trials": None}, strategy="staged")
    result = cli("run", str(spec), "--storage", sqlite_url, "--timeout", "15")
    assert result.returncode == 0, result.stderr
    trials = optuna.load_study(study_name="tiny", storage=sqlite_url).get_trials()
    assert trials and all(t.user_attrs["stage"] == 1 for t in trials)


@pytest.mark.parametrize(
    ("args", "changes", "message"),
    [
        (["--epochs-budget", "0"], {}, "'--epochs-budget': 0 is not in the range x>=1"),
        ([], {"budget": {"epochs": -5}}, "budget.epochs"),
    ],
)
def test_a_bad_epoch_budget_is_refused_with_exit_code_2(
    cli, sqlite_url, tiny_spec, args, changes, message
):
    result = cli("run", str(tiny_spec(**changes)), "--storage", sqlite_url, *args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not result.stdout
