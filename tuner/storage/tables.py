"""Optuna's own tables, read with a few SQL queries: the facts the listing commands show.

Why not Optuna's storage API: it offers no counts or aggregates, only whole trials, so
listing a 5,000-trial study built 5,000 ``FrozenTrial`` objects with every parameter,
attribute and learning-curve point (about 9 s) to print a count and a best value. Here
the tables of Optuna's schema (``optuna/storages/_rdb/models.py``; the revision is
checked by :func:`tuner.storage.read_connection`) are declared with only the columns
read, and counts, first start and best value are computed by the database.

Values come back as Optuna shows them: datetimes in local time, infinite values as
±inf, parameters in their external form (a categorical's choice, not its index).
Nothing here writes.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from optuna.study import StudyDirection
from optuna.trial import TrialState

# Enum columns are typed as in Optuna's models: PostgreSQL keeps them as native enums
# (trialstate, ...), which compare with a typed parameter only.
VALUE_TYPE = sa.Enum("FINITE", "INF_POS", "INF_NEG", name="trialvaluetype")  # TrialValueType
_META = sa.MetaData()
STUDIES = sa.Table(
    "studies", _META, sa.Column("study_id", sa.Integer), sa.Column("study_name", sa.String)
)


def _attributes(name: str, *, owner: str) -> sa.Table:
    """One of Optuna's key/JSON-value attribute tables (study or trial, user or system)."""
    return sa.Table(
        name,
        _META,
        sa.Column(owner, sa.Integer),
        sa.Column("key", sa.String),
        sa.Column("value_json", sa.Text),
    )


DIRECTIONS = sa.Table(
    "study_directions",
    _META,
    sa.Column("study_id", sa.Integer),
    sa.Column("objective", sa.Integer),
    sa.Column("direction", sa.Enum(StudyDirection)),
)
STUDY_ATTRS = _attributes("study_user_attributes", owner="study_id")
TRIALS = sa.Table(
    "trials",
    _META,
    sa.Column("trial_id", sa.Integer),
    sa.Column("number", sa.Integer),
    sa.Column("study_id", sa.Integer),
    sa.Column("state", sa.Enum(TrialState)),
    sa.Column("datetime_start", sa.DateTime),  # naive UTC
)
VALUES = sa.Table(
    "trial_values",
    _META,
    sa.Column("trial_id", sa.Integer),
    sa.Column("objective", sa.Integer),
    sa.Column("value", sa.Float),  # NULL when infinite
    sa.Column("value_type", VALUE_TYPE),
)
PARAMS = sa.Table(
    "trial_params",
    _META,
    sa.Column("param_id", sa.Integer),
    sa.Column("trial_id", sa.Integer),
    sa.Column("param_name", sa.String),
    sa.Column("param_value", sa.Float),  # internal form: a categorical's index
    sa.Column("distribution_json", sa.Text),
)
TRIAL_ATTRS = _attributes("trial_user_attributes", owner="trial_id")
SYSTEM_ATTRS = _attributes("trial_system_attributes", owner="trial_id")
CHUNK = 1000  # trial ids per IN (...) list, far below SQLite's and PostgreSQL's limits


@dataclass(frozen=True)
class StudyFacts:
    """One study: directions, user attributes, trials by state, first start, best trial."""

    study_id: int
    name: str
    directions: tuple[str, ...]  # "minimize" / "maximize", one per objective
    user_attrs: dict[str, Any]
    states: dict[str, int]  # lower-case state -> trials; states without trials left out
    first_start: datetime | None
    best_trial_id: int | None  # single-objective studies with a complete trial only
    best_trial: int | None  # its number
    best_value: float | None

    @property
    def n_trials(self) -> int:
        return sum(self.states.values())


@dataclass(frozen=True)
class TrialFacts:
    """One trial: number, state, values (one per objective; empty without) and the user
    attributes asked for."""

    trial_id: int
    number: int
    state: str  # lower-case
    values: tuple[float, ...]
    user_attrs: dict[str, Any]

    @property
    def value(self) -> float | None:
        """The first objective's value (the only one of a single-objective study)."""
        return self.values[0] if self.values else None


def read_studies(conn: sa.Connection, *, name: str | None = None) -> list[StudyFacts]:
    """Every study in the storage (or only the one called ``name``), oldest first.

    Example:
        >>> [(s.name, s.n_trials, s.best_value) for s in read_studies(conn)]
        [('digits-mlp', 12, 0.95...), ('digits-size', 8, None)]
    """
    query = sa.select(STUDIES.c.study_id, STUDIES.c.study_name).order_by(STUDIES.c.study_id)
    if name is not None:
        query = query.where(STUDIES.c.study_name == name)
    found = conn.execute(query).all()
    if not found:
        return []
    only = found[0].study_id if name is not None else None
    directions = _directions(conn, only)
    attrs = _study_attrs(conn, only)
    states, starts = _states(conn, only)
    facts = []
    for study_id, study_name in found:
        single = len(directions[study_id]) == 1
        best = _best(conn, study_id, directions[study_id][0]) if single else None
        facts.append(
            StudyFacts(
                study_id=study_id,
                name=study_name,
                directions=tuple(directions[study_id]),
                user_attrs=attrs[study_id],
                states=states[study_id],
                first_start=_local(starts.get(study_id)),
                best_trial_id=best.trial_id if best else None,
                best_trial=best.number if best else None,
                best_value=_value(best.value, best.value_type) if best else None,
            )
        )
    return facts


