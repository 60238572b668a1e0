"""The search spaces and example specs ship in the wheel and are found by bare name,
from any folder: what a user of the installed package (not of a checkout) runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

SPACES = sorted(p.name for p in (ROOT / "search_spaces").glob("*.yaml"))
STUDIES = sorted(p.name for p in (ROOT / "studies").glob("*.yaml"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tuner built into a wheel and installed (without its dependencies) into a folder."""
    where = tmp_path_factory.mktemp("wheel")
    # Built from a copy of what the Dockerfile copies: a build/ left in the checkout by
    # an earlier build would otherwise put stale files in the wheel.
    source = where / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for name in ("tuner", "search_spaces", "studies"):
        skip = shutil.ignore_patterns("__pycache__")
        shutil.copytree(ROOT / name, source / name, symlinks=True, ignore=skip)
    # No build isolation: the build needs no download (setuptools is installed).
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-q", "-w", str(where), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    [wheel] = where.glob("tuner-*.whl")
    site = where / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
         str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return wheel


def _run_installed(wheel: Path, args: list[str], cwd: Path, timeout: float = 600):
    """Run Python with the installed wheel (not the checkout) first on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("TUNER_STORAGE", "PYTHONPATH")}
    env["PYTHONPATH"] = str(wheel.parent / "site")
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def test_the_wheel_holds_every_space_and_example_spec(installed: Path):
    names = zipfile.ZipFile(installed).namelist()
    for space in SPACES:
        assert f"tuner/shipped/search_spaces/{space}" in names
    for study in STUDIES:
        assert f"tuner/shipped/studies/{study}" in names


def test_space_list_from_another_folder_shows_the_installed_spaces(installed, tmp_path):
    done = _run_installed(installed, ["-m", "tuner", "space", "list", "--format", "json"], tmp_path)
    assert done.returncode == 0, done.stderr
    listed = {row["name"]: row for row in json.loads(done.stdout)}
    assert sorted(listed) == [Path(s).stem for s in SPACES]
    site = installed.parent / "site"
    assert Path(listed["importance-ranked"]["file"]).is_relative_to(site)
    shown = _run_installed(installed, ["-m", "tuner", "space", "show", "linear-sgd"], tmp_path)
    assert shown.returncode == 0 and "learning_rate" in shown.stdout, shown.stderr


@pytest.mark.slow
def test_tune_with_a_shipped_space_by_name_from_another_project(installed, tmp_path):
    site = str(installed.parent / "site")
    script = (
        "import tuner\n"
        f"assert tuner.__file__.startswith({site!r}), tuner.__file__\n"
        "result = tuner.tune(space='importance-ranked', data={'source': 'digits',"
        " 'max_rows': 300}, n_trials=1, max_epochs=1, tiers='1',"
        " storage='sqlite:///other.db')\n"
        "print('best', result.best_value)\n"
    )
    done = _run_installed(installed, ["-c", script], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "best 0." in done.stdout


def test_a_spec_names_a_shipped_space_and_run_names_a_shipped_spec(cli, tmp_path):
    spec = {
        "name": "by-name",
        "data": {"source": "digits"},
        "space": "linear-sgd",  # short for {file: linear-sgd}
        "model": {"family": "linear"},
    }
    (tmp_path / "by-name.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    done = cli("run", "by-name.yaml", "--queue-only", "--storage", "sqlite:///q.db", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    shipped = cli("spec", "list", "--format", "json", cwd=tmp_path)
    assert [row["name"] for row in json.loads(shipped.stdout)] == [Path(s).stem for s in STUDIES]
    queued = cli("run", "house-price-linear", "--queue-only", "--storage", "sqlite:///q.db",
                 cwd=tmp_path)  # fmt: skip
    assert queued.returncode == 0, queued.stderr
    assert "house-price-linear" in queued.stdout + queued.stderr


def test_an_unknown_name_lists_the_shipped_ones(cli, tmp_path):
    done = cli("space", "show", "importance-ranke", cwd=tmp_path)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1
    assert "search space file not found: importance-ranke" in done.stderr
    assert "shipped name: importance-ranked, linear-sgd" in done.stderr
