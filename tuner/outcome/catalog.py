"""Find studies and read them back as plain rows: what the listing commands show.

Reading never creates anything (storages are opened read-side, as
``tuner.storage.load_study`` does): a storage that does not exist is an error, not a new
empty database. Parameters are shown as model values (β, a batch size), not as the
transformed values Optuna stores (1-β, an exponent). Listings read Optuna's tables with
a few queries (:mod:`tuner.storage.tables`) rather than every trial through its storage API.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import optuna
from sqlalchemy import Connection

from tuner import records
from tuner._optuna_compat import study_id_of
from tuner.errors import StudyExistsError
from tuner.search.objectives import declared_names
from tuner.specs.space import SearchSpace
from tuner.storage import (
    load_study,
    mask_url,
    open_storage,
    read_connection,
    study_exists,
    study_not_found,
)
from tuner.storage.tables import StudyFacts, TrialFacts, read_params, read_studies, read_trials

STATES = ("complete", "pruned", "fail", "running", "waiting")


def delete_study(url: str, name: str) -> None:
    """Delete study ``name`` and its trials (artifact files stay where they are)."""
    storage = open_storage(url, heartbeat=False, create=False)
    load_study(name, storage=storage)  # a missing study is refused the usual way
    optuna.delete_study(study_name=name, storage=storage)


def copy_study(url: str, name: str, *, to_url: str, to_name: str | None = None) -> str:
    """Copy a study with its trials and attributes to another storage; return its new name.

    Example:
        >>> copy_study("sqlite:///tuner.db", "digits-mlp", to_url="sqlite:///archive.db")
        'digits-mlp'
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
    return space_of(study.user_attrs)


def space_of(user_attrs: Mapping[str, Any]) -> SearchSpace | None:
    """The search space recorded in a study's user attributes (None if there is none)."""
    raw = user_attrs.get(records.SPACE)
    return SearchSpace.model_validate(raw) if raw else None


def study_rows(url: str) -> list[dict[str, Any]]:
    """One row per study in the storage: name, metric, trials by state, best value."""
    with read_connection(url) as conn:
        studies = read_studies(conn)
    return [
        {
            "name": study.name,
            "metric": _metric(study),
            "direction": ",".join(study.directions),
            "trials": study.n_trials,
            **{state: study.states.get(state, 0) for state in STATES},  # they add up to trials
            "best": study.best_value,
            "started": _iso(study.first_start),
        }
        for study in studies
    ]


@dataclass(frozen=True)
class StudyOverview:
    """A study's trials by state and its best trial, named as :class:`TuneResult` names them.

    ``best_params`` are model values (β, a batch size), as the study's space defines them.
    A study of several objectives has no best trial here (see ``tuner.outcome.pareto``).
    """

    metric: str
    directions: tuple[str, ...]
    n_trials: int
    states: dict[str, int]
    started: str | None
    best_value: float | None
    best_trial: int | None
    best_params: dict[str, Any]


def study_overview(url: str, name: str) -> StudyOverview:
    """Counts and best trial of study ``name``, without reading every trial.

    Example:
        >>> study_overview("sqlite:///tuner.db", "digits-mlp").best_params
        {'optimizer': 'adam', 'learning_rate': 0.001, ...}
    """
    with read_connection(url) as conn:
        study = _one_study(conn, name, url)
        best = study.best_trial_id
        stored = read_params(conn, [best])[best] if best is not None else {}
    space = space_of(study.user_attrs)
    return StudyOverview(
        metric=_metric(study),
        directions=study.directions,
        n_trials=study.n_trials,
        states=study.states,
        started=_iso(study.first_start),
        best_value=study.best_value,
        best_trial=study.best_trial,
        best_params=space.values_from_stored(stored, fill_defaults=False) if space else stored,
    )


def study_record(study: optuna.Study, *, url: str) -> dict[str, Any]:
    """Everything worth knowing about one study, as one flat-ish mapping."""
    result = study_overview(url, study.study_name)
    spec = study.user_attrs.get(records.SPEC) or {}
    return {
        "name": study.study_name,
        "storage": mask_url(url),
        **_objective_fields(study, spec),
        "data": (spec.get("data") or {}).get("source"),
        "model": (spec.get("model") or {}).get("builder")
        or (spec.get("model") or {}).get("family"),
        "space": (study.user_attrs.get(records.SPACE) or {}).get("name"),
        "tiers": study.user_attrs.get(records.TIERS),
        "max_epochs": study.user_attrs.get(records.MAX_EPOCHS),
        "trials": result.n_trials,
        "states": {state: result.states.get(state, 0) for state in STATES},
        "started": result.started,
        **(
            {
                "best_value": result.best_value,
                "best_trial": result.best_trial,
                "best_params": result.best_params,
            }
            if len(result.directions) == 1
            else {}
        ),
        **_strategy_fields(study, url=url),
    }


