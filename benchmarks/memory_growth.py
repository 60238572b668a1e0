"""Memory over a long study: 30 short trials, resident memory after 5 and 30.

Three contenders, each in a fresh process so none inherits another's memory:

- tuner: tuner's runner on digits in one process (real Keras training, SQLite storage,
  pruning callback), which clears Keras state after every trial;
- tuner-recycled: the same study through ``tuner run --recycle-after 10``: one worker
  process at a time, replaced after every 10 trials;
- bare-keras: the same 30 model builds and fits in a plain loop that never clears
  Keras state, the way a hand-written script often does.

Run: ``python benchmarks/memory_growth.py`` (about 8 minutes on 2 cores). Two tables:
resident memory after trials 5, 10, ... 30 read by the process itself (tuner and
bare-keras), and the peak resident memory of the process that ran each of those trials,
as tuner records it with every trial (both tuner contenders). The figure that matters is
tuner's growth from trial 5 to trial 30 (target: under 20%).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
N_TRIALS, EARLY = 30, 5
MARKS = (5, 10, 15, 20, 25, 30)  # trials after which resident memory is read
PARAMS = {"units": 64, "layers": 2, "batch_size": 64, "learning_rate": 1e-3}
RECYCLE_AFTER = 10
SPEC = {
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


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _peak_marks(storage_url: str) -> dict[str, float]:
    """The peak resident memory each marked trial recorded (of the process that ran it)."""
    import optuna

    trials = optuna.load_study(study_name=SPEC["name"], storage=storage_url).trials
    return {f"after_{t.number + 1}": t.user_attrs["peak_rss_mb"] for t in trials}


def run_tuner() -> dict[str, dict[str, float]]:
    from tuner.execution.run import execute, prepare_run
    from tuner.specs.spec import resolve_spec

    marks: dict[str, float] = {}

    def measure(study, trial) -> None:
        if trial.number + 1 in MARKS:
            marks[f"after_{trial.number + 1}"] = _rss_mb()

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/memory.db"
        resolved = resolve_spec(SPEC, base_dir=ROOT, source="memory benchmark")
        execute(prepare_run(resolved, storage_url=url), callbacks=[measure])
        return {"rss": marks, "peak": _peak_marks(url)}


def run_tuner_recycled() -> dict[str, dict[str, float]]:
    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "memory.yaml"
        spec.write_text(yaml.safe_dump(SPEC), encoding="utf-8")
        url = f"sqlite:///{tmp}/memory.db"
        command = ["run", str(spec), "--storage", url, "--recycle-after", str(RECYCLE_AFTER)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        subprocess.run([sys.executable, "-m", "tuner", *command], check=True, env=env, cwd=ROOT)
        return {"peak": _peak_marks(url)}


def run_bare_keras() -> dict[str, dict[str, float]]:
    from tuner.specs.spec import DataSpec
    from tuner.trial.data import load_dataset
    from tuner.trial.training import train

    dataset = load_dataset(DataSpec(source="digits"), base_dir=ROOT, seed=0)
    marks: dict[str, float] = {}
    for number in range(1, N_TRIALS + 1):
        train(PARAMS, dataset, epochs=3, seed=number)  # no clear_session between models
        if number in MARKS:
            marks[f"after_{number}"] = _rss_mb()
    return {"rss": marks}


CONTENDERS = {
    "tuner": run_tuner,
    "tuner-recycled": run_tuner_recycled,
    "bare-keras": run_bare_keras,
}


def _table(title: str, results: dict[str, dict[str, float]]) -> dict[str, float]:
    """Print one table of marks; returns each contender's growth from trial 5 to 30."""
    print(f"\n{title}")
    print(f"{'contender':<15} " + " ".join(f"{f'@{m}':>6}" for m in MARKS) + "  growth 5->30")
    growth = {}
    for name, marks in results.items():
        early, late = marks[f"after_{EARLY}"], marks[f"after_{N_TRIALS}"]
        growth[name] = late / early - 1
        trajectory = " ".join(f"{marks[f'after_{m}']:>6.0f}" for m in MARKS)
        print(f"{name:<15} {trajectory}  {growth[name]:>7.1%}")
    return growth


def main() -> None:
    if len(sys.argv) == 2:  # child process: one contender
        print(json.dumps(CONTENDERS[sys.argv[1]]()))
        return
    import optuna

    from tuner.trial.keras_env import import_keras

    keras = import_keras()

    print(
        f"# {platform.node()} {platform.machine()} python {platform.python_version()} "
        f"keras {keras.__version__} optuna {optuna.__version__}"
    )
    results = {}
    for name in CONTENDERS:
        child = subprocess.run(
            [sys.executable, __file__, name], capture_output=True, text=True, check=True, cwd=ROOT
        )
        results[name] = json.loads(child.stdout.strip().splitlines()[-1])
    rss = _table(
        "Resident memory (MiB) after trial k, read by the process",
        {name: r["rss"] for name, r in results.items() if "rss" in r},
    )
    peak = _table(
        "Peak resident memory (MiB) of the process that ran trial k, as tuner records it",
        {name: r["peak"] for name, r in results.items() if "peak" in r},
    )
    for name, growth in (("tuner", rss["tuner"]), ("tuner-recycled", peak["tuner-recycled"])):
        verdict = "meets" if growth < 0.20 else "misses"
        print(f"{name} growth {growth:.1%} {verdict} the 20% target")
    print(f"bare-keras grows {rss['bare-keras']:.1%}")


if __name__ == "__main__":
    main()
