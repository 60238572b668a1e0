"""Memory between trials: each trial's model is gone before the next trial builds one."""

from __future__ import annotations

import gc
import weakref

import optuna
import pytest

from tests.conftest import TAME_OVERRIDES
from tuner.execution.run import execute, prepare_run
from tuner.specs.spec import load_spec
from tuner.trial.models import build_mlp

pytestmark = pytest.mark.slow


def test_every_model_is_freed_after_its_trial_pruned_or_not(tiny_spec, sqlite_url):
    models: list[weakref.ref] = []
    alive_after_trial: list[int] = []

    def build(params, **shapes):
        model = build_mlp(params, **shapes)
        models.append(weakref.ref(model))
        return model

    def count_alive(study, trial):  # runs after tuner's own end-of-trial callbacks
        alive_after_trial.append(sum(ref() is not None for ref in models))

    resolved = load_spec(
        tiny_spec(
            budget={"n_trials": 5},
            # val_accuracy after one epoch is far below 0.99: every trial but the default
            # search's three start trials is pruned there, its model still held by the
            # traceback of the exception that pruned it.
            pruner={"name": "threshold", "options": {"lower": 0.99, "n_warmup_steps": 0}},
        )
    )
    prepared = prepare_run(resolved, storage_url=sqlite_url, builder=build)
    frozen_before = gc.get_freeze_count()
    execute(prepared, callbacks=[count_alive])
    assert [t.state.name for t in prepared.study.trials] == ["COMPLETE"] * 3 + ["PRUNED"] * 2
    assert alive_after_trial == [0] * 5
    assert gc.get_freeze_count() == frozen_before  # the run hands its frozen objects back


def test_recycled_workers_run_the_whole_study_however_many_times_they_are_replaced(
    tiny_spec, sqlite_url, cli
):
    from tuner.execution.supervisor import MAX_RESTARTS_PER_SLOT

    n_trials = MAX_RESTARTS_PER_SLOT + 2  # more replacements than a faulty worker may have
    spec = tiny_spec(
        data={"source": "digits", "max_rows": 200},
        training={"max_epochs": 1},
        budget={"n_trials": n_trials},
        # every trial must complete: a CI run drew a learning rate that diverged
        space={"overrides": TAME_OVERRIDES},
    )
    done = cli("run", str(spec), "--storage", sqlite_url, "--recycle-after", "1")
    assert done.returncode == 0, done.stderr
    assert "1 worker," in done.stderr and "starting a new one" not in done.stderr
    assert f"Study tiny: {n_trials} trials ({n_trials} complete)" in done.stdout
    trials = optuna.load_study(study_name="tiny", storage=sqlite_url).trials
    assert len({t.user_attrs["worker"] for t in trials}) == n_trials  # a fresh process each
