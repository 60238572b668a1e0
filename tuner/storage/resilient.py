"""Optuna's RDB storage, made to outlive dropped connections and database restarts.

Faults survived here rather than in every caller: writes that meet a dropped connection
are retried with backoff; the heartbeat outlives database outages. Workers take trials
here too, each in one transaction: the oldest queued (WAITING) trial, else a new trial
from the study's budget (:meth:`ResilientRDBStorage.spending_budget`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuner import records

if TYPE_CHECKING:
    pass


WRITE_RETRY_S = float(os.environ.get("TUNER_WRITE_RETRY_SECONDS", "120"))

log = logging.getLogger(__name__)

T = TypeVar("T")


class BudgetSpent(Exception):
    """The study's budget allows no further trial (raised inside ``spending_budget``)."""


# Set while this thread creates a trial that is to spend its study's budget.
_spending = threading.local()


class ResilientRDBStorage(optuna.storages.RDBStorage):
    """Optuna's RDB storage, made to outlive dropped connections and database restarts.

    Optuna's heartbeat thread dies at the first database error and a finished trial's
    final write is tried once; here the heartbeat logs and carries on, and the writes a
    trial makes are retried with backoff for up to ``$TUNER_WRITE_RETRY_SECONDS``.
    """

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            super().record_heartbeat(trial_id)
        except Exception as exc:  # the next beat retries; the thread must survive
            log.warning("heartbeat of trial %s not recorded: %s", trial_id, _first_line(exc))

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        if state == TrialState.RUNNING:
            return self._claim(_trials().c.trial_id == trial_id) is not None
        if not state.is_finished():
            return super().set_trial_state_values(trial_id, state, values)
        try:
            return _retry(
                lambda: super(ResilientRDBStorage, self).set_trial_state_values(
                    trial_id, state, values
                )
            )
        except optuna.exceptions.UpdateFinishedTrialError:
            # A retry after a write that committed but whose reply was lost.
            if self.get_trial(trial_id).state == state:
                return True
            raise

    def claim_next(self, study_id: int) -> int | None:
        """Claim the study's oldest WAITING trial, or return None if there is none.

        One UPDATE, where Optuna's pop reads every WAITING trial and then claims them in
        turn; PostgreSQL's SKIP LOCKED sends concurrent workers to different trials. A read
        goes first: usually nothing waits, and on SQLite an UPDATE takes the write lock
        even when it changes nothing.
        """
        import sqlalchemy as sa

        queued = _trials().alias("queued")
        oldest = (
            sa.select(queued.c.trial_id)
            .where(queued.c.study_id == study_id, queued.c.state == TrialState.WAITING)
            .order_by(queued.c.trial_id)
            .limit(1)
        )
        with self.engine.connect() as conn:
            if conn.execute(oldest).first() is None:
                return None
        # SQLite has no SKIP LOCKED (nor needs it: its writers queue up).
        taken = oldest.with_for_update(skip_locked=True).scalar_subquery()
        return self._claim(_trials().c.trial_id == taken)

    def _claim(self, which: Any) -> int | None:
        """Move the WAITING trial ``which`` selects to RUNNING, in one atomic UPDATE.

        Optuna reads the state, then writes it; on SQLite (no SELECT FOR UPDATE) two
        processes can both read WAITING and both run the trial. Not retried: after a lost
        reply the trial would look taken, and the queue simply offers the next one.
        """
        from datetime import datetime

        import sqlalchemy as sa

        trials = _trials()
        with self.engine.begin() as conn:
            claimed = conn.execute(
                sa.update(trials)
                .where(which, trials.c.state == TrialState.WAITING)
                .values(state=TrialState.RUNNING, datetime_start=datetime.now())
                .returning(trials.c.trial_id)
            ).scalar_one_or_none()
            if claimed is not None:
                self._first_beat(conn, claimed)
        return claimed

    @contextlib.contextmanager
    def spending_budget(self) -> Iterator[None]:
        """Trials created inside spend one of their study's budget (:class:`BudgetSpent`
        when none is left) and get their first heartbeat, in the creating transaction.

        The budget (study user attribute ``tuner_budget``) is the number of trials workers
        may still create. Queuing that many WAITING trials instead costs O(queue) per trial:
        Optuna's cache re-reads every unfinished trial on every read.
        """
        _spending.on = True
        try:
            yield
        finally:
            _spending.on = False

    def _get_prepared_new_trial(
        self, study_id: int, template_trial: FrozenTrial | None, session: Any
    ) -> Any:
        # Optuna's step that adds the trial row, in its transaction, with the study locked.
        if not getattr(_spending, "on", False):
            return super()._get_prepared_new_trial(study_id, template_trial, session)
        _spend_one(session, study_id)
        trial: Any = super()._get_prepared_new_trial(study_id, template_trial, session)
        self._first_beat(session, trial.trial_id)
        return trial

    def _first_beat(self, conn: Any, trial_id: int) -> None:
        # In the claiming transaction: a worker killed before its heartbeat thread first
        # beats must still be reaped (Optuna skips trials with no beat).
        import sqlalchemy as sa
        from optuna.storages._rdb.models import TrialHeartbeatModel

        if self.heartbeat_interval is not None:
            conn.execute(sa.insert(TrialHeartbeatModel.__table__).values(trial_id=trial_id))

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        _retry(lambda: super(ResilientRDBStorage, self).set_trial_user_attr(trial_id, key, value))

    def set_trial_intermediate_value(
        self, trial_id: int, step: int, intermediate_value: float
    ) -> None:
        _retry(
            lambda: super(ResilientRDBStorage, self).set_trial_intermediate_value(
                trial_id, step, intermediate_value
            )
        )


def _retry(write: Callable[[], T]) -> T:
    """Run a write, retrying with backoff while the database connection is the problem."""
    deadline = time.monotonic() + WRITE_RETRY_S
    delay = 0.5
    while True:
        try:
            return write()
        except Exception as exc:
            if not is_connection_error(exc) or time.monotonic() + delay > deadline:
                raise
            log.warning("database write failed (%s); retrying in %.1fs", _first_line(exc), delay)
            time.sleep(delay)
            delay = min(delay * 2, 15.0)


def _trials() -> Any:
    from optuna.storages._rdb.models import TrialModel

    return TrialModel.__table__


def _spend_one(session: Any, study_id: int) -> None:
    """Take one trial from the study's budget in one UPDATE, or raise :class:`BudgetSpent`.

    The CASE keeps PostgreSQL from casting other attributes' JSON to a number, as it may
    test the conditions of a WHERE clause in any order.
    """
    import sqlalchemy as sa
    from optuna.storages._rdb.models import StudyUserAttributeModel

    attrs = StudyUserAttributeModel.__table__
    is_budget = attrs.c.key == records.BUDGET
    left = sa.case((is_budget, sa.cast(attrs.c.value_json, sa.Integer)), else_=0)
    spent = session.execute(
        sa.update(attrs)
        .where(attrs.c.study_id == study_id, is_budget, left > 0)
        .values(value_json=sa.cast(left - 1, sa.Text))
    )
    if spent.rowcount != 1:
        raise BudgetSpent()


def is_connection_error(exc: BaseException) -> bool:
    """Whether an error came from a lost or refused database connection (worth retrying)."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    for error in (exc, exc.__cause__):
        if isinstance(error, OperationalError | InterfaceError):
            return True
        if isinstance(error, DBAPIError) and error.connection_invalidated:
            return True
    return False


def _first_line(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0]
