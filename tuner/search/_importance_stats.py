"""Combining importance measurements: bootstrap intervals, rank ranges, the consensus of
the evaluators and whether they agree (the statistics of :mod:`tuner.search.importance`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tuner.specs.strategies import IMPORTANCE_EVALUATORS as EVALUATORS

if TYPE_CHECKING:
    import optuna


def combine(
    names: list[str],
    points: dict[str, dict[str, float]],
    samples: dict[str, dict[str, list[float]]],
    interval: float,
    present: dict[str, int],
    shared: list[str],
    trials: Sequence[optuna.trial.FrozenTrial],
    n_used: int,
) -> list[dict[str, Any]]:
    lo_q, hi_q = 50 * (1 - interval), 50 * (1 + interval)
    consensus = {n: _mean([points[k][n] for k in points if n in points[k]]) for n in names}
    names = [n for n in names if consensus[n] is not None]
    # fANOVA runs fewer replicates; the consensus cycles through the ones it has
    n_rep = max((len(next(iter(s.values()), [])) for s in samples.values()), default=0)
    ranks = _ranks(points, names)
    rows = []
    for n in sorted(names, key=lambda n: -float(consensus[n] or 0.0)):
        point = float(consensus[n] or 0.0)
        reps = [
            _mean([_cycle(samples[k][n], b) for k in samples if n in samples[k]])
            for b in range(n_rep)
        ]
        row: dict[str, Any] = {
            "name": n,
            "kind": _kind(trials, n),
            "conditional": n not in shared,
            "n_trials": present[n],
            "share_of_trials": present[n] / n_used,
            "importance": point,
            **_interval(point, [r for r in reps if r is not None], lo_q, hi_q),
            "by_evaluator": {},
        }
        for key in EVALUATORS:
            if key in points and n in points[key]:
                value = points[key][n]
                row["by_evaluator"][key] = {
                    "importance": value,
                    **_interval(value, samples.get(key, {}).get(n, []), lo_q, hi_q),
                    "rank": ranks[key][n],
                }
        rows.append(row)
    _rank_ranges(rows)
    return rows


def _interval(point: float, replicates: list[float], lo_q: float, hi_q: float) -> dict[str, float]:
    """Percentile interval of the replicates, widened to contain the point estimate.

    Resampling inflates the measured importance of weak parameters a little (trees fit
    the duplicated trials), so their intervals can sit just above the full-data estimate.
    """
    import numpy as np

    if not replicates:
        return {"low": point, "high": point}
    lo, hi = np.percentile(np.asarray(replicates, dtype=float), [lo_q, hi_q])
    return {"low": min(float(lo), point), "high": max(float(hi), point)}


def _rank_ranges(rows: list[dict[str, Any]]) -> None:
    """Rank by point estimate, and the ranks each parameter could take given the intervals.

    ``rank_low`` = 1 + parameters whose interval lies entirely above this one's;
    ``rank_high`` = n - parameters whose interval lies entirely below it.
    """
    n = len(rows)
    for i, row in enumerate(rows):
        row["rank"] = i + 1
        row["rank_low"] = 1 + sum(other["low"] > row["high"] for other in rows)
        row["rank_high"] = n - sum(other["high"] < row["low"] for other in rows)


def _ranks(points: dict[str, dict[str, float]], names: list[str]) -> dict[str, dict[str, int]]:
    out = {}
    for key, values in points.items():
        order = sorted((n for n in names if n in values), key=lambda n: -values[n])
        out[key] = {n: i + 1 for i, n in enumerate(order)}
    return out


def _cycle(values: list[float], b: int) -> float:
    return values[b % len(values)] if values else math.nan


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


def _kind(trials: Sequence[optuna.trial.FrozenTrial], name: str) -> str:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    dist = next(t.distributions[name] for t in trials if name in t.distributions)
    if isinstance(dist, CategoricalDistribution):
        return "categorical"
    return "int" if isinstance(dist, IntDistribution) else "float"


def agreement(points: dict[str, dict[str, float]], top_k: int) -> dict[str, Any]:
    tops = {
        key: [n for n, _ in sorted(values.items(), key=lambda kv: -kv[1])[:top_k]]
        for key, values in points.items()
    }
    if not tops:
        return {"top_k": top_k, "agree": None, "top": {}, "statement": "no evaluator ran"}
    k = min(len(t) for t in tops.values())
    sets = {frozenset(t[:k]) for t in tops.values()}
    labels = [EVALUATORS[key] for key in tops]
    if len(tops) == 1:
        statement = f"Only {labels[0]} ran; its top {k}: {', '.join(next(iter(tops.values())))}."
        agree = None
    elif len(sets) == 1:
        first = next(iter(tops.values()))
        statement = f"All {len(tops)} evaluators agree on the top {k}: {', '.join(first[:k])}."
        agree = True
    else:
        parts = "; ".join(f"{EVALUATORS[key]}: {', '.join(t[:k])}" for key, t in tops.items())
        statement = f"Evaluators disagree on the top {k} ({parts})."
        agree = False
    return {"top_k": k, "agree": agree, "top": tops, "statement": statement}
