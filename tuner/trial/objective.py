"""The objective: joins a search space (Optuna) with training (Keras) for one trial.

Outcomes are explicit: a pruned trial raises ``optuna.TrialPruned``; a fault of this
trial alone (diverged, out of memory, an odd combination, a non-finite metric) raises
:class:`TrialFailed` with the reason stored on the trial, and the study goes on.
"""

from __future__ import annotations

import math
import os
import resource
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna

from tuner import records
from tuner.errors import StorageError
from tuner.search.strategy import Strategy
from tuner.specs.param import ALL_TIERS
from tuner.specs.space import SearchSpace
from tuner.trial.data import Dataset
from tuner.trial.memory import release_keras_memory
from tuner.trial.models import Builder
from tuner.trial.pruning import pruning_callback
from tuner.trial.training import Diverged, divergence_guard, train


class TrialFailed(Exception):
    """This trial failed for a reason that concerns it alone; the reason is on the trial."""


WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class KerasObjective:
    """Callable ``objective(trial) -> float`` that trains one Keras model per trial.

    Example:
        >>> objective = KerasObjective(space=space, dataset=dataset, metric="val_accuracy",
        ...                            max_epochs=20)
        >>> study.optimize(objective, n_trials=10, catch=(TrialFailed,))
    """

    space: SearchSpace
    dataset: Dataset
    metric: str
    max_epochs: int
    family: str = "mlp"
    builder: Builder | None = None
    loss: str = "auto"
    seed: int = 0
    tiers: frozenset[int] = ALL_TIERS
    fixed: Mapping[str, Any] = field(default_factory=dict)
    mixed_precision: bool = False
    xla: bool | None = None
    strategy: Strategy | None = None  # None: flat over ``tiers`` with ``fixed``

    def __call__(self, trial: optuna.Trial) -> float:
        trial.set_user_attr(records.WORKER, WORKER_ID)
        guard = divergence_guard()
        try:
            if self.strategy is not None:
                params = self.strategy.suggest(trial)
            else:
                params = self.space.suggest(trial, tiers=self.tiers, fixed=self.fixed)
            seed = self.seed + trial.number
            trial.set_user_attr(records.SEED, seed)
            _, result = train(
                params,
                self.dataset,
                epochs=self.max_epochs,
                family=self.family,
                builder=self.builder,
                loss=self.loss,
                seed=seed,
                guard=guard,
                mixed_precision=self.mixed_precision,
                xla=self.xla,
                callbacks=[pruning_callback(trial, monitor=self.metric)],
            )
            trial.set_user_attr(records.N_PARAMS, result.n_params)
            value = result.final(self.metric)
        except (optuna.TrialPruned, StorageError):  # the storage's fault stops the study
            raise
        except Exception as exc:  # interrupts pass: the trial loop records them
            reason = failure_reason(exc)
            trial.set_user_attr(records.FAIL_REASON, reason)
            raise TrialFailed(reason) from exc
        finally:
            release_keras_memory()  # first: the writes below may fail (disk full)
            trial.set_user_attr(records.EPOCHS, guard.epochs)
            trial.set_user_attr(records.SECONDS, round(guard.seconds, 3))
            trial.set_user_attr(records.PEAK_RSS_MB, peak_rss_mb())
        if not math.isfinite(value):
            trial.set_user_attr(records.FAIL_REASON, f"non-finite metric ({value})")
            raise TrialFailed(f"{self.metric} was {value}")
        return value


def failure_reason(exc: BaseException) -> str:
    """A short reason for a trial's failure, as stored and shown to users."""
    if isinstance(exc, Diverged):
        return "diverged"
    name = type(exc).__name__
    if name == "ResourceExhaustedError" or "out of memory" in str(exc).lower():
        return "out of memory"
    first_line = (str(exc).strip().splitlines() or [""])[0][:300]
    return f"{name}: {first_line}" if first_line else name


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MiB (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
