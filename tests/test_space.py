"""Search spaces: the shipped files, tiers, transforms and conditions, sampled by Optuna."""

from __future__ import annotations

import math

import optuna
import pytest

from tests.conftest import ROOT
from tuner.errors import SpecError
from tuner.specs.space import load_space, parse_tiers

RANKED = ROOT / "search_spaces" / "importance-ranked.yaml"


def test_importance_ranked_declares_the_textbook_tiers():
    tiers = load_space(RANKED).tiers()
    assert tiers["learning_rate"] == 1
    assert {tiers["one_minus_momentum"], tiers["log2_batch_size"], tiers["units"]} == {2}
    assert {tiers["layers"], tiers["lr_schedule"], tiers["lr_decay_rate"]} == {3}
    assert {tiers["beta_1"], tiers["one_minus_beta_2"], tiers["epsilon"]} == {4}


def test_transforms_keep_textbook_scales():
    space = load_space(RANKED)
    momentum = space.distributions()["one_minus_momentum"]
    assert momentum.log and math.isclose(momentum.low, 0.001) and math.isclose(momentum.high, 0.2)
    batch = space.distributions()["log2_batch_size"]
    assert (batch.low, batch.high) == (4, 10)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(30):
        values = space.suggest(study.ask())
        assert values["batch_size"] in {16, 32, 64, 128, 256, 512, 1024}
        assert 0.8 <= values["momentum"] <= 0.999


def test_conditions_leave_inactive_parameters_unsampled_at_their_defaults():
    space = load_space(RANKED)
    study = optuna.create_study()
    study.enqueue_trial({"optimizer": "adam"})
    trial = study.ask()
    values = space.suggest(trial)
    assert "one_minus_momentum" not in trial.params  # momentum only for SGD-like optimizers
    assert values["momentum"] == 0.9
    assert "beta_1" in trial.params


def test_tiers_select_what_is_searched():
    space = load_space(RANKED)
    trial = optuna.create_study().ask()
    values = space.suggest(trial, tiers=parse_tiers("1"))
    assert set(trial.params) == {"learning_rate"}
    assert values["units"] == 128 and values["optimizer"] == "adam"


@pytest.mark.parametrize("text, expected", [("1-2", {1, 2}), ("1,3", {1, 3}), ("4", {4})])
def test_parse_tiers(text, expected):
    assert parse_tiers(text) == expected


@pytest.mark.parametrize("text", ["0", "1-5", "a", ""])
def test_parse_tiers_refuses_what_is_not_a_tier(text):
    with pytest.raises(SpecError, match="tiers must be within 1-4"):
        parse_tiers(text)


def test_every_problem_of_a_space_is_reported_at_once(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "parameters:\n"
        "  lr: {type: float, low: 1, high: 0.1, tier: 1, default: 0.5}\n"
        "  units: {type: int, low: 0, high: 10, log: true, tier: 2, default: 4}\n"
        "  act: {type: categorical, choices: [], tier: 3, default: relu}\n"
        "  depth: {type: int, low: 1, high: 3, tier: 7, default: 2}\n"
    )
    with pytest.raises(SpecError) as info:
        load_space(bad)
    message = str(info.value)
    assert "low <= high must hold, got low=1.0, high=0.1" in message
    assert "log scale needs low > 0" in message
    assert "choices must be a non-empty list" in message
    assert "parameters.depth: tier must be 1, 2, 3 or 4" in message
    assert message.count("bad.yaml") == len(info.value.problems) >= 3


def test_round_trip_between_model_values_and_stored_values():
    space = load_space(RANKED)
    stored = {"one_minus_momentum": 0.05, "log2_batch_size": 6, "learning_rate": 0.01}
    values = space.values_from_stored(stored)
    assert values["momentum"] == 0.95 and values["batch_size"] == 64
    param = space.parameters["momentum"]
    assert param.to_stored(values["momentum"]) == 0.05


def test_the_default_trial_holds_the_searched_active_defaults_as_optuna_stores_them():
    space = load_space(RANKED)
    assert space.default_trial(tiers={1, 2}) == {
        "learning_rate": 1e-3,
        "log2_batch_size": 5,  # batch size 32, searched as its exponent
        "units": 128,
    }  # momentum is inactive under the default optimizer (adam)
    with_momentum = space.default_trial(tiers={1, 2}, fixed={"optimizer": "momentum"})
    assert with_momentum["one_minus_momentum"] == pytest.approx(0.1)  # β = 0.9
    assert "learning_rate" not in space.default_trial(tiers={1}, fixed={"learning_rate": 0.1})


def test_narrowed_bounds_keep_the_shipped_grid_values_inside_them():
    # A spec narrowing the learning rate must not be refused for the shipped grid's 0.1.
    shipped = ROOT / "search_spaces" / "importance-ranked.yaml"
    narrowed = load_space(shipped, overrides={"learning_rate": {"high": 1e-2}})
    assert narrowed.parameters["learning_rate"].grid == [1e-4, 1e-3, 1e-2]
    none_left = load_space(shipped, overrides={"learning_rate": {"low": 0.2, "default": 0.3}})
    assert none_left.parameters["learning_rate"].grid is None
    with pytest.raises(SpecError, match="grid values"):  # a grid the user gives is checked
        load_space(shipped, overrides={"learning_rate": {"high": 1e-2, "grid": [0.1]}})
