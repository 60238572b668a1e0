"""`tuner enqueue`: known-good configurations are tried first; values outside the space
are refused before anything is enqueued."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from tests.conftest import ROOT
from tuner import records
from tuner.errors import SpecError
from tuner.outcome.warmstart import enqueue, parse_assignments, read_configurations
from tuner.specs.space import load_space


@pytest.fixture
def study(sqlite_url):
    """A study as `tuner run` records it, before any trial: space and tiers 1-2 stored."""
    space = load_space(ROOT / "search_spaces" / "importance-ranked.yaml")
    made = optuna.create_study(study_name="warm", storage=sqlite_url, direction="maximize")
    made.set_user_attr(records.SPACE, space.model_dump(mode="json"))
    made.set_user_attr(records.TIERS, [1, 2])
    return made


def _waiting(study):
    return study.get_trials(deepcopy=False, states=(TrialState.WAITING,))


def test_values_are_stored_as_optuna_records_them(study):
    stored = enqueue(study, [parse_assignments("learning_rate=0.01,batch_size=64,units=128")])
    assert stored == [{"learning_rate": 0.01, "log2_batch_size": 6, "units": 128}]
    assert _waiting(study)[0].system_attrs["fixed_params"] == stored[0]


def test_a_value_outside_the_range_is_refused_naming_parameter_and_range(study):
    with pytest.raises(SpecError) as caught:
        enqueue(study, [{"learning_rate": 0.01}, {"learning_rate": 5.0, "batch_size": 100}])
    assert caught.value.problems == [
        "learning_rate=5.0 is outside the study's range 1e-05..1 (log)",
        "batch_size=100 is not a power of two; expected one in 16..1024 (powers of 2)",
    ]
    assert _waiting(study) == []  # the valid first configuration was not enqueued either


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"lr": 0.1}, "unknown parameter 'lr'; this study's parameters are optimizer, "),
        ({"layers": 2}, "'layers' is not searched by this study (tier 3, or fixed)"),
        ({"learning_rate": "fast"}, "learning_rate='fast' is not a number"),
        ({"momentum": 1.5}, "momentum=1.5 is outside the study's range 0.8..0.999 (log)"),
    ],
)
def test_every_kind_of_bad_value_is_named(study, values, fragment):
    with pytest.raises(SpecError) as caught:
        enqueue(study, [values])
    assert fragment in str(caught.value)


def test_a_condition_that_cannot_hold_is_refused(sqlite_url, study):
    study.set_user_attr(records.TIERS, [1, 2, 3])
    with pytest.raises(SpecError, match="momentum is used only when optimizer is one of"):
        enqueue(study, [{"optimizer": "adam", "momentum": 0.95}])


def test_a_file_holds_one_configuration_or_a_list(tmp_path):
    one, many = tmp_path / "one.yaml", tmp_path / "many.yaml"
    one.write_text("learning_rate: 0.01\n")
    many.write_text("- {learning_rate: 0.01}\n- {learning_rate: 0.1, batch_size: 32}\n")
    assert read_configurations(one) == [{"learning_rate": 0.01}]
    assert len(read_configurations(many)) == 2


@pytest.mark.slow
def test_enqueued_parameters_are_the_first_ones_the_next_run_tries(cli, tiny_spec, sqlite_url):
    spec = str(tiny_spec(budget={"n_trials": 1}))
    assert cli("run", spec, "--storage", sqlite_url).returncode == 0
    done = cli(
        "enqueue",
        "tiny",
        "--storage",
        sqlite_url,
        "--params",
        "optimizer=nesterov,learning_rate=0.05,momentum=0.95,batch_size=64,units=40",
    )
    assert done.returncode == 0, done.stderr
    resumed = cli("run", spec, "--storage", sqlite_url, "--resume", "--n-trials", "2")
    assert resumed.returncode == 0, resumed.stderr
    trial = optuna.load_study(study_name="tiny", storage=sqlite_url).trials[1]
    assert trial.state == TrialState.COMPLETE
    assert {k: trial.params[k] for k in ("optimizer", "learning_rate", "units")} == {
        "optimizer": "nesterov",
        "learning_rate": 0.05,
        "units": 40,
    }
    assert trial.params["one_minus_momentum"] == pytest.approx(0.05)
    assert trial.params["log2_batch_size"] == 6


def test_out_of_space_enqueue_on_the_command_line_is_one_line_per_problem(cli, study, sqlite_url):
    done = cli("enqueue", "warm", "--storage", sqlite_url, "--params", "learning_rate=2")
    assert done.returncode == 2
    assert done.stderr == "Error: learning_rate=2 is outside the study's range 1e-05..1 (log)\n"
