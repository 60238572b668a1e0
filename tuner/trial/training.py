"""Compile and train one model from a mapping of chosen values (no Optuna here).

The objective (``tuner.trial.objective``) adds the pruning callback and records the outcome;
everything that concerns Keras alone lives here, so built-in and user builders are
compiled and trained the same way.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from tuner import records
from tuner.specs.objectives import MEASURES
from tuner.trial.data import Dataset
from tuner.trial.defaults import with_defaults
from tuner.trial.keras_env import import_keras
from tuner.trial.measures import builder_measures, latency_ms
from tuner.trial.models import BUILDERS, Builder
from tuner.trial.optim import make_optimizer

DIVERGENCE_FACTOR = 10.0  # an epoch loss this many times a constant guess's loss has diverged


class Diverged(ArithmeticError):
    """The training loss became non-finite or exploded: the learning rate is too large."""


@dataclass(frozen=True)
class TrainResult:
    """What one training run produced, in plain numbers."""

    history: dict[str, list[float]]
    epochs: int
    seconds: float
    n_params: int
    measures: dict[str, float] = field(default_factory=dict)  # n_params, latency_ms, val_*

    def final(self, metric: str) -> float:
        """The metric after the last epoch trained."""
        if metric not in self.history:
            raise KeyError(
                f"metric {metric!r} is not among the logged metrics {sorted(self.history)}; "
                f"choose one of those"
            )
        return float(self.history[metric][-1])


def default_loss(task: str) -> str:
    """Cross-entropy for classes (integer labels), mean squared error for regression."""
    return "sparse_categorical_crossentropy" if task == "classification" else "mse"


def guess_loss(dataset: Dataset) -> float:
    """The default loss of a model that knows nothing: ln(classes), or the MSE of predicting 0.

    An untrained network starts near this; a run whose epoch loss is many times larger
    has blown up even when the number stays finite (a dead ReLU net at α = 10 logs 3e5,
    then settles at chance).
    """
    if dataset.task == "classification":
        return math.log(max(2, dataset.n_outputs))
    y = dataset.y_train.astype("float64")
    return float(max((y**2).mean(), y.var(), 1e-12))


def default_metrics(task: str) -> list[str]:
    return ["accuracy"] if task == "classification" else ["mae"]


def build_model(
    params: Mapping[str, Any],
    dataset: Dataset,
    *,
    family: str = "mlp",
    builder: Builder | None = None,
) -> tuple[Any, dict[str, float]]:
    """Build with a user builder or a built-in family; shapes go to builders that take them.

    Returns the model and the measures a user's builder returned beside it (a builder
    may return ``(model, {"flops": 1.2e6})``), empty for a bare model.
    """
    build = builder or BUILDERS[family]
    shapes = {
        "input_shape": dataset.input_shape,
        "n_outputs": dataset.n_outputs,
        "task": dataset.task,
    }
    accepted = inspect.signature(build).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    kwargs = {k: v for k, v in shapes.items() if takes_all or k in accepted}
    built = build(dict(params), **kwargs)
    model, extra = built if isinstance(built, tuple) and len(built) == 2 else (built, {})
    keras = import_keras()
    if not isinstance(model, keras.Model):
        raise TypeError(f"the model builder returned {type(model).__name__}, not a keras.Model")
    return model, builder_measures(extra, reserved=set(MEASURES) | records.OWN_TRIAL_ATTRS)


def train(
    params: Mapping[str, Any],
    dataset: Dataset,
    *,
    epochs: int,
    family: str = "mlp",
    builder: Builder | None = None,
    loss: str = "auto",
    callbacks: Sequence[Any] = (),
    seed: int = 0,
    validation: bool = True,
    guard: Any = None,
    mixed_precision: bool = False,
    jit_compile: Literal["auto"] | bool = "auto",
    latency_batch_size: int | None = None,
    before_fit: Callable[[dict[str, float]], None] | None = None,
) -> tuple[Any, TrainResult]:
    """Build, compile and fit a model; raise :class:`Diverged` at the first non-finite epoch.

    Pass your own ``guard`` (from :func:`divergence_guard`) to read the epochs and seconds
    of a run that ended in an exception (pruned, diverged). ``before_fit`` receives the
    measures known before the first epoch (``n_params``, the builder's, and
    ``latency_ms`` when ``latency_batch_size`` is given) and may raise to skip training.
    ``mixed_precision`` computes in float16 with float32 weights and outputs; Keras wraps
    the optimizer in its ``LossScaleOptimizer``, so small gradients do not underflow.

    Example:
        >>> model, result = train({"learning_rate": 0.01}, dataset, epochs=5)
        >>> result.final("val_accuracy")
    """
    keras = import_keras()
    keras.utils.set_random_seed(seed)
    # The policy is global in Keras: set it for every model so one spec never leaks into the next.
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed_precision else "float32")
    model, known = build_model(params, dataset, family=family, builder=builder)
    if mixed_precision:
        model = _float32_outputs(model)
    batch_size = int(with_defaults(params)["batch_size"])
    steps = math.ceil(len(dataset.x_train) / batch_size)
    model.compile(
        optimizer=make_optimizer(params, steps_per_epoch=steps, epochs=epochs),
        loss=default_loss(dataset.task) if loss == "auto" else loss,
        metrics=default_metrics(dataset.task),
        jit_compile=jit_compile,
    )
    known["n_params"] = int(model.count_params())
    if latency_batch_size is not None:
        known["latency_ms"] = latency_ms(model, dataset.x_val, batch_size=latency_batch_size)
    if before_fit is not None:
        before_fit(dict(known))
    guard = guard or divergence_guard()
    if loss == "auto":
        guard.limit = DIVERGENCE_FACTOR * guess_loss(dataset)
    started = time.perf_counter()
    try:
        model.fit(
            _batches(dataset.x_train, dataset.y_train, batch_size=batch_size, shuffle_seed=seed),
            epochs=epochs,
            verbose=0,
            shuffle=False,  # the batches are shuffled already
            validation_data=(
                _batches(dataset.x_val, dataset.y_val, batch_size=batch_size)
                if validation
                else None
            ),
            callbacks=[guard, *callbacks],
        )
    finally:
        guard.seconds = time.perf_counter() - started
    final = {k: v[-1] for k, v in guard.history.items() if k.startswith("val_")}
    return model, TrainResult(
        history=guard.history,
        epochs=guard.epochs,
        seconds=guard.seconds,
        n_params=int(known["n_params"]),
        measures={**known, **final},
    )


def _float32_outputs(model: Any) -> Any:
    """The model with float32 outputs: a float16 softmax or regression output loses
    precision and can overflow (Keras' mixed-precision guide). Built-in families make
    their head float32; a user's model that does not gets a float32 identity on top."""
    keras = import_keras()
    if all(output.dtype == "float32" for output in model.outputs):
        return model
    outputs = [keras.layers.Activation("linear", dtype="float32")(o) for o in model.outputs]
    return keras.Model(model.inputs, outputs[0] if len(outputs) == 1 else outputs)


def _batches(x: Any, y: Any, *, batch_size: int, shuffle_seed: int | None = None) -> Any:
    """The rows as a ``tf.data`` pipeline of batches, reshuffled each epoch if seeded.

    Keras' own path for arrays (index permutation, parallel gather) took 1.1-1.9x as
    long to fit the digits MLP on 2 CPU cores and was no faster on 20,000 rows of 784
    features (benchmarks/README.md, Overhead). The shuffle buffer holds the whole
    training set, so that every epoch is a full reshuffle as with Keras. Prefetching
    overlaps the next batch with the current step: no gain on digits, 4-14% on the
    larger rows, and what an accelerator needs.
    """
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle_seed is not None:
        data = data.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def divergence_guard() -> Any:
    """A callback that counts epochs, keeps the history, and stops a diverging run.

    Diverging means a non-finite loss, or one above ``limit`` (see :func:`guess_loss`).

    Checked at epoch end: a per-batch check would force Keras to sync every step, which
    costs more than the at most one epoch a diverged run can waste. The history lives on
    the callback because a pruned run never returns Keras' own History.
    """
    keras = import_keras()

    class DivergenceGuard(keras.callbacks.Callback):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.epochs = 0
            self.seconds = 0.0
            self.epoch_seconds: list[float] = []
            self.history: dict[str, list[float]] = {}
            self.limit = math.inf  # set by train() where the loss has a known scale
            self._epoch_started = 0.0

        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self._epoch_started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.epoch_seconds.append(time.perf_counter() - self._epoch_started)
            self.epochs = epoch + 1
            for key, value in (logs or {}).items():
                self.history.setdefault(key, []).append(float(value))
            loss = float((logs or {}).get("loss", 0.0))
            if not math.isfinite(loss):
                raise Diverged(f"loss became {loss} at epoch {epoch + 1}")
            if loss > self.limit:
                raise Diverged(
                    f"loss {loss:.4g} at epoch {epoch + 1} is over {DIVERGENCE_FACTOR:g} times "
                    f"that of a constant guess"
                )

    return DivergenceGuard()
