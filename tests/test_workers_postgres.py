"""Many real Keras workers on the real PostgreSQL: exact budgets and faults survived.

The commands are the ones docker-compose.yml runs (`tuner run --queue-only`, then
`tuner worker`), and `tuner run --workers N`, whose supervisor restarts dead workers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
import sqlalchemy as sa
from optuna.trial import TrialState

from tests.conftest import PG_ADMIN_URL, ROOT, TAME_OVERRIDES

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
# Short enough for a test, long enough that a CPU-starved worker is not taken for dead.
FAST_HEARTBEAT = {"TUNER_HEARTBEAT_INTERVAL": "1", "TUNER_GRACE_PERIOD": "6"}
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def _spec(tiny_spec, *, epochs: int, n_trials: int, max_rows: int = 600):
    return tiny_spec(
        data={"source": "digits", "max_rows": max_rows},
        training={"max_epochs": epochs},
        space={"overrides": TAME_OVERRIDES},
        budget={"n_trials": n_trials},
    )


def _tuner(*args: str, **env: str) -> subprocess.Popen[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "TUNER_STORAGE"}
    full_env.update({"PYTHONPATH": str(ROOT), **env})
    return subprocess.Popen(
        [sys.executable, "-m", "tuner", *args],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _study(url: str) -> optuna.Study:
    return optuna.load_study(study_name="tiny", storage=url)


def _running_with_worker(url: str, *, exclude: set[int] = frozenset()):  # type: ignore[assignment]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            running = _study(url).get_trials(states=(TrialState.RUNNING,))
        except KeyError:  # `tuner run` has not created the study yet
            running = []
        for trial in running:
            # The seed is recorded once every parameter is chosen (the worker before that).
            if "seed" in trial.user_attrs and trial.number not in exclude:
                return trial
        time.sleep(0.5)
    pytest.fail("no trial started training within 120 s")


def _pid(trial) -> int:
    return int(trial.user_attrs["worker"].rsplit(":", 1)[1])


def _state_within(url: str, number: int, seconds: float) -> tuple[TrialState, float]:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        [trial] = [t for t in _study(url).get_trials() if t.number == number]
        if trial.state != TrialState.RUNNING:
            return trial.state, time.monotonic() - started
        time.sleep(0.2)
    return TrialState.RUNNING, seconds


def test_four_workers_finish_exactly_the_requested_trials(postgres_url, tiny_spec, cli):
    spec = _spec(tiny_spec, epochs=2, n_trials=6, max_rows=300)
    queued = cli("run", str(spec), "--storage", postgres_url, "--queue-only")
    assert queued.returncode == 0, queued.stderr
    assert "6 trials queued" in queued.stderr
    workers = [
        _tuner("worker", "tiny", "--storage", postgres_url, "--threads", "1") for _ in range(4)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
    trials = _study(postgres_url).get_trials()
    assert sorted(t.number for t in trials) == list(range(6))  # none extra, none twice
    assert all(t.state in FINISHED for t in trials)
    completed = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(completed) == 6 and all(t.value is not None for t in completed)
    assert len({t.user_attrs["worker"] for t in trials}) >= 2  # the work was shared


def test_terminated_and_killed_workers_fail_their_trials_and_the_study_finishes(
    postgres_url, tiny_spec
):
    spec = _spec(tiny_spec, epochs=80, n_trials=3, max_rows=1797)
    run = _tuner("run", str(spec), "--storage", postgres_url, "--workers", "2", **FAST_HEARTBEAT)
    try:
        first = _running_with_worker(postgres_url)
        os.kill(_pid(first), signal.SIGTERM)
        state, seconds = _state_within(postgres_url, first.number, 10)
        assert state == TrialState.FAIL, f"trial still RUNNING {seconds:.1f}s after SIGTERM"
        second = _running_with_worker(postgres_url, exclude={first.number})
        os.kill(_pid(second), signal.SIGKILL)
        state, seconds = _state_within(postgres_url, second.number, 6 + 6)
        assert state == TrialState.FAIL, "killed worker's trial not failed within the grace period"
        _, err = run.communicate(timeout=400)
    finally:
        run.kill()
    assert run.returncode == 0, err
    assert "stopped (SIGKILL): starting a new one" in err
    trials = _study(postgres_url).get_trials()
    by_number = {t.number: t for t in trials}
    assert by_number[first.number].user_attrs["fail_reason"] == "terminated"
    assert len([t for t in trials if t.state == TrialState.COMPLETE]) == 3
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == second.number]
    assert retried and retried[0].params == by_number[second.number].params
    requeued = [t for t in trials if t.number > first.number and t.params == first.params]
    assert requeued, "the terminated trial's parameters were not run again"


def test_result_is_recorded_when_the_database_connection_is_terminated(postgres_url, tiny_spec):
    spec = _spec(tiny_spec, epochs=40, n_trials=1, max_rows=1797)
    run = _tuner("run", str(spec), "--storage", postgres_url, "--workers", "1")
    try:
        trial = _running_with_worker(postgres_url)
        database = postgres_url.rsplit("/", 1)[1]
        admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            killed = conn.execute(
                sa.text(
                    "select count(pg_terminate_backend(pid)) from pg_stat_activity "
                    "where datname = :db and pid <> pg_backend_pid()"
                ),
                {"db": database},
            ).scalar_one()
        admin.dispose()
        assert killed >= 1
        _, err = run.communicate(timeout=300)
    finally:
        run.kill()
    assert run.returncode == 0, err
    [done] = _study(postgres_url).get_trials()
    assert done.number == trial.number
    assert done.state == TrialState.COMPLETE and done.value is not None
