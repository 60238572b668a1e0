"""Who may write to the terminal: tuner's own lines, and the rest only when asked.

Optuna logs every trial it is told about (``[I ...] Trial 3 finished``), every scratch
study tuner creates to measure importance (``A new study created in memory``) and a
warning when a plot gets one value (``[W ...]``); Optuna, SQLAlchemy and others also
emit Python warnings (``ExperimentalWarning``). tuner reports trials itself, so:

- the command line (:func:`quiet_command_line`) drops them unless ``--verbose`` or
  ``--debug``, for the whole process (worker processes are ``tuner`` commands too);
- the Python API (:func:`through_logging`) sends Optuna's records through Python's
  standard ``logging`` instead of Optuna's own stderr handler, at the level the caller
  configured: nothing below WARNING shows unless the caller asks, e.g. with
  ``logging.basicConfig(level=logging.INFO)``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import warnings
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

import optuna

from tuner.errors import python_caller

OPTUNA_LOGGER = "optuna"
P = ParamSpec("P")
R = TypeVar("R")


def python_entry_point(func: Callable[P, R]) -> Callable[P, R]:
    """Mark a public Python function: Optuna logs :func:`through_logging` while it runs,
    and error messages name its arguments (``resume=True``), not CLI flags."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with python_caller(), through_logging():
            return func(*args, **kwargs)

    return wrapper


def quiet_command_line(*, verbose: bool) -> None:
    """Set the process's log policy for a ``tuner`` command (once, before it runs).

    Quiet: Optuna says only errors and Python warnings are ignored; tuner's own
    ``logging`` warnings (a missed heartbeat, a storage outage) still show.
    """
    if verbose:
        optuna.logging.set_verbosity(optuna.logging.INFO)
        warnings.simplefilter("default")
        return
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")


@contextlib.contextmanager
def through_logging() -> Iterator[None]:
    """While a Python API call runs, Optuna logs through standard ``logging`` only.

    Optuna's stderr handler is set aside and its records propagate to the root logger,
    so they follow the caller's configuration. Where the caller left Optuna at its
    default verbosity (INFO), the root logger's level decides (WARNING unless set):
    ``logging.basicConfig(level=logging.INFO)`` shows each trial, nothing shows it
    otherwise. A verbosity the caller chose (``optuna.logging.set_verbosity``) other
    than INFO is kept. Everything is put back afterwards.
    """
    logger = logging.getLogger(OPTUNA_LOGGER)
    handlers, propagate = list(logger.handlers), logger.propagate
    optuna.logging.disable_default_handler()  # configures Optuna's logger first if needed
    level = logger.level
    set_aside = [h for h in handlers if h not in logger.handlers]
    logger.propagate = True
    if level == logging.INFO:
        logger.setLevel(logging.NOTSET)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        logger.setLevel(level)
        logger.propagate = propagate
        for handler in set_aside:
            logger.addHandler(handler)