def _where_study(query: sa.Select[Any], column: sa.Column[Any], only: int | None) -> Any:
    return query if only is None else query.where(column == only)


def _directions(conn: sa.Connection, only: int | None) -> dict[int, list[str]]:
    query = sa.select(DIRECTIONS.c.study_id, DIRECTIONS.c.direction).order_by(
        DIRECTIONS.c.study_id, DIRECTIONS.c.objective
    )
    directions: dict[int, list[str]] = defaultdict(list)
    for study_id, direction in conn.execute(_where_study(query, DIRECTIONS.c.study_id, only)):
        directions[study_id].append(direction.name.lower())
    return directions


def _study_attrs(conn: sa.Connection, only: int | None) -> dict[int, dict[str, Any]]:
    query = sa.select(STUDY_ATTRS.c.study_id, STUDY_ATTRS.c.key, STUDY_ATTRS.c.value_json)
    attrs: dict[int, dict[str, Any]] = defaultdict(dict)
    for study_id, key, value in conn.execute(_where_study(query, STUDY_ATTRS.c.study_id, only)):
        attrs[study_id][key] = json.loads(value)
    return attrs


def _states(
    conn: sa.Connection, only: int | None
) -> tuple[dict[int, dict[str, int]], dict[int, datetime]]:
    """Trials by state, and the earliest start, of each study: one grouped query."""
    query = sa.select(
        TRIALS.c.study_id, TRIALS.c.state, sa.func.count(), sa.func.min(TRIALS.c.datetime_start)
    ).group_by(TRIALS.c.study_id, TRIALS.c.state)
    states: dict[int, dict[str, int]] = defaultdict(dict)
    starts: dict[int, datetime] = {}
    for study_id, state, count, start in conn.execute(_where_study(query, TRIALS.c.study_id, only)):
        states[study_id][state.name.lower()] = count
        if start is not None and (study_id not in starts or start < starts[study_id]):
            starts[study_id] = start
    return states, starts


def _best(conn: sa.Connection, study_id: int, direction: str) -> Any:
    """The best complete trial's row (trial_id, number, value, value_type), or None.

    Ranked as Optuna's ``get_best_trial`` ranks them (``find_max/min_value_trial_id`` in
    its models): -inf < finite < +inf, then the value. As in ``Study.best_trial``, an
    infeasible trial (a constraint value above 0) is never best.
    """
    rank = sa.case(
        (VALUES.c.value_type == "INF_NEG", -1), (VALUES.c.value_type == "INF_POS", 1), else_=0
    )
    maximize = direction == "maximize"
    order = (rank.desc(), VALUES.c.value.desc()) if maximize else (rank, VALUES.c.value)
    query = (
        sa.select(TRIALS.c.trial_id, TRIALS.c.number, VALUES.c.value, VALUES.c.value_type)
        .join(VALUES, VALUES.c.trial_id == TRIALS.c.trial_id)
        .where(
            TRIALS.c.study_id == study_id,
            TRIALS.c.state == TrialState.COMPLETE,
            VALUES.c.objective == 0,
        )
        .order_by(*order)
    )
    infeasible = _infeasible(conn, study_id)
    if infeasible:
        query = query.where(TRIALS.c.trial_id.not_in(infeasible))
    return conn.execute(query.limit(1)).first()


def _infeasible(conn: sa.Connection, study_id: int) -> list[int]:
    """Trials with a constraint value above 0, from Optuna's ``constraints`` system attrs.

    In Python, not SQL: the values are JSON text (a number per ``constraints:<key>``, or a
    list under ``constraints`` as older Optuna wrote them).
    """
    query = (
        sa.select(SYSTEM_ATTRS.c.trial_id, SYSTEM_ATTRS.c.value_json)
        .join(TRIALS, TRIALS.c.trial_id == SYSTEM_ATTRS.c.trial_id)
        .where(
            TRIALS.c.study_id == study_id,
            TRIALS.c.state == TrialState.COMPLETE,
            sa.or_(SYSTEM_ATTRS.c.key == "constraints", SYSTEM_ATTRS.c.key.like("constraints:%")),
        )
    )
    infeasible = set()
    for trial_id, value in conn.execute(query):
        parsed = json.loads(value)
        if any(v > 0 for v in (parsed if isinstance(parsed, list) else [parsed])):
            infeasible.add(trial_id)
    return sorted(infeasible)


