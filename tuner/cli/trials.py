"""``tuner trials list``, ``tuner best`` and ``tuner export``: read a study's trials."""

from __future__ import annotations

import shlex

import click

from tuner.cli.options import format_option, storage_option, study_argument

# Literal here so `tuner --help` need not import optuna; tuner.outcome.catalog accepts the same.
STATES = ("complete", "pruned", "fail", "running", "waiting")
SORT_KEYS = ("number", "value", "seconds", "epochs")


@click.group()
def trials() -> None:
    """Inspect the trials of a study."""


@trials.command("list")
@study_argument
@storage_option
@click.option("--state", type=click.Choice(STATES), help="Only trials in this state.")
@click.option(
    "--sort",
    type=click.Choice(SORT_KEYS),
    default="number",
    show_default=True,
    help="Order; 'value' puts the best first.",
)
@click.option("--limit", type=click.IntRange(min=1), help="Show at most this many trials.")
@format_option()
def list_trials(
    name: str,
    storage: str | None,
    state: str | None,
    sort: str,
    limit: int | None,
    output_format: str,
) -> None:
    """List a study's trials: state, value, epochs, seconds, failure reason, parameters.

    \b
    Example:
      tuner trials list digits-mlp --state complete --sort value --limit 5
    """
    from tuner.cli.output import emit_rows
    from tuner.outcome.catalog import trial_rows
    from tuner.storage import resolve_storage_url

    rows = trial_rows(resolve_storage_url(storage), name, state=state, sort=sort, limit=limit)
    emit_rows(rows, output_format=output_format, empty=f"No {state or ''} trials in {name!r}.")


@click.command()
@study_argument
@storage_option
@format_option()
def best(name: str, storage: str | None, output_format: str) -> None:
    """Show the best trial: value, parameters, trial number, and how to retrain it.

    \b
    Example:
      tuner best digits-mlp --format json
    """
    from tuner.cli.output import emit_record
    from tuner.errors import NoCompletedTrialError
    from tuner.outcome.catalog import study_overview
    from tuner.storage import DEFAULT_STORAGE, mask_url, resolve_storage_url

    url = resolve_storage_url(storage)
    result = study_overview(url, name)
    if result.best_trial is None:
        raise NoCompletedTrialError(
            f"study {name!r} has no completed trial yet ({result.n_trials} trials); "
            f"see `tuner trials list {name}` for what happened"
        )
    storage_arg = "" if url == DEFAULT_STORAGE else f" --storage {shlex.quote(mask_url(url))}"
    record = {
        "study": name,
        "metric": result.metric,
        "value": result.best_value,
        "trial": result.best_trial,
        "params": result.best_params,
        "retrain": f"tuner retrain {shlex.quote(name)}{storage_arg} --out {name}.keras",
    }
    emit_record(record, output_format=output_format)


@click.command()
@study_argument
@storage_option
@format_option("csv", "json", default="csv")
def export(name: str, storage: str | None, output_format: str) -> None:
    """Export every trial, one row each: number, state, value, epochs, seconds, fail reason, params.

    \b
    Example:
      tuner export digits-mlp --format csv > digits-mlp.csv
    """
    from tuner.cli.output import emit_rows
    from tuner.outcome.catalog import trial_rows
    from tuner.storage import resolve_storage_url

    emit_rows(trial_rows(resolve_storage_url(storage), name), output_format=output_format)
