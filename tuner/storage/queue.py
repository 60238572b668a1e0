"""The study's trial queue: every claim, the budget, re-queues and reaping.

One budget rule for every way of running a study (``tuner run`` in-process or with
``--workers``, ``tuner worker``, ``tuner.tune``, ``tuner.optimize``): the study's total is
recorded in storage and turned into a budget of trials still to create
(:func:`reserve_trials`); a worker takes one trial at a time (:func:`take_trial`): a
queued (WAITING) trial first, else a new one that spends the budget in the transaction
that creates it. So any number of workers in any number of processes and machines run
exactly the requested number of trials, and none needs to know of the others. A trial
whose worker died is failed after the grace period and re-queued with the same
parameters (:func:`reap_study`), so the study still reaches its count.

Optuna's own ``Study.optimize`` creates a new trial whenever the queue is empty, which
overshoots the budget by up to one trial per worker; hence this queue. A study kept in
memory (``tuner.optimize`` without storage) has one process and follows the same rule
with plain attribute writes (so does a study that plain Optuna opened).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import optuna
from optuna.trial import TrialState

from tuner import records
from tuner._optuna_compat import (
    backend_of,
    forget_cached_trials,
    stale_trial_ids,
    storage_of,
    study_id_of,
    trial_id_of,
)
from tuner.storage.claims import COUNTED, FINISHED, BudgetSpent
from tuner.storage.resilient import ResilientRDBStorage

# The reason stored on a trial the reaper failed (and re-queued, while retries are left).
STALE = "stale: its worker sent no heartbeat for the grace period (stopped, killed or cut off)"

__all__ = [
    "COUNTED",
    "FINISHED",
    "STALE",
    "claim_retry_of",
    "heartbeat_interval",
    "reap_study",
    "reaper",
    "reserve_trials",
    "reserved_trials",
    "resilient_storage",
    "spend_on_queued",
    "take_trial",
    "work_left",
]


def reserve_trials(study: optuna.Study, *, total: int) -> int:
    """Record that the study ends with ``total`` trials; returns the trials still to run:
    those to create plus those queued (the baseline, enqueued ones, retries).

    Queued trials count, as they run first; a FAIL trial that was retried is replaced by
    its retry, so it does not count. Safe to call again (``--resume --n-trials N``) and
    from every process that joins, at once: the count and the new budget are one
    transaction.

    Example:
        >>> len(study.trials)
        12
        >>> reserve_trials(study, total=20)   # then start workers anywhere
        8
    """
    storage = resilient_storage(study)
    if storage is None:
        _reserve_in_process(study, total=total)
    else:
        storage.reserve(study_id_of(study), total=total)
    return reserved_trials(study)


def spend_on_queued(study: optuna.Study, count: int) -> None:
    """Count ``count`` trials just queued (``tuner enqueue``) within the study's budget,
    so that they run instead of new trials and the study keeps its total."""
    storage = resilient_storage(study)
    if storage is None:
        left = int(study.user_attrs.get(records.BUDGET, 0))
        study.set_user_attr(records.BUDGET, max(0, left - count))
    else:
        storage.move_budget(study_id_of(study), -count)


def reserved_trials(study: optuna.Study) -> int:
    """Trials the study still has to run: its budget plus its queued trials."""
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    return int(study.user_attrs.get(records.BUDGET, 0)) + len(waiting)


def take_trial(study: optuna.Study, *, spend: bool = True) -> optuna.Trial | None:
    """``Study.ask`` within the budget: a queued trial first (enqueued configurations,
    retries), else a new one that spends the budget; None when neither is left.

    ``spend=False`` (a run bounded by time alone) creates trials without a budget.
    """
    forget_cached_trials(study)  # as ask() does: sample from fresh trials
    storage = resilient_storage(study)
    if storage is None:
        return _take_in_process(study, spend=spend)
    trial_id = storage.claim_next(study_id_of(study))
    if trial_id is not None:
        # Optuna's cache learns of a trial it did not create only by reading the study,
        # and suggest() needs the cache to know it.
        storage_of(study).get_all_trials(study_id_of(study), deepcopy=False, states=())
        return optuna.Trial(study, trial_id)
    if not spend:
        return optuna.Trial(study, storage_of(study).create_new_trial(study_id_of(study)))
    with storage.spending_budget():
        try:
            trial_id = storage_of(study).create_new_trial(study_id_of(study))
        except BudgetSpent:
            return None
    return optuna.Trial(study, trial_id)


def work_left(study: optuna.Study) -> bool:
    """Whether the study has trials to create, queued, or running (and so may be re-queued)."""
    if study.user_attrs.get(records.BUDGET, 0) > 0:
        return True
    return bool(study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING)))


def claim_retry_of(study: optuna.Study, number: int) -> optuna.Trial | None:
    """Claim the WAITING retry that the reaper queued for trial ``number``, if still there."""
    for waiting in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        is_retry = waiting.system_attrs.get("retry_history", [None])[-1] == number
        if is_retry and storage_of(study).set_trial_state_values(
            trial_id_of(waiting), TrialState.RUNNING
        ):
            return optuna.Trial(study, trial_id_of(waiting))
    return None


def resilient_storage(study: optuna.Study) -> ResilientRDBStorage | None:
    """The study's storage when tuner opened it (:func:`tuner.storage.open_storage`);
    None for a study kept in memory, or opened by plain Optuna (one process at a time:
    its budget is read, then written)."""
    storage = backend_of(study)
    return storage if isinstance(storage, ResilientRDBStorage) else None


def heartbeat_interval(study: optuna.Study) -> int | None:
    """Seconds between a running trial's heartbeats; None where nothing beats."""
    storage = resilient_storage(study)
    return None if storage is None else storage.get_heartbeat_interval()


def reaper(study: optuna.Study) -> Callable[[], None]:
    """Reaping, at most once per heartbeat interval: a trial turns stale a grace period
    after its last beat, so looking before every trial finds nothing sooner."""
    interval = heartbeat_interval(study)
    due = 0.0

    def reap() -> None:
        nonlocal due
        if interval is not None and time.monotonic() >= due:
            _reap(study)
            due = time.monotonic() + interval

    return reap


def reap_study(study: optuna.Study) -> list[int]:
    """Fail (and re-queue) the study's stale RUNNING trials now; returns their numbers."""
    running = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    _reap(study)
    failed = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))}
    return sorted(running & failed)


def _reap(study: optuna.Study) -> None:
    storage = resilient_storage(study)
    if storage is None:
        return
    # Say why, while the trials are still RUNNING (a FAIL trial takes no more attributes).
    for trial_id in stale_trial_ids(storage, study_id_of(study)):
        storage.set_trial_user_attr(trial_id, records.FAIL_REASON, STALE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _reserve_in_process(study: optuna.Study, *, total: int) -> None:
    counted = study.get_trials(deepcopy=False, states=COUNTED)
    retried = {n for t in counted for n in t.system_attrs.get("retry_history", [])}
    study.set_user_attr(records.BUDGET, max(0, total - (len(counted) - len(retried))))


def _take_in_process(study: optuna.Study, *, spend: bool) -> optuna.Trial | None:
    # One process owns an in-memory study, so reading then writing the budget is safe.
    if spend and not study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        budget = int(study.user_attrs.get(records.BUDGET, 0))
        if budget <= 0:
            return None
        study.set_user_attr(records.BUDGET, budget - 1)
    return study.ask()  # a queued trial first, as Optuna pops the queue before sampling
