"""Study specs: the shipped studies load; problems are reported all at once, with fields."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT
from tuner.errors import SpecError
from tuner.specs.spec import load_spec

SHIPPED = sorted((ROOT / "studies").glob("*.yaml"))


def test_the_four_required_studies_ship():
    names = {p.stem for p in SHIPPED}
    assert {"digits-mlp", "diabetes-regression", "house-price-linear", "mnist-cnn"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_studies_validate(path):
    resolved = load_spec(path)
    assert resolved.spec.name == path.stem
    assert resolved.space.parameters


def test_all_spec_problems_at_once_with_their_fields(tiny_spec):
    path = tiny_spec(name="bad name!", direction="up", budget={"n_trials": 0}, sampler="annealing")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    text = str(info.value)
    for field in ("name:", "direction:", "budget.n_trials:", "sampler.name:"):
        assert field in text
    assert len(info.value.problems) == 4


def test_unknown_fields_are_named(tiny_spec):
    with pytest.raises(SpecError, match="trainig: unknown field"):
        load_spec(tiny_spec(trainig={"max_epochs": 3}))


def test_metric_must_be_a_validation_metric(tiny_spec):
    with pytest.raises(SpecError, match="metric must be a validation metric"):
        load_spec(tiny_spec(metric="accuracy"))


def test_every_model_family_a_spec_may_name_has_a_builder():
    from tuner.specs.spec import MODEL_FAMILIES
    from tuner.trial.models import BUILDERS

    assert set(MODEL_FAMILIES) == set(BUILDERS)


def test_models_fill_a_left_out_parameter_with_the_shipped_space_default():
    # A user space with only some parameters trains the rest at the defaults a reader of
    # search_spaces/importance-ranked.yaml expects; said once in tuner.trial.defaults.
    from tuner.specs.space import load_space
    from tuner.trial.defaults import MODEL_DEFAULTS

    shipped = load_space(ROOT / "search_spaces" / "importance-ranked.yaml").defaults()
    assert dict(MODEL_DEFAULTS) == shipped
