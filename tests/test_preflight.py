"""Bad input is refused before any trial, with one line per problem and nothing written.

Each row of CASES is a mistake a user can make in a spec, a search space, a dataset file
or a storage URL. The CLI runs as a real subprocess; every case asserts the exit code,
the key words of the message, that stderr holds no traceback and only ``Error:`` lines,
and that no database file was created (RELIABILITY rows 4, 17, 19).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import yaml

OK_PARAM = {"type": "float", "low": 1e-4, "high": 1.0, "log": True, "tier": 1, "default": 0.01}


def _closed_port() -> int:
    """A loopback port nothing listens on: bound then released, so it refuses connections."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Case:
    """One broken input: spec changes, extra files, CLI args, and what the user must see."""

    id: str
    words: tuple[str, ...]
    spec: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str | Callable[[Path], None]] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    code: int = 2
    min_lines: int = 1


def space(**params: Any) -> dict[str, Any]:
    """Spec changes: a `space` section over a custom file `space.yaml` holding ``params``."""
    return {"space": {"file": "space.yaml", "overrides": {}, "params": params}}


def csv_data(text: str, target: str = "y") -> dict[str, Any]:
    return {
        "spec": {"data": {"source": "csv", "path": "data.csv", "target": target}},
        "files": {"data.csv": text},
    }


def _npz_without_y(path: Path) -> None:
    np.savez(path / "data.npz", x=np.zeros((20, 3)))


GOOD_CSV = "a,b,y\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(40))

