"""Optuna samplers and pruners from the spec's names and options (Optuna's own classes)."""

from __future__ import annotations

import importlib.util
import math
import warnings
from collections.abc import Collection
from typing import Any

import optuna

from tuner.errors import SpecError
from tuner.search.exploring import ExploringSampler
from tuner.search.start import spared
from tuner.search.tpe import BoundedTPESampler
from tuner.specs.param import ParamDef
from tuner.specs.space import SearchSpace
from tuner.specs.validation import shown


def make_sampler(
    name: str,
    options: dict[str, Any],
    *,
    seed: int,
    space: SearchSpace | None = None,
    searched: Collection[str] | None = None,
) -> optuna.samplers.BaseSampler:
    """A sampler; ``grid`` needs the space and enumerates its ``searched`` parameters
    (all by default): explicit ``grid`` lists, categoricals, ints and stepped floats.

    Example:
        >>> sampler = make_sampler("grid", {}, seed=0, space=space,
        ...                        searched=["optimizer", "layers"])
        >>> type(sampler).__name__
        'GridSampler'
    """
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
        return samplers.GridSampler(_grid(space, options, searched), seed=seed)
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
# benchmarks/README.md): after the enqueued baseline and the probes of its learning rate
# (tuner.search.start; hidden from TPE's model), 10 uniformly random start-up trials, then
# TPE with one proposal in three uniformly random.
TPE_EXPLORE = {"random_share": 0.33, "n_startup_trials": 10}


def _tpe_explore(options: dict[str, Any], *, seed: int) -> optuna.samplers.BaseSampler:
    options = {**TPE_EXPLORE, **options}
    share = options.pop("random_share")
    try:
        return ExploringSampler(
            BoundedTPESampler(seed=seed, **options), random_share=share, seed=seed, hidden=spared
        )
    except (TypeError, ValueError) as exc:
        raise SpecError(f"sampler.options for tpe-explore: {exc}") from None


# Optuna imports these lazily, so a missing one would otherwise surface only after the
# study is created, at the first trial the sampler models (GP: the 11th).
REQUIRES = {"gp": "torch", "cmaes": "cmaes"}
MAX_GRID_VALUES = 10_000  # per parameter: a grid is for small, enumerable spaces
# Optuna's GridSampler lists every combination in memory (~0.2 KB each) in every process.
MAX_GRID_POINTS = 100_000


def _check_installed(name: str) -> None:
    module = REQUIRES.get(name)
    if module and importlib.util.find_spec(module) is None:
        raise SpecError(
            f"sampler {name!r} needs the Python package {module!r}, which is not installed: "
            f"`pip install {module}`, or choose sampler tpe, random or qmc"
        )


def _grid(
    space: SearchSpace | None, options: dict[str, Any], searched: Collection[str] | None
) -> dict[str, list[Any]]:
    """The grid of stored values for each searched parameter; every blocker, one line each.

    Optuna's GridSampler takes explicit lists; a parameter's ``grid`` in the space file
    gives them, else categoricals, ints and stepped floats are enumerated.
    """
    if "search_space" in options:
        given = options["search_space"]
        if not (
            isinstance(given, dict)
            and given
            and all(isinstance(v, list) and v for v in given.values())
        ):
            raise SpecError(
                f"sampler.options.search_space must map each parameter to a list of values, "
                f"like {{units: [32, 64], dropout: [0.0, 0.2]}}, got {shown(given)}"
            )
        return dict(given)
    if space is None:
        raise SpecError("the grid sampler needs sampler.options.search_space")
    grid: dict[str, list[Any]] = {}
    problems: list[str] = []
    for name, param in space.parameters.items():
        if searched is not None and name not in searched:
            continue  # held at its fixed value or default: never suggested
        try:
            grid[param.stored_name(name)] = _grid_values(name, param)
        except SpecError as exc:
            problems.extend(exc.problems)
    if problems:
        raise SpecError(problems)
    _check_grid_size(grid, space)
    return grid


def _check_grid_size(grid: dict[str, list[Any]], space: SearchSpace) -> None:
    points = math.prod(len(values) for values in grid.values())
    if points <= MAX_GRID_POINTS:
        return
    names = {p.stored_name(n): n for n, p in space.parameters.items()}
    largest = sorted(grid, key=lambda k: len(grid[k]), reverse=True)[:3]
    sizes = ", ".join(f"{names[k]} {len(grid[k])}" for k in largest)
    raise SpecError(
        f"the grid sampler would list {points:,} combinations (at most {MAX_GRID_POINTS:,}; "
        f"values per parameter: {sizes}, ...); give the largest `grid: [...]` lists, fix "
        f"some in space.fixed, or search fewer tiers with --tiers"
    )


def _grid_values(name: str, param: ParamDef) -> list[Any]:
    """The stored values a grid tries for ``param``, or a SpecError that says how to fix it."""
    if param.grid is not None:
        return [param.to_stored(v) for v in param.grid]
    dist = param.distribution()
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return list(dist.choices)
    low, high, step = dist.low, dist.high, dist.step  # type: ignore[attr-defined]
    if step is None:
        raise SpecError(
            f"the grid sampler cannot enumerate float parameter {name!r} "
            f"({param.describe_range()}): give it `grid: [...]` values or a `step` in the "
            f"space file (or in space.overrides), fix it in space.fixed, or leave its tier "
            f"({param.tier}) out with --tiers"
        )
    count = round((high - low) / step) + 1
    if count > MAX_GRID_VALUES:
        raise SpecError(
            f"the grid sampler would try {count} values of {name!r} (at most "
            f"{MAX_GRID_VALUES}); give it `grid: [...]` values, narrow its range, or choose "
            f"another sampler"
        )
    if isinstance(dist, optuna.distributions.IntDistribution):
        return list(range(low, high + 1, step))
    # Rounded, so that 0.1 + 2 * 0.1 is stored as 0.3 and lies on Optuna's step grid.
    return [round(low + i * step, 12) for i in range(count)]


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
