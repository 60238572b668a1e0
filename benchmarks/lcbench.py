"""Search strategies side by side on the LCBench surrogate (YAHPO Gym), budgets in epochs.

LCBench: funnel-shaped MLPs trained with SGD on OpenML tasks, 7 hyperparameters (batch size,
learning rate, momentum, weight decay, layers, max units, max dropout), validation accuracy
after each of 50 epochs, from a surrogate model instead of real training: a query costs
milliseconds. Adapted from ``../shared/bench/lcbench_reference.py`` (same space, tasks,
seeds, budget and measures, so its figures compare with the baseline there).

Each arm runs on the same tasks and seeds; a budget of N full trainings is N x 50 epochs.
Printed: the gain in accuracy points over random search's final best at 10/25/50/100% of
the epoch budget (median [mean] over task-seeds), win/loss counts against flat TPE and
TPE + Hyperband, and the speed-up to random search's median final accuracy (geometric
mean; "never" counted apart): the table of issue 13's point 1.

Arms:
  rs             random search (Optuna)
  tpe            flat TPE, no pruning (Optuna)
  tpe-hb         flat TPE + Hyperband (Optuna)
  tuner-old      tuner.optimize(sampler="tpe", pruner="median"): tuner's default until issue 13
  tuner-staged   tuner.optimize(strategy="staged", pruner="none")
  tuner-default  tuner.optimize() with nothing chosen: tuner's default search

The surrogate needs its own venv (yahpo-gym pins numpy<2); tuner itself never imports it:

  bash ../shared/bench/setup-lcbench-venv.sh /tmp/lcbench-venv
  YAHPO_DATA=../shared/bench PYTHONPATH=. /tmp/lcbench-venv/bin/python benchmarks/lcbench.py
  ... --tasks 3 --seeds 2 --arms rs,tpe-hb,tuner-default     (a quick look)

Never point --tasks at LCBench tasks outside ``lcbench_tasks.txt``: they are held out.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics as st
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore")
import optuna  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.ERROR)

EPOCHS = list(range(2, 52))  # YAHPO's advice for LCBench: epochs 2..51
SHARES = (0.1, 0.25, 0.5, 1.0)
SPACE = {
    "parameters": {  # tiers as the importance ranking would declare them
        "learning_rate": {
            "type": "float", "low": 1e-4, "high": 1e-1, "log": True, "tier": 1, "default": 1e-2,
        },
        "momentum": {"type": "float", "low": 0.1, "high": 0.99, "tier": 2, "default": 0.9},
        "batch_size": {"type": "int", "low": 16, "high": 512, "log": True, "tier": 2,
                       "default": 64},
        "max_units": {"type": "int", "low": 64, "high": 1024, "log": True, "tier": 2,
                      "default": 256},
        "num_layers": {"type": "int", "low": 1, "high": 5, "tier": 3, "default": 2},
        "weight_decay": {"type": "float", "low": 1e-5, "high": 1e-1, "tier": 3, "default": 1e-4},
        "max_dropout": {"type": "float", "low": 0.0, "high": 1.0, "tier": 4, "default": 0.0},
    }
}  # fmt: skip


class Task:
    """One study's view of an LCBench task: counts epochs, traces the best final accuracy."""

    def __init__(self, bench: Any, inst: str) -> None:
        self.bench, self.inst, self.used, self.trace, self.best = bench, inst, 0, [], -1.0

    def objective(self, params: dict[str, Any], report: Callable[[float, int], None]) -> float:
        """f(params, report) -> final validation accuracy; report(value, step) may prune."""
        cfg = {k: params[k] for k in SPACE["parameters"]}
        for k in ("batch_size", "max_units", "num_layers"):
            cfg[k] = int(cfg[k])
        self.bench.set_instance(self.inst)
        queries = [dict(cfg, OpenML_task_id=self.inst, epoch=e) for e in EPOCHS]
        curve = [r["val_accuracy"] for r in self.bench.objective_function(queries)]
        for step, acc in enumerate(curve):
            self.used += 1
            report(float(acc), step)
        self.best = max(self.best, float(curve[-1]))
        self.trace.append((self.used, self.best))
        return float(curve[-1])


