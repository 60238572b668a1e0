"""Out of memory is a trial's outcome: a model or batch too large for the device fails
its trial (``out of memory``), the worker process is replaced (only a process's end gives
GPU memory back), the study goes on, and the report shows where the memory wall is.

The error is TensorFlow's own ResourceExhaustedError, provoked for real: past the wall the
builder asks for a layer of 2**40 weights, which the CPU allocator refuses as a GPU's
refuses a too-large model.
"""

from __future__ import annotations

import json
from collections import Counter

import optuna
import pytest
from optuna.trial import TrialState

from tests.conftest import ROOT
from tuner import records
from tuner.specs.space import SearchSpace

WALL = 2**13  # batch_size x units from which the test's model does not fit

OOM_BUILDER = f"""
def build(params, *, input_shape, n_outputs):
    import keras

    too_large = params["batch_size"] * params["units"] >= {WALL}
    inputs = keras.Input(shape=input_shape)
    flat = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(2**34 if too_large else params["units"], activation="relu")(flat)
    return keras.Model(inputs, keras.layers.Dense(n_outputs, activation="softmax")(x))
"""


@pytest.mark.slow
def test_a_trial_out_of_memory_fails_its_worker_is_replaced_and_the_study_goes_on(
    tmp_path, tiny_spec, sqlite_url, cli
):
    (tmp_path / "oom_builder.py").write_text(OOM_BUILDER, encoding="utf-8")
    spec = tiny_spec(
        model={"builder": "oom_builder:build"},
        training={"max_epochs": 1},
        space={"tiers": "2", "overrides": {"units": {"high": 256}}},
        budget={"n_trials": 8},
    )
    env = {"PYTHONPATH": f"{ROOT}:{tmp_path}"}
    done = cli("run", str(spec), "--storage", sqlite_url, "--workers", "1", env=env)
    assert done.returncode == 0, done.stderr

    study = optuna.load_study(study_name="tiny", storage=sqlite_url)
    trials = study.get_trials()
    assert len(trials) == 8  # the study went on to its whole budget
    space = SearchSpace.model_validate(study.user_attrs[records.SPACE])
    sizes_of = {t.number: space.values_from_stored(t.params) for t in trials}
    size = {n: (v["batch_size"], v["units"]) for n, v in sizes_of.items()}
    walled = [t for t in trials if size[t.number][0] * size[t.number][1] >= WALL]
    assert 0 < len(walled) < len(trials), "the seed should put some trials past the wall"
    for t in trials:
        past = t in walled
        assert (t.state, t.user_attrs.get("fail_reason")) == (
            (TrialState.FAIL, "out of memory") if past else (TrialState.COMPLETE, None)
        ), size[t.number]
    recycled = done.stderr.count("worker 0 recycled after running out of memory")
    assert recycled == len(walled), done.stderr
    # The trial after each one out of memory ran in a fresh process.
    pid = [t.user_attrs["worker"] for t in trials]
    for number, t in enumerate(trials[:-1]):
        if t in walled:
            assert pid[number + 1] != pid[number]

    report = cli("report", "tiny", "--storage", sqlite_url, "--format", "json")
    assert report.returncode == 0, report.stderr
    sizes = json.loads(report.stdout)["summary"]["out_of_memory"]
    expected = Counter(size[t.number] for t in walled)
    assert {(s["batch_size"], s["units"]): s["count"] for s in sizes} == expected
    markdown = cli("report", "tiny", "--storage", sqlite_url, "--format", "markdown")
    assert "Out of memory, trials per batch size and units: batch size" in markdown.stdout