CASES = [
    # --- the spec file -----------------------------------------------------------------
    Case("yaml-syntax", ("not valid YAML", "line"), files={"tiny.yaml": "name: [unclosed\n"}),
    Case("spec-not-mapping", ("expected a YAML mapping",), files={"tiny.yaml": "- a\n- b\n"}),
    Case("spec-missing", ("study spec file not found",), args=("--spec", "nowhere.yaml")),
    Case(
        "name-chars", ("name: study name", "'bad name!'", "letters, digits"), {"name": "bad name!"}
    ),
    Case("name-600", ("600 characters", "1-128"), {"name": "n" * 600}),
    Case("name-quote", ("study name", "1-128"), {"name": "it's"}),
    Case("metric-not-val", ("metric:", "validation metric", "'accuracy'"), {"metric": "accuracy"}),
    Case("direction", ("direction:", "'maximize' or 'minimize'", "got 'up'"), {"direction": "up"}),
    Case("unknown-field", ("epochs: unknown field", "allowed here"), {"epochs": 3}),
    Case("typo-field", ("did you mean 'max_epochs'",), {"training": {"max_epoch": 3}}),
    Case(
        "split",
        ("data.validation_split", "less than 1", "got 1.5"),
        {"data": {"validation_split": 1.5}},
    ),
    Case(
        "n-trials", ("budget.n_trials", "greater than or equal to 1"), {"budget": {"n_trials": 0}}
    ),
    Case("sampler-name", ("sampler.name", "got 'annealing'"), {"sampler": "annealing"}),
    Case(
        "sampler-options",
        ("sampler.options for tpe", "bogus"),
        {"sampler": {"name": "tpe", "options": {"bogus": 1}}},
    ),
    Case("grid-too-large", ("grid sampler would list", "--tiers"), {"sampler": "grid"}),
    Case("pruner-options", ("threshold pruner needs",), {"pruner": "threshold"}),
    Case("tiers-cli", ("--tiers", "within 1-4", "'9'"), args=("--tiers", "9")),
    Case("tiers-spec", ("space.tiers", "within 1-4"), {"space": {"tiers": "0-2"}}),
    Case(
        "space-file-missing",
        ("search space file not found", "no-such.yaml"),
        {"space": {"file": "no-such.yaml"}},
    ),
    Case(
        "override-unknown",
        ("space.overrides names ['unit']", "known:"),
        {"space": {"overrides": {"unit": {"high": 8}}}},
    ),
    Case(
        "fixed-unknown",
        ("space.fixed.optimiser", "not a parameter"),
        {"space": {"fixed": {"optimiser": "sgd"}}},
    ),
    Case(
        "fixed-choice",
        ("space.fixed.optimizer", "'lbfgs' is not one of the choices"),
        {"space": {"fixed": {"optimizer": "lbfgs"}}},
    ),
    Case(
        "fixed-not-number",
        ("space.fixed.learning_rate", "must be a number"),
        {"space": {"fixed": {"learning_rate": "fast"}}},
    ),
    Case("study-name-cli", ("--study-name", "not allowed"), args=("--study-name", 'say "hi"')),
    Case(
        "resume-and-overwrite",
        ("--resume and --overwrite exclude",),
        args=("--resume", "--overwrite"),
    ),
    # --- the search space file -----------------------------------------------------------
    Case(
        "low-gt-high",
        ("parameters.lr", "low <= high", "swap"),
        spec=space(lr={**OK_PARAM, "low": 2.0, "high": 1.0, "log": False, "default": 1.5}),
    ),
    Case(
        "log-low-zero",
        ("log scale needs low > 0", "got low=0"),
        spec=space(lr={**OK_PARAM, "low": 0.0}),
    ),
    Case("log-and-step", ("log and step exclude",), spec=space(lr={**OK_PARAM, "step": 0.1})),
    Case(
        "empty-choices",
        ("choices must be a non-empty list",),
        spec=space(act={"type": "categorical", "choices": [], "tier": 1, "default": "relu"}),
    ),
    Case(
        "nan-bound", ("bounds must be finite",), spec=space(lr={**OK_PARAM, "high": float("nan")})
    ),
    Case(
        "huge-bound",
        ("bounds must lie within",),
        spec=space(n={"type": "int", "low": 1, "high": 10**300, "tier": 1, "default": 2}),
    ),
    Case(
        "unknown-type",
        ("parameters.lr.type", "'float', 'int' or 'categorical'", "got 'double'"),
        spec=space(lr={**OK_PARAM, "type": "double"}),
    ),
    Case("tier-5", ("tier must be 1, 2, 3 or 4", "got 5"), spec=space(lr={**OK_PARAM, "tier": 5})),
    Case(
        "default-outside",
        ("default 5.0 is outside low..high",),
        spec=space(lr={**OK_PARAM, "default": 5.0}),
    ),
    Case(
        "condition-unknown",
        ("lr.condition", "'opt'", "not a parameter declared above"),
        spec=space(lr={**OK_PARAM, "condition": {"opt": ["sgd"]}}),
    ),
    Case(
        "condition-value",
        ("are not choices of 'opt'", "'lbfgs'"),
        spec=space(
            opt={"type": "categorical", "choices": ["sgd", "adam"], "tier": 3, "default": "sgd"},
            lr={**OK_PARAM, "condition": {"opt": ["lbfgs"]}},
        ),
    ),
    Case(
        "param-name",
        ("parameter name 'learning rate'", "ASCII letters"),
        spec=space(**{"learning rate": OK_PARAM}),
    ),
    Case(
        "every-space-error-at-once",
        (
            "low <= high",
            "log and step",
            "tier must be",
            "choices must be",
            "not a parameter declared above",
        ),
        min_lines=5,
        spec=space(
            a={**OK_PARAM, "low": 3.0, "high": 1.0, "step": 0.1, "tier": 7},
            b={"type": "categorical", "choices": [], "tier": 1, "default": "x"},
            c={**OK_PARAM, "condition": {"nope": [1]}},
        ),
    ),
    Case(
        "spec-and-space-errors-together",
        ("tiny.yaml: budget.n_trials", "space.yaml: parameters.lr", "tiny.yaml: direction"),
        min_lines=3,
        spec={**space(lr={**OK_PARAM, "low": 0.0}), "direction": "up", "budget": {"n_trials": 0}},
    ),
    # --- the dataset -------------------------------------------------------------------
    Case(
        "csv-missing",
        ("data file not found", "data.csv", "data.path"),
        spec={"data": {"source": "csv", "path": "data.csv", "target": "y"}},
    ),
    Case("csv-empty", ("data.csv: the file is empty",), **csv_data("")),
    Case("csv-header-only", ("no data rows",), **csv_data("a,b,y\n")),
    Case(
        "csv-semicolons",
        ("no column named 'y'", "seems to use ';'"),
        **csv_data(GOOD_CSV.replace(",", ";")),
    ),
    Case(
        "csv-text-column",
        ("line 3, column 'b'", "'blue', not a number"),
        **csv_data("a,b,y\n1,2,0\n2,blue,1\n" + GOOD_CSV.split("\n", 1)[1]),
    ),
    Case(
        "csv-wrong-target",
        ("no column named 'label'", "columns are"),
        **csv_data(GOOD_CSV, target="label"),
    ),
    Case("csv-one-class", ("one class only",), **csv_data(GOOD_CSV.replace(",0\n", ",1\n"))),
    Case(
        "csv-nan",
        ("NaN or infinite", "data.impute"),
        **csv_data("a,b,y\n1,,0\n2,nan,1\n" + GOOD_CSV.split("\n", 1)[1]),
    ),
    Case(
        "csv-ragged",
        ("different numbers of columns",),
        **csv_data("a,b,y\n1,2\n" + GOOD_CSV.split("\n", 1)[1]),
    ),
    Case("too-few-rows", ("too few for validation_split",), **csv_data("a,y\n1,0\n2,1\n")),
    Case(
        "npz-no-y",
        ("needs arrays named 'x' and 'y'",),
        spec={"data": {"source": "npz", "path": "data.npz"}},
        files={"*": _npz_without_y},
    ),
    Case(
        "unknown-source",
        ("unknown data.source 'digitz'", "expected one of"),
        {"data": {"source": "digitz"}},
    ),
    Case(
        "cnn-on-table",
        ("model.family cnn needs images", "use family mlp"),
        {"data": {"source": "iris"}, "model": {"family": "cnn"}},
    ),
    Case(
        "loss-unknown",
        ("training.loss 'hinge_loss' is not a Keras loss",),
        {"training": {"loss": "hinge_loss"}},
    ),
    Case(
        "loss-vs-regression",
        ("is for class labels", "regression"),
        {
            "data": {"source": "diabetes"},
            "metric": "val_mae",
            "direction": "minimize",
            "training": {"loss": "sparse_categorical_crossentropy"},
        },
    ),
    Case(
        "loss-one-hot",
        ("expects one-hot labels", "sparse_categorical_crossentropy"),
        {"training": {"loss": "categorical_crossentropy"}},
    ),
    Case(
        "metric-vs-task",
        ("metric 'val_mae' is not logged", "classification"),
        {"metric": "val_mae"},
    ),
    Case(
        "builder-missing",
        ("model.builder 'nomodule:build' cannot be imported",),
        {"model": {"builder": "nomodule:build"}},
    ),
    # --- the storage URL (exit code 1: not the input files' fault) ----------------------
    Case(
        "storage-scheme",
        ("unknown database scheme 'foo'", "postgresql://"),
        args=("--storage", "foo://db"),
        code=1,
    ),
    Case("storage-not-url", ("is not a database URL",), args=("--storage", "tuner.db"), code=1),
    Case(
        "storage-closed-port",
        ("Connection refused", "check the URL"),
        args=("--storage", f"postgresql://postgres@127.0.0.1:{_closed_port()}/tuner"),
        code=1,
    ),
    Case(
        "storage-sqlite-folder",
        ("unable to open database file", "folder exists"),
        args=("--storage", "sqlite:///{tmp}/no/such/dir/t.db"),
        code=1,
    ),
]


