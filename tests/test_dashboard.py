"""`tuner dashboard`: the real optuna-dashboard, opened in headless Chromium."""

from __future__ import annotations

import os
import selectors
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from tests.conftest import CHROMIUM_ARGS, ROOT, browser_page

N_TRIALS = 7


@pytest.fixture
def study_url(sqlite_url: str) -> str:
    """A real study in a real SQLite file: a quadratic minimised over N_TRIALS trials."""
    study = optuna.create_study(study_name="dashboard-demo", storage=sqlite_url)
    study.optimize(lambda t: (t.suggest_float("x", -5, 5) - 2) ** 2, n_trials=N_TRIALS)
    return sqlite_url


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]
    if not selector.select(timeout):
        raise AssertionError(f"no URL printed within {timeout}s")
    return proc.stdout.readline()  # type: ignore[union-attr]


@pytest.fixture
def pareto_url(sqlite_url: str) -> str:
    """A study of two objectives named as `tuner run` names them (val_accuracy, n_params)."""
    from tuner.search.objectives import name_objectives

    study = optuna.create_study(
        study_name="dashboard-pareto", storage=sqlite_url, directions=["maximize", "minimize"]
    )
    name_objectives(study, ["val_accuracy", "n_params"])
    study.optimize(
        lambda t: (t.suggest_float("x", 0, 1), 1000 * t.suggest_float("y", 0, 1)), n_trials=8
    )
    return sqlite_url


@pytest.fixture
def dashboard(request: pytest.FixtureRequest) -> Iterator[str]:
    """`tuner dashboard` running as a subprocess on a free port; yields the URL it printed.

    It serves ``study_url``'s study, or the fixture named by an indirect parameter.
    """
    study_url = request.getfixturevalue(getattr(request, "param", "study_url"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuner", "dashboard", "--storage", study_url, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = _first_line(proc, timeout=60)
        assert f"at http://127.0.0.1:{port}/dashboard" in line, proc.stderr.read()
        yield line.split(" at ")[1].split()[0]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.browser
def test_dashboard_shows_the_study_and_its_trial_count(dashboard, chromium, tmp_path: Path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(dashboard)
            page.get_by_text("dashboard-demo").first.wait_for(timeout=20_000)
            page.screenshot(path=tmp_path / "studies.png")
            page.get_by_text("dashboard-demo").first.click()
            page.wait_for_url("**/studies/*")
            page.goto(page.url + "/trials")  # the "Trials (List)" page: the menu is folded
            page.get_by_text(f"{N_TRIALS} Trials").wait_for(timeout=20_000)
            page.screenshot(path=tmp_path / "trials.png", full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "trials.png").stat().st_size > 10_000


@pytest.mark.browser
@pytest.mark.parametrize("dashboard", ["pareto_url"], indirect=True)
def test_dashboard_draws_the_pareto_front_with_the_objectives_names(dashboard, chromium):
    with browser_page(chromium, width=1400, height=1000) as (page, errors):
        page.goto(dashboard)
        page.get_by_text("dashboard-pareto").first.click()
        # the front's card, its axes chosen by the objectives' names, once the trials loaded
        page.get_by_text("Objective X:").first.wait_for(timeout=30_000)
        page.get_by_text("Best Trials").first.wait_for(timeout=30_000)
        page.locator("svg.main-svg").first.wait_for(timeout=30_000)
        body = page.inner_text("body")
        assert "Pareto Front" in body and "val_accuracy" in body and "n_params" in body
    assert errors == []


def test_a_busy_port_is_refused_in_one_line(cli, study_url):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = cli("dashboard", "--storage", study_url, "--port", str(port), timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == (
        f"Error: port {port} on 127.0.0.1 is already in use; choose another with --port "
        f"(e.g. --port {port + 1}) or stop the program that holds it\n"
    )
