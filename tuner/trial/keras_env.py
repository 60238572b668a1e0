"""The one place that imports Keras, after quieting TensorFlow's start-up chatter.

Import-time cost matters: ``import tuner`` and ``tuner --help`` never reach this module.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from types import ModuleType


def import_keras() -> ModuleType:
    """Import Keras on the TensorFlow backend, with TensorFlow's start-up logs hidden."""
    if "keras" in sys.modules:
        return sys.modules["keras"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    # Grow GPU memory as needed, so that several workers can share one device.
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    with _stderr_swallowed():
        import keras
        import tensorflow as tf

        tf.config.list_physical_devices()  # CUDA probing logs here, once
    return keras


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
