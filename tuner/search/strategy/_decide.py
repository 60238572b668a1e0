"""The decision at a stage boundary: measure importance on the trials so far, freeze the
confidently unimportant parameters, narrow the ranges of the important numeric ones.

A pure function of the trials it is given (importance is seeded), so two workers that
decide on the same trials write the same decision.

Which trials: those of the stage just finished, where every measured parameter was
searched. Trials of earlier stages held the newer parameters at their defaults; mixing
them in makes a parameter's leaving its default look important merely because later
trials are better (measured: a pure-noise parameter got a fifth of the importance).
Values are measured on the declared distributions, as narrowed ranges would otherwise
hide a parameter from the evaluators that need one distribution across trials.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import optuna

from tuner import records
from tuner.search.importance import measure_importance
from tuner.specs.param import Choice, ParamDef
from tuner.specs.space import SearchSpace
from tuner.specs.strategies import StagedOptions


def effective_values(
    space: SearchSpace, trial: optuna.trial.FrozenTrial, fixed: Mapping[str, Any]
) -> dict[str, Choice]:
    """Every parameter's value in this trial: searched, frozen, fixed or default."""
    frozen = trial.user_attrs.get(records.FROZEN) or {}
    searched = space.values_from_stored(trial.params, fill_defaults=False)
    return {**space.defaults(), **fixed, **frozen, **searched}


def decide(
    *,
    space: SearchSpace,
    trials: Sequence[optuna.trial.FrozenTrial],
    measured: Sequence[str],
    fixed: Mapping[str, Any],
    direction: optuna.study.StudyDirection,
    options: StagedOptions,
) -> dict[str, Any]:
    """Freeze and narrow from importance measured on ``trials`` over ``measured`` parameters.

    Returns ``{"frozen": {name: value}, "narrowed": {name: [low, high]}, "evidence": {...}}``
    with model values (β, a batch size) and one evidence row per measured parameter.
    """
    complete = sorted(
        (t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and _finite(t.value)),
        key=lambda t: t.number,
    )
    values = {t.number: effective_values(space, t, fixed) for t in complete}
    sign = -1.0 if direction == optuna.study.StudyDirection.MAXIMIZE else 1.0
    ranked = sorted(complete, key=lambda t: (sign * float(t.value or 0.0), t.number))
    if len(measured) < 2:
        # One parameter's share of the importance is 1 whatever the data: nothing to learn.
        importance: dict[str, Any] = {
            "status": "one_parameter",
            "message": f"only {', '.join(measured) or 'no parameter'} searched so far: "
            "importance needs two parameters to compare",
            "n_used": 0,
            "params": [],
        }
    else:
        importance = _importance(space, complete, values, measured, direction, options)
    rule = options.model_dump(include={"freeze_below", "narrow", "narrow_above", "narrow_top"})
    evidence: dict[str, Any] = {
        "status": importance["status"],
        "message": importance["message"],
        "n_complete": len(complete),
        "n_used": importance["n_used"],
        "best_trial": ranked[0].number if ranked else None,
        "rule": rule,
        "agreement": (importance.get("agreement") or {}).get("statement"),
        "params": [],
    }
    frozen: dict[str, Choice] = {}
    narrowed: dict[str, list[float]] = {}
    by_stored = {space.parameters[n].stored_name(n): n for n in measured}
    for row in importance["params"]:
        name = by_stored[row["name"]]
        active = [t for t in ranked if space.is_active(name, values[t.number])]
        action = "kept"
        if row["high"] < options.freeze_below and active:
            frozen[name] = values[active[0].number][name]
            action = "frozen"
        elif _narrows(space.parameters[name], row, options) and len(active) >= 3:
            top = active[: max(3, math.ceil(options.narrow_top * len(active)))]
            narrowed[name] = narrow_range(
                space.parameters[name], [values[t.number][name] for t in top], options
            )
            action = "narrowed"
        evidence["params"].append(
            {
                "name": name,
                "importance": row["importance"],
                "low": row["low"],
                "high": row["high"],
                "rank": row["rank"],
                "action": action,
                **({"value": frozen[name]} if name in frozen else {}),
                **({"range": narrowed[name]} if name in narrowed else {}),
            }
        )
    return {"frozen": frozen, "narrowed": narrowed, "evidence": evidence}