def _write_case(case: Case, tmp_path: Path, tiny_spec: Callable[..., Path]) -> Path:
    spec = {k: dict(v) if isinstance(v, dict) else v for k, v in case.spec.items()}
    params = (spec.get("space") or {}).pop("params", None)
    if params is not None:
        (tmp_path / "space.yaml").write_text(
            yaml.safe_dump({"parameters": params}, sort_keys=False)
        )
    name = spec.pop("name", None)
    path = tiny_spec(**spec)
    if name is not None:  # not through tiny_spec, which names the file after the study
        path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), "name": name}))
    for name, content in case.files.items():
        if callable(content):
            content(tmp_path)
        else:
            (tmp_path / name).write_text(content, encoding="utf-8")
    return path


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_in_one_line_each_and_nothing_is_written(
    case: Case, cli, tiny_spec, tmp_path: Path
) -> None:
    spec_path = _write_case(case, tmp_path, tiny_spec)
    db = tmp_path / "study.db"
    args = [a.replace("{tmp}", str(tmp_path)) for a in case.args]
    if "--spec" in args:  # the spec path itself is the broken input
        spec_path = tmp_path / args.pop(args.index("--spec") + 1)
        args.remove("--spec")
    if "--storage" not in args:
        args += ["--storage", f"sqlite:///{db}"]

    result = cli("run", str(spec_path), *args, cwd=tmp_path)

    assert result.returncode == case.code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines and all(line.startswith("Error: ") for line in lines), result.stderr
    assert len(lines) >= case.min_lines, result.stderr
    for word in case.words:
        assert word in result.stderr, f"{word!r} not in {result.stderr!r}"
    assert result.stdout == ""
    assert not db.exists(), "a database file was created for a refused run"
    assert not list(tmp_path.glob("*.db")), "a database file was created for a refused run"


