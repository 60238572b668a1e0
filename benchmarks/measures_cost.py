"""What recording a model's price costs each trial: latency, peak memory, more attributes.

Every trial now measures ``latency_ms`` (median of repeated one-row predictions after
warm-up, before the first epoch), ``peak_memory_mb`` (peak memory while it ran) and
``epoch_seconds``, and stores them with the final ``val_*`` metrics as user attributes.
Contenders, interleaved one configuration at a time (the order alternating each round)
so that a shared machine's load drifts over both alike:

- plain: ``tuner.trial.training.train`` as before these measures (no latency);
- measured: the same call inside ``PeakMemory`` with ``latency_batch_size=1``, as a trial
  runs it now.

Figures: each contender's median seconds per configuration; measured/plain per pair
(same configuration, same round) with its median and extremes; the latency measurement's
own time; and the time of the five extra user-attribute writes per trial on SQLite and
(when reachable) PostgreSQL. Target: measured/plain <= 1.05 at 10 epochs.
Run: ``python benchmarks/measures_cost.py [--rounds 5] [--epochs 10]`` (about 5 minutes).
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
CONFIGS = [  # model values, as benchmarks/overhead.py trains them
    {"learning_rate": 1e-3, "batch_size": 32, "units": 64},
    {"learning_rate": 3e-3, "batch_size": 64, "units": 128},
    {"learning_rate": 1e-2, "batch_size": 128, "units": 32},
    {"learning_rate": 3e-4, "batch_size": 16, "units": 256},
]
NEW_ATTRS = ("latency_ms", "epoch_seconds", "peak_memory_mb", "val_loss", "val_accuracy")
LATENCY_S: list[float] = []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    _header(args)
    times = _training(rounds=args.rounds, epochs=args.epochs)
    _print_training(times, epochs=args.epochs)
    _print_writes()


def _header(args: argparse.Namespace) -> None:
    import keras
    import optuna
    import tensorflow as tf

    print(f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"# Keras {keras.__version__}, TensorFlow {tf.__version__}, Optuna {optuna.__version__}")
    print(
        f"# rounds {args.rounds}, epochs {args.epochs}, digits MLP, {len(CONFIGS)} configurations"
    )


def _training(*, rounds: int, epochs: int) -> dict[str, dict[int, list[float]]]:
    import tuner.trial.training as training
    from tuner.specs.space import load_space
    from tuner.specs.spec import DataSpec
    from tuner.trial.data import load_dataset
    from tuner.trial.measures import PeakMemory
    from tuner.trial.memory import release_keras_memory

    original = training.latency_ms

    @functools.wraps(original)
    def timed_latency(*args: Any, **kwargs: Any) -> float:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            LATENCY_S.append(time.perf_counter() - started)

    training.latency_ms = timed_latency
    defaults = load_space(ROOT / "search_spaces" / "importance-ranked.yaml").defaults()
    dataset = load_dataset(DataSpec(source="digits"), base_dir=ROOT, seed=0)

    def plain(params: dict[str, Any]) -> None:
        training.train(params, dataset, epochs=epochs, seed=0)

    def measured(params: dict[str, Any]) -> None:
        with PeakMemory():
            training.train(params, dataset, epochs=epochs, seed=0, latency_batch_size=1)

    contenders = {"plain": plain, "measured": measured}
    times: dict[str, dict[int, list[float]]] = {name: {} for name in contenders}
    plain({**defaults, **CONFIGS[0]})  # warm-up: first-call costs belong to neither
    release_keras_memory()
    LATENCY_S.clear()
    for round_ in range(rounds):
        order = list(contenders) if round_ % 2 == 0 else list(reversed(contenders))
        for index, config in enumerate(CONFIGS):
            for name in order:
                started = time.perf_counter()
                contenders[name]({**defaults, **config})
                times[name].setdefault(index, []).append(time.perf_counter() - started)
                release_keras_memory()
        print(f"# round {round_ + 1}/{rounds} done", flush=True)
    return times


def _print_training(times: dict[str, dict[int, list[float]]], *, epochs: int) -> None:
    print(f"\n## Training one configuration ({epochs} epochs), seconds, median of rounds")
    print("| configuration | plain | measured | measured/plain (median of pairs) |")
    print("|---|---|---|---|")
    ratios = []
    for index, config in enumerate(CONFIGS):
        plain, measured = times["plain"][index], times["measured"][index]
        pairs = [m / p for m, p in zip(measured, plain, strict=True)]
        ratios += pairs
        label = ", ".join(f"{k}={v}" for k, v in config.items())
        print(
            f"| {label} | {statistics.median(plain):.2f} | {statistics.median(measured):.2f} | "
            f"{statistics.median(pairs):.3f} |"
        )
    print(
        f"\nmeasured/plain over all {len(ratios)} pairs: median {statistics.median(ratios):.3f}, "
        f"min {min(ratios):.3f}, max {max(ratios):.3f} (target <= 1.05)"
    )
    ms = [1000 * s for s in LATENCY_S]
    print(
        f"latency measurement itself (trace + {3} warm-up + 15 timed one-row predictions): "
        f"median {statistics.median(ms):.0f} ms, max {max(ms):.0f} ms per trial"
    )


def _print_writes() -> None:
    print(f"\n## The {len(NEW_ATTRS)} extra user attributes per trial, ms (median of 30 trials)")
    with tempfile.TemporaryDirectory() as folder:
        print(f"SQLite: {_writes(f'sqlite:///{folder}/writes.db'):.1f} ms")
    try:
        from benchmarks._postgres import throwaway_database

        with throwaway_database(PG_ADMIN) as url:
            print(f"PostgreSQL: {_writes(url):.1f} ms")
    except Exception as exc:  # any failure to reach the server: say so and go on
        print(f"PostgreSQL: skipped ({type(exc).__name__})")


def _writes(url: str) -> float:
    import optuna

    from tuner.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=open_storage(url), study_name="writes")
    spent = []
    for _ in range(30):
        trial = study.ask()
        started = time.perf_counter()
        for key in NEW_ATTRS:
            trial.set_user_attr(key, 1.0)
        spent.append(1000 * (time.perf_counter() - started))
        study.tell(trial, 0.0)
    return statistics.median(spent)


if __name__ == "__main__":
    main()
