"""Search strategies on cheap functions through ``tuner.optimize``, on real SQLite files.

The staged strategy is checked as a user of a long study would notice it: stages change
at the trial numbers the budget says, a frozen parameter stays at its value, decisions
are in the database and hold after a resume, and a second process (a worker) joining the
study follows the stage and decisions the first one wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
import yaml

import tuner
from tests.conftest import ROOT
from tuner.errors import SpecError
from tuner.search.strategy import stage_decisions
from tuner.specs.spec import load_spec

SPACE = {
    "parameters": {
        "x": {"type": "float", "low": 0, "high": 1, "tier": 1, "default": 0.5},
        "z": {"type": "float", "low": 0, "high": 1, "tier": 1, "default": 0.5},
        "y": {"type": "float", "low": 0, "high": 1, "tier": 2, "default": 0.5},
        "w": {"type": "int", "low": 1, "high": 8, "tier": 2, "default": 2},
    }
}
# z does nothing: with 24 stage-1 trials its importance interval lies below 0.25.
FREEZING = {
    "name": "staged",
    "options": {
        "budget": [3, 1],
        "min_trials": 8,
        "n_bootstrap": 5,
        "freeze_below": 0.25,
        "evaluators": ["fanova", "mean_decrease_impurity"],
    },
}
N_TRIALS, BOUNDARY = 32, 24

WORKER = textwrap.dedent(
    """
    import json, os, sys
    import optuna, tuner
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    url, stop_after, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    space, strategy, n_trials = json.loads(sys.argv[4])

    def stop(study, trial):
        if stop_after and len(study.get_trials(deepcopy=False)) >= stop_after:
            study.stop()

    tuner.optimize(
        lambda p, report: (p["x"] - 0.3) ** 2 + 0.1 * (p["y"] - 0.5) ** 2,
        space=space, n_trials=n_trials, direction="minimize", strategy=strategy,
        storage=url, study_name="w", sampler="random", pruner="none", seed=seed,
        callbacks=[stop],
    )
    print(os.getpid())
    """
)


def quadratic(seen: list[dict]):
    def f(params: dict, report) -> float:
        seen.append(dict(params))
        return (params["x"] - 0.3) ** 2 + 0.1 * (params["y"] - 0.5) ** 2

    return f


def run(url: str, seen: list[dict], *, stop_after: int = 0, **kwargs) -> optuna.Study:
    def stop(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if stop_after and len(study.get_trials(deepcopy=False)) >= stop_after:
            study.stop()

    options = {
        "space": SPACE,
        "n_trials": N_TRIALS,
        "direction": "minimize",
        "strategy": FREEZING,
        "storage": url,
        "study_name": "s",
        "sampler": "random",
        "pruner": "none",
        "callbacks": [stop],
        **kwargs,
    }
    return tuner.optimize(quadratic(seen), **options).study


def start_worker(tmp_path: Path, url: str, *, stop_after: int = 0, seed: int = 0):
    script = tmp_path / "worker.py"
    script.write_text(WORKER, encoding="utf-8")
    args = json.dumps([SPACE, FREEZING, N_TRIALS])
    return subprocess.Popen(
        [sys.executable, str(script), url, str(stop_after), str(seed), args],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen) -> int:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return int(out.split()[-1])


def by_number(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)


def test_stages_change_at_the_trial_numbers_the_budget_gives(sqlite_url):
    space = {
        "parameters": {
            **SPACE["parameters"],
            "v": {"type": "categorical", "choices": ["a", "b"], "tier": 3, "default": "a"},
        }
    }
    study = run(
        sqlite_url,
        [],
        space=space,
        n_trials=16,
        strategy={"name": "staged", "options": {"budget": [1, 1, 2]}},
    )
    searched = {1: {"x", "z"}, 2: {"x", "z", "y", "w"}, 3: {"x", "z", "y", "w", "v"}}
    expected_stage = [1] * 4 + [2] * 4 + [3] * 8
    for trial in by_number(study):
        assert trial.user_attrs["stage"] == expected_stage[trial.number]
        assert set(trial.params) == searched[expected_stage[trial.number]]
    rows = stage_decisions(study)
    assert [(r["stage"], r["tiers"], r["start"], r["end"], r["n_trials"]) for r in rows] == [
        (1, [1], 0, 4, 4),
        (2, [1, 2], 4, 8, 4),
        (3, [1, 2, 3], 8, None, 8),
    ]
    # 4 trials are too few to measure importance: the decision says so and changes nothing
    assert rows[1]["evidence"]["status"] == "too_few_trials"
    assert "at least 20 complete trials" in rows[1]["evidence"]["message"]
    assert rows[1]["frozen_all"] == {} and rows[2]["ranges"] == {}


def test_a_frozen_parameter_keeps_its_value_and_decisions_survive_a_resume(sqlite_url):
    seen: list[dict] = []
    first = run(sqlite_url, seen, stop_after=BOUNDARY + 2)
    decision = stage_decisions(first)[1]
    assert decision["frozen"].keys() == {"z"}, decision["evidence"]
    stage1 = [t for t in by_number(first) if t.number < BOUNDARY]
    best = min(stage1, key=lambda t: t.value)
    assert decision["frozen"]["z"] == best.params["z"]  # the best stage-1 trial's value
    assert decision["evidence"]["best_trial"] == best.number
    rows = {p["name"]: p for p in decision["evidence"]["params"]}
    assert rows["z"]["action"] == "frozen" and rows["z"]["high"] < 0.25

    # Resume: a new call, a new strategy object; the stored decision is read, not redone.
    resumed = run(sqlite_url, seen)
    after = stage_decisions(resumed)[1]
    assert {**after, "n_trials": None} == {**decision, "n_trials": None}
    later = [t for t in by_number(resumed) if t.number >= BOUNDARY]
    assert len(later) == N_TRIALS - BOUNDARY
    for trial in later:
        assert "z" not in trial.params
        assert trial.user_attrs["frozen"] == {"z": best.params["z"]}
    assert all(p["z"] == best.params["z"] for p in seen[BOUNDARY:])
    assert len({p["z"] for p in seen[:BOUNDARY]}) == BOUNDARY  # searched before


def test_a_worker_joining_mid_study_follows_the_current_stage(tmp_path, sqlite_url):
    first_pid = finish(start_worker(tmp_path, sqlite_url, stop_after=BOUNDARY + 2))
    joined_pid = finish(start_worker(tmp_path, sqlite_url, seed=1))
    study = optuna.load_study(study_name="w", storage=sqlite_url)
    decision = stage_decisions(study)[1]
    assert decision["computed_by"].endswith(f":{first_pid}") and first_pid != joined_pid
    trials = by_number(study)
    assert len(trials) == N_TRIALS
    for trial in trials[BOUNDARY + 2 :]:  # the joined worker's
        assert trial.user_attrs["stage"] == 2
        assert trial.user_attrs["frozen"] == decision["frozen_all"]
        assert set(trial.params) == {"x", "y", "w"} - set(decision["frozen_all"])


def test_two_workers_from_the_start_agree_on_stages_and_decisions(tmp_path, sqlite_url):
    tuner.optimize(  # create the study first, as `tuner run` does before workers start
        quadratic([]),
        space=SPACE,
        n_trials=N_TRIALS,
        direction="minimize",
        strategy=FREEZING,
        storage=sqlite_url,
        study_name="w",
        sampler="random",
        seed=9,
        callbacks=[lambda study, trial: study.stop()],
    )
    workers = [start_worker(tmp_path, sqlite_url, seed=seed) for seed in (1, 2)]
    for worker in workers:
        finish(worker)
    study = optuna.load_study(study_name="w", storage=sqlite_url)
    trials = by_number(study)
    assert len(trials) == N_TRIALS  # the storage's budget: no worker overshoots
    decision = stage_decisions(study)[1]
    assert decision["evidence"]["n_complete"] == BOUNDARY  # decided on all of stage 1
    for trial in trials:
        assert trial.state == optuna.trial.TrialState.COMPLETE
        assert trial.user_attrs["stage"] == (1 if trial.number < BOUNDARY else 2)
        if trial.number >= BOUNDARY:
            assert trial.user_attrs.get("frozen", {}) == decision["frozen_all"]


def test_a_study_keeps_its_strategy(sqlite_url):
    run(sqlite_url, [], strategy="flat", n_trials=2)
    with pytest.raises(SpecError, match="runs the 'flat' strategy, not 'staged'"):
        run(sqlite_url, [], n_trials=4)


def test_spec_strategy_short_form_options_and_one_line_errors(tiny_spec):
    resolved = load_spec(tiny_spec(strategy="staged"))
    assert resolved.spec.strategy.name == "staged"
    assert load_spec(tiny_spec()).spec.strategy.name == "flat"
    with pytest.raises(SpecError) as caught:
        load_spec(
            tiny_spec(strategy={"name": "staged", "options": {"freeze": 1, "n_bootstrap": -1}})
        )
    message = str(caught.value)
    assert "freeze: unknown field" in message and "n_bootstrap" in message
    with pytest.raises(SpecError, match="one weight per stage"):
        tuner.optimize(
            quadratic([]),
            space=SPACE,
            n_trials=4,
            direction="minimize",
            strategy={"name": "staged", "options": {"budget": [1, 2, 3]}},
        )
    # A budget in time or epochs (no trial count) is planned, not refused: each stage but
    # the last gets the trials importance needs (20 for these 4 parameters), the last the rest.
    from tuner.search.strategy import make_strategy

    planned = make_strategy("staged", space=tuner.SearchSpace.model_validate(SPACE), n_trials=None)
    assert [(s.start, s.end) for s in planned.plan] == [(0, 20), (20, None)]


@pytest.mark.slow
def test_tuner_run_with_staged_strategy_trains_tier_one_first(cli, sqlite_url, tiny_spec):
    spec = tiny_spec(budget={"n_trials": 4})
    result = cli(
        "run", str(spec), "--storage", sqlite_url, "--strategy", "staged", "--tiers", "1-2"
    )
    assert result.returncode == 0, result.stderr
    assert "staged strategy" in result.stderr
    study = optuna.load_study(study_name="tiny", storage=sqlite_url)
    trials = by_number(study)
    assert [t.user_attrs["stage"] for t in trials] == [1, 2, 2, 2]
    assert set(trials[0].params) == {"learning_rate"}
    assert "log2_batch_size" in trials[1].params
    recorded = yaml.safe_load(json.dumps(study.user_attrs["tuner_spec"]))
    assert recorded["strategy"]["name"] == "staged"


def test_studies_show_and_the_report_say_what_each_stage_decided(sqlite_url, cli, tmp_path):
    study = run(sqlite_url, [])
    frozen = stage_decisions(study)[1]["frozen"]["z"]
    (low, high) = stage_decisions(study)[1]["narrowed"]["x"]

    shown = cli("studies", "show", "s", "--storage", sqlite_url)
    assert shown.returncode == 0, shown.stderr
    lines = dict(line.split(None, 1) for line in shown.stdout.splitlines() if " " in line.strip())
    assert lines["strategy"].strip() == "staged"
    assert "stage 1    tiers 1 (adds x, z); trials 0-23 (24 ran)" in shown.stdout
    stage2 = next(line for line in shown.stdout.splitlines() if "stage 2" in line)
    assert f"frozen z={frozen:.4g}" in stage2 and f"x to [{low:.4g}, {high:.4g}]" in stage2
    assert "importance on 24 trials" in stage2

    data = tuner.report(study, path=tmp_path / "r.html")
    assert [row["stage"] for row in data["stages"]] == [1, 2]
    assert data["stages"][1]["frozen"] == {"z": frozen}
    assert data["declared_vs_measured"]["space"] is not None  # optimize records its space
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert '<section id="stages">' in page and f"z={frozen:.4g}" in page
    assert "## Staged search" in tuner.reporting.render_markdown(data)


def test_a_flat_study_shows_no_stages(sqlite_url, cli):
    run(sqlite_url, [], strategy="flat", n_trials=2)
    shown = cli("studies", "show", "s", "--storage", sqlite_url, "--format", "json")
    record = json.loads(shown.stdout)
    assert record["strategy"] == "flat" and "stages" not in record
    assert record["search"] == "flat strategy; sampler random; pruner none"
    assert record["decisions"].startswith("none: the flat strategy searches every")
    assert tuner.report("s", storage=sqlite_url)["stages"] == []


def test_the_default_search_is_recorded_and_shown_with_why_no_decision(sqlite_url, cli, tmp_path):
    seen: list[dict] = []
    study = tuner.optimize(
        quadratic(seen), space=SPACE, n_trials=12, direction="minimize", storage=sqlite_url,
        study_name="d",
    ).study  # fmt: skip
    assert seen[0] == {"x": 0.5, "z": 0.5, "y": 0.5, "w": 2}  # the defaults first
    search = (
        "flat strategy; sampler tpe-explore (TPE, 33% of its proposals uniformly random, "
        "after 10 start-up trials); pruner asha (successive halving, rungs after epochs "
        "5, 13, 37, ...)"
    )
    shown = cli("studies", "show", "d", "--storage", sqlite_url)
    assert shown.returncode == 0, shown.stderr
    assert search in shown.stdout
    assert "none: the flat strategy searches every selected parameter" in shown.stdout
    text = tuner.reporting.render_markdown(tuner.report(study, path=tmp_path / "r.html"))
    assert f"- Search: {search}." in text
    assert "- Decisions: none: the flat strategy" in text
