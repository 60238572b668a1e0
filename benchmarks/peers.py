"""Time to quality against peers: tuner, KerasTuner and plain Optuna at equal wall-clock budgets.

Four contenders per task and seed, each in a fresh subprocess (no TensorFlow state or
memory carried from one to the next), run interleaved: seed 1 a, b, c, d; seed 2 ...

- tuner: ``tuner.tune(spec)`` with the spec's own sampler, strategy, pruner and trial
  budget (its first trial the space's defaults, as every new study), a SQLite file, and
  ``timeout`` = the budget;
- kt-hyperband: KerasTuner's Hyperband (factor 3, ``max_epochs`` = the spec's epochs);
- kt-random: KerasTuner's RandomSearch;
- optuna-tpe: a plain Optuna script: TPE, no pruning, in-memory study, ``model.fit``.

Equal footing: the same data split and scaling (``tuner.trial.data.load_dataset`` with the
seed), the same model family and optimizers (``tuner.trial.models``/``tuner.trial.optim`` builders;
the peers compile and fit plainly), the same search space (the spec's, translated to
``hp.Float/Int/Choice`` with the same log scales, the 1-β and 2^k transforms and the
conditions), the same maximum epochs, and the same figure: the validation metric after a
trial's last epoch (KerasTuner's own score is the best epoch, which would favour it).

Every contender records (seconds since its clock started, value) after each trial; the
clock starts after the imports, before the data is loaded. A contender starts no trial
once its budget is spent; a trial running at that moment finishes, but counts only if it
ended within the budget. Printed per task: mean ± std over seeds of the best value within
25/50/100% of the budget, trials finished within the budget, and for tuner the median over
seeds of (seconds tuner needed to reach each peer's final best) / (the budget), "never"
counted as infinite. Target: below 0.33 against kt-hyperband.

Run: ``python benchmarks/peers.py`` (60 s per contender and seed, 5 seeds, 2 tasks: about
26 minutes per task on the shared 2-core machine, start-up and the last trial included);
``--tasks digits-mlp`` for one task, ``--budget 10 --seeds 1`` to try it out.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TASKS = ("digits-mlp", "diabetes-regression")  # studies/<task>.yaml
BUDGET_S = 60.0  # per contender and seed: 30 s left diabetes 2-3 trials each, too few to compare
CONTENDERS = ("tuner", "kt-hyperband", "kt-random", "optuna-tpe")
PEERS = CONTENDERS[1:]
CHECKPOINTS = (0.25, 0.5, 1.0)
TARGET_RATIO = 0.33  # tuner should reach kt-hyperband's final best in a third of its time
Record = tuple[float, float | None]  # (seconds since the clock started, value or None)


# -- in the child process: one contender, one task, one seed ---------------------------
@dataclass
class Clock:
    """The contender's budget, and what each trial produced and when."""

    budget: float
    started: float = field(default_factory=time.perf_counter)
    records: list[Record] = field(default_factory=list)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def spent(self) -> bool:
        return self.elapsed() >= self.budget

    def record(self, value: float | None) -> None:
        finite = value is not None and math.isfinite(value)
        self.records.append((self.elapsed(), float(value) if finite else None))


@dataclass(frozen=True)
class Task:
    """A shipped study spec (``studies/<name>.yaml``), as every contender reads it."""

    name: str
    resolved: Any  # tuner.specs.spec.ResolvedSpec

    @property
    def spec(self) -> Any:
        return self.resolved.spec

    @property
    def maximize(self) -> bool:
        return bool(self.spec.direction == "maximize")

    def searched(self) -> list[str]:
        return list(self.resolved.space.searched(tiers=self.resolved.tiers, fixed=self.fixed))

    @property
    def fixed(self) -> dict[str, Any]:
        return dict(self.spec.space.fixed)

    def dataset(self, seed: int) -> Any:
        from tuner.trial.data import load_dataset

        return load_dataset(self.spec.data, base_dir=self.resolved.base_dir, seed=seed)


def spec_path(task: str) -> Path:
    return ROOT / "studies" / f"{task}.yaml"


def load_task(task: str) -> Task:
    from tuner.specs.spec import load_spec

    return Task(task, load_spec(spec_path(task)))


