"""One budget rule on every path: a study ends with exactly the trials it was given.

The same storage budget governs ``tuner.optimize`` joined by other processes, concurrent
``tuner run --resume`` starters, and workers that start before their study exists.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import optuna
import pytest
from optuna.trial import TrialState

import tuner
from tests.conftest import ROOT

SPACE = {
    "parameters": {
        "x": {"type": "float", "low": 0.0, "high": 1.0, "tier": 1, "default": 0.5},
        "y": {"type": "float", "low": 0.0, "high": 1.0, "tier": 2, "default": 0.5},
    }
}
N_TRIALS = 24
JOINER = textwrap.dedent(
    """
    import json, sys, time
    import tuner

    def f(params, report):
        time.sleep(0.05)  # long enough for the two processes to interleave
        return (params["x"] - 0.3) ** 2 + params["y"]

    tuner.optimize(f, space=json.loads(sys.argv[2]), n_trials=int(sys.argv[3]),
                   direction="minimize", storage=sys.argv[1], study_name="joined",
                   sampler="random", pruner="none", seed=int(sys.argv[4]))
    """
)


def _slow(params: dict, report) -> float:
    time.sleep(0.05)
    return (params["x"] - 0.3) ** 2 + params["y"]


def _join(tmp_path, url: str, seed: int) -> subprocess.Popen[str]:
    script = tmp_path / f"joiner{seed}.py"
    script.write_text(JOINER, encoding="utf-8")
    import json

    return subprocess.Popen(
        [sys.executable, str(script), url, json.dumps(SPACE), str(N_TRIALS), str(seed)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_optimize_joined_by_two_other_processes_runs_exactly_its_trials(backend, tmp_path, request):
    url = request.getfixturevalue(f"{backend}_url")
    joiners = [_join(tmp_path, url, seed) for seed in (1, 2)]
    time.sleep(1.0)  # let them start first: this call joins a study already running
    result = tuner.optimize(
        _slow,
        space=SPACE,
        n_trials=N_TRIALS,
        direction="minimize",
        storage=url,
        study_name="joined",
        sampler="random",
        pruner="none",
        seed=3,
    )
    for joiner in joiners:
        _, err = joiner.communicate(timeout=300)
        assert joiner.returncode == 0, err
    trials = optuna.load_study(study_name="joined", storage=url).trials
    assert len(trials) == N_TRIALS
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert result.n_trials == N_TRIALS


def test_a_second_call_with_a_larger_total_runs_only_the_difference(sqlite_url):
    options = {
        "space": SPACE,
        "direction": "minimize",
        "storage": sqlite_url,
        "study_name": "grown",
        "sampler": "random",
        "pruner": "none",
    }
    tuner.optimize(_slow, n_trials=5, **options)
    tuner.optimize(_slow, n_trials=5, **options)  # the same total: nothing more to run
    result = tuner.optimize(_slow, n_trials=8, **options)
    assert result.n_trials == 8


def test_in_memory_studies_follow_the_same_rule():
    result = tuner.optimize(
        _slow, space=SPACE, n_trials=6, direction="minimize", sampler="random", pruner="none"
    )
    assert result.n_trials == 6
    assert result.best_params.keys() == {"x", "y"}


def test_optimize_with_storage_but_no_name_is_refused(sqlite_url):
    with pytest.raises(tuner.SpecError, match="needs study_name"):
        tuner.optimize(_slow, space=SPACE, n_trials=2, direction="minimize", storage=sqlite_url)


@pytest.mark.slow
def test_two_concurrent_resumes_end_with_exactly_the_new_total(cli, tiny_spec, sqlite_url):
    spec = str(tiny_spec(training={"max_epochs": 2}, budget={"n_trials": 3}))
    assert cli("run", spec, "--storage", sqlite_url).returncode == 0
    args = [sys.executable, "-m", "tuner", "run", spec, "--storage", sqlite_url]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    resumes = [
        subprocess.Popen(
            [*args, "--resume", "--n-trials", "7"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for resume in resumes:
        _, err = resume.communicate(timeout=600)
        assert resume.returncode == 0, err
    trials = optuna.load_study(study_name="tiny", storage=sqlite_url).trials
    assert len(trials) == 7
    assert not [t for t in trials if t.state == TrialState.RUNNING]


@pytest.mark.slow
def test_a_worker_waits_for_a_study_that_does_not_exist_yet(tiny_spec, sqlite_url):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "tuner", "worker", "tiny", "--storage", sqlite_url, "--wait", "120"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(4)  # the worker looks, finds no study, and waits
    assert worker.poll() is None, worker.communicate()[1]
    spec = str(tiny_spec(training={"max_epochs": 1}, budget={"n_trials": 2}))
    queued = subprocess.run(
        [sys.executable, "-m", "tuner", "run", spec, "--storage", sqlite_url, "--queue-only"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert queued.returncode == 0, queued.stderr
    _, err = worker.communicate(timeout=300)
    assert worker.returncode == 0, err
    trials = optuna.load_study(study_name="tiny", storage=sqlite_url).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
