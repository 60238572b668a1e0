"""The grid sampler with the shipped spaces: what can be enumerated is, the space's
``grid:`` lists give the rest, and a parameter that blocks it is named with the fix."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml

from tests.conftest import ROOT

RANKED = ROOT / "search_spaces" / "importance-ranked.yaml"
TIER_3 = {"optimizer", "layers", "lr_schedule", "lr_decay_rate", "activation", "dropout"}


def _grid_spec(tiny_spec, **changes) -> Path:
    return tiny_spec(sampler="grid", budget={"n_trials": 3}, **changes)


@pytest.mark.slow
def test_grid_on_the_shipped_space_searches_tier_3_on_its_grid(tiny_spec, cli, sqlite_url):
    done = cli("run", str(_grid_spec(tiny_spec)), "--tiers", "3", "--storage", sqlite_url)
    assert done.returncode == 0, done.stderr
    trials = optuna.load_study(study_name="tiny", storage=sqlite_url).trials
    assert len(trials) == 3 and all(t.state.name == "COMPLETE" for t in trials)
    for trial in trials:
        # Only tier 3 is searched (lr_decay_rate when a schedule decays); floats on the grid.
        assert set(trial.params) <= TIER_3 and trial.params.keys() >= TIER_3 - {"lr_decay_rate"}
        assert trial.params["dropout"] in (0.0, 0.2, 0.5)
        assert trial.params.get("lr_decay_rate", 0.1) in (0.1, 0.5)


def test_each_tier_enumerates_and_a_grid_too_large_names_its_largest_parameters(
    tiny_spec, cli, sqlite_url
):
    spec = str(_grid_spec(tiny_spec))
    for tiers in ("1-2", "4"):
        done = cli("run", spec, "--tiers", tiers, "--storage", sqlite_url, "--queue-only",
                   "--overwrite")  # fmt: skip
        assert done.returncode == 0, done.stderr
    linear = _grid_spec(tiny_spec, name="lin", space={"file": "linear-sgd", "overrides": {}})
    done = cli("run", str(linear), "--storage", sqlite_url, "--queue-only")
    assert done.returncode == 0, done.stderr
    # Every tier of importance-ranked at once is billions of combinations: refused at
    # once (Optuna would list them all in memory), naming the parameters to cut.
    done = cli("run", spec, "--storage", sqlite_url, "--overwrite")
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert "combinations (at most 100,000" in line and "units 49" in line and "--tiers" in line


def test_a_float_without_grid_or_step_is_named_with_the_fix(tiny_spec, cli, sqlite_url, tmp_path):
    raw = yaml.safe_load(RANKED.read_text(encoding="utf-8"))
    del raw["parameters"]["learning_rate"]["grid"]
    (tmp_path / "no-grid.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), "utf-8")
    spec = _grid_spec(tiny_spec, space={"file": str(tmp_path / "no-grid.yaml")})

    done = cli("run", str(spec), "--storage", sqlite_url)
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert "cannot enumerate float parameter 'learning_rate'" in line
    assert "`grid: [...]`" in line and "--tiers" in line
    assert not (tmp_path / "study.db").exists(), "a refused run writes nothing"
    # Leaving its tier out (or fixing it) unblocks the grid.
    done = cli("run", str(spec), "--storage", sqlite_url, "--tiers", "2", "--queue-only")
    assert done.returncode == 0, done.stderr


def test_grid_values_outside_the_range_are_refused(tiny_spec, cli, sqlite_url):
    spec = _grid_spec(tiny_spec)
    raw = yaml.safe_load(spec.read_text(encoding="utf-8"))
    raw["space"]["overrides"]["dropout"] = {"grid": [0.0, 0.7]}
    spec.write_text(yaml.safe_dump(raw), encoding="utf-8")
    done = cli("run", str(spec), "--storage", sqlite_url)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "dropout" in done.stderr and "grid values [0.7] are outside" in done.stderr


def test_warmup_is_searched_below_max_epochs(tiny_spec, cli, sqlite_url):
    # The tiny spec trains 3 epochs: a warm-up of 3 or more epochs would never end.
    done = cli("run", str(_grid_spec(tiny_spec)), "--tiers", "4", "--storage", sqlite_url,
               "--n-trials", "1")  # fmt: skip
    assert done.returncode == 0, done.stderr
    [trial] = optuna.load_study(study_name="tiny", storage=sqlite_url).trials
    warmup = trial.distributions["warmup_epochs"]
    assert (warmup.low, warmup.high) == (0, 2)
