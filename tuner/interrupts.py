"""Signals that stop a trial (Ctrl-C, SIGTERM), noted so that TensorFlow cannot lose them.

Python turns a signal into an exception raised wherever the main thread happens to be.
When that is inside TensorFlow's tracing of the first epoch, TensorFlow catches it and
raises a ``RuntimeError`` or ``TypeError`` of its own instead, which would record an
ordinary failed trial and let the run go on. So each handler first notes which interrupt
arrived; the objective asks :func:`received` when a trial fails and raises the interrupt
in place of the failure.
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
