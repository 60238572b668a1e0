"""tuner's default search against the previous default (flat TPE + median) on real Keras tasks.

The successor of ``staged_vs_flat.py`` for issue 13: equal budgets counted in epochs (the
unit that costs GPU time; pruning spends fewer per trial), each contender a fresh study
on its own SQLite file, trained for real by ``tuner.tune``:

- default: the shipped spec with its sampler, pruner and strategy removed (what a user
  gets without choosing: tpe-explore + asha, flat, the defaults as trial 0 and the
  learning rate either side of them as trials 1 and 2);
- flat-median: the shipped spec with ``sampler: tpe``, ``pruner: median`` and the flat
  strategy (tuner's default before issue 13).

Printed per task: mean ± standard deviation over seeds of the best value within 25%, 50%
and 100% of the epoch budget, and the default's wins over flat-median at 100% (ties half).

Run: ``python benchmarks/keras_default.py`` (5 seeds, 10 full trainings a study; about
40 minutes on 2 busy cores); ``--seeds``, ``--trainings``, ``--tasks`` to shrink it.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from staged_vs_flat import win_share  # benchmarks/ is on sys.path when a script runs

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARES = (0.25, 0.5, 1.0)
# Kept small for 2 CPU cores: rows and epochs per task.
TASKS = {
    "digits-mlp": {"max_rows": 600, "max_epochs": 10},
    "diabetes-regression": {"max_epochs": 15},
    "house-price-linear": {"max_epochs": 10},
}
CONTENDERS = {
    "default": {},
    "flat-median": {"sampler": "tpe", "pruner": "median", "strategy": "flat"},
}


def run(task: str, contender: str, seed: int, trainings: int, tmp: Path) -> Any:
    import yaml

    import tuner

    spec = yaml.safe_load((ROOT / "studies" / f"{task}.yaml").read_text(encoding="utf-8"))
    spec["space"]["file"] = str((ROOT / "studies" / spec["space"]["file"]).resolve())
    size = TASKS[task]
    if "max_rows" in size:
        spec["data"]["max_rows"] = size["max_rows"]
    spec["training"]["max_epochs"] = size["max_epochs"]
    for key in ("sampler", "pruner", "strategy"):
        spec.pop(key, None)
    spec.update(CONTENDERS[contender])
    # The budget is epochs alone; diverged draws must not stop a contender early.
    spec["budget"] = {"epochs": trainings * size["max_epochs"], "max_consecutive_failures": 50}
    path = tmp / f"{task}-{contender}-{seed}.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return tuner.tune(path, seed=seed, storage=f"sqlite:///{path.with_suffix('.db')}").study


def best_within(study: Any, budget: int) -> list[float | None]:
    """Best complete value once 25/50/100% of the epoch budget is spent (trials by number)."""
    from optuna.trial import TrialState

    from tuner.execution.epoch_budget import trial_epochs

    pick = max if study.direction.name == "MAXIMIZE" else min
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    out = []
    for share in SHARES:
        used, values = 0, []
        for t in trials:
            used += trial_epochs(t)
            if used > share * budget + 1e-9 and share < 1:
                break
            if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value):
                values.append(t.value)
        out.append(pick(values) if values else None)
    return out


def report(task: str, rows: dict[str, list[list[float | None]]], maximize: bool) -> None:
    print(f"\n== {task} ({'max' if maximize else 'min'}imise), {len(rows['default'])} seeds ==")
    print("contender   " + "".join(f"{f'best @{int(s * 100)}% epochs':>26}" for s in SHARES))
    for name, results in rows.items():
        cells = []
        for i in range(len(SHARES)):
            values = [r[i] for r in results if r[i] is not None]
            mean = statistics.fmean(values) if values else math.nan
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{mean:>14.4g} ± {spread:<9.3g}")
        print(f"{name:<12}" + "".join(cells))
    wins = [
        win_share(d[-1], f[-1], maximize)
        for d, f in zip(rows["default"], rows["flat-median"], strict=True)
    ]
    print(f"default wins over flat-median @100%: {sum(wins):g} of {len(wins)}")


def main() -> None:
    import optuna

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trainings", type=int, default=10, help="full trainings of budget")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    print(f"optuna {optuna.__version__}; {args.seeds} seeds, {args.trainings} full trainings")
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.tasks:
            budget = args.trainings * TASKS[task]["max_epochs"]
            rows: dict[str, list[list[float | None]]] = {name: [] for name in CONTENDERS}
            maximize = False
            for seed in range(args.seeds):
                for name in CONTENDERS:
                    study = run(task, name, seed, args.trainings, Path(tmp))
                    maximize = study.direction.name == "MAXIMIZE"
                    rows[name].append(best_within(study, budget))
                    print(f"  {task} {name} seed {seed}: {rows[name][-1]}", file=sys.stderr)
            report(f"{task}, {budget} epochs", rows, maximize)


if __name__ == "__main__":
    main()
