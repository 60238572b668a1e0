"""The strategy interface, and ``flat``: every searched parameter in every trial."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import optuna

from tuner import records
from tuner.errors import SpecError, option
from tuner.specs.param import ALL_TIERS, Choice
from tuner.specs.space import SearchSpace


class Strategy(Protocol):
    """What the objective asks of a strategy: record it on the study, then values per trial."""

    name: str

    def prepare(self, study: optuna.Study) -> None:
        """Record the strategy on the study, or check it against the one recorded."""

    def suggest(self, trial: optuna.Trial) -> dict[str, Choice]:
        """Every parameter's value for this trial (searched through ``trial`` or held)."""


@dataclass
class FlatStrategy:
    """All selected tiers at once, the rest at their defaults: plain Optuna.

    Example:
        >>> strategy = FlatStrategy(space=space, tiers=frozenset({1}))
        >>> study = optuna.create_study()
        >>> strategy.prepare(study)
        >>> strategy.suggest(study.ask())        # tier 1 searched, the rest at defaults
        {'optimizer': 'adam', 'learning_rate': ..., 'momentum': 0.9, 'batch_size': 32, ...}
    """

    space: SearchSpace
    tiers: frozenset[int] = ALL_TIERS
    fixed: Mapping[str, Any] = field(default_factory=dict)
    name: str = "flat"

    def prepare(self, study: optuna.Study) -> None:
        if recorded_strategy(study, self.name) is None:
            study.set_user_attr(records.STRATEGY, {"name": self.name})

    def suggest(self, trial: optuna.Trial) -> dict[str, Choice]:
        return self.space.suggest(trial, tiers=self.tiers, fixed=self.fixed)


def recorded_strategy(study: optuna.Study, name: str) -> dict[str, Any] | None:
    """The strategy recorded on ``study`` (None if none); refuses a different one.

    A study that already has trials and no record ran flat (before strategies existed).
    """
    recorded = study.user_attrs.get(records.STRATEGY)
    if recorded is None and study.get_trials(deepcopy=False):
        recorded = {"name": "flat"}
    if recorded is not None and recorded.get("name") != name:
        raise SpecError(
            f"study {study.study_name!r} runs the {recorded.get('name')!r} strategy, not "
            f"{name!r}; resume it with strategy {recorded.get('name')!r}, or start a new "
            f"study ({option('overwrite', True)} or another {option('study_name')})"
        )
    return recorded
