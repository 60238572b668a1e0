"""A new study of the default search starts with the space's defaults, then its learning
rate half a decade either side; these start trials train to the end whatever the pruner
says, and the default sampler's model does not see them."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.trial import TrialState

import tuner
from tuner.search.samplers import make_sampler
from tuner.storage import open_storage
from tuner.trial.epoch_reports import epoch_reports

SPACE = {
    "parameters": {
        "learning_rate": {
            "type": "float", "low": 1e-5, "high": 1.0, "log": True, "tier": 1, "default": 1e-3,
        },
        "units": {"type": "int", "low": 16, "high": 256, "log": True, "tier": 2, "default": 64},
    }
}  # fmt: skip
STEPS = 20


def _curve(params, report):
    """Best at the default learning rate: the probes fall behind the baseline at once."""
    quality = 1 - abs(math.log10(params["learning_rate"]) + 3) / 5
    for step in range(STEPS):
        report(quality * (1 - 0.8 ** (step + 1)), step)
    return quality


def _optimize(n_trials: int, **options):
    return tuner.optimize(
        _curve, space=SPACE, direction="maximize", n_trials=n_trials, seed=0, **options
    ).study


def test_the_default_search_starts_with_the_defaults_and_the_learning_rate_either_side():
    study = _optimize(20)

    start = study.trials[:3]
    assert [t.params["learning_rate"] for t in start] == pytest.approx([1e-3, 10**-2.5, 10**-3.5])
    assert {t.params["units"] for t in start} == {64}
    assert [sorted(t.user_attrs) for t in start] == [
        ["baseline", "start"],
        ["probe", "start"],
        ["probe", "start"],
    ]
    # Successive halving prunes the later trials behind the baseline, never a start trial.
    assert [t.state for t in start] == [TrialState.COMPLETE] * 3
    assert all(len(t.intermediate_values) == STEPS for t in start)
    assert any(t.state == TrialState.PRUNED for t in study.trials[3:])


@pytest.mark.parametrize(("n_trials", "probes"), [(1, 0), (2, 1), (3, 2)])
def test_the_probes_fit_in_the_trial_budget(n_trials, probes):
    study = _optimize(n_trials)

    assert len(study.trials) == n_trials
    assert sum(bool(t.user_attrs.get("probe")) for t in study.trials) == probes


@pytest.mark.parametrize(
    "options",
    [{"sampler": "tpe"}, {"sampler": "random"}, {"strategy": "staged", "pruner": "none"}],
    ids=["tpe", "random", "staged"],
)
def test_other_searches_start_with_the_baseline_alone(options):
    study = _optimize(6, **options)

    # ... which their pruner and model treat as any trial, as these searches were measured.
    assert study.trials[0].user_attrs["baseline"] is True
    assert not [t for t in study.trials if {"probe", "start"} & set(t.user_attrs)]


def test_the_default_sampler_does_not_model_the_start_trials():
    # Start trials that look best must not pull TPE towards them: its proposal is the one
    # it makes on the same study without them.
    def objective(trial):
        return (trial.suggest_float("x", 0, 1) - 0.2) ** 2

    options = {"random_share": 0.0}
    with_start = optuna.create_study(sampler=make_sampler("tpe-explore", options, seed=0))
    for x in (0.9, 0.95):
        with_start.enqueue_trial({"x": x}, user_attrs={"start": True})
        with_start.optimize(lambda t: t.suggest_float("x", 0, 1) * 0, n_trials=1)
    without = optuna.create_study(sampler=make_sampler("tpe-explore", options, seed=0))
    for study in (with_start, without):
        study.optimize(objective, n_trials=14)
    modelled = [t.params["x"] for t in with_start.trials[-4:]]
    assert modelled == [t.params["x"] for t in without.trials[-4:]]


def test_a_start_trial_trained_by_keras_is_never_pruned(tmp_path):
    # Keras trials report through the background writer; its pruning question is asked
    # (successive halving keeps its rungs) but a start trial is not stopped.
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}", heartbeat=False)
    study = optuna.create_study(
        storage=storage,
        pruner=optuna.pruners.ThresholdPruner(lower=2.0),  # prunes all
    )
    study.enqueue_trial({}, user_attrs={"start": True})
    outcomes = []
    for _ in range(2):
        trial = study.ask()
        try:
            with epoch_reports(trial) as reports:
                for step in range(3):
                    reports.epoch_end(0.5, step=step)
        except optuna.TrialPruned:
            outcomes.append("pruned")
            study.tell(trial, state=TrialState.PRUNED)
        else:
            outcomes.append("complete")
            study.tell(trial, 0.5)
    assert outcomes == ["complete", "pruned"]
