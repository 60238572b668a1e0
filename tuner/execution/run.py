"""Run a study: preflight, create or resume it in storage, then run its trials.

Two steps so that callers can show progress between them: :func:`prepare_run` does
everything that can refuse (spec, data, storage, existing study) before any trial
starts and before anything is written, then records the study's total in its queue;
:func:`execute` runs the trials through the one trial loop
(:func:`tuner.execution.worker.run_worker`), as every worker does. :func:`join_study`
rebuilds a running study's objective from its stored spec, for another worker.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from tuner import records
from tuner.errors import SpecError, StudyExistsError, StudyNotFoundError, StudyStopped
from tuner.execution import preflight
from tuner.execution.worker import CircuitBreaker, WorkerOutcome, run_worker
from tuner.search.objectives import name_objectives
from tuner.search.samplers import make_pruner, make_sampler
from tuner.search.strategy import Strategy, make_strategy
from tuner.specs.param import ALL_TIERS
from tuner.specs.space import SearchSpace
from tuner.specs.spec import (
    ResolvedSpec,
    StrategySpec,
    TrainingSpec,
    check_objectives,
    resolve_spec,
)
from tuner.specs.validation import MAX_SEED
from tuner.storage import check_storage_url, mask_url, open_storage, study_exists
from tuner.storage.queue import (
    FINISHED,
    reserve_trials,
    reserved_trials,
    resilient_storage,
)
from tuner.trial.data import Dataset, load_dataset
from tuner.trial.keras_env import GpuOptions
from tuner.trial.memory import long_lived_frozen
from tuner.trial.models import Builder
from tuner.trial.objective import KerasObjective

TrialCallback = Callable[[optuna.Study, FrozenTrial], None]


@dataclass
class PreparedRun:
    """A study ready to run: everything that could refuse has been checked."""

    study: optuna.Study
    objective: Callable[[optuna.Trial], float | Sequence[float]]
    storage_url: str
    to_run: int | None  # trials left to run (queued ones included); None: until the timeout
    max_consecutive_failures: int


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
    preflight.check_study_name(name)
    seed = spec.seed if seed is None else seed
    preflight.check_seed(seed)
    check_storage_url(storage_url)  # a malformed, in-memory or read-only one: before the data
    if strategy is not None and strategy != spec.strategy.name:
        spec = spec.model_copy(update={"strategy": StrategySpec(name=strategy)})
        resolved = dataclasses.replace(resolved, spec=spec)
        check_objectives(spec)  # a study of several metrics cannot run staged
    total = n_trials if n_trials is not None else spec.budget.n_trials
    search = _strategy(resolved, n_trials=total)
    dataset = dataset or load_dataset(spec.data, base_dir=resolved.base_dir, seed=seed)
    for metric in spec.validation_metrics:
        preflight.check_metric(metric, dataset.task)
    builder = builder or preflight.import_builder(spec.model.builder, base_dir=resolved.base_dir)
    preflight.check_model_fits(resolved, dataset, builder=builder)
    # Built (and so checked) before the storage is touched: a bad option must not leave
    # a created or, with --overwrite, a deleted study behind.
    pruner = make_pruner(spec.pruner.name, spec.pruner.options)
    make_sampler(**_sampler_settings(resolved), seed=seed)
    storage = open_storage(storage_url)
    exists = study_exists(storage, name)
    if exists and not (resume or overwrite):
        raise StudyExistsError(
            f"study {name!r} already exists in {mask_url(storage_url)}; pass --resume to "
            f"continue it, --overwrite to replace it, or choose another --study-name"
        )
    if exists and resume:
        preflight.check_same_space(storage, name, resolved.space)
    if exists and overwrite:
        optuna.delete_study(study_name=name, storage=storage)
    finished = _count_finished(storage, name) if exists and resume else 0
    with quiet_optuna():
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            directions=[m.direction for m in spec.metrics],
            load_if_exists=True,
            # A resumed run must not replay the random start-up points of the first run.
            sampler=make_sampler(
                **_sampler_settings(resolved), seed=(seed + finished) % (MAX_SEED + 1)
            ),
            pruner=pruner,
        )
    search.prepare(study)
    name_objectives(study, [m.name for m in spec.metrics])
    _record_spec(study, resolved, seed=seed)
    # A grid is the whole plan: its sampler decides every trial.
    if spec.space.baseline_first and spec.sampler.name != "grid" and not (exists and resume):
        _enqueue_baseline(study, resolved)
    return PreparedRun(
        study=study,
        objective=_objective(resolved, dataset=dataset, builder=builder, seed=seed, search=search),
        storage_url=storage_url,
        to_run=None if total is None else reserve_trials(study, total=total),
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
        known = sorted(s.study_name for s in storage.get_all_studies())
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
    with quiet_optuna():
        study = optuna.load_study(
            study_name=study_name,
            storage=storage,
            # Workers must not all draw the same start-up points, so each seeds its own.
            sampler=make_sampler(
                **_sampler_settings(resolved), seed=(spec.seed + os.getpid()) % (MAX_SEED + 1)
            ),
            pruner=make_pruner(spec.pruner.name, spec.pruner.options),
        )
    builder = preflight.import_builder(spec.model.builder, base_dir=resolved.base_dir)
    # The stage plan follows the budget the study was started with, recorded on it.
    planned = (attrs.get(records.STRATEGY) or {}).get("n_trials", spec.budget.n_trials)
    search = _strategy(resolved, n_trials=planned)
    return PreparedRun(
        study=study,
        objective=_objective(
            resolved, dataset=dataset, builder=builder, seed=spec.seed, search=search
        ),
        storage_url=storage_url,
        to_run=reserved_trials(study),  # the study's queue holds the budget
        max_consecutive_failures=spec.budget.max_consecutive_failures,
    )


def _sampler_settings(resolved: ResolvedSpec) -> dict[str, Any]:
    """The spec's sampler and what it samples (a grid enumerates the searched parameters)."""
    spec = resolved.spec
    return {
        "name": spec.sampler.name,
        "options": spec.sampler.options,
        "space": resolved.space,
        "searched": resolved.space.searched(tiers=resolved.tiers, fixed=spec.space.fixed),
    }


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
        gpu=gpu_options(spec.training),
        strategy=search,
        metrics=[m.name for m in spec.metrics],
        constraints=spec.constraints,
        latency_batch_size=spec.training.latency_batch_size,
    )


