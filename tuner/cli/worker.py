"""``tuner worker NAME``: join a study from any machine and run its queued trials."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tuner.cli.options import storage_option

if TYPE_CHECKING:
    from tuner.execution.run import PreparedRun


@click.command()
@click.argument("study_name", metavar="NAME")
@storage_option
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    help="CPU threads for training [default: all cores; `tuner run --workers` shares them].",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    help="Folder that relative data paths in the spec start from [default: here].",
)
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0,
    show_default=True,
    help="Seconds to wait for the database and the study to appear (containers).",
)
@click.option(
    "--recycle-after",
    type=click.IntRange(min=1),
    metavar="N",
    help="Exit with code 76 after N trials while work is left, for a fresh process to go on "
    "(TensorFlow never frees traced graphs: ~4 MiB per model) [default: never].",
)
@click.option("--quiet", is_flag=True, help="No line per trial (the supervisor reports them).")
def worker(
    study_name: str,
    storage: str | None,
    threads: int | None,
    data_dir: str | None,
    wait: float,
    recycle_after: int | None,
    quiet: bool,
) -> None:
    """Run the queued trials of study NAME until none is left.

    The spec is stored with the study, so a worker needs only the name and the storage;
    start as many as you like, on any machine. `tuner run SPEC` creates the study and
    queues its trials. With --recycle-after, whatever starts workers restarts the ones
    that exit with code 76 (docker compose: `restart: on-failure`).

    \b
    Example:
      TUNER_DB_PASSWORD_FILE=/run/secrets/db \\
        tuner worker digits-mlp --storage postgresql://tuner@db/tuner
    """
    from tuner.cli.progress import TrialProgress
    from tuner.execution.run import execute
    from tuner.execution.signals import WorkerTerminated
    from tuner.execution.supervisor import EXIT_OUT_OF_MEMORY, EXIT_TERMINATED, EXIT_TRIAL_LIMIT
    from tuner.trial.keras_env import thread_env

    if threads is not None:
        os.environ.update(thread_env(threads))  # before TensorFlow loads
    prepared = _join(study_name, storage, data_dir=Path(data_dir) if data_dir else None, wait=wait)
    direction = prepared.study.direction.name.lower()
    callbacks = [] if quiet else [TrialProgress(total=None, direction=direction)]
    try:
        outcome = execute(prepared, callbacks=callbacks, max_trials=recycle_after, replaceable=True)
    except WorkerTerminated:
        click.echo("Terminated: the running trial is failed and queued again.", err=True)
        raise SystemExit(EXIT_TERMINATED) from None
    if outcome.reason == "out_of_memory":
        click.echo(
            "Out of GPU memory: exiting so that a fresh process runs the next trial.", err=True
        )
        raise SystemExit(EXIT_OUT_OF_MEMORY)
    if outcome.reason == "trial_limit":
        if not quiet:
            click.echo(
                f"Ran {outcome.trials} trials (--recycle-after): exiting so that a fresh "
                "process runs the next.",
                err=True,
            )
        raise SystemExit(EXIT_TRIAL_LIMIT)
    if not quiet:
        click.echo(f"Worker done: ran {outcome.trials} trials; no queued trial is left.", err=True)


def _join(
    study_name: str, storage: str | None, *, data_dir: Path | None, wait: float
) -> PreparedRun:
    """Join the study, retrying while the database or the study is not there yet."""
    from tuner.errors import StorageError, StudyNotFoundError
    from tuner.execution.run import join_study
    from tuner.storage import resolve_storage_url

    url = resolve_storage_url(storage)
    deadline = time.monotonic() + wait
    while True:
        try:
            return join_study(url, study_name, data_dir=data_dir)
        except (StorageError, StudyNotFoundError):
            if time.monotonic() >= deadline:
                raise
            time.sleep(2)
