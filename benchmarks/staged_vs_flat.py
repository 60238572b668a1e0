"""Staged search against flat TPE and random search, at equal trial budgets.

Three contenders per task and seed, each a fresh study on its own SQLite file:

- staged: ``strategy: staged`` with TPE (tier by tier, freezing and narrowing at the
  stage boundaries from measured importance);
- flat: TPE over every parameter at once (the default);
- random: random search over every parameter.

Tasks:

- synthetic: a cheap function of 12 parameters with a known importance structure —
  learning rate (tier 1), two tier-2 parameters that matter, a categorical and a float in
  tier 3 that matter less, one tier-4 parameter that matters a lot (declared wrongly), and
  six that do nothing; minimised, optimum 0. 100 trials.
- digits-mlp and house-price-linear (``studies/``): real Keras training kept small
  (digits at most 600 rows and 3 epochs, house prices 5 epochs), 20 trials.

Printed per task: mean and standard deviation over seeds of the best value after 25%, 50%
and 100% of the budget, the ratio staged/flat of the mean best (below 1 is better when
minimising, above 1 when maximising), and the win rate of staged over flat (share of
seeds where staged's best is better; ties count half).

Run: ``python benchmarks/staged_vs_flat.py`` (synthetic ~2 minutes, keras ~15 minutes on
2 cores); ``--part synthetic`` or ``--part keras`` for one half.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CONTENDERS = {  # name: (strategy, sampler)
    "staged": ("staged", "tpe"),
    "flat": ("flat", "tpe"),
    "random": ("flat", "random"),
}
CHECKPOINTS = (0.25, 0.5, 1.0)
KERAS_TASKS = ["digits-mlp", "house-price-linear"]


def _float(tier: int, default: float = 0.5) -> dict[str, Any]:
    return {"type": "float", "low": 0.0, "high": 1.0, "tier": tier, "default": default}


SYNTHETIC_SPACE: dict[str, Any] = {
    "name": "synthetic-known-importance",
    "parameters": {
        "lr": {"type": "float", "low": 1e-5, "high": 1.0, "log": True, "tier": 1, "default": 1e-3},
        "a": _float(2),
        "b": {"type": "int", "low": 1, "high": 64, "log": True, "tier": 2, "default": 32},
        "noise2": _float(2),
        "c": {"type": "categorical", "choices": ["x", "y", "z"], "tier": 3, "default": "y"},
        "d": _float(3),
        "noise3a": _float(3),
        "noise3b": _float(3),
        "e": _float(4),  # declared tier 4, matters like a tier-2 parameter
        "noise4a": _float(4),
        "noise4b": _float(4),
        "noise4c": _float(4),
    },
}


def synthetic(params: dict[str, Any], report: Any) -> float:
    """Known structure: lr >> a, e > b, c > d; the noise parameters do nothing. Optimum 0."""
    return (
        0.3 * (math.log10(params["lr"]) + 2.5) ** 2
        + 2.0 * (params["a"] - 0.7) ** 2
        + 0.05 * (math.log2(params["b"]) - 3) ** 2
        + {"x": 0.0, "y": 0.3, "z": 0.6}[params["c"]]
        + 0.5 * (params["d"] - 0.3) ** 2
        + 1.5 * (params["e"] - 0.2) ** 2
    )


def run_synthetic(contender: str, seed: int, n_trials: int) -> Any:
    import tuner

    strategy, sampler = CONTENDERS[contender]
    return tuner.optimize(
        synthetic,
        space=SYNTHETIC_SPACE,
        n_trials=n_trials,
        direction="minimize",
        strategy=strategy,
        sampler=sampler,
        pruner="none",
        seed=seed,  # in memory: Optuna's SQLite round trips would dominate the timing
    ).study


def run_keras(task: str, contender: str, seed: int, n_trials: int, tmp: Path) -> Any:
    import yaml

    import tuner

    spec = yaml.safe_load((ROOT / "studies" / f"{task}.yaml").read_text(encoding="utf-8"))
    spec["space"]["file"] = str((ROOT / "studies" / spec["space"]["file"]).resolve())
    if task == "digits-mlp":
        spec["data"]["max_rows"] = 600
        spec["training"]["max_epochs"] = 3
    else:
        spec["training"]["max_epochs"] = 5
    spec["pruner"] = "none"  # equal work per trial: the budget is trials
    # A run of diverged draws (α near 1 on SGD) must not stop one contender early.
    spec["budget"]["max_consecutive_failures"] = n_trials
    path = tmp / f"{task}-{contender}-{seed}.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    strategy, sampler = CONTENDERS[contender]
    result = tuner.tune(
        path,
        n_trials=n_trials,
        seed=seed,
        strategy=strategy,
        sampler=sampler,
        storage=f"sqlite:///{tmp / f'{task}-{contender}-{seed}.db'}",
    )
    return result.study


def best_so_far(study: Any, n_trials: int) -> list[float | None]:
    """Best complete value within the first 25/50/100% of the trials (by number)."""
    from optuna.study import StudyDirection
    from optuna.trial import TrialState

    pick = max if study.direction == StudyDirection.MAXIMIZE else min
    out = []
    for share in CHECKPOINTS:
        cut = math.ceil(share * n_trials)
        values = [
            t.value
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.number < cut and t.value is not None and math.isfinite(t.value)
        ]
        out.append(pick(values) if values else None)
    return out


def summarize(task: str, results: dict[str, list[list[float | None]]], maximize: bool) -> None:
    print(f"\n== {task} ({'max' if maximize else 'min'}imise), {len(results['flat'])} seeds ==")
    header = "contender " + "".join(f"{f'best @{int(c * 100)}%':>22}" for c in CHECKPOINTS)
    print(header)
    means: dict[str, list[float]] = {}
    for name, rows in results.items():
        cells, means[name] = [], []
        for i in range(len(CHECKPOINTS)):
            values = [r[i] for r in rows if r[i] is not None]
            mean = statistics.fmean(values) if values else math.nan
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            means[name].append(mean)
            cells.append(f"{mean:>12.4g} ± {spread:<7.3g}")
        print(f"{name:<10}" + "".join(cells))
    ratios = [s / f if f else math.nan for s, f in zip(means["staged"], means["flat"], strict=True)]
    print("staged/flat mean ratio: " + "  ".join(f"{r:.3f}" for r in ratios))
    for i, share in enumerate(CHECKPOINTS):
        wins = [
            win_share(s[i], f[i], maximize)
            for s, f in zip(results["staged"], results["flat"], strict=True)
        ]
        print(f"win rate staged over flat @{int(share * 100)}%: {statistics.fmean(wins):.0%}")


def win_share(ours: float | None, theirs: float | None, maximize: bool) -> float:
    """1 for a win, 0.5 for a tie (or neither finished), 0 for a loss."""
    if ours is None or theirs is None:
        return 0.5 if ours is theirs else float(ours is not None)
    if ours == theirs:
        return 0.5
    return float((ours > theirs) == maximize)


def decisions_line(studies: list[Any]) -> str:
    from tuner.search.strategy import stage_decisions

    frozen = narrowed = 0
    for study in studies:
        for row in stage_decisions(study):
            frozen += len(row.get("frozen") or {})
            narrowed += len(row.get("narrowed") or {})
    n = len(studies)
    return f"staged decisions per study: {frozen / n:.1f} frozen, {narrowed / n:.1f} narrowed"


def bench(task: str, seeds: int, n_trials: int, tmp: Path) -> None:
    started = time.perf_counter()
    results: dict[str, list[list[float | None]]] = {name: [] for name in CONTENDERS}
    staged_studies = []
    maximize = False
    for seed in range(seeds):
        for name in CONTENDERS:
            if task == "synthetic":
                study = run_synthetic(name, seed, n_trials)
            else:
                study = run_keras(task, name, seed, n_trials, tmp)
            maximize = study.direction.name == "MAXIMIZE"
            results[name].append(best_so_far(study, n_trials))
            if name == "staged":
                staged_studies.append(study)
    summarize(f"{task}, {n_trials} trials", results, maximize)
    print(decisions_line(staged_studies))
    print(f"wall time: {time.perf_counter() - started:.0f} s")


def main() -> None:
    import optuna

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["synthetic", "keras", "all"], default="all")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per task")
    parser.add_argument(
        "--tasks", nargs="+", default=KERAS_TASKS, choices=KERAS_TASKS, help="keras tasks"
    )
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress in logs
    with tempfile.TemporaryDirectory() as tmp:
        if args.part in ("synthetic", "all"):
            bench("synthetic", args.seeds or 10, 100, Path(tmp))
        if args.part in ("keras", "all"):
            for task in args.tasks:
                bench(task, args.seeds or 5, 20, Path(tmp))


if __name__ == "__main__":
    main()
