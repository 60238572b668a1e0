"""Per-epoch reports written in the background: the same pruning decisions as Optuna's
synchronous ``report``/``should_prune``, and no value lost when a worker is stopped."""

from __future__ import annotations

import contextlib
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator

import optuna
import pytest
import sqlalchemy as sa
from optuna.trial import TrialState

from tests.conftest import ROOT
from tuner.storage import open_storage
from tuner.trial.epoch_reports import epoch_reports
from tuner.trial.pruning import could_prune

STEPS = 12
PRUNERS = {
    "median": lambda: optuna.pruners.MedianPruner(
        n_startup_trials=3, n_warmup_steps=2, interval_steps=2
    ),
    "percentile": lambda: optuna.pruners.PercentilePruner(
        25.0, n_startup_trials=2, n_warmup_steps=1
    ),
    "threshold": lambda: optuna.pruners.ThresholdPruner(lower=0.3, n_warmup_steps=3),
    "successive-halving": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=2),
}


def _curves(seed: int, n: int = 24) -> list[list[float]]:
    """Learning curves of varied quality: a start, a rate, noise (accuracy-like values)."""
    rng = random.Random(seed)
    curves = []
    for _ in range(n):
        start, rate, ceiling = rng.uniform(0, 0.4), rng.uniform(0.02, 0.3), rng.uniform(0.3, 1)
        value, curve = start, []
        for _ in range(STEPS):
            value = min(ceiling, value + rate * (ceiling - value) + rng.gauss(0, 0.02))
            curve.append(value)
        curves.append(curve)
    return curves


def _replay_synchronously(study: optuna.Study, curve: list[float]) -> None:
    """What tuner did before: ``Trial.report`` and ``Trial.should_prune`` every epoch."""
    trial = study.ask()
    for step, value in enumerate(curve):
        trial.report(value, step=step)
        if could_prune(study.pruner, step=step) and trial.should_prune():
            study.tell(trial, state=TrialState.PRUNED)
            return
    study.tell(trial, curve[-1])


def _replay_in_background(study: optuna.Study, curve: list[float]) -> None:
    trial = study.ask()
    try:
        with epoch_reports(trial) as reports:
            for step, value in enumerate(curve):
                reports.epoch_end(value, step=step)
    except optuna.TrialPruned:
        study.tell(trial, state=TrialState.PRUNED)
        return
    study.tell(trial, curve[-1])


@pytest.mark.parametrize("name", sorted(PRUNERS))
def test_a_replayed_study_prunes_the_same_trials(name, tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 'replay.db'}", heartbeat=False)
    outcomes = {}
    for replay in (_replay_synchronously, _replay_in_background):
        study = optuna.create_study(
            study_name=replay.__name__,
            storage=storage,
            direction="maximize",
            pruner=PRUNERS[name](),
        )
        for curve in _curves(seed=7):
            replay(study, curve)
        trials = study.get_trials()
        outcomes[replay.__name__] = (
            [t.number for t in trials if t.state == TrialState.PRUNED],
            [t.intermediate_values for t in trials],
        )
    (pruned, values), (pruned_now, values_now) = outcomes.values()
    assert 0 < len(pruned) < len(_curves(seed=7)), "the replay should prune some trials"
    assert pruned_now == pruned
    assert values_now == values  # every epoch reached storage, pruned trials included


@contextlib.contextmanager
def _writes_held(url: str) -> Iterator[None]:
    """Hold the database's lock on intermediate values, as a slow disk or a busy server
    would: the trial trains on while its reports wait."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("begin immediate")
        try:
            yield
        finally:
            conn.execute("rollback")
            conn.close()
        return
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn, conn.begin() as transaction:
            conn.execute(sa.text("lock table trial_intermediate_values in exclusive mode"))
            yield
            transaction.rollback()
    finally:
        engine.dispose()


def _values_at_sigterm(url: str, tmp_path) -> tuple[optuna.trial.FrozenTrial, str]:
    from tests.conftest import write_tiny_spec

    spec = write_tiny_spec(
        tmp_path,
        data={"source": "digits", "max_rows": 100},  # epochs of a few ms: reports queue up
        training={"max_epochs": 5000},
        pruner={"name": "median", "options": {"n_startup_trials": 0}},
        budget={"n_trials": 1},
    )
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    run = subprocess.Popen(
        [sys.executable, "-m", "tuner", "run", str(spec), "--storage", url],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        reported = 0
        deadline = time.monotonic() + 180
        while reported < 30 and time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                trials = optuna.load_study(study_name="tiny", storage=url).get_trials()
            except KeyError:  # the study is not created yet
                continue
            reported = len(trials[0].intermediate_values) if trials else 0
        assert reported >= 30, "the trial never got going"
        with _writes_held(url):  # the writer falls behind: values wait in its queue
            time.sleep(2)
            run.send_signal(signal.SIGTERM)
            time.sleep(1)
        _, stderr = run.communicate(timeout=60)
    finally:
        run.kill()
    trial = optuna.load_study(study_name="tiny", storage=url).get_trials()[0]
    return trial, stderr


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_no_value_is_lost_when_the_worker_is_stopped(backend, request, tmp_path):
    url = (
        f"sqlite:///{tmp_path / 'study.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    trial, stderr = _values_at_sigterm(url, tmp_path)
    assert (trial.state, trial.user_attrs.get("fail_reason")) == (TrialState.FAIL, "terminated")
    steps = sorted(trial.intermediate_values)
    epochs = trial.user_attrs["epochs"]
    assert steps == list(range(len(steps))), "a value in the middle of the curve is missing"
    # The signal may land between the epoch counter and the report of the same epoch.
    assert epochs - 1 <= len(steps) <= epochs, f"{epochs} epochs, {len(steps)} values: {stderr}"
