"""The trial queue's SQL: single statements on Optuna's own tables, safe under concurrency.

Three writes decide who runs what, each atomic on SQLite (writers queue up) and on
PostgreSQL (row locks): claiming a WAITING trial (:func:`claim`), spending one trial of
the study's budget in the transaction that creates the trial (:func:`spend_one`), and
setting the budget from the study's total (:func:`reserve`). :mod:`tuner.storage.queue`
uses them on a study; :class:`~tuner.storage.resilient.ResilientRDBStorage` calls them
where Optuna would read and then write.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from optuna.trial import TrialState

from tuner import records
from tuner._optuna_compat import rdb_tables

# A trial has an outcome in these states.
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
# A trial counts toward the study's total in these states (a FAIL trial that was
# retried does not: its retry, a WAITING or later trial, stands for it).
COUNTED = (
    TrialState.COMPLETE,
    TrialState.PRUNED,
    TrialState.FAIL,
    TrialState.RUNNING,
    TrialState.WAITING,
)


class BudgetSpent(Exception):
    """The study's budget allows no further trial."""


def claim(conn: Any, which: Any, *, heartbeat: bool) -> int | None:
    """Move the WAITING trial ``which`` selects to RUNNING in one UPDATE; its id or None.

    Optuna reads the state, then writes it; on SQLite (no SELECT FOR UPDATE) two
    processes can both read WAITING and both run the trial. With ``heartbeat`` the trial
    gets its first beat in the same transaction: a worker killed before its heartbeat
    thread first beats must still be reaped (Optuna skips trials with no beat).
    """
    import sqlalchemy as sa

    trials = rdb_tables().TrialModel.__table__
    claimed = conn.execute(
        sa.update(trials)
        .where(which, trials.c.state == TrialState.WAITING)
        .values(state=TrialState.RUNNING, datetime_start=datetime.now())
        .returning(trials.c.trial_id)
    ).scalar_one_or_none()
    if claimed is not None and heartbeat:
        first_beat(conn, claimed)
    return claimed


def oldest_waiting(study_id: int) -> Any:
    """A SELECT of the study's oldest WAITING trial id (a subquery for :func:`claim`)."""
    import sqlalchemy as sa

    queued = rdb_tables().TrialModel.__table__.alias("queued")
    return (
        sa.select(queued.c.trial_id)
        .where(queued.c.study_id == study_id, queued.c.state == TrialState.WAITING)
        .order_by(queued.c.trial_id)
        .limit(1)
    )


def trial_is(trial_id: Any) -> Any:
    """The condition that selects one trial by id, a value or a subquery (for :func:`claim`)."""
    return rdb_tables().TrialModel.__table__.c.trial_id == trial_id


def first_beat(conn: Any, trial_id: int) -> None:
    import sqlalchemy as sa

    conn.execute(sa.insert(rdb_tables().TrialHeartbeatModel.__table__).values(trial_id=trial_id))


def spend_one(conn: Any, study_id: int) -> None:
    """Take one trial from the study's budget in one UPDATE, or raise :class:`BudgetSpent`.

    The CASE keeps PostgreSQL from casting other attributes' JSON to a number, as it may
    test the conditions of a WHERE clause in any order.
    """
    import sqlalchemy as sa

    attrs, is_budget = _attr(records.BUDGET)
    left = sa.case((is_budget, sa.cast(attrs.c.value_json, sa.Integer)), else_=0)
    spent = conn.execute(
        sa.update(attrs)
        .where(attrs.c.study_id == study_id, is_budget, left > 0)
        .values(value_json=sa.cast(left - 1, sa.Text))
    )
    if spent.rowcount != 1:
        raise BudgetSpent()


def reserve(conn: Any, study_id: int, *, total: int) -> None:
    """Set the study's budget so that it ends with ``total`` trials, atomically.

    The budget becomes ``total`` less the trials that count already (:data:`COUNTED`).
    The first statement takes the budget's lock (a row lock on PostgreSQL, the write lock
    on SQLite), so the count cannot race a worker spending the budget, nor another
    process reserving at the same time: two processes joining with the same total leave
    the budget as one would.
    """
    import sqlalchemy as sa

    attrs, is_budget = _attr(records.BUDGET)
    mine = attrs.c.study_id == study_id
    locked = conn.execute(
        sa.update(attrs).where(mine, is_budget).values(value_json=attrs.c.value_json)
    )
    budget = max(0, total - count_counted(conn, study_id))
    if locked.rowcount == 0:  # a new study; a concurrent first insert fails and is retried
        _insert(conn, study_id, records.BUDGET, budget)
    else:
        conn.execute(sa.update(attrs).where(mine, is_budget).values(value_json=json.dumps(budget)))


def move_budget(conn: Any, study_id: int, change: int) -> None:
    """Add ``change`` (negative: take) to the study's budget, never below zero, in one
    UPDATE; nothing when the study has no budget."""
    import sqlalchemy as sa

    attrs, is_budget = _attr(records.BUDGET)
    left = sa.case((is_budget, sa.cast(attrs.c.value_json, sa.Integer)), else_=0)
    moved = sa.case((left + change > 0, left + change), else_=0)
    conn.execute(
        sa.update(attrs)
        .where(attrs.c.study_id == study_id, is_budget)
        .values(value_json=sa.cast(moved, sa.Text))
    )


def count_counted(conn: Any, study_id: int) -> int:
    """Trials that count toward the study's total (see :data:`COUNTED`)."""
    import sqlalchemy as sa

    models = rdb_tables()
    trials = models.TrialModel.__table__
    system = models.TrialSystemAttributeModel.__table__
    n = conn.execute(
        sa.select(sa.func.count())
        .select_from(trials)
        .where(trials.c.study_id == study_id, trials.c.state.in_(COUNTED))
    ).scalar_one()
    histories = conn.execute(
        sa.select(system.c.value_json)
        .join(trials, trials.c.trial_id == system.c.trial_id)
        .where(trials.c.study_id == study_id, system.c.key == "retry_history")
    ).scalars()
    retried = {number for history in histories for number in json.loads(history)}
    return int(n) - len(retried)


def _attr(key: str) -> tuple[Any, Any]:
    attrs = rdb_tables().StudyUserAttributeModel.__table__
    return attrs, attrs.c.key == key


def _insert(conn: Any, study_id: int, key: str, value: int) -> None:
    import sqlalchemy as sa

    attrs, _ = _attr(key)
    conn.execute(sa.insert(attrs).values(study_id=study_id, key=key, value_json=json.dumps(value)))
