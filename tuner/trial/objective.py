"""The objective: joins a search space (Optuna) with training (Keras) for one trial.

Outcomes are explicit: a pruned trial raises ``optuna.TrialPruned``; a fault of this
trial alone (diverged, out of memory, an odd combination, a non-finite metric) raises
:class:`TrialFailed` with the reason stored on the trial, and the study goes on.

Every trial records its measures (validation metrics, ``n_params``, ``latency_ms``,
``epoch_seconds``, ``peak_memory_mb``, a builder's own) as user attributes, and its
constraints as Optuna's (``Trial.set_constraint``: samplers steer away from infeasible
regions, and Optuna never counts an infeasible trial as best). A trial whose constraints
fail before training (``n_params``, ``latency_ms``, a builder's measures) is pruned before
its first epoch.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna

from tuner import records
from tuner.errors import StorageError
from tuner.search.strategy import Strategy
from tuner.specs.objectives import LimitSpec, constraint_values, violations
from tuner.specs.param import ALL_TIERS
from tuner.specs.space import SearchSpace
from tuner.trial.data import Dataset
from tuner.trial.epoch_reports import epoch_reports
from tuner.trial.interrupts import interrupt_check
from tuner.trial.keras_env import GpuOptions
from tuner.trial.measures import PeakMemory, epoch_seconds, process_peak_rss_mb
from tuner.trial.memory import release_keras_memory
from tuner.trial.models import Builder
from tuner.trial.pruning import pruning_callback
from tuner.trial.training import Diverged, divergence_guard, train


class TrialFailed(Exception):
    """This trial failed for a reason that concerns it alone; the reason is on the trial."""


OUT_OF_MEMORY = "out of memory"  # the fail reason; the trial loop recycles the process
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class KerasObjective:
    """Callable ``objective(trial) -> float`` that trains one Keras model per trial.

    With several ``metrics`` (measure names, the study's objectives in order) it returns
    one value per objective; ``metric`` (the primary validation metric) then only names
    the learning curve recorded per epoch.

    Example:
        >>> objective = KerasObjective(space=space, dataset=dataset, metric="val_accuracy",
        ...                            max_epochs=2, tiers=frozenset({1}))
        >>> study = optuna.create_study(direction="maximize")
        >>> study.enqueue_trial({"learning_rate": 1e-3})      # else the sampler picks it
        >>> study.optimize(objective, n_trials=1, catch=(TrialFailed,))
        >>> trial = study.trials[0]
        >>> list(trial.params), trial.user_attrs["epochs"], trial.user_attrs["n_params"]
        (['learning_rate'], 2, 26122)
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
    gpu: GpuOptions = field(default_factory=GpuOptions)  # ignored on a CPU
    strategy: Strategy | None = None  # None: flat over ``tiers`` with ``fixed``
    metrics: Sequence[str] = ()  # the objectives' measures; () = (metric,)
    constraints: Mapping[str, LimitSpec] = field(default_factory=dict)
    latency_batch_size: int = 1

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        trial.set_user_attr(records.WORKER, WORKER_ID)
        gpu = self.gpu.apply()  # before PeakMemory, whose device query sets the GPU up
        guard = divergence_guard()
        measured: dict[str, float] = {}
        peak = PeakMemory()
        try:
            with peak, epoch_reports(trial) as reports:
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
                    mixed_precision=gpu.mixed_precision,
                    jit_compile=gpu.jit_compile,
                    latency_batch_size=self.latency_batch_size,
                    before_fit=lambda known: self._check_before_training(trial, known, measured),
                    callbacks=[pruning_callback(reports, monitor=self.metric), interrupt_check()],
                )
            measured.update(result.measures)
            measured.update(_after_training(guard, peak))
            values = [self._value(name, result.final, measured) for name in self.objectives]
            unmeasured = sorted(set(self.constraints) - set(measured))
            if unmeasured:  # only a builder's own measures can be missing
                raise ValueError(
                    f"constraints name {', '.join(unmeasured)}, which the model builder "
                    f"does not return beside its model"
                )
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
            self._record(trial, measured, guard=guard, peak=peak)
            trial.set_user_attr(records.PEAK_RSS_MB, process_peak_rss_mb())
        for name, value in zip(self.objectives, values, strict=True):
            if not math.isfinite(value):
                trial.set_user_attr(records.FAIL_REASON, f"non-finite metric ({value})")
                raise TrialFailed(f"{name} was {value}")
        return values[0] if len(values) == 1 else values

    @property
    def objectives(self) -> tuple[str, ...]:
        return tuple(self.metrics) or (self.metric,)

    def _check_before_training(
        self, trial: optuna.Trial, known: dict[str, float], measured: dict[str, float]
    ) -> None:
        """Prune a trial whose constraints fail on what is known before its first epoch."""
        measured.update(known)
        broken = violations(self.constraints, known)
        if broken:
            trial.set_user_attr(records.INFEASIBLE, "; ".join(broken))
            raise optuna.TrialPruned(f"infeasible before training: {'; '.join(broken)}")

    @staticmethod
    def _value(name: str, final: Any, measured: Mapping[str, float]) -> float:
        if name.startswith("val_"):
            return float(final(name))  # names the metrics Keras logged if it is not one
        if name not in measured:
            raise ValueError(
                f"objective {name!r} was not measured; the model builder does not return "
                f"it beside its model (measured: {', '.join(sorted(measured))})"
            )
        return float(measured[name])

    def _record(
        self, trial: optuna.Trial, measured: dict[str, float], *, guard: Any, peak: PeakMemory
    ) -> None:
        """Store every measure known, whatever the outcome, and the constraints on them."""
        measured.update(_after_training(guard, peak))
        for name, value in measured.items():
            trial.set_user_attr(name, value)
        for key, value in constraint_values(self.constraints, measured).items():
            trial.set_constraint(key, value)


def _after_training(guard: Any, peak: PeakMemory) -> dict[str, float]:
    """The measures known once training stopped, however it stopped."""
    per_epoch = epoch_seconds(guard.epoch_seconds)
    late = {"epoch_seconds": per_epoch, "peak_memory_mb": peak.mb}
    return {name: value for name, value in late.items() if value is not None}


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` means the device ran out of memory: TensorFlow's
    ``ResourceExhaustedError`` (a too-large model or batch; on a GPU or a CPU), Python's
    ``MemoryError``, or either under the error Keras or a user's builder raised from it."""
    seen: BaseException | None = exc
    while seen is not None:
        text = str(seen).lower()
        kind = type(seen).__name__
        if kind in ("ResourceExhaustedError", "MemoryError") or "out of memory" in text:
            return True
        if "oom when allocating" in text:  # TensorFlow's message, whatever wraps it
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def failure_reason(exc: BaseException) -> str:
    """A short reason for a trial's failure, as stored and shown to users."""
    if isinstance(exc, Diverged):
        return records.DIVERGED
    if out_of_memory(exc):
        return OUT_OF_MEMORY
    name = type(exc).__name__
    first_line = (str(exc).strip().splitlines() or [""])[0][:300]
    return f"{name}: {first_line}" if first_line else name
