"""Each private name of Optuna that tuner relies on still means what tuner takes it to mean.

These tests exist for Optuna upgrades: one of them failing names the private piece that
changed (:mod:`tuner._optuna_compat` has them all), before a worker loses a trial to it.
"""

from __future__ import annotations

import inspect
import time

import optuna
import pytest
from optuna.trial import TrialState

from tuner import _optuna_compat as compat
from tuner.storage import open_storage
from tuner.storage.resilient import ResilientRDBStorage


@pytest.fixture()
def stored(sqlite_url):
    storage = open_storage(sqlite_url, heartbeat=False)
    return optuna.create_study(study_name="compat", storage=storage)


def test_storage_of_and_backend_of_reach_tuners_storage_under_optunas_cache(stored):
    assert isinstance(compat.backend_of(stored), ResilientRDBStorage)
    assert compat.storage_of(stored).get_study_id_from_name("compat") == compat.study_id_of(stored)
    memory = optuna.create_study()
    assert isinstance(compat.backend_of(memory), optuna.storages.InMemoryStorage)


def test_trial_ids_are_what_the_storage_calls_take(stored):
    trial = stored.ask()
    frozen = stored.tell(trial, 1.0)
    storage = compat.storage_of(stored)
    assert storage.get_trial(compat.trial_id_of(trial)).number == trial.number
    assert storage.get_trial(compat.trial_id_of(frozen)).number == frozen.number
    copy = optuna.trial.create_trial(params={}, distributions={}, value=1.0)
    assert compat.trial_id_of(compat.with_trial_id(copy, 42)) == 42


def test_the_cached_trials_ask_forgets_have_the_name_we_forget(stored):
    stored.ask().suggest_float("x", 0, 1)  # sampling fills the per-thread cache
    assert hasattr(stored._thread_local, "cached_all_trials")
    compat.forget_cached_trials(stored)
    assert stored._thread_local.cached_all_trials is None


def test_stop_is_allowed_inside_the_loop_and_sets_the_flag_optimize_checks(stored):
    with pytest.raises(RuntimeError):  # Optuna's rule outside its loop
        stored.stop()
    with compat.optimize_loop(stored):
        assert not compat.stop_requested(stored)
        stored.stop()
        assert compat.stop_requested(stored)
    with compat.optimize_loop(stored):  # a new loop starts unstopped
        assert not compat.stop_requested(stored)


def test_tell_quickly_records_the_outcome_without_reading_the_trial_back(stored):
    trial = stored.ask()
    trial.suggest_float("x", 0, 1)
    trial.set_user_attr("epochs", 3)
    frozen = compat.tell_quickly(stored, trial, 0.5, TrialState.COMPLETE)
    assert (frozen.state, frozen.value, frozen.user_attrs) == (
        TrialState.COMPLETE,
        0.5,
        {"epochs": 3},
    )
    assert stored.trials[0].value == 0.5
    assert stored.trials[0].state == TrialState.COMPLETE


def test_a_report_noted_in_the_trials_own_copy_is_what_report_and_the_pruner_see(stored):
    trial = stored.ask()
    compat.wrote_report(trial, 0, 0.5)
    assert compat.own_view(trial).intermediate_values == {0: 0.5}
    assert compat.written_so_far(trial).intermediate_values == {0: 0.5}
    with pytest.warns(UserWarning, match="already reported"):  # Trial.report reads the copy
        trial.report(0.9, step=0)
    assert compat.own_view(trial).last_step == 0


def test_stale_trial_ids_are_the_running_trials_past_the_grace_period(sqlite_url):
    storage = optuna.storages.RDBStorage(sqlite_url, heartbeat_interval=1, grace_period=1)
    study = optuna.create_study(study_name="stale", storage=storage)
    trial = study.ask()
    storage.record_heartbeat(compat.trial_id_of(trial))
    assert compat.stale_trial_ids(storage, compat.study_id_of(study)) == []
    time.sleep(2.5)
    assert compat.stale_trial_ids(storage, compat.study_id_of(study)) == [compat.trial_id_of(trial)]


@pytest.mark.parametrize(
    "pruner",
    [
        optuna.pruners.MedianPruner(n_warmup_steps=3, interval_steps=2),
        optuna.pruners.PercentilePruner(50.0, n_warmup_steps=3, interval_steps=2),
        optuna.pruners.ThresholdPruner(lower=0.1, n_warmup_steps=3, interval_steps=2),
    ],
    ids=lambda p: type(p).__name__,
)
def test_stepped_pruner_settings_are_read(pruner):
    assert compat.stepped_pruner_settings(pruner) == (3, 2)


