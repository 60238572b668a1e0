"""A new study's first trials: the space's defaults, then its learning rate either side.

Samplers start from random points; the defaults are a good configuration on most tasks, so
trial 0 trains them (SMAC starts from the default configuration for the same reason) and
the study has a sound baseline after one trial. In the default search (flat strategy,
``tpe-explore``), the learning rate matters most and its best value moves most from task
to task (``DOMAIN.md``), so trials 1 and 2 train the same defaults with the learning rate
half a decade above and below, and these three start trials train to the end whatever the
pruner says (:func:`spared`): three complete results early, as the staged strategy's first
stage gives. They lifted the default search's best result at 10% of the budget on the
LCBench surrogate (benchmarks/README.md, "The default search on LCBench").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import optuna

from tuner import records
from tuner.specs.space import SearchSpace

PROBE_FACTORS = (10**0.5, 10**-0.5)  # half a decade up, then down


def enqueue_start(
    study: optuna.Study,
    space: SearchSpace,
    *,
    tiers: Iterable[int],
    fixed: Mapping[str, Any] | None,
    probes: bool,
    n_trials: int | None,
) -> None:
    """Queue the space's defaults as the study's first trial and, with ``probes``, the
    probes of its learning rate (:func:`probe_values`) after it, as many as the study's
    ``n_trials`` leaves room for (queued trials run first and count within it).

    Example:
        >>> fresh = optuna.create_study()
        >>> enqueue_start(fresh, space, tiers={1, 2}, fixed={}, probes=True, n_trials=20)
        >>> [sorted(t.user_attrs) for t in fresh.trials]
        [['baseline', 'start'], ['probe', 'start'], ['probe', 'start']]
    """
    params = space.default_trial(tiers=tiers, fixed=fixed)
    start = {records.START: True} if probes else {}
    study.enqueue_trial(params, user_attrs={records.BASELINE: True, **start})
    room = None if n_trials is None else max(0, n_trials - 1)
    for name, value in probe_values(space, params)[:room] if probes else []:
        study.enqueue_trial({**params, name: value}, user_attrs={records.PROBE: True, **start})


def probes_apply(*, strategy: str, sampler: object) -> bool:
    """Whether a new study gets the probes: in the default search only (flat strategy,
    ``tpe-explore`` sampler), where they were measured and whose model hides them.

    Example:
        >>> probes_apply(strategy="flat", sampler="tpe")
        False
    """
    return strategy == "flat" and sampler == "tpe-explore"


def probe_values(space: SearchSpace, baseline: Mapping[str, Any]) -> list[tuple[str, float]]:
    """(name, value) of each probe: the first tier-1 parameter that is a float on a log
    scale and that the ``baseline`` sets (``learning_rate`` in the shipped spaces), at its
    default times each of :data:`PROBE_FACTORS`, kept within its range; none otherwise.

    Example:
        >>> probe_values(space, space.default_trial())
        [('learning_rate', 0.0031622776601683794), ('learning_rate', 0.00031622776601683794)]
    """
    for name, param in space.parameters.items():
        if param.tier == 1 and param.type == "float" and param.log and name in baseline:
            assert param.low is not None and param.high is not None
            default = float(param.default)  # type: ignore[arg-type]
            values = [min(param.high, max(param.low, default * f)) for f in PROBE_FACTORS]
            unique = [v for i, v in enumerate(values) if v != default and v not in values[:i]]
            return [(name, v) for v in unique]
    return []


def spared(trial: optuna.Trial | optuna.trial.FrozenTrial) -> bool:
    """Whether ``trial`` is one of the default search's start trials: no pruner stops them,
    and its sampler's model does not see them (:mod:`tuner.search.exploring`). Other
    searches leave their baseline to the pruner and the model, as they were measured.

    Example:
        >>> spared(study.trials[0])  # the baseline of the default search
        True
    """
    return bool(trial.user_attrs.get(records.START))
