"""Overhead of tuner over a bare Keras loop training the very same configurations.

Contenders, run interleaved in one process, several repetitions each:

- bare-keras: build, compile and fit each configuration in a plain loop (no storage,
  no callbacks beyond Keras' own);
- tuner-sqlite / tuner-postgres: the same configurations enqueued into a tuner study
  (spec, storage, pruning callback with a no-op pruner so every trial trains fully,
  per-epoch reporting, user attributes, Keras state cleared between trials).

Figure: median wall time of each contender and its ratio to bare-keras (target <= 1.05).
Run: ``python benchmarks/overhead.py [--reps 3] [--epochs 10]`` (about 4 minutes; the
PostgreSQL contender is skipped when the server on 127.0.0.1:5432 is not reachable).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
CONFIGS = [  # model values of the searched tier 1-2 parameters
    {"learning_rate": 1e-3, "batch_size": 32, "units": 64},
    {"learning_rate": 3e-3, "batch_size": 64, "units": 128},
    {"learning_rate": 1e-2, "batch_size": 128, "units": 32},
    {"learning_rate": 3e-4, "batch_size": 16, "units": 256},
]


def _spec(epochs: int):
    from tuner.spec import resolve_spec

    raw = {
        "name": "overhead",
        "data": {"source": "digits"},
        "training": {"max_epochs": epochs},
        "space": {"file": str(ROOT / "search_spaces" / "importance-ranked.yaml"), "tiers": "1-2"},
        "pruner": "none",
        "budget": {"n_trials": len(CONFIGS)},
    }
    return resolve_spec(raw, base_dir=ROOT, source="overhead")


def bare_keras(resolved, dataset) -> None:
    from tuner.objective import release_keras_memory
    from tuner.training import train

    defaults = resolved.space.defaults()
    for number, config in enumerate(CONFIGS):
        model, _ = train(
            {**defaults, **config}, dataset, epochs=resolved.spec.training.max_epochs, seed=number
        )
        del model
        release_keras_memory()  # a fair loop frees memory too


def through_tuner(resolved, dataset, url: str) -> None:
    from tuner.runner import execute, prepare_run

    prepared = prepare_run(
        resolved,
        storage_url=url,
        dataset=dataset,
        overwrite=True,
        study_name=f"overhead-{uuid.uuid4().hex[:8]}",
    )
    for config in CONFIGS:
        stored = {
            resolved.space.parameters[k].stored_name(k): resolved.space.parameters[k].to_stored(v)
            for k, v in config.items()
        }
        prepared.study.enqueue_trial(stored)
    execute(prepared)
    states = {t.state.name for t in prepared.study.trials}
    assert states == {"COMPLETE"}, f"a trial did not complete: {states}"


def _postgres_url() -> str | None:
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text("drop database if exists tuner_bench_overhead"))
            conn.execute(sa.text("create database tuner_bench_overhead"))
        return PG_ADMIN.rsplit("/", 1)[0] + "/tuner_bench_overhead"
    except Exception as exc:
        print(f"# PostgreSQL contender skipped: {type(exc).__name__}")
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()

    from tuner.data import load_dataset
    from tuner.keras_env import import_keras

    keras = import_keras()
    import optuna

    print(
        f"# {platform.node()} {platform.machine()} python {platform.python_version()} "
        f"keras {keras.__version__} optuna {optuna.__version__}"
    )
    resolved = _spec(args.epochs)
    dataset = load_dataset(resolved.spec.data, base_dir=ROOT, seed=0)
    tmp = tempfile.mkdtemp()
    contenders = {
        "bare-keras": lambda: bare_keras(resolved, dataset),
        "tuner-sqlite": lambda: through_tuner(resolved, dataset, f"sqlite:///{tmp}/overhead.db"),
    }
    pg = _postgres_url()
    if pg:
        contenders["tuner-postgres"] = lambda: through_tuner(resolved, dataset, pg)
    bare_keras(resolved, dataset)  # warm-up: first-use costs (imports, kernels) paid once
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for rep in range(args.reps):
        order = list(contenders) if rep % 2 == 0 else list(reversed(contenders))
        for name in order:
            started = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - started)
    base = statistics.median(times["bare-keras"])
    print(f"{len(CONFIGS)} configurations x {args.epochs} epochs, {args.reps} repetitions")
    print(f"{'contender':<16} {'median s':>9} {'min s':>7} {'max s':>7} {'ratio':>7}")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"{name:<16} {med:>9.2f} {min(values):>7.2f} {max(values):>7.2f} {med / base:>7.3f}")


if __name__ == "__main__":
    main()
