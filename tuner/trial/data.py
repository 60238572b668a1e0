"""Datasets: load, check, scale and split them once per worker, never per trial.

Sources: scikit-learn's bundled sets (digits, iris, wine, breast_cancer, diabetes), a
seeded synthetic linear regression (y = w·x + b + noise), a CSV file with a named
target column, an NPZ file, Keras' downloadable sets (mnist, fashion_mnist, cifar10;
they need the internet once, then Keras' cache), and a user function ``module:function``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tuner.errors import DataError
from tuner.trial.data_files import read_csv, read_npz, user_arrays

Task = Literal["classification", "regression"]
SKLEARN_SETS = ("digits", "iris", "wine", "breast_cancer", "diabetes")
KERAS_SETS = ("mnist", "fashion_mnist", "cifar10")
MAX_CLASSES = 1000  # integer targets with more distinct values than this are regression
MAX_FLOAT_CLASSES = 20  # whole-valued float targets (a CSV's 0.0/1.0) with at most this many


@dataclass(frozen=True)
class Scaling:
    """How raw inputs became what models see: ``(raw - offset) / scale``.

    Per feature for tabular data, one number for images; kept so a retrained model can
    carry the same step as a layer and take raw inputs.
    """

    offset: np.ndarray
    scale: np.ndarray


@dataclass(frozen=True)
class Dataset:
    """Arrays ready for Keras, with what a model builder needs to know about them."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    task: Task
    n_outputs: int  # classes for classification, targets for regression
    name: str = "data"
    scaling: Scaling | None = None  # None: the arrays are used as given

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])


def load_dataset(data: Any, *, base_dir: Path, seed: int) -> Dataset:
    """Load the dataset a :class:`~tuner.specs.spec.DataSpec` describes, checked, scaled and split.

    Example:
        >>> from tuner.specs.spec import DataSpec
        >>> ds = load_dataset(DataSpec(source="digits"), base_dir=Path("."), seed=0)
        >>> ds.n_outputs, ds.input_shape
        (10, (8, 8, 1))
    """
    source = data.source
    if source in KERAS_SETS:
        x_train, y_train, x_val, y_val = _keras_dataset(source)
        return _finish(
            x_train,
            y_train,
            x_val,
            y_val,
            task=data.task,
            name=source,
            max_rows=data.max_rows,
        )
    x, y, name = _load_arrays(data, base_dir=base_dir, seed=seed)
    _check_shapes(x, y, name=name)  # before slicing and imputing, which assume rows
    if data.max_rows:
        x, y = x[: data.max_rows], y[: data.max_rows]
    if data.impute != "none":
        x = impute_missing(x, how=data.impute, name=name)
    return split_dataset(
        x, y, task=data.task, validation_split=data.validation_split, seed=seed, name=name
    )


