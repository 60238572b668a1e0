"""``tuner dashboard``: optuna-dashboard on the study storage, one command."""

from __future__ import annotations

from pathlib import Path

import click

from tuner.cli.options import storage_option


@click.command()
@storage_option
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; the dashboard has no login, so keep it on loopback.",
)
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="0 = any free."
)
@click.option(
    "--artifact-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Optuna artifact store to show [default: <db>-artifacts beside an SQLite file: "
    "tuner-artifacts for tuner.db].",
)
@click.option(
    "--allow-writes",
    is_flag=True,
    help="Let the page create, rename and delete studies and edit notes [default: read-only].",
)
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    metavar="NAME",
    help="Also answer requests for this Host name (a proxy's, this machine's); repeatable.",
)
def dashboard(
    storage: str | None,
    host: str,
    port: int,
    artifact_dir: Path | None,
    allow_writes: bool,
    allowed_hosts: tuple[str, ...],
) -> None:
    """Serve optuna-dashboard on the storage and print its URL (Ctrl-C stops it).

    Read-only unless --allow-writes; requests for any Host but --host, loopback names, IP
    addresses and --allowed-host are refused (DNS rebinding).

    \b
    Example:
      tuner dashboard --port 8080
      tuner dashboard --host 0.0.0.0 --allowed-host tuner.example.com
    """
    import warnings

    from tuner.outcome.dashboard import LOOPBACK, make_dashboard, url_of
    from tuner.outcome.retrain import default_artifact_dir
    from tuner.storage import mask_url, resolve_storage_url

    # Importance on few trials warns at every page load; the page shows what it can.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"optuna\.importance")
    url = resolve_storage_url(storage)
    server = make_dashboard(
        url,
        host=host,
        port=port,
        artifact_dir=artifact_dir or default_artifact_dir(url),
        allow_writes=allow_writes,
        allowed_hosts=allowed_hosts,
    )
    if host not in LOOPBACK:
        can = "read and delete" if allow_writes else "read"
        click.echo(
            f"Warning: listening on {host}: anyone who reaches it can {can} studies "
            f"(the dashboard has no login); put a proxy with authentication in front.",
            err=True,
        )
    mode = "writes allowed" if allow_writes else "read-only"
    click.echo(f"Dashboard for {mask_url(url)} at {url_of(server)} ({mode}; Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("Dashboard stopped.", err=True)
    finally:
        server.server_close()
