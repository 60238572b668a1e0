"""`tuner studies|trials|best|export` on a study that `tuner run` really trained."""

from __future__ import annotations

import csv
import io
import json

import optuna
import pytest

pytestmark = pytest.mark.slow  # the module's study trains two real Keras models


def _json(done):
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _load(study):
    return optuna.load_study(study_name=study.name, storage=study.url)


def test_studies_list_shows_the_study_with_its_trials_and_best(cli, tiny_study):
    rows = _json(cli("studies", "list", "--storage", tiny_study.url, "--format", "json"))
    assert [r["name"] for r in rows] == ["tiny"]
    assert rows[0]["trials"] == 2 and rows[0]["complete"] + rows[0]["fail"] == 2
    assert rows[0]["metric"] == "val_accuracy"
    assert rows[0]["best"] == pytest.approx(_load(tiny_study).best_value)


def test_studies_show_gives_space_tiers_and_best_params_in_model_values(cli, tiny_study):
    record = _json(cli("studies", "show", "tiny", "--storage", tiny_study.url, "--format", "json"))
    assert record["space"] == "importance-ranked" and record["tiers"] == [1, 2, 3, 4]
    assert record["data"] == "digits" and record["max_epochs"] == 3
    # batch_size is stored as its exponent; the user reads the batch size itself.
    stored = _load(tiny_study).best_trial.params
    assert record["best_params"]["batch_size"] == 2 ** stored["log2_batch_size"]
    # the spec names no sampler: the default, recorded and said; the spec's pruner: none
    assert record["search"].startswith("flat strategy; sampler tpe-explore (TPE, 33% of")
    assert record["search"].endswith("; pruner none")
    assert record["decisions"].startswith("none: the flat strategy")


def test_trials_list_filters_sorts_and_limits(cli, tiny_study):
    args = ("trials", "list", "tiny", "--storage", tiny_study.url, "--format", "json")
    everything = _json(cli(*args))
    assert [r["number"] for r in everything] == [0, 1]
    best_first = _json(cli(*args, "--sort", "value", "--limit", "1"))
    assert best_first[0]["number"] == _load(tiny_study).best_trial.number
    assert _json(cli(*args, "--state", "pruned")) == []


def test_trials_table_fits_a_narrow_terminal(cli, tiny_study):
    done = cli("trials", "list", "tiny", "--storage", tiny_study.url, env={"COLUMNS": "70"})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:3] == ["number", "state", "value"]
    assert len(lines) == 3 and all(len(line) <= 70 for line in lines)


def test_best_gives_value_params_trial_and_the_retrain_command(cli, tiny_study):
    done = cli("best", "tiny", "--storage", tiny_study.url)
    assert done.returncode == 0, done.stderr
    best = _load(tiny_study).best_trial
    assert f"trial            {best.number}" in done.stdout
    assert "learning_rate" in done.stdout
    assert f"tuner retrain tiny --storage {tiny_study.url}" in done.stdout
    record = _json(cli("best", "tiny", "--storage", tiny_study.url, "--format", "json"))
    assert record["value"] == best.value and record["trial"] == best.number
    assert record["params"]["learning_rate"] == best.params["learning_rate"]


def test_export_csv_and_json_have_one_row_per_trial_with_outcome_and_cost(cli, tiny_study):
    done = cli("export", "tiny", "--storage", tiny_study.url)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [r["number"] for r in rows] == ["0", "1"]
    for column in ("state", "value", "epochs", "seconds", "fail_reason", "params_learning_rate"):
        assert column in rows[0]
    for row, trial in zip(rows, _load(tiny_study).trials, strict=True):
        assert row["state"] == trial.state.name.lower()
        assert int(row["epochs"]) == trial.user_attrs["epochs"] >= 1
        assert float(row["seconds"]) == trial.user_attrs["seconds"] > 0
        assert row["fail_reason"] == trial.user_attrs.get("fail_reason", "")
    as_json = _json(cli("export", "tiny", "--storage", tiny_study.url, "--format", "json"))
    assert as_json[1]["params"]["learning_rate"] == float(rows[1]["params_learning_rate"])


def test_copy_then_delete_asks_first_and_deletes_with_yes(cli, tiny_study, tmp_path):
    other = f"sqlite:///{tmp_path / 'other.db'}"
    done = cli("studies", "copy", "tiny", "--storage", tiny_study.url, "--to-storage", other)
    assert done.returncode == 0, done.stderr
    copied = optuna.load_study(study_name="tiny", storage=other)
    assert len(copied.trials) == 2 and copied.user_attrs["tuner_space"]
    again = cli("studies", "copy", "tiny", "--storage", tiny_study.url, "--to-storage", other)
    assert again.returncode != 0 and "already exists" in again.stderr

    refused = cli("studies", "delete", "tiny", "--storage", other, input="n\n")
    assert refused.returncode != 0 and "Delete study 'tiny' and its 2 trials" in refused.stdout
    assert optuna.get_all_study_names(other) == ["tiny"]
    deleted = cli("studies", "delete", "tiny", "--storage", other, "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert optuna.get_all_study_names(other) == []


@pytest.mark.postgres
def test_copy_from_sqlite_to_postgresql(cli, tiny_study, postgres_url):
    done = cli("studies", "copy", "tiny", "--storage", tiny_study.url, "--to-storage", postgres_url)
    assert done.returncode == 0, done.stderr
    rows = _json(cli("trials", "list", "tiny", "--storage", postgres_url, "--format", "json"))
    original = _json(cli("trials", "list", "tiny", "--storage", tiny_study.url, "--format", "json"))
    assert [(r["number"], r["value"]) for r in rows] == [
        (r["number"], r["value"]) for r in original
    ]
