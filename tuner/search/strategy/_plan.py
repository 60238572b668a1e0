"""The staged strategy's options and its stage plan: which tiers each stage searches, and
from which trial number on.

A trial's stage is a pure function of its number (Optuna numbers trials 0, 1, 2, ... in
the order the storage creates them), so every worker on the same storage agrees on it
without talking to the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, field_validator

from tuner.errors import SpecError
from tuner.search.importance import EVALUATORS
from tuner.specs.space import SearchSpace


class StagedOptions(BaseModel):
    """Options of ``strategy: {name: staged, options: {...}}``; every field has a default."""

    model_config = ConfigDict(extra="forbid")

    budget: Literal["tiers"] | list[PositiveFloat] = Field(
        "tiers",
        description="share of the trials per stage: 'tiers' (by tier size) or one weight "
        "per stage, e.g. [1, 1, 2]",
    )
    freeze_below: float = Field(
        0.05,
        ge=0,
        lt=1,
        description="freeze a parameter whose importance interval lies entirely below this "
        "share of the total importance",
    )
    narrow: bool = Field(True, description="narrow the ranges of important numeric parameters")
    narrow_above: float = Field(
        0.2,
        ge=0,
        le=1,
        description="a parameter is important when its interval lies entirely above this share",
    )
    narrow_top: float = Field(
        0.2, gt=0, le=1, description="share of the best trials whose values span the new range"
    )
    narrow_margin: float = Field(
        0.5, ge=0, description="widen their span by this fraction of it on each side"
    )
    min_width: float = Field(
        0.25, gt=0, le=1, description="a narrowed range keeps at least this share of the old"
    )
    n_bootstrap: int = Field(20, ge=0, description="bootstrap replicates of importance")
    interval: float = Field(0.9, gt=0, lt=1, description="central probability of intervals")
    evaluators: list[str] = Field(
        default_factory=lambda: ["ped_anova", "fanova", "mean_decrease_impurity"],
        description="importance evaluators (tuner.search.importance.EVALUATORS)",
    )
    min_trials: int | None = Field(
        None,
        ge=2,
        description="complete trials importance needs (default: 4 per parameter, at least 20)",
    )
    wait_s: float = Field(
        600.0,
        ge=0,
        description="at a stage boundary, wait at most this long for earlier trials still "
        "running elsewhere, so that every worker decides on the same trials",
    )

    @field_validator("evaluators")
    @classmethod
    def _known_evaluators(cls, value: list[str]) -> list[str]:
        if not value or not set(value) <= set(EVALUATORS):
            raise ValueError(f"evaluators must be among {list(EVALUATORS)}, got {value}")
        return value


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
