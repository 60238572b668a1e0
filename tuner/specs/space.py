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

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import optuna
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tuner.errors import SpecError
from tuner.specs.validation import (
    PARAM_NAME_PATTERN,
    PARAM_NAME_RULE,
    check_name,
    read_yaml_mapping,
    validate_model,
)

Choice = bool | int | float | str
ALL_TIERS = frozenset({1, 2, 3, 4})
MAX_BOUND = 1e15  # beyond this, samplers lose integer precision and high - low may overflow


class ParamDef(BaseModel):
    """One hyperparameter: its distribution, tier, default and optional condition."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["float", "int", "categorical"]
    # The range is checked in _check, so a bad tier is reported with the other problems.
    tier: int = Field(
        description="1 = most important (DOMAIN.md)", json_schema_extra={"minimum": 1, "maximum": 4}
    )
    default: Choice
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    one_minus: bool = Field(False, description="sample 1 - x (floats in (0, 1))")
    power_of_two: bool = Field(False, description="sample the exponent (ints)")
    choices: list[Choice] | None = None
    condition: dict[str, list[Choice]] | None = Field(
        None, description="active only when each named parameter takes one of the values"
    )
    description: str = ""

    @model_validator(mode="after")
    def _check(self) -> ParamDef:
        problems = (
            self._categorical_problems() if self.type == "categorical" else self._numeric_problems()
        )
        if self.tier not in ALL_TIERS:
            problems.append(f"tier must be 1, 2, 3 or 4 (1 = most important), got {self.tier}")
        if problems:  # one line each; problems_from splits them
            raise ValueError("\n".join(problems))
        return self

    def _categorical_problems(self) -> list[str]:
        numeric_only = {"low": self.low, "high": self.high, "step": self.step}
        problems = [f"'{k}' is for float/int parameters" for k, v in numeric_only.items() if v]
        if self.log or self.one_minus or self.power_of_two:
            problems.append("log, one_minus and power_of_two are for float/int parameters")
        if not self.choices:
            problems.append("choices must be a non-empty list for a categorical parameter")
        elif self.default not in self.choices:
            problems.append(f"default {self.default!r} is not one of choices {self.choices}")
        return problems

    def _numeric_problems(self) -> list[str]:
        if self.choices is not None:
            return ["'choices' is for categorical parameters; use low/high here"]
        if self.low is None or self.high is None:
            return [f"low and high are required for a {self.type} parameter"]
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            return [f"bounds must be finite numbers, got low={self.low}, high={self.high}"]
        if max(abs(self.low), abs(self.high)) > MAX_BOUND:
            # Samplers compute high - low and sample in float64: wider ranges overflow.
            return [f"bounds must lie within ±{MAX_BOUND:g}, got low={self.low}, high={self.high}"]
        problems = []
        if self.low > self.high:
            problems.append(
                f"low <= high must hold, got low={self.low}, high={self.high} (swap them)"
            )
        if self.log and self.step is not None:
            problems.append("log and step exclude each other: drop one of them")
        if self.log and self.low <= 0 and not self.one_minus:
            problems.append(f"log scale needs low > 0, got low={self.low} (raise low or drop log)")
        if self.step is not None and self.step <= 0:
            problems.append(f"step must be > 0, got {self.step}")
        elif (
            self.step is not None
            and not problems
            and not _fits_steps(self.low, self.high, self.step)
        ):
            # Optuna would silently move high down to the last whole step.
            problems.append(
                f"high - low must be a whole number of steps, got {self.low}..{self.high} "
                f"step {self.step}; move high to a multiple of step from low"
            )
        if self.one_minus and (self.type != "float" or not 0 <= self.low < self.high < 1):
            problems.append("one_minus needs a float parameter with 0 <= low < high < 1")
        if self.power_of_two and (self.type != "int" or not self._bounds_are_powers_of_two()):
            problems.append(
                "power_of_two needs an int parameter whose low and high are powers of 2"
            )
        if self.type == "int" and not (
            float(self.low).is_integer() and float(self.high).is_integer()
        ):
            problems.append(f"int bounds must be whole numbers, got {self.low}..{self.high}")
        if isinstance(self.default, (bool, str)):
            problems.append(f"default must be a number, got {self.default!r}")
        elif not problems and not self.low <= self.default <= self.high:
            problems.append(
                f"default {self.default} is outside low..high ({self.low}..{self.high}); "
                f"set a default inside the range"
            )
        return problems

    def _bounds_are_powers_of_two(self) -> bool:
        return all(
            v is not None and v >= 1 and math.log2(v).is_integer() for v in (self.low, self.high)
        )

    # -- the Optuna side -------------------------------------------------------------
    def stored_name(self, name: str) -> str:
        """The parameter's name in Optuna's storage (transformed ones carry a prefix)."""
        if self.one_minus:
            return f"one_minus_{name}"
        if self.power_of_two:
            return f"log2_{name}"
        return name

    def distribution(self) -> optuna.distributions.BaseDistribution:
        """The Optuna distribution of the stored (possibly transformed) value."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if self.type == "categorical":
            return CategoricalDistribution(list(self.choices or []))
        assert self.low is not None and self.high is not None
        if self.one_minus:
            return FloatDistribution(_one_minus(self.high), _one_minus(self.low), log=self.log)
        if self.power_of_two:
            return IntDistribution(int(math.log2(self.low)), int(math.log2(self.high)))
        if self.type == "int":
            return IntDistribution(
                int(self.low), int(self.high), log=self.log, step=int(self.step or 1)
            )
        return FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def to_value(self, stored: Any) -> Choice:
        """Map a stored Optuna value back to the value the model uses."""
        if self.one_minus:
            return _one_minus(stored)
        if self.power_of_two:
            return 2 ** int(stored)
        if self.type == "int":
            return int(stored)
        if self.type == "float":
            return float(stored)
        return stored  # type: ignore[no-any-return]

    def to_stored(self, value: Any) -> Any:
        """Map a model value to the stored Optuna value (inverse of :meth:`to_value`)."""
        if self.one_minus:
            return _one_minus(value)
        if self.power_of_two:
            return round(math.log2(value))
        return value

    def describe_range(self) -> str:
        """A short human form of the range, e.g. ``1e-05..1 (log)``."""
        if self.type == "categorical":
            return "{" + ", ".join(str(c) for c in self.choices or []) + "}"
        scale = " (log)" if self.log else ""
        step = f" step {self.step:g}" if self.step else ""
        pow2 = " (powers of 2)" if self.power_of_two else ""
        return f"{self.low:g}..{self.high:g}{scale}{step}{pow2}"


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
        if problems:
            raise ValueError("\n".join(problems))
        return params

    # -- queries ---------------------------------------------------------------------
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
            >>> params = space.suggest(trial, tiers={1, 2})
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


