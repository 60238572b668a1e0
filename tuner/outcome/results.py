"""What a study run produced, as plain data for the API and the CLI summary."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from tuner import records
from tuner.errors import MultiObjectiveError
from tuner.outcome.pareto import FrontTrial, Objective, objectives_of, pareto_front
from tuner.search.strategy import effective_values
from tuner.specs.space import SearchSpace


@dataclass(frozen=True)
class Best:
    """The best trial of a single-objective study, as :class:`TuneResult` shows it."""

    value: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    trial: int | None = None


@dataclass(frozen=True)
class TuneResult:
    """The outcome of :func:`tuner.tune`: best configuration, counts, and the study itself.

    ``best_params`` holds the values the best trial searched (every parameter it
    sampled), as the model uses them (β, not the stored 1-β; a batch size, not its
    exponent); when the baseline trial is best, those are the defaults of the searched
    parameters. ``best_config`` adds the values of the rest (frozen, fixed, defaults),
    i.e. everything needed to train the best model again. ``baseline_value`` is
    the value of the trial that trained the space's defaults (None if there is none, or
    it did not complete). Infeasible trials (over a constraint) are never best.

    A study of several objectives has no single best: ``pareto`` holds its front (trials
    with their values, parameters and measures), and ``best_*`` raise
    :class:`~tuner.errors.MultiObjectiveError`.

    Example:
        >>> study = optuna.load_study(study_name="digits-size", storage="sqlite:///tuner.db")
        >>> result = summarize(study, storage_url="sqlite:///tuner.db")   # as tune() returns
        >>> [(t.number, t.values) for t in result.pareto]
        [(0, {'val_accuracy': 0.95..., 'n_params': 25866.0}), (..., {...}), ...]
        >>> result.best_value
        Traceback (most recent call last):
        tuner.errors.MultiObjectiveError: ...
    """

    study: optuna.Study
    storage_url: str
    objectives: list[Objective]
    pareto: list[FrontTrial]
    states: dict[str, int] = field(default_factory=dict)
    fail_reasons: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    baseline_value: float | None = None
    best: Best = field(default_factory=Best, repr=False)

    @property
    def study_name(self) -> str:
        return self.study.study_name

    @property
    def n_trials(self) -> int:
        return sum(self.states.values())

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def best_value(self) -> float | None:
        return self._single().value

    @property
    def best_params(self) -> dict[str, Any]:
        return self._single().params

    @property
    def best_config(self) -> dict[str, Any]:
        return self._single().config

    @property
    def best_trial(self) -> int | None:
        return self._single().trial

    def _single(self) -> Best:
        if self.multi_objective:
            names = ", ".join(o.name for o in self.objectives)
            raise MultiObjectiveError(
                f"study {self.study_name!r} has {len(self.objectives)} objectives ({names}), "
                f"so no single best trial: read result.pareto (its Pareto front), or choose "
                f"one with `tuner best {self.study_name} --pick ...`"
            )
        return self.best


def summarize(study: optuna.Study, *, storage_url: str) -> TuneResult:
    """Read a study back into a :class:`TuneResult`."""
    trials = study.get_trials(deepcopy=False)
    states = Counter(t.state.name.lower() for t in trials)
    reasons = Counter(
        str(t.user_attrs.get(records.FAIL_REASON, "unknown"))
        for t in trials
        if t.state == TrialState.FAIL
    )
    started = [t.datetime_start for t in trials if t.datetime_start]
    ended = [t.datetime_complete for t in trials if t.datetime_complete]
    seconds = (max(ended) - min(started)).total_seconds() if started and ended else 0.0
    objectives = objectives_of(study)
    single = len(objectives) == 1
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    baseline = next((t for t in complete if t.user_attrs.get(records.BASELINE)), None)
    return TuneResult(
        study=study,
        storage_url=storage_url,
        objectives=objectives,
        pareto=pareto_front(study),
        states=dict(states),
        fail_reasons=dict(reasons),
        seconds=seconds,
        baseline_value=baseline.value if baseline and single else None,
        best=_best(study) if single else Best(),
    )


def config_of(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """Every value needed to train ``trial``'s model again: searched, frozen, fixed, default."""
    space_raw = study.user_attrs.get(records.SPACE)
    if not space_raw:
        return dict(trial.params)
    spec = study.user_attrs.get(records.SPEC) or {}
    fixed = (spec.get("space") or {}).get("fixed") or {}
    return effective_values(SearchSpace.model_validate(space_raw), trial, fixed)


def _best(study: optuna.Study) -> Best:
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return Best()
    try:
        best = study.best_trial  # Optuna's: the best feasible trial
    except ValueError:  # "No feasible trials are completed yet."
        return Best()
    space_raw = study.user_attrs.get(records.SPACE)
    params: dict[str, Any] = dict(best.params)
    if space_raw:
        params = SearchSpace.model_validate(space_raw).values_from_stored(
            best.params, fill_defaults=False
        )
    return Best(value=best.value, params=params, config=config_of(study, best), trial=best.number)
