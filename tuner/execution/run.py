"""Run a study: preflight, create or resume it in storage, then optimize.

Two steps so that callers can show progress between them: :func:`prepare_run` does
everything that can refuse (spec, data, storage, existing study) before any trial
starts and before anything is written; :func:`execute` runs the trials.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuner import records
from tuner.errors import SpecError, StudyExistsError, StudyNotFoundError, StudyStopped
from tuner.execution.signals import noting_ctrl_c
from tuner.search.samplers import make_pruner, make_sampler
from tuner.search.strategy import Strategy, make_strategy
from tuner.specs.plugins import import_function
from tuner.specs.space import ALL_TIERS, SearchSpace
from tuner.specs.spec import ResolvedSpec, StrategySpec, resolve_spec
from tuner.specs.validation import check_name
from tuner.storage import mask_url, open_storage, study_exists
from tuner.trial.data import Dataset, load_dataset
from tuner.trial.keras_env import import_keras
from tuner.trial.memory import long_lived_frozen
from tuner.trial.models import Builder
from tuner.trial.objective import KerasObjective, TrialFailed
from tuner.trial.training import default_metrics

TrialCallback = Callable[[optuna.Study, FrozenTrial], None]
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


@dataclass
class PreparedRun:
    """A study ready to run: everything that could refuse has been checked."""

    study: optuna.Study
    objective: Callable[[optuna.Trial], float]
    storage_url: str
    total_trials: int | None  # the study's trial budget (None: until the timeout)
    finished_before: int  # trials already finished when this run started
    max_consecutive_failures: int

    @property
    def remaining(self) -> int | None:
        if self.total_trials is None:
            return None
        return max(0, self.total_trials - self.finished_before)


def prepare_run(
    resolved: ResolvedSpec,
    *,
    storage_url: str,
    study_name: str | None = None,
    n_trials: int | None = None,
    seed: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    dataset: Dataset | None = None,
    builder: Builder | None = None,
    strategy: str | None = None,
) -> PreparedRun:
    """Check the data, the builder and the storage, then create, resume or replace the study.

    ``strategy`` (flat or staged) overrides the spec's.

    Example:
        >>> prepared = prepare_run(load_spec("studies/digits-mlp.yaml"),
        ...                        storage_url="sqlite:///tuner.db", n_trials=10)
        >>> execute(prepared)
    """
    spec = resolved.spec
    if resume and overwrite:
        raise SpecError("--resume and --overwrite exclude each other: choose one")
    name = spec.name if study_name is None else study_name  # --study-name '' is refused
    _check_study_name(name)
    seed = spec.seed if seed is None else seed
    if strategy is not None and strategy != spec.strategy.name:
        spec = spec.model_copy(update={"strategy": StrategySpec(name=strategy)})
        resolved = dataclasses.replace(resolved, spec=spec)
    total = n_trials if n_trials is not None else spec.budget.n_trials
    search = _strategy(resolved, n_trials=total)
    dataset = dataset or load_dataset(spec.data, base_dir=resolved.base_dir, seed=seed)
    _check_metric(spec.metric, dataset.task)
    builder = builder or _import_builder(spec.model.builder)
    _check_model_fits(resolved, dataset, builder=builder)
    # Built (and so checked) before the storage is touched: a bad option must not leave
    # a created or, with --overwrite, a deleted study behind.
    pruner = make_pruner(spec.pruner.name, spec.pruner.options)
    make_sampler(spec.sampler.name, spec.sampler.options, seed=seed, space=resolved.space)
    storage = open_storage(storage_url)
    exists = study_exists(storage, name)
    if exists and not (resume or overwrite):
        raise StudyExistsError(
            f"study {name!r} already exists in {mask_url(storage_url)}; pass --resume to "
            f"continue it, --overwrite to replace it, or choose another --study-name"
        )
    if exists and resume:
        _check_same_space(storage, name, resolved.space)
    if exists and overwrite:
        optuna.delete_study(study_name=name, storage=storage)
    finished = _count_finished(storage, name) if exists and resume else 0
    with _quiet_optuna():
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            direction=spec.direction,
            load_if_exists=True,
            # A resumed run must not replay the random start-up points of the first run.
            sampler=make_sampler(
                spec.sampler.name, spec.sampler.options, seed=seed + finished, space=resolved.space
            ),
            pruner=pruner,
        )
    search.prepare(study)
    _record_spec(study, resolved, seed=seed)
    # A grid is the whole plan: its sampler decides every trial.
    if spec.space.baseline_first and spec.sampler.name != "grid" and not (exists and resume):
        _enqueue_baseline(study, resolved)
    return PreparedRun(
        study=study,
        objective=_objective(resolved, dataset=dataset, builder=builder, seed=seed, search=search),
        storage_url=storage_url,
        total_trials=total,
        finished_before=finished,
        max_consecutive_failures=spec.budget.max_consecutive_failures,
    )


def _enqueue_baseline(study: optuna.Study, resolved: ResolvedSpec) -> None:
    """Queue the space's defaults (textbook values) as the study's first trial.

    Samplers start from random points; the defaults are a good configuration on most
    tasks, so the study has a sound baseline after one trial and every later trial is
    measured against it (SMAC starts from the default configuration for the same reason).
    """
    params = resolved.space.default_trial(tiers=resolved.tiers, fixed=resolved.spec.space.fixed)
    study.enqueue_trial(params, user_attrs={records.BASELINE: True})


def join_study(storage_url: str, study_name: str, *, data_dir: Path | None = None) -> PreparedRun:
    """Rebuild a running study's objective from the spec stored with it, to add a worker.

    Only the name and the storage are needed: the spec and the search space travel in
    the study's user attributes. Relative data paths are taken from ``data_dir`` (else
    the working directory).

    Example:
        >>> prepared = join_study("postgresql://tuner@db/tuner", "digits-mlp")
        >>> run_worker(prepared.study, prepared.objective)
    """
    storage = open_storage(storage_url)
    if not study_exists(storage, study_name):
        known = sorted(s.study_name for s in optuna.get_all_studies(storage=storage))
        raise StudyNotFoundError(
            f"no study {study_name!r} in {mask_url(storage_url)} (studies there: "
            f"{', '.join(known) or 'none'}); create it first with `tuner run SPEC`"
        )
    attrs = storage.get_study_user_attrs(storage.get_study_id_from_name(study_name))
    if records.SPEC not in attrs or records.SPACE not in attrs:
        raise SpecError(
            f"study {study_name!r} was not created by tuner (it has no stored spec); "
            f"create it with `tuner run SPEC` so that workers can join it"
        )
    resolved = resolve_spec(
        attrs[records.SPEC],
        base_dir=data_dir or Path.cwd(),
        source=f"study {study_name!r}",
        tiers=",".join(map(str, attrs.get(records.TIERS, sorted(ALL_TIERS)))),
        space=SearchSpace.model_validate(attrs[records.SPACE]),
    )
    spec = resolved.spec
    dataset = load_dataset(spec.data, base_dir=resolved.base_dir, seed=spec.seed)
    with _quiet_optuna():
        study = optuna.load_study(
            study_name=study_name,
            storage=storage,
            # Workers must not all draw the same start-up points, so each seeds its own.
            sampler=make_sampler(
                spec.sampler.name,
                spec.sampler.options,
                seed=spec.seed + os.getpid(),
                space=resolved.space,
            ),
            pruner=make_pruner(spec.pruner.name, spec.pruner.options),
        )
    builder = _import_builder(spec.model.builder)
    # The stage plan follows the budget the study was started with, recorded on it.
    planned = (attrs.get(records.STRATEGY) or {}).get("n_trials", spec.budget.n_trials)
    search = _strategy(resolved, n_trials=planned)
    return PreparedRun(
        study=study,
        objective=_objective(
            resolved, dataset=dataset, builder=builder, seed=spec.seed, search=search
        ),
        storage_url=storage_url,
        total_trials=None,  # the study's queue holds the budget (tuner.execution.worker)
        finished_before=_count_finished(storage, study_name),
        max_consecutive_failures=spec.budget.max_consecutive_failures,
    )


def _strategy(resolved: ResolvedSpec, *, n_trials: int | None) -> Strategy:
    spec = resolved.spec
    return make_strategy(
        spec.strategy.name,
        spec.strategy.options,
        space=resolved.space,
        n_trials=n_trials,
        tiers=resolved.tiers,
        fixed=spec.space.fixed,
    )


def _objective(
    resolved: ResolvedSpec,
    *,
    dataset: Dataset,
    builder: Builder | None,
    seed: int,
    search: Strategy,
) -> KerasObjective:
    spec = resolved.spec
    return KerasObjective(
        space=resolved.space,
        dataset=dataset,
        metric=spec.metric,
        max_epochs=spec.training.max_epochs,
        family=spec.model.family,
        builder=builder,
        loss=spec.training.loss,
        seed=seed,
        tiers=resolved.tiers,
        fixed=spec.space.fixed,
        mixed_precision=spec.training.mixed_precision,
        xla=spec.training.xla,
        strategy=search,
    )


def execute(
    prepared: PreparedRun,
    *,
    timeout: float | None = None,
    callbacks: Sequence[TrialCallback] = (),
) -> optuna.Study:
    """Run the remaining trials; one trial's failure never stops the study.

    Raises :class:`~tuner.errors.StudyStopped` when the circuit breaker trips.
    ``KeyboardInterrupt`` propagates after Optuna marks the running trial FAIL.
    """
    if prepared.total_trials is None and timeout is None:
        raise SpecError("a study needs a budget: give n_trials, a timeout, or both")
    breaker = CircuitBreaker(limit=prepared.max_consecutive_failures)
    with _quiet_optuna(), noting_ctrl_c(), long_lived_frozen() as refreeze:
        prepared.study.optimize(
            prepared.objective,
            n_trials=prepared.remaining,
            timeout=timeout,
            catch=(TrialFailed,),
            callbacks=[breaker, refreeze, *callbacks],
        )
    if breaker.tripped:
        raise StudyStopped(
            f"stopped after {breaker.limit} consecutive failed trials (last: "
            f"{breaker.last_reason}); fix the cause, then run again with --resume"
        )
    return prepared.study


class CircuitBreaker:
    """Stops the study after ``limit`` consecutive FAIL trials, so a broken setup
    does not burn the night.

    A diverged trial is a result of the search (α too large), not a broken setup: it
    neither counts nor resets the count.
    """

    def __init__(self, *, limit: int) -> None:
        self.limit = limit
        self.consecutive = 0
        self.tripped = False
        self.last_reason = ""

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        reason = str(trial.user_attrs.get(records.FAIL_REASON, "unknown"))
        if trial.state != TrialState.FAIL:
            self.consecutive = 0
            return
        if reason == "diverged":
            return
        self.consecutive += 1
        self.last_reason = reason
        if self.consecutive >= self.limit:
            self.tripped = True
            study.stop()


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    # Optuna logs each failed trial with its traceback; we report trials ourselves.
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


def _record_spec(study: optuna.Study, resolved: ResolvedSpec, *, seed: int) -> None:
    # The seed in force (--seed wins over the spec's) is what joining workers must train with.
    study.set_user_attr(records.SPEC, resolved.spec.model_dump(mode="json") | {"seed": seed})
    study.set_user_attr(records.SPACE, resolved.space.model_dump(mode="json"))
    study.set_user_attr(records.TIERS, sorted(resolved.tiers))
    study.set_user_attr(records.MAX_EPOCHS, resolved.spec.training.max_epochs)


def _check_same_space(storage: Any, name: str, space: SearchSpace) -> None:
    """Refuse to resume a study whose stored space differs from the current one."""
    study = optuna.load_study(study_name=name, storage=storage)
    stored = study.user_attrs.get(records.SPACE)
    if stored is None:
        return
    before = SearchSpace.model_validate(stored).distributions()
    now = space.distributions()
    changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
    if changed:
        raise StudyExistsError(
            f"study {name!r} was run with a different search space (changed: "
            f"{', '.join(changed)}); use --overwrite to replace it or a new --study-name"
        )


def _count_finished(storage: Any, name: str) -> int:
    study = optuna.load_study(study_name=name, storage=storage)
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def _check_metric(metric: str, task: str) -> None:
    logged = ["val_loss", *(f"val_{m}" for m in default_metrics(task))]
    if metric not in logged:
        raise SpecError(
            f"metric {metric!r} is not logged when training a {task} model; "
            f"choose one of {', '.join(logged)}"
        )


def _check_study_name(name: str) -> None:
    try:
        check_name(name, what="study name")
    except ValueError as exc:
        raise SpecError(f"--study-name: {exc}") from None


def _check_model_fits(resolved: ResolvedSpec, dataset: Dataset, *, builder: Builder | None) -> None:
    """Refuse a model family or loss that every trial would fail on with this dataset."""
    spec = resolved.spec
    if builder is None and spec.model.family == "cnn" and len(dataset.input_shape) != 3:
        raise SpecError(
            f"model.family cnn needs images (height, width, channels), but {dataset.name} has "
            f"input shape {dataset.input_shape}; use family mlp or linear"
        )
    loss = spec.training.loss
    if loss == "auto":
        return
    if "crossentropy" in loss.lower() and dataset.task == "regression":
        raise SpecError(
            f"training.loss {loss} is for class labels, but {dataset.name} is a regression; use "
            f"auto or mse (or set data.task: classification if the target holds classes)"
        )
    if loss.lower().replace("_", "") == "categoricalcrossentropy":
        raise SpecError(
            f"training.loss {loss} expects one-hot labels, but tuner trains on integer class "
            f"labels; use sparse_categorical_crossentropy (what auto picks)"
        )
    try:  # last: the name checks above need no TensorFlow
        import_keras().losses.get(loss)
    except ValueError:
        raise SpecError(
            f"training.loss {loss!r} is not a Keras loss; use auto, mse, mae, huber or "
            f"sparse_categorical_crossentropy"
        ) from None


def _import_builder(ref: str | None) -> Builder | None:
    return None if ref is None else import_function(ref, error=SpecError, what="model.builder")
