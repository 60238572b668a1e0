"""``tuner studies list|show|delete|copy``: find, inspect, remove and move studies."""

from __future__ import annotations

import click

from tuner.cli.options import format_option, storage_option, study_argument


@click.group()
def studies() -> None:
    """List, show, delete and copy the studies in a storage."""


@studies.command("list")
@storage_option
@format_option()
def list_studies(storage: str | None, output_format: str) -> None:
    """List every study: metric, trials by state, best value, start time.

    \b
    Example:
      tuner studies list --format json
    """
    from tuner.cli.output import emit_rows
    from tuner.outcome.catalog import study_rows
    from tuner.storage import mask_url, resolve_storage_url

    url = resolve_storage_url(storage)
    emit_rows(study_rows(url), output_format=output_format, empty=f"No studies in {mask_url(url)}.")


@studies.command("show")
@study_argument
@storage_option
@format_option()
def show(name: str, storage: str | None, output_format: str) -> None:
    """Show one study: data, model, space, tiers, trials by state, best value and params.

    \b
    Example:
      tuner studies show digits-mlp
    """
    from tuner.cli.output import emit_record
    from tuner.outcome.catalog import study_record
    from tuner.storage import load_study, resolve_storage_url

    url = resolve_storage_url(storage)
    study = load_study(name, storage=url)
    emit_record(study_record(study, url=url), output_format=output_format)


@studies.command("delete")
@study_argument
@storage_option
@click.option("--yes", is_flag=True, help="Delete without asking.")
def delete(name: str, storage: str | None, yes: bool) -> None:
    """Delete a study and all its trials (asks first unless --yes).

    Artifact files (retrained models) stay on disk.

    \b
    Example:
      tuner studies delete old-study --yes
    """
    from tuner.outcome.catalog import delete_study
    from tuner.storage import load_study, mask_url, resolve_storage_url

    url = resolve_storage_url(storage)
    study = load_study(name, storage=url)
    n_trials = len(study.get_trials(deepcopy=False))
    if not yes:
        click.confirm(
            f"Delete study {name!r} and its {n_trials} trials from {mask_url(url)}?", abort=True
        )
    delete_study(url, name)
    click.echo(f"Deleted study {name!r} ({n_trials} trials) from {mask_url(url)}.", err=True)


@studies.command("copy")
@study_argument
@storage_option
@click.option("--to-storage", required=True, metavar="URL", help="Storage to copy the study into.")
@click.option("--to-name", help="Name of the copy [default: the same name].")
def copy(name: str, storage: str | None, to_storage: str, to_name: str | None) -> None:
    """Copy a study with its trials and attributes to another storage (e.g. SQLite to PostgreSQL).

    \b
    Example:
      tuner studies copy digits-mlp --to-storage postgresql://postgres@127.0.0.1/tuner
    """
    from tuner.outcome.catalog import copy_study
    from tuner.storage import mask_url, resolve_storage_url

    new_name = copy_study(resolve_storage_url(storage), name, to_url=to_storage, to_name=to_name)
    click.echo(f"Copied study {name!r} to {mask_url(to_storage)} as {new_name!r}.", err=True)
