"""The ``tuner`` command line. Library errors become one line and an exit code here.

Command modules import heavy libraries inside their functions, so ``tuner --help``
stays fast and never loads TensorFlow.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from tuner.errors import (
    DataError,
    MultiObjectiveError,
    SpecError,
    StudyExistsError,
    StudyNotFoundError,
    TunerError,
    UnusableStorageError,
)

EXIT_BAD_INPUT = 2
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130
BAD_INPUT = (
    SpecError,
    DataError,
    StudyExistsError,
    StudyNotFoundError,
    MultiObjectiveError,
    UnusableStorageError,
)
# A message quotes what the user gave; a hostile file can make that megabytes long.
MAX_ERROR_LINE = 500
MAX_ERROR_LINES = 40


class TunerGroup(click.Group):
    """A group that turns every error into one line on stderr (a traceback with --debug)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            # One line, like every other error, instead of click's usage block.
            where = exc.ctx.command_path if exc.ctx else ctx.command_path
            message = clipped(f"{exc.format_message()} (see `{where} --help`)")[0]
            click.echo(f"Error: {message}", err=True)
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except TunerError as exc:
            if _debug(ctx):
                raise
            for line in clipped(str(exc)) or [type(exc).__name__]:
                click.echo(f"Error: {line}", err=True)
            ctx.exit(EXIT_BAD_INPUT if isinstance(exc, BAD_INPUT) else EXIT_FAILURE)
        except Exception as exc:
            if _debug(ctx):
                raise
            first = (clipped(str(exc).strip()) or [""])[0]
            click.echo(
                f"Error: unexpected {type(exc).__name__}: {first} "
                f"(run with `tuner --debug ...` for the traceback, and please report it)",
                err=True,
            )
            ctx.exit(EXIT_FAILURE)


def clipped(message: str) -> list[str]:
    """The lines of ``message`` as shown to a user: each cut to :data:`MAX_ERROR_LINE`
    characters, at most :data:`MAX_ERROR_LINES` of them (the rest counted).

    Example:
        >>> clipped("x" * 600)[0][-30:]
        'xxxxxxxxx... (100 more characters)'
    """
    lines = [
        line
        if len(line) <= MAX_ERROR_LINE
        else f"{line[:MAX_ERROR_LINE]}... ({len(line) - MAX_ERROR_LINE} more characters)"
        for line in message.splitlines()[: MAX_ERROR_LINES + 1]
    ]
    if len(lines) > MAX_ERROR_LINES:
        more = message.count("\n") + 1 - (MAX_ERROR_LINES - 1)
        lines[MAX_ERROR_LINES - 1 :] = [f"... and {more} more problems"]
    return lines


def _debug(ctx: click.Context) -> bool:
    return bool((ctx.obj or {}).get("debug")) or os.environ.get("TUNER_DEBUG") == "1"


@click.group(cls=TunerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.version_option(package_name="tuner")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Tune Keras models with Optuna: importance-ranked search spaces, pruning, reports.

    Studies live in a SQL database: an SQLite file (tuner.db) by default, or any
    SQLAlchemy URL from --storage or $TUNER_STORAGE (PostgreSQL for many machines).
    """
    ctx.obj = {"debug": debug}


def _register() -> None:
    from tuner.cli.dashboard import dashboard
    from tuner.cli.enqueue import enqueue
    from tuner.cli.report import report
    from tuner.cli.retrain import retrain
    from tuner.cli.run import run
    from tuner.cli.spaces import space, spec
    from tuner.cli.storage import storage
    from tuner.cli.studies import studies
    from tuner.cli.trials import best, export, trials
    from tuner.cli.worker import worker

    main.add_command(run)
    main.add_command(report)
    main.add_command(worker)
    main.add_command(storage)
    main.add_command(dashboard)
    main.add_command(studies)
    main.add_command(trials)
    main.add_command(best)
    main.add_command(export)
    main.add_command(enqueue)
    main.add_command(retrain)
    main.add_command(space)
    main.add_command(spec)


_register()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
