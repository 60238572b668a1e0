"""The values a model is built and trained with when a space leaves a parameter out.

They are the shipped importance-ranked space's defaults (tests/test_spec.py checks that the
two agree), said once here so that the optimizer, the schedule, the training loop and the
built-in model families read the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MODEL_DEFAULTS: Mapping[str, Any] = {
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "momentum": 0.9,
    "batch_size": 32,
    "units": 128,
    "layers": 2,
    "lr_schedule": "constant",
    "lr_decay_rate": 0.1,
    "activation": "relu",
    "dropout": 0.0,
    "beta_1": 0.9,
    "beta_2": 0.999,
    "epsilon": 1e-7,
    "l2": 1e-6,
    "batch_norm": False,
    "warmup_epochs": 0,
}


def with_defaults(params: Mapping[str, Any]) -> dict[str, Any]:
    """The chosen values, completed with the defaults for what was not chosen.

    Example:
        >>> with_defaults({"learning_rate": 0.1})["optimizer"]
        'adam'
    """
    return {**MODEL_DEFAULTS, **params}