def test_debug_shows_the_traceback(cli, tiny_spec, tmp_path: Path) -> None:
    spec = tiny_spec(direction="up")
    plain = cli("run", str(spec), cwd=tmp_path)
    debug = cli("--debug", "run", str(spec), cwd=tmp_path)
    assert "Traceback" not in plain.stderr and plain.returncode == 2
    assert "Traceback" in debug.stderr and "SpecError" in debug.stderr


# --- refusals that concern a study already in the storage ------------------------------


def _existing_study(spec_path: Path, url: str) -> optuna.Study:
    """A study as a first run leaves it (spec and space recorded), with one finished trial."""
    from tuner.execution.run import prepare_run
    from tuner.specs.spec import load_spec

    study = prepare_run(load_spec(spec_path), storage_url=url).study
    study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=0.5))
    return study


def _unchanged(
    url: str, name: str, trials: list[optuna.trial.FrozenTrial], spec: dict[str, Any]
) -> None:
    study = optuna.load_study(study_name=name, storage=url)
    assert study.trials == trials  # the finished trial, and the queued baseline
    assert study.user_attrs["tuner_spec"] == spec


@pytest.mark.parametrize(
    ("change", "args", "words"),
    [
        ({}, (), ("already exists", "--resume", "--overwrite", "--study-name")),
        (
            {"space": {"overrides": {"units": {"high": 32, "default": 32}}}},
            ("--resume",),
            ("different search space", "units"),
        ),
        ({"pruner": "threshold"}, ("--overwrite",), ("threshold pruner needs",)),
        (
            {"sampler": {"name": "random", "options": {"nope": 1}}},
            ("--overwrite",),
            ("sampler.options",),
        ),
    ],
    ids=["exists", "resume-changed-space", "overwrite-bad-pruner", "overwrite-bad-sampler"],
)
def test_an_existing_study_is_never_touched_by_a_refused_run(
    change, args, words, cli, tiny_spec, sqlite_url: str, tmp_path: Path
) -> None:
    study = _existing_study(tiny_spec(), sqlite_url)
    trials_before, spec_before = study.trials, study.user_attrs["tuner_spec"]

    result = cli("run", str(tiny_spec(**change)), "--storage", sqlite_url, *args, cwd=tmp_path)

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr
    _unchanged(sqlite_url, "tiny", trials_before, spec_before)


def test_missing_features_are_filled_when_the_spec_says_impute(tmp_path: Path) -> None:
    from tuner.specs.spec import DataSpec
    from tuner.trial.data import load_dataset

    (tmp_path / "data.csv").write_text("a,b,y\n1,,0\n" + GOOD_CSV.split("\n", 1)[1])
    data = DataSpec(source="csv", path="data.csv", target="y", impute="median")

    dataset = load_dataset(data, base_dir=tmp_path, seed=0)

    assert np.isfinite(dataset.x_train).all() and np.isfinite(dataset.x_val).all()
    assert len(dataset.x_train) + len(dataset.x_val) == 41, "no row dropped"
