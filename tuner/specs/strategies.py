"""The search strategies a spec may name, and the options each takes.

Declared here, with the rest of what a user writes, so that a spec is validated whole
before anything runs; :mod:`tuner.search.strategy` implements them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, field_validator

STRATEGIES = ("flat", "staged")
# Optuna's importance evaluators that tuner measures with, by the name specs use.
IMPORTANCE_EVALUATORS: dict[str, str] = {
    "ped_anova": "PED-ANOVA",
    "fanova": "fANOVA",
    "mean_decrease_impurity": "mean decrease impurity",
}


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
        description="importance evaluators (IMPORTANCE_EVALUATORS)",
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
        if not value or not set(value) <= set(IMPORTANCE_EVALUATORS):
            raise ValueError(f"evaluators must be among {list(IMPORTANCE_EVALUATORS)}, got {value}")
        return value


def parse_staged_options(options: Mapping[str, Any] | None) -> StagedOptions:
    """Validate staged options; every problem in one :class:`~tuner.errors.SpecError`.

    Example:
        >>> parse_staged_options({"budget": [1, 1, 2]}).freeze_below
        0.05
    """
    from tuner.specs.validation import validate_model

    return validate_model(StagedOptions, dict(options or {}), source="strategy.options")