def test_the_orm_tables_have_the_columns_the_queue_writes():
    models = compat.rdb_tables()
    columns = {
        "TrialModel": {"trial_id", "study_id", "state", "datetime_start"},
        "StudyUserAttributeModel": {"study_id", "key", "value_json"},
        "TrialSystemAttributeModel": {"trial_id", "key", "value_json"},
        "TrialHeartbeatModel": {"trial_id"},
    }
    for model, wanted in columns.items():
        assert wanted <= set(getattr(models, model).__table__.c.keys()), model


def test_the_migration_scripts_name_alembics_head():
    from alembic.script import ScriptDirectory

    from tuner.storage.schema import _schema_head

    folder = compat.alembic_versions_dir()
    assert any(folder.glob("*.py"))
    scripts = ScriptDirectory(str(folder.parent))
    assert _schema_head() == scripts.get_current_head()


@pytest.mark.parametrize(
    "evaluator",
    [
        optuna.importance.PedAnovaImportanceEvaluator(),
        optuna.importance.FanovaImportanceEvaluator(n_trees=8, seed=0),
        optuna.importance.MeanDecreaseImpurityImportanceEvaluator(n_trees=8, seed=0),
    ],
    ids=lambda e: type(e).__name__,
)
def test_importance_evaluators_read_the_trials_view_as_a_study(evaluator):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: t.suggest_float("x", 0, 1) + 0.1 * t.suggest_float("y", 0, 1), 40)
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    view = compat.TrialsView(study, trials)
    assert optuna.importance.get_param_importances(view, evaluator=evaluator) == (
        optuna.importance.get_param_importances(study, evaluator=evaluator)
    )


@pytest.mark.parametrize(
    ("hook", "owner", "parameters"),
    [
        (
            compat.NEW_TRIAL_HOOK,
            optuna.storages.RDBStorage,
            ["self", "study_id", "template_trial", "session"],
        ),
        (
            compat.PARZEN_HOOK,
            optuna.samplers.TPESampler,
            ["self", "study", "search_space", "trials", "handle_below"],
        ),
    ],
    ids=lambda value: value[1] if isinstance(value, tuple) else None,
)
def test_the_private_hooks_tuner_overrides_keep_their_signature(hook, owner, parameters):
    class_name, method = hook
    assert owner.__name__ == class_name
    assert list(inspect.signature(getattr(owner, method)).parameters) == parameters


def test_the_new_trial_hook_runs_inside_trial_creation(sqlite_url):
    # tuner spends the study's budget in this hook: if Optuna stopped calling it, workers
    # would create trials without spending, and studies would overshoot their total.
    calls = []

    class Probe(optuna.storages.RDBStorage):
        def _get_prepared_new_trial(self, study_id, template_trial, session):
            calls.append(study_id)
            return super()._get_prepared_new_trial(study_id, template_trial, session)

    study = optuna.create_study(storage=Probe(sqlite_url))
    study.ask()
    assert calls == [compat.study_id_of(study)]


def test_the_parzen_hook_fits_the_above_density(monkeypatch):
    # tuner's bounded TPE thins the trials in this hook; it must see the "above" call.
    seen = []
    original = optuna.samplers.TPESampler._build_parzen_estimator

    def probe(self, study, search_space, trials, handle_below):
        seen.append(handle_below)
        return original(self, study, search_space, trials, handle_below)

    monkeypatch.setattr(optuna.samplers.TPESampler, "_build_parzen_estimator", probe)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(n_startup_trials=2, seed=0))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=4)
    assert True in seen and False in seen


def test_tpe_through_the_view_models_the_study_without_its_hidden_trials():
    # tuner's default sampler hides its start trials from TPE through this view: TPE reads
    # trials with the private Study._get_trials, and must see exactly the others.
    def objective(trial):
        return (trial.suggest_float("x", 0, 1) - 0.2) ** 2

    with_start, without = (
        optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1)) for _ in range(2)
    )
    for x in (0.9, 0.95):  # the best trials, where TPE would otherwise look
        with_start.enqueue_trial({"x": x}, user_attrs={"start": True})
        with_start.optimize(lambda t: t.suggest_float("x", 0, 1) * 0, n_trials=1)
    with_start.optimize(objective, n_trials=12)
    without.optimize(objective, n_trials=12)

    def hidden(trial):
        return bool(trial.user_attrs.get("start"))

    view = compat.StudyWithout(with_start, hidden)
    assert [t.number for t in view._get_trials(deepcopy=False)] == list(range(2, 14))
    proposals = []
    for study in (view, without):
        sampler = optuna.samplers.TPESampler(seed=0, n_startup_trials=10)
        trial = without.ask()  # a trial to sample for; TPE reads the study it is given
        dist = optuna.distributions.FloatDistribution(0, 1)
        proposals.append(sampler.sample_independent(study, compat.own_view(trial), "x", dist))
    assert proposals[0] == proposals[1]
