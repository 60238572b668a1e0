"""Parallel scaling: real Keras trials per minute with 1, 2 and 4 local worker processes.

The digits MLP of ``studies/digits-mlp.yaml`` (tiers 1-2, no pruning, flat search), with
12 fixed configurations enqueued into a fresh SQLite study before each run, so that
every run trains the very same models. Each run is ``tuner run SPEC --resume --workers N``
in a subprocess, as a user starts it; the worker counts alternate, repetition after
repetition.

Per run: wall time of the command, trials per minute, cores busy (CPU seconds of the
command and its workers over wall seconds), seconds until the first trial started, the
median training time of a trial, and the training span (first trial start to last trial
end, which leaves out the start-up of the processes). Summary: the speed-up of N workers
over 1 (median trials per minute), on the wall time and on the training span.

With ``--ray`` each worker count also runs as ``tuner run --ray ADDRESS --workers N``: N Ray
actors on a one-node Ray cluster started by the script on 127.0.0.1 with the usable
cores (``tests/ray_cluster.py``), alternating with the local workers; the summary adds
Ray's cost per trial, (wall time with Ray - wall time with local workers) / 12, on the
medians. Cores busy is left out for Ray: its actors are the cluster's processes, not
children of the command.

Run from the repository root (about 10 minutes with the defaults on the loaded 2-core VM):

    PYTHONPATH=. python benchmarks/parallel_scaling.py [--reps 2] [--epochs 10] [--workers 1,2,4]
    PYTHONPATH=. python benchmarks/parallel_scaling.py --workers 2 --ray   # needs .[ray]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import yaml

from tests.ray_cluster import RayCluster, local_ray_cluster

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "studies" / "digits-mlp.yaml"
# Model values of the parameters that tiers 1-2 search with the default optimizer (adam).
CONFIGS = [
    {"learning_rate": lr, "batch_size": batch, "units": units}
    for lr in (1e-3, 3e-3, 1e-2)
    for batch in (32, 64)
    for units in (64, 128)
]


@dataclass(frozen=True)
class Run:
    workers: int
    contender: str  # "local" (worker processes) or "ray" (actors)
    wall_s: float
    cpu_s: float
    first_trial_s: float  # from the command's start to the first trial's start
    trial_s: float  # median training time of one trial, as the trial recorded it
    span_s: float  # first trial start to last trial end

    @property
    def per_minute(self) -> float:
        return len(CONFIGS) * 60 / self.wall_s

    @property
    def span_per_minute(self) -> float:
        return len(CONFIGS) * 60 / self.span_s


def write_spec(directory: Path, *, epochs: int) -> Path:
    """digits-mlp without pruning or stages (they depend on trial order), fixed budget."""
    spec = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    spec["space"]["file"] = str((SPEC.parent / spec["space"]["file"]).resolve())
    spec["space"]["baseline_first"] = False  # the budget is the enqueued configurations
    spec.update(name="scaling", strategy="flat", pruner="none")
    spec["training"]["max_epochs"] = epochs
    spec["budget"] = {"n_trials": len(CONFIGS)}
    path = directory / "scaling.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def prepare(spec: Path, url: str) -> None:
    """Create the study and enqueue the configurations, as `tuner enqueue` does."""
    from tuner.execution.run import prepare_run
    from tuner.outcome.warmstart import enqueue
    from tuner.specs.spec import load_spec

    prepared = prepare_run(load_spec(spec, tiers="1-2"), storage_url=url)
    enqueue(prepared.study, CONFIGS)


def run(spec: Path, url: str, *, workers: int, ray: RayCluster | None = None) -> Run:
    """Time ``tuner run --resume --workers N`` (``--ray ADDRESS`` with a cluster) on a
    prepared study."""
    import optuna

    from tuner import records

    command = [sys.executable, "-m", "tuner", "run", str(spec), "--storage", url, "--resume"]
    command += ["--tiers", "1-2", "--workers", str(workers)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if ray is not None:
        command += ["--ray", ray.address]
        env.update(ray.env)
    cpu_before = _children_cpu()
    started_at = time.time()
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"tuner run failed ({done.returncode}):\n{done.stderr}")
    trials = optuna.load_study(study_name="scaling", storage=url).get_trials()
    if len(trials) != len(CONFIGS) or any(t.state.name != "COMPLETE" for t in trials):
        raise SystemExit(f"expected {len(CONFIGS)} complete trials, got {trials}")
    first = min(t.datetime_start for t in trials if t.datetime_start)
    last = max(t.datetime_complete for t in trials if t.datetime_complete)
    return Run(
        workers=workers,
        contender="local" if ray is None else "ray",
        wall_s=wall,
        cpu_s=_children_cpu() - cpu_before,
        first_trial_s=first.timestamp() - started_at,
        trial_s=statistics.median(t.user_attrs[records.SECONDS] for t in trials),
        span_s=(last - first).total_seconds(),
    )


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # workers are counted via `run`
    return usage.ru_utime + usage.ru_stime


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def summarize(runs: list[Run], counts: list[int]) -> None:
    def median(contender: str, n: int, key: str) -> float:
        return statistics.median(
            getattr(r, key) for r in runs if (r.contender, r.workers) == (contender, n)
        )

    base = median("local", counts[0], "per_minute")
    base_span = median("local", counts[0], "span_per_minute")
    print(f"\n{'workers':>11} {'trials/min':>18} {f'vs local {counts[0]}':>10} {'span vs':>8}")
    for contender in sorted({r.contender for r in runs}):
        for n in counts:
            rates = [r.per_minute for r in runs if (r.contender, r.workers) == (contender, n)]
            print(
                f"{contender:>5} {n:>5} {median(contender, n, 'per_minute'):>7.1f} "
                f"[{min(rates):.1f}-{max(rates):.1f}] "
                f"{median(contender, n, 'per_minute') / base:>10.2f} "
                f"{median(contender, n, 'span_per_minute') / base_span:>8.2f}"
            )
    if any(r.contender == "ray" for r in runs):
        print("\nRay's cost per trial (median wall, ray - local, / trials):")
        for n in counts:
            extra = median("ray", n, "wall_s") - median("local", n, "wall_s")
            first = median("ray", n, "first_trial_s") - median("local", n, "first_trial_s")
            print(
                f"  {n} workers: {extra / len(CONFIGS):+.2f} s per trial "
                f"({extra:+.1f} s per run, of which {first:+.1f} s before the first trial)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--ray", action="store_true", help="add Ray actors as contenders")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    from tuner.trial.keras_env import usable_cores  # what `tuner run --workers` shares out

    print(
        f"# {platform.machine()}, {os.cpu_count()} cores ({usable_cores()} usable), "
        f"python {platform.python_version()}, "
        f"tensorflow {version('tensorflow')}, optuna {version('optuna')}; {len(CONFIGS)} trials of "
        f"{args.epochs} epochs, {args.reps} reps; load average {_load()}"
    )
    print(
        f"{'workers':>11} {'rep':>3} {'wall s':>7} {'trials/min':>10} {'cores busy':>10} "
        f"{'1st trial s':>11} {'trial s':>7} {'span s':>7}  load"
    )
    runs = []
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        cluster = None
        if args.ray:
            cluster = stack.enter_context(local_ray_cluster(cpus=usable_cores(), gpus=0))
        contenders = [(n, c) for n in counts for c in ([None, cluster] if args.ray else [None])]
        spec = write_spec(Path(tmp), epochs=args.epochs)
        for rep in range(args.reps):
            for workers, ray in contenders if rep % 2 == 0 else reversed(contenders):
                url = f"sqlite:///{tmp}/rep{rep}-w{workers}-{ray is not None}.db"
                prepare(spec, url)
                result = run(spec, url, workers=workers, ray=ray)
                runs.append(result)
                busy = "-" if ray else f"{result.cpu_s / result.wall_s:.2f}"
                print(
                    f"{result.contender:>5} {workers:>5} {rep:>3} {result.wall_s:>7.1f} "
                    f"{result.per_minute:>10.1f} {busy:>10} {result.first_trial_s:>11.1f} "
                    f"{result.trial_s:>7.1f} {result.span_s:>7.1f}  {_load()}",
                    flush=True,
                )
    summarize(runs, counts)


if __name__ == "__main__":
    main()
