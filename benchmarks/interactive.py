"""Interactive speed: how long the commands a person types take on large studies.

Builds SQLite studies of 1,000 and 5,000 synthetic trials (plain Optuna, tuner's user
attributes and stored space, 10 epochs of learning curve each), then times, as
subprocesses, `tuner --help`, `tuner studies list`, `tuner trials list NAME` and
`tuner report NAME --format json`, median of several runs. Baseline, side by side:
`python -c "import optuna"` (the floor any command that opens a study pays) and
`optuna studies --storage URL` (Optuna's own CLI listing).

Targets: `--help` under 0.3 s; listings under 2 s.
Run: ``python benchmarks/interactive.py [--reps 3]`` (about 3 minutes).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZES = (1000, 5000)


def build_study(url: str, name: str, n_trials: int) -> None:
    import numpy as np
    import optuna

    from tuner import records
    from tuner.space import load_space

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
    study = optuna.create_study(study_name=name, storage=url, direction="maximize")
    study.set_user_attr(records.SPACE, space.model_dump(mode="json"))
    study.set_user_attr(records.MAX_EPOCHS, 10)
    study.add_trials(trials)


def timed(command: list[str], reps: int) -> float:
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    import optuna

    print(
        f"# {platform.node()} {platform.machine()} python {platform.python_version()} "
        f"optuna {optuna.__version__}"
    )
    tuner = [sys.executable, "-m", "tuner"]
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/big.db"
        for size in SIZES:
            build_study(url, f"synthetic-{size}", size)
        rows = [
            ("python -c 'import optuna' (floor)", [sys.executable, "-c", "import optuna"]),
            ("tuner --help", [*tuner, "--help"]),
            (
                "optuna studies (baseline)",
                [
                    sys.executable,
                    "-c",
                    "import sys; from optuna.cli import main; sys.exit(main())",
                    "studies",
                    "--storage",
                    url,
                ],
            ),
            ("tuner studies list", [*tuner, "studies", "list", "--storage", url]),
        ]
        for size in SIZES:
            name = f"synthetic-{size}"
            rows.append(
                (f"tuner trials list ({size})", [*tuner, "trials", "list", name, "--storage", url])
            )
            rows.append(
                (
                    f"tuner report --format json ({size})",
                    [*tuner, "report", name, "--storage", url, "--format", "json"],
                )
            )
        floor = timed(rows[0][1], args.reps)
        print(f"{'command':<40} {'median s':>9} {'vs floor':>9}")
        for label, command in rows:
            seconds = floor if command is rows[0][1] else timed(command, args.reps)
            print(f"{label:<40} {seconds:>9.2f} {seconds / floor:>9.2f}")


if __name__ == "__main__":
    main()
