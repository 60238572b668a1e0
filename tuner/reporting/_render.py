"""Turn report data into text: Markdown for terminals, a self-contained HTML page."""

from __future__ import annotations

import html
import json
from typing import Any


def fmt(value: Any, digits: int = 4) -> str:
    """A short human form of a number (or '-' for None)."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}g}"


def duration(seconds: float | None) -> str:
    """``3h 02m``, ``4m 05s`` or ``12.3s``."""
    if seconds is None:
        return "-"
    if seconds >= 3600:
        return f"{int(seconds // 3600)}h {int(seconds % 3600 // 60):02d}m"
    if seconds >= 60:
        return f"{int(seconds // 60)}m {int(seconds % 60):02d}s"
    return f"{seconds:.1f}s"


def summary_lines(data: dict[str, Any]) -> list[str]:
    """The summary as plain sentences, shared by Markdown and HTML."""
    s = data["summary"]
    lines = [f"Study {data['study']['name']}: {s['direction']} {s['metric']}."]
    best = s["best"]
    if best:
        params = ", ".join(f"{k}={fmt(v)}" for k, v in best["values"].items())
        lines.append(f"Best {s['metric']} {fmt(best['value'])} (trial {best['trial']}): {params}.")
    else:
        lines.append("No complete trial yet, so no best value.")
    states = ", ".join(f"{n} {k.lower()}" for k, n in s["states"].items() if n)
    lines.append(f"Trials: {data['study']['n_trials']} ({states}).")
    t = s["time"]
    lines.append(
        f"Time: {duration(t['total_seconds'])} of training in total, "
        f"{duration(t['per_trial_median'])} median per trial "
        f"(wall clock {duration(t['wall_seconds'])})."
    )
    e = s["epochs"]
    if e["max_epochs"]:
        lines.append(
            f"Epochs: {fmt(e['trained'])} trained; without pruning {fmt(e['without_pruning'])} "
            f"({e['max_epochs']} per trial, {e['max_epochs_source']}): pruning saved "
            f"{fmt(e['saved'])} ({e['saved_fraction']:.0%})."
        )
    for f in s["failures"]:
        lines.append(f"Failed: {f['count']} x {f['reason']} (trials {_numbers(f['trials'])}).")
    if s["out_of_memory"]:
        sizes = "; ".join(
            f"batch size {o['batch_size'] or '-'}, units {o['units'] or '-'}: {o['count']}"
            for o in s["out_of_memory"]
        )
        lines.append(f"Out of memory, trials per batch size and units: {sizes}.")
    return lines


def importance_rows(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the importance table."""
    imp = data["importance"]
    labels = [info["label"] for info in imp["evaluators"].values()]
    pct = round(100 * imp["settings"]["interval"])
    header = ["rank", "parameter", "importance", f"{pct}% interval", *labels, "trials"]
    rows = []
    for p in imp["params"]:
        evs = [
            fmt(p["by_evaluator"][k]["importance"], 2) if k in p["by_evaluator"] else "-"
            for k in imp["evaluators"]
        ]
        rank = str(p["rank"]) + (f" ({p['rank_low']}-{p['rank_high']})" if _spread(p) else "")
        trials = f"{p['n_trials']}" + (" (conditional)" if p["conditional"] else "")
        rows.append([rank, p["name"], fmt(p["importance"], 2), _interval(p), *evs, trials])
    return header, rows


