"""Trials per second through tuner's storage layer and worker loop vs plain Optuna.

A trivial objective (one float, no training) isolates the cost of the storage: for 1, 2
and 4 worker processes on SQLite and PostgreSQL, tuner's path (open_storage: retries,
heartbeat, queued budget, atomic claims) runs next to a plain Optuna script
(``study.optimize`` on the same URL, budget split between processes), and the ratio
tuner/plain is printed. Run from the repository root:

    PYTHONPATH=. python benchmarks/storage_throughput.py --trials 200
    PYTHONPATH=. python benchmarks/storage_throughput.py --postgres postgresql+psycopg://postgres@127.0.0.1/postgres
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TUNER_WORKER = """
import sys, optuna
from tuner.storage import open_storage
from tuner.workers import run_worker
study = optuna.load_study(study_name=sys.argv[2], storage=open_storage(sys.argv[1]),
                          sampler=optuna.samplers.RandomSampler())
run_worker(study, lambda t: t.suggest_float("x", -1, 1) ** 2)
"""
PLAIN_WORKER = """
import sys, optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
study = optuna.load_study(study_name=sys.argv[2], storage=sys.argv[1],
                          sampler=optuna.samplers.RandomSampler())
study.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=int(sys.argv[3]))
"""


def _create(url: str, name: str, trials: int, *, tuner: bool) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if tuner:
        from tuner.storage import open_storage
        from tuner.workers import reserve_trials

        study = optuna.create_study(study_name=name, storage=open_storage(url))
        reserve_trials(study, total=trials)
    else:
        optuna.create_study(study_name=name, storage=url)


def measure(url: str, *, workers: int, trials: int, tuner: bool) -> float:
    """Trials per second for ``workers`` processes sharing ``trials`` trivial trials."""
    name = f"bench-{uuid.uuid4().hex[:8]}"
    _create(url, name, trials, tuner=tuner)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = TUNER_WORKER if tuner else PLAIN_WORKER
    share = str(trials // workers)
    started = time.perf_counter()
    procs = [
        subprocess.Popen([sys.executable, "-c", script, url, name, share], env=env)
        for _ in range(workers)
    ]
    codes = [p.wait() for p in procs]
    elapsed = time.perf_counter() - started
    if any(codes):
        raise SystemExit(f"a worker failed: exit codes {codes}")
    return trials / elapsed


def _fresh_pg(admin_url: str) -> tuple[str, object]:
    import sqlalchemy as sa

    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"tuner_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'create database "{name}"'))
    return admin_url.rsplit("/", 1)[0] + f"/{name}", (admin, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument(
        "--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    print(f"{'backend':<10} {'workers':>7} {'tuner t/s':>10} {'plain t/s':>10} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for backend in ("sqlite", "postgresql"):
            for workers in counts:
                rates = []
                for tuner in (True, False):
                    if backend == "sqlite":
                        url = f"sqlite:///{tmp}/{uuid.uuid4().hex}.db"
                        rates.append(measure(url, workers=workers, trials=args.trials, tuner=tuner))
                        continue
                    import sqlalchemy as sa

                    url, (admin, name) = _fresh_pg(args.postgres)
                    try:
                        rates.append(measure(url, workers=workers, trials=args.trials, tuner=tuner))
                    finally:
                        with admin.connect() as conn:  # type: ignore[attr-defined]
                            conn.execute(sa.text(f'drop database "{name}" with (force)'))
                print(
                    f"{backend:<10} {workers:>7} {rates[0]:>10.1f} {rates[1]:>10.1f} "
                    f"{rates[0] / rates[1]:>6.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
