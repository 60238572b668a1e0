"""Faults while a study runs, provoked for real: stopped workers, outages, races, lost files.

Cheap objectives run through tuner's own worker loop and storage in real processes, so
the stalls, races and deaths are real and the tests stay fast; faults that concern the
Keras path (SIGTERM on `tuner run`, a full disk) run the CLI on a tiny study.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa
from optuna.trial import TrialState

from tests.conftest import PG_ADMIN_URL, ROOT, TAME_OVERRIDES, need

FAST_HEARTBEAT = {"TUNER_HEARTBEAT_INTERVAL": "1", "TUNER_GRACE_PERIOD": "3"}
# A worker: `tuner worker`'s trial loop with a cheap objective that reports every step.
WORKER = """
import sys, time, optuna
from tuner.storage import open_storage
from tuner.execution.worker import run_worker
url, name, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
study = optuna.load_study(study_name=name, storage=open_storage(url),
                          sampler=optuna.samplers.RandomSampler())
def objective(trial):
    x = trial.suggest_float("x", -1, 1)
    for step in range(steps):
        trial.report(x * x, step)
        time.sleep(0.2)
    return x * x
print(run_worker(study, objective).reason, flush=True)
"""


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **FAST_HEARTBEAT, **extra}


def _worker(url: str, steps: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, url, "fast", str(steps)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _queued(url: str, total: int) -> optuna.Study:
    from tuner.storage import open_storage
    from tuner.storage.queue import reserve_trials

    study = optuna.create_study(study_name="fast", storage=open_storage(url, heartbeat=False))
    reserve_trials(study, total=total)
    return study


def _wait_for(predicate, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def _running(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(states=(TrialState.RUNNING,)) if t.params]


def _states(study: optuna.Study) -> list[TrialState]:
    return [t.state for t in study.get_trials()]


def _ends_cleanly(worker: subprocess.Popen[str], timeout: float = 120) -> str:
    out, err = worker.communicate(timeout=timeout)
    assert worker.returncode == 0, err
    assert "Traceback" not in err
    assert out.strip() == "drained"
    return err


# Item 1: a worker reaped while alive comes back.


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_stopped_worker_whose_trial_was_taken_back_drops_its_result_and_goes_on(backend, request):
    url = request.getfixturevalue(f"{backend}_url")
    study = _queued(url, 3)
    stopped = _worker(url, steps=15)
    [trial] = _wait_for(lambda: _running(study), timeout=60, what="a RUNNING trial")
    stopped.send_signal(signal.SIGSTOP)
    try:
        time.sleep(4)  # past the grace period: the other worker takes the trial back
        other = _worker(url, steps=15)
        _wait_for(
            lambda: [t for t in _running(study) if t.system_attrs.get("failed_trial") == 0],
            timeout=60,
            what="the retry running in the other worker",
        )
    finally:
        stopped.send_signal(signal.SIGCONT)
    err = _ends_cleanly(stopped)
    _ends_cleanly(other)
    assert "failed as stale" in err
    trials = study.get_trials()
    assert trials[trial.number].state == TrialState.FAIL
    assert trials[trial.number].user_attrs["fail_reason"].startswith("stale")
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 3  # none lost, none twice
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


def test_a_stopped_worker_keeps_its_result_in_the_retry_no_one_took(sqlite_url, cli):
    study = _queued(sqlite_url, 2)
    stopped = _worker(sqlite_url, steps=15)
    [trial] = _wait_for(lambda: _running(study), timeout=60, what="a RUNNING trial")
    stopped.send_signal(signal.SIGSTOP)
    try:
        time.sleep(4)
        reaped = cli("storage", "reap", "--storage", sqlite_url, env=FAST_HEARTBEAT)
        assert reaped.returncode == 0, reaped.stderr
    finally:
        stopped.send_signal(signal.SIGCONT)
    err = _ends_cleanly(stopped)
    assert "its result is kept" in err
    trials = study.get_trials()
    kept = [t for t in trials if t.user_attrs.get("recovered_from") == trial.number]
    assert len(kept) == 1 and kept[0].state == TrialState.COMPLETE
    assert kept[0].params == trial.params and kept[0].intermediate_values
    assert "fail_reason" not in kept[0].user_attrs  # the retry is not a failed trial
    assert _states(study).count(TrialState.COMPLETE) == 2


# Item 1: a database outage longer than the grace period pauses every worker.


# Two ways a database goes away for a user: closed to everyone, or full for the workers'
# non-superuser role (superusers pass CONNECTION LIMIT, so the role must be a plain one).
OUTAGES = {
    "closed": ("allow_connections false", "allow_connections true"),
    "connection-limit": ("connection limit 2", "connection limit -1"),
}
LIMITED_ROLE = "tuner_limited_worker"


def _as_plain_role(url: str, admin: sa.Engine) -> str:
    """The same database owned by, and reached as, a role that is not a superuser."""
    database = url.rsplit("/", 1)[1]
    with admin.connect() as conn:
        exists = conn.execute(
            sa.text("select 1 from pg_roles where rolname = :r"), {"r": LIMITED_ROLE}
        ).first()
        if not exists:
            conn.execute(sa.text(f"create role {LIMITED_ROLE} login nosuperuser"))
        conn.execute(sa.text(f'alter database "{database}" owner to {LIMITED_ROLE}'))
    return url.replace("://postgres@", f"://{LIMITED_ROLE}@", 1)


@contextlib.contextmanager
def _outage(admin: sa.Engine, url: str, kind: str) -> Iterator[None]:
    """The database of ``url`` cut off (OUTAGES[kind]), every backend terminated; restored
    on the way out, however the block ends."""
    database = url.rsplit("/", 1)[1]
    start, end = OUTAGES[kind]
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'alter database "{database}" {start}'))
            conn.execute(
                sa.text(
                    "select pg_terminate_backend(pid) from pg_stat_activity "
                    "where datname = :db and pid <> pg_backend_pid()"
                ),
                {"db": database},
            )
        yield
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'alter database "{database}" {end}'))
        admin.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("outage", sorted(OUTAGES))
def test_an_outage_longer_than_the_grace_period_pauses_workers_and_the_study_resumes(
    postgres_url, outage
):
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    url = _as_plain_role(postgres_url, admin) if outage == "connection-limit" else postgres_url
    study = _queued(url, 6)
    workers = [_worker(url, steps=10) for _ in range(3)]
    _wait_for(lambda: len(_running(study)) >= 3, timeout=60, what="three RUNNING trials")
    with _outage(admin, postgres_url, outage):
        time.sleep(8)  # well past the 3 s grace period
        for worker in workers:
            assert worker.poll() is None, worker.communicate()[1]  # paused, not dead
    try:
        errs = [_ends_cleanly(worker, timeout=180) for worker in workers]
        # One line per change of state: each loss of the database, then its return.
        for err in errs:
            assert err.count("database unreachable") == err.count("reachable again"), err
        losses = [err.count("database unreachable") for err in errs]
        if outage == "closed":  # every worker lost it once
            assert losses == [1, 1, 1], errs
        else:  # two connections for three workers: some waited their turn
            assert sum(losses) >= 1, errs
    finally:
        for worker in workers:  # a worker waits out an outage forever: never leave one behind
            worker.kill()
    trials = study.get_trials()
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 6
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


@pytest.mark.postgres
def test_an_outage_pauses_the_supervisor_of_workers_and_the_run_ends_cleanly(
    postgres_url, tiny_spec
):
    # `tuner run --workers` reads progress and reaps every second from its own process;
    # a closed database must pause it as it pauses the workers, not end the run.
    spec = tiny_spec(
        data={"source": "digits", "max_rows": 300},
        training={"max_epochs": 30},
        space={"overrides": TAME_OVERRIDES},
        budget={"n_trials": 2},
    )
    # Default heartbeats: the 5 s outage stays inside the grace period, nothing is reaped.
    env = {k: v for k, v in os.environ.items() if k != "TUNER_STORAGE"}
    env["PYTHONPATH"] = str(ROOT)
    command = [sys.executable, "-m", "tuner", "run", str(spec), "--storage", postgres_url]
    run = subprocess.Popen(
        [*command, "--workers", "1"], env=env, stderr=subprocess.PIPE, text=True,
        stdout=subprocess.DEVNULL, start_new_session=True,  # its workers go with it below
    )  # fmt: skip
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        study = _wait_for(lambda: _study_or_none(postgres_url), timeout=120, what="the study")
        _wait_for(lambda: _running(study), timeout=120, what="a RUNNING trial")
        with _outage(admin, postgres_url, "closed"):
            time.sleep(5)  # five of the supervisor's polls against a closed database
            # (not communicate(): a crashed run's worker would hold its stderr open)
            assert run.poll() is None, f"the run ended during the outage: {run.returncode}"
        _, err = run.communicate(timeout=300)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode == 0, err
    assert "Traceback" not in err and "unexpected" not in err
    trials = _study_or_none(postgres_url).get_trials()
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 2


# Item 2: concurrent first start on an empty database.


ONE_START = """
import sys, time
from tuner.storage import open_storage
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # all start at the same instant
open_storage(sys.argv[1]).engine.dispose()
"""


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_eight_processes_opening_an_empty_database_at_once_all_succeed(backend, request):
    url = request.getfixturevalue(f"{backend}_url")
    start = str(time.time() + 4)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", ONE_START, url, start],
            env=_env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, "\n".join(errors)
    from tuner.storage import open_storage

    optuna.create_study(study_name="after", storage=open_storage(url))


# Item 4: the SQLite file deleted or emptied under a running study.


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["deleted", "emptied"])
def test_a_deleted_or_emptied_sqlite_file_stops_the_run_with_one_line(fault, tiny_spec, tmp_path):
    db = tmp_path / "study.db"
    spec = tiny_spec(training={"max_epochs": 3}, budget={"n_trials": 30})
    run = subprocess.Popen(
        [sys.executable, "-m", "tuner", "run", str(spec), "--storage", f"sqlite:///{db}"],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    storage = f"sqlite:///{db}"
    _wait_for(
        lambda: db.exists() and _complete_trials(storage) >= 1,
        timeout=180,
        what="a first complete trial",
    )
    if fault == "deleted":
        db.unlink()
    else:
        os.truncate(db, 0)
    _, err = run.communicate(timeout=180)
    assert run.returncode == 1, err
    assert "Traceback" not in err
    assert f"{db} was {fault}" in err
    assert len([line for line in err.splitlines() if line.startswith("Error:")]) == 1


def _complete_trials(url: str) -> int:
    try:
        study = optuna.load_study(study_name="tiny", storage=url)
        return len(study.get_trials(states=(TrialState.COMPLETE,)))
    except Exception:  # not created yet, or locked for a moment
        return 0


# Item 5: the disk fills up mid-trial.


@pytest.fixture
def small_disk(tmp_path: Path):
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
    )
    need(done.returncode == 0, f"cannot mount a small tmpfs here ({done.stderr!r}); needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.slow
def test_a_full_disk_stops_the_run_with_one_line_and_the_study_resumes_once_freed(
    small_disk, tiny_spec, cli
):
    url = f"sqlite:///{small_disk / 'study.db'}"
    spec = tiny_spec(
        data={"source": "digits", "max_rows": 100},
        training={"max_epochs": 2000},
        pruner="none",
        budget={"n_trials": 2},
    )
    full = cli("run", str(spec), "--storage", url, env=FAST_HEARTBEAT, timeout=600)
    assert full.returncode == 1, full.stderr
    assert "Traceback" not in full.stderr
    [line] = [x for x in full.stderr.splitlines() if x.startswith("Error:")]
    assert "database or disk is full" in line and "free space" in line
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    time.sleep(4)  # the dead run's trial turns stale after the grace period
    reaped = cli("storage", "reap", "--storage", url, env=FAST_HEARTBEAT)
    assert reaped.returncode == 0, reaped.stderr
    study = optuna.load_study(study_name="tiny", storage=url)
    assert TrialState.RUNNING not in _states(study)  # nothing left RUNNING, file readable
    assert study.get_trials(states=(TrialState.WAITING,)), "the cut trial is queued again"


# Item 7: SIGTERM to an in-process `tuner run`.


@pytest.mark.slow
def test_sigterm_on_an_in_process_run_fails_the_trial_prints_the_summary_and_exits_143(
    tiny_spec, sqlite_url
):
    spec = tiny_spec(training={"max_epochs": 5000}, budget={"n_trials": 3})
    run = subprocess.Popen(
        [sys.executable, "-m", "tuner", "run", str(spec), "--storage", sqlite_url],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    study = _wait_for(lambda: _study_or_none(sqlite_url), timeout=120, what="the study")
    _wait_for(
        lambda: [t for t in _running(study) if "seed" in t.user_attrs],
        timeout=120,
        what="a trial training",
    )
    time.sleep(1.0)
    run.send_signal(signal.SIGTERM)
    _wait_for(
        lambda: study.get_trials()[0].state == TrialState.FAIL,
        timeout=10,
        what="the running trial marked failed",
    )
    out, err = run.communicate(timeout=120)
    assert run.returncode == 143, err
    assert "Terminated:" in err and "Traceback" not in err
    assert "Study tiny:" in out  # the summary so far
    first, requeued = study.get_trials()[:2]
    assert first.state == TrialState.FAIL and first.user_attrs["fail_reason"] == "terminated"
    assert requeued.state == TrialState.WAITING


def _study_or_none(url: str) -> optuna.Study | None:
    try:
        return optuna.load_study(study_name="tiny", storage=url)
    except Exception:
        return None


# Item 8: two reapers on one stale trial.


def test_failing_a_trial_someone_else_failed_is_not_reported_as_done(sqlite_url):
    from tuner.storage import open_storage

    storage = open_storage(sqlite_url, heartbeat=False)
    study = optuna.create_study(study_name="once", storage=storage)
    trial = study.ask()
    assert storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)


@pytest.mark.postgres
def test_two_reapers_racing_on_one_stale_trial_requeue_it_once(postgres_url):
    from tuner.storage import open_storage
    from tuner.storage.queue import reap_study

    env = {"TUNER_HEARTBEAT_INTERVAL": "1", "TUNER_GRACE_PERIOD": "1"}
    os.environ.update(env)
    try:
        for round_ in range(8):
            name = f"race{round_}"
            reapers = [open_storage(postgres_url) for _ in range(2)]
            study = optuna.create_study(study_name=name, storage=reapers[0])
            trial = study.ask()
            reapers[0].record_heartbeat(trial._trial_id)
            time.sleep(2.2)
            studies = [optuna.load_study(study_name=name, storage=s) for s in reapers]
            barrier = threading.Barrier(2)

            def reap(s: optuna.Study, barrier: threading.Barrier) -> None:
                barrier.wait()
                reap_study(s)

            threads = [threading.Thread(target=reap, args=(s, barrier)) for s in studies]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            retries = study.get_trials(states=(TrialState.WAITING,))
            assert len(retries) == 1, f"round {round_}: re-queued {len(retries)} times"
    finally:
        for key in env:
            os.environ.pop(key)


# Item 17: the message when Ctrl-C finds no trial of this process running.


@pytest.mark.slow
def test_ctrl_c_while_waiting_for_another_workers_trial_says_none_was_running(
    tiny_spec, sqlite_url
):
    spec = tiny_spec(training={"max_epochs": 5000}, budget={"n_trials": 1})
    queued = subprocess.run(
        [sys.executable, "-m", "tuner", "run", str(spec), "--storage", sqlite_url, "--queue-only"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert queued.returncode == 0, queued.stderr
    busy = subprocess.Popen(
        [sys.executable, "-m", "tuner", "worker", "tiny", "--storage", sqlite_url],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        study = optuna.load_study(study_name="tiny", storage=sqlite_url)
        _wait_for(lambda: _running(study), timeout=120, what="the worker's trial")
        idle = subprocess.Popen(
            [sys.executable, "-m", "tuner", "run", str(spec), "--storage", sqlite_url, "--resume"],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # Its first line comes once everything is loaded and the trial loop starts.
        assert "trials to run" in idle.stderr.readline()
        time.sleep(2)  # the loop finds nothing to take and waits for the other's trial
        idle.send_signal(signal.SIGINT)
        _, err = idle.communicate(timeout=60)
    finally:
        busy.kill()
    assert idle.returncode == 130, err
    assert "Interrupted: no trial was running." in err
