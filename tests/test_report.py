"""Report data, JSON shape, Markdown and the `tuner report` command, on synthetic studies."""

from __future__ import annotations

import json
import math
import random
import re

import optuna
import pytest
from click.testing import CliRunner

import tuner.reporting
from tuner.cli.report import report as report_cmd
from tuner.errors import StudyNotFoundError
from tuner.reporting import ReportError, render_markdown
from tuner.specs.space import SearchSpace

optuna.logging.set_verbosity(optuna.logging.ERROR)

SPACE = SearchSpace.model_validate(
    {
        "name": "synthetic",
        "parameters": {
            "learning_rate": {
                "type": "float",
                "low": 1e-5,
                "high": 1.0,
                "log": True,
                "tier": 1,
                "default": 1e-3,
            },
            "batch_size": {
                "type": "int",
                "low": 16,
                "high": 1024,
                "power_of_two": True,
                "tier": 2,
                "default": 32,
            },
            "optimizer": {
                "type": "categorical",
                "choices": ["adam", "sgd", "momentum"],
                "tier": 3,
                "default": "adam",
            },
            "momentum": {
                "type": "float",
                "low": 0.8,
                "high": 0.999,
                "one_minus": True,
                "log": True,
                "tier": 2,
                "default": 0.9,
                "condition": {"optimizer": ["momentum"]},
            },
            "units": {
                "type": "int",
                "low": 16,
                "high": 1024,
                "log": True,
                "tier": 4,
                "default": 128,
            },
            "dropout": {"type": "float", "low": 0.0, "high": 0.5, "tier": 4, "default": 0.0},
        },
    }
)
MAX_EPOCHS = 8


def make_study(
    storage: str | None,
    n_trials: int,
    *,
    name: str = "synthetic",
    with_space: bool = True,
    seed: int = 0,
) -> optuna.Study:
    """A study where only batch_size and learning_rate matter, with pruning and failures.

    Trials run in memory and are then copied to ``storage`` in one go (SQLite commits per
    reported value would make the test slow, not more real).
    """
    rnd = random.Random(seed)
    study = optuna.create_study(
        study_name=name,
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=60, n_warmup_steps=5),
    )
    if with_space:
        study.set_user_attr("tuner_space", SPACE.model_dump(mode="json"))
    study.set_user_attr("max_epochs", MAX_EPOCHS)

    def objective(trial: optuna.Trial) -> float:
        v = SPACE.suggest(trial)
        trial.set_user_attr("worker", f"host-{trial.number % 2}:100")
        final = (
            0.95
            - 0.05 * (math.log10(v["learning_rate"]) + 2.5) ** 2
            - 0.08 * (math.log2(v["batch_size"]) - 7) ** 2  # batch size matters most
            + 0.002 * rnd.random()
        )
        if v["learning_rate"] > 0.3:
            trial.set_user_attr("epochs", 1)
            trial.set_user_attr("fail_reason", "diverged")
            raise RuntimeError("diverged")
        per_epoch = 0.01 * 1024 / v["batch_size"]
        for epoch in range(MAX_EPOCHS):
            trial.report(final * (1 - 0.5 * math.exp(-epoch / 2)), epoch)
            trial.set_user_attr("epochs", epoch + 1)
            trial.set_user_attr("seconds", per_epoch * (epoch + 1))
            if trial.should_prune():
                raise optuna.TrialPruned()
        return final

    study.optimize(objective, n_trials=n_trials, catch=(RuntimeError,))
    if storage is None:
        return study
    saved = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    for key, value in study.user_attrs.items():
        saved.set_user_attr(key, value)
    saved.add_trials(study.get_trials())
    return saved


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, optuna.Study, dict]:
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'studies.db'}"
    study = make_study(url, 200)
    data = tuner.reporting.report("synthetic", storage=url, n_bootstrap=10)
    return url, study, data


