"""Memory over a long study: 30 short trials in one process, resident memory after 5 and 30.

Two contenders, each in a fresh process so neither inherits the other's memory:

- tuner: tuner's runner on digits (real Keras training, SQLite storage, pruning callback),
  which clears Keras state after every trial;
- bare-keras: the same 30 model builds and fits in a plain loop that never clears
  Keras state, the way a hand-written script often does.

Run: ``python benchmarks/memory_growth.py`` (about 6 minutes on 2 cores); resident memory
in MiB after trials 5, 10, ... 30. The figure that
matters is tuner's growth from trial 5 to trial 30 (target: under 20%).
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
N_TRIALS, EARLY = 30, 5
MARKS = (5, 10, 15, 20, 25, 30)  # trials after which resident memory is read
PARAMS = {"units": 64, "layers": 2, "batch_size": 64, "learning_rate": 1e-3}


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def run_tuner() -> dict[str, float]:
    from tuner.runner import execute, prepare_run
    from tuner.spec import resolve_spec

    marks: dict[str, float] = {}

    def measure(study, trial) -> None:
        if trial.number + 1 in MARKS:
            marks[f"after_{trial.number + 1}"] = _rss_mb()

    raw = {
        "name": "memory",
        "data": {"source": "digits"},
        "training": {"max_epochs": 3},
        "space": {  # every trial trains fully: no pruning, no α large enough to diverge
            "file": str(ROOT / "search_spaces" / "importance-ranked.yaml"),
            "overrides": {"learning_rate": {"high": 1e-2}},
            "tiers": "1",
        },
        "pruner": "none",
        "budget": {"n_trials": N_TRIALS},
    }
    with tempfile.TemporaryDirectory() as tmp:
        resolved = resolve_spec(raw, base_dir=ROOT, source="memory benchmark")
        execute(
            prepare_run(resolved, storage_url=f"sqlite:///{tmp}/memory.db"), callbacks=[measure]
        )
    return marks


def run_bare_keras() -> dict[str, float]:
    from tuner.data import load_dataset
    from tuner.spec import DataSpec
    from tuner.training import train

    dataset = load_dataset(DataSpec(source="digits"), base_dir=ROOT, seed=0)
    marks: dict[str, float] = {}
    for number in range(1, N_TRIALS + 1):
        train(PARAMS, dataset, epochs=3, seed=number)  # no clear_session between models
        if number in MARKS:
            marks[f"after_{number}"] = _rss_mb()
    return marks


def main() -> None:
    if len(sys.argv) == 2:  # child process: one contender
        result = {"tuner": run_tuner, "bare-keras": run_bare_keras}[sys.argv[1]]()
        print(json.dumps(result))
        return
    import optuna

    from tuner.keras_env import import_keras

    keras = import_keras()

    print(
        f"# {platform.node()} {platform.machine()} python {platform.python_version()} "
        f"keras {keras.__version__} optuna {optuna.__version__}"
    )
    print(f"{'contender':<12} " + " ".join(f"{f'@{m}':>6}" for m in MARKS) + "  growth 5->30")
    growth = {}
    for name in ("tuner", "bare-keras"):
        out = (
            subprocess.run(
                [sys.executable, __file__, name],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        marks = json.loads(out)
        early, late = marks[f"after_{EARLY}"], marks[f"after_{N_TRIALS}"]
        growth[name] = late / early - 1
        trajectory = " ".join(f"{marks[f'after_{m}']:>6.0f}" for m in MARKS)
        print(f"{name:<12} {trajectory}  {growth[name]:>7.1%}")
    verdict = "meets" if growth["tuner"] < 0.20 else "misses"
    print(
        f"tuner growth {growth['tuner']:.1%} {verdict} the 20% target; "
        f"bare-keras grows {growth['bare-keras']:.1%}"
    )


if __name__ == "__main__":
    main()
