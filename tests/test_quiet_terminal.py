"""Only tuner's own lines reach the terminal, and a closed pipe ends a command quietly.

Every test runs ``tuner`` as a real subprocess, as a user types it: with ``--workers``,
``studies copy``, ``report``, and with ``| head``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, run_cli
from tests.test_report_shapes import STRAY, shaped_study

EXIT_CLOSED_PIPE = 141  # 128 + SIGPIPE, as `cat` or `ls` end when `head` stops reading
SPACE_FILE = str(ROOT / "search_spaces" / "importance-ranked.yaml")


@pytest.fixture(scope="module")
def study_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real SQLite file holding a study of the shipped space (no training needed)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('quiet') / 'study.db'}"
    shaped_study(url, name="digits-mlp", tier_sizes=[4, 4, 6, 6])
    return url


def _with_closed_pipe(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``tuner ARGS`` with stdout a pipe whose reader has already gone.

    Deterministic where ``| head`` is a race: every write the command makes fails.
    """
    env = {k: v for k, v in os.environ.items() if k != "TUNER_STORAGE"}
    env["PYTHONPATH"] = str(ROOT)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "tuner", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=300,
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize(
    "args",
    [
        ("space", "show", SPACE_FILE, "--format", "csv"),
        ("space", "list"),
        ("studies", "list"),
        ("studies", "show", "digits-mlp"),
        ("trials", "list", "digits-mlp", "--format", "csv"),
        ("export", "digits-mlp", "--format", "csv"),
        ("report", "digits-mlp", "--format", "markdown"),
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_every_command_ends_quietly_when_its_reader_has_gone(args, study_url):
    storage = () if args[0] == "space" else ("--storage", study_url)
    done = _with_closed_pipe(*args, *storage)

    assert done.stderr == ""
    assert done.returncode == EXIT_CLOSED_PIPE


def test_space_show_into_head_prints_three_lines_and_nothing_else():
    """The user's own command, five times: the race it lost 3 times in 5."""
    for _ in range(5):
        done = subprocess.run(
            [
                "bash",
                "-c",
                f"{sys.executable} -m tuner space show {SPACE_FILE} --format csv | head -3",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=120,
        )
        assert done.returncode == 0
        assert done.stderr == ""
        assert done.stdout.splitlines()[0].startswith("tier,name,type")
        assert len(done.stdout.splitlines()) == 3


def test_studies_copy_prints_its_one_line(study_url, tmp_path):
    to = f"sqlite:///{tmp_path / 'copy.db'}"
    done = run_cli("studies", "copy", "digits-mlp", "--storage", study_url, "--to-storage", to)

    assert done.returncode == 0, done.stderr
    assert not STRAY.search(done.stdout + done.stderr), done.stderr
    assert done.stdout == ""
    assert done.stderr.startswith("Copied study 'digits-mlp'")
    assert len(done.stderr.splitlines()) == 1


def test_verbose_shows_what_quiet_holds_back(study_url, tmp_path):
    to = f"sqlite:///{tmp_path / 'copy.db'}"
    done = run_cli(
        "-v", "studies", "copy", "digits-mlp", "--storage", study_url, "--to-storage", to
    )

    assert done.returncode == 0, done.stderr
    assert "A new study created in RDB" in done.stderr  # Optuna's line, asked for


@pytest.mark.slow
def test_a_staged_run_with_workers_prints_only_tuner_lines(tiny_spec, tmp_path):
    spec = tiny_spec(strategy="staged", budget={"n_trials": 4}, training={"max_epochs": 1})
    url = f"sqlite:///{tmp_path / 'study.db'}"

    done = run_cli("run", str(spec), "--storage", url, "--workers", "2", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert not STRAY.search(done.stdout + done.stderr), done.stderr
    assert "4/4 done" in done.stderr
