"""``tuner run SPEC``: run (or resume) a study and print its summary."""

from __future__ import annotations

from typing import Any

import click

from tuner.cli.options import storage_option

# ~200 MiB of TensorFlow's graphs at most, against one ~10 s process start per 50 trials.
DEFAULT_RECYCLE_AFTER = 50


@click.command()
@click.argument("spec_file", metavar="SPEC", type=click.Path(dir_okay=False))
@storage_option
@click.option("--study-name", help="Name in storage [default: the spec's name].")
@click.option("--n-trials", type=click.IntRange(min=1), help="Total trials of the study.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds for this run; alone, as many trials as fit [default: the spec's budget.timeout].",
)
@click.option(
    "--epochs-budget",
    type=click.IntRange(min=1),
    metavar="N",
    help="Total epochs the study's trials may train (pruned ones count what they trained); "
    "alone, as many trials as they allow [default: the spec's budget.epochs].",
)
@click.option("--seed", type=int, help="Random seed [default: the spec's].")
@click.option("--tiers", help="Tiers to search, e.g. 1-2 or 1,3; the rest stay at defaults.")
@click.option(
    "--strategy",
    type=click.Choice(["flat", "staged"]),
    help="flat: all tiers at once; staged: tier by tier, freezing what does not matter "
    "[default: the spec's, else flat].",
)
@click.option("--resume", is_flag=True, help="Continue an existing study of the same name.")
@click.option("--overwrite", is_flag=True, help="Delete an existing study of the same name first.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Run the trials in N worker processes, supervised (restarted when they die).",
)
@click.option(
    "--gpus",
    metavar="all|0,1,...",
    help="One worker per GPU slot, pinned with CUDA_VISIBLE_DEVICES (needs NVIDIA GPUs).",
)
@click.option(
    "--trials-per-gpu",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Workers (trials at once) per GPU with --gpus.",
)
@click.option(
    "--recycle-after",
    type=click.IntRange(min=0),
    metavar="N",
    help="Replace each worker process by a fresh one after N trials, as TensorFlow never "
    "frees traced graphs (~4 MiB per model); 0: never. Given alone, runs one worker "
    f"process [default: {DEFAULT_RECYCLE_AFTER} with --workers/--gpus; in-process: never].",
)
@click.option(
    "--ray",
    "ray_address",
    metavar="ADDRESS",
    help="Run the --workers/--gpus workers as Ray actors on the cluster at ADDRESS (auto: "
    "$RAY_ADDRESS or the cluster on this machine; host:6379; ray://host:10001); Ray "
    "places, sizes and restarts them. Needs `pip install 'tuner[ray]'`.",
)
@click.option(
    "--queue-only",
    is_flag=True,
    help="Create the study and queue its trials for `tuner worker`s; run none here.",
)
def run(
    spec_file: str,
    storage: str | None,
    study_name: str | None,
    n_trials: int | None,
    timeout: float | None,
    epochs_budget: int | None,
    seed: int | None,
    tiers: str | None,
    strategy: str | None,
    resume: bool,
    overwrite: bool,
    workers: int | None,
    gpus: str | None,
    trials_per_gpu: int,
    recycle_after: int | None,
    ray_address: str | None,
    queue_only: bool,
) -> None:
    """Run the study that SPEC (a studies/*.yaml file) defines.

    \b
    Example:
      tuner run studies/digits-mlp.yaml --n-trials 10 --tiers 1-2
      tuner run studies/digits-mlp.yaml --n-trials 60 --strategy staged
      tuner run studies/digits-mlp.yaml --epochs-budget 300
      tuner run studies/digits-mlp.yaml --storage postgresql://tuner@db/tuner \\
        --ray auto --workers 8
    """
    from tuner.cli.progress import TrialProgress, best_so_far
    from tuner.cli.summary import echo_summary
    from tuner.errors import StudyStopped
    from tuner.execution.run import execute, gpu_options, prepare_run
    from tuner.execution.signals import WorkerTerminated
    from tuner.execution.supervisor import EXIT_TERMINATED, detect_gpus
    from tuner.outcome.results import summarize
    from tuner.specs.objectives import pruning_notice
    from tuner.specs.spec import load_spec
    from tuner.storage import mask_url, resolve_storage_url
    from tuner.trial.keras_env import gpu_notice

    resolved = load_spec(spec_file, tiers=tiers)
    url = resolve_storage_url(storage, spec_storage=resolved.spec.storage)
    # Refuse missing GPUs (and a Ray cluster that is not there) before anything is written.
    cluster = None
    if ray_address is not None:
        from tuner.execution.ray_cluster import connect

        cluster = connect(
            ray_address, storage_url=url, workers=workers, gpus=gpus, trials_per_gpu=trials_per_gpu
        )
        slots = None
    else:
        slots = _slots(
            workers=workers, gpus=gpus, trials_per_gpu=trials_per_gpu, recycle_after=recycle_after
        )
    prepared = prepare_run(
        resolved,
        storage_url=url,
        study_name=study_name,
        n_trials=n_trials,
        seed=seed,
        resume=resume,
        overwrite=overwrite,
        strategy=strategy,
        epochs_budget=epochs_budget,
        timeout=timeout,
    )
    timeout = prepared.timeout  # given, else the spec's budget.timeout
    name = prepared.study.study_name
    click.echo(
        f"Study {name!r} in {mask_url(url)}: {_to_run(prepared)} to run "
        f"(tiers {','.join(map(str, sorted(resolved.tiers)))}, "
        f"{strategy or resolved.spec.strategy.name} strategy)",
        err=True,
    )
    notice = pruning_notice(resolved.spec.metrics, pruner=resolved.spec.pruner.name)
    if notice:
        click.echo(f"Note: {notice}.", err=True)
    has_gpu = gpus is not None or bool(detect_gpus())
    gpu_note = gpu_notice(gpu_options(resolved.spec.training), has_gpu=has_gpu)
    if gpu_note:
        click.echo(f"Note: {gpu_note}.", err=True)
    if queue_only:
        from tuner.cli.supervise import queue

        queue(prepared)
        return
    progress = TrialProgress(
        total=prepared.to_run,
        direction=resolved.spec.direction,
        best=best_so_far(prepared.study),
    )
    try:
        if slots is None and cluster is None:
            execute(prepared, timeout=timeout, callbacks=[progress])
        else:
            from tuner.cli.supervise import supervise

            supervise(
                prepared,
                slots=slots,
                cluster=cluster,
                data_dir=resolved.base_dir,
                recycle_after=DEFAULT_RECYCLE_AFTER if recycle_after is None else recycle_after,
                progress=progress,
                timeout=timeout,
            )
    except WorkerTerminated:  # SIGTERM (docker stop, preemption) reached this process
        progress.close()
        click.echo("Terminated: the running trial is marked failed and queued again.", err=True)
        echo_summary(summarize(prepared.study, storage_url=url), spec_file=spec_file)
        raise SystemExit(EXIT_TERMINATED) from None
    except KeyboardInterrupt as exc:
        progress.close()
        supervised = slots is not None or cluster is not None
        click.echo(f"Interrupted: {_stopped(exc, supervised=supervised)}.", err=True)
        echo_summary(summarize(prepared.study, storage_url=url), spec_file=spec_file)
        raise SystemExit(130) from None
    except StudyStopped:
        progress.close()  # the summary so far, then the breaker's one line on stderr
        echo_summary(summarize(prepared.study, storage_url=url), spec_file=spec_file)
        raise
    finally:
        progress.close()
    echo_summary(summarize(prepared.study, storage_url=url), spec_file=spec_file)