def narrow_range(param: ParamDef, best: Sequence[Any], options: StagedOptions) -> list[float]:
    """A range around the best values, on the parameter's own scale, within its declared one.

    The span of the best values grows by ``narrow_margin`` on each side and to at least
    ``min_width`` of the declared span; ints and stepped floats snap outward to their grid.

    Example:
        >>> narrow_range(space.parameters["learning_rate"], [1e-3, 3e-3, 2e-3], options)
        [0.000316..., 0.00948...]
    """
    dist = param.distribution()
    assert isinstance(
        dist, (optuna.distributions.FloatDistribution, optuna.distributions.IntDistribution)
    )
    scale = (math.log, math.exp) if dist.log else (float, float)
    lo0, hi0 = scale[0](dist.low), scale[0](dist.high)
    stored = [scale[0](param.to_stored(v)) for v in best]
    lo, hi = min(stored), max(stored)
    pad = options.narrow_margin * (hi - lo)
    lo, hi = lo - pad, hi + pad
    grow = options.min_width * (hi0 - lo0) - (hi - lo)
    if grow > 0:
        lo, hi = lo - grow / 2, hi + grow / 2
    # Slide a window that overhangs one end back inside, keeping its width.
    shift = max(0.0, lo0 - lo) - max(0.0, hi - hi0)
    lo, hi = lo + shift, hi + shift
    low, high = scale[1](max(lo, lo0)), scale[1](min(hi, hi0))
    low, high = _snap(dist, low, high)
    bounds = sorted(param.to_value(v) for v in (low, high))
    return [float(bounds[0]), float(bounds[1])]


def narrowed_space(space: SearchSpace, ranges: Mapping[str, Sequence[float]]) -> SearchSpace:
    """The space with some numeric ranges replaced (model values).

    Built with ``model_copy``: a narrowed range may exclude the parameter's default, which
    is then only used where the parameter is inactive, as before.
    """
    if not ranges:
        return space
    params = {
        name: p.model_copy(update={"low": ranges[name][0], "high": ranges[name][1]})
        if name in ranges
        else p
        for name, p in space.parameters.items()
    }
    return space.model_copy(update={"parameters": params})


def _snap(dist: Any, low: float, high: float) -> tuple[float, float]:
    step = dist.step
    if isinstance(dist, optuna.distributions.IntDistribution):
        step = step or 1
        low = dist.low + math.floor(round(low - dist.low, 9) / step) * step
        high = dist.low + math.ceil(round(high - dist.low, 9) / step) * step
        return int(low), int(min(high, dist.high))
    if step is not None:
        low = dist.low + math.floor(round((low - dist.low) / step, 9)) * step
        high = dist.low + math.ceil(round((high - dist.low) / step, 9)) * step
        return low, min(high, dist.high)
    return low, high


def _narrows(param: ParamDef, row: Mapping[str, Any], options: StagedOptions) -> bool:
    return options.narrow and param.type != "categorical" and row["low"] >= options.narrow_above


def _importance(
    space: SearchSpace,
    complete: Sequence[optuna.trial.FrozenTrial],
    values: Mapping[int, Mapping[str, Choice]],
    measured: Sequence[str],
    direction: optuna.study.StudyDirection,
    options: StagedOptions,
) -> dict[str, Any]:
    """Importance over the trials with filled-in values, in a scratch in-memory study."""
    from optuna.trial import create_trial

    scratch = optuna.create_study(direction=direction)
    for trial in complete:
        chosen = values[trial.number]
        active = [n for n in measured if space.is_active(n, chosen)]
        params = {space.parameters[n].stored_name(n): space.parameters[n] for n in active}
        scratch.add_trial(
            create_trial(
                params={
                    key: p.to_stored(chosen[name])
                    for (key, p), name in zip(params.items(), active, strict=True)
                },
                distributions={key: p.distribution() for key, p in params.items()},
                value=trial.value,
            )
        )
    return measure_importance(
        scratch,
        evaluators=options.evaluators,
        n_bootstrap=options.n_bootstrap,
        interval=options.interval,
        min_trials=options.min_trials,
        seed=0,
    )


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
