"""Property: a space the loader accepts can be sampled by every sampler; one it rejects
is rejected with a SpecError whose every line names the file (RELIABILITY row 4).

Hypothesis writes random search-space files, valid and broken alike (reversed and
infinite bounds, log with step, empty choices, odd names, dangling conditions), and
loads them the way `tuner run` does.
"""

from __future__ import annotations

import importlib.util
import math
import tempfile
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tuner.errors import SpecError
from tuner.search.samplers import make_sampler
from tuner.specs.space import SearchSpace, load_space
from tuner.specs.spec import SAMPLERS

NUMBERS = st.one_of(
    st.integers(-5, 2000),
    st.floats(-10, 10, allow_nan=False),
    st.sampled_from([0.0, 1e-5, 0.5, 0.999, 1.0, 16, 1024, 1e15, 1e300, -1e300]),
    st.sampled_from([math.nan, math.inf, -math.inf]),
)
CHOICES = st.one_of(st.booleans(), st.integers(-3, 3), st.sampled_from(["relu", "tanh", "a'b"]))
NAMES = st.one_of(
    st.sampled_from(["lr", "units", "optimizer", "beta_1", "dropout", "_x", "x" * 64]),
    st.sampled_from(["lr", "units", "optimizer", "beta_1", "dropout", "_x", "x" * 64]),
    st.sampled_from(["1x", "learning rate", "a\x00b", "é", "x" * 65, "a-b", "it's"]),
)


@st.composite
def valid_params(draw: st.DrawFn) -> dict[str, Any]:
    """Parameters built to satisfy the rules, in every shape the loader knows."""
    kind = draw(st.sampled_from(["float", "int", "categorical", "one_minus", "power_of_two"]))
    tier = draw(st.integers(1, 4))
    if kind == "categorical":
        choices = draw(st.lists(CHOICES, min_size=1, max_size=4, unique_by=repr))
        return {"type": kind, "choices": choices, "default": choices[-1], "tier": tier}
    if kind == "one_minus":
        low = draw(st.floats(0, 0.9))
        high = draw(st.floats(low + 1e-3, 0.999))
        return {"type": "float", "low": low, "high": high, "one_minus": True, "log": True,
                "default": high, "tier": tier}  # fmt: skip
    if kind == "power_of_two":
        a, b = sorted(draw(st.lists(st.integers(0, 12), min_size=2, max_size=2)))
        return {"type": "int", "low": 2**a, "high": 2**b, "power_of_two": True,
                "default": 2**a, "tier": tier}  # fmt: skip
    log = draw(st.booleans())
    if kind == "int":
        low = draw(st.integers(1 if log else -50, 100))
        high = low + draw(st.integers(0, 10**6) if log else st.sampled_from([0, 7, 200, 10**12]))
        step = None if log else draw(st.sampled_from([None, 1, 3]))
    else:
        low = draw(st.floats(1e-8, 10) if log else st.floats(-1e6, 1e6))
        step = None if log else draw(st.sampled_from([None, 0.5]))
        high = low + (draw(st.floats(0, 1e4)) if step is None else step * draw(st.integers(0, 99)))
    param = {"type": kind, "low": low, "high": high, "log": log, "default": low, "tier": tier}
    return param if step is None else {**param, "step": step}


@st.composite
def broken_params(draw: st.DrawFn) -> dict[str, Any]:
    """Anything at all: most of these break a rule, some by accident do not."""
    kind = draw(st.sampled_from(["float", "int", "categorical", "double"]))
    param: dict[str, Any] = {"type": kind, "tier": draw(st.integers(0, 5))}
    if kind == "categorical" or draw(st.integers(0, 9)) == 0:
        choices = draw(st.lists(CHOICES, max_size=4, unique_by=repr))
        param["choices"] = choices
        param["default"] = draw(st.sampled_from(choices)) if choices else "relu"
    if kind != "categorical" or draw(st.integers(0, 9)) == 0:
        low, high = draw(NUMBERS), draw(NUMBERS)
        param |= {"low": low, "high": high, "default": draw(st.one_of(st.just(low), NUMBERS))}
        param["log"] = draw(st.booleans())
        if draw(st.integers(0, 3)) == 0:
            param["step"] = draw(st.sampled_from([0.1, 1, 2, 0, -1]))
        if draw(st.integers(0, 4)) == 0:
            param["one_minus" if kind == "float" else "power_of_two"] = True
    return param


