"""The study's trial queue: every claim, the budget, re-queues and reaping.

The study's budget is a count of trials still to create (:func:`reserve_trials`, run once
by whoever creates the study); a worker takes one trial at a time (:func:`take_trial`):
a queued (WAITING) trial first, else a new one that spends the budget in the transaction
that creates it. So any number of workers on any number of machines run exactly the
requested number of trials and no worker needs to know of the others. A trial whose
worker died is failed after the grace period and re-queued with the same parameters
(:func:`reap_study`), so the study still reaches its count.

Optuna's own ``Study.optimize`` creates a new trial whenever the queue is empty, which
overshoots the budget by up to one trial per worker; hence this queue.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import optuna
from optuna.trial import TrialState

from tuner import records
from tuner.storage.resilient import BudgetSpent, ResilientRDBStorage

COUNTED = (
    TrialState.COMPLETE,
    TrialState.PRUNED,
    TrialState.FAIL,
    TrialState.RUNNING,
    TrialState.WAITING,
)


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


def take_trial(study: optuna.Study) -> optuna.Trial | None:
    """``Study.ask`` within the budget: a queued trial first (enqueued configurations,
    retries), else a new one that spends the budget; None when neither is left."""
    study._thread_local.cached_all_trials = None  # as ask() does: sample from fresh trials
    storage = rdb_storage(study)
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


def work_left(study: optuna.Study) -> bool:
    """Whether the study has trials to create, queued, or running (and so may be re-queued)."""
    if study.user_attrs.get(records.BUDGET, 0) > 0:
        return True
    return bool(study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING)))


def claim_retry_of(study: optuna.Study, number: int) -> optuna.Trial | None:
    for waiting in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        is_retry = waiting.system_attrs.get("retry_history", [None])[-1] == number
        if is_retry and study._storage.set_trial_state_values(
            waiting._trial_id, TrialState.RUNNING
        ):
            return optuna.Trial(study, waiting._trial_id)
    return None


def rdb_storage(study: optuna.Study) -> ResilientRDBStorage:
    storage = getattr(study._storage, "_backend", study._storage)  # under Optuna's cache
    if not isinstance(storage, ResilientRDBStorage):
        raise TypeError("workers need a study opened with tuner.storage.open_storage")
    return storage


def reaper(study: optuna.Study) -> Callable[[], None]:
    """Reaping, at most once per heartbeat interval: a trial turns stale a grace period
    after its last beat, so looking before every trial finds nothing sooner."""
    interval = rdb_storage(study).get_heartbeat_interval() or 0
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
