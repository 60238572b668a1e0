"""`tuner retrain`: the best configuration becomes a Keras model file, a JSON record and an
Optuna artifact of the study."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
from optuna.artifacts import get_all_artifact_meta

from tuner.outcome.retrain import evaluate
from tuner.specs.spec import StudySpec
from tuner.trial.data import load_dataset
from tuner.trial.keras_env import import_keras

pytestmark = pytest.mark.slow

# Retraining with --train-only repeats the best trial: same data split, same seed, same
# epochs. On CPU that reproduces the trial up to the order of floating-point sums in
# Keras' multi-threaded kernels; one validation row of the tiny spec's 120 is 0.0083,
# so allowing two rows to flip is a tolerance that still catches a wrong configuration
# (the two tiny trials differ by far more than that).
TOLERANCE = 2 / 120


def _validation_rows(study):
    spec = StudySpec.model_validate(study.user_attrs["tuner_spec"])
    return load_dataset(spec.data, base_dir=Path.cwd(), seed=spec.seed)


def _raw(dataset):
    """The validation rows as the user has them, before tuner's scaling."""
    return replace(dataset, x_val=dataset.x_val * dataset.scaling.scale + dataset.scaling.offset)


def test_train_only_model_loads_and_scores_the_study_best_on_validation(cli, tiny_study, tmp_path):
    out = tmp_path / "best.keras"
    done = cli("retrain", "tiny", "--storage", tiny_study.url, "--out", str(out), "--train-only")
    assert done.returncode == 0, done.stderr
    study = optuna.load_study(study_name="tiny", storage=tiny_study.url)
    model = import_keras().models.load_model(out)
    raw = _raw(_validation_rows(study))
    assert raw.x_val.max() == 16  # digits' raw pixel values: the model scales them itself
    score = evaluate(model, raw)["val_accuracy"]
    assert score == pytest.approx(study.best_value, abs=TOLERANCE)

    info = json.loads(out.with_suffix(".json").read_text())
    assert info["trial"] == study.best_trial.number and info["trained_on"] == "train"
    assert info["params"]["batch_size"] == 2 ** study.best_trial.params["log2_batch_size"]
    assert info["metrics"]["val_accuracy"] == pytest.approx(score)
    assert info["inputs"] == "raw"
    # The shape of one input row, as the saved model takes it (digits: 8x8 images).
    assert info["input_shape"] == [8, 8, 1] == list(model.input_shape[1:])

    # The model is an artifact of the study, in <db>-artifacts beside the SQLite file.
    metas = get_all_artifact_meta(study)
    assert [m.artifact_id for m in metas] == [info["artifact_id"]]
    stored = Path(tiny_study.url.removeprefix("sqlite:///")).parent / "study-artifacts"
    assert (stored / info["artifact_id"]).read_bytes() == out.read_bytes()


def test_default_retrain_uses_train_and_validation_rows(cli, tiny_study, tmp_path):
    out = tmp_path / "full.keras"
    done = cli("retrain", "tiny", "--storage", tiny_study.url, "--out", str(out), "--epochs", "2")
    assert done.returncode == 0, done.stderr
    assert "which it trained on (so optimistic)" in done.stdout
    info = json.loads(out.with_suffix(".json").read_text())
    dataset = _validation_rows(optuna.load_study(study_name="tiny", storage=tiny_study.url))
    assert info["trained_on"] == "train+validation" and info["epochs"] == 2
    assert info["train_rows"] == len(dataset.x_train) + len(dataset.x_val)
    import_keras().models.load_model(out)


def test_out_must_be_a_keras_file_and_nothing_is_trained_otherwise(cli, tiny_study, tmp_path):
    done = cli("retrain", "tiny", "--storage", tiny_study.url, "--out", str(tmp_path / "m.h5"))
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1
    assert "must end in .keras" in done.stderr
    assert list(tmp_path.iterdir()) == []
