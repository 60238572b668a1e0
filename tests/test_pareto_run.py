"""A real two-objective study: val_accuracy against n_params on digits, with constraints,
on SQLite and PostgreSQL; its front in `tuner best`, the report (in Chromium) and retrain.

Four trials are chosen so that each rule shows: the baseline (defaults), one too large
for the n_params limit (pruned before its first epoch), one tiny but hopeless (complete,
smallest, yet infeasible by its val_accuracy floor) and one small and good; the sampler
adds one more.
"""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from optuna.trial import TrialState

import tuner
from tests.conftest import browser_page, write_tiny_spec
from tuner.cli import main
from tuner.errors import MultiObjectiveError
from tuner.outcome.warmstart import enqueue

pytestmark = pytest.mark.slow

LIMIT = 40_000  # n_params: 64 inputs, 2 layers of u units, 10 classes = u² + 76u + 10
CHOSEN = [
    {"units": 512},  # 301,066 parameters: over the limit before training
    {"units": 16, "learning_rate": 1e-5},  # 1,482 parameters, learns nothing in 3 epochs
    {"units": 32, "learning_rate": 1e-2},  # 3,466 parameters, learns well
]
N_TRIALS = 5


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), prog_name="tuner")


def run_study(directory: Path, url: str) -> tuner.TuneResult:
    spec = write_tiny_spec(
        directory,
        name="sized",
        data={"source": "digits"},
        metrics=[
            {"name": "val_accuracy", "direction": "maximize"},
            {"name": "n_params", "direction": "minimize"},
        ],
        constraints={"n_params": {"max": LIMIT}, "val_accuracy": {"min": 0.5}},
        space={
            "tiers": "1-2",
            "overrides": {"units": {"default": 64}, "batch_size": {"low": 32, "high": 128}},
        },
        budget={"n_trials": N_TRIALS},
    )
    tuner.tune(spec, n_trials=1, storage=url)  # the baseline
    enqueue(optuna.load_study(study_name="sized", storage=url), CHOSEN)
    return tuner.tune(spec, storage=url, resume=True)


def check_the_study(result: tuner.TuneResult, url: str) -> None:
    study = optuna.load_study(study_name="sized", storage=url)
    trials = study.get_trials()
    assert len(trials) == N_TRIALS
    assert study.metric_names == ["val_accuracy", "n_params"]  # plots and the dashboard
    big, hopeless = trials[1], trials[2]
    # over the n_params limit: pruned before the first epoch, its price recorded
    assert big.state == TrialState.PRUNED and big.user_attrs["epochs"] == 0
    assert big.user_attrs["n_params"] == 512**2 + 76 * 512 + 10
    assert big.user_attrs["infeasible"] == f"n_params 301,066 > max {LIMIT:,}"
    assert big.constraints["n_params.max"] > 0 and not big.intermediate_values
    # complete, smallest of all, but under the accuracy floor: infeasible
    assert hopeless.state == TrialState.COMPLETE and hopeless.values[0] < 0.5
    assert hopeless.constraints["val_accuracy.min"] > 0
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    for trial in complete:  # every measure, whatever the objectives
        measures = ("n_params", "latency_ms", "epoch_seconds", "peak_memory_mb", "val_loss")
        assert all(trial.user_attrs[m] > 0 for m in measures), trial.user_attrs
        assert trial.values[1] == trial.user_attrs["n_params"]
        assert len(trial.intermediate_values) == 3  # the learning curve, never pruned
    # the front: non-empty, feasible, non-dominated, exactly Optuna's
    front = {t.number: tuple(t.values.values()) for t in result.pareto}
    assert front and set(front) == {t.number for t in study.best_trials}
    assert hopeless.number not in front and big.number not in front
    feasible = [t for t in complete if all(v <= 0 for v in t.constraints.values())]
    for number, (accuracy, size) in front.items():
        assert not any(
            t.values[0] >= accuracy
            and t.values[1] <= size
            and t.number != number
            and (t.values[0], t.values[1]) != (accuracy, size)
            for t in feasible
        )
    with pytest.raises(MultiObjectiveError, match=r"result\.pareto"):
        _ = result.best_value
    # `tuner best --pick`: the most accurate feasible trial within 5,000 parameters
    within = [t for t in feasible if t.values[1] <= 5_000]
    expected = max(within, key=lambda t: (t.values[0], -t.number)).number
    done = invoke("best", "sized", "--storage", url, "--pick", "n_params<=5000", "--format", "json")
    assert done.exit_code == 0, done.output
    chosen = json.loads(done.stdout)
    assert chosen["trial"] == expected and expected in front
    assert chosen["retrain"].endswith(f"--trial {expected} --out sized-trial{expected}.keras")


@pytest.fixture(scope="module")
def sqlite_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[tuner.TuneResult, str, Path]:
    directory = tmp_path_factory.mktemp("pareto")
    url = f"sqlite:///{directory / 'study.db'}"
    return run_study(directory, url), url, directory


def test_two_objective_study_on_sqlite(sqlite_study):
    result, url, _ = sqlite_study
    check_the_study(result, url)


@pytest.mark.postgres
def test_two_objective_study_on_postgresql(postgres_url, tmp_path):
    check_the_study(run_study(tmp_path, postgres_url), postgres_url)