def compiled_model(params: dict[str, Any], task: Task, dataset: Any) -> Any:
    """The model tuner would train for these values, compiled as tuner compiles it."""
    from tuner.trial.models import build_mlp
    from tuner.trial.optim import make_optimizer
    from tuner.trial.training import default_loss, default_metrics

    model = build_mlp(
        params, input_shape=dataset.input_shape, n_outputs=dataset.n_outputs, task=dataset.task
    )
    steps = math.ceil(len(dataset.x_train) / int(params["batch_size"]))
    optimizer = make_optimizer(params, steps_per_epoch=steps, epochs=task.spec.training.max_epochs)
    model.compile(
        optimizer=optimizer,
        loss=default_loss(dataset.task),
        metrics=default_metrics(dataset.task),
    )
    return model


def optuna_params(trial: Any, task: Task) -> dict[str, Any]:
    """The spec's space through ``trial.suggest_*``: same distributions, transforms, conditions."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    space = task.resolved.space
    searched = set(task.searched())
    values: dict[str, Any] = {}
    for name, param in space.parameters.items():
        if name not in searched or not space.is_active(name, values):
            values[name] = task.fixed.get(name, param.default)
            continue
        dist, stored = param.distribution(), param.stored_name(name)
        if isinstance(dist, CategoricalDistribution):
            raw = trial.suggest_categorical(stored, list(dist.choices))
        elif isinstance(dist, IntDistribution):
            raw = trial.suggest_int(stored, dist.low, dist.high, step=dist.step, log=dist.log)
        else:
            raw = trial.suggest_float(stored, dist.low, dist.high, step=dist.step, log=dist.log)
        values[name] = param.to_value(raw)
    return values


def kt_params(hp: Any, task: Task) -> dict[str, Any]:
    """The spec's space as KerasTuner hyperparameters, conditions as conditional scopes.

    A condition on a parameter that is not searched (fixed, or outside the tiers) is
    decided here, as KerasTuner can only scope on its own hyperparameters.
    """
    space = task.resolved.space
    searched = set(task.searched())
    values: dict[str, Any] = {}
    for name, param in space.parameters.items():
        condition = param.condition or {}
        scoped = {p: v for p, v in condition.items() if p in searched}
        static = {p: v for p, v in condition.items() if p not in searched}
        raw = None
        if name in searched and all(values.get(p) in v for p, v in static.items()):
            with _kt_conditions(hp, scoped):
                raw = _kt_value(hp, param.stored_name(name), param.distribution())
        # KerasTuner returns None for a hyperparameter whose condition does not hold.
        values[name] = task.fixed.get(name, param.default) if raw is None else param.to_value(raw)
    return values


def _kt_conditions(hp: Any, condition: dict[str, list[Any]]) -> contextlib.ExitStack:
    stack = contextlib.ExitStack()
    for parent, allowed in condition.items():
        stack.enter_context(hp.conditional_scope(parent, list(allowed)))
    return stack


def _kt_value(hp: Any, name: str, dist: Any) -> Any:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(dist, CategoricalDistribution):
        return hp.Choice(name, list(dist.choices))
    sampling = "log" if dist.log else "linear"
    if isinstance(dist, IntDistribution):
        # Under log sampling KerasTuner multiplies by the step; tuner's log ints step by 1.
        step = None if dist.log else dist.step
        return hp.Int(name, dist.low, dist.high, step=step, sampling=sampling)
    return hp.Float(name, dist.low, dist.high, step=dist.step, sampling=sampling)


def run_tuner(task: Task, seed: int, clock: Clock, tmp: Path) -> None:
    import optuna

    import tuner

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        complete = trial.state == optuna.trial.TrialState.COMPLETE
        clock.record(trial.value if complete else None)
        if clock.spent():  # the clock also counts tuner's set-up before its own timeout starts
            study.stop()

    tuner.tune(
        spec_path(task.name),
        seed=seed,
        timeout=clock.budget,
        storage=f"sqlite:///{tmp / 'tuner.db'}",
        callbacks=[after_trial],
    )


def run_optuna(task: Task, seed: int, clock: Clock, tmp: Path) -> None:
    """What a user would write with Optuna alone: TPE, no pruning, a plain ``fit``."""
    import keras
    import optuna

    dataset = task.dataset(seed)
    keras.utils.set_random_seed(seed)
    metric = task.spec.metric

    def objective(trial: optuna.Trial) -> float:
        params = optuna_params(trial, task)
        keras.backend.clear_session()  # as Optuna's Keras examples do
        model = compiled_model(params, task, dataset)
        history = model.fit(
            dataset.x_train,
            dataset.y_train,
            batch_size=int(params["batch_size"]),
            epochs=task.spec.training.max_epochs,
            validation_data=(dataset.x_val, dataset.y_val),
            verbose=0,
        )
        return float(history.history[metric][-1])

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        clock.record(trial.value)

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # NaN trials would log a warning each
    study = optuna.create_study(
        direction=task.spec.direction, sampler=optuna.samplers.TPESampler(seed=seed)
    )
    study.optimize(objective, timeout=clock.budget, callbacks=[after_trial])


def run_keras_tuner(kind: str, task: Task, seed: int, clock: Clock, tmp: Path) -> None:
    import keras_tuner as kt

    dataset = task.dataset(seed)
    metric = task.spec.metric
    max_epochs = task.spec.training.max_epochs

    class SpecHyperModel(kt.HyperModel):  # type: ignore[misc]
        def build(self, hp: Any) -> Any:
            return compiled_model(kt_params(hp, task), task, dataset)

        def fit(self, hp: Any, model: Any, *args: Any, **kwargs: Any) -> Any:
            return model.fit(*args, batch_size=int(kt_params(hp, task)["batch_size"]), **kwargs)

    base = kt.Hyperband if kind == "kt-hyperband" else kt.RandomSearch
    timed = _timed_tuner(base, clock, metric)
    options: dict[str, Any] = (
        # Iterations enough that the clock, not Hyperband, ends the search.
        {"max_epochs": max_epochs, "factor": 3, "hyperband_iterations": 1000}
        if kind == "kt-hyperband"
        else {"max_trials": 1_000_000}
    )
    search = timed(
        SpecHyperModel(),
        objective=kt.Objective(metric, direction="max" if task.maximize else "min"),
        seed=seed,
        directory=str(tmp),
        project_name=kind,
        overwrite=True,
        # A diverged draw (NaN score, counted as failed) is a result of the search, not a
        # reason to stop it; exceptions stop it (see _timed_tuner).
        max_consecutive_failed_trials=1_000_000,
        **options,
    )
    search.search(
        dataset.x_train,
        dataset.y_train,
        epochs=max_epochs,
        validation_data=(dataset.x_val, dataset.y_val),
        verbose=0,
    )


def _timed_tuner(base: type, clock: Clock, metric: str) -> type:
    """``base`` recording each trial's last-epoch value, and starting none once time is up."""
    import keras_tuner as kt

    class Timed(base):  # type: ignore[valid-type,misc]
        def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                histories = super().run_trial(trial, *args, **kwargs)
            except Exception as exc:
                # A diverged fit returns NaN and never raises: an exception is a broken
                # set-up, which KerasTuner would otherwise retry until the budget is gone.
                raise kt.errors.FatalError(f"trial {trial.trial_id} raised {exc!r}") from exc
            clock.record(histories[-1].history[metric][-1])
            return histories

        def on_trial_end(self, trial: Any) -> None:
            super().on_trial_end(trial)
            if clock.spent():
                # The oracle stops once it holds max_trials trials: cap it at those it has.
                self.oracle.max_trials = len(self.oracle.trials)

    return Timed


