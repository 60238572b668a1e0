"""Interactive speed: how long the commands a person types take on large studies.

Builds studies of 1,000 and 5,000 synthetic trials (tuner's user attributes and stored
space, 10 epochs of learning curve each) in SQLite and, with ``--postgres``, in a
throwaway PostgreSQL database, then times as subprocesses `tuner --help`,
`tuner studies list`, and for each study `tuner trials list`, `best`, `export`,
`studies show` and `report --format json`. Baselines in the same run:
`python -c "import optuna"` (the floor any command that opens a study pays) and
`optuna studies --storage URL` (Optuna's own CLI listing); with ``--before DIR``, the
same tuner commands from another checkout (e.g. ``git archive main | tar -x -C DIR``).
Every command runs once per round and the rounds repeat, so contenders share the
machine's load alike; the table gives median, min and max wall seconds, median CPU
seconds (what an idle machine would take) and ratios.

Targets: `--help` under 0.3 s; listings under 2 s.
Run: ``python benchmarks/interactive.py [--reps 3] [--sizes 1000,5000]
[--postgres postgresql+psycopg://postgres@127.0.0.1/postgres] [--before DIR]``
(setup about 1 minute per backend; then about 1 minute per round and backend, more
with ``--before``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from _postgres import throwaway_database  # benchmarks/ is on sys.path when a script runs

ROOT = Path(__file__).resolve().parent.parent


def synthetic_trials(n_trials: int) -> list:
    """Trials with the importance-ranked space's parameters (conditionals included)."""
    import numpy as np
    import optuna

    from tuner import records
    from tuner.specs.space import load_space

    space = load_space(ROOT / "search_spaces" / "importance-ranked.yaml")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sampling = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))  # in memory
    rng = np.random.default_rng(0)
    trials = []
    for number in range(n_trials):
        trial = sampling.ask()
        values = space.suggest(trial)
        sampling.tell(trial, 0.0)
        score = 1 - abs(np.log10(values["learning_rate"]) + 2.5) / 5 + rng.normal(0, 0.02)
        trials.append(
            optuna.trial.create_trial(
                params=trial.params,
                distributions=trial.distributions,
                value=float(score),
                intermediate_values={s: float(score * (s + 1) / 10) for s in range(10)},
                user_attrs={
                    records.EPOCHS: 10,
                    records.SECONDS: 3.0,
                    records.WORKER: f"w{number % 4}",
                },
            )
        )
    return trials


def write_study(url: str, name: str, trials: list) -> None:
    """Store ``trials`` as study ``name`` through Optuna's own table models, in one commit.

    ``study.add_trials`` writes trial by trial (about 0.1 s each here, so 10 minutes for
    6,000); adding the same rows through Optuna's ORM models in one session gives the
    same tables in seconds.
    """
    import optuna
    from optuna.distributions import distribution_to_json
    from optuna.storages._rdb import models
    from sqlalchemy.orm import Session

    from tuner import records
    from tuner.specs.space import load_space

    space = load_space(ROOT / "search_spaces" / "importance-ranked.yaml")
    study = optuna.create_study(study_name=name, storage=url, direction="maximize")
    study.set_user_attr(records.SPACE, space.model_dump(mode="json"))
    study.set_user_attr(records.MAX_EPOCHS, 10)
    storage = study._storage._backend  # type: ignore[attr-defined]  # the RDBStorage
    with Session(storage.engine) as session:
        for number, trial in enumerate(trials):
            value, value_type = models.TrialValueModel.value_to_stored_repr(trial.value)
            curve = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr
            session.add(
                models.TrialModel(
                    number=number,
                    study_id=study._study_id,
                    state=trial.state,
                    datetime_start=trial.datetime_start,
                    datetime_complete=trial.datetime_complete,
                    params=[
                        models.TrialParamModel(
                            param_name=key,
                            param_value=trial.distributions[key].to_internal_repr(param),
                            distribution_json=distribution_to_json(trial.distributions[key]),
                        )
                        for key, param in trial.params.items()
                    ],
                    values=[
                        models.TrialValueModel(objective=0, value=value, value_type=value_type)
                    ],
                    intermediate_values=[
                        models.TrialIntermediateValueModel(
                            step=step,
                            intermediate_value=curve(point)[0],
                            intermediate_value_type=curve(point)[1],
                        )
                        for step, point in trial.intermediate_values.items()
                    ],
                    user_attributes=[
                        models.TrialUserAttributeModel(key=key, value_json=json.dumps(attr))
                        for key, attr in trial.user_attrs.items()
                    ],
                )
            )
        session.commit()
    storage.engine.dispose()