def arm_plain_optuna(task: Task, budget: int, sampler: Any, pruner: Any) -> None:
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)

    def obj(trial: optuna.Trial) -> float:
        p = {}
        for k, v in SPACE["parameters"].items():
            suggest = trial.suggest_float if v["type"] == "float" else trial.suggest_int
            p[k] = suggest(k, v["low"], v["high"], log=v.get("log", False))

        def report(value: float, step: int) -> None:
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()

        return task.objective(p, report)

    while task.used < budget * len(EPOCHS):
        study.optimize(obj, n_trials=1)


def arm_tuner(task: Task, seed: int, budget: int, **options: Any) -> None:
    """tuner.optimize with the options given (none: tuner's defaults), stopped at the budget."""
    import tuner

    total = budget * len(EPOCHS)

    def cap(study: optuna.Study, trial: Any) -> None:
        if task.used >= total:
            study.stop()

    # Unpruned, the budget is `budget` trials (the staged plan splits that count into
    # stages); pruned, every trial costs at least one epoch, so the epoch cap stops first.
    n_trials = budget if options.get("pruner") == "none" else total
    tuner.optimize(
        task.objective, space=SPACE, n_trials=n_trials, direction="maximize", seed=seed,
        callbacks=[cap], **options,
    )  # fmt: skip


def _hyperband() -> optuna.pruners.BasePruner:
    return optuna.pruners.HyperbandPruner(
        min_resource=1, max_resource=len(EPOCHS), reduction_factor=3
    )


ARMS: dict[str, Callable[[Task, int, int], None]] = {
    "rs": lambda t, s, b: arm_plain_optuna(
        t, b, optuna.samplers.RandomSampler(seed=s), optuna.pruners.NopPruner()
    ),
    "tpe": lambda t, s, b: arm_plain_optuna(
        t, b, optuna.samplers.TPESampler(seed=s), optuna.pruners.NopPruner()
    ),
    "tpe-hb": lambda t, s, b: arm_plain_optuna(
        t, b, optuna.samplers.TPESampler(seed=s), _hyperband()
    ),
    "tuner-old": lambda t, s, b: arm_tuner(t, s, b, sampler="tpe", pruner="median"),
    "tuner-staged": lambda t, s, b: arm_tuner(t, s, b, strategy="staged", pruner="none"),
    "tuner-default": lambda t, s, b: arm_tuner(t, s, b),
}


def best_at(trace: list[list[int | float]], epochs: float) -> float | None:
    best = None
    for used, value in trace:
        if used <= epochs:
            best = value
    return best


