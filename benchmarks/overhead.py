"""Overhead of tuner over a bare Keras loop training the very same configurations.

Contenders, interleaved one configuration at a time (bare, SQLite, PostgreSQL for
configuration 1, then configuration 2, ...; the order rotates) so that the load of a
shared machine drifts over all of them alike:

- bare-keras: what a hand-written script does: the same model built, compiled and fit
  on the arrays; no storage, no callbacks, no clean-up between models;
- tuner-sqlite / tuner-postgres: the configuration enqueued into a tuner study and run
  by ``tuner.execution.run.execute``: per-epoch reports, the median pruner's questions (with
  ``n_startup_trials`` so high that it never prunes, so every trial trains fully, yet
  reads the study as it does in a real run), user attributes, Keras state released;
- tuner-sqlite-sync / tuner-postgres-sync: the same with the per-epoch path of before
  (Optuna's ``Trial.report`` and ``Trial.should_prune`` on the training thread: a write
  and a read of the study per epoch), the baseline of ``tuner.trial.epoch_reports``.

Each ``execute`` here runs one trial; the benchmark holds what ``execute`` holds over a
whole study (``tuner.trial.memory.long_lived_frozen``) across those calls, so that each trial
is timed as inside one long run. Per-study costs (creating the study) are printed apart.

Figures, per trial: each contender's median wall time; tuner/bare for each pair (same
configuration, same round), their median, quartiles and extremes; and where tuner's
time goes: training (build, compile, fit), storage calls, memory release, and tuner's
own time (all but training, per-epoch storage calls included); and the training loop's
time per epoch in the per-epoch callback (median over every epoch of every trial; target
<= 1 ms). Target: ratio <= 1.05. Run: ``python benchmarks/overhead.py [--rounds 5]
[--epochs 10]`` (about 10 minutes; the PostgreSQL contenders are skipped when the server
on 127.0.0.1:5432 is not reachable).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PG_DB = f"tuner_bench_overhead_{uuid.uuid4().hex[:8]}"
NEVER = 10**9  # n_startup_trials: the median pruner reads the study but never prunes
CONFIGS = [  # model values of the searched tier 1-2 parameters
    {"learning_rate": 1e-3, "batch_size": 32, "units": 64},
    {"learning_rate": 3e-3, "batch_size": 64, "units": 128},
    {"learning_rate": 1e-2, "batch_size": 128, "units": 32},
    {"learning_rate": 3e-4, "batch_size": 16, "units": 256},
]
# Time spent in these, per trial: training, Optuna's storage as the trial sees it, the
# per-epoch calls, and tuner's clean-up.
SPANS: dict[str, list[float]] = collections.defaultdict(list)


def _spec(epochs: int) -> Any:
    from tuner.specs.spec import resolve_spec

    raw = {
        "name": "overhead",
        "data": {"source": "digits"},
        "training": {"max_epochs": epochs},
        "space": {
            "file": str(ROOT / "search_spaces" / "importance-ranked.yaml"),
            "tiers": "1-2",
            "baseline_first": False,  # each run trains the configuration it enqueued
        },
        "pruner": {"name": "median", "options": {"n_startup_trials": NEVER, "n_warmup_steps": 3}},
        "budget": {"n_trials": 1},
    }
    return resolve_spec(raw, base_dir=ROOT, source="overhead")


class BareKeras:
    """What a hand-written script does with one configuration."""

    def __init__(self, resolved: Any, dataset: Any, *, epochs: int) -> None:
        self.defaults = resolved.space.defaults()
        self.dataset = dataset
        self.epochs = epochs

    def before(self, config: dict[str, Any]) -> None:
        pass

    def run(self, config: dict[str, Any]) -> None:
        from tuner.trial.keras_env import import_keras
        from tuner.trial.models import build_mlp

        keras = import_keras()
        keras.utils.set_random_seed(0)
        params, data = {**self.defaults, **config}, self.dataset
        model = build_mlp(
            params, input_shape=data.input_shape, n_outputs=data.n_outputs, task=data.task
        )
        model.compile(
            optimizer=keras.optimizers.Adam(params["learning_rate"]),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        model.fit(
            data.x_train,
            data.y_train,
            batch_size=params["batch_size"],
            epochs=self.epochs,
            verbose=0,
            validation_data=(data.x_val, data.y_val),
        )

    def after(self) -> None:
        pass


class SynchronousReports:
    """The per-epoch path of before: a write and, where the pruner could decide, a read
    of the study, on the training thread (Optuna's own ``report`` and ``should_prune``)."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial

    def epoch_end(self, value: float, *, step: int) -> None:
        import optuna

        from tuner.trial.pruning import could_prune

        self.trial.report(value, step=step)
        if could_prune(self.trial.study.pruner, step=step) and self.trial.should_prune():
            raise optuna.TrialPruned(f"Trial was pruned at epoch {step}.")


@contextlib.contextmanager
def synchronous_reports(trial: Any) -> Iterator[SynchronousReports]:
    yield SynchronousReports(trial)


class TunerContender:
    """One study on one storage: each configuration is enqueued, then run by ``execute``
    (``synchronous``: with the per-epoch path of before)."""

    def __init__(
        self, resolved: Any, dataset: Any, url: str, refreeze: Callable, *, synchronous: bool
    ) -> None:
        from tuner.execution.run import prepare_run

        self.synchronous = synchronous
        started = time.perf_counter()
        self.prepared = prepare_run(
            resolved, storage_url=url, dataset=dataset, study_name=f"overhead-{uuid.uuid4().hex}"
        )
        self.prepare_s = time.perf_counter() - started
        self.space = resolved.space
        self.refreeze = refreeze

    def before(self, config: dict[str, Any]) -> None:
        params = self.space.parameters
        stored = {params[k].stored_name(k): params[k].to_stored(v) for k, v in config.items()}
        self.prepared.study.enqueue_trial(stored)

    def run(self, config: dict[str, Any]) -> None:
        import tuner.trial.objective
        from tuner.execution.run import execute

        current = tuner.trial.objective.epoch_reports
        if self.synchronous:
            tuner.trial.objective.epoch_reports = synchronous_reports
        try:
            execute(self.prepared, callbacks=[self.refreeze], max_trials=1)
        finally:
            tuner.trial.objective.epoch_reports = current

    def after(self) -> None:
        last = self.prepared.study.trials[-1]
        assert last.state.name == "COMPLETE", f"a trial did not complete: {last.state.name}"


def _instrument() -> None:
    """Time training, Optuna's storage calls, the per-epoch calls and the memory release."""
    import optuna
    from optuna.storages._cached_storage import _CachedStorage

    import tuner.trial.objective
    from tuner.trial.epoch_reports import EpochReports

    def timed(owner: Any, name: str, span: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                SPANS[span].append(time.perf_counter() - started)

        setattr(owner, name, wrapper)

    for name in dir(optuna.storages.BaseStorage):
        if not name.startswith("_") and callable(getattr(_CachedStorage, name)):
            timed(_CachedStorage, name, "storage")
    timed(EpochReports, "epoch_end", "epochs")
    timed(SynchronousReports, "epoch_end", "epochs")
    timed(tuner.trial.objective, "release_keras_memory", "release")
    timed(tuner.trial.objective, "train", "train")


def _postgres_url() -> str | None:
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text(f"create database {PG_DB}"))
        return PG_ADMIN.rsplit("/", 1)[0] + f"/{PG_DB}"
    except Exception as exc:
        print(f"# PostgreSQL contender skipped: {type(exc).__name__}")
        return None


def _drop_postgres() -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(
            sa.text("select pg_terminate_backend(pid) from pg_stat_activity where datname = :n"),
            {"n": PG_DB},
        )
        conn.execute(sa.text(f"drop database if exists {PG_DB}"))


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def _report(times: dict[str, list[float]], phases: dict[str, dict[str, list[float]]]) -> None:
    bare = times["bare-keras"]
    print(
        f"{'contender':<19} {'median s':>8} {'ratio':>6} {'q1':>6} {'q3':>6} {'min':>6} {'max':>6}"
    )
    print(f"{'bare-keras':<19} {statistics.median(bare):>8.2f} {1:>6.3f}")
    for name, values in times.items():
        if name == "bare-keras":
            continue
        ratios = [t / b for t, b in zip(values, bare, strict=True)]
        q1, med, q3 = _quartiles(ratios)
        print(
            f"{name:<19} {statistics.median(values):>8.2f} {med:>6.3f} {q1:>6.3f} {q3:>6.3f} "
            f"{min(ratios):>6.3f} {max(ratios):>6.3f}"
        )
    print(
        "per tuner trial, median ms: training | storage (calls) | per-epoch calls | release "
        "| own; training loop's ms per epoch in the per-epoch callback: median, 90th percentile"
    )
    for name, spans in phases.items():
        calls = statistics.median(spans["storage_calls"])
        ms = {k: 1000 * statistics.median(v) for k, v in spans.items()}
        own = 100 * statistics.median(
            [o / b for o, b in zip(spans["own"], times["bare-keras"], strict=True)]
        )
        print(
            f"{name:<19} {ms['train']:>7.0f} | {ms['storage']:>7.0f} ({calls:.0f}) | "
            f"{ms['epochs']:>5.0f} | {ms['release']:>5.0f} | {ms['own']:>5.0f} "
            f"({own:.1f}% of bare) | per epoch {1000 * statistics.median(spans['epoch']):.3f} "
            f"p90 {1000 * statistics.quantiles(spans['epoch'], n=10)[-1]:.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()

    from tuner.trial.data import load_dataset
    from tuner.trial.keras_env import import_keras
    from tuner.trial.memory import long_lived_frozen

    keras = import_keras()
    import optuna
    import tensorflow as tf

    print(
        f"# {platform.node()} {platform.machine()} {os.cpu_count()} cpus, python "
        f"{platform.python_version()} tensorflow {tf.__version__} "
        f"keras {keras.__version__} optuna {optuna.__version__}; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    resolved = _spec(args.epochs)
    dataset = load_dataset(resolved.spec.data, base_dir=ROOT, seed=0)
    _instrument()
    pg = _postgres_url()
    with tempfile.TemporaryDirectory() as tmp, long_lived_frozen() as refreeze:
        contenders: dict[str, Any] = {
            "bare-keras": BareKeras(resolved, dataset, epochs=args.epochs),
        }
        urls = {"sqlite": f"sqlite:///{tmp}/o.db", **({"postgres": pg} if pg else {})}
        for backend, url in urls.items():
            for synchronous, arm in ((False, ""), (True, "-sync")):
                contenders[f"tuner-{backend}{arm}"] = TunerContender(
                    resolved, dataset, url, refreeze, synchronous=synchronous
                )
        for contender in contenders.values():  # first-use costs (kernels, queries) paid once
            contender.before(CONFIGS[0])
            contender.run(CONFIGS[0])
            contender.after()
            refreeze(None, None)
        times, phases = _measure(contenders, rounds=args.rounds, refreeze=refreeze)
    if pg:
        _drop_postgres()
    print(
        f"{len(CONFIGS)} configurations x {args.epochs} epochs x {args.rounds} rounds; "
        f"load average now {os.getloadavg()[0]:.1f}"
    )
    _report(times, phases)
    for name, contender in contenders.items():
        if isinstance(contender, TunerContender):
            print(f"{name}: creating the study took {contender.prepare_s:.2f} s (once per study)")


def _measure(
    contenders: dict[str, Any], *, rounds: int, refreeze: Callable
) -> tuple[dict[str, list[float]], dict[str, dict[str, list[float]]]]:
    times: dict[str, list[float]] = {name: [] for name in contenders}
    phases: dict[str, dict[str, list[float]]] = {
        name: collections.defaultdict(list) for name in contenders if name != "bare-keras"
    }
    names = list(contenders)
    for unit in range(rounds * len(CONFIGS)):
        config = CONFIGS[unit % len(CONFIGS)]
        shift = unit % len(names)
        for name in names[shift:] + names[:shift]:
            contenders[name].before(config)
            SPANS.clear()
            started = time.perf_counter()
            contenders[name].run(config)
            times[name].append(time.perf_counter() - started)
            contenders[name].after()
            if name in phases:
                for span in ("train", "storage", "epochs", "release"):
                    phases[name][span].append(sum(SPANS[span]))
                phases[name]["storage_calls"].append(len(SPANS["storage"]))
                phases[name]["epoch"].extend(SPANS["epochs"])
                own = times[name][-1] - sum(SPANS["train"]) + sum(SPANS["epochs"])
                phases[name]["own"].append(own)
            else:  # what tuner does after each trial, done for the bare loop untimed
                refreeze(None, None)
    return times, phases


if __name__ == "__main__":
    main()