RUNNERS: dict[str, Callable[[Task, int, Clock, Path], None]] = {
    "tuner": run_tuner,
    "kt-hyperband": lambda *a: run_keras_tuner("kt-hyperband", *a),
    "kt-random": lambda *a: run_keras_tuner("kt-random", *a),
    "optuna-tpe": run_optuna,
}


def child(contender: str, task_name: str, seed: int, budget: float, out: Path) -> None:
    """Run one contender and write its records as JSON to ``out``."""
    from tuner.trial.keras_env import import_keras

    import_keras()  # TensorFlow's import is outside every contender's budget
    if contender.startswith("kt-"):
        import keras_tuner  # noqa: F401
    task = load_task(task_name)
    with tempfile.TemporaryDirectory() as tmp:
        clock = Clock(budget)
        RUNNERS[contender](task, seed, clock, Path(tmp))
        ended = clock.elapsed()
    out.write_text(json.dumps({"records": clock.records, "ended": ended}), encoding="utf-8")


# -- in the parent process: schedule, collect, summarise --------------------------------
def run_child(contender: str, task: str, seed: int, budget: float, tmp: Path) -> dict[str, Any]:
    out = tmp / f"{task}-{contender}-{seed}.json"
    command = [sys.executable, __file__, "--child", contender, task, str(seed), str(budget)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    subprocess.run([*command, str(out)], check=True, env=env, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def best_within(records: list[Record], seconds: float, maximize: bool) -> float | None:
    values = [v for t, v in records if t <= seconds and v is not None]
    if not values:
        return None
    return max(values) if maximize else min(values)


def time_to_reach(records: list[Record], target: float, budget: float, maximize: bool) -> float:
    """Seconds until a value at least as good as ``target``, within the budget; else inf."""
    for t, v in sorted(records, key=lambda r: r[0]):
        if t > budget:
            break
        if v is not None and (v >= target if maximize else v <= target):
            return t
    return math.inf


def cell(values: list[float | None], seeds: int) -> str:
    found = [v for v in values if v is not None]
    if not found:
        return f"{'none':>27}"
    spread = statistics.stdev(found) if len(found) > 1 else 0.0
    missing = "" if len(found) == seeds else f" ({len(found)}/{seeds})"
    return f"{f'{statistics.fmean(found):.4g} ± {spread:.2g}{missing}':>27}"


def summarize(
    task: str, runs: dict[str, list[dict[str, Any]]], budget: float, maximize: bool
) -> None:
    seeds = len(runs["tuner"])
    print(f"\n== {task}: {'max' if maximize else 'min'}imise, {budget:g} s each, {seeds} seeds ==")
    print(f"{'contender':<14}" + "".join(f"{f'@{c:.0%}':>27}" for c in CHECKPOINTS) + "  trials")
    for name, rows in runs.items():
        cells = [
            cell([best_within(r["records"], c * budget, maximize) for r in rows], seeds)
            for c in CHECKPOINTS
        ]
        trials = statistics.fmean(sum(1 for t, _ in r["records"] if t <= budget) for r in rows)
        print(f"{name:<14}" + "".join(cells) + f"  {trials:6.1f}")
    print("tuner's time to reach each peer's final best / budget (median over seeds):")
    for peer in PEERS:
        ratios = peer_ratios(runs["tuner"], runs[peer], budget, maximize)
        print(f"  {peer:<14}{ratio_text(ratios)}")
    hyperband = peer_ratios(runs["tuner"], runs["kt-hyperband"], budget, maximize)
    met = bool(hyperband) and statistics.median(hyperband) < TARGET_RATIO
    print(f"target (ratio against kt-hyperband < {TARGET_RATIO}): {'met' if met else 'missed'}")


def peer_ratios(
    tuner_runs: list[dict[str, Any]], peer_runs: list[dict[str, Any]], budget: float, maximize: bool
) -> list[float]:
    ratios = []
    for mine, theirs in zip(tuner_runs, peer_runs, strict=True):
        target = best_within(theirs["records"], budget, maximize)
        if target is not None:  # a peer with no result has nothing to reach
            ratios.append(time_to_reach(mine["records"], target, budget, maximize) / budget)
    return ratios


def ratio_text(ratios: list[float]) -> str:
    if not ratios:
        return "no peer result"
    median = statistics.median(ratios)
    shown = "never (>1)" if math.isinf(median) else f"{median:.2f}"
    per_seed = ", ".join("never" if math.isinf(r) else f"{r:.2f}" for r in ratios)
    return f"{shown:>10}   per seed: {per_seed}"


def machine_line() -> str:
    names = ("tuner", "optuna", "keras", "tensorflow", "keras-tuner")
    versions = " ".join(f"{n} {version(n)}" for n in names)
    return (
        f"# {date.today()} {platform.platform()} {platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}\n# {versions}"
    )


def load_line(when: str) -> str:
    return f"# load average at {when}: " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def bench(task: str, seeds: int, budget: float, tmp: Path) -> dict[str, list[dict[str, Any]]]:
    """Run every contender on every seed, interleaved; print the figures; return the runs."""
    started = time.perf_counter()
    maximize = load_task(task).maximize
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CONTENDERS}
    for seed in range(1, seeds + 1):  # KerasTuner treats seed 0 as "pick one at random"
        for name in CONTENDERS:
            runs[name].append(run_child(name, task, seed, budget, tmp))
            print(f"  {task} seed {seed} {name}: {len(runs[name][-1]['records'])} trials")
    summarize(task, runs, budget, maximize)
    print(f"wall time: {time.perf_counter() - started:.0f} s")
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--budget", type=float, default=BUDGET_S, help="seconds per contender and seed"
    )
    parser.add_argument("--save", type=Path, help="write every run's records to this JSON file")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        contender, task, seed, budget, out = args.child
        child(contender, task, int(seed), float(budget), Path(out))
        return
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress in logs
    print(machine_line())
    print(load_line("start"))
    with tempfile.TemporaryDirectory() as tmp:
        runs = {t: bench(t, args.seeds, args.budget, Path(tmp)) for t in args.tasks}
    print(load_line("end"))
    if args.save:
        args.save.write_text(json.dumps(runs), encoding="utf-8")


if __name__ == "__main__":
    main()
