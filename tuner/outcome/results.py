"""What a study run produced, as plain data for the API and the CLI summary."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from tuner import records
from tuner.search.strategy import effective_values
from tuner.specs.space import SearchSpace


@dataclass(frozen=True)
class TuneResult:
    """The outcome of :func:`tuner.tune`: best configuration, counts, and the study itself.

    ``best_params`` holds model values (β, not the stored 1-β; a batch size, not its
    exponent) for the parameters the study searched; ``best_config`` adds the defaults of
    the rest, i.e. everything needed to train the best model again. ``baseline_value`` is
    the value of the trial that trained the space's defaults (None if there is none, or
    it did not complete).
    """

    study: optuna.Study
    storage_url: str
    best_value: float | None
    best_params: dict[str, Any]
    best_config: dict[str, Any]
    best_trial: int | None
    states: dict[str, int] = field(default_factory=dict)
    fail_reasons: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    baseline_value: float | None = None

    @property
    def study_name(self) -> str:
        return self.study.study_name

    @property
    def n_trials(self) -> int:
        return sum(self.states.values())


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
    best = _best_trial(study)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    baseline = next((t for t in complete if t.user_attrs.get(records.BASELINE)), None)
    space_raw = study.user_attrs.get(records.SPACE)
    space = SearchSpace.model_validate(space_raw) if space_raw else None
    params: dict[str, Any] = dict(best.params) if best else {}
    config = dict(params)
    if best and space:
        params = space.values_from_stored(best.params, fill_defaults=False)
        config = _config_of(study, space, best)
    return TuneResult(
        study=study,
        storage_url=storage_url,
        best_value=best.value if best else None,
        best_params=params,
        best_config=config,
        best_trial=best.number if best else None,
        states=dict(states),
        fail_reasons=dict(reasons),
        seconds=seconds,
        baseline_value=baseline.value if baseline else None,
    )


def _config_of(
    study: optuna.Study, space: SearchSpace, best: optuna.trial.FrozenTrial
) -> dict[str, Any]:
    spec = study.user_attrs.get(records.SPEC) or {}
    fixed = (spec.get("space") or {}).get("fixed") or {}
    return effective_values(space, best, fixed)


def _best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    return study.best_trial
