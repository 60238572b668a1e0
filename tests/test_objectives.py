"""Several objectives and constraints without training: specs, plain-Optuna studies that a
script wrote (read by `tuner best` and `tuner report`), choosing one trial of a front."""

from __future__ import annotations

import json
import math

import optuna
import pytest
from click.testing import CliRunner
from optuna.distributions import FloatDistribution
from optuna.trial import create_trial

import tuner.reporting
from tuner.cli import main
from tuner.errors import NoCompletedTrialError, SpecError
from tuner.execution.run import prepare_run
from tuner.outcome.pareto import choose, objectives_of, pareto_front
from tuner.specs.spec import load_spec

TWO = [
    {"name": "val_accuracy", "direction": "maximize"},
    {"name": "n_params", "direction": "minimize"},
]


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), prog_name="tuner")


# -- specs -------------------------------------------------------------------------------


def test_metrics_and_constraints_are_read_and_the_primary_is_the_first_validation_metric(
    tiny_spec,
):
    spec = load_spec(
        tiny_spec(
            metrics=[TWO[1], TWO[0]],
            constraints={"n_params": {"max": 2e5}, "latency_ms": {"max": 5}},
        )
    ).spec
    assert spec.multi_objective and [m.name for m in spec.metrics] == ["n_params", "val_accuracy"]
    assert (spec.metric, spec.direction) == ("val_accuracy", "maximize")
    assert spec.constraints["n_params"].max == 2e5
    # the stored form (all three keys) validates again, as a joining worker reads it
    again = type(spec).model_validate(spec.model_dump(mode="json"))
    assert again.metrics == spec.metrics


def test_metric_and_direction_still_make_a_single_objective_study(tiny_spec):
    spec = load_spec(tiny_spec(metric="val_loss", direction="minimize")).spec
    assert not spec.multi_objective
    assert [(m.name, m.direction) for m in spec.metrics] == [("val_loss", "minimize")]


@pytest.mark.parametrize(
    ("changes", "line"),
    [
        (
            {"metrics": [{"name": "n_params", "direction": "minimize"}]},
            "metrics: at least one objective must be a validation metric (val_*)",
        ),
        (
            {"metrics": [TWO[0], {"name": "flops", "direction": "minimize"}]},
            "metrics: 'flops' is not a measure tuner records",
        ),
        ({"metrics": TWO, "strategy": "staged"}, "strategy: staged decides each stage"),
        ({"metrics": TWO, "sampler": "cmaes"}, "sampler: cmaes optimizes one objective"),
        (
            {"metric": "val_loss", "metrics": TWO},
            "metric: give either metric + direction or metrics, not both",
        ),
        ({"constraints": {"n_params": {}}}, "constraints.n_params: give min, max or both"),
        (
            {"constraints": {"latency_ms": {"min": 3, "max": 1}}},
            "constraints.latency_ms: min <= max must hold, got min=3, max=1",
        ),
        ({"constraints": {"speed": {"max": 1}}}, "constraints: 'speed' is not a measure"),
    ],
)
def test_objectives_that_cannot_work_are_refused_in_one_line_each(tiny_spec, changes, line):
    path = tiny_spec(**changes)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    lines = str(caught.value).splitlines()
    assert any(shown.startswith(f"{path}: {line}") for shown in lines), lines


def test_a_builder_may_name_its_own_measures(tiny_spec):
    spec = load_spec(
        tiny_spec(
            model={"builder": "mypkg:build"},
            metrics=[TWO[0], {"name": "flops", "direction": "minimize"}],
            constraints={"flops": {"max": 1e6}},
        )
    ).spec
    assert [m.name for m in spec.metrics] == ["val_accuracy", "flops"]


def test_staged_given_on_the_command_line_is_refused_before_anything_is_written(
    tiny_spec, tmp_path
):
    resolved = load_spec(tiny_spec(metrics=TWO))
    db = tmp_path / "never.db"
    with pytest.raises(SpecError, match="strategy: staged decides each stage"):
        prepare_run(resolved, storage_url=f"sqlite:///{db}", strategy="staged")
    assert not db.exists()


# -- plain-Optuna studies written by a script ----------------------------------------------


def _two_objective_study(url: str | None, n_trials: int = 60) -> optuna.Study:
    """Minimise x**2 and (y-1)**2 + z/100 with the constraint x <= 0.8: x drives the first
    objective, y the second, z nearly nothing."""
    study = optuna.create_study(
        study_name="script",
        storage=url,
        directions=["minimize", "minimize"],
        sampler=optuna.samplers.RandomSampler(seed=1),
    )

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        x, y, z = (trial.suggest_float(n, 0, 2) for n in "xyz")
        trial.set_constraint("x.max", x - 0.8)
        return x**2, (y - 1) ** 2 + z / 100

    study.optimize(objective, n_trials=n_trials)
    return study


def test_best_lists_a_scripted_studys_front_without_infeasible_trials(sqlite_url):
    study = _two_objective_study(sqlite_url)
    done = invoke("best", "script", "--storage", sqlite_url, "--format", "json")
    assert done.exit_code == 0, done.output
    front = json.loads(done.stdout)
    expected = {t.number for t in study.best_trials}  # Optuna's own front
    assert {r["trial"] for r in front} == expected and expected
    trials = {t.number: t for t in study.trials}
    for row in front:
        assert trials[row["trial"]].params["x"] <= 0.8  # feasible
        assert row["objective_0"] == trials[row["trial"]].values[0]
    infeasible = [t for t in study.trials if t.params["x"] > 0.8]
    assert infeasible and not {t.number for t in infeasible} & {r["trial"] for r in front}
    # no trial outside the front is dominated by none of it (it is the whole front)
    values = [(r["objective_0"], r["objective_1"]) for r in front]
    for a in values:
        assert not any(b[0] <= a[0] and b[1] <= a[1] and b != a for b in values)


