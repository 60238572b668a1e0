"""``tuner report NAME``: importance report as HTML (default), Markdown or JSON."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tuner.cli.options import storage_option


@click.command("report")
@click.argument("name")
@storage_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["html", "markdown", "json"]),
    default="html",
    show_default=True,
    help="html writes a self-contained page; markdown and json print to stdout.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write here instead (html default: NAME-report.html in the current folder).",
)
@click.option("--bootstrap", default=20, show_default=True, help="Replicates per interval.")
@click.option("--seed", default=0, show_default=True, help="Seed of resampling and forests.")
def report(
    name: str, storage: str | None, fmt: str, out: Path | None, bootstrap: int, seed: int
) -> None:
    """Which hyperparameters mattered, with intervals, against the declared tiers.

    Examples:

        tuner report digits-mlp                    # writes digits-mlp-report.html

        tuner report digits-mlp --format markdown  # summary in the terminal

        tuner report digits-mlp --format json | jq .importance.params
    """
    from tuner.reporting import load, render_html, render_markdown
    from tuner.reporting import report as build
    from tuner.storage import resolve_storage_url

    try:
        study = load(name, storage=resolve_storage_url(storage))
        data = build(study, n_bootstrap=bootstrap, seed=seed)
        if fmt == "html":
            path = out or Path(f"{_file_safe(name)}-report.html")
            render_html(study, data, path)
            click.echo(str(path))
            return
        text = render_markdown(data) if fmt == "markdown" else json.dumps(data, indent=2)
        if out is not None:
            out.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
            click.echo(str(out))
        else:
            click.echo(text)
    except BrokenPipeError:
        raise  # the reader went away (`| head`): the CLI entry ends quietly
    except OSError as exc:
        raise click.ClickException(f"cannot write the report: {exc}") from None


def _file_safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
