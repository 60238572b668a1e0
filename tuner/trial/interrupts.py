"""Interrupts (Ctrl-C, SIGTERM) noted as they arrive, so that training cannot lose them.

Python raises a signal's exception wherever the main thread happens to be, and there
training does not always pass it on: TensorFlow, tracing the first epoch, turns it into a
``RuntimeError`` or ``TypeError`` of its own; and 1 Ctrl-C in ~30 to a `tuner run` on
digits was dropped outright, training went on until killed (most likely the exception
landed in one of the ``__del__`` methods TensorFlow runs while a model trains: Python
prints such an exception as "Exception ignored" and goes on). Hence the signal
handlers (:mod:`tuner.execution.signals`) first :func:`note` which interrupt arrived;
the trial loop asks :func:`received` when a trial fails, and :func:`interrupt_check`
raises a dropped one at the next batch.
"""

from __future__ import annotations

from typing import Any

from tuner.trial.keras_env import import_keras


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


def forget() -> None:
    """Start afresh: a run is not stopped by an interrupt its caller already handled."""
    global _received
    _received = None


def interrupt_check() -> Any:
    """A Keras callback that raises a noted interrupt before the next batch.

    The check is at a batch's start: Keras runs ``*_batch_begin`` on the training
    thread without reading the step's results, so it costs no device sync (an
    ``on_train_batch_end`` would turn off Keras' asynchronous batch callbacks).
    """
    keras = import_keras()

    class InterruptCheck(keras.callbacks.Callback):  # type: ignore[misc,name-defined]
        def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            _raise_noted()

        def on_test_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            _raise_noted()  # validation of a large set can take as long as training

    return InterruptCheck()


def _raise_noted() -> None:
    interrupt = received()
    if interrupt is not None:
        raise interrupt()
