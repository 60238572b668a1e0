"""Importance with intervals on studies whose true importance is known."""

from __future__ import annotations

import math
import random

import optuna
import pytest

from tuner.errors import ReportError
from tuner.search._curves import curve_trials
from tuner.search.importance import compare_with_declared, measure_importance

optuna.logging.set_verbosity(optuna.logging.ERROR)


def known_study(n_trials: int, *, seed: int = 0) -> optuna.Study:
    """Only x and c matter (x a float, c a categorical); five noise parameters."""
    rnd = random.Random(seed)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 1e-4, 1.0, log=True)
        c = trial.suggest_categorical("c", ["good", "bad", "worse"])
        for i in range(3):
            trial.suggest_float(f"noise_{i}", 0.0, 1.0)
        trial.suggest_int("noise_int", 1, 8)
        trial.suggest_categorical("noise_cat", ["a", "b"])
        penalty = {"good": 0.0, "bad": 1.5, "worse": 3.0}[c]
        return (math.log10(x) + 2) ** 2 + penalty + 0.01 * rnd.random()

    study.optimize(objective, n_trials=n_trials)
    return study


@pytest.fixture(scope="module")
def known() -> dict:
    return measure_importance(known_study(200), n_bootstrap=12)


def test_the_two_real_parameters_rank_top_with_separate_intervals(known):
    params = known["params"]
    assert {p["name"] for p in params[:2]} == {"x", "c"}
    assert min(p["low"] for p in params[:2]) > max(p["high"] for p in params[2:])
    assert [p["rank"] for p in params] == list(range(1, 8))
    assert all(p["rank_low"] == p["rank"] == p["rank_high"] for p in params[:2])
    c = next(p for p in params if p["name"] == "c")
    assert c["kind"] == "categorical"


def test_every_evaluator_ran_and_they_agree(known):
    assert set(known["evaluators"]) == {"ped_anova", "fanova", "mean_decrease_impurity"}
    assert all(info["error"] is None for info in known["evaluators"].values())
    assert known["agreement"]["agree"] is True
    assert known["agreement"]["statement"].startswith("All 3 evaluators agree on the top 2")
    for p in known["params"]:
        for ev in p["by_evaluator"].values():
            assert 0 <= ev["low"] <= ev["importance"] <= ev["high"] <= 1


def test_intervals_narrow_with_more_trials():
    small = measure_importance(known_study(60), n_bootstrap=10, evaluators=["ped_anova"])
    large = measure_importance(known_study(600), n_bootstrap=10, evaluators=["ped_anova"])

    def width(result: dict) -> float:
        return sum(p["high"] - p["low"] for p in result["params"])

    assert width(large) < width(small)


def test_subsampling_bounds_the_trials_used():
    result = measure_importance(known_study(300), n_bootstrap=2, max_trials=100)
    assert result["n_complete"] == 300 and result["n_used"] == 100
    assert result["evaluators"]["fanova"]["n_trials"] == 100


def test_too_few_trials_says_how_many():
    result = measure_importance(known_study(10))
    assert result["status"] == "too_few_trials"
    assert result["min_trials"] == 28  # 4 per parameter, 7 parameters
    assert "at least 28 complete trials" in result["message"] and "has 10" in result["message"]
    rows = compare_with_declared(result, {"x": 1, "c": 2})
    assert {r["name"] for r in rows} >= {"x", "c"}
    assert {r["verdict"] for r in rows if r["name"] in {"x", "c"}} == {"not enough evidence"}


def test_verdicts_against_declared_tiers(known):
    # x and c truly matter; declare c as tier 4 and a noise parameter as tier 1
    tiers = {"x": 1, "c": 4, "noise_0": 1, "noise_1": 3, "noise_2": 3, "noise_int": 4}
    rows = {r["name"]: r for r in compare_with_declared(known, tiers)}
    assert rows["c"]["verdict"] == "more important than declared"
    assert rows["noise_0"]["verdict"] == "less important than declared"
    assert rows["noise_0"]["expected_ranks"] == [1, 2]
    assert rows["x"]["verdict"] == "agrees"
    assert rows["noise_cat"]["verdict"] == "no declared tier"


