"""Pruning: every epoch reaches storage, and the pruner is asked wherever it could prune.

The objective skips the pruner's question (a storage read) at epochs where the pruner's
own settings rule pruning out; these tests hold it to never skipping one that matters.
"""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from tests.conftest import ROOT
from tuner.execution.run import execute, prepare_run
from tuner.search.samplers import make_pruner
from tuner.specs.spec import PRUNERS as SPEC_PRUNERS
from tuner.specs.spec import load_spec
from tuner.trial.pruning import could_prune

STEPS = 12
PRUNERS = {
    "median": lambda: optuna.pruners.MedianPruner(
        n_startup_trials=1, n_warmup_steps=3, interval_steps=2
    ),
    "percentile": lambda: optuna.pruners.PercentilePruner(
        50.0, n_startup_trials=1, n_warmup_steps=2, interval_steps=3
    ),
    "threshold": lambda: optuna.pruners.ThresholdPruner(
        lower=0.5, n_warmup_steps=1, interval_steps=2
    ),
    "successive-halving": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=2),
    "patient": lambda: optuna.pruners.PatientPruner(optuna.pruners.MedianPruner(), patience=1),
    "none": optuna.pruners.NopPruner,
}


@pytest.mark.parametrize("name", sorted(PRUNERS))
def test_the_pruner_is_skipped_only_where_its_answer_is_no(name):
    pruner = PRUNERS[name]()
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for _ in range(6):  # good trials, run through the pruner as real ones are
        good = study.ask()
        for step in range(STEPS):
            good.report(0.9, step=step)
            good.should_prune()  # successive halving records its rungs here
        study.tell(good, 0.9)
    trial = study.ask()
    pruned_at = []
    for step in range(STEPS):
        trial.report(0.1 - 0.001 * step, step=step)  # poor, and getting worse
        if trial.should_prune():
            pruned_at.append(step)
    asked = [step for step in range(STEPS) if could_prune(pruner, step=step)]
    assert set(pruned_at) <= set(asked), f"{name} would prune at {pruned_at}, asked at {asked}"
    if name == "none":
        assert pruned_at == asked == []
    else:  # the poor trial is pruned somewhere: the test sees real decisions
        assert pruned_at, f"{name} never pruned a trial far below the others"


@pytest.mark.parametrize("name", SPEC_PRUNERS)
def test_every_pruner_a_spec_may_name_is_made(name):
    # The names live in the spec (validation), the classes in tuner.search.samplers.
    options = {"lower": 0.1} if name == "threshold" else {}
    assert isinstance(make_pruner(name, options), optuna.pruners.BasePruner)


def test_stepped_pruners_are_asked_from_the_warm_up_on_every_interval():
    median = PRUNERS["median"]()
    asked = [s for s in range(STEPS) if could_prune(median, step=s)]
    assert asked == [3, 5, 7, 9, 11]
    assert not any(could_prune(optuna.pruners.NopPruner(), step=s) for s in range(STEPS))


@pytest.mark.slow
def test_median_pruning_stops_poor_trials_at_the_first_epoch_it_may(tiny_spec, sqlite_url):
    resolved = load_spec(
        tiny_spec(
            training={"max_epochs": 4},
            pruner={"name": "median", "options": {"n_startup_trials": 1, "n_warmup_steps": 2}},
            space={
                "file": str(ROOT / "search_spaces" / "importance-ranked.yaml"),
                "fixed": {"optimizer": "sgd"},
                "tiers": "1",
                "baseline_first": False,  # the trials are the ones enqueued below
            },
            budget={"n_trials": 3},
        )
    )
    prepared = prepare_run(resolved, storage_url=sqlite_url)
    for learning_rate in (0.3, 1e-5, 1e-5):  # one that learns, then two that cannot
        prepared.study.enqueue_trial({"learning_rate": learning_rate})
    execute(prepared)
    first, *poor = optuna.load_study(study_name="tiny", storage=sqlite_url).get_trials()
    assert first.state == TrialState.COMPLETE
    assert sorted(first.intermediate_values) == [0, 1, 2, 3]
    for trial in poor:
        assert trial.state == TrialState.PRUNED
        assert sorted(trial.intermediate_values) == [0, 1, 2]  # every epoch, up to the warm-up
        assert trial.user_attrs["epochs"] == 3
