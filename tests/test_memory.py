"""Memory between trials: each trial's model is gone before the next trial builds one."""

from __future__ import annotations

import gc
import weakref

import pytest

from tuner.models import build_mlp
from tuner.runner import execute, prepare_run
from tuner.spec import load_spec

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
            budget={"n_trials": 3},
            # val_accuracy after one epoch is far below 0.99: every trial is pruned there,
            # its model still held by the traceback of the exception that pruned it.
            pruner={"name": "threshold", "options": {"lower": 0.99, "n_warmup_steps": 0}},
        )
    )
    prepared = prepare_run(resolved, storage_url=sqlite_url, builder=build)
    frozen_before = gc.get_freeze_count()
    execute(prepared, callbacks=[count_alive])
    assert [t.state.name for t in prepared.study.trials] == ["PRUNED"] * 3
    assert alive_after_trial == [0, 0, 0]
    assert gc.get_freeze_count() == frozen_before  # the run hands its frozen objects back
