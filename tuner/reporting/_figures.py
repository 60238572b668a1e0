"""Draw a report's figures (plotly) from a study and the data of ``_data``."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tuner.reporting import _data

if TYPE_CHECKING:
    import optuna
    import plotly.graph_objects as go

COLORS = {"COMPLETE": "#1f77b4", "PRUNED": "#bbbbbb", "FAIL": "#d62728", "RUNNING": "#2ca02c"}
EVALUATOR_COLORS = {
    "ped_anova": "#ff7f0e",
    "fanova": "#2ca02c",
    "mean_decrease_impurity": "#9467bd",
}


def figures(study: optuna.Study, data: dict[str, Any]) -> list[dict[str, Any]]:
    """Every figure of the report: ``{"id", "title", "figure" (or None), "note"}``.

    A figure that cannot be drawn for this study (no batch size searched, one parameter
    only) comes back with ``figure=None`` and a note saying why.
    """
    metric = data["study"]["metric"]
    top = _data.top_params(data, study, 6)
    varied = _data.top_params(data, study, 2, min_distinct=2)
    makers: list[tuple[str, str, Callable[[], tuple[Any, str]]]] = [
        ("history", "Optimization history", lambda: _history(study, metric)),
        ("importance", "Importance with intervals", lambda: _importance(data)),
        ("parallel", "Parallel coordinates", lambda: _parallel(study, metric, top)),
        ("slice", "Slices of the top parameters", lambda: _slice(study, metric, top[:4])),
        ("contour", "Contour of the top two", lambda: _contour(study, metric, varied)),
        ("curves", "Learning curves", lambda: _curves(study, metric)),
        ("timeline", "Trials per worker", lambda: _timeline(study)),
        ("batch_size", "Batch size: time per epoch and metric", lambda: _batch(study, metric)),
    ]
    out = []
    for fid, title, make in makers:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optuna warns on empty plots; the note says it
            fig, note = make()
        if fig is not None:
            # no template: building plotly's template objects cost a second per report
            fig.update_layout(height=460, margin={"t": 50})
        out.append({"id": fid, "title": title, "figure": fig, "note": note})
    return out


def _history(study: optuna.Study, metric: str) -> tuple[go.Figure | None, str]:
    from optuna.trial import TrialState
    from optuna.visualization import plot_optimization_history

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None, "no trial has completed yet"  # Optuna would draw nothing, and warn
    fig = plot_optimization_history(study, target_name=metric)
    return fig, "each dot is a complete trial; the line is the best so far"


def _importance(data: dict[str, Any]) -> tuple[go.Figure | None, str]:
    import plotly.graph_objects as go

    imp = data["importance"]
    if imp["status"] != "ok":
        return None, str(imp["message"])
    rows = list(reversed(imp["params"]))  # most important on top
    names = [r["name"] for r in rows]
    fig = go.Figure()
    fig.add_trace(_bar("consensus", names, rows, "#1f77b4", opacity=0.85))
    for key, info in imp["evaluators"].items():
        ev_rows = [r["by_evaluator"].get(key) for r in rows]
        if any(ev_rows):
            fig.add_trace(
                _bar(info["label"], names, ev_rows, EVALUATOR_COLORS.get(key), opacity=0.6)
            )
    pct = round(100 * imp["settings"]["interval"])
    fig.update_layout(
        barmode="group",
        xaxis_title=f"importance (normalised; bars: {pct}% bootstrap interval)",
        height=max(320, 90 + 60 * len(rows)),
    )
    return fig, (imp["agreement"] or {}).get("statement", "")


def _bar(
    label: str, names: list[str], rows: list[dict[str, Any] | None], color: Any, opacity: float
) -> go.Bar:
    import plotly.graph_objects as go

    x = [r["importance"] if r else None for r in rows]
    plus = [r["high"] - r["importance"] if r else 0 for r in rows]
    minus = [r["importance"] - r["low"] if r else 0 for r in rows]
    return go.Bar(
        name=label,
        y=names,
        x=x,
        orientation="h",
        marker={"color": color, "opacity": opacity},
        error_x={"type": "data", "array": plus, "arrayminus": minus, "visible": True},
    )


def _parallel(study: optuna.Study, metric: str, top: list[str]) -> tuple[go.Figure | None, str]:
    from optuna.visualization import plot_parallel_coordinate

    if not top:
        return None, "no parameter has a value in a complete trial"
    fig = plot_parallel_coordinate(study, params=top, target_name=metric)
    return fig, f"complete trials over the {len(top)} most important parameters"


def _slice(study: optuna.Study, metric: str, top: list[str]) -> tuple[go.Figure | None, str]:
    from optuna.visualization import plot_slice

    if not top:
        return None, "no parameter has a value in a complete trial"
    return plot_slice(study, params=top, target_name=metric), "metric against each parameter"


def _contour(study: optuna.Study, metric: str, top: list[str]) -> tuple[go.Figure | None, str]:
    from optuna.visualization import plot_contour

    if len(top) < 2:
        return None, (
            "a contour needs two parameters that took several values in complete trials; "
            "this study has fewer"
        )
    return plot_contour(study, params=top, target_name=metric), f"{top[0]} against {top[1]}"


def _curves(study: optuna.Study, metric: str) -> tuple[go.Figure | None, str]:
    import plotly.graph_objects as go

    data = _data.curves(study)
    if not data["total"]:
        return None, "no trial reported intermediate values"
    fig = go.Figure()
    styles = {
        "COMPLETE": {"color": COLORS["COMPLETE"], "width": 1.2},
        "PRUNED": {"color": COLORS["PRUNED"], "width": 1, "dash": "dot"},
        "FAIL": {"color": COLORS["FAIL"], "width": 1, "dash": "dash"},
    }
    for state, group in data["by_state"].items():
        xs: list[Any] = []
        ys: list[Any] = []
        ends_x, ends_y = [], []
        for c in group:  # one trace per state, curves separated by None: light SVG
            xs += [*c["steps"], None]
            ys += [*c["values"], None]
            ends_x.append(c["steps"][-1])
            ends_y.append(c["values"][-1])
        style = styles.get(state, {"color": COLORS.get(state, "#888"), "width": 1})
        fig.add_trace(
            go.Scatter(x=xs, y=ys, mode="lines", name=f"{state.lower()} ({len(group)})", line=style)
        )
        if state == "PRUNED":
            fig.add_trace(
                go.Scatter(
                    x=ends_x,
                    y=ends_y,
                    mode="markers",
                    name="pruned here",
                    marker={"symbol": "x", "color": "#7f7f7f", "size": 6},
                )
            )
    fig.update_layout(xaxis_title="epoch", yaxis_title=metric)
    shown = "" if data["shown"] == data["total"] else f" ({data['shown']} of {data['total']})"
    return fig, f"pruned trials dotted grey, ending in a cross{shown}"


def _timeline(study: optuna.Study) -> tuple[go.Figure | None, str]:
    import plotly.graph_objects as go

    rows = _data.timeline(study)
    if not rows:
        return None, "no trial has started"
    fig = go.Figure()
    for state in _data.STATES:
        group = [r for r in rows if r["state"] == state]
        if group:
            fig.add_trace(
                go.Bar(
                    name=state.lower(),
                    y=[r["worker"] for r in group],
                    base=[r["start"] for r in group],
                    x=[max(r["end"] - r["start"], 1e-3) for r in group],
                    orientation="h",
                    marker={"color": COLORS.get(state, "#888")},
                    customdata=[r["trial"] for r in group],
                    hovertemplate="trial %{customdata}<br>%{base:.1f}s + %{x:.1f}s",
                )
            )
    fig.update_layout(barmode="overlay", xaxis_title="seconds since the first trial started")
    workers = len({r["worker"] for r in rows})
    return fig, f"{len(rows)} trials on {workers} worker(s)"


def _batch(study: optuna.Study, metric: str) -> tuple[go.Figure | None, str]:
    from plotly.subplots import make_subplots

    points = _data.batch_points(study)
    if not points:
        return None, "batch size is not searched in this study"
    import plotly.graph_objects as go

    fig = make_subplots(rows=1, cols=2, subplot_titles=("seconds per epoch", metric))
    timed = [p for p in points if p["seconds_per_epoch"] is not None]
    scored = [p for p in points if p["value"] is not None]
    fig.add_trace(
        go.Scatter(
            x=[p["batch_size"] for p in timed],
            y=[p["seconds_per_epoch"] for p in timed],
            mode="markers",
            name="seconds/epoch",
            marker={"color": "#ff7f0e", "opacity": 0.6},
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=[p["batch_size"] for p in scored],
            y=[p["value"] for p in scored],
            mode="markers",
            name=metric,
            marker={"color": COLORS["COMPLETE"], "opacity": 0.6},
        ),
        row=1,
        col=2,
    )
    sizes = sorted({p["batch_size"] for p in points})
    for col in (1, 2):
        fig.update_xaxes(type="log", title_text="batch size", tickvals=sizes, row=1, col=col)
    return fig, "larger batches: fewer, cheaper steps per epoch; smaller: noisier gradients"
