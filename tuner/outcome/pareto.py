"""The Pareto front of a study, and one trial chosen from it.

The front is Optuna's (``Study.best_trials``): complete, feasible trials that no other
feasible trial beats on every objective; for a study of one objective, its best trials.
Choosing one of them is the user's call, which Optuna leaves open, hence this module:

- ``pick="n_params<=1e5, latency_ms<2"`` keeps the front's trials that meet every
  condition (on an objective or any measure the trials recorded) and takes the best of
  them on the primary objective (the first validation metric);
- ``weights={"val_accuracy": 1, "n_params": 0.5}`` scores each trial by the weighted sum
  of its objectives, each scaled over the front from 0 (its worst) to 1 (its best).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import optuna

from tuner import records
from tuner.errors import NoCompletedTrialError, SpecError
from tuner.search.objectives import direction_names, objective_names
from tuner.specs.objectives import primary_metric
from tuner.specs.space import SearchSpace

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "<": operator.lt,
    ">": operator.gt,
}
_CONDITION = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|==|<|>)\s*(\S+)\s*")


@dataclass(frozen=True)
class Objective:
    """One objective of a study: the measure's name and its direction."""

    name: str
    direction: str  # "minimize" | "maximize"


@dataclass(frozen=True)
class FrontTrial:
    """A trial of the Pareto front: its values by objective, parameters and measures.

    ``params`` are model values (β, a batch size) when the study records its space;
    ``measures`` are every number the trial recorded (n_params, latency_ms, val_loss, ...).
    """

    number: int
    values: dict[str, float]
    params: dict[str, Any]
    measures: dict[str, float]

    def row(self) -> dict[str, Any]:
        """The trial as listings show it: number, objectives, other measures, params."""
        others = {k: v for k, v in self.measures.items() if k not in self.values}
        return {"trial": self.number, **self.values, **others, "params": self.params}


def objectives_of(study: optuna.Study) -> list[Objective]:
    """The study's objectives in order, named as its spec or Optuna names them."""
    names, directions = objective_names(study), direction_names(study)
    return [Objective(n, d) for n, d in zip(names, directions, strict=True)]


def pareto_front(study: optuna.Study) -> list[FrontTrial]:
    """The study's Pareto front, best on the primary objective first.

    Example:
        >>> study = optuna.load_study(study_name="digits-size", storage="sqlite:///tuner.db")
        >>> [(t.number, t.values) for t in pareto_front(study)]
        [(0, {'val_accuracy': 0.95..., 'n_params': 25866.0}), (..., {...}), ...]
    """
    objectives = objectives_of(study)
    if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        return []
    space = _space(study)
    front = [_front_trial(t, objectives, space) for t in study.best_trials]
    main = primary_metric(objectives)
    sign = -1 if main.direction == "maximize" else 1
    return sorted(front, key=lambda t: (sign * t.values[main.name], t.number))


def choose(
    front: list[FrontTrial],
    *,
    objectives: list[Objective],
    pick: str | None = None,
    weights: str | Mapping[str, float] | None = None,
) -> FrontTrial:
    """One trial of ``front``: those meeting ``pick``, then the best by ``weights`` (or
    on the primary objective).

    Raises SpecError for a malformed ``pick`` or ``weights``, NoCompletedTrialError when
    no trial of the front meets ``pick``.

    Example:
        >>> study = optuna.load_study(study_name="digits-size", storage="sqlite:///tuner.db")
        >>> chosen = choose(pareto_front(study), objectives=objectives_of(study),
        ...                 pick="n_params<=1e4")
        >>> chosen.values["n_params"] <= 1e4, chosen.values["val_accuracy"]
        (True, 0...)
    """
    if not front:
        raise NoCompletedTrialError("the study has no complete, feasible trial to choose from")
    kept = front
    if pick:
        conditions = parse_pick(pick)
        _check_known(front, [name for name, _, _ in conditions], what="--pick")
        kept = [t for t in front if all(_meets(t, c) for c in conditions)]
        if not kept:
            raise NoCompletedTrialError(
                f"no trial of the Pareto front meets {pick!r} ({_ranges(front, conditions)}); "
                f"loosen the condition"
            )
    if weights:
        scale = parse_weights(weights) if isinstance(weights, str) else dict(weights)
        _check_weights(scale, objectives)
        scores = _weighted_scores(kept, front, objectives, scale)
        return max(kept, key=lambda t: (scores[t.number], -t.number))
    main = primary_metric(objectives)
    sign = 1 if main.direction == "maximize" else -1
    return max(kept, key=lambda t: (sign * t.values[main.name], -t.number))


