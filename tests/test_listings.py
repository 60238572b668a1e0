"""Listings read Optuna's tables with their own SQL: they must say what Optuna says.

Each test builds a study with plain Optuna (every trial state, pruned trials with and
without a value, an infinite value, conditional parameters, transformed parameters,
an enqueued trial) on SQLite and on PostgreSQL, then compares `tuner studies list`,
`trials list`, `best`, `export` and `studies show` with
``optuna.load_study(...).get_trials()``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sqlite3
import subprocess
import sys
from collections import Counter

import optuna
import pytest
from click.testing import CliRunner
from optuna.trial import TrialState, create_trial

from tests.conftest import ROOT
from tuner import records
from tuner.cli import main
from tuner.specs.space import SearchSpace, load_space

STATES = ("complete", "pruned", "fail", "running", "waiting")
SORTS = ("number", "value", "seconds", "epochs")
# (state, value, epochs, seconds, fail reason) of each finished trial, in order.
FINISHED = [
    (TrialState.COMPLETE, 0.71, 10, 31.5, None),
    (TrialState.PRUNED, 0.42, 3, 9.0, None),  # value: its last intermediate value
    (TrialState.COMPLETE, 0.93, 10, 30.0, None),
    (TrialState.FAIL, None, 1, 2.5, "diverged"),
    (TrialState.COMPLETE, math.inf, 10, None, None),  # no seconds recorded
    (TrialState.PRUNED, None, 1, 4.0, None),  # pruned before reporting anything
    (TrialState.COMPLETE, 0.12, 10, 30.0, None),
    (TrialState.FAIL, None, None, None, None),  # failed before recording anything
    (TrialState.COMPLETE, 0.55, 8, 25.0, None),
    (TrialState.COMPLETE, -math.inf, 10, 31.0, None),
]


@pytest.fixture(params=["sqlite_url", pytest.param("postgres_url", marks=pytest.mark.postgres)])
def url(request) -> str:
    """The same tests on a fresh SQLite file and a fresh PostgreSQL database."""
    return request.getfixturevalue(request.param)


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), prog_name="tuner")


def as_json(*args: str):
    done = invoke(*args, "--format", "json")
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout)


def make_study(url: str, name: str = "mixed", *, direction: str = "maximize") -> optuna.Study:
    """A study with every trial state; parameters from tuner's importance-ranked space."""
    space = load_space(ROOT / "search_spaces" / "importance-ranked.yaml")
    sampling = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    study = optuna.create_study(study_name=name, storage=url, direction=direction)
    study.set_user_attr(records.SPACE, space.model_dump(mode="json"))
    study.set_user_attr(records.SPEC, {"metric": "val_loss"})
    for state, value, epochs, seconds, reason in FINISHED:
        trial = sampling.ask()
        space.suggest(trial)
        sampling.tell(trial, 0.0)
        attrs = {records.EPOCHS: epochs, records.SECONDS: seconds, records.FAIL_REASON: reason}
        steps = {} if value is None or math.isinf(value) else {0: value / 2, 1: value}
        study.add_trial(
            create_trial(
                state=state,
                value=value,
                params=trial.params,
                distributions=trial.distributions,
                intermediate_values=steps,
                user_attrs={k: v for k, v in attrs.items() if v is not None},
            )
        )
    running = study.ask()  # RUNNING, its parameters chosen
    space.suggest(running)
    study.ask()  # RUNNING, nothing chosen yet
    study.enqueue_trial({"learning_rate": 0.01, "log2_batch_size": 6})  # WAITING
    return study


def optuna_rows(url: str, name: str = "mixed") -> list[dict]:
    """What the listings showed when they read FrozenTrials: Optuna's view, in model values."""
    study = optuna.load_study(study_name=name, storage=url)
    space = SearchSpace.model_validate(study.user_attrs[records.SPACE])
    return [
        {
            "number": t.number,
            "state": t.state.name.lower(),
            "value": t.value,
            "epochs": t.user_attrs.get(records.EPOCHS),
            "seconds": t.user_attrs.get(records.SECONDS),
            "fail_reason": t.user_attrs.get(records.FAIL_REASON),
            "params": space.values_from_stored(
                t.params or t.system_attrs.get("fixed_params") or {}, fill_defaults=False
            ),
        }
        for t in study.get_trials()
    ]


