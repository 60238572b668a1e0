"""Time `tuner.report` on synthetic studies of 100, 1,000 and 5,000 trials.

    python benchmarks/report_speed.py [--sizes 100,1000,5000] [--bootstrap 20]

Prints, per size: seconds to build the data (importance with bootstrap intervals) and to
draw the HTML page, and the page's size. Trials are generated with plain Optuna in memory
(random sampler, 6 parameters, 1 conditional, learning curves, workers, pruned and failed
trials), so the time measured is the report's own.
"""

from __future__ import annotations

import argparse
import math
import random
import tempfile
import time
from pathlib import Path

import optuna


def synthetic(n_trials: int, seed: int = 0) -> optuna.Study:
    rnd = random.Random(seed)
    study = optuna.create_study(
        study_name=f"bench-{n_trials}",
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=seed),
        pruner=optuna.pruners.PercentilePruner(90.0, n_startup_trials=20, n_warmup_steps=5),
    )
    study.set_user_attr("max_epochs", 10)

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("learning_rate", 1e-5, 1.0, log=True)
        b = trial.suggest_int("log2_batch_size", 4, 10)
        opt = trial.suggest_categorical("optimizer", ["adam", "sgd", "momentum"])
        if opt == "momentum":
            trial.suggest_float("one_minus_momentum", 1e-3, 0.2, log=True)
        trial.suggest_float("dropout", 0.0, 0.5)
        trial.suggest_int("units", 16, 1024, log=True)
        trial.set_user_attr("worker", f"host-{trial.number % 4}")
        if lr > 0.5:
            trial.set_user_attr("fail_reason", "diverged")
            raise RuntimeError("diverged")
        final = 0.95 - 0.05 * (math.log10(lr) + 2.5) ** 2 - 0.03 * (b - 7) ** 2
        for epoch in range(10):
            trial.report(final * (1 - 0.5 * math.exp(-epoch / 2)) + 0.002 * rnd.random(), epoch)
            trial.set_user_attr("epochs", epoch + 1)
            trial.set_user_attr("seconds", 0.02 * 2 ** (10 - b) * (epoch + 1))
            if trial.should_prune():
                raise optuna.TrialPruned()
        return final

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study.optimize(objective, n_trials=n_trials, catch=(RuntimeError,))
    return study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,5000")
    parser.add_argument("--bootstrap", type=int, default=20)
    args = parser.parse_args()

    import tuner.reporting
    from tuner.reporting import render_html

    # warm the imports (sklearn, plotly) so that the first size is not charged for them
    tuner.reporting.report(synthetic(30), n_bootstrap=1)
    print(f"{'trials':>7} {'complete':>8} {'data s':>7} {'html s':>7} {'total s':>7} {'MiB':>5}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            study = synthetic(n)
            t0 = time.perf_counter()
            data = tuner.reporting.report(study, n_bootstrap=args.bootstrap)
            t1 = time.perf_counter()
            path = render_html(study, data, Path(tmp) / f"{n}.html")
            t2 = time.perf_counter()
            mib = path.stat().st_size / 2**20
            complete = data["summary"]["states"]["COMPLETE"]
            print(
                f"{n:>7} {complete:>8} {t1 - t0:>7.2f} {t2 - t1:>7.2f} {t2 - t0:>7.2f} {mib:>5.1f}"
            )


if __name__ == "__main__":
    main()
