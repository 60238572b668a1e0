"""``tuner storage doctor|upgrade|reap|mask-secrets``: look after the database that holds the
studies."""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from tuner.cli.options import format_option, storage_option


@click.group()
def storage() -> None:
    """Check, upgrade and clean the study database."""


@storage.command()
@storage_option
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Workers you plan to run (for the connection budget and SQLite advice).",
)
@format_option("table", "json")
def doctor(storage: str | None, workers: int, output_format: str) -> None:
    """Backend, schema version, connection budget, stale RUNNING trials, passwords stored
    on studies; exit 1 on a warning.

    \b
    Example:
      tuner storage doctor --storage postgresql://tuner@db/tuner --workers 8
    """
    from tuner.storage import resolve_storage_url
    from tuner.storage.maintenance import diagnose

    found = diagnose(resolve_storage_url(storage), workers=workers)
    if output_format == "json":
        click.echo(json.dumps(asdict(found) | {"healthy": found.healthy}, indent=2))
    else:
        click.echo(f"storage      {found.url}")
        click.echo(f"backend      {found.backend}")
        click.echo(f"schema       {found.schema_version} (this Optuna: {found.schema_head})")
        if found.connections_allowed is not None:
            click.echo(
                f"connections  {found.connections_in_use} in use of {found.connections_allowed};"
                f" {found.workers} workers need up to {found.connections_needed}"
            )
        running = ", ".join(f"{k}: {v}" for k, v in found.running.items()) or "none"
        click.echo(f"running      {running}")
        for warning in found.warnings:
            click.echo(f"warning      {warning}")
        click.echo("healthy" if found.healthy else f"{len(found.warnings)} warning(s)")
    if not found.healthy:
        raise SystemExit(1)


@storage.command()
@storage_option
def upgrade(storage: str | None) -> None:
    """Upgrade the database schema to this Optuna version (stop every worker first).

    \b
    Example:
      tuner storage upgrade --storage postgresql://tuner@db/tuner
    """
    from tuner.storage import mask_url, resolve_storage_url
    from tuner.storage.maintenance import upgrade as upgrade_schema

    url = resolve_storage_url(storage)
    before, after = upgrade_schema(url)
    if before == after:
        click.echo(f"{mask_url(url)}: schema {after} is up to date")
    else:
        click.echo(f"{mask_url(url)}: schema upgraded from {before} to {after}")


@storage.command()
@storage_option
@click.option("--study-name", help="Only this study [default: every study].")
def reap(storage: str | None, study_name: str | None) -> None:
    """Fail RUNNING trials whose worker died (no heartbeat for the grace period) and
    queue their parameters again.

    \b
    Example:
      tuner storage reap --storage postgresql://tuner@db/tuner
    """
    from tuner.storage import resolve_storage_url
    from tuner.storage.maintenance import reap as reap_stale

    reaped = reap_stale(resolve_storage_url(storage), study_name=study_name)
    for name, numbers in reaped.items():
        click.echo(f"{name}: failed and re-queued trials {', '.join(map(str, numbers))}")
    if not reaped:
        click.echo("no stale trials")


@storage.command("mask-secrets")
@storage_option
@click.option("--study-name", help="Only this study [default: every study].")
def mask_secrets(storage: str | None, study_name: str | None) -> None:
    """Mask the database passwords that older versions stored on studies (a spec's
    `storage:` URL), which anyone who can open the study could read.

    \b
    Example:
      tuner storage mask-secrets --storage postgresql://tuner@db/tuner
    """
    from tuner.storage import resolve_storage_url
    from tuner.storage.maintenance import mask_secrets as mask_stored

    rewritten = mask_stored(resolve_storage_url(storage), study_name=study_name)
    for name, keys in rewritten.items():
        click.echo(f"{name}: masked the password in {', '.join(keys)}")
    if not rewritten:
        click.echo("no stored passwords")
