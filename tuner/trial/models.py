"""Built-in model families. A builder takes a plain mapping of chosen values.

The model layer knows nothing of Optuna: ``build(params, input_shape=..., n_outputs=...,
task=...)`` returns an uncompiled ``keras.Model``; compiling and training belong to
``tuner.trial.training``, so a user's own builder plugs in at exactly this place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tuner.trial.defaults import with_defaults
from tuner.trial.keras_env import import_keras

Builder = Callable[..., Any]


def build_mlp(
    params: Mapping[str, Any], *, input_shape: tuple[int, ...], n_outputs: int, task: str
) -> Any:
    """Dense layers: [Dense → BatchNorm? → activation → Dropout] × layers, then the head."""
    keras = import_keras()
    params = with_defaults(params)
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Flatten()(inputs) if len(input_shape) > 1 else inputs
    for _ in range(int(params["layers"])):
        x = _dense_block(keras, x, params, units=int(params["units"]))
    return keras.Model(inputs, _head(keras, x, n_outputs=n_outputs, task=task))


def build_cnn(
    params: Mapping[str, Any], *, input_shape: tuple[int, ...], n_outputs: int, task: str
) -> Any:
    """Small conv blocks (Conv 3x3 → activation → MaxPool), one dense layer, then the head.

    ``layers`` sets the number of conv blocks, capped so the image is never pooled below
    2x2; filters double per block from 32.
    """
    keras = import_keras()
    params = with_defaults(params)
    if len(input_shape) != 3:
        raise ValueError(
            f"the cnn family needs images (height, width, channels), got {input_shape}"
        )
    inputs = keras.Input(shape=input_shape)
    x, side = inputs, min(input_shape[0], input_shape[1])
    for block in range(int(params["layers"])):
        if side < 4:
            break
        x = keras.layers.Conv2D(32 * 2**block, 3, padding="same", use_bias=False)(x)
        if params["batch_norm"]:
            x = keras.layers.BatchNormalization()(x)
        x = _activation(keras, params["activation"])(x)
        x = keras.layers.MaxPooling2D()(x)
        side //= 2
    x = keras.layers.Flatten()(x)
    x = _dense_block(keras, x, params, units=int(params["units"]))
    return keras.Model(inputs, _head(keras, x, n_outputs=n_outputs, task=task))


def build_linear(
    params: Mapping[str, Any], *, input_shape: tuple[int, ...], n_outputs: int, task: str
) -> Any:
    """No hidden layer: linear (or softmax) regression, the gradient-descent textbook case."""
    keras = import_keras()
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Flatten()(inputs) if len(input_shape) > 1 else inputs
    return keras.Model(inputs, _head(keras, x, n_outputs=n_outputs, task=task))


BUILDERS: dict[str, Builder] = {"mlp": build_mlp, "cnn": build_cnn, "linear": build_linear}


def _dense_block(keras: Any, x: Any, params: Mapping[str, Any], *, units: int) -> Any:
    """One hidden layer; ``params`` holds every value (see :func:`with_defaults`)."""
    l2 = float(params["l2"])
    x = keras.layers.Dense(units, kernel_regularizer=keras.regularizers.L2(l2) if l2 > 0 else None)(
        x
    )
    if params["batch_norm"]:
        x = keras.layers.BatchNormalization()(x)
    x = _activation(keras, params["activation"])(x)
    dropout = float(params["dropout"])
    return keras.layers.Dropout(dropout)(x) if dropout > 0 else x


def _activation(keras: Any, name: str) -> Any:
    if name == "leaky_relu":
        return keras.layers.LeakyReLU(negative_slope=0.01)
    return keras.layers.Activation(name)


def _head(keras: Any, x: Any, *, n_outputs: int, task: str) -> Any:
    # Softmax only at the output (DOMAIN.md); float32 so mixed precision stays stable.
    if task == "classification":
        return keras.layers.Dense(n_outputs, activation="softmax", dtype="float32")(x)
    return keras.layers.Dense(n_outputs, dtype="float32")(x)
