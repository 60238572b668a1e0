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
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuner import records
from tuner.execution import signals as interrupts
from tuner.execution.signals import Sigterm, WorkerTerminated
from tuner.storage.queue import claim_retry_of, rdb_storage, reaper, take_trial, work_left
from tuner.trial.objective import TrialFailed, failure_reason

Objective = Callable[[optuna.Trial], float]

TrialCallback = Callable[[optuna.Study, FrozenTrial], None]

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
    sigterm = Sigterm()
    reap = reaper(study)
    idle = _idle_waits()
    # As inside Study.optimize: callbacks (the circuit breaker) may call study.stop().
    study._thread_local.in_optimize_loop = True
    try:
        with sigterm.installed(), interrupts.noting_ctrl_c():
            while not study._stop_flag:
                if sigterm.requested:
                    raise WorkerTerminated()
                if max_trials is not None and done >= max_trials:
                    return WorkerOutcome("trial_limit" if work_left(study) else "drained", done)
                reap()
                trial = take_trial(study)
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
    sigterm: Sigterm | None = None,
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
    storage = rdb_storage(study)
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
    retry = claim_retry_of(study, stale.number)
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


def _idle_waits() -> Iterator[float]:
    """Waits between looks while other workers' trials run: short at first, as theirs may
    be ending (a short study would otherwise wait for nothing), then ever longer."""
    wait, longest = IDLE_WAITS_S
    while True:
        yield wait
        wait = min(wait * 2, longest)
