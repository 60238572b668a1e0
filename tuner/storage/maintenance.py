"""Looking after a study database: what state it is in, upgrading it, reaping dead trials,
masking passwords that older versions stored.

Library side of ``tuner storage doctor|upgrade|reap|mask-secrets``: returns data, prints
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import optuna
from optuna.trial import TrialState

from tuner._optuna_compat import stale_trial_ids, trial_id_of
from tuner.errors import StorageError
from tuner.storage.engine import (
    CONNECTIONS_PER_WORKER,
    connection_budget,
    grace_period_s,
    open_storage,
    sqlite_warning,
)
from tuner.storage.queue import reap_study
from tuner.storage.secrets import masked, stored_secrets
from tuner.storage.urls import mask_url


@dataclass(frozen=True)
class Diagnosis:
    """What ``tuner storage doctor`` found."""

    url: str  # masked
    backend: str
    schema_version: str
    schema_head: str
    connections_allowed: int | None  # PostgreSQL only
    connections_in_use: int | None
    connections_needed: int
    workers: int
    running: dict[str, int] = field(default_factory=dict)  # study -> RUNNING trials
    stale: dict[str, list[int]] = field(default_factory=dict)  # study -> stale trial numbers
    secrets: dict[str, list[str]] = field(default_factory=dict)  # study -> attrs with a password
    warnings: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.warnings


def diagnose(url: str, *, workers: int = 1) -> Diagnosis:
    """Backend, schema version, connection budget for ``workers``, stale RUNNING trials.

    Example:
        >>> diagnose("postgresql://tuner@db/tuner", workers=8).warnings
        []
    """
    storage = open_storage(url, check_schema=False)
    try:
        current, head = storage.get_current_version(), storage.get_head_version()
        budget = connection_budget(storage)
        running, stale = _trials_in_flight(storage)
        secrets = stored_secrets(storage)
    finally:
        storage.engine.dispose()
    needed = workers * (CONNECTIONS_PER_WORKER + 1)
    warnings = []
    if current != head:
        warnings.append(
            f"schema {current} is older than this Optuna's {head}: stop every worker, then "
            f"run `tuner storage upgrade`"
        )
    if budget is not None and budget[1] + needed > budget[0]:
        warnings.append(
            f"{workers} workers need up to {needed} connections but only "
            f"{budget[0] - budget[1]} are free: raise max_connections or set TUNER_DB_POOL=null"
        )
    for name, numbers in stale.items():
        warnings.append(
            f"study {name}: trials {numbers} are RUNNING without a heartbeat for over "
            f"{grace_period_s()}s (dead workers): `tuner storage reap` fails and re-queues them"
        )
    for name, keys in secrets.items():
        warnings.append(
            f"study {name}: {', '.join(keys)} holds a database password in plain text (anyone "
            f"who can open the study reads it): `tuner storage mask-secrets` masks it"
        )
    sqlite = sqlite_warning(url, workers=workers)
    if sqlite:
        warnings.append(sqlite)
    return Diagnosis(
        url=mask_url(url),
        backend=storage.engine.dialect.name,
        schema_version=current,
        schema_head=head,
        connections_allowed=None if budget is None else budget[0],
        connections_in_use=None if budget is None else budget[1],
        connections_needed=needed,
        workers=workers,
        running=running,
        stale=stale,
        secrets=secrets,
        warnings=warnings,
    )


def _trials_in_flight(
    storage: optuna.storages.RDBStorage,
) -> tuple[dict[str, int], dict[str, list[int]]]:
    running: dict[str, int] = {}
    stale: dict[str, list[int]] = {}
    for summary in storage.get_all_studies():
        study_id = storage.get_study_id_from_name(summary.study_name)
        trials = storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
        if not trials:
            continue
        running[summary.study_name] = len(trials)
        # Optuna's own staleness test (heartbeat older than the grace period).
        stale_ids = set(stale_trial_ids(storage, study_id))
        numbers = sorted(t.number for t in trials if trial_id_of(t) in stale_ids)
        if numbers:
            stale[summary.study_name] = numbers
    return running, stale


def upgrade(url: str) -> tuple[str, str]:
    """Upgrade the schema to this Optuna's version; returns (before, after).

    Run it with every worker stopped: workers of the old version cannot read the new one.
    """
    storage = open_storage(url, heartbeat=False, check_schema=False)
    try:
        before = storage.get_current_version()
        if before != storage.get_head_version():
            storage.upgrade()
        return before, storage.get_current_version()
    finally:
        storage.engine.dispose()


def reap(url: str, *, study_name: str | None = None) -> dict[str, list[int]]:
    """Fail (and re-queue) stale RUNNING trials now; returns the trial numbers per study."""
    storage = open_storage(url)
    reaped = {}
    for name in _study_names(storage, url, study_name):
        study = optuna.load_study(study_name=name, storage=storage)
        numbers = reap_study(study)
        if numbers:
            reaped[name] = numbers
    storage.engine.dispose()
    return reaped


def mask_secrets(url: str, *, study_name: str | None = None) -> dict[str, list[str]]:
    """Rewrite the study attributes that hold a password in plain text, masked; returns
    the attributes rewritten per study.

    Example:
        >>> mask_secrets("postgresql://tuner@db/tuner")
        {'digits-mlp': ['tuner_spec']}
    """
    storage = open_storage(url, heartbeat=False, create=False)
    try:
        wanted = set(_study_names(storage, url, study_name))
        found = {k: v for k, v in stored_secrets(storage).items() if k in wanted}
        for name, keys in found.items():
            study_id = storage.get_study_id_from_name(name)
            attrs = storage.get_study_user_attrs(study_id)
            for key in keys:
                storage.set_study_user_attr(study_id, key, masked(attrs[key]))
    finally:
        storage.engine.dispose()
    return found


def _study_names(storage: optuna.storages.RDBStorage, url: str, only: str | None) -> list[str]:
    names = [s.study_name for s in storage.get_all_studies()]
    if only is None:
        return names
    if only not in names:
        raise StorageError(
            f"no study {only!r} in {mask_url(url)}; studies there: {', '.join(names) or 'none'}"
        )
    return [only]
