"""Option decorators shared by every command, so each option means the same everywhere."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def storage_option(func: F) -> F:
    """``--storage URL``: defaults to $TUNER_STORAGE, then the spec's, then sqlite:///tuner.db."""
    return click.option(
        "--storage",
        metavar="URL",
        default=None,
        help="SQLAlchemy URL of the study database "
        "[default: $TUNER_STORAGE, else sqlite:///tuner.db].",
    )(func)


def format_option(*choices: str, default: str = "table") -> Callable[[F], F]:
    """``--format``: how a listing is written to stdout."""
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(choices or ("table", "json", "csv")),
        default=default,
        show_default=True,
        help="Output format.",
    )


def study_argument(func: F) -> F:
    """``NAME``: a study in the storage; the shell completes it from the storage's studies."""
    return click.argument("name", metavar="NAME", shell_complete=_complete_study_names)(func)


def _complete_study_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    # Completion must never fail loudly: a wrong URL just completes nothing.
    try:
        import optuna

        from tuner.storage import open_storage, resolve_storage_url

        url = resolve_storage_url(ctx.params.get("storage"))
        names = optuna.get_all_study_names(open_storage(url, heartbeat=False, create=False))
    except Exception:
        return []
    return [n for n in names if n.startswith(incomplete)]