def expected(rows: list[dict], *, state, sort, limit, maximize: bool) -> list[dict]:
    """Filter, then best (or smallest) first with missing values last, ties by number."""
    rows = [r for r in rows if state is None or r["state"] == state]
    if sort != "number":
        sign = -1 if sort == "value" and maximize else 1
        rows = sorted(rows, key=lambda r: (r[sort] is None, sign * (r[sort] or 0), r["number"]))
    return json.loads(json.dumps(rows[:limit]))  # as the JSON output holds them


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_trials_list_matches_optuna_for_every_state_sort_and_limit(url, direction):
    make_study(url, direction=direction)
    truth = optuna_rows(url)
    assert {r["state"] for r in truth} == set(STATES)
    assert any("momentum" in r["params"] for r in truth)  # conditional: on some trials only
    assert any("momentum" not in r["params"] for r in truth)
    for state in (None, *STATES):
        for sort in SORTS:
            for limit in (None, 3):
                args = ["trials", "list", "mixed", "--storage", url, "--sort", sort]
                args += ["--state", state] if state else []
                args += ["--limit", str(limit)] if limit else []
                want = expected(
                    truth, state=state, sort=sort, limit=limit, maximize=direction == "maximize"
                )
                assert as_json(*args) == want, (state, sort, limit)


def test_export_has_every_trial_as_optuna_has_it_in_json_and_csv(url):
    make_study(url)
    truth = json.loads(json.dumps(optuna_rows(url)))
    assert as_json("export", "mixed", "--storage", url) == truth
    done = invoke("export", "mixed", "--storage", url)
    assert done.exit_code == 0, done.output
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [int(r["number"]) for r in rows] == [t["number"] for t in truth]
    batch_sizes = [r["params_batch_size"] for r in rows]
    assert batch_sizes == [str(t["params"].get("batch_size", "")) for t in truth]


def test_studies_list_counts_and_best_match_optuna(url):
    make_study(url, "high", direction="maximize")
    make_study(url, "low", direction="minimize")
    hopeless = optuna.create_study(study_name="hopeless", storage=url)
    hopeless.add_trial(create_trial(state=TrialState.FAIL))
    optuna.create_study(study_name="empty", storage=url)
    optuna.create_study(study_name="pareto", storage=url, directions=["minimize", "maximize"])
    optuna.load_study(study_name="low", storage=url).enqueue_trial({})  # one waiting
    rows = {r["name"]: r for r in as_json("studies", "list", "--storage", url)}
    assert list(rows) == ["high", "low", "hopeless", "empty", "pareto"]
    for name in ("high", "low", "hopeless", "empty"):
        study = optuna.load_study(study_name=name, storage=url)
        trials = study.get_trials()
        counts = Counter(t.state.name.lower() for t in trials)
        row = rows[name]
        assert row["trials"] == len(trials)
        assert {s: row[s] for s in STATES} == {s: counts.get(s, 0) for s in STATES}
        assert sum(row[s] for s in STATES) == row["trials"], "the columns add up"
        assert row["direction"] == study.direction.name.lower()
        has_best = any(t.state == TrialState.COMPLETE for t in trials)
        assert row["best"] == (study.best_value if has_best else None)
        starts = [t.datetime_start for t in trials if t.datetime_start]
        first = min(starts).replace(microsecond=0).isoformat(sep=" ") if starts else None
        assert row["started"] == first
    assert rows["high"]["best"] == math.inf and rows["low"]["best"] == -math.inf
    assert rows["high"]["metric"] == "val_loss" and rows["empty"]["metric"] == "value"
    assert rows["pareto"]["direction"] == "minimize,maximize" and rows["pareto"]["best"] is None


def test_best_and_show_name_optunas_best_trial_in_model_values(url):
    make_study(url, direction="minimize")
    study = optuna.load_study(study_name="mixed", storage=url)
    space = SearchSpace.model_validate(study.user_attrs[records.SPACE])
    params = space.values_from_stored(study.best_trial.params, fill_defaults=False)
    best = as_json("best", "mixed", "--storage", url)
    assert (best["trial"], best["value"]) == (study.best_trial.number, study.best_value)
    assert best["params"] == json.loads(json.dumps(params))
    assert best["metric"] == "val_loss"
    shown = as_json("studies", "show", "mixed", "--storage", url)
    assert (shown["best_trial"], shown["best_value"]) == (best["trial"], best["value"])
    assert shown["best_params"] == best["params"]
    counts = Counter(t.state.name.lower() for t in study.get_trials())
    assert shown["states"] == {s: counts.get(s, 0) for s in STATES}
    assert shown["trials"] == len(study.get_trials())


