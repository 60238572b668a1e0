"""The summary printed after a run: best value, best parameters, trials, where to look next."""

from __future__ import annotations

import shlex
import time

import click

from tuner import records
from tuner.outcome.results import TuneResult
from tuner.storage import DEFAULT_STORAGE, mask_url


def echo_summary(result: TuneResult, *, spec_file: str | None = None) -> None:
    """Print a run's summary to stdout."""
    name = result.study_name
    spec = result.study.user_attrs.get(records.SPEC) or {}
    metric = spec.get("metric", "value")
    states = ", ".join(f"{n} {s}" for s, n in sorted(result.states.items())) or "none"
    elapsed = time.strftime("%H:%M:%S", time.gmtime(result.seconds))
    click.echo(f"Study {name}: {result.n_trials} trials ({states}) in {elapsed}")
    if result.fail_reasons:
        reasons = "; ".join(f"{r} ×{n}" for r, n in result.fail_reasons.items())
        click.echo(f"Failures: {reasons}")
    if result.multi_objective:
        _echo_front(result)
    elif result.best_value is None:
        click.echo("No trial completed, so there is no best value yet.")
    else:
        click.echo(f"Best {metric}: {result.best_value:.6g} (trial {result.best_trial})")
        if result.baseline_value is not None:
            click.echo(f"Baseline (the space's defaults): {result.baseline_value:.6g}")
        width = max((len(k) for k in result.best_params), default=0)
        for key, value in result.best_params.items():
            shown = f"{value:.6g}" if isinstance(value, float) else str(value)
            click.echo(f"  {key:<{width}}  {shown}")
    url = mask_url(result.storage_url)
    storage_arg = "" if result.storage_url == DEFAULT_STORAGE else f" --storage {shlex.quote(url)}"
    click.echo(f"Stored in {url}")
    click.echo(f"  dashboard: tuner dashboard{storage_arg}")
    click.echo(f"  report:    tuner report {shlex.quote(name)}{storage_arg}")
    if spec_file:
        click.echo(
            f"  more:      tuner run {shlex.quote(spec_file)}{storage_arg} --resume --n-trials N"
        )


SHOWN_FRONT = 10  # front trials in the summary; `tuner best` lists them all


def _echo_front(result: TuneResult) -> None:
    """The Pareto front, best on the primary objective first, and how to choose one."""
    front = result.pareto
    if not front:
        click.echo("No feasible trial completed, so there is no Pareto front yet.")
        return
    goals = ", ".join(f"{o.name} {o.direction[:3]}" for o in result.objectives)
    click.echo(f"Pareto front ({goals}): {len(front)} trials")
    for trial in front[:SHOWN_FRONT]:
        values = "  ".join(f"{name} {value:.6g}" for name, value in trial.values.items())
        click.echo(f"  trial {trial.number:<5} {values}")
    if len(front) > SHOWN_FRONT:
        click.echo(f"  ... and {len(front) - SHOWN_FRONT} more")
    name = shlex.quote(result.study_name)
    click.echo(f"  choose one: tuner best {name} --pick 'NAME<=NUMBER' or --weights NAME=W,...")
