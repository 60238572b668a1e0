"""Signal handlers that stop a trial (Ctrl-C, SIGTERM), each noting its interrupt first
(:mod:`tuner.trial.interrupts` says why: TensorFlow can turn an interrupt into an error of
its own, or drop it).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

from tuner.trial.interrupts import WorkerTerminated, forget, note

__all__ = ["Sigterm", "WorkerTerminated", "noting_ctrl_c"]


def _on_sigint(signum: int, frame: Any) -> None:
    note(KeyboardInterrupt)
    signal.default_int_handler(signum, frame)


@contextlib.contextmanager
def noting_ctrl_c() -> Iterator[None]:
    """Within this block Ctrl-C raises ``KeyboardInterrupt`` as usual, and is noted."""
    forget()
    try:
        if threading.current_thread() is not threading.main_thread():
            yield  # signals reach the main thread only; its handler is not ours to change
            return
        previous = signal.signal(signal.SIGINT, _on_sigint)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
    finally:
        forget()  # handled by now: later training in this process must not be stopped


RETRY_SIGNAL_S = 0.05

_DATABASE_MODULES = ("sqlalchemy", "optuna.storages", "sqlite3", "psycopg")


def _inside_database_call(frame: Any) -> bool:
    while frame is not None:
        if str(frame.f_globals.get("__name__", "")).startswith(_DATABASE_MODULES):
            return True
        frame = frame.f_back
    return False


class Sigterm:
    """SIGTERM interrupts a running trial at once; between trials it stops the loop
    before the next claim, so no claimed trial is ever left without an outcome."""

    def __init__(self) -> None:
        self.requested = False
        self._armed = False

    def handle(self, signum: int, frame: Any) -> None:
        self.requested = True
        note(WorkerTerminated)
        if not self._armed:
            return
        if _inside_database_call(frame):
            # Raising here would leave the call's transaction open (SQLite stays locked
            # and the trial's own FAIL could not be written): try again in 50 ms.
            signal.setitimer(signal.ITIMER_REAL, RETRY_SIGNAL_S)
            return
        raise WorkerTerminated()

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # signals reach the main thread only; its handlers are not ours to change
            return
        previous = signal.signal(signal.SIGTERM, self.handle)
        previous_alarm = signal.signal(signal.SIGALRM, self.handle)  # a deferred SIGTERM
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGALRM, previous_alarm)

    @contextlib.contextmanager
    def armed(self) -> Iterator[None]:
        self._armed = True
        try:
            if self.requested:  # arrived while the trial was being claimed
                raise WorkerTerminated()
            yield
        finally:
            self._armed = False
