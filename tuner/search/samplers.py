"""Optuna samplers and pruners from the spec's names and options (Optuna's own classes)."""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import optuna

from tuner import records
from tuner.errors import SpecError
from tuner.search.exploring import ExploringSampler
from tuner.search.tpe import BoundedTPESampler
from tuner.specs.space import SearchSpace


def make_sampler(
    name: str, options: dict[str, Any], *, seed: int, space: SearchSpace | None = None
) -> optuna.samplers.BaseSampler:
    """A sampler; ``grid`` needs the space (categorical and small int parameters only)."""
    _check_installed(name)
    samplers = optuna.samplers
    factories = {
        "tpe": BoundedTPESampler,  # Optuna's TPE, its cost bounded in long studies
        "random": samplers.RandomSampler,
        "gp": samplers.GPSampler,
        "cmaes": samplers.CmaEsSampler,
        "qmc": samplers.QMCSampler,
        "nsga2": samplers.NSGAIISampler,  # genetic, for several objectives (and one)
        "nsga3": samplers.NSGAIIISampler,  # NSGA-II with reference points, for many objectives
    }
    if name == "grid":
        return samplers.GridSampler(_grid(space, options), seed=seed)
    if name == "tpe-explore":
        return _tpe_explore(options, seed=seed)
    try:
        with warnings.catch_warnings():
            # NSGA-III is "experimental" in Optuna since 3.2; a warning per worker says nothing.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return factories[name](seed=seed, **options)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"sampler.options for {name}: {exc}") from None


# The default search, measured whole on the LCBench surrogate (benchmarks/lcbench.py,
# benchmarks/README.md): after the enqueued baseline, 9 uniformly random start-up trials,
# then TPE with one proposal in three uniformly random.
TPE_EXPLORE = {"random_share": 0.33, "n_startup_trials": 10}


def _tpe_explore(options: dict[str, Any], *, seed: int) -> optuna.samplers.BaseSampler:
    options = {**TPE_EXPLORE, **options}
    share = options.pop("random_share")
    try:
        return ExploringSampler(
            BoundedTPESampler(seed=seed, **options), random_share=share, seed=seed
        )
    except (TypeError, ValueError) as exc:
        raise SpecError(f"sampler.options for tpe-explore: {exc}") from None


# Optuna imports these lazily, so a missing one would otherwise surface only after the
# study is created, at the first trial the sampler models (GP: the 11th).
REQUIRES = {"gp": "torch", "cmaes": "cmaes"}
MAX_GRID_VALUES = 10_000  # per parameter: a grid is for small, enumerable spaces


def _check_installed(name: str) -> None:
    module = REQUIRES.get(name)
    if module and importlib.util.find_spec(module) is None:
        raise SpecError(
            f"sampler {name!r} needs the Python package {module!r}, which is not installed: "
            f"`pip install {module}`, or choose sampler tpe, random or qmc"
        )


def _grid(space: SearchSpace | None, options: dict[str, Any]) -> dict[str, list[Any]]:
    if "search_space" in options:
        return dict(options["search_space"])
    if space is None:
        raise SpecError("the grid sampler needs sampler.options.search_space")
    grid: dict[str, list[Any]] = {}
    for name, param in space.parameters.items():
        dist = param.distribution()
        if isinstance(dist, optuna.distributions.CategoricalDistribution):
            grid[param.stored_name(name)] = list(dist.choices)
        elif isinstance(dist, optuna.distributions.IntDistribution) and not dist.log:
            values = range(dist.low, dist.high + 1, dist.step)
            if len(values) > MAX_GRID_VALUES:
                raise SpecError(
                    f"the grid sampler would try {len(values)} values of {name!r} (at most "
                    f"{MAX_GRID_VALUES}); narrow its range, or choose another sampler"
                )
            grid[param.stored_name(name)] = list(values)
        else:
            raise SpecError(
                f"the grid sampler cannot enumerate float parameter {name!r}; give "
                f"sampler.options.search_space with a list of values for each parameter"
            )
    return grid


# The default pruner: asynchronous successive halving (Optuna's SuccessiveHalvingPruner is
# ASHA) with rungs at steps 4, 12, 36, ... (after epochs 5, 13, 37). Fixed rungs rather than
# Optuna's "auto" minimum (taken from the first trial's length) so that every study and
# every worker prunes alike; measured as part of the default in benchmarks/lcbench.py.
ASHA = {"min_resource": 4, "reduction_factor": 3}


def make_pruner(name: str, options: dict[str, Any]) -> optuna.pruners.BasePruner:
    """A pruner by name; ``patient`` wraps a median pruner unless told otherwise, ``asha``
    is successive halving with tuner's rungs (``ASHA``)."""
    pruners = optuna.pruners
    options = dict(options)
    try:
        if name == "none":
            return pruners.NopPruner()
        if name == "patient":
            return pruners.PatientPruner(pruners.MedianPruner(), **{"patience": 2, **options})
        if name == "threshold" and not {"lower", "upper"} & set(options):
            raise SpecError("the threshold pruner needs pruner.options.lower or .upper")
        factories = {
            "median": pruners.MedianPruner,
            "percentile": pruners.PercentilePruner,
            "successive-halving": pruners.SuccessiveHalvingPruner,
            "hyperband": pruners.HyperbandPruner,
            "wilcoxon": pruners.WilcoxonPruner,
            "threshold": pruners.ThresholdPruner,
        }
        if name == "percentile":
            options.setdefault("percentile", 50.0)
        if name == "asha":
            return pruners.SuccessiveHalvingPruner(**{**ASHA, **options})
        return factories[name](**options)  # type: ignore[no-any-return]
    except (TypeError, ValueError) as exc:
        raise SpecError(f"pruner.options for {name}: {exc}") from None


def enqueue_baseline(
    study: optuna.Study,
    space: SearchSpace,
    *,
    tiers: Iterable[int],
    fixed: Mapping[str, Any] | None,
) -> None:
    """Queue the space's defaults (textbook values) as the study's first trial.

    Samplers start from random points; the defaults are a good configuration on most
    tasks, so the study has a sound baseline after one trial and every later trial is
    measured against it (SMAC starts from the default configuration for the same reason).

    Example:
        >>> enqueue_baseline(study, space, tiers={1, 2}, fixed={})
    """
    params = space.default_trial(tiers=tiers, fixed=fixed)
    study.enqueue_trial(params, user_attrs={records.BASELINE: True})
