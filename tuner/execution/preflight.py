"""Preflight: everything that can refuse a study, checked before any trial starts and
before anything is written (the spec's metric against the data's task, the model family
against the data's shape, the loss, the study name, a resumed study's space).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna

from tuner import records
from tuner.errors import SpecError, StudyExistsError
from tuner.specs.plugins import import_function
from tuner.specs.space import SearchSpace
from tuner.specs.spec import MODEL_FAMILIES, ResolvedSpec
from tuner.specs.validation import MAX_SEED, check_name
from tuner.trial.data import Dataset
from tuner.trial.keras_env import import_keras
from tuner.trial.models import Builder
from tuner.trial.training import default_metrics


def check_same_space(storage: Any, name: str, space: SearchSpace) -> None:
    """Refuse to resume a study whose stored space differs from the current one."""
    study = optuna.load_study(study_name=name, storage=storage)
    stored = study.user_attrs.get(records.SPACE)
    if stored is None:
        return
    before = SearchSpace.model_validate(stored).distributions()
    now = space.distributions()
    changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
    if changed:
        raise StudyExistsError(
            f"study {name!r} was run with a different search space (changed: "
            f"{', '.join(changed)}); use --overwrite to replace it or a new --study-name"
        )


def check_metric(metric: str, task: str) -> None:
    logged = ["val_loss", *(f"val_{m}" for m in default_metrics(task))]
    if metric not in logged:
        raise SpecError(
            f"metric {metric!r} is not logged when training a {task} model; "
            f"choose one of {', '.join(logged)}"
        )


def check_seed(seed: int) -> None:
    """Refuse a seed numpy's and scikit-learn's random states cannot take (the spec's
    field checks its own; this one also covers ``--seed`` and the API)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise SpecError(
            f"seed must be a whole number from 0 to {MAX_SEED} (2^32 - 1), got {seed!r}"
        )


def check_study_name(name: str) -> None:
    try:
        check_name(name, what="study name")
    except ValueError as exc:
        raise SpecError(f"--study-name: {exc}") from None


def check_model_fits(resolved: ResolvedSpec, dataset: Dataset, *, builder: Builder | None) -> None:
    """Refuse a model family or loss that every trial would fail on with this dataset."""
    spec = resolved.spec
    rank = MODEL_FAMILIES[spec.model.family]
    if builder is None and rank is not None and len(dataset.input_shape) != rank:
        others = ", ".join(f for f, r in MODEL_FAMILIES.items() if r is None)
        raise SpecError(
            f"model.family {spec.model.family} needs images (height, width, channels), but "
            f"{dataset.name} has input shape {dataset.input_shape}; use family {others}"
        )
    loss = spec.training.loss
    if loss == "auto":
        return
    if "crossentropy" in loss.lower() and dataset.task == "regression":
        raise SpecError(
            f"training.loss {loss} is for class labels, but {dataset.name} is a regression; use "
            f"auto or mse (or set data.task: classification if the target holds classes)"
        )
    if loss.lower().replace("_", "") == "categoricalcrossentropy":
        raise SpecError(
            f"training.loss {loss} expects one-hot labels, but tuner trains on integer class "
            f"labels; use sparse_categorical_crossentropy (what auto picks)"
        )
    try:  # last: the name checks above need no TensorFlow
        import_keras().losses.get(loss)
    except ValueError:
        raise SpecError(
            f"training.loss {loss!r} is not a Keras loss; use auto, mse, mae, huber or "
            f"sparse_categorical_crossentropy"
        ) from None


def import_builder(ref: str | None, *, base_dir: Path) -> Builder | None:
    """The spec's ``model.builder``, found from ``base_dir`` (the spec's folder) first."""
    if ref is None:
        return None
    return import_function(ref, error=SpecError, what="model.builder", search_dirs=[base_dir])
