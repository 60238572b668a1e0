"""GPU settings (training.mixed_precision, jit_compile, memory_growth, gpu_memory_limit_mb):
checked like every spec field, recorded on the study, ignored on a CPU with one line."""

from __future__ import annotations

import optuna
import pytest

from tuner import records
from tuner.specs.spec import TrainingSpec
from tuner.trial.data import dataset_from_arrays
from tuner.trial.keras_env import GpuOptions, import_keras
from tuner.trial.training import train

GPU_SETTINGS = {
    "mixed_precision": True,
    "jit_compile": True,
    "memory_growth": False,
    "gpu_memory_limit_mb": 512,
}


@pytest.mark.parametrize(
    ("field", "value"),
    [("jit_compile", "fast"), ("gpu_memory_limit_mb", 10), ("mixed_precision", "maybe")],
)
def test_a_bad_gpu_setting_is_one_line_and_exit_code_2(field, value, tiny_spec, sqlite_url, cli):
    done = cli("run", str(tiny_spec(training={field: value})), "--storage", sqlite_url)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"training.{field}" in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_a_study_stored_with_xla_reads_it_as_jit_compile():
    assert TrainingSpec.model_validate({"xla": True}).jit_compile is True
    assert TrainingSpec.model_validate({"xla": None}).jit_compile == "auto"


@pytest.mark.slow
def test_gpu_settings_are_recorded_and_ignored_on_a_cpu_with_one_line(tiny_spec, sqlite_url, cli):
    spec = tiny_spec(training={"max_epochs": 1, **GPU_SETTINGS}, budget={"n_trials": 3})
    done = cli("run", str(spec), "--storage", sqlite_url)
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if "no GPU visible" in line]
    assert len(notes) == 1, done.stderr  # once per run, not once per trial
    assert "training.mixed_precision: true" in notes[0]
    assert "training.gpu_memory_limit_mb: 512" in notes[0]
    study = optuna.load_study(study_name="tiny", storage=sqlite_url)
    stored = study.user_attrs[records.SPEC]["training"]
    assert {k: stored[k] for k in GPU_SETTINGS} == GPU_SETTINGS
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3


def test_the_default_settings_print_no_notice(tiny_spec, sqlite_url, cli):
    done = cli("run", str(tiny_spec(training={"max_epochs": 1})), "--storage", sqlite_url)
    assert done.returncode == 0, done.stderr
    assert "no GPU visible" not in done.stderr


def test_on_a_cpu_the_settings_in_effect_are_float32_and_keras_xla_choice():
    in_effect = GpuOptions(mixed_precision=True, jit_compile=True).apply()
    assert (in_effect.mixed_precision, in_effect.jit_compile) == (False, "auto")


def _float16_head(params, *, input_shape, n_outputs):
    """A user's model whose head follows the global policy (float16 under mixed)."""
    keras = import_keras()
    inputs = keras.Input(shape=input_shape)
    hidden = keras.layers.Dense(16, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(n_outputs, activation="softmax")(hidden))


@pytest.mark.parametrize("builder", [None, _float16_head], ids=["built-in", "user"])
def test_mixed_precision_trains_in_float16_with_a_float32_output_and_loss_scaling(builder):
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16).astype("float32")
    dataset = dataset_from_arrays(x[:300], y[:300], x[300:400], y[300:400], task="auto")
    keras = import_keras()
    try:
        model, result = train(
            {"learning_rate": 0.01, "units": 16},
            dataset,
            epochs=2,
            builder=builder,
            mixed_precision=True,
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")
    hidden = next(layer for layer in model.layers if isinstance(layer, keras.layers.Dense))
    assert hidden.compute_dtype == "float16"  # the policy reached the model
    assert all(output.dtype == "float32" for output in model.outputs)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert result.final("val_accuracy") > 0.3  # it learned, in float16
