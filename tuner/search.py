"""``tuner.optimize``: the search machinery on a plain function, no Keras involved.

The same strategies, samplers, pruners and storage as ``tuner run``, around an objective
``f(params, report) -> float`` that receives model values (β, not 1-β; a batch size, not
its exponent) and may call ``report(value, step)`` to let the pruner stop it. Cheap
functions make benchmarks and tests of the strategies fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from tuner import records
from tuner.errors import SpecError
from tuner.space import SearchSpace, load_space, parse_tiers

Report = Callable[[float, int], None]
Objective = Callable[[dict[str, Any], Report], float]
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def optimize(
    objective: Objective,
    *,
    space: SearchSpace | str | Path | Mapping[str, Any],
    n_trials: int,
    direction: str,
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
) -> optuna.Study:
    """Search ``space`` for the best value of a plain function; return the Optuna study.

    ``n_trials`` is the study's total budget: a call on a study that already has trials
    (same ``storage`` and ``study_name``) runs the rest, so a second process making the
    same call joins as a worker and follows the recorded strategy and stage.

    Args:
        objective: ``f(params, report) -> float``; ``report(value, step)`` records an
            intermediate value and raises ``optuna.TrialPruned`` when the pruner says so.
        space: A :class:`~tuner.space.SearchSpace`, a ``search_spaces/*.yaml`` file, or a
            mapping in that file's form (``{"parameters": {...}}``).
        n_trials: Total trials of the study.
        direction: ``"minimize"`` or ``"maximize"``.
        strategy: ``"flat"``, ``"staged"``, or ``{"name": "staged", "options": {...}}``
            (options: :class:`~tuner.strategy.StagedOptions`).
        storage: A database URL (``sqlite:///study.db``, ``postgresql://...``); None keeps
            the study in memory.
        study_name: The study's name in storage (needed to resume or join).
        sampler: A sampler name as in specs (``tpe``, ``random``, ...) or a sampler.
        pruner: A pruner name as in specs (``median``, ``none``, ...) or a pruner.
        seed: Seed of the sampler (offset by the trials already run when resuming).
        tiers: Tiers to search (``"1-2"``); the rest stay at their defaults.
        fixed: Values held fixed instead of searched, by parameter name.
        timeout: Seconds for this call.
        callbacks: Optuna callbacks ``(study, trial)`` after each trial.

    Example:
        >>> import tuner
        >>> def f(params, report):
        ...     return (math.log10(params["learning_rate"]) + 2) ** 2
        >>> study = tuner.optimize(f, space="search_spaces/linear-sgd.yaml", n_trials=40,
        ...                        direction="minimize", strategy="staged",
        ...                        storage="sqlite:///bench.db", study_name="quad")
        >>> study.best_value
    """
    from tuner.samplers import make_pruner, make_sampler
    from tuner.storage import open_storage
    from tuner.strategy import make_strategy

    if direction not in ("minimize", "maximize"):
        raise SpecError(f"direction must be 'minimize' or 'maximize', got {direction!r}")
    resolved = _space(space)
    name, options = _strategy(strategy)
    search = make_strategy(
        name,
        options,
        space=resolved,
        n_trials=n_trials,
        tiers=parse_tiers(tiers if isinstance(tiers, str) or tiers is None else list(tiers)),
        fixed=fixed,
    )
    study = optuna.create_study(
        storage=open_storage(storage) if storage is not None else None,
        study_name=study_name,
        direction=direction,
        load_if_exists=True,
        pruner=pruner if isinstance(pruner, optuna.pruners.BasePruner) else make_pruner(pruner, {}),
    )
    search.prepare(study)
    if records.SPACE not in study.user_attrs:  # reports set declared tiers beside measured ranks
        study.set_user_attr(records.SPACE, resolved.model_dump(mode="json"))
    finished = len(study.get_trials(deepcopy=False, states=FINISHED))
    # A resumed study must not replay the random start-up points of the first run.
    study.sampler = (
        sampler
        if isinstance(sampler, optuna.samplers.BaseSampler)
        else make_sampler(sampler, {}, seed=seed + finished, space=resolved)
    )

    def run_trial(trial: optuna.Trial) -> float:
        params = search.suggest(trial)

        def report(value: float, step: int) -> None:
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at step {step}")

        return objective(params, report)

    remaining = max(0, n_trials - finished)
    if remaining:
        # Several workers on one study: stop once the study as a whole has its trials.
        total = optuna.study.MaxTrialsCallback(n_trials, states=None)
        study.optimize(
            run_trial, n_trials=remaining, timeout=timeout, callbacks=[total, *callbacks]
        )
    return study


def _space(space: SearchSpace | str | Path | Mapping[str, Any]) -> SearchSpace:
    from tuner._validation import validate_model

    if isinstance(space, SearchSpace):
        return space
    if isinstance(space, (str, Path)):
        return load_space(space)
    return validate_model(SearchSpace, dict(space), source="space")


def _strategy(strategy: str | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    from tuner._validation import validate_model
    from tuner.spec import StrategySpec

    raw = {"name": strategy} if isinstance(strategy, str) else dict(strategy)
    parsed = validate_model(StrategySpec, raw, source="strategy")
    return parsed.name, parsed.options
