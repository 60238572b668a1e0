"""Ctrl-C for real (RELIABILITY row 8): SIGINT to a `tuner run` subprocess mid-trial.

The running trial must be FAIL with reason ``interrupted``, the summary so far printed,
the exit code 130, and no traceback.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from tests.conftest import ROOT

RUNNING_AND_TRAINING = """
    select count(*) from trials t join trial_user_attributes a on a.trial_id = t.trial_id
    where t.state = 'RUNNING' and a.key = 'seed'
"""


def _training_started(db: Path) -> bool:
    """Whether a trial is inside training (it records its seed just before fitting)."""
    if not db.exists():
        return False
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return bool(conn.execute(RUNNING_AND_TRAINING).fetchone()[0])
    except sqlite3.OperationalError:  # tables not created yet
        return False


@pytest.mark.slow
def test_ctrl_c_fails_the_running_trial_prints_the_summary_and_exits_130(
    tiny_spec, tmp_path: Path
) -> None:
    # Thousands of epochs: the trial is surely still training when the signal comes.
    spec = tiny_spec(
        data={"source": "digits", "max_rows": 300},
        training={"max_epochs": 5000},
        budget={"n_trials": 3},
    )
    db = tmp_path / "study.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TUNER_STORAGE", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuner", "run", str(spec), "--storage", f"sqlite:///{db}"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not _training_started(db):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no trial started training"
            time.sleep(0.2)
        time.sleep(1.0)  # well inside model.fit
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()

    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "Interrupted: trial 0 is marked failed (interrupted)." in stderr
    # The default search's two probes of the learning rate wait for a resume.
    assert "Study tiny: 3 trials (1 fail, 2 waiting)" in stdout
    assert "Failures: interrupted ×1" in stdout
    trials = optuna.load_study(study_name="tiny", storage=f"sqlite:///{db}").trials
    assert [(t.state.name, t.user_attrs.get("fail_reason")) for t in trials] == [
        ("FAIL", "interrupted"),
        ("WAITING", None),
        ("WAITING", None),
    ]


def _builder_whose_interrupt_is_swallowed(signum: int):
    """A model builder that receives ``signum`` and, as TensorFlow does when a signal lands
    while it traces the first epoch, turns the interrupt into an error of its own."""

    def build(params, **shapes):
        try:
            os.kill(os.getpid(), signum)
            time.sleep(5)  # the handler raises long before this ends
        except KeyboardInterrupt as exc:
            raise RuntimeError("Detected unsupported operations when trying to trace") from exc
        raise AssertionError(f"signal {signum} did not interrupt the builder")

    return build


def test_ctrl_c_turned_into_another_error_still_stops_the_run(tiny_spec, sqlite_url) -> None:
    from tuner.execution.run import execute, prepare_run
    from tuner.specs.spec import load_spec

    resolved = load_spec(tiny_spec(budget={"n_trials": 3}))
    build = _builder_whose_interrupt_is_swallowed(signal.SIGINT)
    prepared = prepare_run(resolved, storage_url=sqlite_url, builder=build)
    with pytest.raises(KeyboardInterrupt):
        execute(prepared)
    assert [(t.state.name, t.user_attrs.get("fail_reason")) for t in prepared.study.trials] == [
        ("FAIL", "interrupted"),
        ("WAITING", None),  # the default search's probes, left for a resume
        ("WAITING", None),
    ]


def _builder_that_drops(signum: int):
    """A model builder that receives ``signum`` and drops the interrupt, as Python does
    when it lands inside a ``__del__`` (TensorFlow runs many while training), then
    returns a working model: nothing but the noted interrupt is left to stop training."""
    from tuner.trial.models import build_linear

    def build(params, **shapes):
        try:
            os.kill(os.getpid(), signum)
            time.sleep(5)  # the handler raises long before this ends
        except KeyboardInterrupt:
            return build_linear(params, **shapes)
        raise AssertionError(f"signal {signum} did not interrupt the builder")

    return build


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupt_dropped_before_training_still_stops_it(signum, tiny_spec, sqlite_url) -> None:
    from tuner.execution.run import prepare_run
    from tuner.execution.worker import run_worker
    from tuner.specs.spec import load_spec

    # Without the noted interrupt, 3 trials of 200 epochs would run to the end.
    resolved = load_spec(tiny_spec(training={"max_epochs": 200}, budget={"n_trials": 3}))
    build = _builder_that_drops(signum)
    prepared = prepare_run(resolved, storage_url=sqlite_url, builder=build)
    with pytest.raises(KeyboardInterrupt):
        run_worker(prepared.study, prepared.objective)
    first = prepared.study.trials[0]
    why = "interrupted" if signum == signal.SIGINT else "terminated"
    assert (first.state.name, first.user_attrs.get("fail_reason")) == ("FAIL", why)
    assert first.user_attrs["epochs"] == 0  # stopped at its first batch


def test_sigterm_turned_into_another_error_still_stops_the_worker(tiny_spec, sqlite_url) -> None:
    from tuner.execution.run import prepare_run
    from tuner.execution.signals import WorkerTerminated
    from tuner.execution.worker import run_worker
    from tuner.specs.spec import load_spec
    from tuner.storage.queue import reserve_trials

    resolved = load_spec(tiny_spec(budget={"n_trials": 3}))
    build = _builder_whose_interrupt_is_swallowed(signal.SIGTERM)
    prepared = prepare_run(resolved, storage_url=sqlite_url, builder=build)
    reserve_trials(prepared.study, total=3)
    with pytest.raises(WorkerTerminated):
        run_worker(prepared.study, prepared.objective)
    first, *probes, requeued = prepared.study.trials
    assert (first.state.name, first.user_attrs.get("fail_reason")) == ("FAIL", "terminated")
    assert [(t.state.name, t.user_attrs.get("probe")) for t in probes] == [("WAITING", True)] * 2
    assert requeued.state.name == "WAITING"
    assert requeued.system_attrs["fixed_params"] == first.params
