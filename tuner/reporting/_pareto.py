"""The report's Pareto section, for studies of several objectives: data, figure, text.

A study of several objectives is reported as two parts. This section: the Pareto front
(table and Optuna's scatter, feasible against infeasible, dominated trials faded) and
importance measured against each objective, with the declared-tier verdict per
objective. The rest of the report (summary, importance, plots) is the usual one, on the
primary objective alone (:func:`tuner.search.objectives.one_objective`).
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from tuner import records
from tuner.outcome.pareto import objectives_of, pareto_front
from tuner.reporting._data import _space
from tuner.reporting._render import _html_table, _md_table, fmt
from tuner.search.importance import compare_with_declared, measure_importance
from tuner.search.objectives import is_feasible, one_objective
from tuner.specs.objectives import primary_metric
from tuner.trial.measures import LATENCY_REPEATS, LATENCY_WARMUP

if TYPE_CHECKING:
    import optuna
    import plotly.graph_objects as go

MAX_SCATTER_OBJECTIVES = 3  # Optuna's Pareto plot draws 2 or 3 objectives


def primary_view(study: optuna.Study) -> optuna.Study:
    """The study with its primary objective alone (the study itself if it has one)."""
    if len(study.directions) == 1:
        return study
    objectives = objectives_of(study)
    return one_objective(study, objectives.index(primary_metric(objectives)))


def section(
    study: optuna.Study, primary: dict[str, Any], **importance_options: Any
) -> dict[str, Any]:
    """The ``pareto`` part of the report data (schema in ``tuner.reporting``).

    ``primary`` is the importance already measured on the primary objective; the others
    are measured here, each on a single-objective copy of the study.
    """
    from optuna.trial import TrialState

    objectives = objectives_of(study)
    main = primary_metric(objectives)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    feasible = [t for t in complete if is_feasible(t)]
    tiers = _tiers(study)
    by_objective = []
    for index, objective in enumerate(objectives):
        importance = (
            primary
            if objective == main
            else measure_importance(one_objective(study, index), **importance_options)
        )
        rows = compare_with_declared(importance, tiers)
        by_objective.append(
            {
                "objective": objective.name,
                "direction": objective.direction,
                "status": importance["status"],
                "message": importance["message"],
                "rows": rows,
            }
        )
    return {
        "objectives": [{"name": o.name, "direction": o.direction} for o in objectives],
        "primary": main.name,
        "n_complete": len(complete),
        "n_feasible": len(feasible),
        "n_infeasible": len(complete) - len(feasible),
        "front": [t.row() for t in pareto_front(study)],
        "latency_batch_size": _latency_batch_size(study),
        "importance": by_objective,
    }


def figure(study: optuna.Study, data: dict[str, Any]) -> dict[str, Any]:
    """The Pareto front as a scatter (Optuna's), in the report's figure form."""
    pareto = data["pareto"]
    names = [o["name"] for o in pareto["objectives"]]
    fig: go.Figure | None = None
    if not pareto["front"]:
        note = "no complete, feasible trial yet"
    elif len(names) > MAX_SCATTER_OBJECTIVES:
        note = f"{len(names)} objectives: the scatter draws 2 or 3; the table lists the front"
    else:
        from optuna.visualization import plot_pareto_front

        fig = _styled(plot_pareto_front(study, target_names=names))
        note = "the front in red; dominated trials faded"
        if pareto["n_infeasible"]:
            note += f"; {pareto['n_infeasible']} infeasible trials as grey crosses, never on it"
    return {"id": "pareto", "title": "Pareto front", "figure": fig, "note": note}


# Optuna's scatter tells its traces apart by hover label only, and colours each by trial
# number (the front's first trial nearly white); one colour per kind reads at a glance.
_STYLES = {
    "Best Trial": ("Pareto front", {"color": "#d62728", "size": 9}, 1.0),
    "Feasible Trial": ("dominated", {"color": "#1f77b4", "size": 7}, 0.3),
    "Trial": ("dominated", {"color": "#1f77b4", "size": 7}, 0.3),
    "Infeasible Trial": ("infeasible", {"color": "#7f7f7f", "size": 7, "symbol": "x"}, 0.6),
}


def _styled(fig: go.Figure) -> go.Figure:
    for trace in fig.data:
        label = str(trace.hovertemplate or "").rpartition("<extra>")[2].removesuffix("</extra>")
        if label in _STYLES:
            name, marker, opacity = _STYLES[label]
            trace.update(name=name, showlegend=True, opacity=opacity)
            trace.marker = {**marker, "line": {"color": "white", "width": 0.5}}
    fig.update_layout(height=460, margin={"t": 50}, showlegend=True, title=None)
    return fig


def html_section(data: dict[str, Any]) -> str:
    """The section as HTML: what the report shows, the front, importance per objective."""
    esc = html.escape
    pareto = data["pareto"]
    parts = ['<section id="pareto"><h2>Pareto front</h2>']
    parts += [f"<p>{esc(line)}</p>" for line in _lines(pareto)]
    parts.append(_html_table(*front_rows(pareto)))
    parts.append("<h3>Importance per objective</h3>")
    parts.append(_html_table(*importance_rows(pareto)))
    parts.append("</section>")
    return "\n".join(parts)


def markdown_lines(data: dict[str, Any]) -> list[str]:
    """The section as Markdown lines."""
    pareto = data["pareto"]
    out = ["", "## Pareto front", "", *_lines(pareto), ""]
    out += _md_table(*front_rows(pareto))
    out += ["", "### Importance per objective", "", *_md_table(*importance_rows(pareto))]
    return out


def front_rows(pareto: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the front: trial, objectives, other measures."""
    names = [o["name"] for o in pareto["objectives"]]
    measures = list(dict.fromkeys(k for r in pareto["front"] for k in r if k not in names))
    measures = [m for m in measures if m not in ("trial", "params")]
    header = ["trial", *names, *measures]
    return header, [[fmt(_whole(r.get(c))) for c in header] for r in pareto["front"]]


def _whole(value: Any) -> Any:
    """A count Optuna stored as a float (n_params 12887.0) shown as the count it is."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def importance_rows(pareto: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """One row per parameter: its declared tier, then rank and verdict per objective."""
    params = list(dict.fromkeys(r["name"] for o in pareto["importance"] for r in o["rows"]))
    tiers = {r["name"]: r["declared_tier"] for o in pareto["importance"] for r in o["rows"]}
    header = ["parameter", "declared tier"]
    header += [f"{o['objective']}: rank, importance, verdict" for o in pareto["importance"]]
    rows = []
    for name in params:
        cells = [name, fmt(tiers.get(name))]
        for objective in pareto["importance"]:
            row = next((r for r in objective["rows"] if r["name"] == name), None)
            cells.append(_cell(row))
        rows.append(cells)
    return header, rows


def _cell(row: dict[str, Any] | None) -> str:
    if row is None or row["rank"] is None:
        return f"- ({row['verdict']})" if row else "-"
    return f"{row['rank']}, {fmt(row['importance'], 2)}, {row['verdict']}"


def _lines(pareto: dict[str, Any]) -> list[str]:
    goals = ", ".join(f"{o['name']} ({o['direction']})" for o in pareto["objectives"])
    lines = [
        f"Objectives: {goals}. {len(pareto['front'])} trials on the front, of "
        f"{pareto['n_feasible']} complete and feasible ({pareto['n_infeasible']} infeasible).",
        f"The other sections of this report show the primary objective, {pareto['primary']}, "
        "alone; pruning was off (Optuna's pruners take one objective).",
    ]
    if pareto["latency_batch_size"] is not None:
        lines.append(
            f"latency_ms: median of {LATENCY_REPEATS} predictions of "
            f"{pareto['latency_batch_size']} row(s) each, after {LATENCY_WARMUP} warm-up calls, "
            "on the trial's device."
        )
    for objective in pareto["importance"]:
        if objective["status"] != "ok":
            lines.append(f"Importance for {objective['objective']}: {objective['message']}.")
    return lines


def _latency_batch_size(study: optuna.Study) -> int | None:
    """Rows per prediction behind ``latency_ms`` (None: the study did not measure it)."""
    spec = study.user_attrs.get(records.SPEC) or {}
    size = (spec.get("training") or {}).get("latency_batch_size")
    return int(size) if isinstance(size, int) else None


def _tiers(study: optuna.Study) -> dict[str, int]:
    space = _space(study.user_attrs)
    return space.tiers() if space else {}
