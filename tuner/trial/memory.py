"""Memory between trials: release each trial's Keras state, and make that cheap.

A finished model is a web of reference cycles, so only a full garbage collection frees
it (and, on a GPU, its weights) before the next trial builds one. A full collection
walks every object Python tracks: after importing TensorFlow ~400,000 objects that
never become garbage, 0.2-0.4 s per trial, as long as a small model's training. Inside
:func:`long_lived_frozen` those objects are frozen (left out of collections), and so is
what each trial leaves alive for good (TensorFlow keeps every traced training step's
graph in its gradient registry, ~10,000 objects a trial), so a trial's collection walks
only what that trial made: a few tens of milliseconds, not growing over the study.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator
from typing import Any

from tuner.trial.keras_env import import_keras


def release_keras_memory() -> None:
    """Drop the finished trial's graphs and tensors, so memory stays flat over a long study."""
    # Keras' own collection (free_memory=True) would make it two full collections.
    import_keras().backend.clear_session(free_memory=False)
    gc.collect()


@contextlib.contextmanager
def long_lived_frozen() -> Iterator[Callable[[Any, Any], None]]:
    """Freeze what is alive now; yields a trial callback that freezes what outlived a trial.

    Frozen objects are still freed when their reference count drops; only cycles among
    them wait until the exit, which hands them back to the collector. The callback runs
    after Optuna is done with the trial, so it first collects that trial's garbage (an
    exception's traceback holds the pruned model) and freezes only what is alive. A
    process that froze objects itself is left as it is.

    Example:
        >>> import optuna
        >>> study = optuna.create_study()
        >>> with long_lived_frozen() as refreeze:
        ...     study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=3,
        ...                    callbacks=[refreeze])
        ...     gc.get_freeze_count() > 0
        True
        >>> gc.get_freeze_count()              # unfrozen on leaving
        0
    """
    if gc.get_freeze_count():
        yield lambda study, trial: None
        return
    import_keras()  # the bulk of what is long-lived; trials would import it anyway
    _freeze_survivors()
    try:
        yield lambda study, trial: _freeze_survivors()
    finally:
        gc.unfreeze()


def _freeze_survivors() -> None:
    gc.collect()  # garbage frozen now would stay until the exit
    gc.freeze()
