"""``tuner space list|show|validate`` and ``tuner spec list|schema``: the files users write,
and the ones shipped with tuner (found by bare name: ``importance-ranked``, ``digits-mlp``).
"""

from __future__ import annotations

from typing import Any

import click

from tuner.cli.options import format_option


@click.group()
def space() -> None:
    """List, show and check search spaces (search_spaces/*.yaml, or a shipped name)."""


@space.command("list")
@format_option()
def list_spaces(output_format: str) -> None:
    """List the search spaces shipped with tuner: use them by name in a spec or tune().

    \b
    Example:
      tuner space list
      tuner space show importance-ranked
    """
    from tuner.cli.output import emit_rows
    from tuner.specs.shipped import shipped_files
    from tuner.specs.space import load_space

    rows = []
    for name, path in shipped_files("search_spaces").items():
        loaded = load_space(path)
        rows.append(
            {
                "name": name,
                "parameters": len(loaded.parameters),
                "description": loaded.description,
                "file": str(path),
            }
        )
    emit_rows(rows, output_format=output_format)


@space.command("show")
@click.argument("space_file", metavar="FILE", type=click.Path(dir_okay=False))
@format_option()
def show(space_file: str, output_format: str) -> None:
    """Show a search space as a table, most important tier first.

    \b
    Example:
      tuner space show search_spaces/importance-ranked.yaml
      tuner space show importance-ranked      # a shipped space, by name
    """
    from tuner.cli.output import emit_rows
    from tuner.specs.space import load_space

    loaded = load_space(space_file)
    rows = [
        {
            "tier": p.tier,
            "name": name,
            "type": p.type,
            "range": p.describe_range(),
            "default": p.default,
            "stored_as": p.stored_name(name),
            "condition": " ".join(f"{k} in {v}" for k, v in (p.condition or {}).items()),
        }
        for name, p in sorted(loaded.parameters.items(), key=lambda item: item[1].tier)
    ]
    emit_rows(rows, output_format=output_format)


@space.command("validate")
@click.argument("space_file", metavar="FILE", type=click.Path(dir_okay=False))
def validate(space_file: str) -> None:
    """Check a search space file; every problem is listed, one line each.

    \b
    Example:
      tuner space validate search_spaces/importance-ranked.yaml
    """
    from collections import Counter

    from tuner.specs.space import load_space

    loaded = load_space(space_file)
    tiers = Counter(p.tier for p in loaded.parameters.values())
    counts = ", ".join(f"tier {t}: {n}" for t, n in sorted(tiers.items()))
    click.echo(f"{space_file}: valid, {len(loaded.parameters)} parameters ({counts})")


@click.group()
def spec() -> None:
    """Help with study spec files (studies/*.yaml)."""


@spec.command("list")
@format_option()
def list_specs(output_format: str) -> None:
    """List the example study specs shipped with tuner: `tuner run NAME` runs one.

    \b
    Example:
      tuner spec list
      tuner run digits-mlp
    """
    from tuner.cli.output import emit_rows
    from tuner.specs.shipped import shipped_files
    from tuner.specs.spec import load_spec

    rows = []
    for name, path in shipped_files("studies").items():
        loaded = load_spec(path).spec
        rows.append(
            {
                "name": name,
                "data": loaded.data.source,
                "model": loaded.model.builder or loaded.model.family,
                "objectives": ", ".join(m.name for m in loaded.metrics),
                "file": str(path),
            }
        )
    emit_rows(rows, output_format=output_format)


@spec.command("schema")
def schema() -> None:
    """Print the JSON Schema of a study spec, for editors to complete and check specs.

    \b
    Example:
      tuner spec schema > studies/schema.json
      # then, first line of a spec: # yaml-language-server: $schema=schema.json
    """
    import json

    from tuner.specs.spec import StudySpec

    click.echo(json.dumps(_with_short_forms(StudySpec.model_json_schema()), indent=2))


def _with_short_forms(schema: dict[str, Any]) -> dict[str, Any]:
    """Allow ``sampler: tpe``, ``pruner: none``, ``strategy: staged``, short for ``{name: ...}``.

    The spec accepts them through a before-validator, which pydantic's schema cannot see.
    """
    for key in ("sampler", "pruner", "strategy"):
        section = schema["properties"][key]
        target = section["$ref"].rsplit("/", 1)[-1]
        names = schema["$defs"][target]["properties"]["name"]
        schema["properties"][key] = {
            "anyOf": [section, {"type": "string", "enum": names["enum"]}],
            "description": f"{key} name, or {{name, options}}",
        }
    return schema
