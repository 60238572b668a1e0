"""Many workers, one study: the trial budget is held in the storage, faults survived.

The study's budget is a count of trials still to create (:func:`reserve_trials`, run once
by whoever creates the study); each worker takes one trial at a time (:func:`run_worker`):
a queued (WAITING) trial first, else a new one that spends the budget in the transaction
that creates it. So any number of workers on any number of machines run exactly the
requested number of trials and no worker needs to know of the others. A trial whose
worker died is failed after the grace period and re-queued with the same parameters
(``tuner.storage``), so the study still reaches its count.

Optuna's own ``Study.optimize`` creates a new trial whenever the queue is empty, which
overshoots the budget by up to one trial per worker; hence this loop.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuner import interrupts, records
from tuner.interrupts import WorkerTerminated
from tuner.objective import TrialFailed, failure_reason
from tuner.storage import BudgetSpent, ResilientRDBStorage

Objective = Callable[[optuna.Trial], float]
TrialCallback = Callable[[optuna.Study, FrozenTrial], None]
COUNTED = (
    TrialState.COMPLETE,
    TrialState.PRUNED,
    TrialState.FAIL,
    TrialState.RUNNING,
    TrialState.WAITING,
)
IDLE_WAITS_S = (0.05, 2.0)  # first and longest wait between looks while others run trials
OUT_OF_MEMORY = "out of memory"
TERMINATED = "terminated"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerOutcome:
    """Why a worker stopped: ``drained`` (no trial left), ``out_of_memory`` (out of GPU
    memory: start a fresh process), ``trial_limit`` (ran its ``max_trials`` while work is
    left: start a fresh process), or ``stopped`` (the study was stopped, e.g. circuit
    breaker)."""

    reason: str
    trials: int


def reserve_trials(study: optuna.Study, *, total: int) -> int:
    """Set the study's budget so that it ends with ``total`` trials; returns the trials
    still to run: those to create plus those queued (the baseline, enqueued ones).

    Queued (WAITING) trials count, as they run first; a FAIL trial that was retried is
    replaced by its retry, so it does not count. Setting it again (``--resume``) is safe.

    Example:
        >>> reserve_trials(study, total=20)   # then start workers anywhere
        20
    """
    trials = study.get_trials(deepcopy=False, states=COUNTED)
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    missing = max(0, total - (len(trials) - len(retried)))
    study.set_user_attr(records.BUDGET, missing)
    return missing + sum(t.state == TrialState.WAITING for t in trials)


def run_worker(
    study: optuna.Study,
    objective: Objective,
    *,
    callbacks: Sequence[TrialCallback] = (),
    max_trials: int | None = None,
) -> WorkerOutcome:
    """Run the study's trials, queued ones first, then its budget, one at a time until
    none is left, or until this worker ran ``max_trials``.

    While other workers' trials are RUNNING, the worker waits for them: a trial whose
    worker died is re-queued after the grace period and must not be left behind.
    SIGTERM fails the running trial with reason ``terminated``, re-queues its parameters
    and raises :class:`WorkerTerminated`.

    Example:
        >>> prepared = join_study("postgresql://tuner@db/tuner", "digits-mlp")
        >>> run_worker(prepared.study, prepared.objective).reason
        'drained'
    """
    done = 0
    sigterm = _Sigterm()
    reap = _reaper(study)
    idle = _idle_waits()
    # As inside Study.optimize: callbacks (the circuit breaker) may call study.stop().
    study._thread_local.in_optimize_loop = True
    try:
        with sigterm.installed(), interrupts.noting_ctrl_c():
            while not study._stop_flag:
                if sigterm.requested:
                    raise WorkerTerminated()
                if max_trials is not None and done >= max_trials:
                    return WorkerOutcome("trial_limit" if _work_left(study) else "drained", done)
                reap()
                trial = _take_trial(study)
                if trial is None:
                    if not study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                        return WorkerOutcome("drained", done)
                    time.sleep(next(idle))
                    continue
                frozen = run_trial(study, trial, objective, sigterm=sigterm)
                done += 1
                idle = _idle_waits()
                for callback in callbacks:
                    callback(study, frozen)
                if frozen.user_attrs.get(records.FAIL_REASON) == OUT_OF_MEMORY:
                    return WorkerOutcome("out_of_memory", done)
    finally:
        study._thread_local.in_optimize_loop = False
    return WorkerOutcome("stopped", done)


def run_trial(
    study: optuna.Study,
    trial: optuna.Trial,
    objective: Objective,
    *,
    sigterm: _Sigterm | None = None,
) -> FrozenTrial:
    """Run one taken trial under a heartbeat and record its outcome, whatever happens."""
    value: float | None = None
    state: TrialState | None = None
    interrupted: KeyboardInterrupt | None = None
    with _heartbeat(study, trial._trial_id):
        try:
            with sigterm.armed() if sigterm else contextlib.nullcontext():
                value = objective(trial)
        except optuna.TrialPruned:
            state = TrialState.PRUNED
        except TrialFailed:
            state = TrialState.FAIL
        except WorkerTerminated as exc:
            state, interrupted = TrialState.FAIL, exc
            trial.set_user_attr(records.FAIL_REASON, TERMINATED)
        except KeyboardInterrupt as exc:
            state, interrupted = TrialState.FAIL, exc
        except Exception as exc:  # one bad trial never stops a worker
            state = TrialState.FAIL
            trial.set_user_attr(records.FAIL_REASON, failure_reason(exc))
    frozen = _tell(study, trial, value, state)
    if isinstance(interrupted, WorkerTerminated):
        # Whoever stops a worker does not mean to shrink the study: the trial runs again.
        study.enqueue_trial(dict(frozen.params))
    if interrupted is not None:
        raise interrupted
    return frozen


@contextlib.contextmanager
def _heartbeat(study: optuna.Study, trial_id: int) -> Iterator[None]:
    """Beat every heartbeat interval while the trial runs.

    Optuna's heartbeat thread beats at once; taking the trial wrote that beat already
    (``tuner.storage``), so this one waits an interval first: one write less per trial.
    """
    storage = _rdb_storage(study)
    interval = storage.get_heartbeat_interval()
    if interval is None:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            storage.record_heartbeat(trial_id)

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _tell(
    study: optuna.Study, trial: optuna.Trial, value: float | None, state: TrialState | None
) -> FrozenTrial:
    try:
        return _told(study, trial, value, state)
    except ValueError:  # "Cannot tell a FAIL trial": failed as stale while we trained
        stale = study._storage.get_trial(trial._trial_id)
        if stale.state != TrialState.FAIL or value is None:
            raise
    # A false stale (CPU starved, a long database outage): keep the result all the same,
    # in the retry queued for it if no one took that yet, so the study keeps its count.
    log.warning("trial %s was failed as stale while it ran; its result is kept", stale.number)
    retry = _claim_retry_of(study, stale.number)
    if retry is not None:
        for key, attr in stale.user_attrs.items():
            retry.set_user_attr(key, attr)
        retry.set_user_attr(records.RECOVERED_FROM, stale.number)
        return study.tell(retry, value)
    recovered = optuna.trial.create_trial(
        params=stale.params,
        distributions=stale.distributions,
        value=value,
        user_attrs={**stale.user_attrs, records.RECOVERED_FROM: stale.number},
    )
    study.add_trial(recovered)
    trials = reversed(study.get_trials(deepcopy=False))
    return next(t for t in trials if t.user_attrs.get(records.RECOVERED_FROM) == stale.number)


def _told(
    study: optuna.Study, trial: optuna.Trial, value: float | None, state: TrialState | None
) -> FrozenTrial:
    """``study.tell`` without its final read of the whole trial back from the storage.

    The trial's own copy already holds everything written during the trial (parameters,
    attributes, reports); Optuna's tell step returns the state and values it stored.
    """
    from optuna.study._tell import _tell_with_warning

    state, values, _ = _tell_with_warning(
        study=study, trial=trial, value_or_values=value, state=state
    )
    frozen = copy.deepcopy(trial._cached_frozen_trial)
    frozen.state, frozen.values, frozen.datetime_complete = state, values, datetime.now()
    return frozen


def _claim_retry_of(study: optuna.Study, number: int) -> optuna.Trial | None:
    for waiting in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        is_retry = waiting.system_attrs.get("retry_history", [None])[-1] == number
        if is_retry and study._storage.set_trial_state_values(
            waiting._trial_id, TrialState.RUNNING
        ):
            return optuna.Trial(study, waiting._trial_id)
    return None


def _take_trial(study: optuna.Study) -> optuna.Trial | None:
    """``Study.ask`` within the budget: a queued trial first (enqueued configurations,
    retries), else a new one that spends the budget; None when neither is left."""
    study._thread_local.cached_all_trials = None  # as ask() does: sample from fresh trials
    storage = _rdb_storage(study)
    trial_id = storage.claim_next(study._study_id)
    if trial_id is not None:
        # Optuna's cache learns of a trial it did not create only by reading the study,
        # and suggest() needs the cache to know it.
        study._storage.get_all_trials(study._study_id, deepcopy=False, states=())
        return optuna.Trial(study, trial_id)
    with storage.spending_budget():
        try:
            trial_id = study._storage.create_new_trial(study._study_id)
        except BudgetSpent:
            return None
    return optuna.Trial(study, trial_id)


def _work_left(study: optuna.Study) -> bool:
    """Whether the study has trials to create, queued, or running (and so may be re-queued)."""
    if study.user_attrs.get(records.BUDGET, 0) > 0:
        return True
    return bool(study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING)))


def _rdb_storage(study: optuna.Study) -> ResilientRDBStorage:
    storage = getattr(study._storage, "_backend", study._storage)  # under Optuna's cache
    if not isinstance(storage, ResilientRDBStorage):
        raise TypeError("workers need a study opened with tuner.storage.open_storage")
    return storage


def _idle_waits() -> Iterator[float]:
    """Waits between looks while other workers' trials run: short at first, as theirs may
    be ending (a short study would otherwise wait for nothing), then ever longer."""
    wait, longest = IDLE_WAITS_S
    while True:
        yield wait
        wait = min(wait * 2, longest)


def _reaper(study: optuna.Study) -> Callable[[], None]:
    """Reaping, at most once per heartbeat interval: a trial turns stale a grace period
    after its last beat, so looking before every trial finds nothing sooner."""
    interval = _rdb_storage(study).get_heartbeat_interval() or 0
    due = 0.0

    def reap() -> None:
        nonlocal due
        if time.monotonic() >= due:
            _reap(study)
            due = time.monotonic() + interval

    return reap


def _reap(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def reap_study(study: optuna.Study) -> list[int]:
    """Fail (and re-queue) the study's stale RUNNING trials now; returns their numbers."""
    running = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    _reap(study)
    failed = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))}
    return sorted(running & failed)


