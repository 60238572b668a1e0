"""Optuna's RDB storage, made to outlive dropped connections and database restarts.

Faults survived here rather than in every caller: writes that meet a dropped connection
wait the outage out (:mod:`tuner.storage.outage`); the heartbeat outlives outages; writes
to a trial that another worker failed as stale meanwhile are dropped instead of killing
the worker; an SQLite file deleted or replaced under a running study is noticed; no
attribute is stored with a URL's password (:mod:`tuner.storage.secrets`). Workers
take trials here too, each in one transaction: the oldest queued (WAITING) trial, else a
new trial from the study's budget (:meth:`ResilientRDBStorage.spending_budget`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuner.storage import claims
from tuner.storage.outage import first_line, is_connection_error, outage, through_outage
from tuner.storage.secrets import masked
from tuner.storage.sqlite_file import SqliteFile

log = logging.getLogger(__name__)
T = TypeVar("T")


# Set while this thread creates a trial that is to spend its study's budget.
_spending = threading.local()


class ResilientRDBStorage(optuna.storages.RDBStorage):
    """Optuna's RDB storage, made to outlive dropped connections and database restarts.

    Optuna's heartbeat thread dies at the first database error and a finished trial's
    final write is tried once; here the heartbeat carries on, and the writes a trial makes
    wait out an outage for ``patience_s`` seconds (None: as long as it lasts). Trial
    claims and the study's budget go through single SQL statements
    (:mod:`tuner.storage.claims`) where Optuna would read, then write.
    """

    def __init__(self, *args: Any, patience_s: float | None = None, **kwargs: Any) -> None:
        self.patience_s = patience_s
        self._file: SqliteFile | None = None
        self._taken_back: set[int] = set()
        super().__init__(*args, **kwargs)

    def watch_file(self, path: str) -> None:
        """Notice from now on if the SQLite file at ``path`` is deleted, replaced or emptied."""
        self._file = SqliteFile(path)

    def check_file(self) -> None:
        """Raise :class:`~tuner.errors.StorageError` if the watched SQLite file is gone."""
        if self._file is not None:
            self._file.check()

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            super().record_heartbeat(trial_id)
        except Exception as exc:  # the next beat retries; the thread must survive
            if not is_connection_error(exc):
                log.warning("heartbeat of trial %s not recorded: %s", trial_id, first_line(exc))
            else:
                outage.down(exc)

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        if state == TrialState.RUNNING:
            return self._claim(claims.trial_is(trial_id)) is not None
        if not state.is_finished():
            return super().set_trial_state_values(trial_id, state, values)
        attempts = 0

        def write() -> bool:
            nonlocal attempts
            attempts += 1
            return super(ResilientRDBStorage, self).set_trial_state_values(trial_id, state, values)

        try:
            return self._retry(write)
        except optuna.exceptions.UpdateFinishedTrialError:
            # Only a retry may find its own earlier write (committed, its reply lost).
            # On the first attempt the trial was finished by someone else, e.g. another
            # reaper that failed the same stale trial: saying True here would re-queue it
            # a second time.
            if attempts > 1 and self.get_trial(trial_id).state == state:
                return True
            raise

    def claim_next(self, study_id: int) -> int | None:
        """Claim the study's oldest WAITING trial, or return None if there is none.

        One UPDATE, where Optuna's pop reads every WAITING trial and then claims them in
        turn; PostgreSQL's SKIP LOCKED sends concurrent workers to different trials. A read
        goes first: usually nothing waits, and on SQLite an UPDATE takes the write lock
        even when it changes nothing.
        """
        oldest = claims.oldest_waiting(study_id)
        with self.engine.connect() as conn:
            if conn.execute(oldest).first() is None:
                return None
        # SQLite has no SKIP LOCKED (nor needs it: its writers queue up).
        taken = oldest.with_for_update(skip_locked=True).scalar_subquery()
        return self._claim(claims.trial_is(taken))

    def _claim(self, which: Any) -> int | None:
        # Not retried: after a lost reply the trial would look taken, and the queue
        # simply offers the next one.
        with self.engine.begin() as conn:
            return claims.claim(conn, which, heartbeat=self.heartbeat_interval is not None)

    def reserve(self, study_id: int, *, total: int) -> None:
        """Set the study's budget from its total (:func:`tuner.storage.claims.reserve`)."""
        from sqlalchemy.exc import IntegrityError

        def once() -> None:
            with self.engine.begin() as conn:
                claims.reserve(conn, study_id, total=total)

        try:
            self._retry(once)
        except IntegrityError:  # another process set the first budget meanwhile
            self._retry(once)

    def move_budget(self, study_id: int, change: int) -> None:
        """Add ``change`` to the study's budget (:func:`tuner.storage.claims.move_budget`)."""
        with self.engine.begin() as conn:
            claims.move_budget(conn, study_id, change)

    @contextlib.contextmanager
    def spending_budget(self) -> Iterator[None]:
        """Trials created inside spend one of their study's budget
        (:class:`~tuner.storage.claims.BudgetSpent` when none is left) and get their first
        heartbeat, in the creating transaction.

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
        # Optuna's private hook (tuner._optuna_compat.NEW_TRIAL_HOOK): the step that adds
        # the trial row, in its transaction, with the study locked.
        if not getattr(_spending, "on", False):
            return super()._get_prepared_new_trial(study_id, template_trial, session)
        claims.spend_one(session, study_id)
        trial: Any = super()._get_prepared_new_trial(study_id, template_trial, session)
        if self.heartbeat_interval is not None:
            claims.first_beat(session, trial.trial_id)
        return trial

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        # Anyone who can open the study reads its attributes: a spec's storage URL, or
        # one copied from another study, is kept without its password.
        super().set_study_user_attr(study_id, key, masked(value))

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        value = masked(value)  # a failure reason may quote a URL
        self._trial_write(
            trial_id,
            lambda: super(ResilientRDBStorage, self).set_trial_user_attr(trial_id, key, value),
        )

    def set_trial_intermediate_value(
        self, trial_id: int, step: int, intermediate_value: float
    ) -> None:
        self._trial_write(
            trial_id,
            lambda: super(ResilientRDBStorage, self).set_trial_intermediate_value(
                trial_id, step, intermediate_value
            ),
        )

    def was_taken_back(self, trial_id: int) -> bool:
        """Whether a write to this trial found it failed as stale by another worker."""
        return trial_id in self._taken_back

    def _trial_write(self, trial_id: int, write: Callable[[], None]) -> None:
        try:
            self._retry(write)
        except optuna.exceptions.UpdateFinishedTrialError:
            # Another worker failed this trial as stale (this one was stopped, starved or
            # cut off past the grace period) and re-queued it. The trial goes on to its
            # end here; the trial loop then keeps its result in the retry or drops it.
            if trial_id not in self._taken_back:
                self._taken_back.add(trial_id)
                log.warning(
                    "trial id %s was failed as stale by another worker while it ran here; "
                    "its reports are dropped",
                    trial_id,
                )

    def _retry(self, write: Callable[[], T]) -> T:
        self.check_file()
        return through_outage(write, patience_s=self.patience_s)
