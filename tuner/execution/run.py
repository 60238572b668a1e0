"""Run a study: preflight, create or resume it in storage, then run its trials.

Two steps so that callers can show progress between them: :func:`prepare_run` does
everything that can refuse (spec, data, storage, existing study) before any trial
starts and before anything is written, then records the study's total in its queue;
:func:`execute` runs the trials through the one trial loop
(:func:`tuner.execution.worker.run_worker`), as every worker does. :func:`join_study`
rebuilds a running study's objective from its stored spec, for another worker.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from tuner import records
from tuner.errors import (
    SpecError,
    StudyExistsError,
    StudyNotFoundError,
    StudyStopped,
    option,
)
from tuner.execution import preflight
from tuner.execution.epoch_budget import EpochBudget
from tuner.execution.worker import CircuitBreaker, WorkerOutcome, run_worker
from tuner.search.described import record_search
from tuner.search.objectives import name_objectives
from tuner.search.samplers import make_pruner, make_sampler
from tuner.search.start import enqueue_start, probes_apply
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
    epochs_budget: int | None = None  # total epochs of the study's trials
    timeout: float | None = None  # seconds for this run (given, else the spec's)


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
    epochs_budget: int | None = None,
    timeout: float | None = None,
) -> PreparedRun:
    """Check the data, the builder and the storage, then create, resume or replace the study.

    ``strategy`` (flat or staged) overrides the spec's; ``n_trials`` and ``epochs_budget``
    and ``timeout`` the spec's budget. Epochs or a time given without a trial count (here
    or in the spec) run as many trials as they allow.

    Example:
        >>> from tuner.specs.spec import load_spec
        >>> prepared = prepare_run(load_spec("studies/digits-mlp.yaml"),
        ...                        storage_url="sqlite:///new.db", n_trials=10)
        >>> prepared.study.study_name, prepared.to_run         # nothing has run yet
        ('digits-mlp', 10)
    """
    spec = resolved.spec
    if resume and overwrite:
        raise SpecError(
            f"{option('resume', True)} and {option('overwrite', True)} exclude each other: "
            "choose one"
        )
    name = spec.name if study_name is None else study_name  # --study-name '' is refused
    preflight.check_study_name(name)
    seed = spec.seed if seed is None else seed
    preflight.check_seed(seed)
    check_storage_url(storage_url)  # a malformed, in-memory or read-only one: before the data
    if strategy is not None and strategy != spec.strategy.name:
        spec = spec.model_copy(update={"strategy": StrategySpec(name=strategy)})
        resolved = dataclasses.replace(resolved, spec=spec)
        check_objectives(spec)  # a study of several metrics cannot run staged
    epochs = epochs_budget if epochs_budget is not None else spec.budget.epochs
    seconds = timeout if timeout is not None else spec.budget.timeout
    total = _trial_budget(spec, n_trials=n_trials, open_ended=(epochs or seconds) is not None)
    if epochs != spec.budget.epochs:  # recorded with the spec, for workers that join
        spec = spec.model_copy(update={"budget": spec.budget.model_copy(update={"epochs": epochs})})
        resolved = dataclasses.replace(resolved, spec=spec)
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
            f"study {name!r} already exists in {mask_url(storage_url)}; pass "
            f"{option('resume', True)} to continue it, {option('overwrite', True)} to replace "
            f"it, or choose another {option('study_name')}"
        )
    if exists and resume:
        preflight.check_same_space(storage, name, resolved.space)
    if exists and overwrite:
        optuna.delete_study(study_name=name, storage=storage)
    finished = _count_finished(storage, name) if exists and resume else 0
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
    record_search(
        study,
        strategy=spec.strategy.name,
        sampler=spec.sampler.name,
        sampler_options=spec.sampler.options,
        pruner=spec.pruner.name,
        pruner_options=spec.pruner.options,
    )
    name_objectives(study, [m.name for m in spec.metrics])
    _record_spec(study, resolved, seed=seed)
    # A grid is the whole plan: its sampler decides every trial.
    if spec.space.baseline_first and spec.sampler.name != "grid" and not (exists and resume):
        enqueue_start(
            study,
            resolved.space,
            tiers=resolved.tiers,
            fixed=spec.space.fixed,
            probes=probes_apply(strategy=spec.strategy.name, sampler=spec.sampler.name),
            n_trials=total,
        )
    return PreparedRun(
        study=study,
        objective=_objective(resolved, dataset=dataset, builder=builder, seed=seed, search=search),
        storage_url=storage_url,
        to_run=None if total is None else reserve_trials(study, total=total),
        max_consecutive_failures=spec.budget.max_consecutive_failures,
        epochs_budget=epochs,
        timeout=seconds,
    )


def _trial_budget(spec: Any, *, n_trials: int | None, open_ended: bool) -> int | None:
    """The trial count in force: given, else the spec's, unless only epochs or a time
    were given (``open_ended``): the spec's default count must not cut those short."""
    if n_trials is not None:
        return n_trials
    if open_ended and "n_trials" not in spec.budget.model_fields_set:
        return None
    return spec.budget.n_trials  # type: ignore[no-any-return]


def join_study(storage_url: str, study_name: str, *, data_dir: Path | None = None) -> PreparedRun:
    """Rebuild a running study's objective from the spec stored with it, to add a worker.

    Only the name and the storage are needed: the spec and the search space travel in
    the study's user attributes. Relative data paths are taken from ``data_dir`` (else
    the working directory).

    Example:
        >>> prepared = join_study("sqlite:///tuner.db", "digits-mlp")
        >>> prepared.to_run                  # trials of its budget still to start
        0
        >>> run_worker(prepared.study, prepared.objective)
        WorkerOutcome(reason='drained', trials=0)
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
        epochs_budget=spec.budget.epochs,
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
        >>> from tuner.specs.spec import load_spec
        >>> resolved = load_spec("studies/digits-mlp.yaml")
        >>> prepared = prepare_run(resolved, storage_url="sqlite:///new.db", n_trials=1,
        ...                        dataset=dataset)         # 300 rows of it: quick
        >>> execute(prepared)
        WorkerOutcome(reason='drained', trials=1)
    """
    timeout = timeout if timeout is not None else prepared.timeout
    if prepared.to_run is None and timeout is None and prepared.epochs_budget is None:
        raise SpecError("a study needs a budget: give n_trials, an epoch budget or a timeout")
    breaker = CircuitBreaker(limit=prepared.max_consecutive_failures)
    spent = [] if prepared.epochs_budget is None else [EpochBudget(prepared.epochs_budget)]
    with long_lived_frozen() as refreeze:
        outcome = run_worker(
            prepared.study,
            prepared.objective,
            callbacks=[breaker, refreeze, *spent, *callbacks],
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
            f"{breaker.last_reason}); fix the cause, then resume the study "
            f"({option('resume', True)}) or start its workers again"
        )
    return outcome


def _record_spec(study: optuna.Study, resolved: ResolvedSpec, *, seed: int) -> None:
    # The seed in force (--seed wins over the spec's) is what joining workers must train with.
    study.set_user_attr(records.SPEC, resolved.spec.model_dump(mode="json") | {"seed": seed})
    study.set_user_attr(records.SPACE, resolved.space.model_dump(mode="json"))
    study.set_user_attr(records.TIERS, sorted(resolved.tiers))
    study.set_user_attr(records.MAX_EPOCHS, resolved.spec.training.max_epochs)


def _count_finished(storage: Any, name: str) -> int:
    study = optuna.load_study(study_name=name, storage=storage)
    return len(study.get_trials(deepcopy=False, states=FINISHED))