def parse_pick(text: str) -> list[tuple[str, str, float]]:
    """``"n_params<=1e5, latency_ms<2"`` (or ``and`` between conditions) as triples.

    Example:
        >>> parse_pick("n_params<=1e5 and latency_ms<2")
        [('n_params', '<=', 100000.0), ('latency_ms', '<', 2.0)]
    """
    conditions = []
    for part in re.split(r",|\band\b", text):
        found = _CONDITION.fullmatch(part)
        value = _number(found.group(3)) if found else None
        if found is None or value is None:
            raise SpecError(
                f"--pick: {part.strip()!r} is not a condition; write MEASURE OP NUMBER with "
                f"OP one of {' '.join(OPERATORS)}, e.g. 'n_params<=1e5, latency_ms<2'"
            )
        conditions.append((found.group(1), found.group(2), value))
    return conditions


def parse_weights(text: str) -> dict[str, float]:
    """``"val_accuracy=1,n_params=0.5"`` as a mapping of objective to weight."""
    weights = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        number = _number(value.strip()) if sep else None
        if not name.strip() or number is None:
            raise SpecError(
                f"--weights: {part.strip()!r} is not NAME=NUMBER; write e.g. "
                f"'val_accuracy=1,n_params=0.5'"
            )
        weights[name.strip()] = number
    return weights


def _front_trial(
    trial: optuna.trial.FrozenTrial, objectives: list[Objective], space: SearchSpace | None
) -> FrontTrial:
    values = {o.name: float(v) for o, v in zip(objectives, trial.values, strict=True)}
    measures = {
        key: float(value)
        for key, value in trial.user_attrs.items()
        if key not in records.OWN_TRIAL_ATTRS
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
    }
    params = space.values_from_stored(trial.params, fill_defaults=False) if space else trial.params
    return FrontTrial(trial.number, values, dict(params), measures)


def _space(study: optuna.Study) -> SearchSpace | None:
    raw = study.user_attrs.get(records.SPACE)
    return SearchSpace.model_validate(raw) if raw else None


def _measure(trial: FrontTrial, name: str) -> float | None:
    return trial.values.get(name, trial.measures.get(name))


def _meets(trial: FrontTrial, condition: tuple[str, str, float]) -> bool:
    name, op, bound = condition
    value = _measure(trial, name)
    return value is not None and OPERATORS[op](value, bound)


def _check_known(front: list[FrontTrial], names: list[str], *, what: str) -> None:
    known = sorted({k for t in front for k in (*t.values, *t.measures)})
    unknown = [n for n in names if not any(_measure(t, n) is not None for t in front)]
    if unknown:
        raise SpecError(
            f"{what}: {', '.join(unknown)} is not measured on this study's trials; "
            f"use one of {', '.join(known)}"
        )


def _ranges(front: list[FrontTrial], conditions: list[tuple[str, str, float]]) -> str:
    parts = []
    for name in dict.fromkeys(name for name, _, _ in conditions):
        seen = [v for v in (_measure(t, name) for t in front) if v is not None]
        parts.append(f"{name} on the front: {min(seen):.4g} to {max(seen):.4g}")
    return "; ".join(parts)


def _check_weights(weights: Mapping[str, float], objectives: list[Objective]) -> None:
    names = [o.name for o in objectives]
    problems = [f"{n} is not an objective" for n in weights if n not in names]
    problems += [f"{n}={w:g} is negative" for n, w in weights.items() if w < 0]
    if not problems and not any(w > 0 for w in weights.values()):
        problems.append("give at least one weight above 0")
    if problems:
        raise SpecError(
            f"--weights: {'; '.join(problems)} (objectives: {', '.join(names)}; "
            f"e.g. '{names[0]}=1')"
        )


def _weighted_scores(
    kept: list[FrontTrial],
    front: list[FrontTrial],
    objectives: list[Objective],
    weights: Mapping[str, float],
) -> dict[int, float]:
    """Each kept trial's weighted sum of objectives scaled over the whole front to 0-1."""
    scores = dict.fromkeys((t.number for t in kept), 0.0)
    for objective in objectives:
        weight = weights.get(objective.name, 0.0)
        values = [t.values[objective.name] for t in front]
        low, high = min(values), max(values)
        for t in kept:
            share = 1.0 if high == low else (t.values[objective.name] - low) / (high - low)
            scores[t.number] += weight * (share if objective.direction == "maximize" else 1 - share)
    return scores


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
