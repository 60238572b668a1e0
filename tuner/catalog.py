"""Find studies and read them back as plain rows: what the listing commands show.

Reading never creates anything (storages are opened read-side, as
``tuner.storage.load_study`` does): a storage that does not exist is an error, not a new
empty database. Parameters are shown as model values (β, a batch size), not as the
transformed values Optuna stores (1-β, an exponent).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuner import records
from tuner.errors import StudyExistsError
from tuner.results import summarize
from tuner.space import SearchSpace
from tuner.storage import load_study, mask_url, open_storage, study_exists

STATES = ("complete", "pruned", "fail", "running", "waiting")


def delete_study(url: str, name: str) -> None:
    """Delete study ``name`` and its trials (artifact files stay where they are)."""
    storage = open_storage(url, heartbeat=False, create=False)
    load_study(name, storage=storage)  # a missing study is refused the usual way
    optuna.delete_study(study_name=name, storage=storage)


def copy_study(url: str, name: str, *, to_url: str, to_name: str | None = None) -> str:
    """Copy a study with its trials and attributes to another storage; return its new name.

    Example:
        >>> copy_study("sqlite:///tuner.db", "digits-mlp",
        ...            to_url="postgresql://postgres@127.0.0.1/tuner")
    """
    storage = open_storage(url, heartbeat=False, create=False)
    load_study(name, storage=storage)
    target = open_storage(to_url, heartbeat=False)
    new_name = to_name or name
    if study_exists(target, new_name):
        raise StudyExistsError(
            f"study {new_name!r} already exists in {mask_url(to_url)}; choose another "
            f"--to-name or delete it there first"
        )
    optuna.copy_study(
        from_study_name=name, from_storage=storage, to_storage=target, to_study_name=new_name
    )
    return new_name


def stored_space(study: optuna.Study) -> SearchSpace | None:
    """The search space `tuner run` recorded on the study (None for plain Optuna studies)."""
    raw = study.user_attrs.get(records.SPACE)
    return SearchSpace.model_validate(raw) if raw else None


def study_rows(url: str) -> list[dict[str, Any]]:
    """One row per study in the storage: name, metric, trials by state, best value."""
    storage = open_storage(url, heartbeat=False, create=False)
    rows = []
    for name in optuna.get_all_study_names(storage):
        study = optuna.load_study(study_name=name, storage=storage)
        result = summarize(study, storage_url=url)
        spec = study.user_attrs.get(records.SPEC) or {}
        rows.append(
            {
                "name": name,
                "metric": spec.get("metric", "value"),
                "direction": study.direction.name.lower(),
                "trials": result.n_trials,
                **{state: result.states.get(state, 0) for state in STATES[:4]},
                "best": result.best_value,
                "started": _first_start(study),
            }
        )
    return rows


def study_record(study: optuna.Study, *, url: str) -> dict[str, Any]:
    """Everything worth knowing about one study, as one flat-ish mapping."""
    result = summarize(study, storage_url=url)
    spec = study.user_attrs.get(records.SPEC) or {}
    return {
        "name": study.study_name,
        "storage": mask_url(url),
        "metric": spec.get("metric", "value"),
        "direction": study.direction.name.lower(),
        "data": (spec.get("data") or {}).get("source"),
        "model": (spec.get("model") or {}).get("builder")
        or (spec.get("model") or {}).get("family"),
        "space": (study.user_attrs.get(records.SPACE) or {}).get("name"),
        "tiers": study.user_attrs.get(records.TIERS),
        "max_epochs": study.user_attrs.get(records.MAX_EPOCHS),
        "trials": result.n_trials,
        "states": {state: result.states.get(state, 0) for state in STATES},
        "started": _first_start(study),
        "best_value": result.best_value,
        "best_trial": result.best_trial,
        "best_params": result.best_params,
        **_strategy_fields(study),
    }


def _strategy_fields(study: optuna.Study) -> dict[str, Any]:
    """The strategy's name and, for a staged study, each stage and its decision."""
    from tuner.strategy import stage_decisions, stage_line

    name = (study.user_attrs.get(records.STRATEGY) or {}).get("name", "flat")
    stages = {f"stage {row['stage']}": stage_line(row) for row in stage_decisions(study)}
    return {"strategy": name, **({"stages": stages} if stages else {})}


def trial_rows(
    study: optuna.Study,
    *,
    state: str | None = None,
    sort: str = "number",
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """One row per trial (params in model values), filtered by state, sorted, limited.

    ``sort="value"`` puts the best first whatever the direction; trials without a value
    come last.

    Example:
        >>> trial_rows(study, state="complete", sort="value", limit=5)
    """
    states = (TrialState[state.upper()],) if state else None
    trials = study.get_trials(deepcopy=False, states=states)
    space = stored_space(study)
    rows = [trial_row(t, space) for t in trials]
    if sort != "number":
        sign = -1 if sort == "value" and study.direction.name == "MAXIMIZE" else 1
        rows.sort(key=lambda r: (r[sort] is None, sign * (r[sort] or 0), r["number"]))
    return rows[:limit] if limit is not None else rows


def trial_row(trial: FrozenTrial, space: SearchSpace | None) -> dict[str, Any]:
    """A trial as export and listings show it: outcome, cost, reason, parameters."""
    # An enqueued (waiting) trial has no params yet: Optuna keeps them as fixed_params.
    stored = trial.params or trial.system_attrs.get("fixed_params") or {}
    params = space.values_from_stored(stored, fill_defaults=False) if space else stored
    return {
        "number": trial.number,
        "state": trial.state.name.lower(),
        "value": trial.value,
        "epochs": trial.user_attrs.get(records.EPOCHS),
        "seconds": trial.user_attrs.get(records.SECONDS),
        "fail_reason": trial.user_attrs.get(records.FAIL_REASON),
        "params": params,
    }


def _first_start(study: optuna.Study) -> str | None:
    starts = [t.datetime_start for t in study.get_trials(deepcopy=False) if t.datetime_start]
    return _iso(min(starts)) if starts else None


def _iso(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat(sep=" ")
