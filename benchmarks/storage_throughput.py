"""Trials per second through tuner's storage layer and worker loop vs plain Optuna.

A trivial objective (one float, no training) isolates the cost of the storage: for 1, 2
and 4 worker processes on SQLite and PostgreSQL, tuner's path (open_storage: retries,
heartbeat, exact budget, atomic claims) runs next to a plain Optuna script
(``study.optimize`` on the same URL, budget split between processes). The contenders
alternate, repetition after repetition; each row gives the median trials/s with the
min-max over the repetitions and the ratio of the medians tuner/plain.

The clock starts when every worker has imported its modules and opened the study (they
wait on a start line) and stops when the last worker's loop returns: the start-up and
exit of the interpreter are left out.

Run from the repository root (about 6 minutes with the defaults on 2 cores):

    PYTHONPATH=. python benchmarks/storage_throughput.py --trials 100 --reps 3
    PYTHONPATH=. python benchmarks/storage_throughput.py --backends postgresql --workers 1
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from _postgres import throwaway_database  # benchmarks/ is on sys.path when a script runs

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"

# Both workers print "ready" once set up, wait for a line on stdin, run the loop, and
# print the time it ended.
TUNER_WORKER = """
import sys, time, optuna
from tuner.storage import open_storage
from tuner.execution.worker import run_worker
study = optuna.load_study(study_name=sys.argv[2], storage=open_storage(sys.argv[1]),
                          sampler=optuna.samplers.RandomSampler())
print("ready", flush=True); sys.stdin.readline()
run_worker(study, lambda t: t.suggest_float("x", -1, 1) ** 2)
print(time.time(), flush=True)
"""
PLAIN_WORKER = """
import sys, time, optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
study = optuna.load_study(study_name=sys.argv[2], storage=sys.argv[1],
                          sampler=optuna.samplers.RandomSampler())
print("ready", flush=True); sys.stdin.readline()
study.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=int(sys.argv[3]))
print(time.time(), flush=True)
"""


def _create(url: str, name: str, trials: int, *, tuner: bool) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if tuner:
        from tuner.storage import open_storage
        from tuner.storage.queue import reserve_trials

        storage = open_storage(url, heartbeat=False)
        reserve_trials(optuna.create_study(study_name=name, storage=storage), total=trials)
    else:
        storage = optuna.storages.RDBStorage(url)
        optuna.create_study(study_name=name, storage=storage)
    storage.engine.dispose()


def measure(url: str, *, workers: int, trials: int, tuner: bool) -> float:
    """Trials per second for ``workers`` processes sharing ``trials`` trivial trials."""
    name = f"bench-{uuid.uuid4().hex[:8]}"
    _create(url, name, trials, tuner=tuner)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = TUNER_WORKER if tuner else PLAIN_WORKER
    share = str(trials // workers)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, url, name, share],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    started = time.time()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.close()
    ended = []
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if proc.wait() != 0 or not line:
            raise SystemExit(f"a worker failed: exit code {proc.returncode}")
        ended.append(float(line))
    elapsed = max(ended) - started
    return trials / elapsed


@contextmanager
def fresh_database(backend: str, tmp: str) -> Iterator[str]:
    """A new empty database of that backend, removed afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp}/{uuid.uuid4().hex}.db"
        return
    with throwaway_database(PG_ADMIN) as url:
        yield url


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def _summary(rates: list[float]) -> str:
    return f"{statistics.median(rates):>6.1f} [{min(rates):.1f}-{max(rates):.1f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    import optuna
    import sqlalchemy

    print(
        f"# {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
        f"optuna {optuna.__version__}, sqlalchemy {sqlalchemy.__version__}; "
        f"{args.trials} trials, {args.reps} reps; load average {_load()}"
    )
    print(f"{'backend':<10} {'workers':>7} {'tuner t/s':>18} {'plain t/s':>18} {'ratio':>6}  load")
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            for workers in [int(n) for n in args.workers.split(",")]:
                rates: dict[bool, list[float]] = {True: [], False: []}
                for rep in range(args.reps):
                    # Alternate which contender goes first, so neither always meets a warm cache.
                    for tuner in (True, False) if rep % 2 == 0 else (False, True):
                        with fresh_database(backend, tmp) as url:
                            rates[tuner].append(
                                measure(url, workers=workers, trials=args.trials, tuner=tuner)
                            )
                ratio = statistics.median(rates[True]) / statistics.median(rates[False])
                print(
                    f"{backend:<10} {workers:>7} {_summary(rates[True]):>18} "
                    f"{_summary(rates[False]):>18} {ratio:>6.2f}  {_load()}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
