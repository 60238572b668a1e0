"""The supervised half of ``tuner run --workers N`` / ``--gpus`` (local processes, or Ray
actors with ``--ray``): queue, start, watch, stop."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tuner.cli.progress import TrialProgress
from tuner.errors import SpecError, StudyStopped
from tuner.execution.run import PreparedRun

if TYPE_CHECKING:
    from tuner.execution.ray_cluster import Cluster


def supervise(
    prepared: PreparedRun,
    *,
    slots: list[str | None],
    data_dir: Path,
    recycle_after: int,
    progress: TrialProgress,
    timeout: float | None,
) -> None:
    """Queue the study's budget, run one worker process per slot, report, stop on Ctrl-C."""
    from tuner.execution.supervisor import Supervisor
    from tuner.storage import check_connection_budget, sqlite_warning
    from tuner.trial.keras_env import usable_cores

    warning = sqlite_warning(prepared.storage_url, workers=len(slots))
    if warning:
        click.echo(f"Warning: {warning}", err=True)
    study = prepared.study
    check_connection_budget(prepared.storage_url, workers=len(slots))
    queued = queue(prepared, quiet=True)
    threads = max(1, usable_cores() // len(slots))
    pinned = sorted({s for s in slots if s is not None})
    where = f" on GPU {','.join(pinned)}" if pinned else f", {threads} CPU thread(s) each"
    workers = f"{len(slots)} worker" + ("s" if len(slots) > 1 else "")
    click.echo(f"{queued} trials queued; {workers}{where}", err=True)
    supervisor = Supervisor(
        study=study,
        storage_url=prepared.storage_url,
        slots=slots,
        threads=threads,
        data_dir=data_dir,
        recycle_after=recycle_after or None,
        on_trial=progress,
        on_event=lambda message: click.echo(message, err=True),
        deadline=None if timeout is None else time.monotonic() + timeout,
    )
    problems = supervisor.run()
    if problems:
        raise StudyStopped("; ".join(problems) + " (see the workers' messages above)")


def supervise_on_ray(
    prepared: PreparedRun,
    *,
    cluster: Cluster,
    data_dir: Path,
    recycle_after: int,
    progress: TrialProgress,
    timeout: float | None,
) -> None:
    """Queue the study's budget, run one Ray actor per worker, report, stop on Ctrl-C."""
    from tuner.execution.ray_launcher import RayLauncher
    from tuner.storage import check_connection_budget, sqlite_warning

    placement = cluster.placement
    warning = sqlite_warning(prepared.storage_url, workers=placement.workers)
    if warning:
        click.echo(f"Warning: {warning}", err=True)
    check_connection_budget(prepared.storage_url, workers=placement.workers)
    queued = queue(prepared, quiet=True)
    gpu = f" and {placement.gpus:g} GPU" if placement.gpus else ""
    click.echo(
        f"{queued} trials queued; {placement.workers} Ray actors on {cluster.address} "
        f"({cluster.nodes} nodes, {cluster.cpus:g} CPUs, {cluster.gpus:g} GPUs), "
        f"{placement.cpus:.4g} CPU ({placement.threads} thread(s)){gpu} each",
        err=True,
    )
    launcher = RayLauncher(
        study=prepared.study,
        storage_url=prepared.storage_url,
        cluster=cluster,
        data_dir=data_dir,
        recycle_after=recycle_after or None,
        on_trial=progress,
        on_event=lambda message: click.echo(message, err=True),
        deadline=None if timeout is None else time.monotonic() + timeout,
    )
    problems = launcher.run()
    if problems:
        raise StudyStopped("; ".join(problems))


def queue(prepared: PreparedRun, *, quiet: bool = False) -> int:
    """Say how many trials the study has left to run for any worker (queued
    configurations, such as the baseline, included); the budget is already reserved."""
    if prepared.to_run is None:
        raise SpecError("workers need a trial budget: give --n-trials or budget.n_trials")
    if not quiet:
        name = prepared.study.study_name
        click.echo(
            f"{prepared.to_run} trials queued; start workers with `tuner worker {name}`", err=True
        )
    return prepared.to_run
