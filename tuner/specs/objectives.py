"""What a study optimizes: ``metrics`` (or ``metric`` + ``direction``) and ``constraints``.

A study optimizes one validation metric, or several measures at once, whose best
trials form a Pareto front::

    metrics:
      - {name: val_accuracy, direction: maximize}
      - {name: n_params, direction: minimize}
    constraints:
      n_params: {max: 200000}

A measure is a validation metric Keras logs (``val_*``), one that tuner records for
every trial (:data:`MEASURES`), or one a user's model builder returns beside its model.
The primary objective is the first validation metric among the objectives: the one the
report's single-objective sections and the retrain summary show.

This module knows nothing of Keras or Optuna.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tuner.specs.validation import PARAM_NAME_PATTERN

# Measures every trial records (user attributes of the same names), whatever it optimizes.
MEASURES = {
    "n_params": "parameters of the model",
    "latency_ms": "median milliseconds of one prediction batch after warm-up, on the "
    "trial's device (batch size: training.latency_batch_size)",
    "epoch_seconds": "median seconds per training epoch",
    "peak_memory_mb": "peak memory while the trial ran, MiB: the GPU allocator's peak on "
    "a GPU, the process's peak resident memory on a CPU",
}


class MetricSpec(BaseModel):
    """One objective: a measure's name and whether to maximize or minimize it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=PARAM_NAME_PATTERN,
        description="val_* (logged by Keras), n_params, latency_ms, epoch_seconds, "
        "peak_memory_mb, or a measure the model builder returns",
    )
    direction: Literal["maximize", "minimize"]


class LimitSpec(BaseModel):
    """A constraint on one measure: a trial outside ``[min, max]`` is infeasible."""

    model_config = ConfigDict(extra="forbid")

    min: float | None = Field(None, description="the measure must be at least this")
    max: float | None = Field(None, description="the measure must be at most this")

    @model_validator(mode="after")
    def _a_finite_bound(self) -> LimitSpec:
        bounds = [b for b in (self.min, self.max) if b is not None]
        if not bounds:
            raise ValueError("give min, max or both, e.g. {max: 200000}")
        if not all(math.isfinite(b) for b in bounds):
            raise ValueError("min and max must be finite numbers")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min <= max must hold, got min={self.min:g}, max={self.max:g}")
        return self


def is_validation_metric(name: str) -> bool:
    """Whether ``name`` is a metric Keras logs on the validation rows (``val_*``)."""
    return name.startswith("val_")


def measure_problems(names: Iterable[str], *, where: str, has_builder: bool) -> list[str]:
    """One line per name that is no measure tuner could record for this study."""
    problems = []
    for name in names:
        if is_validation_metric(name) or name in MEASURES or has_builder:
            continue
        problems.append(
            f"{where}: {name!r} is not a measure tuner records; use a validation metric "
            f"(val_loss, val_accuracy, val_mae) or one of {', '.join(MEASURES)} (a "
            f"model.builder may return its own measures beside its model)"
        )
    return problems


def objective_problems(
    metrics: list[MetricSpec], *, sampler: str, strategy: str, has_builder: bool
) -> list[str]:
    """Problems of a study's objectives alone and with its sampler and strategy.

    Example:
        >>> objective_problems([MetricSpec(name="n_params", direction="minimize")],
        ...                    sampler="tpe", strategy="flat", has_builder=False)
        ['metrics: at least one objective must be a validation metric (val_*), e.g. ...']
    """
    names = [m.name for m in metrics]
    problems = measure_problems(names, where="metrics", has_builder=has_builder)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        problems.append(f"metrics: each measure once, got {', '.join(repeated)} twice")
    if not any(is_validation_metric(n) for n in names):
        problems.append(
            "metrics: at least one objective must be a validation metric (val_*), "
            "e.g. {name: val_accuracy, direction: maximize}, so that trials are judged "
            "on held-out data"
        )
    if len(metrics) > 1:
        if strategy == "staged":
            problems.append(
                "strategy: staged decides each stage from importance against one "
                "objective; a study of several metrics needs strategy flat"
            )
        if sampler == "cmaes":
            problems.append(
                "sampler: cmaes optimizes one objective; with several metrics use tpe, "
                "nsga2, nsga3, gp, random or qmc"
            )
    return problems


class _Named(Protocol):
    @property
    def name(self) -> str: ...


N = TypeVar("N", bound=_Named)


def primary_metric(objectives: Sequence[N]) -> N:
    """The first validation metric among the objectives (the first objective if none)."""
    return next((o for o in objectives if is_validation_metric(o.name)), objectives[0])


def constraint_values(
    constraints: Mapping[str, LimitSpec], measures: Mapping[str, float]
) -> dict[str, float]:
    """Optuna's constraint values for the measures known: <= 0 is feasible.

    Each bound gives one value, its violation relative to the bound, so that limits in
    parameters and in milliseconds weigh alike when a sampler sums violations.

    Example:
        >>> constraint_values({"n_params": LimitSpec(max=1000)}, {"n_params": 1500})
        {'n_params.max': 0.5}
    """
    values = {}
    for name, limit in constraints.items():
        if name not in measures:
            continue
        value = float(measures[name])
        if limit.max is not None:
            values[f"{name}.max"] = (value - limit.max) / _scale(limit.max)
        if limit.min is not None:
            values[f"{name}.min"] = (limit.min - value) / _scale(limit.min)
    return values


def violations(constraints: Mapping[str, LimitSpec], measures: Mapping[str, float]) -> list[str]:
    """Each bound the known measures break, in words (``n_params 412,000 > max 200,000``)."""
    found = []
    for name, limit in constraints.items():
        value = measures.get(name)
        if value is None:
            continue
        if limit.max is not None and value > limit.max:
            found.append(f"{name} {_number(value)} > max {_number(limit.max)}")
        if limit.min is not None and value < limit.min:
            found.append(f"{name} {_number(value)} < min {_number(limit.min)}")
    return found


def _scale(bound: float) -> float:
    return abs(bound) if bound else 1.0


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:.4g}"


def pruning_off(objectives: Sequence[_Named]) -> str:
    """Why a study of several objectives is never pruned, in one line.

    Optuna's pruners take one objective (``Trial.report`` refuses several), and pruning
    on the primary one alone would stop exactly the cheap models a front is looking for.
    """
    return (
        f"off: Optuna's pruners take one objective, and a trial behind on "
        f"{primary_metric(objectives).name} may still be on the Pareto front"
    )


def pruning_notice(metrics: Sequence[MetricSpec], *, pruner: str) -> str | None:
    """The notice a run of several objectives with a pruner set prints (None: no need)."""
    if len(metrics) < 2 or pruner == "none":
        return None
    return f"pruning is {pruning_off(metrics)} (set pruner: none to silence this)"