RETRY_SIGNAL_S = 0.05
_DATABASE_MODULES = ("sqlalchemy", "optuna.storages", "sqlite3", "psycopg")


def _inside_database_call(frame: Any) -> bool:
    while frame is not None:
        if str(frame.f_globals.get("__name__", "")).startswith(_DATABASE_MODULES):
            return True
        frame = frame.f_back
    return False


class _Sigterm:
    """SIGTERM interrupts a running trial at once; between trials it stops the loop
    before the next claim, so no claimed trial is ever left without an outcome."""

    def __init__(self) -> None:
        self.requested = False
        self._armed = False

    def handle(self, signum: int, frame: Any) -> None:
        self.requested = True
        interrupts.note(WorkerTerminated)
        if not self._armed:
            return
        if _inside_database_call(frame):
            # Raising here would leave the call's transaction open (SQLite stays locked
            # and the trial's own FAIL could not be written): try again in 50 ms.
            signal.setitimer(signal.ITIMER_REAL, RETRY_SIGNAL_S)
            return
        raise WorkerTerminated()

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        previous = signal.signal(signal.SIGTERM, self.handle)
        previous_alarm = signal.signal(signal.SIGALRM, self.handle)  # a deferred SIGTERM
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGALRM, previous_alarm)

    @contextlib.contextmanager
    def armed(self) -> Iterator[None]:
        self._armed = True
        try:
            if self.requested:  # arrived while the trial was being claimed
                raise WorkerTerminated()
            yield
        finally:
            self._armed = False
