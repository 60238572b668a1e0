"""What a newcomer trips on, done as they did it: a resumed run's bar, MNIST offline, the
tour's PostgreSQL database, and where retrained models go."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import shutil
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from tests.conftest import ROOT, fresh_postgres_database, run_cli
from tuner.outcome.retrain import default_artifact_dir


def _run_on_a_terminal(args: list[str], cwd: Path) -> str:
    """``tuner ARGS`` with stderr on a pseudo-terminal (so the bar is drawn); its output."""
    master, slave = pty.openpty()
    # 24 rows of 120 columns: a new pseudo-terminal has none, and the bar fits its width.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    env = {k: v for k, v in os.environ.items() if k != "TUNER_STORAGE"}
    env["PYTHONPATH"] = str(ROOT)
    process = subprocess.Popen(
        [sys.executable, "-m", "tuner", *args],
        cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=slave,
    )  # fmt: skip
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the terminal closed: the process is done
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert process.wait(timeout=600) == 0
    return b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.slow
def test_a_resumed_run_shows_the_study_best_before_its_first_new_trial(tiny_spec, tmp_path):
    spec = str(tiny_spec())
    url = f"sqlite:///{tmp_path / 'study.db'}"
    first = run_cli("run", spec, "--storage", url, "--n-trials", "1", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    best = re.search(r"Best val_accuracy: ([0-9.]+)", first.stdout)
    assert best, first.stdout

    shown = _run_on_a_terminal(
        ["run", spec, "--storage", url, "--n-trials", "2", "--resume"], cwd=tmp_path
    )
    frames = [f for f in re.split(r"[\r\n]", shown) if "0/1" in f]
    assert frames, shown
    # The first frame is drawn before the new trial ends: it shows the study's best.
    assert f"best {float(best.group(1)):.4g}" in frames[0], frames[0]


@pytest.mark.slow
def test_mnist_offline_prints_nothing_but_the_refusal(cli, tmp_path):
    env = {
        "KERAS_HOME": str(tmp_path / "keras"),  # an empty cache: Keras must download
        "HTTPS_PROXY": "http://127.0.0.1:9",  # and cannot: nothing listens there
        "https_proxy": "http://127.0.0.1:9",
    }
    done = cli("run", "mnist-cnn", "--storage", f"sqlite:///{tmp_path / 'm.db'}", cwd=tmp_path,
               env=env)  # fmt: skip
    assert done.returncode == 2
    assert done.stdout == "", "stdout is for the summary; offline there is none"
    [line] = done.stderr.splitlines()
    assert "could not load mnist: the download failed" in line
    assert not (tmp_path / "m.db").exists()


@pytest.mark.postgres
def test_the_tour_database_that_does_not_exist_says_how_to_create_it(cli, tmp_path):
    with fresh_postgres_database() as existing:  # the server is there (else: skipped)
        missing = existing.rsplit("/", 1)[1] + "_missing"
        url = existing.rsplit("/", 1)[0] + f"/{missing}"
        done = cli("studies", "list", "--storage", url, cwd=tmp_path)
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert f'database "{missing}" does not exist' in line
    assert f"create it first: createdb -h 127.0.0.1 -p 5432 -U postgres {missing}" in line


def test_retrained_models_go_where_the_docs_say_and_git_ignores_them(tmp_path):
    where = default_artifact_dir("sqlite:///tuner.db")
    assert where == Path("tuner-artifacts")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "`tuner-artifacts/`" in readme
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", f"{where}/model.keras"], cwd=ROOT
    )
    assert ignored.returncode == 0, f"{where}/ is not git-ignored"
