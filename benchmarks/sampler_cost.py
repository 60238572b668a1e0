"""What the sampler costs per trial as a study grows: TPE (tuner's default) vs random.

    python benchmarks/sampler_cost.py [--sizes 100,500,1000,2000,5000] [--asks 20]

For each size N, a study on the importance-ranked space (all tiers, conditional momentum
and Adam parameters) is filled with N finished trials, then ``--asks`` more trials are
sampled and told, timed, with Optuna 5's default TPE (multivariate, constant liar) as
tuner builds it and with the random sampler as the floor. Storage is in memory, so the
figure is the sampler's own cost; a database adds its read of the N trials on top (see
storage_throughput.py). Compare the per-trial cost with a trial's training time (seconds
for the digits MLP) to see when the sampler starts to matter.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import statistics
import time
from pathlib import Path

import optuna

from tuner.samplers import make_sampler
from tuner.space import load_space

SPACE = Path(__file__).resolve().parent.parent / "search_spaces" / "importance-ranked.yaml"


def filled_study(n_trials: int, *, sampler: optuna.samplers.BaseSampler) -> optuna.Study:
    """A study with ``n_trials`` random finished trials (some pruned), then ``sampler``."""
    space = load_space(SPACE)
    rnd = random.Random(n_trials)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.RandomSampler(seed=n_trials)
    )
    for _ in range(n_trials):
        trial = study.ask()
        params = space.suggest(trial)
        score = -abs(math.log10(float(params["learning_rate"])) + 2.5) + rnd.gauss(0, 0.1)
        state = optuna.trial.TrialState.PRUNED if rnd.random() < 0.3 else None
        study.tell(trial, None if state else score, state=state)
    study.sampler = sampler
    return study


def seconds_per_trial(study: optuna.Study, asks: int) -> list[float]:
    space = load_space(SPACE)
    times = []
    for _ in range(asks):
        start = time.perf_counter()
        trial = study.ask()
        space.suggest(trial)
        times.append(time.perf_counter() - start)
        study.tell(trial, 0.0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,500,1000,2000,5000")
    parser.add_argument("--asks", type=int, default=20)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(
        f"python {platform.python_version()}, optuna {optuna.__version__}, "
        f"{platform.machine()} {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
    )
    print(f"{'trials':>7}  {'tpe ms':>8}  {'spread':>13}  {'random ms':>9}  {'ratio':>6}")
    for size in (int(s) for s in args.sizes.split(",")):
        medians = {}
        spreads = {}
        for name in ("tpe", "random"):
            study = filled_study(size, sampler=make_sampler(name, {}, seed=0))
            times = seconds_per_trial(study, args.asks)
            medians[name] = 1000 * statistics.median(times)
            spreads[name] = f"{1000 * min(times):.0f}-{1000 * max(times):.0f}"
        print(
            f"{size:>7}  {medians['tpe']:>8.1f}  {spreads['tpe']:>13}  "
            f"{medians['random']:>9.2f}  {medians['tpe'] / medians['random']:>6.0f}x"
        )
    print(f"load at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