def _fits_steps(low: float, high: float, step: float) -> bool:
    steps = (high - low) / step
    return math.isclose(steps, round(steps), rel_tol=1e-9, abs_tol=1e-9)


def _one_minus(x: float) -> float:
    # Rounded so that 1 - 0.8 is stored as 0.2, not 0.19999999999999996.
    return round(1.0 - float(x), 12)


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
            return [f"{name}.condition: values {unknown} are not choices of '{other}' {choices}"]
    return []


def parse_tiers(text: str | Iterable[int] | None) -> frozenset[int]:
    """Parse ``"1-2"``, ``"1,3"`` or ``"2"`` (or an iterable of ints) into a set of tiers."""
    if text is None:
        return ALL_TIERS
    if not isinstance(text, str):
        tiers = frozenset(int(t) for t in text)
    else:
        tiers = frozenset()
        try:
            for part in text.replace(" ", "").split(","):
                low, _, high = part.partition("-")
                tiers |= set(range(int(low), int(high or low) + 1))
        except ValueError:
            tiers = frozenset({0})
    if not tiers or not tiers <= ALL_TIERS:
        raise SpecError(f"tiers must be within 1-4, like '1-2' or '1,3', got {text!r}")
    return tiers


def load_space(
    path: str | Path,
    *,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    overrides_source: str | None = None,
) -> SearchSpace:
    """Load and validate a search space file, applying per-parameter field overrides.

    Every problem is reported at once in one :class:`~tuner.errors.SpecError`, each line
    naming its file: the space's, or ``overrides_source`` (the spec) for bad overrides.

    Example:
        >>> space = load_space("search_spaces/importance-ranked.yaml",
        ...                    overrides={"units": {"high": 256}})
        >>> space.tiers()["learning_rate"]
        1
    """
    path = Path(path)
    raw = read_yaml_mapping(path, what="search space")
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
            name: {**spec, **overrides.get(name, {})} if isinstance(spec, dict) else spec
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
