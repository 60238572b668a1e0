"""``tuner.optimize``: the search machinery on a plain function ``f(params, report) -> float``.

The function receives model values (β, not 1-β; a batch size, not its exponent) and may
call ``report(value, step)`` to let the pruner stop it. Cheap functions make benchmarks and
tests of the strategies fast.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import optuna

from tuner import records
from tuner.errors import SpecError, StudyStopped
from tuner.execution.logs import python_entry_point
from tuner.outcome.results import TuneResult
from tuner.specs.space import SearchSpace, load_space, parse_tiers

Report = Callable[[float, int], None]
Objective = Callable[[dict[str, Any], Report], float]


@python_entry_point
def optimize(
    objective: Objective,
    *,
    space: SearchSpace | str | Path | Mapping[str, Any],
    direction: Literal["minimize", "maximize"],
    n_trials: int | None = None,
    budget_epochs: int | None = None,
    strategy: str | Mapping[str, Any] = "flat",
    storage: str | None = None,
    study_name: str | None = None,
    sampler: str | optuna.samplers.BaseSampler = "tpe-explore",
    pruner: str | optuna.pruners.BasePruner = "asha",
    seed: int = 0,
    tiers: str | Iterable[int] | None = None,
    fixed: Mapping[str, Any] | None = None,
    timeout: float | None = None,
    callbacks: Sequence[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] = (),
    max_consecutive_failures: int = 5,
    progress: bool = False,
    baseline_first: bool = True,
) -> TuneResult:
    """Search ``space`` for the best value of a plain function.

    The budget is a trial count (``n_trials``), epochs (``budget_epochs``: one ``report()``
    step is one epoch), a time (``timeout``), or several of them: the first one spent ends
    the study. ``n_trials`` is the study's total: a call on a study that already has trials
    (same ``storage`` and ``study_name``) runs the rest, so a second process making the
    same call joins as a worker and follows the recorded strategy and stage; together
    they run exactly ``n_trials``. Quiet unless asked: ``progress=True`` shows a bar on
    stderr; Optuna's and tuner's log records go through standard ``logging`` (see
    :func:`tuner.execution.logs.through_logging`), shown once the caller configures it,
    e.g. ``logging.basicConfig(level=logging.INFO)``.

    Args:
        objective: ``f(params, report) -> float``; ``report(value, step)`` records an
            intermediate value and raises ``optuna.TrialPruned`` when the pruner says so.
            An exception fails that trial alone (its reason is stored on the trial).
        space: A :class:`~tuner.specs.space.SearchSpace`, a ``search_spaces/*.yaml`` file,
            a shipped space's name (``"importance-ranked"``, see ``tuner space list``),
            or a mapping in that file's form (``{"parameters": {...}}``).
        n_trials: Total trials of the study.
        budget_epochs: Total epochs (``report()`` steps) of the study's trials.
        direction: ``"minimize"`` or ``"maximize"``.
        strategy: ``"flat"``, ``"staged"``, or ``{"name": "staged", "options": {...}}``
            (options: :class:`~tuner.search.strategy.StagedOptions`).
        storage: A database URL (``sqlite:///study.db``, ``postgresql://...``); None keeps
            the study in memory. A stored study needs ``study_name`` (refused with
            :class:`~tuner.errors.SpecError` otherwise).
        study_name: The study's name in storage (a second call with it resumes or joins).
        sampler: A sampler name as in specs (``tpe-explore``, the default: TPE with a
            third of its proposals uniformly random; ``tpe``, ``random``, ...) or a sampler.
        pruner: A pruner name as in specs (``asha``, the default: successive halving with
            rungs at steps 4, 12, 36, ...; ``median``, ``none``, ...) or a pruner.
        seed: Seed of the sampler (offset by the trials already run when resuming).
        tiers: Tiers to search (``"1-2"``); the rest stay at their defaults.
        fixed: Values held fixed instead of searched, by parameter name.
        timeout: Seconds for this call.
        callbacks: Optuna callbacks ``(study, trial)`` after each trial; one may call
            ``study.stop()``.
        max_consecutive_failures: Stop (:class:`~tuner.errors.StudyStopped`) after this
            many failed trials in a row: a broken function should not burn the budget.
        progress: Show a progress bar (a line per trial when stderr is not a terminal).
        baseline_first: A new study's first trial takes the space's defaults (a sound
            baseline after one trial; the rest of the search is measured against it).

    Returns:
        A :class:`~tuner.outcome.results.TuneResult`: ``best_value``, ``best_params`` (the
        values the best trial searched, as the model uses them: β, a batch size) and
        ``study``, the Optuna study.

    Example:
        >>> import math
        >>> import tuner
        >>> def f(params, report):
        ...     return (math.log10(params["learning_rate"]) + 2) ** 2
        >>> result = tuner.optimize(f, space="search_spaces/linear-sgd.yaml", n_trials=40,
        ...                         direction="minimize", strategy="staged",
        ...                         storage="sqlite:///bench.db", study_name="quad")
        >>> result.best_value, result.best_params["learning_rate"]
        (0.0, 0.01)
    """
    from tuner.execution.epoch_budget import EpochBudget
    from tuner.execution.worker import CircuitBreaker, run_worker
    from tuner.outcome.results import summarize
    from tuner.search.described import record_search
    from tuner.search.samplers import make_pruner, make_sampler
    from tuner.search.start import enqueue_start, probes_apply
    from tuner.search.strategy import make_strategy
    from tuner.storage import open_storage
    from tuner.storage.queue import FINISHED, reserve_trials

    if direction not in ("minimize", "maximize"):
        raise SpecError(f"direction must be 'minimize' or 'maximize', got {direction!r}")
    _check_budget(n_trials=n_trials, budget_epochs=budget_epochs, timeout=timeout)
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
    study = optuna.create_study(
        storage=open_storage(storage) if storage is not None else None,
        study_name=study_name,
        direction=direction,
        load_if_exists=True,
        pruner=pruner if isinstance(pruner, optuna.pruners.BasePruner) else make_pruner(pruner, {}),
    )
    search.prepare(study)
    record_search(
        study, strategy=name, sampler=sampler, sampler_options={}, pruner=pruner, pruner_options={}
    )
    if records.SPACE not in study.user_attrs:  # reports set declared tiers beside measured ranks
        study.set_user_attr(records.SPACE, resolved.model_dump(mode="json"))
    grid = sampler == "grid" or isinstance(sampler, optuna.samplers.GridSampler)
    if baseline_first and not grid and not study.get_trials(deepcopy=False):
        probes = probes_apply(strategy=name, sampler=sampler)
        enqueue_start(study, resolved, tiers=chosen, fixed=fixed, probes=probes, n_trials=n_trials)
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
    left = None if n_trials is None else reserve_trials(study, total=n_trials)
    breaker = CircuitBreaker(limit=max_consecutive_failures)
    spent = [] if budget_epochs is None else [EpochBudget(budget_epochs)]
    shown = _progress_bar(left, direction) if progress else None
    try:
        run_worker(
            study,
            _trial_runner(objective, search),
            callbacks=[breaker, *spent, *callbacks, *([shown] if shown else [])],
            deadline=None if timeout is None else time.monotonic() + timeout,
            spend=n_trials is not None,
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
    from tuner.search.start import spared

    def run_trial(trial: optuna.Trial) -> float:
        params = search.suggest(trial)
        prunable = not spared(trial)

        def report(value: float, step: int) -> None:
            trial.report(value, step)
            if trial.should_prune() and prunable:  # asked all the same: ASHA records rungs
                raise optuna.TrialPruned(f"pruned at step {step}")

        return objective(params, report)

    return run_trial


def _check_budget(
    *, n_trials: int | None, budget_epochs: int | None, timeout: float | None
) -> None:
    for name, value in (("n_trials", n_trials), ("budget_epochs", budget_epochs)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise SpecError(f"{name} must be a whole number of at least 1, got {value!r}")
    if timeout is not None and not timeout > 0:
        raise SpecError(f"timeout must be a number of seconds above 0, got {timeout!r}")
    if n_trials is None and budget_epochs is None and timeout is None:
        raise SpecError(
            "optimize() needs a budget: give n_trials=, budget_epochs= or timeout= (or several)"
        )


def _progress_bar(total: int | None, direction: str) -> Any:
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