@pytest.mark.browser
def test_report_carries_the_front_and_chromium_draws_it(sqlite_study, chromium, tmp_path):
    result, url, _ = sqlite_study
    path = tmp_path / "sized.html"
    done = invoke("report", "sized", "--storage", url, "--out", str(path))
    assert done.exit_code == 0, done.output
    data = json.loads(invoke("report", "sized", "--storage", url, "--format", "json").stdout)
    assert [r["trial"] for r in data["pareto"]["front"]] == [t.number for t in result.pareto]
    study = optuna.load_study(study_name="sized", storage=url)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    infeasible = [t for t in complete if any(v > 0 for v in t.constraints.values())]
    assert data["pareto"]["n_infeasible"] == len(infeasible) >= 1  # the hopeless one at least
    with browser_page(chromium) as (page, errors):
        page.goto(path.as_uri())
        plot = page.locator('div.plot[data-plot="pareto"]')
        plot.locator("svg.main-svg").first.wait_for(timeout=30_000)
        legend = plot.locator(".legendtext").evaluate_all("els => els.map(e => e.textContent)")
        assert {"Pareto front", "infeasible"} <= set(legend), legend
        assert plot.locator(".scatterlayer .point").count() == len(complete)
        rows = page.locator("#pareto table").first.locator("tbody tr").count()
        assert rows == len(result.pareto)
    assert errors == []


def test_retrain_trial_repeats_a_front_trial_and_the_best_needs_one(sqlite_study, tmp_path):
    result, url, directory = sqlite_study
    refused = invoke("retrain", "sized", "--storage", url, "--out", str(tmp_path / "x.keras"))
    assert refused.exit_code == 2
    assert "has 2 objectives" in refused.stderr and "give --trial N" in refused.stderr
    number = result.pareto[-1].number
    out = tmp_path / "small.keras"
    done = invoke(
        "retrain",
        "sized",
        "--storage",
        url,
        "--trial",
        str(number),
        "--train-only",
        "--out",
        str(out),
        "--data-dir",
        str(directory),
    )
    assert done.exit_code == 0, done.output
    info = json.loads(out.with_suffix(".json").read_text())
    trial = optuna.load_study(study_name="sized", storage=url).trials[number]
    assert info["trial"] == number and info["trial_values"]["n_params"] == trial.values[1]
    assert info["metrics"]["val_accuracy"] == pytest.approx(trial.values[0], abs=1e-6)


def test_run_says_pruning_is_off_and_prints_the_front(cli, tiny_spec, sqlite_url):
    spec = tiny_spec(
        metrics=[
            {"name": "val_accuracy", "direction": "maximize"},
            {"name": "latency_ms", "direction": "minimize"},
        ],
        data={"source": "digits", "max_rows": 300},
        training={"max_epochs": 1},
        pruner="median",
    )
    done = cli("run", str(spec), "--storage", sqlite_url)
    assert done.returncode == 0, done.stderr
    assert (
        "Note: pruning is off: Optuna's pruners take one objective, and a trial behind on "
        "val_accuracy may still be on the Pareto front (set pruner: none to silence this)."
    ) in done.stderr.splitlines()
    assert "Pareto front (val_accuracy max, latency_ms min):" in done.stdout
    assert "Best val_accuracy" not in done.stdout
    shown = cli("studies", "show", "tiny", "--storage", sqlite_url, "--format", "json")
    record = json.loads(shown.stdout)
    assert record["pruning"].startswith("off: Optuna's pruners take one objective")
    assert record["metrics"] == "val_accuracy (maximize), latency_ms (minimize)"
    assert "best_value" not in record


def build_with_size(params, *, input_shape, n_outputs, task):
    """The MLP, and its weights' size in KiB as float32: a measure of the builder's own."""
    from tuner.trial.models import build_mlp

    model = build_mlp(params, input_shape=input_shape, n_outputs=n_outputs, task=task)
    return model, {"weights_kib": model.count_params() * 4 / 1024}


def test_a_builders_own_measure_is_an_objective_and_a_limit_known_before_training(sqlite_url):
    result = tuner.tune(
        space=str(Path(__file__).parent.parent / "search_spaces" / "importance-ranked.yaml"),
        data={"source": "digits", "max_rows": 300},
        build_model=build_with_size,
        metrics=[
            {"name": "val_accuracy", "direction": "maximize"},
            {"name": "weights_kib", "direction": "minimize"},
        ],
        constraints={"weights_kib": {"max": 60}},  # the baseline's 128 units make 102 KiB
        tiers="1-2",
        max_epochs=1,
        n_trials=3,
        storage=sqlite_url,
    )
    trials = result.study.get_trials()
    baseline = trials[0]
    assert baseline.user_attrs["baseline"] and baseline.state == TrialState.PRUNED
    assert baseline.user_attrs["epochs"] == 0
    assert baseline.user_attrs["weights_kib"] == pytest.approx(26_122 * 4 / 1024)
    assert baseline.user_attrs["infeasible"] == "weights_kib 102 > max 60"
    for trial in trials:
        if trial.state == TrialState.COMPLETE:
            assert trial.values[1] == trial.user_attrs["weights_kib"] <= 60
    assert {t.number for t in result.pareto} == {t.number for t in result.study.best_trials}
