"""Every private name of Optuna that tuner relies on, behind one door.

Optuna has no public way to do what these do (each says why tuner needs it); each is
covered by ``tests/test_optuna_compat.py``, which fails loudly when an Optuna upgrade
renames or changes one, so the pin in ``pyproject.toml`` (``optuna>=5.0,<6``) can be
widened exactly as far as those tests pass. Two private *hooks* are overridden in
subclasses rather than called from here: ``RDBStorage._get_prepared_new_trial``
(:mod:`tuner.storage.resilient`: spend the budget in the transaction that creates a
trial) and ``TPESampler._build_parzen_estimator`` (:mod:`tuner.search.tpe`: bound the
cost of TPE); their names and signatures are checked by the same tests.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

# The private hooks overridden in subclasses, by name, for the tests to check.
NEW_TRIAL_HOOK = ("RDBStorage", "_get_prepared_new_trial")
PARZEN_HOOK = ("TPESampler", "_build_parzen_estimator")


def storage_of(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage a study reads and writes through (Optuna's cache wrapper included).

    Workers claim and create trials themselves, through the storage, to keep the
    study's budget exact; ``Study`` exposes no public handle on it.
    """
    return study._storage


def backend_of(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage under Optuna's per-process cache of an RDB storage (itself otherwise)."""
    storage = study._storage
    return getattr(storage, "_backend", storage)


def study_id_of(study: optuna.Study) -> int:
    """The study's id in its storage (storage calls take ids, not names)."""
    return study._study_id


def trial_id_of(trial: optuna.Trial | FrozenTrial) -> int:
    """A trial's id in its storage (storage calls take ids, not numbers)."""
    return trial._trial_id


def with_trial_id(frozen: FrozenTrial, trial_id: int) -> FrozenTrial:
    """``frozen`` carrying ``trial_id``: PED-ANOVA tells trials apart by id, and
    ``optuna.trial.create_trial`` leaves -1 on every copy."""
    frozen._trial_id = trial_id
    return frozen


def forget_cached_trials(study: optuna.Study) -> None:
    """Make the next suggestion read fresh trials, as ``Study.ask`` does before sampling."""
    study._thread_local.cached_all_trials = None


def stop_requested(study: optuna.Study) -> bool:
    """Whether a callback called ``study.stop()`` (the flag ``Study.optimize`` checks)."""
    return bool(study._stop_flag)


@contextlib.contextmanager
def optimize_loop(study: optuna.Study) -> Iterator[None]:
    """Within this block ``study.stop()`` is allowed, as inside ``Study.optimize``
    (which tuner's own trial loop replaces to keep the budget exact)."""
    study._thread_local.in_optimize_loop = True
    study._stop_flag = False
    try:
        yield
    finally:
        study._thread_local.in_optimize_loop = False


def tell_quickly(
    study: optuna.Study,
    trial: optuna.Trial,
    value: float | Sequence[float] | None,
    state: TrialState | None,
) -> FrozenTrial:
    """``study.tell`` without its final read of the whole trial back from the storage.

    The trial's own copy already holds everything written during the trial (parameters,
    attributes, reports); Optuna's tell step returns the state and values it stored.
    """
    from optuna.study._tell import _tell_with_warning

    state, values, _ = _tell_with_warning(
        study=study, trial=trial, value_or_values=value, state=state
    )
    frozen = written_so_far(trial)
    frozen.state, frozen.values, frozen.datetime_complete = state, values, datetime.now()
    return frozen


def written_so_far(trial: optuna.Trial) -> FrozenTrial:
    """What this process wrote to a running trial (params, attributes, reports), from the
    trial's own copy: the storage may no longer accept or show them (a trial failed as
    stale meanwhile keeps only what reached it before)."""
    return copy.deepcopy(trial._cached_frozen_trial)


def own_view(trial: optuna.Trial) -> FrozenTrial:
    """The running trial as this process knows it (its reports included), for a pruner to
    read without a storage round trip; not a copy: read it, never change it."""
    return trial._cached_frozen_trial


def wrote_report(trial: optuna.Trial, step: int, value: float) -> None:
    """Note a report in the trial's own copy, as ``Trial.report`` does after its write
    (the value is written by a background writer: ``tuner.trial.epoch_reports``)."""
    trial._cached_frozen_trial.intermediate_values[step] = value


def stale_trial_ids(storage: optuna.storages.BaseStorage, study_id: int) -> list[int]:
    """Ids of RUNNING trials whose heartbeat is older than the grace period, without
    failing them (``tuner storage doctor`` reports; ``fail_stale_trials`` acts)."""
    # Only heartbeat-capable storages (RDBStorage and our wrappers of it) have it.
    return list(storage._get_stale_trial_ids(study_id))  # type: ignore[attr-defined]


def stepped_pruner_settings(pruner: optuna.pruners.BasePruner) -> tuple[int, int] | None:
    """``(n_warmup_steps, interval_steps)`` of a median/percentile/threshold pruner, or
    None where they cannot be read (then the pruner is asked at every step)."""
    warmup = getattr(pruner, "_n_warmup_steps", None)
    interval = getattr(pruner, "_interval_steps", None)
    if not isinstance(warmup, int) or not isinstance(interval, int) or interval < 1:
        return None
    return warmup, interval


def alembic_versions_dir() -> Path:
    """The folder of Optuna's schema migration scripts: their headers name the newest
    revision without importing alembic (about 1 s of an interactive command)."""
    return Path(optuna.__file__).parent / "storages" / "_rdb" / "alembic" / "versions"


def rdb_tables() -> Any:
    """Optuna's ORM models (``trials``, ``study_user_attributes``, ``trial_heartbeats``):
    the trial queue claims and spends in single SQL statements on Optuna's own tables."""
    from optuna.storages._rdb import models

    return models


class TrialsView:
    """The read-only slice of a Study that Optuna's importance evaluators use, over
    given trials.

    Building a real in-memory study per bootstrap replicate deep-copies every trial and
    took most of the report's time; the evaluators only read complete trials, the
    direction and whether the study is multi-objective (a private method).
    """

    def __init__(self, study: optuna.Study, trials: Sequence[FrozenTrial]) -> None:
        self._trials = list(trials)
        self.directions = study.directions
        self.direction = study.direction
        self.study_name = study.study_name

    def get_trials(self, deepcopy: bool = False, states: Any = None) -> list[FrozenTrial]:
        return list(self._trials)  # all complete by construction

    def _is_multi_objective(self) -> bool:
        return False


class StudyWithout:
    """A study as a sampler sees it, without the trials ``hidden`` picks.

    Samplers read trials through the private ``Study._get_trials`` (TPE with ``use_cache``),
    so the view filters it beside the public ``get_trials`` and ``trials``; everything else
    is the study's own. Optuna has no way to keep trials out of a sampler's model.
    """

    def __init__(self, study: optuna.Study, hidden: Callable[[FrozenTrial], bool]) -> None:
        self._study = study
        self._hidden = hidden

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(
        self, deepcopy: bool = True, states: Any = None, use_cache: bool = False
    ) -> list[FrozenTrial]:
        trials = self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache)
        return [t for t in trials if not self._hidden(t)]

    def get_trials(self, deepcopy: bool = True, states: Any = None) -> list[FrozenTrial]:
        return [t for t in self._study.get_trials(deepcopy, states) if not self._hidden(t)]

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()