def test_summary_counts_states_epochs_and_failures(stored):
    _, study, data = stored
    trials = study.get_trials()
    s = data["summary"]
    assert s["direction"] == "maximize"
    assert sum(s["states"].values()) == len(trials) == 200
    n_fail = sum(t.state.name == "FAIL" for t in trials)
    assert n_fail > 0
    failed = [t.number for t in trials if t.state.name == "FAIL"]
    assert s["failures"] == [{"reason": "diverged", "count": n_fail, "trials": failed[:20]}]
    best = max((t for t in trials if t.state.name == "COMPLETE"), key=lambda t: t.value)
    assert s["best"]["trial"] == best.number
    assert s["best"]["values"]["batch_size"] == 2 ** best.params["log2_batch_size"]
    e = s["epochs"]
    n_pruned = s["states"]["PRUNED"]
    assert n_pruned > 0 and e["max_epochs"] == MAX_EPOCHS
    trained = sum(t.user_attrs["epochs"] for t in trials)
    assert e["trained"] == trained
    pruned_epochs = sum(t.user_attrs["epochs"] for t in trials if t.state.name == "PRUNED")
    assert e["saved"] == n_pruned * MAX_EPOCHS - pruned_epochs > 0


def test_importance_ranks_the_two_real_parameters_first(stored):
    imp = stored[2]["importance"]
    assert imp["status"] == "ok"
    everywhere = [p for p in imp["params"] if not p["conditional"]]
    top, rest = everywhere[:2], everywhere[2:]
    assert [p["name"] for p in top] == ["log2_batch_size", "learning_rate"]
    assert top[1]["importance"] > max(p["importance"] for p in rest)
    assert top[0]["low"] > max(p["high"] for p in rest)
    momentum = next(p for p in imp["params"] if p["name"] == "one_minus_momentum")
    assert momentum["conditional"] and 0 < momentum["n_trials"] < imp["n_used"]
    assert set(momentum["by_evaluator"]) == {"ped_anova"}  # trees need every-trial params
    # measured on a few trials only, by one evaluator: the interval must say so
    assert momentum["low"] < 0.05 and momentum["high"] - momentum["low"] > 0.2


def test_declared_vs_measured_verdicts(stored):
    rows = {r["name"]: r for r in stored[2]["declared_vs_measured"]["rows"]}
    # batch size (tier 2) outweighs learning rate (tier 1) by construction
    assert rows["log2_batch_size"]["declared_tier"] == 2
    assert rows["log2_batch_size"]["expected_ranks"] == [2, 3]
    # rank 1 for sure among every-trial params; the conditional momentum's wide interval
    # leaves rank 2 possible, which tier 2 allows
    assert rows["log2_batch_size"]["rank"] == 1
    assert rows["log2_batch_size"]["verdict"] in {"more important than declared", "agrees"}
    assert rows["learning_rate"]["rank_low"] >= 2
    assert rows["learning_rate"]["verdict"] == "less important than declared"
    # units and dropout (tier 4) do nothing: they may not be called more important
    for name in ("units", "dropout"):
        assert rows[name]["verdict"] in {"agrees", "not enough evidence"}
    assert rows["optimizer"]["declared_tier"] == 3


def test_json_is_plain_and_has_the_documented_keys(stored):
    data = json.loads(json.dumps(stored[2], allow_nan=False))
    assert data["schema"] == "tuner.report/1"
    assert set(data) == {
        "schema",
        "study",
        "summary",
        "importance",
        "declared_vs_measured",
        "batch_size",
        "stages",
        "notes",
    }
    assert data["stages"] == []  # a flat study
    p = data["importance"]["params"][0]
    assert set(p) == {
        "name",
        "kind",
        "conditional",
        "n_trials",
        "share_of_trials",
        "importance",
        "low",
        "high",
        "rank",
        "rank_low",
        "rank_high",
        "by_evaluator",
    }
    assert p["low"] <= p["importance"] <= p["high"]
    sizes = [r["batch_size"] for r in data["batch_size"]]
    assert sizes == sorted(sizes) and set(sizes) <= {2**k for k in range(4, 11)}
    fast, slow = data["batch_size"][-1], data["batch_size"][0]
    assert fast["median_seconds_per_epoch"] < slow["median_seconds_per_epoch"]


def test_markdown_reads_like_a_summary(stored):
    text = render_markdown(stored[2])
    assert "maximize" in text and "pruning saved" in text
    assert "| learning_rate" in text and "agrees" in text
    assert "diverged" in text


def test_too_few_trials_says_how_many_and_keeps_the_rest(tmp_path):
    study = make_study(None, 12, name="small")
    data = tuner.reporting.report(study, path=tmp_path / "small.html")
    imp = data["importance"]
    assert imp["status"] == "too_few_trials" and imp["params"] == []
    assert f"at least {imp['min_trials']} complete trials" in imp["message"]
    assert data["summary"]["states"]["COMPLETE"] > 0
    assert {r["verdict"] for r in data["declared_vs_measured"]["rows"]} == {"not enough evidence"}
    assert "Not measured" in (tmp_path / "small.html").read_text()


