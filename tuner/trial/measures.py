"""The price of a model, measured for every trial: latency, memory (no Optuna here).

A trial records, besides its validation metrics, ``n_params``, ``latency_ms``,
``epoch_seconds`` and ``peak_memory_mb`` (:data:`tuner.specs.objectives.MEASURES`), so
that a study can weigh accuracy against its price, as objectives or constraints.
"""

from __future__ import annotations

import contextlib
import re
import statistics
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tuner.trial.keras_env import import_keras

LATENCY_WARMUP = 3  # calls before timing: the first traces (and XLA-compiles) the function
LATENCY_REPEATS = 15  # timed calls; their median is the latency
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def latency_ms(model: Any, x: np.ndarray, *, batch_size: int) -> float:
    """Median milliseconds of one prediction of ``batch_size`` rows, after warm-up.

    Timed on the device the model runs on, the result copied back to the host as a
    caller would. Rows are repeated when ``x`` has fewer than ``batch_size``.

    Example:
        >>> ms = latency_ms(model, dataset.x_val, batch_size=1)   # a few tenths on a CPU
        >>> 0 < ms < 100
        True
    """
    batch = np.resize(x, (batch_size, *x.shape[1:])).astype(x.dtype, copy=False)
    for _ in range(LATENCY_WARMUP):
        model.predict_on_batch(batch)
    times = []
    for _ in range(LATENCY_REPEATS):
        started = time.perf_counter()
        model.predict_on_batch(batch)
        times.append(time.perf_counter() - started)
    return round(1000 * statistics.median(times), 4)


def epoch_seconds(durations: list[float]) -> float | None:
    """Median seconds per epoch: the first epoch, which also traces the step, weighs little."""
    return round(statistics.median(durations), 4) if durations else None


def builder_measures(extra: Any, *, reserved: set[str]) -> dict[str, float]:
    """The measures a user's builder returned beside its model, checked.

    Raises ValueError naming what is wrong: a non-mapping, a name tuner records itself or
    one that is no identifier, a value that is not a finite number.
    """
    if not isinstance(extra, Mapping):
        raise ValueError(
            f"a model builder returns a keras.Model or (model, {{name: number}}), "
            f"got a {type(extra).__name__} beside the model"
        )
    measures = {}
    for name, value in extra.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", name):
            raise ValueError(f"the model builder's measure {name!r} is not an identifier")
        if name in reserved or name.startswith("val_"):
            raise ValueError(
                f"the model builder's measure {name!r} is one tuner records itself; rename it"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise ValueError(
                f"the model builder's measure {name!r} must be a number, got {value!r}"
            )
        if not np.isfinite(value):
            raise ValueError(f"the model builder's measure {name!r} is {value}, not finite")
        measures[name] = float(value)
    return measures


class PeakMemory:
    """Peak memory while the ``with`` block ran, MiB (``mb``, set when the block is left):
    the GPU allocator's peak on a GPU, else the process's peak resident memory (Linux'
    VmHWM, reset when the block starts).

    On a CPU the figure includes TensorFlow and the data (a few hundred MiB); what a
    model adds shows as the difference between trials.

    Example:
        >>> model.compile(loss="sparse_categorical_crossentropy")
        >>> with PeakMemory() as peak:
        ...     history = model.fit(dataset.x_train, dataset.y_train, epochs=1, verbose=0)
        >>> peak.mb > 0            # MiB; peak.device says where: 'CPU' or e.g. 'GPU:0'
        True
    """

    def __init__(self) -> None:
        self.device = "CPU"
        self.mb: float | None = None

    def __enter__(self) -> PeakMemory:
        import_keras()  # TensorFlow first loaded here must still grow GPU memory, quietly
        import tensorflow as tf

        gpus = tf.config.list_logical_devices("GPU")
        if gpus:
            self.device = gpus[0].name.removeprefix("/device:")
            tf.config.experimental.reset_memory_stats(self.device)
        else:
            _reset_peak_rss()
        return self

    def __exit__(self, *exc: object) -> None:
        import tensorflow as tf

        if self.device == "CPU":
            self.mb = _peak_rss_mb()
        else:
            peak = tf.config.experimental.get_memory_info(self.device)["peak"]
            self.mb = round(peak / 2**20, 1)


# The process's own peak (user attribute peak_rss_mb) must not shrink when a trial's
# peak is reset, so the peak before each reset is kept here.
_PEAK_BEFORE_RESET_MB = 0.0


def process_peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MiB, across the per-trial resets."""
    import resource

    now = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    return round(max(now, _PEAK_BEFORE_RESET_MB), 1)


def _reset_peak_rss() -> None:
    global _PEAK_BEFORE_RESET_MB
    before = process_peak_rss_mb()
    with contextlib.suppress(OSError):  # not Linux, or not allowed: the peak so far stands
        _CLEAR_REFS.write_text("5")  # "5" resets VmHWM (proc(5), Linux 4.0+)
        _PEAK_BEFORE_RESET_MB = before


def _peak_rss_mb() -> float | None:
    with contextlib.suppress(OSError):
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return process_peak_rss_mb()
