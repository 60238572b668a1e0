"""Optimizers and learning-rate schedules from a mapping of chosen values (Keras' own).

Schedules and what ``lr_decay_rate`` (γ) means for each, with t in epochs:

- constant: α
- step: α · (1-γ)^floor(t / k), k = a quarter of the epochs (at least 1)
- exponential: α · (1-γ)^t
- inverse_time: α / (1 + γ t)
- cosine: from α down to γ·α over the whole run

Any of them can start with a linear warm-up over ``warmup_epochs`` epochs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tuner.trial.defaults import with_defaults
from tuner.trial.keras_env import import_keras

OPTIMIZERS = ("sgd", "momentum", "nesterov", "rmsprop", "adagrad", "adadelta", "adam", "adamw")
SCHEDULES = ("constant", "step", "exponential", "inverse_time", "cosine")


def make_optimizer(params: Mapping[str, Any], *, steps_per_epoch: int, epochs: int) -> Any:
    """A Keras optimizer with the schedule the params choose.

    Example:
        >>> opt = make_optimizer({"optimizer": "nesterov", "learning_rate": 0.01,
        ...                       "momentum": 0.9}, steps_per_epoch=45, epochs=20)
    """
    keras = import_keras()
    params = with_defaults(params)
    name = str(params["optimizer"])
    lr = make_schedule(params, steps_per_epoch=steps_per_epoch, epochs=epochs)
    momentum = float(params["momentum"])
    adam = {
        "beta_1": float(params["beta_1"]),
        "beta_2": float(params["beta_2"]),
        "epsilon": float(params["epsilon"]),
    }
    factories = {
        "sgd": lambda: keras.optimizers.SGD(lr),
        "momentum": lambda: keras.optimizers.SGD(lr, momentum=momentum),
        "nesterov": lambda: keras.optimizers.SGD(lr, momentum=momentum, nesterov=True),
        "rmsprop": lambda: keras.optimizers.RMSprop(lr, momentum=0.0, rho=momentum),
        "adagrad": lambda: keras.optimizers.Adagrad(lr),
        "adadelta": lambda: keras.optimizers.Adadelta(lr),
        "adam": lambda: keras.optimizers.Adam(lr, **adam),
        "adamw": lambda: keras.optimizers.AdamW(lr, **adam),
    }
    if name not in factories:
        raise ValueError(f"unknown optimizer {name!r}: expected one of {', '.join(OPTIMIZERS)}")
    return factories[name]()


def make_schedule(params: Mapping[str, Any], *, steps_per_epoch: int, epochs: int) -> Any:
    """The learning rate: a float, or a Keras ``LearningRateSchedule``."""
    keras = import_keras()
    schedules = keras.optimizers.schedules
    params = with_defaults(params)
    lr = float(params["learning_rate"])
    kind = str(params["lr_schedule"])
    gamma = float(params["lr_decay_rate"])
    warmup = int(params["warmup_epochs"]) * steps_per_epoch
    total = max(1, epochs * steps_per_epoch)
    if kind == "cosine":  # Keras' cosine schedule has its own warm-up
        return schedules.CosineDecay(
            0.0 if warmup else lr,
            decay_steps=max(1, total - warmup),
            alpha=gamma,
            warmup_target=lr if warmup else None,
            warmup_steps=warmup,
        )
    if kind == "constant":
        schedule: Any = lr
    elif kind == "step":
        schedule = schedules.ExponentialDecay(
            lr, steps_per_epoch * max(1, epochs // 4), 1 - gamma, staircase=True
        )
    elif kind == "exponential":
        schedule = schedules.ExponentialDecay(lr, steps_per_epoch, 1 - gamma)
    elif kind == "inverse_time":
        schedule = schedules.InverseTimeDecay(lr, steps_per_epoch, gamma)
    else:
        raise ValueError(f"unknown lr_schedule {kind!r}: expected one of {', '.join(SCHEDULES)}")
    return _with_warmup(schedule, warmup_steps=warmup) if warmup else schedule


def _with_warmup(schedule: Any, *, warmup_steps: int) -> Any:
    # Keras ships warm-up only inside CosineDecay; this wraps any other schedule.
    keras = import_keras()
    return _linear_warmup_class(keras)(schedule, warmup_steps)


_WARMUP_CLASS: Any = None


def _linear_warmup_class(keras: Any) -> Any:
    """Define the warm-up schedule once, lazily, so importing this module needs no Keras."""
    global _WARMUP_CLASS
    if _WARMUP_CLASS is not None:
        return _WARMUP_CLASS

    @keras.saving.register_keras_serializable(package="tuner")
    class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):  # type: ignore[misc]
        def __init__(self, after: Any, warmup_steps: int) -> None:
            self.after = after
            self.warmup_steps = warmup_steps

        def __call__(self, step: Any) -> Any:
            ops = keras.ops
            step = ops.cast(step, "float32")
            target = self.after(step - self.warmup_steps) if callable(self.after) else self.after
            ramp = target * (step + 1.0) / float(self.warmup_steps)
            return ops.where(step < self.warmup_steps, ramp, target)

        def get_config(self) -> dict[str, Any]:
            after = self.after
            if not isinstance(after, float):
                after = keras.optimizers.schedules.serialize(after)
            return {"after": after, "warmup_steps": self.warmup_steps}

        @classmethod
        def from_config(cls, config: dict[str, Any]) -> Any:
            after = config["after"]
            if isinstance(after, dict):
                after = keras.optimizers.schedules.deserialize(after)
            return cls(after, config["warmup_steps"])

    _WARMUP_CLASS = LinearWarmup
    return _WARMUP_CLASS
