"""What the sampler costs per trial as a study grows: tuner's TPE vs Optuna's vs random.

    python benchmarks/sampler_cost.py [--sizes 100,500,1000,2000,5000] [--asks 20]
        [--quality-trials 600 --quality-bound 150 --seeds 3]

Cost: for each size N, a study on the importance-ranked space (all tiers, conditional
momentum and Adam parameters) is filled with N finished trials, then ``--asks`` more
trials are sampled and told, timed, with Optuna 5's own TPE (multivariate, constant
liar), with tuner's (the same, its "above" density fitted on at most 1,000 trials:
tuner/tpe.py) and with the random sampler as the floor. Storage is in memory, so the
figure is the sampler's own cost; a database adds its read of the N trials on top (see
storage_throughput.py). Compare the per-trial cost with a trial's training time (seconds
for the digits MLP) to see when the sampler starts to matter.

Quality: the bound must not cost search quality. Each seed runs ``--quality-trials``
trials of a cheap objective on the same space with Optuna's TPE and with tuner's bounded
at ``--quality-bound`` trials (so the bound is active for most of the run), and prints
the best value at the end (higher is better; 0 is the optimum).
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

from tuner.search.samplers import make_sampler
from tuner.specs.space import load_space

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


def objective_value(params: dict) -> float:
    """A cheap objective of the importance-ranked space, 0 at its best: the learning rate
    matters most, then momentum, batch size and units, then layers."""
    return -(
        abs(math.log10(float(params["learning_rate"])) + 2.5)
        + 0.5 * abs(float(params.get("momentum", 0.5)) - 0.9)
        + 0.1 * abs(math.log2(int(params["batch_size"])) - 6)
        + 0.1 * abs(math.log2(int(params["units"])) - 7)
        + 0.05 * abs(int(params["layers"]) - 2)
    )


def best_after(n_trials: int, *, sampler: optuna.samplers.BaseSampler) -> float:
    space = load_space(SPACE)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda trial: objective_value(space.suggest(trial)), n_trials=n_trials)
    return study.best_value


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


CONTENDERS = {
    "optuna-tpe": lambda seed: optuna.samplers.TPESampler(seed=seed),
    "tuner-tpe": lambda seed: make_sampler("tpe", {}, seed=seed),
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
}


def cost(sizes: list[int], asks: int) -> None:
    print(f"{'trials':>7}  " + "  ".join(f"{name + ' ms':>15}" for name in CONTENDERS), end="")
    print(f"  {'tuner/optuna':>12}")
    for size in sizes:
        medians = {}
        cells = []
        for name, sampler in CONTENDERS.items():
            times = seconds_per_trial(filled_study(size, sampler=sampler(0)), asks)
            medians[name] = 1000 * statistics.median(times)
            cells.append(f"{medians[name]:.1f} ({1000 * min(times):.0f}-{1000 * max(times):.0f})")
        ratio = medians["tuner-tpe"] / medians["optuna-tpe"]
        print(f"{size:>7}  " + "  ".join(f"{c:>15}" for c in cells) + f"  {ratio:>12.2f}")


def quality(n_trials: int, bound: int, seeds: int) -> None:
    print(
        f"\nbest value after {n_trials} trials (0 is the optimum), tuner's TPE bounded at {bound}"
    )
    bests: dict[str, list[float]] = {"optuna-tpe": [], "tuner-tpe": []}
    for seed in range(seeds):
        samplers = {
            "optuna-tpe": optuna.samplers.TPESampler(seed=seed),
            "tuner-tpe": make_sampler("tpe", {"max_above_trials": bound}, seed=seed),
        }
        for name, sampler in samplers.items():
            start = time.perf_counter()
            bests[name].append(best_after(n_trials, sampler=sampler))
            print(
                f"  seed {seed} {name:<11} best {bests[name][-1]:.4f} "
                f"({time.perf_counter() - start:.0f} s)"
            )
    for name, values in bests.items():
        print(
            f"{name:<11} median best {statistics.median(values):.4f} "
            f"(range {min(values):.4f} to {max(values):.4f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,500,1000,2000,5000")
    parser.add_argument("--asks", type=int, default=20)
    parser.add_argument("--quality-trials", type=int, default=600)
    parser.add_argument("--quality-bound", type=int, default=150)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(
        f"python {platform.python_version()}, optuna {optuna.__version__}, "
        f"{platform.machine()} {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
    )
    if args.sizes:
        cost([int(s) for s in args.sizes.split(",")], args.asks)
    if args.seeds:
        quality(args.quality_trials, args.quality_bound, args.seeds)
    print(f"load at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
