"""The Python API as a user's script meets it: quiet unless asked, model values back,
errors in Python words. Each test runs a real script in a subprocess on a real SQLite
file, and reads what reached its terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT, write_tiny_spec
from tests.test_report_shapes import STRAY

SPACE_FILE = ROOT / "search_spaces" / "importance-ranked.yaml"
README_OPTIMIZE = f"""
import json, logging, tuner
{{logging}}
def f(params, report):                     # report(value, step) may prune the trial
    return (params["learning_rate"] - 0.01) ** 2 + (params["batch_size"] - 64) ** 2 / 1e4

result = tuner.optimize(f, space={str(SPACE_FILE)!r}, n_trials={{n_trials}},
                        direction="minimize", strategy={{strategy!r}},
                        storage="sqlite:///f.db", study_name="f"{{more}})
print(json.dumps(result.best_params))
"""


def _script(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env={
            **{k: v for k, v in os.environ.items() if k != "TUNER_STORAGE"},
            "PYTHONPATH": str(ROOT),
        },
        capture_output=True,
        text=True,
        timeout=600,
    )


def _optimize(
    tmp_path: Path, *, n_trials=60, strategy="staged", logging="", more=""
) -> subprocess.CompletedProcess[str]:
    code = README_OPTIMIZE.format(n_trials=n_trials, strategy=strategy, logging=logging, more=more)
    return _script(code, tmp_path)


def test_readme_optimize_prints_nothing_and_returns_model_values(tmp_path):
    """The README's staged example: stage boundaries measure importance on scratch
    studies, each of which Optuna announces (`A new study created in memory`)."""
    done = _optimize(tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    best = json.loads(done.stdout)
    assert "learning_rate" in best
    assert not [k for k in best if k.startswith(("log2_", "one_minus_"))], best


def test_flat_best_params_name_the_model_values(tmp_path):
    done = _optimize(tmp_path, n_trials=12, strategy="flat")

    assert done.returncode == 0, done.stderr
    best = json.loads(done.stdout)
    assert best["batch_size"] in {16, 32, 64, 128, 256, 512, 1024}
    assert "log2_batch_size" not in best


def test_progress_true_gives_a_line_per_trial_and_nothing_else(tmp_path):
    done = _optimize(tmp_path, n_trials=5, strategy="flat", more=", progress=True")

    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 5 and all(" done" in line for line in lines), done.stderr
    assert not STRAY.search(done.stderr)


def test_standard_logging_shows_optunas_lines_when_the_caller_asks(tmp_path):
    asked = _optimize(
        tmp_path, n_trials=3, strategy="flat", logging="logging.basicConfig(level=logging.INFO)"
    )
    assert asked.returncode == 0, asked.stderr
    # through the caller's handler, not Optuna's own
    assert "INFO:tuner.execution.worker:trial 2 finished: complete" in asked.stderr
    assert "INFO:optuna.storages._rdb.storage:A new study created in RDB" in asked.stderr

    warned = _optimize(
        tmp_path, n_trials=5, strategy="flat", logging="logging.basicConfig(level=logging.WARNING)"
    )
    assert warned.returncode == 0, warned.stderr
    assert warned.stderr == ""


def test_optimize_with_storage_needs_a_study_name(tmp_path):
    done = _script(
        f"""
        import tuner
        tuner.optimize(lambda p, r: 0.0, space={str(SPACE_FILE)!r}, n_trials=2,
                       direction="minimize", storage="sqlite:///f.db")
        """,
        tmp_path,
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert "tuner.errors.SpecError" in last and "needs study_name=" in last
    assert not (tmp_path / "f.db").exists() or "f" not in _study_names(tmp_path / "f.db")


def _study_names(path: Path) -> list[str]:
    import optuna

    return optuna.get_all_study_names(f"sqlite:///{path}")


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return write_tiny_spec(tmp_path, budget={"n_trials": 1}, training={"max_epochs": 1})


@pytest.mark.slow
def test_tune_twice_names_python_arguments_and_stays_quiet(tiny, tmp_path):
    code = f"""
        import tuner
        result = tuner.tune({str(tiny)!r}, storage="sqlite:///my.db", tiers="1")
        print(sorted(result.best_params), len(result.best_config))
        """
    first = _script(code, tmp_path)
    assert first.returncode == 0, first.stderr
    assert not STRAY.search(first.stdout + first.stderr), first.stderr
    # tiers="1": the searched values are the learning rate's; best_config has them all
    assert first.stdout.split("]")[0] == "['learning_rate'"
    assert int(first.stdout.split("]")[1]) >= 14

    again = _script(code, tmp_path)
    assert again.returncode == 1
    last = again.stderr.strip().splitlines()[-1]
    assert "StudyExistsError" in last
    assert "resume=True" in last and "overwrite=True" in last and "study_name=" in last
    assert "--" not in last, "no CLI flags in a Python error"


def test_report_of_a_missing_study_says_how_to_list_them_in_python(tmp_path):
    import optuna

    import tuner

    url = f"sqlite:///{tmp_path / 'my.db'}"
    optuna.create_study(study_name="there", storage=url)
    with pytest.raises(tuner.StudyNotFoundError) as caught:
        tuner.report("not-there", storage=url)
    message = str(caught.value)
    assert "optuna.get_all_study_names(storage)" in message
    assert "tuner studies list" not in message


def test_report_from_python_on_a_study_without_complete_trials_prints_nothing(tmp_path):
    done = _script(
        """
        import optuna, tuner
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # the setup's own lines
        study = optuna.create_study(study_name="p", storage="sqlite:///p.db")
        for _ in range(3):
            trial = study.ask()
            trial.suggest_float("x", 0, 1)
            trial.report(0.5, 0)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        tuner.report("p", storage="sqlite:///p.db", path="p.html")
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout + done.stderr == ""
    assert "no trial has completed yet" in (tmp_path / "p.html").read_text(encoding="utf-8")