def test_conditional_parameters_are_measured_by_ped_anova_only():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))

    def objective(trial: optuna.Trial) -> float:
        opt = trial.suggest_categorical("optimizer", ["sgd", "momentum"])
        lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
        if opt == "momentum":
            trial.suggest_float("momentum", 0.8, 0.99)
        return (math.log10(lr) + 2) ** 2

    study.optimize(objective, n_trials=80)
    result = measure_importance(study, n_bootstrap=4)
    by_name = {p["name"]: p for p in result["params"]}
    assert by_name["momentum"]["conditional"] is True
    assert set(by_name["momentum"]["by_evaluator"]) == {"ped_anova"}
    assert set(by_name["lr"]["by_evaluator"]) == {"ped_anova", "fanova", "mean_decrease_impurity"}
    assert result["params"][0]["name"] == "lr"


def test_multi_objective_and_bad_options_are_refused():
    multi = optuna.create_study(directions=["minimize", "minimize"])
    with pytest.raises(ReportError, match="2 objectives"):
        measure_importance(multi)
    study = known_study(5)
    with pytest.raises(ReportError, match="evaluators must be among"):
        measure_importance(study, evaluators=["shap"])
    with pytest.raises(ReportError, match="interval must be between 0 and 1"):
        measure_importance(study, interval=90)


def test_a_quick_start_study_mostly_pruned_gets_importance_from_its_learning_curves(tmp_path):
    import tuner

    space = {
        "parameters": {
            "lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True, "tier": 1,
                   "default": 1e-2},
            **{f"p{i}": {"type": "float", "low": 0.0, "high": 1.0, "tier": 2, "default": 0.5}
               for i in range(4)},
        }
    }  # fmt: skip

    def curve(params, report):  # epochs 0..14, a plateau set by the learning rate alone
        for step in range(15):
            value = (math.log10(params["lr"]) + 2) ** 2 + 1.0 / (step + 1)
            report(value, step)
        return value

    study = tuner.optimize(curve, space=space, n_trials=20, direction="minimize").study
    assert sum(t.state.name == "COMPLETE" for t in study.trials) < 20  # most were pruned
    data = tuner.report(study, path=tmp_path / "r.html", n_bootstrap=8)
    imp = data["importance"]
    assert imp["status"] == "ok"
    assert imp["measured_at"] == {"step": 4, "n_trials": 20, "n_diverged": 0}
    assert imp["params"][0]["name"] == "lr"
    for row in imp["params"]:  # every searched parameter, with an interval
        assert row["low"] is not None and row["high"] is not None
    assert {row["name"] for row in imp["params"]} == {"lr", "p0", "p1", "p2", "p3"}
    assert any("reported at epoch 5" in note for note in data["notes"])
    # Without curves (acting on importance, as staged does) the same study is too small.
    assert measure_importance(study, min_trials=20)["status"] == "too_few_trials"


def test_a_trial_that_diverged_counts_as_the_worst_value_at_the_common_epoch():
    # The shipped quick start: 20 trials, mostly pruned at epoch 5, one learning rate that
    # diverged at its first epoch. Without it there are 19 curves, one short of measuring.
    study = optuna.create_study(direction="maximize")
    dist = {"lr": optuna.distributions.FloatDistribution(1e-4, 1.0, log=True)}
    for i in range(19):
        lr = 10 ** (-4 + 3 * i / 18)
        curve = {step: 0.9 - abs(math.log10(lr) + 2) / 10 + step / 100 for step in range(5)}
        study.add_trial(
            optuna.trial.create_trial(
                params={"lr": lr}, distributions=dist, intermediate_values=curve,
                state=optuna.trial.TrialState.PRUNED,
            )
        )  # fmt: skip
    study.add_trial(
        optuna.trial.create_trial(
            params={"lr": 1.0}, distributions=dist, intermediate_values={0: float("nan")},
            user_attrs={"fail_reason": "diverged"}, state=optuna.trial.TrialState.FAIL,
        )
    )  # fmt: skip

    imp = measure_importance(study, curves=True, min_trials=20, n_bootstrap=4)

    assert imp["status"] == "ok"
    assert imp["measured_at"] == {"step": 4, "n_trials": 20, "n_diverged": 1}
    worst = min(t.intermediate_values[4] for t in study.trials[:19])
    _, valued, _ = curve_trials(study, needed=20)
    assert [t.value for t in valued].count(worst) == 2  # the worst curve and the diverged