def _slots(
    *, workers: int | None, gpus: str | None, trials_per_gpu: int, recycle_after: int | None
) -> list[str | None] | None:
    """The GPU (or None) of each worker process; None when the run stays in this process
    (no process to recycle either)."""
    if gpus is not None:
        from tuner.execution.supervisor import gpu_slots

        pinned: list[str | None] = list(gpu_slots(gpus, per_gpu=trials_per_gpu))
        return pinned
    if workers is None:
        return None if not recycle_after else [None]
    return [None] * workers


def _to_run(prepared: Any) -> str:
    """What this run may spend: trials, epochs, or until the timeout."""
    parts = [] if prepared.to_run is None else [f"{prepared.to_run} trials"]
    if prepared.epochs_budget is not None:
        parts.append(f"{prepared.epochs_budget} epochs")
    if prepared.timeout is not None:
        parts.append(f"{prepared.timeout:g} s")
    return " or ".join(parts) or "open-ended trials"


def _stopped(interrupt: KeyboardInterrupt, *, supervised: bool) -> str:
    """What Ctrl-C stopped: workers, the running trial, or nothing yet running."""
    if supervised:
        return "workers stopped; their trials are marked failed (terminated) and queued again"
    notes = getattr(interrupt, "__notes__", [])  # the trial loop's note, if one ran
    return notes[-1] if notes else "no trial was running"
