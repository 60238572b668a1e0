"""Optuna samplers and pruners from the spec's names and options (Optuna's own classes)."""

from __future__ import annotations

import importlib.util
import warnings
from typing import Any

import optuna

from tuner.errors import SpecError
from tuner.search.tpe import BoundedTPESampler
from tuner.specs.space import SearchSpace
from tuner.specs.validation import shown


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
    try:
        with warnings.catch_warnings():
            # NSGA-III is "experimental" in Optuna since 3.2; a warning per worker says nothing.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return factories[name](seed=seed, **options)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"sampler.options for {name}: {exc}") from None


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


def make_pruner(name: str, options: dict[str, Any]) -> optuna.pruners.BasePruner:
    """A pruner by name; ``patient`` wraps a median pruner unless told otherwise."""
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
        return factories[name](**options)  # type: ignore[no-any-return]
    except (TypeError, ValueError) as exc:
        raise SpecError(f"pruner.options for {name}: {exc}") from None