def _load_arrays(data: Any, *, base_dir: Path, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    source = data.source
    if source in SKLEARN_SETS:
        return (*_sklearn_dataset(source), source)
    if source == "synthetic_linear":
        x, y = synthetic_linear(
            n_samples=data.n_samples, n_features=data.n_features, noise=data.noise, seed=seed
        )
        return x, y, "synthetic_linear"
    if source in ("csv", "npz"):
        if not data.path:
            raise DataError(f"data.source {source} needs data.path: the file to read")
        path = Path(data.path).expanduser()
        path = path if path.is_absolute() else base_dir / path
        if source == "csv":
            return (*read_csv(path, target=data.target), path.name)
        return (*read_npz(path), path.name)
    if ":" in source:
        return (*user_arrays(source, base_dir=base_dir), source)
    known = ", ".join([*SKLEARN_SETS, "synthetic_linear", "csv", "npz", *KERAS_SETS])
    raise DataError(f"unknown data.source {source!r}: expected one of {known}, or module:function")


def _sklearn_dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    if name == "digits":  # keep the 8x8 image shape so the cnn family can use it
        return bunch.images[..., np.newaxis].astype("float32"), bunch.target
    return bunch.data.astype("float32"), bunch.target


def synthetic_linear(
    *, n_samples: int, n_features: int, noise: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The textbook regression y = w·x + b + noise, reproducible from the seed."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_samples, n_features)).astype("float32")
    w = rng.normal(size=n_features)
    y = x @ w + rng.normal() + rng.normal(scale=noise, size=n_samples)
    return x, y.astype("float32")


def impute_missing(x: np.ndarray, *, how: str, name: str = "data") -> np.ndarray:
    """Replace missing (NaN) features by their column's mean or median.

    The statistic is taken over all rows before the split: simpler than per split, and
    a column average leaks next to nothing about the validation rows.

    Example:
        >>> impute_missing(np.array([[1.0], [np.nan], [3.0]]), how="mean").ravel().tolist()
        [1.0, 2.0, 3.0]
    """
    x = np.asarray(x, dtype="float32")
    missing = np.isnan(x)
    if not missing.any():
        return x
    columns = x.reshape(len(x), -1)
    if np.isnan(columns).all(axis=0).any():
        raise DataError(f"{name}: a feature column has no values at all; drop it")
    fill = (np.nanmean if how == "mean" else np.nanmedian)(columns, axis=0)
    filled = np.where(np.isnan(columns), fill, columns)
    return filled.reshape(x.shape).astype("float32")


def _keras_dataset(name: str) -> tuple[np.ndarray, ...]:
    from tuner.trial.keras_env import import_keras

    keras = import_keras()
    try:
        (x_train, y_train), (x_val, y_val) = getattr(keras.datasets, name).load_data()
    except Exception as exc:  # the download raises many kinds; all mean the same here
        raise DataError(
            f"could not load {name}: the download failed ({type(exc).__name__}). It needs the "
            f"internet once (then ~/.keras/datasets caches it); offline, save the arrays as an "
            f".npz with x and y and use data.source: npz"
        ) from None
    if x_train.ndim == 3:  # grey images: add the channel axis
        x_train, x_val = x_train[..., np.newaxis], x_val[..., np.newaxis]
    return x_train, y_train.reshape(-1), x_val, y_val.reshape(-1)


def dataset_from_arrays(
    x_train: Any, y_train: Any, x_val: Any, y_val: Any, *, task: str = "auto"
) -> Dataset:
    """A checked, scaled :class:`Dataset` from arrays already split by the caller."""
    x_train, y_train, x_val, y_val = (np.asarray(a) for a in (x_train, y_train, x_val, y_val))
    _check_arrays(x_train, y_train, name="training arrays")
    _check_arrays(x_val, y_val, name="validation arrays")
    return _finish(x_train, y_train, x_val, y_val, task=task, name="arrays")


def split_dataset(
    x: np.ndarray,
    y: np.ndarray,
    *,
    task: str = "auto",
    validation_split: float = 0.2,
    seed: int = 0,
    name: str = "data",
) -> Dataset:
    """Check the arrays, hold out a validation split (stratified for classes) and scale."""
    from sklearn.model_selection import train_test_split

    x, y = np.asarray(x), np.asarray(y)
    _check_arrays(x, y, name=name)
    n_val = round(len(x) * validation_split)
    if n_val < 1 or len(x) - n_val < 2:
        raise DataError(
            f"{name}: {len(x)} rows are too few for validation_split={validation_split}"
        )
    task = infer_task(y, task)
    stratify = (
        y if task == "classification" and np.min(np.unique(y, return_counts=True)[1]) >= 2 else None
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=n_val, random_state=seed, stratify=stratify
    )
    return _finish(x_train, y_train, x_val, y_val, task=task, name=name)


def _finish(
    x_train, y_train, x_val, y_val, *, task: str, name: str, max_rows: int | None = None
) -> Dataset:
    if max_rows:
        x_train, y_train = x_train[:max_rows], y_train[:max_rows]
        x_val, y_val = x_val[: max(2, max_rows // 4)], y_val[: max(2, max_rows // 4)]
    task = infer_task(y_train, task)
    x_train, x_val = x_train.astype("float32"), x_val.astype("float32")
    scaling = _scaling(x_train)
    x_train = (x_train - scaling.offset) / scaling.scale
    x_val = (x_val - scaling.offset) / scaling.scale
    if task == "classification":
        classes = np.unique(y_train)
        if len(classes) < 2:
            raise DataError(
                f"{name}: the target has one class only ({classes[0]}); classification needs "
                f"at least two (check data.target, or raise data.max_rows)"
            )
        _check_labels(np.concatenate([y_train, y_val]), name=name)
        y_train, y_val = y_train.astype("int64"), y_val.astype("int64")
        n_outputs = int(max(y_train.max(), y_val.max())) + 1
    else:
        y_train, y_val = y_train.astype("float32"), y_val.astype("float32")
        n_outputs = 1 if y_train.ndim == 1 else int(y_train.shape[1])
    return Dataset(
        x_train,
        y_train,
        x_val,
        y_val,
        task=task,
        n_outputs=n_outputs,
        name=name,
        scaling=scaling,  # type: ignore[arg-type]
    )


def _check_labels(y: np.ndarray, *, name: str) -> None:
    """Class labels index the model's outputs: whole numbers from 0."""
    if y.ndim != 1 or not np.all(np.mod(y, 1) == 0):
        raise DataError(
            f"{name}: classification needs one whole-number class label per row, got "
            f"{'fractions' if y.ndim == 1 else f'shape {y.shape}'}; set data.task: regression"
        )
    if y.min() < 0:
        raise DataError(
            f"{name}: class labels must be 0, 1, 2, ..., got {y.min():g}; re-encode them "
            f"from 0 (or set data.task: regression)"
        )


def infer_task(y: np.ndarray, task: str = "auto") -> Task:
    """Classification for integer labels (or few whole-valued floats), else regression.

    ``task`` other than "auto" wins. Float targets count as labels only when whole-valued
    with at most 20 distinct values, so diabetes' whole-number progression scores stay
    a regression.
    """
    if task in ("classification", "regression"):
        return task  # type: ignore[return-value]
    if y.ndim != 1:
        return "regression"
    n_distinct = len(np.unique(y))
    if np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_):
        return "classification" if n_distinct <= MAX_CLASSES else "regression"
    whole = bool(np.all(np.mod(y, 1) == 0))
    return "classification" if whole and n_distinct <= MAX_FLOAT_CLASSES else "regression"


def _check_shapes(x: np.ndarray, y: np.ndarray, *, name: str) -> None:
    """Refuse arrays no model can take: x must be (rows, features...), y one value (or
    one row of targets) per row, both numbers."""
    if x.ndim < 2 or 0 in x.shape[1:]:
        raise DataError(
            f"{name}: x has shape {x.shape}; it needs one row per sample and at least one "
            f"feature, shape (rows, features) or (rows, height, width, channels)"
        )
    if len(x) == 0:
        raise DataError(f"{name}: the dataset has no rows")
    if y.ndim not in (1, 2) or len(x) != len(y):
        raise DataError(
            f"{name}: x has {len(x)} rows but y has shape {y.shape}; y needs one value "
            f"(or one row of targets) per row of x"
        )
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{name}: features must be numeric, got dtype {x.dtype}")
    if not (np.issubdtype(y.dtype, np.number) or np.issubdtype(y.dtype, np.bool_)):
        raise DataError(
            f"{name}: the target must hold numbers, got dtype {y.dtype}; encode classes as "
            f"integers 0, 1, ... (a CSV's text labels are encoded for you)"
        )


def _check_arrays(x: np.ndarray, y: np.ndarray, *, name: str) -> None:
    _check_shapes(x, y, name=name)
    n_bad = int(np.count_nonzero(~np.isfinite(x.astype("float64"))))
    if n_bad:
        raise DataError(
            f"{name}: {n_bad} feature values are NaN or infinite; clean them, or set "
            f"data.impute: mean (or median) to fill the missing ones"
        )
    if not np.all(np.isfinite(y.astype("float64"))):
        raise DataError(f"{name}: the target has NaN or infinite values; drop those rows")


def _scaling(x_train: np.ndarray) -> Scaling:
    """Images (rank >= 3) to [0, 1]; tabular features standardised on the train split."""
    if x_train.ndim >= 3:
        top = float(max(x_train.max(), 1.0))
        return Scaling(offset=np.asarray(0.0, "float32"), scale=np.asarray(top, "float32"))
    std = x_train.std(axis=0)
    std[std == 0] = 1.0
    return Scaling(offset=x_train.mean(axis=0), scale=std)
