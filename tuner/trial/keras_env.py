"""The one place that imports Keras, after quieting TensorFlow's start-up chatter.

Import-time cost matters: ``import tuner`` and ``tuner --help`` never reach this module.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Literal

log = logging.getLogger(__name__)


def import_keras() -> ModuleType:
    """Import Keras on the TensorFlow backend, with TensorFlow's start-up logs hidden."""
    if "keras" in sys.modules:
        return sys.modules["keras"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    # Grow GPU memory as needed, so that several workers can share one device; a study's
    # training.memory_growth decides before its first trial (GpuOptions.apply).
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    with _stderr_swallowed():
        import keras
        import tensorflow as tf

        tf.config.list_physical_devices()  # CUDA probing logs here, once
    return keras


@dataclass(frozen=True)
class GpuOptions:
    """How trials use a GPU (the spec's ``training`` section); all ignored on a CPU.

    ``jit_compile`` goes to ``model.compile`` (``"auto"``: Keras' choice, XLA on GPUs).
    ``memory_limit_mb`` caps each process at a logical device of that size (for
    ``--trials-per-gpu``: trials that share a GPU cannot take each other's memory); it
    replaces memory growth, which TensorFlow cannot combine with it.

    Example:
        >>> GpuOptions(mixed_precision=True).apply().mixed_precision  # on a CPU
        False
    """

    mixed_precision: bool = False
    jit_compile: Literal["auto"] | bool = "auto"
    memory_growth: bool = True
    memory_limit_mb: int | None = None

    def ignored_on_cpu(self) -> list[str]:
        """The settings a CPU cannot honour, as written in a spec."""
        asked = {
            "mixed_precision: true": self.mixed_precision,
            "jit_compile: true": self.jit_compile is True,
            f"gpu_memory_limit_mb: {self.memory_limit_mb}": self.memory_limit_mb is not None,
        }
        return [name for name, on in asked.items() if on]

    def apply(self) -> GpuOptions:
        """Set up this process's GPUs (once, before any GPU op); the options in effect.

        Without a GPU: none of them (float32, Keras' own XLA choice). A process whose GPU
        TensorFlow already set up keeps that set-up (logged once).
        """
        global _applied
        gpus = _physical_gpus()
        if not gpus:
            return GpuOptions()
        if _applied is None:
            _applied = self
            _configure(gpus, memory_growth=self.memory_growth, limit_mb=self.memory_limit_mb)
        set_up = _applied
        return replace(
            self, memory_growth=set_up.memory_growth, memory_limit_mb=set_up.memory_limit_mb
        )


_applied: GpuOptions | None = None  # the process's GPU set-up, made by its first trial


def gpu_notice(options: GpuOptions, *, has_gpu: bool) -> str | None:
    """The one line a run on a CPU prints for GPU settings it ignores (None: no need)."""
    ignored = options.ignored_on_cpu()
    if has_gpu or not ignored:
        return None
    return (
        f"no GPU visible: training.{', training.'.join(ignored)} ignored (float32 on the CPU; "
        f"run on a machine with an NVIDIA GPU and tensorflow[and-cuda] to use them)"
    )


def _physical_gpus() -> list[object]:
    import_keras()
    import tensorflow as tf

    return list(tf.config.list_physical_devices("GPU"))


def _configure(gpus: list[object], *, memory_growth: bool, limit_mb: int | None) -> None:
    import tensorflow as tf

    os.environ["TF_FORCE_GPU_ALLOW_GROWTH"] = "true" if memory_growth and not limit_mb else "false"
    try:
        for gpu in gpus:
            if limit_mb:
                config = tf.config.LogicalDeviceConfiguration(memory_limit=limit_mb)
                tf.config.set_logical_device_configuration(gpu, [config])
            else:
                tf.config.experimental.set_memory_growth(gpu, memory_growth)
    except RuntimeError as exc:  # TensorFlow already set the GPU up in this process
        log.warning("GPU settings not applied, the GPU was already in use: %s", exc)


def usable_cores() -> int:
    """The CPU cores this process may run on: its affinity (taskset, a cpuset), not the host's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on macOS and Windows
        return os.cpu_count() or 1


def thread_env(threads: int) -> dict[str, str]:
    """Environment that caps a process at ``threads`` CPU threads (TensorFlow and OpenMP).

    Set before TensorFlow loads, so that N workers on one machine share its cores
    instead of each starting a thread per core.
    """
    return {
        "OMP_NUM_THREADS": str(threads),
        "TF_NUM_INTRAOP_THREADS": str(threads),
        "TF_NUM_INTEROP_THREADS": str(min(threads, 2)),
    }


@contextlib.contextmanager
def _stderr_swallowed() -> Iterator[None]:
    # TensorFlow's C++ side writes "Could not find cuda drivers" and absl notices to fd 2
    # before TF_CPP_MIN_LOG_LEVEL applies, so only redirecting the descriptor hides them.
    # If the import fails, what it wrote is shown after all.
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
