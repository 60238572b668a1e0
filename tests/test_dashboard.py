"""`tuner dashboard`: the real optuna-dashboard, opened in headless Chromium."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import selectors
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

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

    def trade_off(trial: optuna.Trial) -> tuple[float, float]:
        # More accuracy costs more parameters, so every trial is on the front: with random
        # objectives one trial sometimes dominated the rest, and the card said "Best Trial".
        accuracy = trial.suggest_float("x", 0, 1)
        trial.suggest_float("y", 0, 1)
        return accuracy, 1000 * accuracy

    study.optimize(trade_off, n_trials=8)
    return sqlite_url


@contextlib.contextmanager
def running_dashboard(storage: str, *options: str) -> Iterator[str]:
    """`tuner dashboard` as a subprocess on a free port; yields the URL it printed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    port = _free_port()
    command = ["dashboard", "--storage", storage, "--port", str(port), *options]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuner", *command],
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


@pytest.fixture
def dashboard(request: pytest.FixtureRequest) -> Iterator[str]:
    """`tuner dashboard` running as a subprocess on a free port; yields the URL it printed.

    It serves ``study_url``'s study, or the fixture named by an indirect parameter.
    """
    with running_dashboard(request.getfixturevalue(getattr(request, "param", "study_url"))) as url:
        yield url


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


def test_a_role_that_can_only_select_is_enough_for_the_dashboard(postgres_url):
    import sqlalchemy as sa

    optuna.create_study(study_name="selected", storage=postgres_url).optimize(
        lambda t: t.suggest_float("x", 0, 1), n_trials=3
    )
    role, database = f"reader_{uuid.uuid4().hex[:8]}", postgres_url.rsplit("/", 1)[1]
    study_db = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with study_db.connect() as conn:
        conn.exec_driver_sql(f"create role {role} login")
        conn.exec_driver_sql(f"grant select on all tables in schema public to {role}")
    try:
        with running_dashboard(f"postgresql://{role}@127.0.0.1:5432/{database}") as url:
            for path in ("/api/studies", "/api/studies/1", "/api/studies/1/param_importances"):
                assert _request(url, "GET", path)[0] == 200, path
    finally:
        with study_db.connect() as conn:
            conn.exec_driver_sql(f"drop owned by {role}")
            conn.exec_driver_sql(f"drop role {role}")
        study_db.dispose()


# A study's pages, as its menu links them, and what each shows once it has loaded.
STUDY_PAGES = {
    "": "Hyperparameter Importance",  # History
    "/analytics": "Hyperparameter Relationships",
    "/trials": f"{N_TRIALS} Trials",
    "/smartSelection": "Parallel Coordinate",
    "/note": "Noted by the test",
}


@pytest.mark.browser
def test_the_read_only_dashboard_still_renders_every_page(dashboard, study_url, chromium):
    import optuna_dashboard

    optuna_dashboard.save_note(
        optuna.load_study(study_name="dashboard-demo", storage=study_url), "Noted by the test"
    )
    failed: list[tuple[str, str, int]] = []
    with browser_page(chromium, width=1400, height=1000) as (page, errors):
        page.on(
            "response",
            lambda r: (
                failed.append((r.request.method, r.url, r.status))
                if r.status >= 400 or r.request.method not in ("GET", "HEAD")
                else None
            ),
        )
        page.goto(dashboard)
        page.get_by_text("dashboard-demo").first.wait_for(timeout=20_000)
        assert "Direction: MINIMIZE" in page.inner_text("body")
        for path, shown in STUDY_PAGES.items():
            page.goto(f"{dashboard}/studies/1{path}")
            page.get_by_text(shown).first.wait_for(timeout=30_000)
        page.goto(f"{dashboard}/compare-studies")
        page.get_by_text("Compare studies with Shift+Click").wait_for(timeout=20_000)
    assert errors == [] and failed == []


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


