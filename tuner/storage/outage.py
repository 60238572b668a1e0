"""Database outages: waited out with bounded back-off, reported once as they start and end.

A worker that meets a refused or dropped connection pauses (its trial's reports block,
its loop waits) instead of failing: a PostgreSQL restart, a network cut or a full
connection limit ends, and the study goes on where it was. One line when the outage
starts and one when it ends, however long it lasts. A full disk is not an outage: it is
reported at once as a fault of the whole study (:class:`~tuner.errors.StorageError`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from tuner.errors import StorageError

T = TypeVar("T")
LONGEST_WAIT_S = 15.0
log = logging.getLogger(__name__)


class _OutageLog:
    """One line per state change for the whole process (loop, heartbeat, writes)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since: float | None = None

    def down(self, exc: BaseException) -> None:
        with self._lock:
            if self._since is None:
                self._since = time.monotonic()
                log.warning(
                    "database unreachable (%s); waiting for it, trials paused", first_line(exc)
                )

    def up(self) -> None:
        with self._lock:
            if self._since is not None:
                log.warning(
                    "database reachable again after %.0f s; trials go on",
                    time.monotonic() - self._since,
                )
                self._since = None


outage = _OutageLog()


def through_outage(call: Callable[[], T], *, patience_s: float | None = None) -> T:
    """``call()``, retried with back-off (0.5 s doubling to 15 s) while the database
    connection is the problem, for ``patience_s`` seconds (None: as long as it takes).

    Example:
        >>> len(through_outage(lambda: study.get_trials(deepcopy=False)))
        12
    """
    deadline = None if patience_s is None else time.monotonic() + patience_s
    delay = 0.5
    while True:
        try:
            result = call()
        except Exception as exc:
            if is_disk_full(exc):
                raise StorageError(
                    f"database or disk is full ({first_line(exc)}): free space on the "
                    f"database's disk, then resume the study"
                ) from None
            out_of_time = deadline is not None and time.monotonic() + delay > deadline
            if not is_connection_error(exc) or out_of_time:
                raise
            outage.down(exc)
            time.sleep(delay)
            delay = min(delay * 2, LONGEST_WAIT_S)
            continue
        outage.up()
        return result


def is_connection_error(exc: BaseException) -> bool:
    """Whether an error came from a lost or refused database connection (worth retrying)."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    if is_disk_full(exc):
        return False
    for error in (exc, exc.__cause__):
        if isinstance(error, OperationalError | InterfaceError):
            return True
        if isinstance(error, DBAPIError) and error.connection_invalidated:
            return True
    return False


def is_disk_full(exc: BaseException) -> bool:
    """SQLite's "database or disk is full", PostgreSQL's disk_full (SQLSTATE 53100)."""
    for error in (exc, exc.__cause__, getattr(exc.__cause__, "orig", None)):
        if error is None:
            continue
        if "database or disk is full" in str(error) or getattr(error, "sqlstate", "") == "53100":
            return True
    return False


def first_line(exc: BaseException) -> str:
    """The first line of the error's cause, as shown in one-line messages."""
    cause = exc.__cause__ or exc
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0]
