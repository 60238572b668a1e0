"""Search strategies: which parameters a trial searches, and in which ranges.

- ``flat`` (the default): every selected tier in every trial, the rest at defaults.
- ``staged``: stage 1 searches tier 1 with the rest at their defaults; each later stage
  adds the next tier. At each boundary, importance (with bootstrap intervals,
  :mod:`tuner.search.importance`) is measured on the trials so far; parameters whose interval
  lies entirely below ``freeze_below`` are frozen at their best trial's value for the
  rest of the study, and numeric parameters whose interval lies entirely above
  ``narrow_above`` are searched in a range around the best trials. See
  :mod:`tuner.search.strategy._staged` for how workers agree.

This package knows nothing of Keras; :func:`tuner.optimize` runs strategies on plain
functions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import optuna

from tuner import records
from tuner.errors import SpecError
from tuner.search.importance import min_trials_for
from tuner.search.strategy._decide import effective_values
from tuner.search.strategy._describe import STAGE_COLUMNS, stage_cells, stage_line
from tuner.search.strategy._flat import FlatStrategy, Strategy
from tuner.search.strategy._staged import StagedStrategy
from tuner.specs.param import ALL_TIERS
from tuner.specs.space import SearchSpace
from tuner.specs.strategies import STRATEGIES, StagedOptions, parse_staged_options

__all__ = [
    "STAGE_COLUMNS",
    "STRATEGIES",
    "FlatStrategy",
    "StagedOptions",
    "StagedStrategy",
    "Strategy",
    "effective_values",
    "make_strategy",
    "stage_cells",
    "stage_decisions",
    "stage_line",
]


def make_strategy(
    name: str,
    options: Mapping[str, Any] | None = None,
    *,
    space: SearchSpace,
    n_trials: int | None,
    tiers: Iterable[int] = ALL_TIERS,
    fixed: Mapping[str, Any] | None = None,
) -> Strategy:
    """A strategy by name; ``staged`` plans its stages from ``n_trials`` (the study's total),
    or, for a budget in time or epochs (``n_trials=None``), from what importance needs.

    Example:
        >>> strategy = make_strategy("staged", {"budget": [1, 2]}, space=space, n_trials=60,
        ...                          tiers={1, 2})
        >>> [(stage.tiers, stage.start, stage.end) for stage in strategy.plan]
        [([1], 0, 20), ([1, 2], 20, None)]
    """
    fixed = dict(fixed or {})
    if name == "flat":
        if options:
            raise SpecError(f"the flat strategy takes no options, got {sorted(options)}")
        return FlatStrategy(space=space, tiers=frozenset(tiers), fixed=fixed)
    if name != "staged":
        raise SpecError(f"strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")
    parsed = parse_staged_options(options)
    return StagedStrategy(
        space=space,
        n_trials=n_trials or _trials_importance_needs(space, tiers, fixed, parsed),
        tiers=frozenset(tiers),
        fixed=fixed,
        options=parsed,
    )


def _trials_importance_needs(
    space: SearchSpace, tiers: Iterable[int], fixed: Mapping[str, Any], options: StagedOptions
) -> int:
    """A trial plan for a budget given in time or epochs: each stage but the last gets the
    trials its importance needs, and the last runs until the time or the epochs are spent.

    The stage of a trial must follow from its number alone (workers agree without talking),
    so a budget that is not a trial count is planned as one: the most trials any stage's
    importance needs, times the number of stages.
    """
    searched = space.searched(tiers=tiers, fixed=fixed)
    n_stages = len({space.parameters[n].tier for n in searched})
    return n_stages * (options.min_trials or min_trials_for(len(searched)))


def stage_decisions(
    study: optuna.Study, *, stage_counts: Mapping[Any, int] | None = None
) -> list[dict[str, Any]]:
    """The staged strategy's stages and decisions, for reports and ``tuner studies show``.

    One row per planned stage: ``stage``, ``tiers``, ``adds`` (parameters it starts to
    search), ``start``/``end`` (trial numbers), ``n_trials`` (trials that ran in it),
    ``decided`` (whether its boundary was crossed), and, once decided, ``frozen`` and
    ``narrowed`` (at this boundary), ``frozen_all``, ``ranges`` (in force), ``evidence``
    (importance rows with the action taken, rule, trials used) and ``computed_by``.
    Empty for a flat study. ``stage_counts`` (trials per stage, when the caller counted
    them more cheaply) spares reading every trial.

    Example:
        >>> for row in stage_decisions(staged_study):
        ...     print(row["stage"], row["tiers"], row["frozen"], row["narrowed"])
        1 [1] {} {}
        2 [1, 2] {} {}
        3 [1, 2, 3] {} {'batch_size': [16.0, 64.0]}
    """
    attrs = study.user_attrs
    recorded = attrs.get(records.STRATEGY) or {}
    if recorded.get("name") != "staged":
        return []
    counts = stage_counts
    if counts is None:
        counts = Counter(t.user_attrs.get(records.STAGE) for t in study.get_trials(deepcopy=False))
    rows = []
    for stage in recorded["stages"]:
        decision = attrs.get(records.STAGE_DECISION.format(stage=stage["stage"]))
        row = {**stage, "n_trials": counts.get(stage["stage"], 0), "decided": decision is not None}
        if decision is not None:
            keys = ("frozen", "narrowed", "frozen_all", "ranges", "evidence", "computed_by")
            row.update({k: decision.get(k) for k in keys})
        rows.append(row)
    return rows
