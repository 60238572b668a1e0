"""One prepared check of tuner on a GPU, at most 8 minutes on one GPU, printing one table.

GPU machines are lent now and then for minutes, so every GPU path is checked in one go:

1. devices: TensorFlow sees the GPU(s) (and ``nvidia-smi`` lists them);
2. throughput: trials/hour of digits-mlp and of a CIFAR-sized CNN (32x32x3 synthetic
   images, 10 classes, no download) at 1, 2 and 4 trials per GPU (``tuner run --gpus 0
   --trials-per-gpu K``), each with the GPU's utilisation and memory (``nvidia-smi``
   sampled every 0.5 s); every trial trains the same model for the same epochs;
3. precision: the CNN's epoch time (median, first epoch left out: tracing) in float32,
   mixed precision, XLA, and both, with the GPU memory peak
   (``tf.config.experimental.get_memory_info``);
4. out of memory: a model too large for any GPU (2**40 weights) fails its trial with
   ``out of memory``, the worker is replaced by a fresh process and the study goes on;
5. recycling: ``--recycle-after 1`` runs each trial in a fresh process, and the GPU memory
   in use after the run is back where it was before.

``--dry-run`` runs every step on the CPU with tiny sizes (8x8 images, ``--workers K`` for
``--gpus``, K of 1 and 2, 2 recycled trials): the test suite runs it so the script
cannot rot. Run: ``python benchmarks/gpu_check.py [--dry-run] [--out table.txt]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
SPACE = ROOT / "search_spaces" / "importance-ranked.yaml"
OOM_BUILDER = """
from pathlib import Path

RAN_OUT = Path(__file__).with_suffix(".ran-out")


def build(params, *, input_shape, n_outputs):
    import keras

    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Flatten()(inputs)
    if not RAN_OUT.exists():  # the first trial: 2**40 weights, more than any GPU holds
        RAN_OUT.touch()
        x = keras.layers.Dense(2**34)(x)
    x = keras.layers.Dense(32, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(n_outputs, activation="softmax")(x))
"""


@dataclass(frozen=True)
class Sizes:
    trials: int  # per throughput run
    epochs: int
    digits_rows: int | None
    cnn_rows: int
    cnn_side: int  # 32: CIFAR-sized; smaller on a CPU, where float16 convolutions crawl
    timeout_s: int  # per tuner run
    per_gpu: tuple[int, ...]  # trials per GPU of the throughput runs
    recycled_trials: int  # trials, each in a fresh process, of the recycling check


FULL = Sizes(
    trials=8,
    epochs=5,
    digits_rows=None,
    cnn_rows=8000,
    cnn_side=32,
    timeout_s=150,
    per_gpu=(1, 2, 4),
    recycled_trials=3,
)
# Every step, but as few processes as show it: each one imports TensorFlow, ~8 s of a
# 2-core machine, and 4 trials per GPU take no path that 2 do not (25 processes: 5 min).
DRY = Sizes(
    trials=2,
    epochs=1,
    digits_rows=200,
    cnn_rows=200,
    cnn_side=8,
    timeout_s=240,
    per_gpu=(1, 2),
    recycled_trials=2,
)


CHECKS = ("devices", "trials/hour", "out of memory", "--recycle-after 1", "epoch time")


class Table:
    """Rows of (check, setting, result), printed as they come and, in the order of
    :data:`CHECKS` whatever order they came in, at the end."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str]] = []

    def add(self, check: str, setting: str, result: str) -> None:
        self.rows.append((check, setting, result))
        print(f"  {check} | {setting} | {result}", flush=True)

    def text(self) -> str:
        widths = [
            max(len(row[i]) for row in [("check", "setting", "result"), *self.rows]) for i in (0, 1)
        ]
        lines = [f"| {'check':<{widths[0]}} | {'setting':<{widths[1]}} | result |"]
        lines.append(f"|{'-' * (widths[0] + 2)}|{'-' * (widths[1] + 2)}|--------|")
        rows = sorted(self.rows, key=lambda row: CHECKS.index(row[0]))
        lines += [f"| {c:<{widths[0]}} | {s:<{widths[1]}} | {r} |" for c, s, r in rows]
        return "\n".join(lines)


