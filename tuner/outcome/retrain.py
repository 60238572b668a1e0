"""Turn a study's best configuration (or any trial's) into a model file, recorded on the study.

The trial is trained again from what the study stored: its configuration (every value,
as ``TuneResult.best_config``), its seed, and the spec's data, model and training
sections. By default it trains on train + validation data (the validation score was
already used to choose the configuration, so holding it out again buys nothing); with
``train_only`` it repeats the trial on the training split alone, which reproduces the
trial's validation score and so checks the retrained model honestly.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from tuner import records
from tuner.errors import MultiObjectiveError, NoCompletedTrialError, SpecError, StorageError
from tuner.outcome.results import config_of, summarize
from tuner.specs.plugins import import_function
from tuner.specs.spec import StudySpec
from tuner.storage.urls import parse_url
from tuner.trial.data import Dataset, load_dataset

ARTIFACT_DIR_SUFFIX = "-artifacts"


@dataclass(frozen=True)
class Retrained:
    """Where the retrained model went and what it scored."""

    model_path: Path
    info_path: Path
    artifact_id: str
    info: dict[str, Any]


def default_artifact_dir(storage_url: str) -> Path:
    """``<db>-artifacts/`` beside an SQLite file; ``./tuner-artifacts`` for a server database.

    Example:
        >>> default_artifact_dir("sqlite:///runs/tuner.db")
        PosixPath('runs/tuner-artifacts')
    """
    try:
        parsed = parse_url(storage_url)
    except StorageError:  # opening the storage will say what is wrong with the URL
        parsed = None
    if (
        parsed
        and parsed.get_backend_name() == "sqlite"
        and parsed.database not in (None, "", ":memory:")
    ):
        db = Path(parsed.database)
        return db.with_name(db.stem + ARTIFACT_DIR_SUFFIX)
    return Path("tuner" + ARTIFACT_DIR_SUFFIX)


def retrain(
    study: optuna.Study,
    *,
    out: Path,
    artifact_dir: Path,
    epochs: int | None = None,
    train_only: bool = False,
    data_dir: Path | None = None,
    trial: int | None = None,
) -> Retrained:
    """Train the study's best configuration (or trial number ``trial``'s), save ``out``
    (.keras) and ``out``.json, and record the model as an artifact of the study.

    ``data_dir`` is where relative data paths (csv, npz) are found: the folder of the
    spec file the study was run from (default: the working directory). A study of several
    objectives has no best configuration: give ``trial`` (one of its Pareto front's).

    Example:
        >>> done = retrain(study, out=Path("best.keras"), artifact_dir=Path("tuner-artifacts"))
        >>> done.info["metrics"]
    """
    spec = _stored_spec(study)
    best = _chosen_trial(study, trial)
    seed = int(best.user_attrs.get(records.SEED, spec.seed + best.number))
    # The trial's seed is the run's seed + its number; the run's seed made the split.
    dataset = load_dataset(spec.data, base_dir=data_dir or Path.cwd(), seed=seed - best.number)
    if not train_only:
        dataset = with_validation_in_training(dataset)
    epochs = epochs or int(best.user_attrs.get(records.EPOCHS) or spec.training.max_epochs)
    config = config_of(study, best)
    model, metrics = _train(
        config, dataset, spec=spec, epochs=epochs, seed=seed, code_dir=data_dir or Path.cwd()
    )
    info = {
        "study": study.study_name,
        "trial": best.number,
        "study_value": best.values[0] if best.values and len(best.values) == 1 else None,
        "trial_values": dict(zip([m.name for m in spec.metrics], best.values or [], strict=False)),
        "metric": spec.metric,
        "trained_on": "train" if train_only else "train+validation",
        "train_rows": len(dataset.x_train),
        "epochs": epochs,
        "seed": seed,
        "params": config,
        "metrics": metrics,
        # what predict() takes: raw rows when the model carries tuner's scaling layer,
        # each of this shape (the batch axis left out)
        "inputs": "raw" if dataset.scaling is not None else "as given",
        "input_shape": list(dataset.input_shape),
    }
    _save_model_atomically(model, out)
    artifact_id = _record_artifact(study, out, artifact_dir)
    info["artifact_id"] = artifact_id
    info_path = out.with_suffix(".json")
    _write_atomically(info_path, json.dumps(info, indent=2, default=_plain) + "\n")
    return Retrained(out, info_path, artifact_id, info)


def _chosen_trial(study: optuna.Study, number: int | None) -> optuna.trial.FrozenTrial:
    """Trial ``number`` (any state, as long as it has parameters), else the best trial."""
    if number is None:
        result = summarize(study, storage_url="")
        if result.multi_objective:
            raise MultiObjectiveError(
                f"study {study.study_name!r} has {len(result.objectives)} objectives, so no "
                f"single best configuration; choose a trial of its Pareto front (`tuner best "
                f"{study.study_name}`) and give --trial N"
            )
        if result.best_trial is None:
            raise NoCompletedTrialError(
                f"study {study.study_name!r} has no completed trial, so no best configuration "
                f"to retrain; run more trials first (`tuner run SPEC --resume`)"
            )
        number = result.best_trial
    trials = study.get_trials(deepcopy=False)
    found = next((t for t in trials if t.number == number), None)
    if found is None or not found.params:
        raise SpecError(
            f"--trial {number}: study {study.study_name!r} has no such trial with parameters "
            f"(trials 0-{len(trials) - 1}; see `tuner trials list {study.study_name}`)"
        )
    return found


def with_validation_in_training(dataset: Dataset) -> Dataset:
    """The dataset with its validation rows added to the training rows."""
    return replace(
        dataset,
        x_train=np.concatenate([dataset.x_train, dataset.x_val]),
        y_train=np.concatenate([dataset.y_train, dataset.y_val]),
    )


def evaluate(model: Any, dataset: Dataset) -> dict[str, float]:
    """The model's loss and metrics on the validation rows, named as Keras logs them."""
    scores = model.evaluate(dataset.x_val, dataset.y_val, verbose=0, return_dict=True)
    return {f"val_{k}": float(v) for k, v in scores.items()}


def _train(
    config: dict[str, Any],
    dataset: Dataset,
    *,
    spec: StudySpec,
    epochs: int,
    seed: int,
    code_dir: Path,
) -> tuple[Any, dict[str, float]]:
    from tuner.trial.training import default_metrics, train

    builder = (
        import_function(
            spec.model.builder, error=SpecError, what="model.builder", search_dirs=[code_dir]
        )
        if spec.model.builder
        else None
    )
    model, trained = train(
        config,
        dataset,
        epochs=epochs,
        family=spec.model.family,
        builder=builder,
        loss=spec.training.loss,
        seed=seed,
    )
    final = {k: v[-1] for k, v in trained.history.items()}
    metrics = {**final, **evaluate(model, dataset)}
    # Saved for prediction: a schedule such as tuner's LinearWarmup would make plain
    # `keras.models.load_model` fail, so the file keeps the loss and metrics but not the
    # training optimizer (retrain again to continue training). Both the trained model and
    # its raw-input wrapper are saved, so both are compiled without it.
    loss = model.loss
    wrapped = with_input_scaling(model, dataset)
    for saved in (model, wrapped) if wrapped is not model else (model,):
        saved.compile(loss=loss, metrics=default_metrics(dataset.task))
        saved.optimizer.build(saved.trainable_variables)  # as loading rebuilds it: no warning
    return wrapped, metrics


def with_input_scaling(model: Any, dataset: Dataset) -> Any:
    """``model`` behind a layer that scales raw inputs as the dataset's loader did.

    Trials train on standardised (tabular) or [0, 1] (images) inputs; a saved model that
    expected those would silently mispredict on the raw rows a user feeds it.
    """
    from tuner.trial.keras_env import import_keras

    if dataset.scaling is None:
        return model
    keras = import_keras()
    offset, scale = dataset.scaling.offset, dataset.scaling.scale
    scaled = keras.layers.Normalization(
        axis=None if np.ndim(scale) == 0 else -1,
        mean=offset,
        variance=np.square(scale),
        name="raw_input_scaling",
    )
    inputs = keras.Input(shape=dataset.input_shape, name="raw_inputs")
    return keras.Model(inputs, model(scaled(inputs)), name=model.name)


def _stored_spec(study: optuna.Study) -> StudySpec:
    raw = study.user_attrs.get(records.SPEC)
    if not raw:
        raise SpecError(
            f"study {study.study_name!r} has no stored spec (it was not made by `tuner run`), "
            f"so tuner cannot tell which data and model to retrain"
        )
    return StudySpec.model_validate(raw)


def _save_model_atomically(model: Any, out: Path) -> None:
    # Keras insists on the .keras suffix, so the temporary file keeps it.
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}-", suffix=".keras", dir=out.parent)
    os.close(fd)
    try:
        model.save(tmp)
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _record_artifact(study: optuna.Study, model_path: Path, artifact_dir: Path) -> str:
    from optuna.artifacts import FileSystemArtifactStore, upload_artifact

    artifact_dir.mkdir(parents=True, exist_ok=True)
    return upload_artifact(
        artifact_store=FileSystemArtifactStore(artifact_dir),
        file_path=str(model_path),
        study_or_trial=study,
        mimetype="application/octet-stream",
    )


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else str(value)
