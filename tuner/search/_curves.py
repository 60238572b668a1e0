"""Importance from learning curves: values at one epoch that most trials reached.

A pruned trial has no final value, but it reported one per epoch until it was stopped.
At quick-start sizes most trials are pruned (successive halving keeps a third at each
rung), so complete trials alone are too few for importance; the values every trial
reported at a common epoch compare like with like (no trial is favoured by training
longer) and use every trial the study paid for. A trial that diverged before that epoch
counts as the worst value reported there: it would not have recovered, and which values
make training diverge is what importance is about (a quick-start study of 20 trials with
one diverged learning rate would otherwise have 19, too few to measure).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState, create_trial

from tuner import records
from tuner._optuna_compat import trial_id_of, with_trial_id


def common_step(trials: Sequence[FrozenTrial]) -> int | None:
    """The latest step among those that the most finished trials reported (None: none).

    Example:
        >>> common_step(study.get_trials())   # all pruned at step 4 or later
        4
    """
    counts = Counter(
        step
        for t in trials
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        for step, value in t.intermediate_values.items()
        if math.isfinite(value)
    )
    if not counts:
        return None
    most = max(counts.values())
    return max(step for step, n in counts.items() if n == most)


def values_at(
    trials: Sequence[FrozenTrial], step: int, *, worst: float | None = None
) -> list[FrozenTrial]:
    """Copies of the finished trials that reported ``step``, valued at that step; with
    ``worst``, the diverged ones too, valued ``worst`` where they reported no finite value.

    Example:
        >>> [round(t.value, 2) for t in values_at(study.get_trials(), 4)][:2]
        [0.93, 0.92]
    """
    out = []
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    for t in trials:
        value = t.intermediate_values.get(step)
        usable = value is not None and math.isfinite(value)
        if t.state in finished and usable:
            pass
        elif worst is not None and t.user_attrs.get(records.FAIL_REASON) == records.DIVERGED:
            value = value if usable else worst
        else:
            continue
        copy = create_trial(params=t.params, distributions=t.distributions, value=value)
        out.append(with_trial_id(copy, trial_id_of(t)))
    return out


def curve_trials(study: optuna.Study, *, needed: int) -> tuple[int, list[FrozenTrial], int] | None:
    """The common step, the trials valued there (diverged ones at the worst value) and
    how many of them diverged, when they are at least ``needed``."""
    trials = study.get_trials(deepcopy=False)
    step = common_step(trials)
    if step is None:
        return None
    reported = [t.value for t in values_at(trials, step) if t.value is not None]
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    worst = min(reported) if maximize else max(reported)
    valued = values_at(trials, step, worst=worst)
    diverged = len(valued) - len(reported)
    return (step, valued, diverged) if len(valued) >= needed else None