class GpuSampler:
    """``nvidia-smi`` sampled every 0.5 s in the background: utilisation and memory of GPU 0."""

    def __init__(self) -> None:
        self.smi = shutil.which("nvidia-smi")
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> GpuSampler:
        if self.smi:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.smi:
            self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            now = gpu_now()
            if now is not None:
                self.samples.append(now)

    def summary(self) -> str:
        if not self.smi:
            return "GPU util/memory n/a (no nvidia-smi)"
        if not self.samples:
            return "GPU util/memory: no sample"
        util = [u for u, _ in self.samples]
        memory = max(m for _, m in self.samples)
        return (
            f"GPU util mean {statistics.mean(util):.0f}% max {max(util):.0f}%, "
            f"memory max {memory:.0f} MiB"
        )


def gpu_now() -> tuple[float, float] | None:
    """(utilisation %, memory used MiB) of GPU 0, from ``nvidia-smi``; None without it."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    query = [smi, "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"]
    out = subprocess.run(query, capture_output=True, text=True, timeout=10).stdout
    first = out.strip().splitlines()[0].split(",") if out.strip() else None
    return (float(first[0]), float(first[1])) if first else None


def write_spec(
    directory: Path,
    name: str,
    *,
    data: dict[str, Any],
    family: str,
    sizes: Sizes,
    trials: int,
    builder: str | None = None,
) -> Path:
    """A study whose trials all train the same model (tier 1 only, no pruning)."""
    spec = {
        "name": name,
        "metric": "val_accuracy",
        "direction": "maximize",
        "data": data,
        "model": {"family": family, **({"builder": builder} if builder else {})},
        "training": {"max_epochs": sizes.epochs},
        # Learning rates that cannot diverge: a throughput check must not fail a trial.
        "space": {
            "file": str(SPACE),
            "tiers": "1",
            "fixed": {"layers": 2},
            "overrides": {"learning_rate": {"low": 1e-4, "high": 3e-3, "default": 1e-3}},
        },
        "sampler": "random",
        "pruner": "none",
        "budget": {"n_trials": trials},
        "seed": 0,
    }
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def tuner_run(
    spec: Path, db: Path, *, slots: list[str], sizes: Sizes, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "tuner", "run", str(spec), "--storage", f"sqlite:///{db}", *slots],
        capture_output=True,
        text=True,
        timeout=sizes.timeout_s,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )
    return done, time.perf_counter() - started


def trials_of(db: Path, name: str) -> list[Any]:
    import optuna

    return optuna.load_study(study_name=name, storage=f"sqlite:///{db}").get_trials()


def slot_args(per_gpu: int, *, dry: bool) -> list[str]:
    return ["--workers", str(per_gpu)] if dry else ["--gpus", "0", "--trials-per-gpu", str(per_gpu)]


def check_devices(table: Table) -> bool:
    from tuner.trial.keras_env import import_keras

    import_keras()
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    smi = (
        subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout
        if shutil.which("nvidia-smi")
        else ""
    )
    names = (
        "; ".join(line.split(" (UUID")[0] for line in smi.strip().splitlines())
        or "nvidia-smi: none"
    )
    table.add(
        "devices", f"tensorflow {tf.__version__}", f"TensorFlow sees {len(gpus)} GPU(s): {names}"
    )
    return bool(gpus)


def cnn_arrays(rows: int, *, side: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images (side x side x 3) whose class is learnable (a quadrant's brightness, deciles)."""
    rng = np.random.default_rng(seed)
    x = rng.random((rows, side, side, 3), dtype=np.float32)
    score = x[:, : side // 2, : side // 2, 0].mean(axis=(1, 2))
    y = np.searchsorted(np.quantile(score, np.linspace(0.1, 0.9, 9)), score)
    return x, y.astype("int64")


def check_throughput(table: Table, tmp: Path, *, sizes: Sizes, dry: bool, cnn_file: Path) -> None:
    digits = {"source": "digits", **({"max_rows": sizes.digits_rows} if sizes.digits_rows else {})}
    models = {
        "digits-mlp": ({**digits}, "mlp"),
        "cifar-cnn": ({"source": "npz", "path": str(cnn_file)}, "cnn"),
    }
    for model, (data, family) in models.items():
        one = None
        for per_gpu in sizes.per_gpu:
            name = f"{model}-{per_gpu}"
            spec = write_spec(tmp, name, data=data, family=family, sizes=sizes, trials=sizes.trials)
            with GpuSampler() as gpu:
                done, wall = tuner_run(
                    spec, tmp / f"{name}.db", slots=slot_args(per_gpu, dry=dry), sizes=sizes
                )
            if done.returncode != 0:
                table.add(
                    "trials/hour", f"{model}, {per_gpu}/GPU", f"FAILED: {_last_line(done.stderr)}"
                )
                continue
            trials = trials_of(tmp / f"{name}.db", name)
            complete = sum(t.state.name == "COMPLETE" for t in trials)
            others = [
                f"{t.state.name} {t.user_attrs.get('fail_reason', '')}".strip()
                for t in trials
                if t.state.name != "COMPLETE"
            ]
            per_hour = complete / wall * 3600
            one = one or per_hour
            table.add(
                "trials/hour",
                f"{model}, {per_gpu}/GPU",
                f"{per_hour:.0f} ({complete} trials in {wall:.1f} s; x{per_hour / one:.2f} of "
                f"1/GPU); {gpu.summary()}{'; NOT OK: ' + ', '.join(others) if others else ''}",
            )


def check_out_of_memory(table: Table, tmp: Path, *, sizes: Sizes, dry: bool) -> None:
    (tmp / "gpu_check_oom.py").write_text(OOM_BUILDER, encoding="utf-8")
    spec = write_spec(
        tmp,
        "oom",
        data={"source": "digits", "max_rows": 200},
        family="mlp",
        sizes=sizes,
        trials=2,
        builder="gpu_check_oom:build",
    )
    done, _ = tuner_run(
        spec,
        tmp / "oom.db",
        slots=slot_args(1, dry=dry),
        sizes=sizes,
        env={"PYTHONPATH": f"{ROOT}:{tmp}"},
    )
    trials = trials_of(tmp / "oom.db", "oom") if (tmp / "oom.db").exists() else []
    outcome = [(t.state.name, t.user_attrs.get("fail_reason")) for t in trials]
    replaced = "recycled after running out of memory" in done.stderr
    workers = [t.user_attrs.get("worker") for t in trials]
    ok = (
        outcome[:1] == [("FAIL", "out of memory")]
        and replaced
        and len(set(workers)) == len(workers) == 2
    )
    table.add(
        "out of memory",
        "2**40-weight model, then a small one",
        f"{'OK' if ok else 'NOT OK'}: trials {outcome}; worker replaced: {replaced}; "
        f"processes {len(set(workers))}",
    )


def check_recycling(table: Table, tmp: Path, *, sizes: Sizes, dry: bool) -> None:
    trials = sizes.recycled_trials
    spec = write_spec(
        tmp, "recycle", data={"source": "digits"}, family="mlp", sizes=sizes, trials=trials
    )
    before = gpu_now()
    with GpuSampler() as gpu:
        done, _ = tuner_run(
            spec,
            tmp / "recycle.db",
            slots=[*slot_args(1, dry=dry), "--recycle-after", "1"],
            sizes=sizes,
        )
    time.sleep(1)
    after = gpu_now()
    workers = {t.user_attrs.get("worker") for t in trials_of(tmp / "recycle.db", "recycle")}
    during = max((m for _, m in gpu.samples), default=float("nan"))
    memory = (
        f"GPU memory used before {before[1]:.0f} MiB, during max {during:.0f} MiB, "
        f"after {after[1]:.0f} MiB"
        if before and after
        else "GPU memory n/a (no nvidia-smi)"
    )
    ok = done.returncode == 0 and len(workers) == trials
    table.add(
        "--recycle-after 1",
        f"{trials} trials",
        f"{'OK' if ok else 'NOT OK'}: {len(workers)} processes; {memory}",
    )


def check_precision(
    table: Table, *, sizes: Sizes, has_gpu: bool, cnn: tuple[np.ndarray, np.ndarray]
) -> None:
    from tuner.trial.data import dataset_from_arrays
    from tuner.trial.keras_env import GpuOptions
    from tuner.trial.memory import release_keras_memory
    from tuner.trial.training import divergence_guard, train

    GpuOptions().apply()  # memory growth before this process's first GPU op
    import tensorflow as tf

    x, y = cnn
    cut = int(0.8 * len(x))
    dataset = dataset_from_arrays(x[:cut], y[:cut], x[cut:], y[cut:])
    modes = {
        "float32": (False, False),
        "mixed precision": (True, False),
        "XLA": (False, True),
        "mixed + XLA": (True, True),
    }
    baseline = None
    for mode, (mixed, xla) in modes.items():
        if has_gpu:
            tf.config.experimental.reset_memory_stats("GPU:0")
        guard = divergence_guard()
        try:
            train(
                {"batch_size": 128, "layers": 2},
                dataset,
                epochs=sizes.epochs + 1,
                family="cnn",
                mixed_precision=mixed,
                jit_compile=xla,
                guard=guard,
            )
        except Exception as exc:  # a mode that fails is a finding, not the end of the check
            table.add("epoch time", mode, f"FAILED: {type(exc).__name__}: {_last_line(str(exc))}")
            continue
        finally:
            release_keras_memory()
        epoch = statistics.median(guard.epoch_seconds[1:])
        baseline = baseline or epoch
        info = tf.config.experimental.get_memory_info("GPU:0") if has_gpu else None
        peak = f"GPU memory peak {info['peak'] / 2**20:.0f} MiB" if info else "GPU memory n/a (CPU)"
        table.add(
            "epoch time",
            f"cifar-cnn {mode}",
            f"{1000 * epoch:.1f} ms (x{baseline / epoch:.2f} of float32); {peak}",
        )
    import keras

    keras.mixed_precision.set_global_policy("float32")


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "(no output)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="every step on the CPU, tiny sizes")
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = parser.parse_args()
    sizes = DRY if args.dry_run else FULL
    started = time.perf_counter()
    table = Table()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        has_gpu = check_devices(table)
        if not has_gpu and not args.dry_run:
            print(
                "no GPU visible to TensorFlow: run with --dry-run to check on a CPU",
                file=sys.stderr,
            )
            raise SystemExit(2)
        cnn = cnn_arrays(sizes.cnn_rows, side=sizes.cnn_side)
        np.savez(tmp / "cifar_sized.npz", x=cnn[0], y=cnn[1])
        checks = [
            lambda: check_throughput(
                table, tmp, sizes=sizes, dry=args.dry_run, cnn_file=tmp / "cifar_sized.npz"
            ),
            lambda: check_out_of_memory(table, tmp, sizes=sizes, dry=args.dry_run),
            lambda: check_recycling(table, tmp, sizes=sizes, dry=args.dry_run),
            # Last on a GPU: it holds GPU memory.
            lambda: check_precision(table, sizes=sizes, has_gpu=has_gpu, cnn=cnn),
        ]
        # On a GPU each check has the machine to itself. A dry run's figures mean nothing,
        # only its paths do, and most of its time is processes importing TensorFlow on
        # one core each: two checks at once (161 s one after the other on 2 cores).
        with ThreadPoolExecutor(max_workers=2 if args.dry_run else 1) as pool:
            for running in [pool.submit(check) for check in checks]:
                running.result()
    mode = "dry run on the CPU" if args.dry_run else "GPU"
    text = f"# gpu_check ({mode}), {time.perf_counter() - started:.0f} s\n{table.text()}\n"
    print(text)
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
