"""The report on studies shaped like the shipped specs make them, as a user runs it.

`tuner run studies/digits-mlp.yaml` (staged, median pruner) leaves a study where most
trials are pruned, tier after tier adds parameters, conditional ones (momentum, β, decay
rate) appear only with some optimizers and schedules, and the last tier's parameters
(l2, batch norm, warm-up) are seen only in pruned trials or with one value. Optuna's
plots refuse a parameter absent from the complete trials and warn on a single value; the
report must draw what it can, say why it skips the rest, and print nothing else.

The studies here are made by the shipped spec's own search space (``SearchSpace.suggest``
on Optuna trials, tier by tier as the staged strategy adds them) on a real SQLite file;
``test_report_after_a_real_run_of_the_shipped_spec`` trains the real thing.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import optuna
import pytest
import yaml

from tests.conftest import ROOT, browser_page, run_cli
from tuner import records
from tuner.specs.spec import load_spec

# What must never reach a user's terminal: Optuna's log lines, Python warnings, tracebacks.
STRAY = re.compile(r"^\[[IWEDC] \d{4}-|\w+Warning\b|Traceback|unexpected", re.MULTILINE)
SHIPPED = ROOT / "studies" / "digits-mlp.yaml"
PLOTS = ("history", "parallel", "slice", "contour", "curves", "timeline", "batch_size")


def shaped_study(url: str, *, name: str, tier_sizes: list[int]) -> None:
    """A staged study of the shipped digits-mlp space: stage k searches tiers 1..k.

    Trials of the last stage (tier 4) are pruned, but for its first, which completes
    with plain SGD: its parameters are seen only with a single value in complete trials,
    and Adam's (beta_1, beta_2, epsilon, tier 4) only in pruned ones. A trial of each
    stage fails. The rest complete with a value that depends on the learning rate.
    """
    resolved = load_spec(SHIPPED)
    space = resolved.space
    study = optuna.create_study(
        study_name=name, direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1)
    )
    study.enqueue_trial(space.default_trial(tiers={1}))  # the baseline, as `tuner run` does
    completed_last_tier = False
    for stage, size in enumerate(tier_sizes, start=1):
        for i in range(size):
            trial = study.ask()
            fixed = {"optimizer": ("sgd", "adam")[i]} if stage == 4 and i < 2 else None
            values = space.suggest(trial, tiers=range(1, stage + 1), fixed=fixed)
            trial.set_user_attr(records.STAGE, stage)
            trial.set_user_attr(records.WORKER, "host:1")
            value = 0.95 - 0.02 * (math.log10(values["learning_rate"]) + 3) ** 2
            for epoch in range(3):
                trial.report(value * (epoch + 1) / 3, epoch)
            trial.set_user_attr(records.EPOCHS, 3)
            trial.set_user_attr(records.SECONDS, 0.1 * 1024 / values["batch_size"])
            if i == size - 1 and stage > 1:
                trial.set_user_attr(records.FAIL_REASON, "diverged")
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            elif stage == 4 and completed_last_tier:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            else:
                completed_last_tier = stage == 4
                study.tell(trial, value)
    saved = optuna.create_study(study_name=name, storage=url, direction="maximize")
    saved.set_user_attr(records.SPEC, resolved.spec.model_dump(mode="json"))
    saved.set_user_attr(records.SPACE, space.model_dump(mode="json"))
    saved.set_user_attr(records.MAX_EPOCHS, 3)
    saved.add_trials(study.get_trials())


def _shape(url: str, name: str) -> dict[str, set]:
    """Distinct values of each parameter among complete trials, and the parameters only
    pruned or failed trials have: the shape the test is about, checked, not assumed."""
    study = optuna.load_study(study_name=name, storage=url)
    complete: dict[str, set] = {}
    for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        for p, v in t.params.items():
            complete.setdefault(p, set()).add(v)
    others = {p for t in study.trials for p in t.params} - set(complete)
    return {"single": {p for p, vs in complete.items() if len(vs) == 1}, "absent": others}


@pytest.fixture(
    scope="module",
    params=[[6, 6, 8, 20], [6, 6, 80, 30]],
    ids=["few-complete-importance-not-measured", "importance-measured"],
)
def shaped(request, tmp_path_factory) -> tuple[Path, str, str]:
    directory = tmp_path_factory.mktemp("shaped")
    url = f"sqlite:///{directory / 'study.db'}"
    shaped_study(url, name="digits-mlp", tier_sizes=request.param)
    return directory, url, "digits-mlp"


def test_the_study_has_the_shape_that_broke_the_report(shaped):
    _, url, name = shaped
    shape = _shape(url, name)
    assert {"l2", "warmup_epochs"} & shape["single"], shape  # one complete tier-4 trial
    assert {"beta_1", "one_minus_beta_2", "epsilon"} <= shape["absent"], "only when pruned"


def test_html_report_draws_every_plot_and_prints_only_its_path(shaped):
    directory, url, name = shaped
    out = run_cli("report", name, "--storage", url, cwd=directory)

    assert out.returncode == 0, out.stderr
    assert not STRAY.search(out.stdout + out.stderr), out.stdout + out.stderr
    assert out.stderr == ""
    html = directory / f"{name}-report.html"
    assert out.stdout.strip() == html.name
    text = html.read_text(encoding="utf-8")
    for plot in PLOTS:
        assert f'data-plot="{plot}"' in text, f"the {plot} plot is missing"


def test_json_and_markdown_reports_stay_quiet(shaped):
    directory, url, name = shaped
    for fmt in ("json", "markdown"):
        out = run_cli("report", name, "--storage", url, "--format", fmt, cwd=directory)
        assert out.returncode == 0, out.stderr
        assert not STRAY.search(out.stderr), out.stderr
    data = json.loads(run_cli("report", name, "--storage", url, "--format", "json").stdout)
    assert data["summary"]["states"]["PRUNED"] > data["summary"]["states"]["COMPLETE"] // 4


@pytest.mark.browser
def test_the_shaped_report_renders_in_a_browser(shaped, chromium):
    directory, url, name = shaped
    assert run_cli("report", name, "--storage", url, cwd=directory).returncode == 0
    with browser_page(chromium) as (page, errors):
        page.goto((directory / f"{name}-report.html").as_uri())
        page.wait_for_function(
            "() => [...document.querySelectorAll('div.plot')]"
            ".every(d => d.querySelector('svg.main-svg'))",
            timeout=30_000,
        )
        drawn = page.evaluate(
            "() => [...document.querySelectorAll('div.plot')].map(d => d.dataset.plot)"
        )
    assert set(PLOTS) <= set(drawn)
    assert errors == []


@pytest.mark.slow
def test_report_after_a_real_run_of_the_shipped_spec(tmp_path):
    """What the README says to do, on the shipped spec, with fewer epochs and trials."""
    spec = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    spec["space"]["file"] = str(ROOT / "search_spaces" / "importance-ranked.yaml")
    # 4 epochs and 12 trials: the study that made the report crash (batch_norm, warm-up
    # and others only in pruned trials), in a minute and a half on two cores
    spec["training"]["max_epochs"] = 4
    spec["budget"]["n_trials"] = 12
    path = tmp_path / "digits-mlp.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'tuner.db'}"

    run = run_cli("run", str(path), "--storage", url, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    out = run_cli("report", "digits-mlp", "--storage", url, cwd=tmp_path)

    assert out.returncode == 0, out.stderr
    assert not STRAY.search(run.stderr + out.stdout + out.stderr), run.stderr + out.stderr
    assert (tmp_path / "digits-mlp-report.html").stat().st_size > 100_000


@pytest.mark.slow
def test_the_quick_start_study_as_shipped_has_importance_with_intervals(tmp_path):
    # The README's first command, as shipped (20 trials, 15 epochs): most trials are
    # pruned and a learning rate may diverge; the report still measures importance.
    spec = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    spec["space"]["file"] = str(ROOT / "search_spaces" / "importance-ranked.yaml")
    path = tmp_path / "digits-mlp.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'tuner.db'}"

    assert run_cli("run", str(path), "--storage", url, cwd=tmp_path).returncode == 0
    out = run_cli("report", "digits-mlp", "--storage", url, "--format", "json", cwd=tmp_path)

    importance = json.loads(out.stdout)["importance"]
    assert importance["status"] == "ok", importance["message"]
    assert importance["measured_at"]["n_trials"] == 20
    assert len(importance["params"]) == 16  # every searched parameter, with an interval
    assert all(row["low"] is not None and row["high"] is not None for row in importance["params"])
