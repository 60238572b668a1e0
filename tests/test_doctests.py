"""Every ``>>>`` example in tuner/ runs here and checks its output: a docstring that
drifts from the code fails a test named after it.

Each docstring runs in a fresh working directory holding copies of studies/,
search_spaces/ and a ``tuner.db`` made once per session, with the module's own names and
these (:func:`_namespace`):

- ``space``: the shipped ``search_spaces/importance-ranked.yaml``;
- ``study``: study ``digits-mlp`` in ``sqlite:///tuner.db``, created from
  ``studies/digits-mlp.yaml`` as ``tuner run`` does, its trials run by a plain function of
  the parameters (no Keras) through the same trial loop: a curve reported per epoch,
  some trials pruned; ``digits-size`` (two objectives) is there too;
- ``staged_study``: an in-memory study of ``tuner.optimize(strategy="staged")`` on
  ``search_spaces/linear-sgd.yaml``, long enough for its stages to decide;
- ``conn``: a read connection to ``tuner.db``; ``dataset``: 300 digits rows; ``model``:
  the built-in MLP for them, built but not trained (a new one for each example).

Examples that create the studies they show (``tuner.tune``) run without ``tuner.db``
(:data:`STARTS_EMPTY`); the PostgreSQL example uses the local server, skipped when it is
down (failed in CI). Options: ELLIPSIS and NORMALIZE_WHITESPACE.
"""

from __future__ import annotations

import contextlib
import dataclasses
import doctest
import importlib
import importlib.util
import math
import pkgutil
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tuner
from tests.conftest import ROOT

OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
# Their example makes a new study in the default storage, as a first run does.
STARTS_EMPTY = frozenset({"tuner", "tuner.api._tune.tune"})
# Their example shows what only PostgreSQL has (connection budget) on the local server.
NEEDS_POSTGRES = frozenset({"tuner.storage.maintenance.diagnose"})
HAS_RAY = importlib.util.find_spec("ray") is not None


def _docstrings() -> Iterator[Any]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    modules = pkgutil.walk_packages(tuner.__path__, "tuner.")
    # __main__ runs the CLI when imported.
    names = ["tuner"] + [m.name for m in modules if not m.name.endswith("__main__")]
    for name in names:
        if name.rsplit(".", 1)[-1].startswith("ray_") and not HAS_RAY:
            skip = pytest.mark.skip(reason="Ray is not installed (the ray extra)")
            yield pytest.param(None, id=name, marks=skip)  # it imports ray: not importable
            continue
        module = importlib.import_module(name)
        for test in finder.find(module, name):
            if test.examples:
                yield pytest.param(test, id=test.name)


EXAMPLES = sorted(_docstrings(), key=lambda p: p.id)


def test_examples_are_found():
    # A finder that silently found nothing would pass every run below.
    assert len(EXAMPLES) >= 40
    assert {"tuner", "tuner.api._tune.tune", "tuner.api._optimize.optimize"} <= {
        p.id for p in EXAMPLES
    }


def _quality(params: dict[str, Any]) -> float:
    """A digits-like validation accuracy, best at the space's defaults (learning_rate 1e-3,
    batch 32): the baseline trial stays the best one whatever the sampler draws."""
    lr, batch = params["learning_rate"], params["batch_size"]
    return 0.96 - 0.04 * (math.log10(lr) + 3) ** 2 - 0.01 * abs(math.log2(batch) - 5)


def _plain_trials(prepared: Any, *, epochs: int) -> Any:
    """The prepared run with its Keras objective swapped for a plain function: same
    strategy, storage, queue and trial loop, each trial a few milliseconds."""
    from tuner import records

    search = prepared.objective.strategy
    several = len(prepared.study.directions) > 1

    def objective(trial: Any) -> Any:
        params = search.suggest(trial)
        n_params = 74 * params["units"] + (params["layers"] - 1) * params["units"] ** 2 + 10
        trial.set_user_attr(records.N_PARAMS, n_params)
        trial.set_user_attr(records.SECONDS, 1.0)
        for epoch in range(epochs):
            accuracy = _quality(params) * (1 - 0.5 ** (epoch + 1))
            trial.set_user_attr(records.EPOCHS, epoch + 1)
            if not several:
                trial.report(accuracy, epoch)
                if trial.should_prune():
                    import optuna

                    raise optuna.TrialPruned(f"pruned at step {epoch}")
        trial.set_user_attr("val_accuracy", accuracy)
        return [accuracy, float(n_params)] if several else accuracy

    return dataclasses.replace(prepared, objective=objective)


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """studies/, search_spaces/ and tuner.db (digits-mlp, digits-size), made once."""
    from tuner.execution.run import execute, prepare_run
    from tuner.specs.spec import load_spec

    home = tmp_path_factory.mktemp("doctest_home")
    for folder in ("studies", "search_spaces"):
        shutil.copytree(ROOT / folder, home / folder)
    url = f"sqlite:///{home / 'tuner.db'}"
    for spec, n_trials in (("digits-mlp", 12), ("digits-size", 8)):
        resolved = load_spec(home / "studies" / f"{spec}.yaml")
        prepared = prepare_run(resolved, storage_url=url, n_trials=n_trials)
        execute(_plain_trials(prepared, epochs=resolved.spec.training.max_epochs))
    return home


@pytest.fixture(scope="session")
def shared(template: Path) -> dict[str, Any]:
    """What every example may use and none changes: loaded once."""
    import tuner as api
    from tuner.specs.space import load_space
    from tuner.specs.spec import DataSpec
    from tuner.trial.data import load_dataset

    def f(params: dict[str, Any], report: Any) -> float:
        return -_quality(params)

    staged = api.optimize(
        f,
        space=template / "search_spaces" / "linear-sgd.yaml",
        n_trials=60,
        direction="minimize",
        strategy="staged",
    ).study
    dataset = load_dataset(DataSpec(source="digits", max_rows=300), base_dir=template, seed=0)
    return {
        "space": load_space(template / "search_spaces" / "importance-ranked.yaml"),
        "staged_study": staged,
        "dataset": dataset,
    }


@pytest.mark.parametrize("example", EXAMPLES)
def test_example(example, template, shared, tmp_path, monkeypatch, request):
    from tuner.storage import load_study, read_connection

    for folder in ("studies", "search_spaces"):
        shutil.copytree(template / folder, tmp_path / folder)
    if example.name not in STARTS_EMPTY:
        shutil.copy(template / "tuner.db", tmp_path / "tuner.db")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TUNER_STORAGE", raising=False)
    test = doctest.DocTest(
        example.examples,
        dict(example.globs),
        example.name,
        example.filename,
        example.lineno,
        example.docstring,
    )
    if example.name in NEEDS_POSTGRES:
        request.getfixturevalue("postgres_url")  # skips (fails in CI) when the server is down
    test.globs.update(shared)
    if any(re.search(r"\bmodel\b", e.source) for e in example.examples):
        from tuner.trial.training import build_model

        # Built for each example: examples compile and fit it.
        test.globs["model"] = build_model({"units": 32, "layers": 1}, shared["dataset"])[0]
    with contextlib.ExitStack() as stack:
        if example.name not in STARTS_EMPTY:
            test.globs["study"] = load_study("digits-mlp", storage="sqlite:///tuner.db")
            test.globs["conn"] = stack.enter_context(read_connection("sqlite:///tuner.db"))
        report: list[str] = []
        runner = doctest.DocTestRunner(optionflags=OPTIONS)
        result = runner.run(test, out=report.append, clear_globs=False)
    assert result.failed == 0, "".join(report)