def read_trials(
    conn: sa.Connection,
    study_id: int,
    *,
    states: Sequence[str] | None = None,
    attrs: Sequence[str] = (),
) -> list[TrialFacts]:
    """A study's trials in ``states`` (lower-case names; all if None), by trial id.

    Each carries its values, one per objective, and the user attributes named in ``attrs``
    (missing ones left out).

    Example:
        >>> (study,) = read_studies(conn, name="digits-mlp")
        >>> read_trials(conn, study.study_id, states=["complete"], attrs=["seconds"])[0]
        TrialFacts(trial_id=1, number=0, state='complete', values=(0.95...,),
                   user_attrs={'seconds': ...})
    """
    wanted = [TRIALS.c.study_id == study_id]
    if states is not None:
        wanted.append(TRIALS.c.state.in_([TrialState[s.upper()] for s in states]))
    query = (
        sa.select(
            TRIALS.c.trial_id, TRIALS.c.number, TRIALS.c.state, VALUES.c.value, VALUES.c.value_type
        )
        .outerjoin(VALUES, VALUES.c.trial_id == TRIALS.c.trial_id)
        .where(*wanted)
        .order_by(TRIALS.c.trial_id, VALUES.c.objective)
    )
    found: dict[int, dict[str, Any]] = defaultdict(dict)
    if attrs:
        attr_query = (
            sa.select(TRIAL_ATTRS.c.trial_id, TRIAL_ATTRS.c.key, TRIAL_ATTRS.c.value_json)
            .join(TRIALS, TRIALS.c.trial_id == TRIAL_ATTRS.c.trial_id)
            .where(*wanted, TRIAL_ATTRS.c.key.in_(list(attrs)))
        )
        for trial_id, key, value in conn.execute(attr_query):
            found[trial_id][key] = json.loads(value)
    trials: dict[int, TrialFacts] = {}
    for row in conn.execute(query):  # one row per objective's value, in objective order
        value = () if row.value_type is None else (_value(row.value, row.value_type),)
        seen = trials.get(row.trial_id)
        values = value if seen is None else seen.values + value
        trials[row.trial_id] = TrialFacts(
            trial_id=row.trial_id,
            number=row.number,
            state=row.state.name.lower(),
            values=values,
            user_attrs=found.get(row.trial_id, {}),
        )
    return list(trials.values())


def read_params(conn: sa.Connection, trial_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Each trial's parameters as ``FrozenTrial.params`` holds them, in the order set.

    A trial still waiting in the queue has none yet: it gets the parameters it was
    enqueued with (Optuna's ``fixed_params`` system attribute), as the queue will use.

    Example:
        >>> (study,) = read_studies(conn, name="digits-mlp")
        >>> first = read_trials(conn, study.study_id)[0]
        >>> read_params(conn, [first.trial_id])
        {1: {'optimizer': 'adam', 'learning_rate': 0.001, ...}}
    """
    params: dict[int, dict[str, Any]] = {trial_id: {} for trial_id in trial_ids}
    for chunk in _chunks(list(trial_ids)):
        query = (
            sa.select(
                PARAMS.c.trial_id,
                PARAMS.c.param_name,
                PARAMS.c.param_value,
                PARAMS.c.distribution_json,
            )
            .where(PARAMS.c.trial_id.in_(chunk))
            .order_by(PARAMS.c.param_id)
        )
        for trial_id, name, value, distribution in conn.execute(query):
            params[trial_id][name] = _distribution(distribution).to_external_repr(value)
    waiting = [trial_id for trial_id, values in params.items() if not values]
    for chunk in _chunks(waiting):
        query = sa.select(SYSTEM_ATTRS.c.trial_id, SYSTEM_ATTRS.c.value_json).where(
            SYSTEM_ATTRS.c.trial_id.in_(chunk), SYSTEM_ATTRS.c.key == "fixed_params"
        )
        for trial_id, value in conn.execute(query):
            params[trial_id] = json.loads(value) or {}
    return params


def _chunks(ids: list[int]) -> list[list[int]]:
    return [ids[start : start + CHUNK] for start in range(0, len(ids), CHUNK)]


@lru_cache(maxsize=256)
def _distribution(distribution_json: str) -> Any:
    """Parse a stored distribution once: a study has a few, shared by all its trials."""
    from optuna.distributions import json_to_distribution

    return json_to_distribution(distribution_json)


def _value(value: float | None, value_type: str) -> float:
    # Optuna stores ±inf as NULL plus a type (TrialValueModel.stored_repr_to_value).
    if value_type == "INF_POS":
        return float("inf")
    if value_type == "INF_NEG":
        return float("-inf")
    return float(value)  # type: ignore[arg-type]


def _local(moment: datetime | None) -> datetime | None:
    # Optuna stores naive UTC and shows naive local time (TrialModel.datetime_start).
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC).astimezone().replace(tzinfo=None)
