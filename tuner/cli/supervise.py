"""The supervised half of ``tuner run --workers N`` / ``--gpus`` (local processes, or Ray
actors with ``--ray``): queue, start, watch, stop."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tuner.cli.progress import TrialProgress
from tuner.errors import SpecError, StudyStopped
from tuner.execution.run import PreparedRun

if TYPE_CHECKING:
    from tuner.execution.ray_cluster import Cluster


def supervise(
    prepared: PreparedRun,
    *,
    slots: list[str | None] | None,
    cluster: Cluster | None = None,
    data_dir: Path,
    recycle_after: int,
    progress: TrialProgress,
    timeout: float | None,
) -> None:
    """Queue the study's budget, run one worker process per slot (or, on a Ray
    ``cluster``, the actors placed on it), report, stop on Ctrl-C."""
    from tuner.storage import check_connection_budget, sqlite_warning

    workers = cluster.placement.workers if cluster is not None else len(slots or [])
    warning = sqlite_warning(prepared.storage_url, workers=workers)
    if warning:
        click.echo(f"Warning: {warning}", err=True)
    check_connection_budget(prepared.storage_url, workers=workers)
    queued = queue(prepared, quiet=True)
    common: dict[str, Any] = {
        "study": prepared.study,
        "storage_url": prepared.storage_url,
        "data_dir": data_dir,
        "recycle_after": recycle_after or None,
        "on_trial": progress,
        "on_event": lambda message: click.echo(message, err=True),
        "deadline": None if timeout is None else time.monotonic() + timeout,
    }
    if cluster is not None:
        problems = _on_ray(cluster, queued=queued, common=common)
    else:
        problems = _local(slots or [], queued=queued, common=common)
    if problems:
        # A local worker's own message is above; an actor's is in the problem itself.
        above = " (see the workers' messages above)" if cluster is None else ""
        raise StudyStopped("; ".join(problems) + above)


def _local(slots: list[str | None], *, queued: int, common: dict[str, Any]) -> list[str]:
    from tuner.execution.supervisor import Supervisor
    from tuner.trial.keras_env import usable_cores

    threads = max(1, usable_cores() // len(slots))
    pinned = sorted({s for s in slots if s is not None})
    where = f" on GPU {','.join(pinned)}" if pinned else f", {threads} CPU thread(s) each"
    workers = f"{len(slots)} worker" + ("s" if len(slots) > 1 else "")
    click.echo(f"{queued} trials queued; {workers}{where}", err=True)
    return Supervisor(slots=slots, threads=threads, **common).run()


def _on_ray(cluster: Cluster, *, queued: int, common: dict[str, Any]) -> list[str]:
    from tuner.execution.ray_launcher import RayLauncher

    placement = cluster.placement
    gpu = f" and {placement.gpus:g} GPU" if placement.gpus else ""
    nodes = f"{cluster.nodes} node" + ("s" if cluster.nodes > 1 else "")
    click.echo(
        f"{queued} trials queued; {placement.workers} Ray actors on {cluster.address} "
        f"({nodes}, {cluster.cpus:g} CPUs, {cluster.gpus:g} GPUs), "
        f"{placement.cpus:.4g} CPU ({placement.threads} thread(s)){gpu} each",
        err=True,
    )
    return RayLauncher(cluster=cluster, **common).run()


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
