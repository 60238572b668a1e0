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
@click.option(
    "--pick",
    metavar="CONDITIONS",
    help="Several objectives: of the Pareto front's trials that meet every condition "
    "(e.g. 'n_params<=1e5, latency_ms<2'), the best on the primary objective.",
)
@click.option(
    "--weights",
    metavar="NAME=W,...",
    help="Several objectives: the front's trial with the highest weighted sum of its "
    "objectives, each scaled over the front from 0 (worst) to 1 (best).",
)
@format_option()
def best(
    name: str, storage: str | None, pick: str | None, weights: str | None, output_format: str
) -> None:
    """Show the best trial: value, parameters, trial number, and how to retrain it.

    A study of several objectives has a Pareto front instead: the trials no other beats
    on every objective (infeasible ones left out). --pick or --weights chooses one.

    \b
    Example:
      tuner best digits-mlp --format json
      tuner best digits-size --pick 'n_params<=1e5'
    """
    from tuner.cli.output import emit_record
    from tuner.errors import NoCompletedTrialError, SpecError
    from tuner.outcome.catalog import study_overview
    from tuner.storage import resolve_storage_url

    url = resolve_storage_url(storage)
    result = study_overview(url, name)
    if len(result.directions) > 1:
        _best_of_front(name, url, pick=pick, weights=weights, output_format=output_format)
        return
    if pick or weights:
        raise SpecError(
            f"--pick and --weights choose from the Pareto front of a study of several "
            f"objectives; {name!r} has one: leave them out to see its best trial"
        )
    if result.best_trial is None:
        raise NoCompletedTrialError(
            f"study {name!r} has no completed trial yet ({result.n_trials} trials); "
            f"see `tuner trials list {name}` for what happened"
        )
    record = {
        "study": name,
        "metric": result.metric,
        "value": result.best_value,
        "trial": result.best_trial,
        "params": result.best_params,
        "retrain": f"tuner retrain {shlex.quote(name)}{_storage_arg(url)} --out {name}.keras",
    }
    emit_record(record, output_format=output_format)


def _best_of_front(
    name: str, url: str, *, pick: str | None, weights: str | None, output_format: str
) -> None:
    """The Pareto front as rows, or the one trial --pick / --weights choose from it."""
    from tuner.cli.output import emit_record, emit_rows
    from tuner.errors import NoCompletedTrialError
    from tuner.outcome.pareto import choose, objectives_of, pareto_front
    from tuner.storage import load_study

    study = load_study(name, storage=url)
    objectives, front = objectives_of(study), pareto_front(study)
    goals = ", ".join(f"{o.name} ({o.direction})" for o in objectives)
    if not front:
        raise NoCompletedTrialError(
            f"study {name!r} has no complete, feasible trial yet, so no Pareto front; "
            f"see `tuner trials list {name}` for what happened"
        )
    if not pick and not weights:
        emit_rows([t.row() for t in front], output_format=output_format)
        click.echo(
            f"{len(front)} trials on the Pareto front of {name!r} ({goals}); choose one with "
            f"--pick or --weights, retrain it with `tuner retrain {name} --trial N`",
            err=True,
        )
        return
    chosen = choose(front, objectives=objectives, pick=pick, weights=weights)
    row = chosen.row()
    record = {
        "study": name,
        "objectives": goals,
        "trial": chosen.number,
        "values": chosen.values,
        "measures": {k: v for k, v in row.items() if k not in ("trial", "params", *chosen.values)},
        "params": chosen.params,
        "retrain": f"tuner retrain {shlex.quote(name)}{_storage_arg(url)} --trial "
        f"{chosen.number} --out {name}-trial{chosen.number}.keras",
    }
    emit_record(record, output_format=output_format)


def _storage_arg(url: str) -> str:
    from tuner.storage import DEFAULT_STORAGE, mask_url

    return "" if url == DEFAULT_STORAGE else f" --storage {shlex.quote(mask_url(url))}"


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