def summarise(rows: list[dict[str, Any]], budget: int) -> None:
    """Print the table: anytime gains, wins, speed-up; the leader at each share."""
    by: dict[tuple[str, int], dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in rows:
        by[(r["task"], r["seed"])][r["arm"]] = r
    present = {r["arm"] for r in rows}
    arms = [a for a in ARMS if a in present] + sorted(present - set(ARMS))
    full = {k: v for k, v in by.items() if all(a in v for a in arms)}
    if "rs" not in arms or not full:
        sys.exit("the table needs the rs arm (the reference) and at least one task-seed")
    total = budget * len(EPOCHS)
    print(f"{len(full)} task-seeds, budget {budget} full trainings = {total} epochs")
    print("gain over random's final best, accuracy points, at 10 / 25 / 50 / 100% of the budget:")
    print("median [mean]")
    medians: dict[str, list[float]] = {}
    for a in arms:
        cells, medians[a] = [], []
        for share in SHARES:
            got = [best_at(v[a]["trace"], total * share) for v in full.values()]
            ok = [
                x - v["rs"]["best"]
                for x, v in zip(got, full.values(), strict=True)
                if x is not None
            ]
            medians[a].append(st.median(ok) if ok else -math.inf)
            short = "" if len(ok) == len(full) else f" n={len(ok)}"
            cells.append(f"{st.median(ok):+.2f} [{st.mean(ok):+.2f}]{short}" if ok else "n/a")
        print(f"  {a:14s} " + " | ".join(cells))
    for ref in ("tpe", "tpe-hb"):
        for a in arms:
            if ref not in arms or a in (ref, "rs"):
                continue
            w = sum(v[a]["best"] > v[ref]["best"] + 1e-9 for v in full.values())
            lost = sum(v[a]["best"] < v[ref]["best"] - 1e-9 for v in full.values())
            print(f"  {a} vs {ref} at 100%: {w} wins, {lost} losses, {len(full) - w - lost} ties")
    print("speed-up to random's median final best (budget epochs / epochs needed), geometric mean")
    for a in arms:
        ratios, never = [], 0
        for task in sorted({k[0] for k in full}):
            keys = [k for k in full if k[0] == task]
            target = st.median(full[k]["rs"]["best"] for k in keys)
            for k in keys:
                e = next((u for u, b in full[k][a]["trace"] if b >= target), None)
                if e is None:
                    never += 1
                else:
                    ratios.append(total / e)
        gm = math.exp(st.mean(math.log(x) for x in ratios)) if ratios else float("nan")
        print(f"  {a:14s} {gm:.2f}x where reached; never reached in {never}/{len(full)}")
    if "tuner-default" in arms and len(arms) > 2:
        others = [a for a in arms if a not in ("tuner-default", "rs")]
        lead = [
            max(medians[a][i] for a in others) <= medians["tuner-default"][i]
            for i in range(len(SHARES))
        ]
        shown = ", ".join(
            f"{s:.0%} {'yes' if ok else 'no'}" for s, ok in zip(SHARES, lead, strict=True)
        )
        print(f"tuner-default's median >= every other arm's: {shown}")


def _data_dir() -> Path:
    given = os.environ.get("YAHPO_DATA")
    return Path(given) if given else ROOT.parent / "shared" / "bench"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--task-file",
        help="one LCBench task id a line [default: lcbench_tasks.txt in the data directory]",
    )
    ap.add_argument("--tasks", type=int, help="only the first N tasks of the file")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--budget", type=int, default=30, help="full trainings (x 50 epochs)")
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument(
        "--out", help="JSON lines, appended; runs already there are skipped [default: a temp file]"
    )
    args = ap.parse_args()
    arms = args.arms.split(",")
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        sys.exit(f"unknown arms {unknown}: choose among {', '.join(ARMS)}")
    from yahpo_gym import benchmark_set, local_config  # the benchmark's own venv only

    data = _data_dir()
    local_config.init_config()
    local_config.set_data_path(str(data))
    bench = benchmark_set.BenchmarkSet("lcbench")
    task_file = Path(args.task_file) if args.task_file else data / "lcbench_tasks.txt"
    tasks = [t.strip() for t in task_file.read_text().splitlines() if t.strip()][: args.tasks]
    out = Path(args.out or tempfile.mkstemp(prefix="lcbench-", suffix=".jsonl")[1])
    done = set()
    if out.exists() and out.stat().st_size:
        done = {(r["task"], r["arm"], r["seed"]) for r in map(json.loads, out.open())}
    print(f"optuna {optuna.__version__}; rows in {out}", file=sys.stderr)
    with out.open("a") as fh:
        for seed in range(args.seeds):
            for inst in tasks:
                for arm in arms:
                    if (inst, arm, seed) in done:
                        continue
                    task, t0 = Task(bench, inst), time.perf_counter()
                    ARMS[arm](task, seed, args.budget)
                    row = dict(
                        task=inst, arm=arm, seed=seed, best=task.best, used=task.used,
                        trace=task.trace, seconds=round(time.perf_counter() - t0, 2),
                    )  # fmt: skip
                    fh.write(json.dumps(row) + "\n")
                    fh.flush()
                    print(inst, arm, seed, f"{task.best:.2f}", task.used, row["seconds"],
                          file=sys.stderr, flush=True)  # fmt: skip
    rows = [json.loads(line) for line in out.open()]
    wanted = {(t, s) for t in tasks for s in range(args.seeds)}
    summarise(
        [r for r in rows if r["arm"] in arms and (r["task"], r["seed"]) in wanted], args.budget
    )


if __name__ == "__main__":
    main()
