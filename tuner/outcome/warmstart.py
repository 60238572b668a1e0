"""Warm start: enqueue known-good configurations, checked against the study's own space.

Values are written as the model uses them (``momentum=0.95``, ``batch_size=64``) and
turned into what Optuna stores (``one_minus_momentum=0.05``, ``log2_batch_size=6``).
Optuna alone accepts an out-of-range enqueued value with a warning; here every
configuration is checked first and nothing is enqueued unless all of them are valid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
import yaml

from tuner import records
from tuner.errors import SpecError
from tuner.outcome.catalog import stored_space
from tuner.specs.param import ParamDef
from tuner.specs.space import SearchSpace
from tuner.specs.validation import StrictYamlLoader, read_yaml
from tuner.storage.queue import spend_on_queued


def parse_assignments(text: str) -> dict[str, Any]:
    """Parse ``"learning_rate=0.01,batch_size=64"``; values are read as YAML scalars.

    Example:
        >>> parse_assignments("learning_rate=0.01,optimizer=adam")
        {'learning_rate': 0.01, 'optimizer': 'adam'}
    """
    values: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, raw = part.partition("=")
        if not sep or not name.strip() or not raw.strip():
            raise SpecError(
                f"--params: {part!r} is not NAME=VALUE; write e.g. learning_rate=0.01,batch_size=64"
            )
        try:  # the strict loader: a one-line alias bomb is as easy to type as a file's
            values[name.strip()] = yaml.load(raw.strip(), Loader=StrictYamlLoader)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or "invalid YAML"
            raise SpecError(
                f"--params: the value of {name.strip()!r} is not valid: {problem}"
            ) from None
    if not values:
        raise SpecError("--params is empty; write e.g. learning_rate=0.01,batch_size=64")
    return values


def read_configurations(path: str | Path) -> list[dict[str, Any]]:
    """Read a YAML file holding one configuration (a mapping) or a list of them."""
    path = Path(path)
    content = read_yaml(path, what="configuration")
    if isinstance(content, list) and content and all(isinstance(c, dict) for c in content):
        return content
    if not isinstance(content, dict):
        raise SpecError(
            f"expected a configuration (a YAML mapping) or a list of them, got "
            f"{type(content).__name__}",
            source=str(path),
        )
    return [content]


def enqueue(study: optuna.Study, configurations: Sequence[Mapping[str, Any]]) -> list[dict]:
    """Validate every configuration, then enqueue them all; return the stored params.

    Within the study's total: each configuration queued takes the place of a trial the
    study has yet to create (a study whose budget is spent grows by them).

    Raises :class:`~tuner.errors.SpecError` listing every problem (an unknown name, a
    parameter this study does not search, a value outside its range) before anything
    is enqueued.

    Example:
        >>> enqueue(study, [{"learning_rate": 0.01, "batch_size": 64}])
        [{'learning_rate': 0.01, 'log2_batch_size': 6}]
    """
    space = stored_space(study)
    if space is None:
        raise SpecError(
            f"study {study.study_name!r} has no stored search space (it was not made by "
            f"`tuner run`); enqueue with Optuna's study.enqueue_trial instead"
        )
    spec = study.user_attrs.get(records.SPEC) or {}
    fixed = (spec.get("space") or {}).get("fixed") or {}
    tiers = study.user_attrs.get(records.TIERS) or [1, 2, 3, 4]
    searched = set(space.searched(tiers=tiers, fixed=fixed))
    problems: list[str] = []
    stored = [to_stored(space, c, searched=searched, problems=problems) for c in configurations]
    if problems:
        raise SpecError(problems)
    before = len(study.get_trials(deepcopy=False))
    for params in stored:
        study.enqueue_trial(params, skip_if_exists=True)
    # Queued configurations run instead of new trials: the study keeps its total.
    spend_on_queued(study, len(study.get_trials(deepcopy=False)) - before)
    return stored


def to_stored(
    space: SearchSpace, values: Mapping[str, Any], *, searched: set[str], problems: list[str]
) -> dict[str, Any]:
    """Stored Optuna params for model ``values``; problems are appended, not raised."""
    stored: dict[str, Any] = {}
    for name, value in values.items():
        param = space.parameters.get(name)
        if param is None:
            problems.append(
                f"unknown parameter {name!r}; this study's parameters are "
                f"{', '.join(space.parameters)}"
            )
        elif name not in searched:
            problems.append(
                f"{name!r} is not searched by this study (tier {param.tier}, or fixed); "
                f"searched: {', '.join(n for n in space.parameters if n in searched)}"
            )
        else:
            problem = value_problem(name, param, value) or _condition_problem(space, name, values)
            if problem:
                problems.append(problem)
            else:
                model_value = int(value) if param.type == "int" else value
                stored[param.stored_name(name)] = param.to_stored(model_value)
    return stored


def value_problem(name: str, param: ParamDef, value: Any) -> str | None:
    """Why ``value`` is not in the parameter's range, or None when it is."""
    where = f"{name}={value!r} is outside the study's range {param.describe_range()}"
    if param.type == "categorical":
        ok = any(value == c and type(value) is type(c) for c in param.choices or [])
        return None if ok else f"{name}={value!r} is not one of {param.describe_range()}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{name}={value!r} is not a number; expected a value in {param.describe_range()}"
    assert param.low is not None and param.high is not None
    if not param.low <= value <= param.high:
        return where
    if param.type == "int" and not float(value).is_integer():
        return f"{name}={value!r} is not a whole number; expected one in {param.describe_range()}"
    if param.power_of_two and not math.log2(value).is_integer():
        return f"{name}={value!r} is not a power of two; expected one in {param.describe_range()}"
    if param.step and not math.isclose(((value - param.low) / param.step) % 1, 0, abs_tol=1e-9):
        return f"{name}={value!r} is not on the grid {param.describe_range()}"
    return None


def _condition_problem(space: SearchSpace, name: str, values: Mapping[str, Any]) -> str | None:
    condition = space.parameters[name].condition or {}
    for other, allowed in condition.items():
        if other in values and values[other] not in allowed:
            return (
                f"{name} is used only when {other} is one of {allowed}, but {other}="
                f"{values[other]!r}; drop {name} or change {other}"
            )
    return None