def test_study_without_space_has_no_declared_tiers():
    study = make_study(None, 60, name="bare", with_space=False)
    data = tuner.reporting.report(study, n_bootstrap=3)
    assert data["declared_vs_measured"]["space"] is None
    assert {r["verdict"] for r in data["declared_vs_measured"]["rows"]} == {"no declared tier"}
    assert any("tuner_space" in n for n in data["notes"])


def test_an_empty_study_is_refused_clearly():
    # (Studies of several objectives are reported: tests/test_pareto.py.)
    with pytest.raises(ReportError, match="no trials yet"):
        tuner.reporting.report(optuna.create_study(study_name="empty"))


def test_missing_study_is_a_one_line_error(tmp_path):
    from tuner.cli import main
    from tuner.storage import open_storage

    url = f"sqlite:///{tmp_path / 'none.db'}"
    open_storage(url)
    with pytest.raises(StudyNotFoundError, match="no study named 'ghost'"):
        tuner.reporting.report("ghost", storage=url)
    result = CliRunner().invoke(main, ["report", "ghost", "--storage", url])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "ghost" in result.output
    assert "Traceback" not in result.output


def test_missing_database_file_is_refused_not_created(tmp_path):
    from tuner.cli import main

    missing = tmp_path / "typo.db"
    result = CliRunner().invoke(main, ["report", "ghost", "--storage", f"sqlite:///{missing}"])
    assert result.exit_code == 2 and "no database file" in result.output
    assert not missing.exists()


def test_public_api_report_is_the_report_function(stored):
    import tuner

    url = stored[0]
    data = tuner.report("synthetic", storage=url, n_bootstrap=2)
    assert data["study"]["name"] == "synthetic"


def test_cli_formats(stored, tmp_path, monkeypatch):
    url = stored[0]
    runner = CliRunner()
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(report_cmd, ["synthetic", "--storage", url, "--bootstrap", "2"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "synthetic-report.html"
    html = (tmp_path / "synthetic-report.html").read_text()
    assert not re.search(r"<script[^>]*\bsrc=", html)  # plotly.js inline: opens offline
    assert "Plotly.newPlot" in html
    assert html.count('class="plot"') >= 7

    result = runner.invoke(
        report_cmd,
        ["synthetic", "--format", "json", "--bootstrap", "2"],
        env={"TUNER_STORAGE": url},
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["importance"]["params"][0]["name"] in {
        "learning_rate",
        "log2_batch_size",
    }
    result = runner.invoke(
        report_cmd, ["synthetic", "--storage", url, "--format", "markdown", "--bootstrap", "2"]
    )
    assert result.exit_code == 0 and result.output.startswith("# Report: synthetic")


def test_importing_tuner_report_stays_light():
    import subprocess
    import sys

    code = (
        "import sys, tuner.reporting, tuner.search.importance, tuner.cli.report; "
        "print(sorted(m for m in ('plotly', 'sklearn', 'optuna.importance', 'tensorflow') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


SCRIPT = "<script>alert(1)</script>"


def test_markdown_escapes_html_from_names_and_attributes(sqlite_url, cli):
    """Markdown passes raw HTML on: a parameter name, a metric or a failure reason that
    holds a tag must reach a Markdown viewer as text, not as a script."""
    study = optuna.create_study(study_name="xss", storage=sqlite_url, direction="maximize")
    study.set_user_attr("tuner_spec", {"metric": f"acc{SCRIPT}"})

    def objective(trial: optuna.Trial) -> float:
        x, y = trial.suggest_float(SCRIPT, 0, 1), trial.suggest_float("y", 0, 1)
        if trial.number % 7 == 3:
            trial.set_user_attr("fail_reason", "<img src=x onerror=alert(2)> & more")
            raise RuntimeError("failed")
        return x + 0.1 * y

    study.optimize(objective, n_trials=30, catch=(RuntimeError,))

    done = cli("report", "xss", "--storage", sqlite_url, "--format", "markdown", "--bootstrap", "2")

    assert done.returncode == 0, done.stderr
    assert "<" not in done.stdout and ">" not in done.stdout
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert f"Best acc{escaped} " in done.stdout  # the metric, from the study's spec
    assert f"| 1    | {escaped} |" in done.stdout  # the parameter, ranked first
    assert "Failed: 4 x &lt;img src=x onerror=alert(2)&gt; &amp; more" in done.stdout
