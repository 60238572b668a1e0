"""Storage faults without Keras: concurrent SQLite workers, dead workers reaped, passwords.

A trivial objective runs through tuner's storage layer and worker loop in real
processes, so these tests are fast and still provoke the real races and deaths.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import optuna
import pytest
from optuna.trial import TrialState

from tests.conftest import PG_ADMIN_URL, ROOT
from tuner.storage.engine import CONNECTIONS_PER_WORKER

# A worker process: the trial loop of `tuner worker`, with a cheap objective instead of Keras.
WORKER = """
import sys, time, optuna
from tuner.storage import open_storage
from tuner.execution.worker import run_worker
url, name, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
study = optuna.load_study(study_name=name, storage=open_storage(url),
                          sampler=optuna.samplers.RandomSampler())
def objective(trial):
    x = trial.suggest_float("x", -1, 1)
    time.sleep(seconds)
    return x * x
print(run_worker(study, objective).reason)
"""
FAST_HEARTBEAT = {"TUNER_HEARTBEAT_INTERVAL": "1", "TUNER_GRACE_PERIOD": "3"}


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **FAST_HEARTBEAT, **extra}


def _start_worker(url: str, name: str, seconds: float, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, url, name, str(seconds)],
        env=_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _queued_study(url: str, total: int) -> optuna.Study:
    from tuner.storage import open_storage
    from tuner.storage.queue import reserve_trials

    study = optuna.create_study(study_name="fast", storage=open_storage(url))
    assert reserve_trials(study, total=total) == total
    return study


def test_two_sqlite_workers_run_200_trials_without_locking(sqlite_url):
    study = _queued_study(sqlite_url, 200)
    workers = [_start_worker(sqlite_url, "fast", 0) for _ in range(2)]
    outputs = [w.communicate(timeout=120) for w in workers]
    for worker, (out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
        assert out.strip() == "drained"
        assert "database is locked" not in err
    trials = study.get_trials()
    assert len(trials) == 200
    assert {t.state for t in trials} == {TrialState.COMPLETE}
    assert sorted(t.number for t in trials) == list(range(200))


def _wait_for(predicate, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def _running(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    # Only trials whose parameters are already sampled: a trial is RUNNING a moment
    # before its first suggest lands, and signalling then would test nothing.
    return [t for t in study.get_trials(states=(TrialState.RUNNING,)) if t.params]


def test_killed_worker_trial_is_reaped_on_demand_and_requeued(sqlite_url, cli):
    study = _queued_study(sqlite_url, 1)
    worker = _start_worker(sqlite_url, "fast", 60)
    [trial] = _wait_for(lambda: _running(study), timeout=30, what="a RUNNING trial")
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    time.sleep(4)  # the grace period; no other worker exists to notice
    reaped = cli("storage", "reap", "--storage", sqlite_url, env=FAST_HEARTBEAT)
    assert reaped.returncode == 0, reaped.stderr
    assert f"fast: failed and re-queued trials {trial.number}" in reaped.stdout
    failed, retry = study.get_trials()
    assert failed.state == TrialState.FAIL
    assert retry.state == TrialState.WAITING
    assert retry.params == trial.params


def test_sigterm_fails_and_requeues_the_running_trial_within_10s(sqlite_url):
    study = _queued_study(sqlite_url, 1)
    worker = _start_worker(sqlite_url, "fast", 60)
    [trial] = _wait_for(lambda: _running(study), timeout=30, what="a RUNNING trial")
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=10)
    first, requeued = study.get_trials()
    assert first.state == TrialState.FAIL
    assert first.user_attrs["fail_reason"] == "terminated"
    assert requeued.state == TrialState.WAITING
    assert requeued.system_attrs["fixed_params"] == trial.params


def test_a_worker_with_a_trial_limit_hands_over_until_the_budget_is_spent(sqlite_url):
    from tuner.execution.worker import run_worker

    study = _queued_study(sqlite_url, 4)
    study.sampler = optuna.samplers.RandomSampler()

    def objective(trial):
        return trial.suggest_float("x", -1, 1) ** 2

    outcomes = [run_worker(study, objective, max_trials=2) for _ in range(2)]
    # At its limit with nothing left, the second says so rather than ask for a successor.
    assert [(o.reason, o.trials) for o in outcomes] == [("trial_limit", 2), ("drained", 2)]
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE] * 4


def test_doctor_warns_about_sqlite_with_many_workers(sqlite_url, cli):
    _queued_study(sqlite_url, 1)
    ok = cli("storage", "doctor", "--storage", sqlite_url)
    assert ok.returncode == 0, ok.stderr
    assert "backend      sqlite" in ok.stdout and "healthy" in ok.stdout
    many = cli("storage", "doctor", "--storage", sqlite_url, "--workers", "8")
    assert many.returncode == 1
    assert "SQLite is for one machine and a few workers" in many.stdout
    upgraded = cli("storage", "upgrade", "--storage", sqlite_url)
    assert upgraded.returncode == 0 and "is up to date" in upgraded.stdout


@pytest.mark.postgres
def test_postgres_doctor_shows_connection_budget_and_stale_trials(postgres_url, cli):
    study = _queued_study(postgres_url, 1)
    worker = _start_worker(postgres_url, "fast", 60)
    _wait_for(lambda: _running(study), timeout=30, what="a RUNNING trial")
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    time.sleep(4)
    found = cli(
        "storage", "doctor", "--storage", postgres_url, "--workers", "4", env=FAST_HEARTBEAT
    )
    assert found.returncode == 1
    assert "backend      postgresql" in found.stdout
    per_worker = CONNECTIONS_PER_WORKER + 1  # as the doctor counts a worker
    assert f"4 workers need up to {4 * per_worker}" in found.stdout
    assert "are RUNNING without a heartbeat" in found.stdout
    too_many = cli("storage", "doctor", "--storage", postgres_url, "--workers", "200")
    assert f"200 workers need up to {200 * per_worker} connections" in too_many.stdout


@pytest.mark.postgres
def test_password_with_odd_characters_works_and_never_shows(postgres_url, cli, tmp_path):
    import sqlalchemy as sa

    from tuner.execution.supervisor import worker_command, worker_env
    from tuner.storage import open_storage

    password = "p{}@%:w0rd"
    role = f"tuner_pw_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    database = postgres_url.rsplit("/", 1)[1]
    with admin.connect() as conn:
        quoted = password.replace(":", "\\:")  # a colon would start a bind parameter
        conn.execute(sa.text(f"create role {role} login password '{quoted}'"))
        conn.execute(sa.text(f'grant all on database "{database}" to {role}'))
        conn.execute(sa.text(f'alter database "{database}" owner to {role}'))
    try:
        bare = f"postgresql://{role}@127.0.0.1:5432/{database}"
        in_url = sa.engine.make_url(bare).set(password=password)
        secret = tmp_path / "db_password"
        secret.write_text(password + "\n")
        # From a secret file, from the environment, and written (percent-encoded) in the URL.
        for env, url in (
            ({"TUNER_DB_PASSWORD_FILE": str(secret)}, bare),
            ({"TUNER_DB_PASSWORD": password}, bare),
            ({}, in_url.render_as_string(hide_password=False)),
        ):
            os.environ.update(env)
            try:
                assert open_storage(url).engine.url.password == password
            finally:
                for key in env:
                    os.environ.pop(key)
            done = cli("storage", "doctor", "--storage", url, env=env)
            assert done.returncode == 0, done.stderr
            assert password not in done.stdout + done.stderr
            assert "backend      postgresql" in done.stdout
        refused = cli(
            "storage",
            "doctor",
            "--storage",
            bare.replace("5432", "1"),
            env={"TUNER_DB_PASSWORD": password},
        )
        assert refused.returncode != 0 and password not in refused.stdout + refused.stderr
        argv = worker_command("s", in_url.render_as_string(hide_password=False), data_dir=tmp_path)
        # Percent-encoded in a URL, the password would not show as itself: parse it back.
        assert sa.engine.make_url(argv[argv.index("--storage") + 1]).password is None
        assert not any(password in arg for arg in argv)
        assert (
            worker_env(f"postgresql://{role}:secret@h/db", threads=1, gpu=None)["TUNER_DB_PASSWORD"]
            == "secret"
        )
    finally:
        study_db = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
        with study_db.connect() as conn:
            conn.execute(sa.text(f"drop owned by {role}"))
        study_db.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'alter database "{database}" owner to postgres'))
            conn.execute(sa.text(f"drop owned by {role}"))
            conn.execute(sa.text(f"drop role {role}"))
        admin.dispose()
