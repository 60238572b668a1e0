"""Importance-ranked search spaces: parameters with tiers, defaults and conditions.

A space is declared in YAML (``search_spaces/*.yaml``)::

    name: importance-ranked
    parameters:
      learning_rate: {type: float, low: 1.0e-5, high: 1.0, log: true, tier: 1, default: 1.0e-3}
      momentum: {type: float, low: 0.8, high: 0.999, one_minus: true, log: true, tier: 2,
                 default: 0.9, condition: {optimizer: [momentum, nesterov]}}

Two transforms keep the scales of DOMAIN.md while Optuna sees plain distributions:
``one_minus`` samples ``1 - x`` (stored as ``one_minus_<name>``), so β near 1 is searched
on a log scale; ``power_of_two`` samples the exponent (stored as ``log2_<name>``), so a
batch size stays a power of two and keeps its order for TPE. Every other parameter is
stored in Optuna under its own name.

This module knows nothing of Keras.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import optuna
from pydantic import BaseModel, ConfigDict, field_validator

from tuner.errors import SpecError
from tuner.specs.param import ALL_TIERS, Choice, ParamDef
from tuner.specs.shipped import find_file, not_found_hint
from tuner.specs.validation import (
    PARAM_NAME_PATTERN,
    PARAM_NAME_RULE,
    check_name,
    read_yaml_mapping,
    shown,
    validate_model,
)


class SearchSpace(BaseModel):
    """An ordered set of parameters; conditions may refer only to earlier parameters."""

    model_config = ConfigDict(extra="forbid")

    name: str = "unnamed"
    description: str = ""
    parameters: dict[str, ParamDef]

    @field_validator("parameters")
    @classmethod
    def _names_and_conditions(cls, params: dict[str, ParamDef]) -> dict[str, ParamDef]:
        problems = space_problems({n: p.model_dump() for n, p in params.items()})
        problems += _stored_name_clashes(params)
        if problems:
            raise ValueError("\n".join(problems))
        return params

    # -- queries ---------------------------------------------------------------------
    def fixed_problems(self, fixed: Mapping[str, Any]) -> list[str]:
        """Problems of ``space.fixed``: unknown names, or values a parameter cannot take.

        Numeric values outside the searched range are allowed on purpose: fixing a value is
        how a user tries one the space would never suggest (e.g. a learning rate of 10).
        """
        problems = []
        for name, value in fixed.items():
            param = self.parameters.get(name)
            if param is None:
                problems.append(
                    f"space.fixed.{name}: not a parameter of the space "
                    f"(known: {', '.join(self.parameters)})"
                )
            elif param.type == "categorical" and value not in (param.choices or []):
                problems.append(
                    f"space.fixed.{name}: {shown(value)} is not one of the choices {param.choices}"
                )
            elif param.type != "categorical" and (
                isinstance(value, bool) or not isinstance(value, (int, float))
            ):
                problems.append(f"space.fixed.{name}: must be a number, got {shown(value)}")
        return problems

    def defaults(self) -> dict[str, Choice]:
        """Every parameter at its default."""
        return {name: p.default for name, p in self.parameters.items()}

    def tiers(self) -> dict[str, int]:
        """Declared tier of each parameter, keyed by the name Optuna stores."""
        return {p.stored_name(n): p.tier for n, p in self.parameters.items()}

    def is_active(self, name: str, values: Mapping[str, Any]) -> bool:
        """Whether ``name``'s condition holds for the values chosen so far."""
        condition = self.parameters[name].condition or {}
        return all(values.get(other) in allowed for other, allowed in condition.items())

    def searched(
        self, *, tiers: Iterable[int] = ALL_TIERS, fixed: Mapping[str, Any] | None = None
    ) -> list[str]:
        """Names of parameters that a study with these tiers and fixed values searches."""
        wanted, fixed = set(tiers), fixed or {}
        return [n for n, p in self.parameters.items() if p.tier in wanted and n not in fixed]

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        """Optuna distributions keyed by stored name: what a study of this space records."""
        return {p.stored_name(n): p.distribution() for n, p in self.parameters.items()}

    def suggest(
        self,
        trial: optuna.trial.BaseTrial,
        *,
        tiers: Iterable[int] = ALL_TIERS,
        fixed: Mapping[str, Any] | None = None,
    ) -> dict[str, Choice]:
        """Choose a value for every parameter of the space.

        Searched parameters (tier selected, not fixed, condition holding) are suggested
        through ``trial``; the rest take their fixed value or default. The result maps
        every parameter name to the value the model uses.

        Example:
            >>> space = load_space("search_spaces/importance-ranked.yaml")
            >>> trial = optuna.create_study().ask()
            >>> params = space.suggest(trial, tiers={1, 2})
            >>> sorted(trial.params)          # searched: tiers 1 and 2, where active
            ['learning_rate', 'log2_batch_size', 'units']
            >>> params["optimizer"], params["batch_size"] == 2 ** trial.params["log2_batch_size"]
            ('adam', True)
        """
        fixed = fixed or {}
        searched = set(self.searched(tiers=tiers, fixed=fixed))
        values: dict[str, Choice] = {}
        for name, param in self.parameters.items():
            if name in searched and self.is_active(name, values):
                stored = _suggest(trial, param.stored_name(name), param.distribution())
                values[name] = param.to_value(stored)
            else:
                values[name] = fixed.get(name, param.default)
        return values

    def default_trial(
        self, *, tiers: Iterable[int] = ALL_TIERS, fixed: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Stored params of the trial that trains every searched parameter at its default
        (inactive ones left out), for ``study.enqueue_trial``.

        Example:
            >>> space.default_trial(tiers={1})
            {'learning_rate': 0.001}
        """
        fixed = fixed or {}
        searched = set(self.searched(tiers=tiers, fixed=fixed))
        values: dict[str, Choice] = {}
        stored: dict[str, Any] = {}
        for name, param in self.parameters.items():
            values[name] = fixed.get(name, param.default)
            if name in searched and self.is_active(name, values):
                stored[param.stored_name(name)] = param.to_stored(param.default)
        return stored

    def within_epochs(self, max_epochs: int) -> SearchSpace:
        """The space with epoch counts (``below_max_epochs``) cut below ``max_epochs``."""
        params = {n: p.within_epochs(max_epochs) for n, p in self.parameters.items()}
        return self.model_copy(update={"parameters": params})

    def values_from_stored(
        self, stored: Mapping[str, Any], *, fill_defaults: bool = True
    ) -> dict[str, Choice]:
        """Turn a trial's stored params into model values (defaults for the rest)."""
        values: dict[str, Choice] = self.defaults() if fill_defaults else {}
        for name, param in self.parameters.items():
            key = param.stored_name(name)
            if key in stored:
                values[name] = param.to_value(stored[key])
        return values


def _suggest(
    trial: optuna.trial.BaseTrial, name: str, dist: optuna.distributions.BaseDistribution
) -> Any:
    """Suggest through the trial's public API, whatever the distribution's kind."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)  # type: ignore[attr-defined]


def space_problems(params: Mapping[str, Any]) -> list[str]:
    """Problems of the parameter set as a whole: names, and conditions on earlier parameters.

    Works on the raw mappings too, so a space whose parameters have errors of their own
    still gets its names and conditions checked in the same report.
    """
    if not params:
        return ["a search space needs at least one parameter"]
    problems = []
    earlier: dict[str, Any] = {}
    for name, param in params.items():
        try:
            check_name(
                name, what="parameter name", pattern=PARAM_NAME_PATTERN, rule=PARAM_NAME_RULE
            )
        except ValueError as exc:
            problems.append(str(exc))
        condition = param.get("condition") if isinstance(param, dict) else None
        for other, values in (condition if isinstance(condition, dict) else {}).items():
            problems.extend(_condition_problems(name, other, values, earlier))
        earlier[name] = param
    return problems


def _stored_name_clashes(params: Mapping[str, ParamDef]) -> list[str]:
    """Two parameters Optuna would store under one name (``one_minus_momentum`` beside
    ``momentum`` with one_minus): each trial would hold only one of their values."""
    owners: dict[str, str] = {}
    problems = []
    for name, param in params.items():
        stored = param.stored_name(name)
        if stored in owners:
            problems.append(
                f"{owners[stored]} and {name} are both stored as {stored!r} in the study; "
                f"rename one of them"
            )
        owners.setdefault(stored, name)
    return problems


def _condition_problems(
    name: str, other: str, values: Any, earlier: Mapping[str, Any]
) -> list[str]:
    if other not in earlier:
        return [
            f"{name}.condition: refers to '{other}', which is not a parameter declared above "
            f"'{name}' (declare it first, or fix the name)"
        ]
    target = earlier[other] if isinstance(earlier[other], dict) else {}
    choices = target.get("choices")
    if target.get("type") == "categorical" and isinstance(choices, list):
        unknown = [v for v in values if v not in choices] if isinstance(values, list) else []
        if unknown:
            return [
                f"{name}.condition: values {shown(unknown, limit=80)} are not choices of "
                f"'{other}' {shown(choices, limit=80)}"
            ]
    return []


def parse_tiers(text: str | Iterable[int] | None) -> frozenset[int]:
    """Parse ``"1-2"``, ``"1,3"`` or ``"2"`` (or an iterable of ints) into a set of tiers.

    Each bound is checked before a range is expanded, so ``1-1000000000`` is refused at
    once instead of filling memory.
    """
    if text is None:
        return ALL_TIERS
    tiers: frozenset[int] = frozenset()
    try:
        if not isinstance(text, str):
            tiers = frozenset(int(t) for t in text)
        else:
            for part in text.replace(" ", "").split(","):
                low, _, high = part.partition("-")
                bounds = (int(low), int(high or low))
                if not set(bounds) <= ALL_TIERS:
                    raise ValueError(part)
                tiers |= set(range(bounds[0], bounds[1] + 1))
    except (TypeError, ValueError):  # `tiers: 2` in YAML is an int, not text
        tiers = frozenset({0})
    if not tiers or not tiers <= ALL_TIERS:
        raise SpecError(f"tiers must be within 1-4, like '1-2' or '1,3', got {shown(text)}")
    return tiers


def load_space(
    path: str | Path,
    *,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    overrides_source: str | None = None,
) -> SearchSpace:
    """Load and validate a search space file, applying per-parameter field overrides.

    ``path`` may be a bare name (``importance-ranked``): a space shipped with tuner
    (``tuner space list``). Every problem is reported at once in one
    :class:`~tuner.errors.SpecError`, each line naming its file: the space's, or
    ``overrides_source`` (the spec) for bad overrides.

    Example:
        >>> space = load_space("search_spaces/importance-ranked.yaml",
        ...                    overrides={"units": {"high": 256}})
        >>> space.tiers()["learning_rate"]
        1
    """
    path = find_file(path, kind="search_spaces")
    raw = read_yaml_mapping(path, what="search space", hint=not_found_hint("search_spaces"))
    params = raw.get("parameters")
    problems: list[str] = []
    if overrides and isinstance(params, dict):
        unknown = sorted(set(overrides) - set(params))
        if unknown:
            where = f"{overrides_source}: " if overrides_source else ""
            problems.append(
                f"{where}space.overrides names {unknown}, which are not parameters of {path} "
                f"(known: {', '.join(params)})"
            )
        raw["parameters"] = {
            name: _overridden(spec, overrides.get(name, {})) if isinstance(spec, dict) else spec
            for name, spec in params.items()
        }
    try:
        space = validate_model(SearchSpace, raw, source=str(path))
    except SpecError as exc:
        problems.extend(f"{path}: {p}" for p in exc.problems)
        # Parameters with errors of their own stop pydantic before the space-wide checks.
        if isinstance(raw.get("parameters"), dict):
            problems.extend(f"{path}: parameters: {p}" for p in space_problems(raw["parameters"]))
        problems = list(dict.fromkeys(problems))
    if problems:
        raise SpecError(problems)
    return space


def _overridden(spec: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """A parameter with its overrides. New bounds keep only the file's ``grid`` values
    inside them (a shipped grid spans the shipped range), or drop a grid left empty."""
    merged = {**spec, **override}
    if "grid" in override or not {"low", "high"} & set(override):
        return merged
    if not isinstance(spec.get("grid"), list):
        return merged
    try:
        low, high = float(merged["low"]), float(merged["high"])
        kept = [v for v in spec["grid"] if low <= float(v) <= high]
    except (KeyError, TypeError, ValueError):
        return merged  # the space's own checks name what is wrong
    if kept:
        merged["grid"] = kept
    else:
        del merged["grid"]
    return merged
