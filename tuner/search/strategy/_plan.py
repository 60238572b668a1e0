"""The staged strategy's stage plan: which tiers each stage searches, and from which
trial number on.

A trial's stage is a pure function of its number (Optuna numbers trials 0, 1, 2, ... in
the order the storage creates them), so every worker on the same storage agrees on it
without talking to the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from tuner.errors import SpecError
from tuner.specs.space import SearchSpace


@dataclass(frozen=True)
class Stage:
    """One stage: searches ``tiers`` from trial ``start`` to ``end`` (exclusive)."""

    stage: int
    tiers: list[int]  # every tier searched in this stage (cumulative)
    adds: list[str]  # the parameters this stage starts to search
    start: int
    end: int | None  # None: the last stage runs until the study stops


def make_plan(
    space: SearchSpace,
    *,
    tiers: Iterable[int],
    fixed: Mapping[str, Any],
    n_trials: int,
    budget: str | list[float],
) -> list[Stage]:
    """Stages from the searched parameters' tiers, with trial ranges from the budget split.

    Example:
        >>> [(s.tiers, s.start, s.end) for s in make_plan(space, tiers={1, 2}, fixed={},
        ...                                               n_trials=20, budget="tiers")]
        [([1], 0, 5), ([1, 2], 5, None)]
    """
    searched = space.searched(tiers=tiers, fixed=fixed)
    order = sorted({space.parameters[n].tier for n in searched})
    adds = [[n for n in searched if space.parameters[n].tier == t] for t in order]
    if budget == "tiers":
        weights = [float(len(a)) for a in adds]
    elif len(budget) != len(order):
        raise SpecError(
            f"strategy.options.budget has {len(budget)} weights but this study has "
            f"{len(order)} stages (tiers {order}); give one weight per stage or 'tiers'"
        )
    else:
        weights = [float(w) for w in budget]
    total, cumulative, ends = sum(weights), 0.0, []
    for weight in weights:
        cumulative += weight
        ends.append(round(n_trials * cumulative / total))
    starts = [0, *ends[:-1]]
    return [
        Stage(
            stage=i + 1,
            tiers=order[: i + 1],
            adds=adds[i],
            start=starts[i],
            end=ends[i] if i + 1 < len(order) else None,
        )
        for i in range(len(order))
    ]


def stage_of(plan: list[Stage], number: int) -> Stage:
    """The stage of trial ``number``; trials beyond the planned budget stay in the last."""
    return next((s for s in plan if s.end is None or number < s.end), plan[-1])


def plan_to_json(plan: list[Stage]) -> list[dict[str, Any]]:
    return [asdict(s) for s in plan]


def plan_from_json(raw: list[dict[str, Any]]) -> list[Stage]:
    return [Stage(**s) for s in raw]