def gpu_options(training: TrainingSpec) -> GpuOptions:
    """The spec's GPU settings, as the trials apply them."""
    return GpuOptions(
        mixed_precision=training.mixed_precision,
        jit_compile=training.jit_compile,
        memory_growth=training.memory_growth,
        memory_limit_mb=training.gpu_memory_limit_mb,
    )


def execute(
    prepared: PreparedRun,
    *,
    timeout: float | None = None,
    callbacks: Sequence[TrialCallback] = (),
    max_trials: int | None = None,
    replaceable: bool = False,
) -> WorkerOutcome:
    """Run the study's remaining trials here, through the one trial loop; one trial's
    failure never stops the study. ``max_trials`` ends this call after that many trials
    (a worker recycled for its memory), ``timeout`` after that many seconds;
    ``replaceable`` ends it after a trial out of memory (a supervisor starts a fresh process).

    Raises :class:`~tuner.errors.StudyStopped` when the circuit breaker trips;
    ``KeyboardInterrupt`` (Ctrl-C) and :class:`~tuner.execution.signals.WorkerTerminated`
    (SIGTERM) propagate after the running trial is marked failed.

    Example:
        >>> execute(prepare_run(resolved, storage_url="sqlite:///tuner.db")).reason
        'drained'
    """
    if prepared.to_run is None and timeout is None:
        raise SpecError("a study needs a budget: give n_trials, a timeout, or both")
    breaker = CircuitBreaker(limit=prepared.max_consecutive_failures)
    with quiet_optuna(), long_lived_frozen() as refreeze:
        outcome = run_worker(
            prepared.study,
            prepared.objective,
            callbacks=[breaker, refreeze, *callbacks],
            max_trials=max_trials,
            deadline=None if timeout is None else time.monotonic() + timeout,
            spend=prepared.to_run is not None,
            replaceable=replaceable,
        )
    storage = resilient_storage(prepared.study)
    if storage is not None:
        storage.check_file()  # deleted after the last write: the summary would read a ghost
    if breaker.tripped:
        raise StudyStopped(
            f"stopped after {breaker.limit} consecutive failed trials (last: "
            f"{breaker.last_reason}); fix the cause, then resume the study (`tuner run SPEC "
            f"--resume`, tune(..., resume=True), or start the workers again)"
        )
    return outcome


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
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


def _count_finished(storage: Any, name: str) -> int:
    study = optuna.load_study(study_name=name, storage=storage)
    return len(study.get_trials(deepcopy=False, states=FINISHED))