def params() -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(valid_params(), valid_params(), valid_params(), broken_params())


@st.composite
def spaces(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(NAMES, min_size=1, max_size=4, unique=True))
    parameters = {name: draw(params()) for name in names}
    if len(names) > 1 and draw(st.booleans()):  # a condition on another (maybe later) parameter
        target = draw(st.sampled_from([*names[:-1], *names[:-1], names[-1], "missing"]))
        values = parameters.get(target, {}).get("choices") or [draw(CHOICES)]
        parameters[names[-1]]["condition"] = {target: values[:1]}
    return {"name": "generated", "parameters": parameters}


def _objective(space: SearchSpace):
    def objective(trial: optuna.Trial) -> float:
        values = space.suggest(trial)
        assert set(values) == set(space.parameters)
        for name, value in values.items():
            _assert_within(space, name, value)
        return float(sum(len(repr(v)) for v in values.values()))

    return objective


def _assert_within(space: SearchSpace, name: str, value: Any) -> None:
    param = space.parameters[name]
    if param.type == "categorical":
        assert value in (param.choices or [])
    else:
        assert param.low is not None and param.high is not None
        tolerance = 1e-9 * max(1.0, abs(param.high))
        assert param.low - tolerance <= value <= param.high + tolerance, (name, value)


def _samplers(space: SearchSpace) -> list[str]:
    """The samplers to try: all but those whose package is missing (checked separately)."""
    usable = []
    for name in SAMPLERS:
        try:
            make_sampler(name, {}, seed=0, space=space)
        except SpecError as exc:
            # The only refusals allowed: grid on parameters it cannot enumerate, or a
            # sampler whose optional package is not installed.
            assert "grid sampler" in str(exc) or "not installed" in str(exc), str(exc)
            continue
        usable.append(name)
    return usable


# Small start-up counts so that the model-based samplers model after two trials.
OPTIONS: dict[str, dict[str, Any]] = {
    "tpe": {"n_startup_trials": 2},
    "gp": {"n_startup_trials": 2},
    "cmaes": {"n_startup_trials": 2},
}


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(raw=spaces())
def test_accepted_spaces_sample_everywhere_and_rejected_ones_say_why(raw: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "space.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
        try:
            space = load_space(path)
        except SpecError as exc:
            lines = str(exc).splitlines()
            assert lines
            event("rejected")
            assert all(
                line.startswith(f"{path}: ") and len(line) > len(str(path)) + 8 for line in lines
            )
            return
    event("accepted")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    for name in _samplers(space):
        sampler = make_sampler(name, OPTIONS.get(name, {}), seed=0, space=space)
        study = optuna.create_study(sampler=sampler)
        study.optimize(_objective(space), n_trials=4)  # any exception fails the property
        states = {t.state for t in study.trials}
        assert states == {optuna.trial.TrialState.COMPLETE}, (name, states)


@pytest.mark.parametrize("name", ["gp", "cmaes"])
def test_a_sampler_whose_package_is_missing_is_refused_up_front(name: str) -> None:
    module = {"gp": "torch", "cmaes": "cmaes"}[name]
    if importlib.util.find_spec(module) is not None:
        make_sampler(name, {}, seed=0)  # installed: it builds
        return
    with pytest.raises(SpecError, match=f"needs the Python package '{module}'"):
        make_sampler(name, {}, seed=0)
