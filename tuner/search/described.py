"""The search a study runs, recorded on it and said in words for people.

A study records its strategy, sampler and pruner (names and options) under
``records.SEARCH``, whether it was started by ``tuner run`` or ``tuner.optimize``, so that
``tuner studies show`` and the report say what searched, and why no stage decision was
made yet, from the study alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna

from tuner import records

# Samplers and pruners whose defaults tuner chose, said the way a person would.
_SAMPLERS = {
    "tpe-explore": lambda o: (
        f"TPE, {o.get('random_share', 0.33):.0%} of its proposals uniformly random, "
        f"after {o.get('n_startup_trials', 10)} start-up trials"
    ),
}
_PRUNERS = {
    "asha": lambda o: (
        "successive halving, rungs after epochs "
        + _rungs(o.get("min_resource", 4), o.get("reduction_factor", 3))
    ),
}


def record_search(
    study: optuna.Study,
    *,
    strategy: str,
    sampler: str | optuna.samplers.BaseSampler,
    sampler_options: Mapping[str, Any] | None,
    pruner: str | optuna.pruners.BasePruner,
    pruner_options: Mapping[str, Any] | None,
) -> None:
    """Record the search on a new study (a resumed one keeps the record it has).

    Example:
        >>> record_search(study, strategy="flat", sampler="tpe-explore", sampler_options={},
        ...               pruner="asha", pruner_options={})
    """
    if records.SEARCH in study.user_attrs:
        return
    study.set_user_attr(
        records.SEARCH,
        {
            "strategy": strategy,
            "sampler": {"name": _name(sampler), "options": dict(sampler_options or {})},
            "pruner": {"name": _name(pruner), "options": dict(pruner_options or {})},
        },
    )


def search_line(study: optuna.Study) -> str | None:
    """The recorded search in one line (None: a study from before it was recorded).

    Example:
        >>> search_line(study)
        'flat strategy; sampler tpe-explore (TPE, 33% ...); pruner asha (successive ...)'
    """
    recorded = study.user_attrs.get(records.SEARCH)
    if not recorded:
        return None
    sampler, pruner = recorded["sampler"], recorded["pruner"]
    return (
        f"{recorded['strategy']} strategy; sampler {_said(sampler, _SAMPLERS)}; "
        f"pruner {_said(pruner, _PRUNERS)}"
    )


def decisions_line(study: optuna.Study, stages: list[dict[str, Any]]) -> str:
    """What the strategy decided so far, or a plain sentence why nothing yet."""
    strategy = (study.user_attrs.get(records.STRATEGY) or {}).get("name", "flat")
    if strategy != "staged":
        return (
            "none: the flat strategy searches every selected parameter in every trial "
            "and has no stage boundaries to decide at"
        )
    decided = [s for s in stages if s["decided"]]
    if decided:
        return f"{len(decided)} of {len(stages)} stage boundaries decided (see the stages)"
    first = stages[0] if stages else None
    if first is None or first["end"] is None:
        return "none: a single stage, nothing to decide"
    return (
        f"none yet: stage 1 ends at trial {first['end']} "
        f"({first['n_trials']} trials run in it so far)"
    )


def _name(chosen: str | object) -> str:
    return chosen if isinstance(chosen, str) else type(chosen).__name__


def _said(recorded: Mapping[str, Any], known: Mapping[str, Any]) -> str:
    name, options = recorded["name"], recorded.get("options") or {}
    if name in known:
        return f"{name} ({known[name](options)})"
    given = ", ".join(f"{k}={v}" for k, v in options.items())
    return f"{name} ({given})" if given else name


def _rungs(first: int, factor: int) -> str:
    # Optuna's rungs are at steps first * factor**i; step 0 is the first epoch.
    return ", ".join(str(first * factor**i + 1) for i in range(3)) + ", ..."
