"""Shared fixtures: real SQLite files, the real PostgreSQL server, the CLI as users run it.

A test that needs a service that is missing skips with the reason locally; in CI
(``TUNER_REQUIRE_SERVICES=1``, set by .ci/run) it fails instead, so CI never passes by
skipping.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get(
    "TUNER_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
# Space overrides for tests that need every trial to complete: small models (`units`
# within its narrowed range), the learning rate tamed so that nothing diverges.
TAME_OVERRIDES = {
    "units": {"high": 64, "default": 32},
    "layers": {"high": 2},
    "batch_size": {"low": 32, "high": 128},
    "learning_rate": {"high": 0.01},
}
CHROMIUM = os.environ.get("TUNER_TEST_CHROMIUM", "/usr/bin/chromium")
REQUIRE_SERVICES = os.environ.get("TUNER_REQUIRE_SERVICES") == "1"
# Headless without the background traffic this closed network refuses.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def need(condition: bool, reason: str) -> None:
    """Skip locally when a service is missing; fail in CI, where it must be there."""
    if condition:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"required in CI but missing: {reason}")
    pytest.skip(reason)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file, as `tuner run --storage` takes it."""
    return f"sqlite:///{tmp_path / 'study.db'}"


@contextlib.contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A fresh database on the real PostgreSQL server (its URL), dropped afterwards."""
    try:
        import sqlalchemy as sa
    except ImportError:  # pragma: no cover
        pytest.skip("sqlalchemy missing")
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:  # any failure to connect means the server is not there
        need(False, f"PostgreSQL at {PG_ADMIN_URL} is not reachable ({type(exc).__name__})")
    name = f"tuner_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'create database "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(
                sa.text(
                    "select pg_terminate_backend(pid) from pg_stat_activity where datname = :n"
                ),
                {"n": name},
            )
            conn.execute(sa.text(f'drop database if exists "{name}"'))
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh database on the real PostgreSQL server, dropped afterwards."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def chromium() -> str:
    """Path of Debian's headless Chromium."""
    need(
        Path(CHROMIUM).exists() or shutil.which("chromium") is not None,
        f"Chromium not installed at {CHROMIUM} (apt-get install chromium)",
    )
    return CHROMIUM if Path(CHROMIUM).exists() else str(shutil.which("chromium"))


@contextlib.contextmanager
def browser_page(
    chromium: str, *, width: int = 1280, height: int = 900
) -> Iterator[tuple[Any, list[str]]]:
    """A page in headless Chromium, and the errors its scripts raise or log to the console."""
    sync_api = pytest.importorskip("playwright.sync_api")
    errors: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            yield page, errors
        finally:
            browser.close()


def run_cli(
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 600,
    input: str = "",
) -> subprocess.CompletedProcess[str]:
    """Run ``tuner ARGS`` in a real subprocess, as a user would; ``input`` is its stdin."""
    full_env = {k: v for k, v in os.environ.items() if k != "TUNER_STORAGE"}
    full_env.update({"PYTHONPATH": str(ROOT), **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "tuner", *args],
        cwd=cwd or ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
    )


@pytest.fixture
def cli():
    """The CLI as a subprocess: ``cli("run", spec, "--storage", url)``."""
    return run_cli


def write_tiny_spec(directory: Path, **changes) -> Path:
    """Write a fast study spec (digits, 600 rows, 3 epochs, 2 trials) into ``directory``."""
    import yaml

    spec = {
        "name": "tiny",
        "metric": "val_accuracy",
        "direction": "maximize",
        "data": {"source": "digits", "max_rows": 600},
        "training": {"max_epochs": 3},
        "space": {
            "file": str(ROOT / "search_spaces" / "importance-ranked.yaml"),
            "overrides": {
                "units": {"high": 64, "default": 64},
                "layers": {"high": 2},
                "batch_size": {"low": 32, "high": 128},
            },
        },
        "pruner": "none",
        "budget": {"n_trials": 2},
        "seed": 0,
    }
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    path = directory / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


@pytest.fixture
def tiny_spec(tmp_path: Path):
    """Write a fast study spec (digits, few epochs) and return its path; fields can be changed."""
    return lambda **changes: write_tiny_spec(tmp_path, **changes)


@dataclass(frozen=True)
class TinyStudy:
    url: str
    spec: Path
    name: str = "tiny"


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory: pytest.TempPathFactory) -> TinyStudy:
    """A real study made once per test module by `tuner run` on the tiny spec (2 trials).

    Tests that change a study work on a copy (``tuner studies copy``), not on this one.
    """
    directory = tmp_path_factory.mktemp("tiny_study")
    spec = write_tiny_spec(directory)
    url = f"sqlite:///{directory / 'study.db'}"
    done = run_cli("run", str(spec), "--storage", url)
    assert done.returncode == 0, done.stderr
    return TinyStudy(url=url, spec=spec)
