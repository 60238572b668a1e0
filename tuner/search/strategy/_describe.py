"""Stage rows (from :func:`tuner.search.strategy.stage_decisions`) in words, for people.

One place for the wording, so ``tuner studies show`` and the report say the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

STAGE_COLUMNS = ("stage", "tiers", "adds", "trials", "frozen", "narrowed", "evidence")


def stage_cells(row: Mapping[str, Any]) -> dict[str, str]:
    """One stage as short texts keyed by :data:`STAGE_COLUMNS`.

    Example:
        >>> from tuner.search.strategy import stage_decisions
        >>> stage_cells(stage_decisions(staged_study)[2])["narrowed"]
        'batch_size to [16, 64]'
    """
    return {
        "stage": str(row["stage"]),
        "tiers": ",".join(str(t) for t in row["tiers"]),
        "adds": ", ".join(row["adds"]) or "-",
        "trials": _trials(row),
        "frozen": _values(row.get("frozen")),
        "narrowed": ", ".join(
            f"{name} to [{_num(low)}, {_num(high)}]"
            for name, (low, high) in (row.get("narrowed") or {}).items()
        )
        or "-",
        "evidence": _evidence(row),
    }


def stage_line(row: Mapping[str, Any]) -> str:
    """One stage in one line, for a ``field  value`` table."""
    cells = stage_cells(row)
    return "; ".join(
        [
            f"tiers {cells['tiers']} (adds {cells['adds']})",
            f"trials {cells['trials']}",
            f"frozen {cells['frozen']}",
            f"narrowed {cells['narrowed']}",
            cells["evidence"],
        ]
    )


def _trials(row: Mapping[str, Any]) -> str:
    span = f"{row['start']} on" if row["end"] is None else f"{row['start']}-{row['end'] - 1}"
    return f"{span} ({row['n_trials']} ran)"


def _values(values: Mapping[str, Any] | None) -> str:
    return ", ".join(f"{name}={_num(v)}" for name, v in (values or {}).items()) or "-"


def _evidence(row: Mapping[str, Any]) -> str:
    if not row["decided"]:
        return "not reached yet"
    evidence = row.get("evidence")
    if evidence is None:
        return "first stage: nothing measured yet"
    if evidence["status"] != "ok":
        return f"nothing decided: {evidence['message']}"
    measured = ", ".join(
        f"{p['name']} {_num(p['importance'])} [{_num(p['low'])}, {_num(p['high'])}]"
        for p in evidence["params"]
    )
    rule = evidence["rule"]
    return (
        f"importance on {evidence['n_used']} trials: {measured} "
        f"(freeze below {_num(rule['freeze_below'])}, narrow above {_num(rule['narrow_above'])})"
    )


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
