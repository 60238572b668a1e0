"""A study's objectives as Optuna holds them: names, directions, one objective at a time.

Optuna names the values of a study of several objectives with ``Study.metric_names``
(its plots, ``trials_dataframe`` and optuna-dashboard read them); tuner sets them on
such studies only, so a single-objective study looks to plain Optuna as it always did.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuner import records
from tuner._optuna_compat import trial_id_of


def name_objectives(study: optuna.Study, names: Sequence[str], *, always: bool = False) -> None:
    """Record the objectives' names on a study of several objectives (for one: if ``always``)."""
    if len(names) < 2 and not always:
        return
    with warnings.catch_warnings():
        # Experimental in Optuna since 3.2, and what its plots and the dashboard read.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(names))


def objective_names(study: optuna.Study) -> list[str]:
    """One name per objective: Optuna's metric names, else the spec's, else ``objective_k``.

    Example:
        >>> study = optuna.load_study(study_name="digits-size", storage="sqlite:///tuner.db")
        >>> objective_names(study)
        ['val_accuracy', 'n_params']
    """
    return declared_names(
        study.user_attrs, n_objectives=len(study.directions), metric_names=study.metric_names
    )


def declared_names(
    user_attrs: Mapping[str, Any],
    *,
    n_objectives: int,
    metric_names: Sequence[str] | None = None,
) -> list[str]:
    """The objectives' names from Optuna's metric names or the spec in ``user_attrs``."""
    if metric_names and len(metric_names) == n_objectives:
        return [str(n) for n in metric_names]
    spec = user_attrs.get(records.SPEC) or {}
    declared = [m.get("name") for m in spec.get("metrics") or [] if isinstance(m, dict)]
    if len(declared) == n_objectives and all(declared):
        return [str(n) for n in declared]
    if n_objectives == 1:
        return [str(spec.get("metric") or "value")]
    return [f"objective_{k}" for k in range(n_objectives)]


def direction_names(study: optuna.Study) -> list[str]:
    """``minimize`` / ``maximize``, one per objective."""
    return [d.name.lower() for d in study.directions]


def is_feasible(trial: FrozenTrial) -> bool:
    """Whether every constraint of the trial holds (Optuna's rule: each value <= 0)."""
    return all(value <= 0 for value in trial.constraints.values())


def one_objective(study: optuna.Study, index: int) -> optuna.Study:
    """An in-memory single-objective copy of ``study`` that keeps objective ``index`` only.

    Trials keep their parameters, attributes, constraints, learning curves and times; the
    study keeps its user attributes. What reads one objective (importance, the report's
    history, slice and contour plots) then runs unchanged on a study of several. Optuna's
    importance ``target=`` alone would not do: PED-ANOVA takes its top quantile by
    ``study.directions[0]``, the wrong side for a second objective maximized.

    Example:
        >>> study = optuna.load_study(study_name="digits-size", storage="sqlite:///tuner.db")
        >>> size_study = one_objective(study, 1)
        >>> size_study.direction, size_study.metric_names
        (<StudyDirection.MINIMIZE: 1>, ['n_params'])
        >>> size_study.best_value == min(t.values[1] for t in study.trials if t.values)
        True
    """
    names = objective_names(study)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not "A new study created" each time
    try:
        copy = optuna.create_study(direction=study.directions[index], study_name=study.study_name)
    finally:
        optuna.logging.set_verbosity(verbosity)
    for key, value in study.user_attrs.items():
        copy.set_user_attr(key, value)
    name_objectives(copy, [names[index]], always=True)
    copy.add_trials([_keep(trial, index) for trial in study.get_trials(deepcopy=False)])
    return copy


def _keep(trial: FrozenTrial, index: int) -> FrozenTrial:
    values: Any = None
    if trial.state == TrialState.COMPLETE and trial.values is not None:
        values = [trial.values[index]]
    return FrozenTrial(
        number=trial.number,
        state=trial.state,
        value=None,
        values=values,
        datetime_start=trial.datetime_start,
        datetime_complete=trial.datetime_complete,
        params=trial.params,
        distributions=trial.distributions,
        user_attrs=trial.user_attrs,
        system_attrs=trial.system_attrs,
        intermediate_values=trial.intermediate_values,
        trial_id=trial_id_of(trial),
    )
