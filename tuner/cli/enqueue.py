"""``tuner enqueue NAME``: warm-start a study with known-good configurations."""

from __future__ import annotations

import click

from tuner.cli.options import storage_option, study_argument


@click.command()
@study_argument
@storage_option
@click.option(
    "--params",
    "assignments",
    metavar="NAME=VALUE,...",
    help="One configuration in model values, e.g. learning_rate=0.01,batch_size=64.",
)
@click.option(
    "--file",
    "config_file",
    type=click.Path(dir_okay=False),
    help="YAML file with one configuration (a mapping) or a list of them.",
)
def enqueue(
    name: str, storage: str | None, assignments: str | None, config_file: str | None
) -> None:
    """Enqueue configurations to be tried first when the study runs next.

    Values are checked against the study's own search space: unknown names, parameters
    the study does not search and values outside their range are refused, and nothing
    is enqueued unless every configuration is valid. Parameters left out are chosen by
    the sampler as usual.

    \b
    Example:
      tuner enqueue digits-mlp --params learning_rate=0.01,batch_size=64
      tuner run studies/digits-mlp.yaml --resume --n-trials 25
    """
    from tuner.errors import SpecError
    from tuner.outcome.warmstart import enqueue as enqueue_configurations
    from tuner.outcome.warmstart import parse_assignments, read_configurations
    from tuner.storage import load_study, resolve_storage_url

    if (assignments is None) == (config_file is None):
        raise SpecError("give exactly one of --params NAME=VALUE,... or --file FILE.yaml")
    configurations = (
        [parse_assignments(assignments)]
        if assignments is not None
        else read_configurations(str(config_file))
    )
    study = load_study(name, storage=resolve_storage_url(storage))
    stored = enqueue_configurations(study, configurations)
    click.echo(
        f"Enqueued {len(stored)} configuration(s) in {name!r}; the next run tries them first.",
        err=True,
    )