def commands(url: str, backend: str, sizes: list[int], tree: Path, *, before: bool) -> list:
    """(label, command, checkout) rows for one storage and one checkout of tuner.

    The other checkout (``before``) runs the listings only: reports are not what it compares.
    """
    tag = " (before)" if before else ""
    tuner = [sys.executable, "-m", "tuner"]
    rows = [(f"tuner studies list{tag}", [*tuner, "studies", "list", "--storage", url], tree)]
    for size in sizes:
        name = f"synthetic-{size}"
        listings = [
            ("trials list", ["trials", "list", name]),
            ("best", ["best", name]),
            ("export", ["export", name]),
            ("studies show", ["studies", "show", name]),
        ]
        report = [] if before else [("report --format json", ["report", name, "--format", "json"])]
        for label, args in listings + report:
            rows.append((f"tuner {label} ({size}){tag}", [*tuner, *args, "--storage", url], tree))
    return [(f"{backend}: {label}", command, checkout) for label, command, checkout in rows]


def run_once(command: list[str], tree: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run of ``command``.

    CPU time hardly depends on what else the machine runs, so it shows what the command
    would take on an idle machine; the database server's own CPU is not in it.
    """
    env = {**os.environ, "PYTHONPATH": str(tree)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, cwd=tree, env=env)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--sizes", default="1000,5000", help="trials per study, comma-separated")
    parser.add_argument("--postgres", metavar="ADMIN_URL", help="also time a PostgreSQL storage")
    parser.add_argument("--before", type=Path, help="a checkout to time side by side")
    args = parser.parse_args()
    import optuna
    import sqlalchemy

    sizes = [int(s) for s in args.sizes.split(",")]
    print(
        f"# {platform.node()} {platform.machine()} {os.cpu_count()} CPUs, python "
        f"{platform.python_version()}, optuna {optuna.__version__}, sqlalchemy "
        f"{sqlalchemy.__version__}; load average {os.getloadavg()[0]:.1f} at start"
    )
    trials = synthetic_trials(max(sizes))
    with tempfile.TemporaryDirectory() as tmp, _maybe_postgres(args.postgres) as pg_url:
        storages = [("sqlite", f"sqlite:///{tmp}/big.db")]
        storages += [("postgresql", pg_url)] if pg_url else []
        rows = [
            ("python -c 'import optuna' (floor)", [sys.executable, "-c", "import optuna"], ROOT),
            ("tuner --help", [sys.executable, "-m", "tuner", "--help"], ROOT),
        ]
        for backend, url in storages:
            for size in sizes:
                write_study(url, f"synthetic-{size}", trials[:size])
            optuna_cli = "import sys; from optuna.cli import main; sys.exit(main())"
            rows.append(
                (
                    f"{backend}: optuna studies (baseline)",
                    [sys.executable, "-c", optuna_cli, "studies", "--storage", url],
                    ROOT,
                )
            )
            rows += commands(url, backend, sizes, ROOT, before=False)
            if args.before:
                rows += commands(url, backend, sizes, args.before.resolve(), before=True)
        times: dict[str, list[tuple[float, float]]] = {label: [] for label, _, _ in rows}
        for _ in range(args.reps):  # interleaved: each round runs every command once
            for label, command, tree in rows:
                times[label].append(run_once(command, tree))
    report(times)
    print(f"# load average {os.getloadavg()[0]:.1f} at the end")


@contextmanager
def _maybe_postgres(admin_url: str | None) -> Iterator[str | None]:
    if admin_url is None:
        yield None
        return
    with throwaway_database(admin_url) as url:
        yield url


def report(times: dict[str, list[tuple[float, float]]]) -> None:
    """Wall seconds (median, min, max), median CPU seconds, ratios of median wall."""

    def median(label: str, which: int = 0) -> float:
        return statistics.median(run[which] for run in times[label])

    floor = median(next(iter(times)))
    print(
        f"{'command':<56} {'wall s':>6} {'min':>6} {'max':>6} {'cpu s':>6} {'/floor':>7} "
        f"{'/before':>7}"
    )
    for label, runs in times.items():
        walls = [wall for wall, _ in runs]
        before = f"{label} (before)"
        versus = f"{median(label) / median(before):>7.2f}" if before in times else ""
        print(
            f"{label:<56} {median(label):>6.2f} {min(walls):>6.2f} {max(walls):>6.2f} "
            f"{median(label, 1):>6.2f} {median(label) / floor:>7.2f} {versus}"
        )


if __name__ == "__main__":
    main()
