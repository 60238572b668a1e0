"""tuner: hyperparameter tuning for Keras models on Optuna.

Example:
    >>> import tuner
    >>> result = tuner.tune("studies/digits-mlp.yaml", n_trials=2, max_epochs=1)
    >>> result.best_value, result.best_params
    (0..., {'optimizer': 'adam', 'learning_rate': ..., 'batch_size': ..., ...})

Public names are loaded on first use, so ``import tuner`` stays fast and never imports
TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tuner.errors import (
    DataError,
    ReportError,
    SpecError,
    StorageError,
    StudyExistsError,
    StudyNotFoundError,
    StudyStopped,
    TunerError,
)

if TYPE_CHECKING:
    from tuner.api import tune
    from tuner.outcome.results import TuneResult
    from tuner.reporting import report
    from tuner.specs.space import SearchSpace, load_space
    from tuner.specs.spec import StudySpec, load_spec

__all__ = [
    "DataError",
    "ReportError",
    "SearchSpace",
    "SpecError",
    "StorageError",
    "StudyExistsError",
    "StudyNotFoundError",
    "StudySpec",
    "StudyStopped",
    "TuneResult",
    "TunerError",
    "load_space",
    "load_spec",
    "optimize",
    "report",
    "tune",
]

_LAZY = {
    "tune": "tuner.api",
    "report": "tuner.reporting",
    "optimize": "tuner.api",
    "TuneResult": "tuner.outcome.results",
    "SearchSpace": "tuner.specs.space",
    "load_space": "tuner.specs.space",
    "StudySpec": "tuner.specs.spec",
    "load_spec": "tuner.specs.spec",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tuner' has no attribute {name!r}")