def test_report_of_a_scripted_study_measures_importance_per_objective():
    data = tuner.reporting.report(_two_objective_study(None, 80), n_bootstrap=3)
    pareto = data["pareto"]
    assert [o["name"] for o in pareto["objectives"]] == ["objective_0", "objective_1"]
    assert pareto["n_infeasible"] > 0 and len(pareto["front"]) > 0
    tops = {o["objective"]: o["rows"][0]["name"] for o in pareto["importance"]}
    assert tops == {"objective_0": "x", "objective_1": "y"}
    assert json.loads(json.dumps(data, allow_nan=False))["pareto"]["front"]


def test_tuner_best_and_summaries_skip_infeasible_trials_of_a_single_objective(sqlite_url):
    study = optuna.create_study(study_name="limited", storage=sqlite_url, direction="maximize")
    x = {"x": FloatDistribution(0, 1)}
    # the highest value breaks its constraint: the best feasible trial is number 1
    for number, (value, violation) in enumerate([(0.9, 0.4), (0.7, -0.1), (0.5, -0.3)]):
        study.add_trial(
            create_trial(
                params={"x": value}, distributions=x, value=value, constraints={"c": violation}
            )
        )
        assert study.trials[number].value == value
    done = invoke("best", "limited", "--storage", sqlite_url, "--format", "json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["trial"] == study.best_trial.number == 1
    listed = invoke("studies", "list", "--storage", sqlite_url, "--format", "json")
    assert json.loads(listed.stdout)[0]["best"] == 0.7
    assert tuner.reporting.report(study)["summary"]["best"]["trial"] == 1


# -- choosing one trial of a front -----------------------------------------------------------


@pytest.fixture
def front_study() -> optuna.Study:
    """Five trials of (val_accuracy max, n_params min), four on the front."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_user_attr("tuner_spec", {"metrics": TWO})
    x = {"x": FloatDistribution(0, 1)}
    points = [(0.97, 90_000, 3.0), (0.95, 40_000, 1.0), (0.90, 9_000, 0.2), (0.6, 2_000, 0.1)]
    points.append((0.89, 50_000, 0.5))  # dominated by the second
    for accuracy, size, latency in points:
        study.add_trial(
            create_trial(
                params={"x": accuracy},
                distributions=x,
                values=[accuracy, size],
                user_attrs={"latency_ms": latency, "epochs": 3},
            )
        )
    return study


def test_pick_takes_the_most_accurate_trial_that_meets_every_condition(front_study):
    front, goals = pareto_front(front_study), objectives_of(front_study)
    assert [t.number for t in front] == [0, 1, 2, 3]  # best val_accuracy first
    assert choose(front, objectives=goals).number == 0
    assert choose(front, objectives=goals, pick="n_params<=5e4").number == 1
    assert choose(front, objectives=goals, pick="n_params<=5e4 and latency_ms<1").number == 2
    assert choose(front, objectives=goals, pick="n_params<1e4, latency_ms<=0.1").number == 3
    assert "epochs" not in front[0].measures  # tuner's own records are no measures
    with pytest.raises(NoCompletedTrialError, match="n_params on the front: 2000 to 9e"):
        choose(front, objectives=goals, pick="n_params<100")


def test_weights_score_objectives_scaled_over_the_front(front_study):
    front, goals = pareto_front(front_study), objectives_of(front_study)
    # accuracy alone: the most accurate; size alone: the smallest
    assert choose(front, objectives=goals, weights="val_accuracy=1").number == 0
    assert choose(front, objectives=goals, weights="n_params=1").number == 3
    # both alike: 0.90 (scaled 0.81) with 9,000 parameters (scaled 0.92) sums highest
    scores = {
        t.number: (t.values["val_accuracy"] - 0.6) / 0.37 + (90_000 - t.values["n_params"]) / 88_000
        for t in front
    }
    best = max(scores, key=lambda n: scores[n])
    assert best == 2 and math.isclose(scores[2], 0.81 + 0.92, abs_tol=0.01)
    assert choose(front, objectives=goals, weights={"val_accuracy": 1, "n_params": 1}).number == 2


@pytest.mark.parametrize(
    ("pick", "weights", "message"),
    [
        ("n_params=<5", None, "--pick: 'n_params=<5' is not a condition"),
        ("speed<3", None, "--pick: speed is not measured on this study's trials"),
        (None, "val_accuracy", "--weights: 'val_accuracy' is not NAME=NUMBER"),
        (None, "size=1", "--weights: size is not an objective"),
        (None, "val_accuracy=-1", "--weights: val_accuracy=-1 is negative"),
    ],
)
def test_a_malformed_choice_is_one_clear_line(front_study, pick, weights, message):
    with pytest.raises(SpecError) as caught:
        choose(
            pareto_front(front_study),
            objectives=objectives_of(front_study),
            pick=pick,
            weights=weights,
        )
    assert str(caught.value).startswith(message)


def test_pick_on_a_single_objective_study_says_what_to_do(sqlite_url):
    study = optuna.create_study(study_name="one", storage=sqlite_url)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    done = invoke("best", "one", "--storage", sqlite_url, "--pick", "x<1")
    assert done.exit_code == 2
    assert done.stderr.splitlines() == [
        "Error: --pick and --weights choose from the Pareto front of a study of several "
        "objectives; 'one' has one: leave them out to see its best trial"
    ]