def _objective_fields(study: optuna.Study, spec: Mapping[str, Any]) -> dict[str, Any]:
    """Metric and direction; for several objectives, each one, the front and pruning."""
    if len(study.directions) == 1:
        fields = {"metric": spec.get("metric", "value"), "direction": study.direction.name.lower()}
    else:
        from tuner.outcome.pareto import objectives_of
        from tuner.specs.objectives import pruning_off

        goals = objectives_of(study)
        fields = {
            "metrics": ", ".join(f"{o.name} ({o.direction})" for o in goals),
            "pareto_front": f"{len(study.best_trials)} trials (tuner best {study.study_name})",
            "pruning": pruning_off(goals),
        }
    limits = spec.get("constraints") or {}
    if limits:
        fields["constraints"] = {
            name: ", ".join(f"{k} {v:g}" for k, v in bounds.items() if v is not None)
            for name, bounds in limits.items()
        }
    return fields


def _strategy_fields(study: optuna.Study, *, url: str) -> dict[str, Any]:
    """The strategy's name, the search, the decisions and, for a staged study, each stage."""
    from tuner.search.described import decisions_line, search_line
    from tuner.search.strategy import stage_decisions, stage_line

    name = (study.user_attrs.get(records.STRATEGY) or {}).get("name", "flat")
    search = search_line(study)
    fields = {"strategy": name, **({"search": search} if search else {})}
    if name != "staged":
        return {**fields, "decisions": decisions_line(study, [])}
    with read_connection(url) as conn:  # counted in SQL: no trial loaded through Optuna
        trials = read_trials(conn, study_id_of(study), attrs=(records.STAGE,))
    counts = Counter(t.user_attrs.get(records.STAGE) for t in trials)
    rows = stage_decisions(study, stage_counts=counts)
    return {
        **fields,
        "decisions": decisions_line(study, rows),
        "stages": {f"stage {r['stage']}": stage_line(r) for r in rows},
    }


def trial_rows(
    url: str,
    name: str,
    *,
    state: str | None = None,
    sort: str = "number",
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """One row per trial of study ``name`` (params in model values), filtered, sorted, limited.

    ``sort="value"`` puts the best first whatever the direction; trials without a value
    come last. Only the trials shown have their parameters read.

    Example:
        >>> rows = trial_rows("sqlite:///tuner.db", "digits-mlp", state="complete",
        ...                   sort="value", limit=5)
        >>> rows[0]
        {'number': 0, 'state': 'complete', 'value': 0.95..., 'epochs': 15, 'seconds': ...,
         'fail_reason': None, 'params': {'optimizer': 'adam', 'learning_rate': 0.001, ...}}
    """
    with read_connection(url) as conn:
        study = _one_study(conn, name, url)
        trials = read_trials(
            conn,
            study.study_id,
            states=[state] if state else None,
            attrs=(records.EPOCHS, records.SECONDS, records.FAIL_REASON),
        )
        names = _objective_names(study)
        rows = [(t.trial_id, _trial_row(t, names)) for t in trials]
        if sort != "number":
            # In Python, not SQL: epochs and seconds are JSON text in the database. Several
            # objectives sort by the first.
            sign = -1 if sort == "value" and study.directions[0] == "maximize" else 1
            rows.sort(key=lambda r: _sort_key(r[1], sort, sign))
        rows = rows[:limit] if limit is not None else rows
        params = read_params(conn, [trial_id for trial_id, _ in rows])
    space = space_of(study.user_attrs)
    return [
        {**row, "params": space.values_from_stored(params[trial_id], fill_defaults=False)}
        if space
        else {**row, "params": params[trial_id]}
        for trial_id, row in rows
    ]


def _trial_row(trial: TrialFacts, objectives: list[str]) -> dict[str, Any]:
    """A trial as export and listings show it: outcome, cost, reason (params added later).

    Several objectives show as ``values``, by name (``values_<name>`` columns in CSV).
    """
    if len(objectives) > 1:
        value: dict[str, Any] = {"values": dict(zip(objectives, trial.values, strict=False))}
    else:
        value = {"value": trial.value}
    return {
        "number": trial.number,
        "state": trial.state,
        **value,
        "epochs": trial.user_attrs.get(records.EPOCHS),
        "seconds": trial.user_attrs.get(records.SECONDS),
        "fail_reason": trial.user_attrs.get(records.FAIL_REASON),
    }


def _one_study(conn: Connection, name: str, url: str) -> StudyFacts:
    """The study called ``name``; refused the usual way if missing."""
    found = read_studies(conn, name=name)
    if not found:
        raise study_not_found(name, mask_url(url))
    return found[0]


def _sort_key(row: dict[str, Any], sort: str, sign: int) -> tuple[bool, float, int]:
    # A row of several objectives has `values` instead of `value`: the first one sorts.
    value = row[sort] if sort in row else next(iter(row["values"].values()), None)
    return (value is None, sign * (value or 0), row["number"])


def _objective_names(study: StudyFacts) -> list[str]:
    return declared_names(study.user_attrs, n_objectives=len(study.directions))


def _metric(study: StudyFacts) -> str:
    """The metric, or the objectives' names joined by commas ('value' without a spec)."""
    return ",".join(_objective_names(study))


def _iso(moment: datetime | None) -> str | None:
    return moment.replace(microsecond=0).isoformat(sep=" ") if moment else None