def declared_rows(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the declared-vs-measured table."""
    header = [
        "parameter",
        "declared tier",
        "expected ranks",
        "measured rank",
        "interval",
        "verdict",
    ]
    rows = []
    for r in data["declared_vs_measured"]["rows"]:
        exp = r["expected_ranks"]
        rank = "-" if r["rank"] is None else f"{r['rank']} ({r['rank_low']}-{r['rank_high']})"
        rows.append(
            [
                r["name"],
                fmt(r["declared_tier"]),
                "-" if not exp else (str(exp[0]) if exp[0] == exp[1] else f"{exp[0]}-{exp[1]}"),
                rank,
                "-" if r["importance"] is None else _interval(r),
                r["verdict"],
            ]
        )
    return header, rows


def stage_rows(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The staged strategy's stages and decisions as a table."""
    from tuner.search.strategy import STAGE_COLUMNS, stage_cells

    rows = [list(stage_cells(row).values()) for row in data["stages"]]
    return [c.capitalize() for c in STAGE_COLUMNS], rows


_STAGES_NOTE = (
    '<p class="note">Each stage adds the next tier. At a boundary, importance measured on '
    "the stage's trials freezes confidently unimportant parameters at the best trial's "
    "value and narrows the ranges of important ones.</p>"
)


def markdown(data: dict[str, Any]) -> str:
    """The report as Markdown for a terminal (no plots)."""
    data = _escaped(data)
    out = [f"# Report: {data['study']['name']}", "", *[f"- {line}" for line in summary_lines(data)]]
    imp = data["importance"]
    if "pareto" in data:
        from tuner.reporting._pareto import markdown_lines

        out += markdown_lines(data)
    out += ["", "## Importance", ""]
    if imp["status"] != "ok":
        out.append(f"Not measured: {imp['message']}.")
    else:
        out.append(imp["agreement"]["statement"])
        out += ["", *_md_table(*importance_rows(data))]
    out += ["", "## Declared tier vs measured importance", ""]
    if data["declared_vs_measured"]["rows"]:
        out += _md_table(*declared_rows(data))
    else:
        out.append("No parameters to compare.")
    if data["batch_size"]:
        out += ["", "## Batch size", ""]
        out += _md_table(
            ["batch size", "trials", "median s/epoch", f"median {data['study']['metric']}"],
            [
                [
                    fmt(r["batch_size"]),
                    fmt(r["n_trials"]),
                    fmt(r["median_seconds_per_epoch"], 3),
                    fmt(r["median_value"]),
                ]
                for r in data["batch_size"]
            ],
        )
    if data["stages"]:
        out += ["", "## Staged search", "", *_md_table(*stage_rows(data))]
    if data["notes"]:
        out += ["", "## Notes", "", *[f"- {n}" for n in data["notes"]]]
    return "\n".join(out) + "\n"


def page(data: dict[str, Any], figures: list[dict[str, Any]]) -> str:
    """A self-contained HTML page: plotly.js inline, every figure, every table."""
    import plotly.io as pio
    from plotly.offline import get_plotlyjs

    esc = html.escape
    name = esc(data["study"]["name"])
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>tuner report: {name}</title>',
        f"<style>{_CSS}</style>",
        f'<script type="text/javascript">{get_plotlyjs()}</script>',
        "</head><body>",
        f"<h1>Report: {name}</h1>",
        '<section id="summary"><h2>Summary</h2><ul>',
        *[f"<li>{esc(line)}</li>" for line in summary_lines(data)],
        "</ul></section>",
    ]
    if "pareto" in data:
        from tuner.reporting._pareto import html_section

        parts.append(html_section(data))
    parts.append('<section id="importance"><h2>Importance</h2>')
    imp = data["importance"]
    if imp["status"] != "ok":
        parts.append(f'<p class="warn">Not measured: {esc(str(imp["message"]))}.</p>')
    else:
        parts.append(f'<p class="statement">{esc(imp["agreement"]["statement"])}</p>')
        parts.append(_html_table(*importance_rows(data)))
    parts += ['</section><section id="declared"><h2>Declared tier vs measured</h2>']
    parts.append(_html_table(*declared_rows(data), verdict_col=5))
    parts.append("</section>")
    if data["stages"]:
        parts += ['<section id="stages"><h2>Staged search</h2>', _STAGES_NOTE]
        parts += [_html_table(*stage_rows(data)), "</section>"]
    if data["notes"]:
        parts += [
            '<section id="notes"><h2>Notes</h2><ul>',
            *[f"<li>{esc(n)}</li>" for n in data["notes"]],
            "</ul></section>",
        ]
    parts.append('<section id="plots"><h2>Plots</h2>')
    for f in figures:
        parts.append(f'<h3>{esc(f["title"])}</h3><p class="note">{esc(f["note"])}</p>')
        if f["figure"] is None:
            continue
        div = pio.to_html(
            f["figure"],
            full_html=False,
            include_plotlyjs=False,
            div_id=f"plot-{f['id']}",
            config={"displaylogo": False, "responsive": True},
        )
        parts.append(f'<div class="plot" data-plot="{f["id"]}">{div}</div>')
    parts.append("</section>")
    parts.append(
        '<script type="application/json" id="report-data">'
        + json.dumps(data, default=str).replace("</", "<\\/")
        + "</script></body></html>"
    )
    return "\n".join(parts)


_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ddd;padding:.3em .6em}
th{background:#f4f4f4;text-align:left}td{font-variant-numeric:tabular-nums}
.warn{color:#a60}.note{color:#666;font-size:.9em}.statement{font-weight:600}
.v-agrees{color:#1a7f37}.v-more,.v-less{color:#b35900;font-weight:600}.v-not{color:#777}
.plot{margin-bottom:2em}
"""


def _interval(p: dict[str, Any]) -> str:
    return f"{fmt(p['low'], 2)}-{fmt(p['high'], 2)}"


def _spread(p: dict[str, Any]) -> bool:
    return bool(p["rank_low"] != p["rank_high"])


def _numbers(numbers: list[int]) -> str:
    return ", ".join(str(n) for n in numbers[:8]) + (", ..." if len(numbers) > 8 else "")


def _escaped(value: Any) -> Any:
    """Every string (keys too) with &, < and > escaped: names and attributes come from the
    study, and Markdown passes raw HTML (`<script>` as a parameter name) to the page."""
    if isinstance(value, str):
        return html.escape(value, quote=False)
    if isinstance(value, dict):
        return {_escaped(key): _escaped(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_escaped(item) for item in value]
    return value


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    cells = [header, *rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    return [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)]


def _html_table(header: list[str], rows: list[list[str]], verdict_col: int | None = None) -> str:
    esc = html.escape
    out = ["<table><thead><tr>", *[f"<th>{esc(h)}</th>" for h in header], "</tr></thead><tbody>"]
    for row in rows:
        out.append("<tr>")
        for i, cell in enumerate(row):
            cls = f' class="v-{cell.split()[0]}"' if i == verdict_col else ""
            out.append(f"<td{cls}>{esc(cell)}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)
