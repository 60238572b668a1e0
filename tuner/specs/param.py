"""One parameter of a search space: its type, range or choices, tier, default, condition.

``one_minus`` samples ``1 - x`` (stored as ``one_minus_<name>``), so β near 1 is searched on
a log scale; ``power_of_two`` samples the exponent (stored as ``log2_<name>``), so a batch
size stays a power of two and keeps its order for TPE. :class:`ParamDef` converts between
the stored value and the model value both ways.

This module knows nothing of Keras.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import optuna
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tuner.specs.validation import Float, Int

Choice = bool | int | float | str
ALL_TIERS = frozenset({1, 2, 3, 4})

MAX_BOUND = 1e15  # beyond this, samplers lose integer precision and high - low may overflow


class ParamDef(BaseModel):
    """One hyperparameter: its distribution, tier, default and optional condition."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["float", "int", "categorical"]
    # The range is checked in _check, so a bad tier is reported with the other problems.
    tier: Int = Field(
        description="1 = most important (DOMAIN.md)", json_schema_extra={"minimum": 1, "maximum": 4}
    )
    default: Choice
    low: Float | None = None
    high: Float | None = None
    log: bool = False
    step: Float | None = None
    one_minus: bool = Field(False, description="sample 1 - x (floats in (0, 1))")
    power_of_two: bool = Field(False, description="sample the exponent (ints)")
    choices: list[Choice] | None = None
    condition: dict[str, list[Choice]] | None = Field(
        None, description="active only when each named parameter takes one of the values"
    )
    grid: list[Choice] | None = Field(
        None, description="the values the grid sampler tries (model values, within the range)"
    )
    below_max_epochs: bool = Field(
        False, description="an epoch count: its range is cut below the spec's max_epochs"
    )
    description: str = ""

    @model_validator(mode="after")
    def _check(self) -> ParamDef:
        problems = (
            self._categorical_problems() if self.type == "categorical" else self._numeric_problems()
        )
        if self.tier not in ALL_TIERS:
            problems.append(f"tier must be 1, 2, 3 or 4 (1 = most important), got {self.tier}")
        if self.below_max_epochs and self.type != "int":
            problems.append("below_max_epochs is for int parameters (an epoch count)")
        if self.grid is not None and not problems:
            problems.extend(self._grid_problems(self.grid))
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
        else:
            problems.extend(_repeated_choices(self.choices))
            if self.default not in self.choices:
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
        if self.type == "int" and self.step is not None and not float(self.step).is_integer():
            problems.append(f"an int parameter's step must be a whole number, got {self.step}")
        if isinstance(self.default, (bool, str)):
            problems.append(f"default must be a number, got {self.default!r}")
        elif not problems and not self.low <= self.default <= self.high:
            problems.append(
                f"default {self.default} is outside low..high ({self.low}..{self.high}); "
                f"set a default inside the range"
            )
        elif not problems:
            problems.extend(self._default_off_grid())
        return problems

    def _grid_problems(self, grid: list[Choice]) -> list[str]:
        if not grid:
            return ["grid must be a non-empty list of values (or leave it out)"]
        outside = [v for v in grid if not self._takes(v)]
        if outside:
            return [f"grid values {outside} are outside the parameter's {self.describe_range()}"]
        return []

    def _takes(self, value: Choice) -> bool:
        """Whether the parameter can take ``value`` (a model value)."""
        if self.type == "categorical":
            return value in (self.choices or [])
        assert self.low is not None and self.high is not None
        if isinstance(value, (bool, str)) or not self.low <= value <= self.high:
            return False
        if self.type == "int" and not float(value).is_integer():
            return False
        if self.power_of_two:
            return math.log2(value).is_integer()
        return self.step is None or _fits_steps(self.low, value, self.step)

    def _default_off_grid(self) -> list[str]:
        """A default the distribution cannot hold: Optuna would round or warn, silently."""
        assert self.low is not None and isinstance(self.default, (int, float))
        if self.type == "int" and not float(self.default).is_integer():
            return [f"default must be a whole number for an int parameter, got {self.default}"]
        if self.power_of_two and not math.log2(self.default).is_integer():
            return [f"default must be a power of 2 (power_of_two), got {self.default}"]
        if self.step is not None and not _fits_steps(self.low, self.default, self.step):
            return [
                f"default {self.default} is not low + a whole number of steps ({self.low} "
                f"step {self.step}); move it onto the grid"
            ]
        return []

    def _bounds_are_powers_of_two(self) -> bool:
        return all(
            v is not None and v >= 1 and math.log2(v).is_integer() for v in (self.low, self.high)
        )

    # -- the Optuna side -------------------------------------------------------------
    def stored_name(self, name: str) -> str:
        """The parameter's name in Optuna's storage (transformed ones carry a prefix)."""
        if self.one_minus:
            return ONE_MINUS_PREFIX + name
        if self.power_of_two:
            return LOG2_PREFIX + name
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
            return _power_of_two(stored)
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

    def within_epochs(self, max_epochs: int) -> ParamDef:
        """This parameter with its range cut below ``max_epochs`` when it counts epochs
        (``below_max_epochs``): a warm-up of 5 epochs means nothing in a 3-epoch run.

        Example:
            >>> ParamDef(type="int", low=0, high=5, tier=4, default=0,
            ...          below_max_epochs=True).within_epochs(3).high
            2.0
        """
        if not self.below_max_epochs or self.low is None or self.high is None:
            return self
        high = max(self.low, min(self.high, max_epochs - 1))
        kept = [v for v in self.grid or [] if isinstance(v, int | float) and v <= high]
        grid = None if self.grid is None else kept or [self.low]
        return self.model_copy(
            update={"high": high, "default": min(self.default, high), "grid": grid}
        )

    def describe_range(self) -> str:
        """A short human form of the range, e.g. ``1e-05..1 (log)``."""
        if self.type == "categorical":
            return "{" + ", ".join(str(c) for c in self.choices or []) + "}"
        scale = " (log)" if self.log else ""
        step = f" step {self.step:g}" if self.step else ""
        pow2 = " (powers of 2)" if self.power_of_two else ""
        return f"{self.low:g}..{self.high:g}{scale}{step}{pow2}"


