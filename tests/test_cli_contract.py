"""The CLI's promises: every command has help; every error is one line, a non-zero exit
and no traceback; `space` and `spec` help users write their files."""

from __future__ import annotations

import json
from pathlib import Path

import click
import jsonschema
import optuna
import pytest
import yaml
from click.testing import CliRunner

from tests.conftest import ROOT
from tuner.cli import main


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in sorted(group.commands.items()):
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))


COMMANDS = list(_commands(main))


def invoke(*args: str) -> click.testing.Result:
    return CliRunner().invoke(main, list(args), prog_name="tuner")


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_and_option_has_help(path, command):
    assert (command.help or "").strip(), f"tuner {' '.join(path)} has no help text"
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"tuner {' '.join(path)} {param.opts[0]} has no help"
    done = invoke(*path, "--help")
    assert done.exit_code == 0 and "Usage: tuner" in done.output


@pytest.fixture
def other_db(tmp_path: Path) -> str:
    """A storage that exists and holds a study, just not the one asked for."""
    url = f"sqlite:///{tmp_path / 'other.db'}"
    optuna.create_study(study_name="someone-else", storage=url)
    return url


# Every command that reads a study, with the arguments it needs besides NAME.
NAMED = {
    "studies show": [],
    "studies delete": ["--yes"],
    "studies copy": ["--to-storage", "sqlite:///unused.db"],
    "trials list": [],
    "best": [],
    "export": [],
    "enqueue": ["--params", "learning_rate=0.01"],
    "retrain": ["--out", "unused.keras"],
}
STORAGE_ONLY = {"studies list": [], "dashboard": ["--port", "0"]}
LISTINGS = ["studies list", "studies show x", "trials list x", "best x", "space show y.yaml"]
BAD_URLS = ["notaurl", "nosuchdriver://x/y", "postgresql://nobody@127.0.0.1:1/none"]


def _assert_one_line_error(done: click.testing.Result, *fragments: str) -> None:
    assert done.exit_code not in (0, None), done.output
    assert isinstance(done.exception, SystemExit), repr(done.exception)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    assert "Traceback" not in done.output
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("command", NAMED)
def test_a_missing_study_is_one_line_pointing_to_the_list(command, other_db):
    done = invoke(*command.split(), "missing", "--storage", other_db, *NAMED[command])
    _assert_one_line_error(done, "no study named 'missing'", "tuner studies list")
    assert done.exit_code == 2


@pytest.mark.parametrize("url", BAD_URLS)
@pytest.mark.parametrize("command", [*NAMED, *STORAGE_ONLY])
def test_a_wrong_storage_url_is_one_line(command, url):
    extra = NAMED.get(command, STORAGE_ONLY.get(command))
    name = ["x"] if command in NAMED else []
    done = invoke(*command.split(), *name, "--storage", url, *extra)
    _assert_one_line_error(done, url.split("://")[0])


def test_a_missing_sqlite_file_is_refused_and_not_created(tmp_path):
    url = f"sqlite:///{tmp_path / 'typo.db'}"
    _assert_one_line_error(invoke("studies", "list", "--storage", url), "no database file")
    assert not (tmp_path / "typo.db").exists()


@pytest.mark.parametrize("command", LISTINGS)
def test_a_bad_format_is_one_line_listing_the_choices(command):
    done = invoke(*command.split(), "--format", "xml")
    _assert_one_line_error(done, "'xml' is not one of 'table', 'json', 'csv'", "--help")
    assert done.exit_code == 2


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["export", "x", "--format", "table"], "'table' is not one of 'csv', 'json'"),
        (["enqueue", "x", "--params", "learning_rate"], "is not NAME=VALUE"),
        (["retrain", "x", "--out", "model.h5"], "must end in .keras"),
        (["dashboard", "--port", "http"], "'http' is not a valid integer"),
        (["trials", "list", "x", "--state", "done"], "'done' is not one of"),
        (["space", "validate", "missing.yaml"], "search space file not found"),
    ],
)
def test_bad_input_of_each_kind_is_one_line(args, fragment):
    _assert_one_line_error(invoke(*args), fragment)


def test_space_show_lists_parameters_most_important_first():
    done = invoke(
        "space", "show", str(ROOT / "search_spaces" / "importance-ranked.yaml"), "--format", "csv"
    )
    assert done.exit_code == 0, done.output
    rows = [line.split(",") for line in done.stdout.splitlines()]
    assert rows[0][:4] == ["tier", "name", "type", "range"]
    assert rows[1][:2] == ["1", "learning_rate"]
    assert [int(r[0]) for r in rows[1:]] == sorted(int(r[0]) for r in rows[1:])
    assert ["2", "batch_size", "int", "16..1024 (powers of 2)", "32", "log2_batch_size", ""] in rows


def test_space_validate_lists_every_problem(tmp_path):
    good = invoke("space", "validate", str(ROOT / "search_spaces" / "linear-sgd.yaml"))
    assert good.exit_code == 0 and "valid" in good.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "parameters": {
                    "lr": {"type": "float", "low": 1, "high": 0.1, "tier": 1, "default": 0.5},
                    "units": {
                        "type": "int",
                        "low": 0,
                        "high": 8,
                        "log": True,
                        "tier": 2,
                        "default": 4,
                    },
                }
            }
        )
    )
    done = invoke("space", "validate", str(bad))
    assert done.exit_code == 2 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 2 and "low <= high must hold" in lines[0] and "log scale" in lines[1]


def test_spec_schema_accepts_the_shipped_studies_and_rejects_a_typo():

    done = invoke("spec", "schema")
    schema = json.loads(done.stdout)
    for spec_file in sorted((ROOT / "studies").glob("*.yaml")):
        jsonschema.validate(yaml.safe_load(spec_file.read_text()), schema)
    with pytest.raises(jsonschema.ValidationError, match="'budjet' was unexpected"):
        jsonschema.validate(
            {"name": "x", "data": {"source": "digits"}, "space": {"file": "s.yaml"}, "budjet": {}},
            schema,
        )


def test_shell_completion_completes_commands_and_study_names(cli, other_db):
    complete = {"_TUNER_COMPLETE": "bash_complete", "TUNER_STORAGE": other_db}
    commands = cli(env={**complete, "COMP_WORDS": "tuner stud", "COMP_CWORD": "1"})
    assert commands.stdout.split() == ["plain,studies"]
    names = cli(env={**complete, "COMP_WORDS": "tuner best some", "COMP_CWORD": "2"})
    assert names.stdout.split() == ["plain,someone-else"]
