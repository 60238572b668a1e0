"""The one trial loop: every way of running a study runs its trials here.

``tuner run`` (in this process), each ``tuner worker`` (and so ``tuner run --workers``),
``tuner.tune`` and ``tuner.optimize`` all call :func:`run_worker`: it takes one trial at
a time from the study's queue (:mod:`tuner.storage.queue`: queued trials first, then the
budget), runs it under a heartbeat and records its outcome whatever happens, so the
budget is exact and the faults are survived alike on every path.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuner import records
from tuner._optuna_compat import (
    optimize_loop,
    stop_requested,
    storage_of,
    tell_quickly,
    trial_id_of,
    written_so_far,
)
from tuner.errors import StorageError
from tuner.execution.signals import Sigterm, WorkerTerminated, noting_ctrl_c
from tuner.storage.claims import BudgetSpent
from tuner.storage.outage import through_outage
from tuner.storage.queue import (
    claim_retry_of,
    heartbeat_interval,
    reaper,
    resilient_storage,
    take_trial,
    work_left,
)
from tuner.trial import interrupts
from tuner.trial.objective import OUT_OF_MEMORY, TrialFailed, failure_reason

Objective = Callable[[optuna.Trial], float | Sequence[float]]
TrialCallback = Callable[[optuna.Study, FrozenTrial], None]

IDLE_WAITS_S = (0.05, 2.0)  # first and longest wait between looks while others run trials
TERMINATED = "terminated"
INTERRUPTED = "interrupted"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerOutcome:
    """Why a worker stopped: ``drained`` (no trial left), ``out_of_memory`` (out of GPU
    memory: start a fresh process), ``trial_limit`` (ran its ``max_trials`` while work is
    left: start a fresh process), ``deadline`` (its time is up), or ``stopped`` (the study
    was stopped: circuit breaker, or a callback calling ``study.stop()``)."""

    reason: str
    trials: int


class CircuitBreaker:
    """Stops the study after ``limit`` consecutive FAIL trials, so a broken setup
    does not burn the night.

    A diverged trial is a result of the search (α too large), not a broken setup: it
    neither counts nor resets the count.
    """

    def __init__(self, *, limit: int) -> None:
        self.limit = limit
        self.consecutive = 0
        self.tripped = False
        self.last_reason = ""

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        reason = str(trial.user_attrs.get(records.FAIL_REASON, "unknown"))
        if trial.state != TrialState.FAIL:
            self.consecutive = 0
            return
        if reason == records.DIVERGED:
            return
        self.consecutive += 1
        self.last_reason = reason
        if self.consecutive >= self.limit:
            self.tripped = True
            study.stop()


def run_worker(
    study: optuna.Study,
    objective: Objective,
    *,
    callbacks: Sequence[TrialCallback] = (),
    max_trials: int | None = None,
    deadline: float | None = None,
    spend: bool = True,
    replaceable: bool = False,
) -> WorkerOutcome:
    """Run the study's trials, queued ones first, then its budget, one at a time until
    none is left, until this worker ran ``max_trials``, or until ``deadline``
    (``time.monotonic()``) has passed; ``spend=False`` runs new trials without a budget
    (a run bounded by its deadline alone). A ``replaceable`` worker (one that a supervisor
    replaces: ``tuner worker``, a Ray actor) stops after a trial out of memory, as only a
    process's end gives its GPU memory back; any other runs the next trial in the memory
    TensorFlow keeps.

    While other workers' trials are RUNNING, the worker waits for them: a trial whose
    worker died is re-queued after the grace period and must not be left behind.
    SIGTERM fails the running trial with reason ``terminated``, re-queues its parameters
    and raises :class:`~tuner.execution.signals.WorkerTerminated`; Ctrl-C fails it with
    reason ``interrupted`` and raises ``KeyboardInterrupt``.

    Example:
        >>> from tuner.execution.run import join_study
        >>> prepared = join_study("sqlite:///tuner.db", "digits-mlp")
        >>> run_worker(prepared.study, prepared.objective).reason    # its 12 trials are done
        'drained'
    """
    done = 0
    sigterm = Sigterm()
    reap = reaper(study)
    idle = _idle_waits()
    # As inside Study.optimize: callbacks (the circuit breaker) may call study.stop().
    with optimize_loop(study), sigterm.installed(), noting_ctrl_c():
        while not stop_requested(study):
            if sigterm.requested:
                raise WorkerTerminated()
            if max_trials is not None and done >= max_trials:
                return WorkerOutcome("trial_limit" if work_left(study) else "drained", done)
            if deadline is not None and time.monotonic() >= deadline:
                return WorkerOutcome("deadline", done)
            trial = through_outage(lambda: _next_trial(study, reap, spend=spend))
            if trial is None:
                if not through_outage(lambda: _others_running(study)):
                    return WorkerOutcome("drained", done)
                time.sleep(next(idle))
                continue
            frozen = run_trial(study, trial, objective, sigterm=sigterm)
            done += 1
            idle = _idle_waits()
            if frozen is None:  # taken back by another worker: its retry runs elsewhere
                continue
            # Optuna's own "Trial N finished" is not logged by the quick tell: say it here,
            # for callers who turn logging on (the CLI and the API show it only then).
            log.info(
                "trial %s finished: %s, values %s, params %s",
                frozen.number,
                frozen.state.name.lower(),
                frozen.values,
                frozen.params,
            )
            for callback in callbacks:
                callback(study, frozen)
            if replaceable and frozen.user_attrs.get(records.FAIL_REASON) == OUT_OF_MEMORY:
                return WorkerOutcome("out_of_memory", done)
    return WorkerOutcome("stopped", done)


def _next_trial(study: optuna.Study, reap: Callable[[], None], *, spend: bool) -> Any:
    reap()
    return take_trial(study, spend=spend)


def _others_running(study: optuna.Study) -> bool:
    return bool(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def run_trial(
    study: optuna.Study,
    trial: optuna.Trial,
    objective: Objective,
    *,
    sigterm: Sigterm | None = None,
) -> FrozenTrial | None:
    """Run one taken trial under a heartbeat and record its outcome, whatever happens.

    None when another worker failed the trial as stale meanwhile and its retry already
    runs elsewhere: the result here is dropped, so that no trial counts twice. A fault of
    the whole study (:class:`~tuner.errors.StorageError`: disk full, database file gone)
    propagates, as no outcome can be recorded.
    """
    value: float | Sequence[float] | None = None
    state: TrialState | None = None
    interrupted: KeyboardInterrupt | None = None
    with _heartbeat(study, trial_id_of(trial)):
        try:
            with sigterm.armed() if sigterm else contextlib.nullcontext():
                value = objective(trial)
        except optuna.TrialPruned:
            state = TrialState.PRUNED
        except KeyboardInterrupt as exc:
            state, interrupted = TrialState.FAIL, exc
        except StorageError:
            raise
        except Exception as exc:  # one bad trial never stops a worker
            state = TrialState.FAIL
            noted = interrupts.received()
            if noted is not None:  # TensorFlow turned the interrupt into this error
                interrupted = noted()
            elif not isinstance(exc, TrialFailed):  # the objective stored its own reason
                trial.set_user_attr(records.FAIL_REASON, failure_reason(exc))
    why = TERMINATED if isinstance(interrupted, WorkerTerminated) else INTERRUPTED
    if interrupted is not None:
        trial.set_user_attr(records.FAIL_REASON, why)
    # Its reads too wait out an outage: the result must reach the study once it is back.
    frozen = through_outage(lambda: _tell(study, trial, value, state))
    if isinstance(interrupted, WorkerTerminated) and frozen is not None:
        # Whoever stops a worker does not mean to shrink the study: the trial runs again.
        study.enqueue_trial(dict(frozen.params))
    if interrupted is not None:
        interrupted.add_note(f"trial {trial.number} is marked failed ({why})")  # for messages
        raise interrupted
    return frozen


@contextlib.contextmanager
def _heartbeat(study: optuna.Study, trial_id: int) -> Iterator[None]:
    """Beat every heartbeat interval while the trial runs.

    Optuna's heartbeat thread beats at once; taking the trial wrote that beat already
    (``tuner.storage``), so this one waits an interval first: one write less per trial.
    """
    interval = heartbeat_interval(study)
    storage = resilient_storage(study)
    if interval is None or storage is None:
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
    study: optuna.Study,
    trial: optuna.Trial,
    value: float | Sequence[float] | None,
    state: TrialState | None,
) -> FrozenTrial | None:
    try:
        return tell_quickly(study, trial, value, state)
    except (ValueError, optuna.exceptions.UpdateFinishedTrialError):
        stale = storage_of(study).get_trial(trial_id_of(trial))
        if stale.state != TrialState.FAIL:
            raise
    # Failed as stale while it ran here (stopped, starved, cut off from the database past
    # the grace period). The reaper queued a retry: a result is kept in it if no one took
    # it yet, else dropped, as the retry counts for this trial and runs elsewhere.
    if value is not None and state in (None, TrialState.COMPLETE):
        kept = _keep_in_retry(study, trial, stale.number, value)
        if kept is not None:
            return kept
    log.warning(
        "trial %s was failed as stale while it ran here; its retry runs instead, this "
        "result is dropped",
        stale.number,
    )
    return None


def _keep_in_retry(
    study: optuna.Study, trial: optuna.Trial, number: int, value: float | Sequence[float]
) -> FrozenTrial | None:
    """Record ``value`` in the retry queued for trial ``number``, if no one took it yet;
    with no retry queued (retries spent), in a new trial, if the budget has one left."""
    written = written_so_far(trial)
    retry = claim_retry_of(study, number)
    if retry is None:
        if _retry_exists(study, number):
            return None
        return _recovered_trial(study, written, number, value)
    storage = storage_of(study)
    for name, model_value in written.params.items():
        dist = written.distributions[name]
        storage.set_trial_param(trial_id_of(retry), name, dist.to_internal_repr(model_value), dist)
    for key, attr in {**written.user_attrs, records.RECOVERED_FROM: number}.items():
        retry.set_user_attr(key, attr)
    for step, intermediate in written.intermediate_values.items():
        storage.set_trial_intermediate_value(trial_id_of(retry), step, intermediate)
    for key, limit in written.constraints.items():  # an infeasible result must stay so
        retry.set_constraint(key, limit)
    log.warning("trial %s was failed as stale while it ran; its result is kept", number)
    return tell_quickly(study, retry, value, TrialState.COMPLETE)


def _retry_exists(study: optuna.Study, number: int) -> bool:
    return any(
        t.system_attrs.get("retry_history", [None])[-1] == number
        for t in study.get_trials(deepcopy=False)
    )


def _recovered_trial(
    study: optuna.Study, written: FrozenTrial, number: int, value: float | Sequence[float]
) -> FrozenTrial | None:
    recovered = optuna.trial.create_trial(
        params=written.params,
        distributions=written.distributions,
        values=list(value) if isinstance(value, Sequence) else [value],
        intermediate_values=written.intermediate_values,
        user_attrs={**written.user_attrs, records.RECOVERED_FROM: number},
        constraints=written.constraints,  # an infeasible result must stay so
    )
    storage = resilient_storage(study)
    try:
        with storage.spending_budget() if storage else contextlib.nullcontext():
            study.add_trial(recovered)
    except BudgetSpent:
        return None
    log.warning("trial %s was failed as stale while it ran; its result is kept", number)
    trials = reversed(study.get_trials(deepcopy=False))
    return next(t for t in trials if t.user_attrs.get(records.RECOVERED_FROM) == number)


def _idle_waits() -> Iterator[float]:
    """Waits between looks while other workers' trials run: short at first, as theirs may
    be ending (a short study would otherwise wait for nothing), then ever longer."""
    wait, longest = IDLE_WAITS_S
    while True:
        yield wait
        wait = min(wait * 2, longest)