def _request(
    url: str, method: str, path: str, *, host: str | None = None, body: dict | None = None,
    origin: str | None = None,
) -> tuple[int, str]:  # fmt: skip
    """One real HTTP request to the dashboard at ``url``; (status, body)."""
    where = urlsplit(url)
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
    headers = {"Host": host or where.netloc, "Content-Type": "application/json"}
    if origin:
        headers["Origin"] = origin
    try:
        conn.request(method, path, body=json.dumps(body or {}), headers=headers)
        reply = conn.getresponse()
        return reply.status, reply.read().decode()
    finally:
        conn.close()


def _study_names(url: str) -> list[str]:
    return sorted(s.study_name for s in optuna.get_all_study_summaries(url))


# What the page can change: write a note; create, rename, delete a study.
WRITES = [
    ("PUT", "/api/studies/1/note", {"version": 1, "body": "hello"}),
    ("POST", "/api/studies", {"study_name": "made", "directions": ["minimize"]}),
    ("POST", "/api/studies/1/rename", {"study_name": "renamed"}),
    ("DELETE", "/api/studies/1", {}),
]


def test_a_foreign_host_is_refused_so_dns_rebinding_reaches_nothing(study_url):
    with running_dashboard(study_url, "--allow-writes") as url:
        port = urlsplit(url).port
        for method, path, body in [("GET", "/api/studies", None), *WRITES]:
            status, text = _request(url, method, path, host=f"attacker.example:{port}", body=body)
            assert status == 403, (method, path, status)
            assert "--allowed-host attacker.example" in text
        # The names a browser on this machine uses still work.
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
            status, text = _request(url, "GET", "/api/studies", host=host)
            assert status == 200 and "dashboard-demo" in text, host
    assert _study_names(study_url) == ["dashboard-demo"]


def test_allowed_host_names_a_proxy(study_url):
    # As the README's nginx block forwards: Host and Origin name the proxy.
    proxy = {"host": "tuner.example.com", "origin": "https://tuner.example.com"}
    with running_dashboard(
        study_url, "--allowed-host", "tuner.example.com", "--allow-writes"
    ) as url:
        status, text = _request(url, "GET", "/api/studies", **proxy)
        assert status == 200 and "dashboard-demo" in text
        status, _ = _request(url, *WRITES[1][:2], body=WRITES[1][2], **proxy)
        assert status == 201
        status, _ = _request(url, "GET", "/api/studies", host="other.example.com")
        assert status == 403
    assert _study_names(study_url) == ["dashboard-demo", "made"]


def test_the_dashboard_is_read_only_unless_writes_are_allowed(study_url):
    with running_dashboard(study_url) as url:
        for method, path, body in WRITES:
            status, text = _request(url, method, path, body=body)
            assert status == 403, (method, path, status)
            assert "read-only: start it with --allow-writes" in text
        assert _request(url, "GET", "/api/studies/1")[0] == 200
    assert _study_names(study_url) == ["dashboard-demo"]
    assert optuna.load_study(study_name="dashboard-demo", storage=study_url).trials


def test_allow_writes_lets_the_page_change_studies_from_its_own_origin(study_url):
    with running_dashboard(study_url, "--allow-writes") as url:
        origin = f"http://{urlsplit(url).netloc}"
        # A page on another site may not write (CSRF), even to the right address.
        status, _ = _request(url, *WRITES[1][:2], body=WRITES[1][2], origin="http://evil.test")
        assert status == 403
        statuses = [_request(url, m, p, body=b, origin=origin)[0] for m, p, b in WRITES[:3]]
        assert statuses == [204, 201, 201]
        assert _study_names(study_url) == ["made", "renamed"]
        renamed = optuna.storages.RDBStorage(study_url).get_study_id_from_name("renamed")
        status, _ = _request(url, "DELETE", f"/api/studies/{renamed}")
        assert status == 204
    assert _study_names(study_url) == ["made"]