ONE_MINUS_PREFIX = "one_minus_"
LOG2_PREFIX = "log2_"


def unstored(stored_name: str) -> tuple[str, Callable[[Any], Any]]:
    """The model's name of a stored parameter and the map from its stored values to the
    model's, read from the name's prefix alone (studies that recorded no space have them too).

    Example:
        >>> name, to_value = unstored("log2_batch_size")
        >>> name, to_value(6)
        ('batch_size', 64)
    """
    if stored_name.startswith(ONE_MINUS_PREFIX):
        return stored_name.removeprefix(ONE_MINUS_PREFIX), _one_minus
    if stored_name.startswith(LOG2_PREFIX):
        return stored_name.removeprefix(LOG2_PREFIX), _power_of_two
    return stored_name, lambda value: value


def _power_of_two(exponent: Any) -> int:
    return 2 ** int(exponent)


def _repeated_choices(choices: list[Choice]) -> list[str]:
    """Choices equal to an earlier one: Optuna (and Python) hold false == 0, 1 == 1.0."""
    pairs = []
    for i, choice in enumerate(choices):
        earlier = next((c for c in choices[:i] if c == choice), None)
        if earlier is not None:
            pairs.append(f"{_yaml_form(earlier)} and {_yaml_form(choice)}")
    if not pairs:
        return []
    return [
        f"choices must differ, but {', '.join(pairs)} are equal (Optuna takes false as 0, "
        f"true as 1, 1 as 1.0); keep one of each, or quote them to make them text"
    ]


def _yaml_form(value: Choice) -> str:
    return str(value).lower() if isinstance(value, bool) else repr(value)


def _fits_steps(low: float, high: float, step: float) -> bool:
    steps = (high - low) / step
    return math.isclose(steps, round(steps), rel_tol=1e-9, abs_tol=1e-9)


def _one_minus(x: float) -> float:
    # Rounded so that 1 - 0.8 is stored as 0.2, not 0.19999999999999996.
    return round(1.0 - float(x), 12)
