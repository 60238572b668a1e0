"""Hyperparameter importance with uncertainty, and declared tiers against measured ranks.

Optuna's evaluators do the measuring (PED-ANOVA, fANOVA, mean decrease impurity); this
module adds what they lack:

- an interval per parameter, from bootstrap resampling of complete trials (each replicate
  re-runs every evaluator on trials drawn with replacement);
- a consensus across evaluators (mean of their normalised importances) and a one-line
  statement of whether they agree on the top parameters;
- a verdict per parameter comparing its measured rank with the tier the search space
  declares (``agrees`` / ``more important than declared`` / ``less important than
  declared`` / ``not enough evidence``).

Choices that bound the cost (fANOVA grows faster than linearly with trials and trees):
importance uses at most ``max_trials`` complete trials (a seeded random subsample, 1000 by
default), fANOVA at most ``max_fanova_trials`` of those (200) with ``n_trees`` trees (16,
not Optuna's 64) of depth ``max_depth`` (6, not 64) and ``fanova_bootstrap`` replicates
(10); mean decrease impurity uses 16 trees. PED-ANOVA is cheap and runs in full.

Conditional parameters (present in only some trials): PED-ANOVA measures them natively
(conditional PED-ANOVA, per regime); fANOVA and mean decrease impurity need parameters
present in every trial, so they measure only the parameters present, with the same
distribution, in every complete trial used. The consensus of a parameter averages the
evaluators that measured it; ``by_evaluator`` says which did.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tuner._optuna_compat import TrialsView, trial_id_of, with_trial_id
from tuner.errors import ReportError
from tuner.search._curves import curve_trials
from tuner.search._importance_stats import agreement, combine
from tuner.specs.strategies import IMPORTANCE_EVALUATORS

if TYPE_CHECKING:
    import optuna

EVALUATORS = IMPORTANCE_EVALUATORS  # names and labels, declared with the specs
VERDICTS = (
    "agrees",
    "more important than declared",
    "less important than declared",
    "not enough evidence",
    "no declared tier",
)


def min_trials_for(n_params: int) -> int:
    """Complete trials needed before importance means anything: 4 per parameter, at least 20.

    PED-ANOVA compares the top 10% of trials with the rest, so 20 trials give it 2; the
    tree-based evaluators need a few trials per parameter to split on.
    """
    return max(20, 4 * n_params)


def measure_importance(
    study: optuna.Study,
    *,
    evaluators: Sequence[str] = tuple(EVALUATORS),
    n_bootstrap: int = 20,
    interval: float = 0.9,
    max_trials: int = 1000,
    max_fanova_trials: int = 200,
    fanova_bootstrap: int = 10,
    n_trees: int = 16,
    max_depth: int = 6,
    min_trials: int | None = None,
    top_k: int = 2,
    seed: int = 0,
    curves: bool = False,
) -> dict[str, Any]:
    """Measure parameter importance over complete trials, with bootstrap intervals.

    With ``curves``, a study with too few complete trials is measured on the values its
    finished trials (pruned ones included) reported at one common epoch
    (:mod:`tuner.search._curves`); ``measured_at`` then says which.

    Args:
        study: A single-objective study.
        evaluators: Names from :data:`EVALUATORS`.
        n_bootstrap: Bootstrap replicates per evaluator (0: point estimates only).
        interval: Central probability of the reported interval (0.9: 5th-95th percentile).
        max_trials: At most this many complete trials are used (seeded subsample).
        max_fanova_trials: fANOVA uses at most this many of them (it is the slow one).
        fanova_bootstrap: fANOVA runs at most this many replicates (0.2 s each).
        n_trees: Trees of fANOVA and of mean decrease impurity.
        max_depth: Depth of fANOVA's trees.
        min_trials: Complete trials needed; default :func:`min_trials_for`.
        top_k: How many top parameters the agreement statement compares.
        seed: Seed of subsampling, resampling and the forests.
        curves: Fall back on learning curves when complete trials are too few.

    Returns:
        The ``importance`` section of a report (see ``tuner.reporting`` for the schema).

    Raises:
        ReportError: The study is multi-objective, or an option is out of range.

    Example:
        >>> result = measure_importance(staged_study, n_bootstrap=10)
        >>> [p["name"] for p in result["params"][:2]]
        ['learning_rate', 'one_minus_momentum']
    """
    import numpy as np
    from optuna.trial import TrialState

    _check_options(study, evaluators, n_bootstrap, interval, max_trials, top_k)
    complete = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.value is not None and math.isfinite(t.value)
    ]
    searched = sorted({p for t in study.get_trials(deepcopy=False) for p in t.params})
    needed = min_trials if min_trials is not None else min_trials_for(len(searched))
    settings = {
        "evaluators": list(evaluators),
        "n_bootstrap": n_bootstrap,
        "interval": interval,
        "max_trials": max_trials,
        "max_fanova_trials": max_fanova_trials,
        "fanova_bootstrap": min(n_bootstrap, fanova_bootstrap),
        "n_trees": n_trees,
        "fanova_max_depth": max_depth,
        "seed": seed,
    }
    n_complete, measured_at = len(complete), None
    found = curve_trials(study, needed=needed) if curves and n_complete < needed else None
    if found is not None:
        step, complete, diverged = found
        measured_at = {"step": step, "n_trials": len(complete), "n_diverged": diverged}
    names = sorted({p for t in complete for p in t.params})
    result: dict[str, Any] = {
        "status": "ok",
        "message": None,
        "n_complete": n_complete,
        "measured_at": measured_at,
        "min_trials": needed,
        "n_used": 0,
        "searched": searched,
        "settings": settings,
        "evaluators": {},
        "params": [],
        "agreement": None,
    }
    if len(complete) < needed or not names:
        result["status"] = "too_few_trials"
        rule = "" if min_trials is not None else " (4 per searched parameter, at least 20)"
        result["message"] = (
            f"importance needs at least {needed} complete trials{rule}"
            + (" or trials reporting a common epoch" if curves else "")
            + f"; this study has {n_complete}"
        )
        return result

    rng = np.random.default_rng(seed)
    if len(complete) > max_trials:
        chosen = sorted(rng.choice(len(complete), size=max_trials, replace=False))
        complete = [complete[i] for i in chosen]
    slim = [_slim(t) for t in complete]
    result["n_used"] = len(slim)
    shared = _shared_params(slim)
    present = {n: sum(n in t.params for t in slim) for n in names}

    samples: dict[str, dict[str, list[float]]] = {}  # evaluator -> param -> replicate values
    points: dict[str, dict[str, float]] = {}
    for key in evaluators:
        trials = slim
        if key == "fanova" and len(trials) > max_fanova_trials:
            idx = sorted(rng.choice(len(trials), size=max_fanova_trials, replace=False))
            trials = [trials[i] for i in idx]
        params = names if key == "ped_anova" else shared
        info: dict[str, Any] = {
            "label": EVALUATORS[key],
            "n_trials": len(trials),
            "params": params,
            "error": None,
        }
        result["evaluators"][key] = info
        if not params:
            info["error"] = "no parameter is present in every complete trial"
            continue
        make = _evaluator_factory(key, n_trees=n_trees, max_depth=max_depth)
        try:
            points[key] = _evaluate(study, trials, make(seed), params)
            samples[key] = {p: [] for p in params}
            reps = min(n_bootstrap, fanova_bootstrap) if key == "fanova" else n_bootstrap
            for b in range(reps):
                drawn = [trials[i] for i in rng.integers(0, len(trials), size=len(trials))]
                values = _evaluate(study, drawn, make(seed + 1 + b), params)
                for p in params:
                    samples[key][p].append(values.get(p, 0.0))
        except (ValueError, RuntimeError) as exc:  # an evaluator refusing this data
            info["error"] = f"{type(exc).__name__}: {exc}"
            points.pop(key, None)
            samples.pop(key, None)

    result["params"] = combine(names, points, samples, interval, present, shared, slim, len(slim))
    result["agreement"] = agreement(points, top_k)
    return result


def compare_with_declared(
    importance: Mapping[str, Any], tiers: Mapping[str, int]
) -> list[dict[str, Any]]:
    """Each parameter's declared tier next to its measured rank, with a plain verdict.

    A tier stands for a band of ranks: with two tier-1 and three tier-2 parameters, tier 1
    expects ranks 1-2 and tier 2 ranks 3-5. The verdict compares the band with the
    bootstrap interval of the measured rank: overlapping means ``agrees``; entirely above
    (better ranks) ``more important than declared``; entirely below ``less important than
    declared``. ``not enough evidence`` when importance was not measured for the parameter,
    or its rank interval spans more than half of the parameters (plus one), so it could sit
    almost anywhere.

    Args:
        importance: The result of :func:`measure_importance`.
        tiers: Declared tier per stored parameter name (``SearchSpace.tiers()``).

    Returns:
        One row per measured or declared-and-searched parameter, in measured rank order.
    """
    measured = {p["name"]: p for p in importance.get("params", [])}
    names = list(measured)
    names += [n for n in importance.get("searched", []) if n not in measured]
    ranked_tiers = sorted(tiers[n] for n in names if n in tiers)
    rows = []
    for name in names:
        p = measured.get(name)
        tier = tiers.get(name)
        row: dict[str, Any] = {
            "name": name,
            "declared_tier": tier,
            "expected_ranks": None,
            "rank": p["rank"] if p else None,
            "rank_low": p["rank_low"] if p else None,
            "rank_high": p["rank_high"] if p else None,
            "importance": p["importance"] if p else None,
            "low": p["low"] if p else None,
            "high": p["high"] if p else None,
        }
        if tier is not None:
            first = 1 + sum(t < tier for t in ranked_tiers)
            row["expected_ranks"] = [first, first + ranked_tiers.count(tier) - 1]
        row["verdict"] = _verdict(row, len(names))
        rows.append(row)
    return rows


# -- internals -----------------------------------------------------------------------------


def _check_options(
    study: optuna.Study,
    evaluators: Sequence[str],
    n_bootstrap: int,
    interval: float,
    max_trials: int,
    top_k: int,
) -> None:
    problems = []
    if len(study.directions) > 1:
        problems.append(
            f"study '{study.study_name}' has {len(study.directions)} objectives; importance "
            "and reports cover single-objective studies only"
        )
    unknown = [e for e in evaluators if e not in EVALUATORS]
    if unknown or not evaluators:
        problems.append(f"evaluators must be among {list(EVALUATORS)}, got {list(evaluators)}")
    if n_bootstrap < 0:
        problems.append(f"n_bootstrap must be >= 0, got {n_bootstrap}")
    if not 0 < interval < 1:
        problems.append(f"interval must be between 0 and 1, got {interval}")
    if max_trials < 2:
        problems.append(f"max_trials must be >= 2, got {max_trials}")
    if top_k < 1:
        problems.append(f"top_k must be >= 1, got {top_k}")
    if problems:
        raise ReportError("; ".join(problems))


def _slim(trial: optuna.trial.FrozenTrial) -> optuna.trial.FrozenTrial:
    """A copy with only params and value: cheap to add to the scratch studies."""
    from optuna.trial import create_trial

    slim = create_trial(params=trial.params, distributions=trial.distributions, value=trial.value)
    return with_trial_id(slim, trial_id_of(trial))


def _shared_params(trials: Sequence[optuna.trial.FrozenTrial]) -> list[str]:
    """Parameters present in every trial with one and the same distribution."""
    first = trials[0].distributions
    return sorted(
        name
        for name, dist in first.items()
        if all(t.distributions.get(name) == dist for t in trials)
    )


def _evaluator_factory(key: str, *, n_trees: int, max_depth: int) -> Callable[[int], Any]:
    from optuna.importance import (
        FanovaImportanceEvaluator,
        MeanDecreaseImpurityImportanceEvaluator,
        PedAnovaImportanceEvaluator,
    )

    if key == "ped_anova":
        return lambda seed: PedAnovaImportanceEvaluator()
    if key == "fanova":
        return lambda seed: FanovaImportanceEvaluator(
            n_trees=n_trees, max_depth=max_depth, seed=seed
        )
    return lambda seed: MeanDecreaseImpurityImportanceEvaluator(n_trees=n_trees, seed=seed)


def _evaluate(
    study: optuna.Study,
    trials: Sequence[optuna.trial.FrozenTrial],
    evaluator: Any,
    params: list[str],
) -> dict[str, float]:
    """Normalised importances of ``params`` over ``trials`` (duplicates allowed)."""
    import optuna

    with warnings.catch_warnings():
        # "few trials in a regime", "quantiles select the same trials": the intervals show it.
        warnings.simplefilter("ignore")
        try:
            values = optuna.importance.get_param_importances(
                TrialsView(study, trials),  # type: ignore[arg-type]
                evaluator=evaluator,
                params=params,
            )
        except AttributeError:  # a newer evaluator wants more of a Study: pay for a real one
            scratch = optuna.create_study(direction=study.direction)
            scratch.add_trials(trials)
            values = optuna.importance.get_param_importances(
                scratch, evaluator=evaluator, params=params
            )
    return {k: float(v) for k, v in values.items()}


def _verdict(row: Mapping[str, Any], n_params: int) -> str:
    if row["declared_tier"] is None:
        return "no declared tier"
    if row["rank"] is None or row["expected_ranks"] is None:
        return "not enough evidence"
    lo, hi = row["rank_low"], row["rank_high"]
    first, last = row["expected_ranks"]
    if hi < first:
        return "more important than declared"
    if lo > last:
        return "less important than declared"
    if (first <= lo and hi <= last) or hi - lo + 1 <= max(2, n_params // 2):
        return "agrees"
    return "not enough evidence"
