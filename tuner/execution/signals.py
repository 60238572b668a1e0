"""Signals that stop a trial (Ctrl-C, SIGTERM), noted so that TensorFlow cannot lose them.

Python turns a signal into an exception raised wherever the main thread happens to be.
When that is inside TensorFlow's tracing of the first epoch, TensorFlow catches it and
raises a ``RuntimeError`` or ``TypeError`` of its own instead, which would record an
ordinary failed trial and let the run go on. So each handler first notes which interrupt
arrived; the trial loop (:mod:`tuner.execution.worker`) asks :func:`received` when a trial
fails and raises the interrupt in place of the failure.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any


class WorkerTerminated(KeyboardInterrupt):
    """SIGTERM arrived (docker stop, preemption): stop the trial now, like Ctrl-C."""


_received: type[KeyboardInterrupt] | None = None


def note(interrupt: type[KeyboardInterrupt]) -> None:
    """Remember that ``interrupt`` arrived; signal handlers call this before raising."""
    global _received
    _received = interrupt


def received() -> type[KeyboardInterrupt] | None:
    """The interrupt that arrived since the current run began, if any."""
    return _received


def _forget() -> None:
    """Start afresh: a new run is not stopped by an interrupt its caller already handled."""
    global _received
    _received = None


def _on_sigint(signum: int, frame: Any) -> None:
    note(KeyboardInterrupt)
    signal.default_int_handler(signum, frame)


@contextlib.contextmanager
def noting_ctrl_c() -> Iterator[None]:
    """Within this block Ctrl-C raises ``KeyboardInterrupt`` as usual, and is noted."""
    _forget()
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only; its handler is not ours to change
        return
    previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


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