def test_a_study_without_completed_trials_lists_and_has_no_best(url):
    study = optuna.create_study(study_name="hopeless", storage=url)
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={records.FAIL_REASON: "oom"}))
    study.add_trial(create_trial(state=TrialState.PRUNED, value=0.3))
    [row] = as_json("studies", "list", "--storage", url)
    assert (row["trials"], row["fail"], row["pruned"], row["best"]) == (2, 1, 1, None)
    rows = as_json("trials", "list", "hopeless", "--storage", url, "--sort", "value")
    assert [(r["number"], r["value"], r["fail_reason"]) for r in rows] == [
        (1, 0.3, None),
        (0, None, "oom"),
    ]
    shown = as_json("studies", "show", "hopeless", "--storage", url)
    assert shown["best_value"] is None and shown["best_params"] == {}
    done = invoke("best", "hopeless", "--storage", url)
    assert done.exit_code == 1 and "Traceback" not in done.output
    assert done.stderr.splitlines() == [
        "Error: study 'hopeless' has no completed trial yet (2 trials); "
        "see `tuner trials list hopeless` for what happened"
    ]


def test_a_plain_optuna_study_of_two_objectives_lists_a_value_per_objective(sqlite_url):
    study = optuna.create_study(
        study_name="pareto", storage=sqlite_url, directions=["minimize", "minimize"]
    )
    x = optuna.distributions.FloatDistribution(0, 1)
    points = [(0.2, 0.8), (0.5, 0.5), (0.6, 0.6)]  # the last is dominated by the second
    study.add_trials(
        [
            optuna.trial.create_trial(params={"x": a}, distributions={"x": x}, values=[a, b])
            for a, b in points
        ]
    )
    rows = as_json("trials", "list", "pareto", "--sort", "value", "--storage", sqlite_url)
    assert [(r["number"], r["values"]) for r in rows] == [
        (0, {"objective_0": 0.2, "objective_1": 0.8}),
        (1, {"objective_0": 0.5, "objective_1": 0.5}),
        (2, {"objective_0": 0.6, "objective_1": 0.6}),
    ]
    header = invoke("export", "pareto", "--storage", sqlite_url).stdout.splitlines()[0]
    assert "values_objective_0,values_objective_1" in header
    front = as_json("best", "pareto", "--storage", sqlite_url)
    assert [(r["trial"], r["objective_0"], r["params"]) for r in front] == [
        (0, 0.2, {"x": 0.2}),
        (1, 0.5, {"x": 0.5}),
    ]


@pytest.mark.parametrize(
    ("revision", "advice"),
    [("v3.0.0.d", "optuna storage upgrade"), ("v9.0.0.a", "pip install -U optuna")],
)
def test_an_older_or_newer_schema_is_one_line_for_every_listing(sqlite_url, revision, advice):
    make_study(sqlite_url)
    database = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))
    with database:
        database.execute("update alembic_version set version_num = ?", (revision,))
    database.close()
    commands = [["studies", "list"], ["trials", "list", "mixed"], ["best", "mixed"]]
    commands += [["export", "mixed"], ["studies", "show", "mixed"]]
    for command in commands:
        done = invoke(*command, "--storage", sqlite_url)
        assert done.exit_code == 1, (command, done.output)
        [line] = done.stderr.splitlines()
        assert line.startswith(f"Error: storage {sqlite_url}: The runtime optuna version")
        assert advice in line and "tuner storage upgrade" in line


@pytest.mark.parametrize(
    "command",
    [["studies", "list"], ["trials", "list", "mixed"], ["best", "mixed"], ["export", "mixed"]],
)
def test_listings_load_neither_tensorflow_nor_alembic(sqlite_url, command):
    # What keeps them interactive: no Keras, and no alembic (Optuna's full schema check).
    make_study(sqlite_url)
    script = (
        "import sys\nfrom tuner.cli import main\n"
        "try:\n    main(sys.argv[1:], prog_name='tuner')\n"
        "except SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "print([m for m in ('tensorflow', 'keras', 'alembic') if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *command, "--storage", sqlite_url, "--format", "json"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"
