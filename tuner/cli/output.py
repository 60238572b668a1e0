"""Write listings to stdout as a table, JSON or CSV: one place, so every command agrees.

Rows are mappings of scalars, with parameters as a nested mapping. JSON keeps the
nesting and the keys as they are (stable for scripts); CSV flattens a nested mapping
into ``key_subkey`` columns, as Optuna's ``trials_dataframe`` does; a table shows it as
``k=v`` pairs and shortens the widest column until every line fits the terminal.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import click

MIN_COLUMN = 8  # a table column is never shortened below this many characters


def emit_rows(
    rows: Sequence[Mapping[str, Any]], *, output_format: str, empty: str = "Nothing to list."
) -> None:
    """Write ``rows`` in ``output_format`` (table, json or csv).

    An empty table prints ``empty`` on stderr, so stdout stays empty for pipes.

    Example:
        >>> emit_rows([{"name": "a", "best": 0.91}], output_format="table")
        name  best
        a     0.91
    """
    if output_format == "json":
        click.echo(json.dumps(list(rows), indent=2, default=str))
    elif output_format == "csv":
        flat = [_flatten(r) for r in rows]
        _write_csv(flat, _columns(flat))
    elif not rows:
        click.echo(empty, err=True)
    else:
        cells = [{k: _cell(v) for k, v in r.items()} for r in rows]
        click.echo(_table(cells, _columns(cells)))


def emit_record(record: Mapping[str, Any], *, output_format: str) -> None:
    """Write one record: a ``field  value`` table, a JSON object, or a one-row CSV."""
    if output_format == "json":
        click.echo(json.dumps(dict(record), indent=2, default=str))
    elif output_format == "csv":
        flat = _flatten(record)
        _write_csv([flat], list(flat))
    else:
        lines = []
        for key, value in record.items():
            if isinstance(value, Mapping) and value:
                lines.append((key, ""))
                lines.extend((f"  {k}", _cell(v)) for k, v in value.items())
            else:
                lines.append((key, _cell(value)))
        width = max(len(k) for k, _ in lines)
        click.echo("\n".join(f"{k:<{width}}  {v}".rstrip() for k, v in lines))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, Mapping):
        return " ".join(f"{k}={_cell(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ",".join(_cell(v) for v in value)
    return str(value)


def _flatten(row: Mapping[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, Mapping):
            flat.update({f"{key}_{k}": v for k, v in value.items()})
        elif isinstance(value, (list, tuple)):
            flat[key] = ",".join(str(v) for v in value)
        else:
            flat[key] = value
    return flat


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every key, in order of first appearance (trials differ by conditional params)."""
    return list(dict.fromkeys(k for r in rows for k in r))


def _write_csv(rows: Sequence[Mapping[str, Any]], columns: list[str]) -> None:
    writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    sys.stdout.flush()


def _table(rows: Sequence[Mapping[str, str]], columns: list[str]) -> str:
    widths = {c: max(len(c), *(len(r.get(c, "")) for r in rows)) for c in columns}
    budget = shutil.get_terminal_size((120, 24)).columns - 2 * (len(columns) - 1)
    while sum(widths.values()) > budget:
        widest = max(widths, key=lambda c: widths[c])
        if widths[widest] <= MIN_COLUMN:
            break
        widths[widest] = max(MIN_COLUMN, widths[widest] - (sum(widths.values()) - budget))

    def line(cells: Mapping[str, str]) -> str:
        return "  ".join(_fit(cells.get(c, ""), widths[c]) for c in columns).rstrip()

    header = line({c: c for c in columns})
    return "\n".join([header, *(line(r) for r in rows)])


def _fit(text: str, width: int) -> str:
    return f"{text:<{width}}" if len(text) <= width else text[: width - 1] + "…"
