"""The Python API: ``tuner.tune`` (Keras models, from a spec or pieces) and
``tuner.optimize`` (the same search machinery on a plain function, no Keras involved).

``optimize``'s objective ``f(params, report) -> float`` receives model values (β, not
1-β; a batch size, not its exponent) and may call ``report(value, step)`` to let the
pruner stop it. Cheap functions make benchmarks and tests of the strategies fast.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import optuna

from tuner import records
from tuner.errors import SpecError, StudyStopped
from tuner.outcome.results import TuneResult
from tuner.specs.shipped import find_file
from tuner.specs.space import SearchSpace, load_space, parse_tiers

Report = Callable[[float, int], None]
Objective = Callable[[dict[str, Any], Report], float]


def optimize(
    objective: Objective,
    *,
    space: SearchSpace | str | Path | Mapping[str, Any],
    n_trials: int,
    direction: Literal["minimize", "maximize"],
    strategy: str | Mapping[str, Any] = "flat",
    storage: str | None = None,
    study_name: str | None = None,
    sampler: str | optuna.samplers.BaseSampler = "tpe",
    pruner: str | optuna.pruners.BasePruner = "median",
    seed: int = 0,
    tiers: str | Iterable[int] | None = None,
    fixed: Mapping[str, Any] | None = None,
    timeout: float | None = None,
    callbacks: Sequence[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] = (),
    max_consecutive_failures: int = 5,
    progress: bool = False,
) -> TuneResult:
    """Search ``space`` for the best value of a plain function.

    ``n_trials`` is the study's total budget: a call on a study that already has trials
    (same ``storage`` and ``study_name``) runs the rest, so a second process making the
    same call joins as a worker and follows the recorded strategy and stage; together
    they run exactly ``n_trials``. Quiet unless asked: ``progress=True`` shows a bar on
    stderr; Optuna's own log lines are held back while it runs.

    Args:
        objective: ``f(params, report) -> float``; ``report(value, step)`` records an
            intermediate value and raises ``optuna.TrialPruned`` when the pruner says so.
            An exception fails that trial alone (its reason is stored on the trial).
        space: A :class:`~tuner.specs.space.SearchSpace`, a ``search_spaces/*.yaml`` file,
            a shipped space's name (``"importance-ranked"``, see ``tuner space list``),
            or a mapping in that file's form (``{"parameters": {...}}``).
        n_trials: Total trials of the study.
        direction: ``"minimize"`` or ``"maximize"``.
        strategy: ``"flat"``, ``"staged"``, or ``{"name": "staged", "options": {...}}``
            (options: :class:`~tuner.search.strategy.StagedOptions`).
        storage: A database URL (``sqlite:///study.db``, ``postgresql://...``); None keeps
            the study in memory. A stored study needs ``study_name``.
        study_name: The study's name in storage (a second call with it resumes or joins).
        sampler: A sampler name as in specs (``tpe``, ``random``, ...) or a sampler.
        pruner: A pruner name as in specs (``median``, ``none``, ...) or a pruner.
        seed: Seed of the sampler (offset by the trials already run when resuming).
        tiers: Tiers to search (``"1-2"``); the rest stay at their defaults.
        fixed: Values held fixed instead of searched, by parameter name.
        timeout: Seconds for this call.
        callbacks: Optuna callbacks ``(study, trial)`` after each trial; one may call
            ``study.stop()``.
        max_consecutive_failures: Stop (:class:`~tuner.errors.StudyStopped`) after this
            many failed trials in a row: a broken function should not burn the budget.
        progress: Show a progress bar (a line per trial when stderr is not a terminal).

    Returns:
        A :class:`~tuner.outcome.results.TuneResult`: ``best_value``, ``best_params`` in
        model values (β, a batch size) and ``study``, the Optuna study.

    Example:
        >>> import tuner
        >>> def f(params, report):
        ...     return (math.log10(params["learning_rate"]) + 2) ** 2
        >>> result = tuner.optimize(f, space="search_spaces/linear-sgd.yaml", n_trials=40,
        ...                         direction="minimize", strategy="staged",
        ...                         storage="sqlite:///bench.db", study_name="quad")
        >>> result.best_value, result.best_params["learning_rate"]
    """
    from tuner.execution.run import quiet_optuna
    from tuner.execution.worker import CircuitBreaker, run_worker
    from tuner.outcome.results import summarize
    from tuner.search.samplers import make_pruner, make_sampler
    from tuner.search.strategy import make_strategy
    from tuner.storage import open_storage
    from tuner.storage.queue import FINISHED, reserve_trials

    if direction not in ("minimize", "maximize"):
        raise SpecError(f"direction must be 'minimize' or 'maximize', got {direction!r}")
    if storage is not None and not study_name:
        raise SpecError(
            "optimize(storage=...) needs study_name=...: without a name every call would "
            "start a new study instead of resuming or joining the stored one"
        )
    resolved = _space(space)
    name, options = _strategy(strategy)
    chosen = parse_tiers(tiers if isinstance(tiers, str) or tiers is None else list(tiers))
    search = make_strategy(
        name, options, space=resolved, n_trials=n_trials, tiers=chosen, fixed=fixed
    )
    with quiet_optuna():
        study = optuna.create_study(
            storage=open_storage(storage) if storage is not None else None,
            study_name=study_name,
            direction=direction,
            load_if_exists=True,
            pruner=pruner
            if isinstance(pruner, optuna.pruners.BasePruner)
            else make_pruner(pruner, {}),
        )
    search.prepare(study)
    if records.SPACE not in study.user_attrs:  # reports set declared tiers beside measured ranks
        study.set_user_attr(records.SPACE, resolved.model_dump(mode="json"))
    finished = len(study.get_trials(deepcopy=False, states=FINISHED))
    # A resumed study must not replay the random start-up points of the first run.
    study.sampler = (
        sampler
        if isinstance(sampler, optuna.samplers.BaseSampler)
        else make_sampler(
            sampler,
            {},
            seed=seed + finished,
            space=resolved,
            searched=resolved.searched(tiers=chosen, fixed=fixed),
        )
    )
    left = reserve_trials(study, total=n_trials)
    breaker = CircuitBreaker(limit=max_consecutive_failures)
    shown = _progress_bar(left, direction) if progress else None
    try:
        with quiet_optuna():
            run_worker(
                study,
                _trial_runner(objective, search),
                callbacks=[breaker, *callbacks, *([shown] if shown else [])],
                deadline=None if timeout is None else time.monotonic() + timeout,
            )
    finally:
        if shown is not None:
            shown.close()
    if breaker.tripped:
        raise StudyStopped(
            f"stopped after {breaker.limit} consecutive failed trials (last: "
            f"{breaker.last_reason}); fix the objective, then call optimize again"
        )
    return summarize(study, storage_url=storage or "memory")


def _trial_runner(objective: Objective, search: Any) -> Callable[[optuna.Trial], float]:
    """The Optuna objective around ``f(params, report)``: the strategy suggests values."""

    def run_trial(trial: optuna.Trial) -> float:
        params = search.suggest(trial)

        def report(value: float, step: int) -> None:
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at step {step}")

        return objective(params, report)

    return run_trial


def _progress_bar(total: int, direction: str) -> Any:
    from tuner.cli.progress import TrialProgress

    return TrialProgress(total=total, direction=direction)


def _space(space: SearchSpace | str | Path | Mapping[str, Any]) -> SearchSpace:
    from tuner.specs.validation import validate_model

    if isinstance(space, SearchSpace):
        return space
    if isinstance(space, (str, Path)):
        return load_space(space)
    return validate_model(SearchSpace, dict(space), source="space")


def _strategy(strategy: str | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    from tuner.specs.spec import StrategySpec
    from tuner.specs.validation import validate_model

    raw = {"name": strategy} if isinstance(strategy, str) else dict(strategy)
    parsed = validate_model(StrategySpec, raw, source="strategy")
    return parsed.name, parsed.options


def tune(
    spec: str | Path | None = None,
    *,
    space: str | Path | None = None,
    data: Sequence[Any] | Mapping[str, Any] | str | None = None,
    build_model: Callable[..., Any] | None = None,
    family: str = "mlp",
    metric: str | None = None,
    direction: str | None = None,
    metrics: Sequence[Mapping[str, str]] | None = None,
    constraints: Mapping[str, Mapping[str, float]] | None = None,
    max_epochs: int | None = None,
    training: Mapping[str, Any] | None = None,
    n_trials: int | None = None,
    timeout: float | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    seed: int | None = None,
    tiers: str | Sequence[int] | None = None,
    sampler: str | None = None,
    pruner: str | None = None,
    strategy: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: Sequence[Callable[..., None]] = (),
) -> TuneResult:
    """Run a study and return its best configuration.

    Give either ``spec`` (a ``studies/*.yaml`` file or a shipped spec's name such as
    ``"digits-mlp"``; keyword arguments override it) or the pieces: ``space`` (a
    ``search_spaces/*.yaml`` file or a shipped space's name such as
    ``"importance-ranked"``), ``data`` (arrays
    ``(x_train, y_train, x_val, y_val)``, a dataset name such as ``"digits"``, or a data
    mapping as in a spec, e.g. ``{"source": "csv", "path": "houses.csv", "target": "price"}``)
    and optionally ``build_model(params, *, input_shape, n_outputs, task) -> keras.Model``,
    which receives a plain mapping of chosen values. The model is compiled, trained,
    pruned and recorded exactly as the built-in families are. ``strategy`` (``"flat"`` or
    ``"staged"``, see :mod:`tuner.search.strategy`) overrides the spec's.

    ``metrics`` (``[{"name": "val_accuracy", "direction": "maximize"}, {"name": "n_params",
    "direction": "minimize"}]``) optimizes several measures at once: ``result.pareto`` then
    holds the Pareto front and ``result.best_*`` raise. ``constraints`` (``{"n_params":
    {"max": 2e5}}``) makes trials outside the limits infeasible: never best, never on the
    front, and pruned before training when the limit is known then.

    ``training`` sets keys of the spec's ``training`` section, e.g. the GPU settings
    ``{"mixed_precision": True, "jit_compile": "auto", "memory_growth": True,
    "gpu_memory_limit_mb": 4096}`` (recorded on the study; ignored on a CPU, with one
    logged line).

    Example:
        >>> import tuner
        >>> result = tuner.tune("studies/digits-mlp.yaml", n_trials=20)
        >>> result = tuner.tune(space="search_spaces/importance-ranked.yaml",
        ...                     data=(x_train, y_train, x_val, y_val), build_model=my_build,
        ...                     metric="val_accuracy", direction="maximize", n_trials=20,
        ...                     storage="sqlite:///my.db")
        >>> result.best_params, result.best_value, result.study
        >>> result = tuner.tune("studies/digits-mlp.yaml", n_trials=20,
        ...                     metrics=[{"name": "val_accuracy", "direction": "maximize"},
        ...                              {"name": "n_params", "direction": "minimize"}],
        ...                     constraints={"latency_ms": {"max": 5}})
        >>> [(t.number, t.values) for t in result.pareto]
        >>> result = tuner.tune("studies/digits-mlp.yaml", training={"mixed_precision": True})
    """
    from tuner.execution.run import execute, gpu_options, prepare_run
    from tuner.execution.supervisor import detect_gpus
    from tuner.outcome.results import summarize
    from tuner.specs.spec import load_spec, resolve_spec
    from tuner.storage import resolve_storage_url
    from tuner.trial.data import dataset_from_arrays
    from tuner.trial.keras_env import gpu_notice

    tier_text = (
        ",".join(map(str, tiers)) if tiers is not None and not isinstance(tiers, str) else tiers
    )
    arrays = data if isinstance(data, Sequence) and not isinstance(data, str) else None
    if spec is not None:
        if space is not None or data is not None:
            raise SpecError("give either a spec file or space= and data=, not both")
        resolved = load_spec(spec, tiers=tier_text)
        raw = resolved.spec.model_dump(mode="json")
        base_dir = resolved.base_dir
    else:
        if space is None or data is None:
            raise SpecError("tune() needs a spec file, or both space= and data=")
        raw = _spec_from_pieces(space=space, data=data, arrays=arrays is not None, family=family)
        base_dir = Path.cwd()
    _apply_overrides(
        raw,
        metric=metric,
        direction=direction,
        metrics=metrics,
        constraints=constraints,
        max_epochs=max_epochs,
        training=training,
        sampler=sampler,
        pruner=pruner,
        strategy=strategy,
        builder=build_model,
    )
    resolved = resolve_spec(raw, base_dir=base_dir, source=str(spec or "tune()"), tiers=tier_text)
    dataset = None
    if arrays is not None:
        if len(arrays) != 4:
            raise SpecError("data= as arrays must be (x_train, y_train, x_val, y_val)")
        dataset = dataset_from_arrays(*arrays, task=resolved.spec.data.task)
    url = resolve_storage_url(storage, spec_storage=resolved.spec.storage)
    prepared = prepare_run(
        resolved,
        storage_url=url,
        study_name=study_name,
        n_trials=n_trials,
        seed=seed,
        resume=resume,
        overwrite=overwrite,
        dataset=dataset,
        builder=build_model,
    )
    notice = gpu_notice(gpu_options(resolved.spec.training), has_gpu=bool(detect_gpus()))
    if notice:
        logging.getLogger("tuner").warning("Note: %s.", notice)
    execute(prepared, timeout=timeout, callbacks=list(callbacks))
    return summarize(prepared.study, storage_url=url)


def _spec_from_pieces(*, space: str | Path, data: Any, arrays: bool, family: str) -> dict[str, Any]:
    if arrays:
        data_section: dict[str, Any] = {"source": "arrays"}
    elif isinstance(data, str):
        data_section = {"source": data}
    else:
        data_section = dict(data)
    name = Path(str(space)).stem
    return {
        "name": f"{name}-{data_section.get('source', 'data')}".replace(":", "-")[:128],
        "data": data_section,
        "model": {"family": family},
        "space": {"file": str(find_file(space, kind="search_spaces", base_dir=Path.cwd()))},
    }


def _apply_overrides(raw: dict[str, Any], *, builder: Any, **values: Any) -> None:
    # One form of objectives wins whole: a spec's `metrics` give way to metric=/direction=,
    # and its metric + direction to metrics=.
    if values["metric"] is not None or values["direction"] is not None:
        raw.pop("metrics", None)
    if values["metrics"] is not None:
        raw.pop("metric", None)
        raw.pop("direction", None)
        raw["metrics"] = [dict(m) for m in values["metrics"]]
    if values["constraints"] is not None:
        raw["constraints"] = {k: dict(v) for k, v in values["constraints"].items()}
    for key in ("metric", "direction"):
        if values[key] is not None:
            raw[key] = values[key]
    if values["training"] is not None:
        raw.setdefault("training", {}).update(values["training"])
    if values["max_epochs"] is not None:
        raw.setdefault("training", {})["max_epochs"] = values["max_epochs"]
    for key in ("sampler", "pruner", "strategy"):
        if values[key] is not None:
            raw[key] = {"name": values[key]}
    if builder is not None:
        # Recorded by name so the study says which builder made its models.
        raw.setdefault("model", {})["builder"] = f"{builder.__module__}:{builder.__qualname__}"
