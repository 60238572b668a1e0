"""Study reports: which hyperparameters mattered, how sure we are, and against the tiers.

``report()`` returns the report as JSON-able data and, given ``path``, writes a
self-contained HTML page (plotly.js inline, opens offline). ``render_markdown()`` turns
the data into a terminal summary. The CLI (``tuner report NAME``) wraps both.

JSON schema (``"schema": "tuner.report/1"``); numbers are floats unless marked int::

    {
      "schema": "tuner.report/1",
      "study": {"name": str, "direction": "minimize"|"maximize", "metric": str,
                "n_trials": int},
      "summary": {
        "direction": str, "metric": str,
        "best": null | {"trial": int, "value": float,
                        "params": {stored name: value},      # as Optuna stores them
                        "values": {model name: value}},     # as the model uses them
        "states": {"COMPLETE": int, "PRUNED": int, "FAIL": int, "RUNNING": int,
                   "WAITING": int},
        "time": {"total_seconds", "wall_seconds", "per_trial_mean", "per_trial_median",
                 "per_trial_max"},                          # seconds, null when unknown
        "epochs": {"max_epochs": int|null, "max_epochs_source": "study"|"observed maximum",
                   "trained": int, "without_pruning": int, "saved": int,
                   "saved_fraction": float},                # pruned trials would have
                                                            # trained max_epochs
        "failures": [{"reason": str, "count": int, "trials": [int, ...]}],
        "out_of_memory": [{"batch_size": int|null, "units": int|null, "count": int}]
      },
      "importance": {
        "status": "ok" | "too_few_trials",
        "message": str|null,                 # why not measured, and how many are needed
        "n_complete": int, "min_trials": int, "n_used": int,
        "measured_at": null | {"step": int, "n_trials": int, "n_diverged": int},
                                             # on learning curves, when complete trials
                                             # were too few
        "searched": [str],                   # parameter names seen in any trial
        "settings": {"evaluators", "n_bootstrap", "interval", "max_trials",
                     "max_fanova_trials", "fanova_bootstrap", "n_trees",
                     "fanova_max_depth", "seed"},
        "evaluators": {"ped_anova"|"fanova"|"mean_decrease_impurity":
                       {"label": str, "n_trials": int, "params": [str], "error": str|null}},
        "params": [                          # most important first
          {"name": str, "kind": "float"|"int"|"categorical",
           "conditional": bool,              # absent from some complete trials
           "n_trials": int, "share_of_trials": float,
           "importance": float,              # mean of the evaluators' normalised values
           "low": float, "high": float,      # bootstrap interval (settings.interval)
           "rank": int,                      # 1 = most important
           "rank_low": int, "rank_high": int,  # ranks it could take given the intervals
           "by_evaluator": {key: {"importance", "low", "high", "rank"}}}
        ],
        "agreement": null | {"top_k": int, "agree": bool|null,
                             "top": {key: [str]}, "statement": str}
      },
      "declared_vs_measured": {
        "space": str|null,                   # search space name, null if not recorded
        "rows": [{"name": str, "declared_tier": int|null,
                  "expected_ranks": [int, int]|null,   # ranks the tiers promise
                  "rank", "rank_low", "rank_high": int|null,
                  "importance", "low", "high": float|null,
                  "verdict": "agrees" | "more important than declared"
                           | "less important than declared" | "not enough evidence"
                           | "no declared tier"}]
      },
      "batch_size": null | [{"batch_size": int, "n_trials": int,
                             "median_seconds_per_epoch": float|null,
                             "median_value": float|null}],
      "search": {"line": str|null,           # strategy, sampler, pruner (null: not recorded)
                 "decisions": str},          # what the strategy decided, or why nothing yet
      "stages": [                            # staged strategy only; [] for a flat study
        {"stage": int, "tiers": [int], "adds": [str], "start": int, "end": int|null,
         "n_trials": int, "decided": bool,
         # once decided (see tuner.search.strategy.stage_decisions):
         "frozen", "frozen_all": {name: value}, "narrowed", "ranges": {name: [low, high]},
         "evidence": null | {"status", "message", "n_used", "best_trial", "rule",
                             "params": [{"name", "importance", "low", "high", "action"}]},
         "computed_by": str}
      ],
      "notes": [str],                        # subsampling, conditional params, skipped parts
      "pareto": {                            # studies of several objectives only; the parts
                                             # above then show the primary objective alone
        "objectives": [{"name": str, "direction": str}], "primary": str,
        "n_complete": int, "n_feasible": int, "n_infeasible": int,
        "latency_batch_size": int|null,      # rows per prediction behind latency_ms
        "front": [{"trial": int, <objective>: float, ...,   # best on the primary first
                   <measure>: float, ...,                   # n_params, latency_ms, ...
                   "params": {model name: value}}],
        "importance": [{"objective": str, "direction": str, "status": str,
                        "message": str|null,
                        "rows": [...]}]      # as declared_vs_measured.rows, per objective
      }
    }

How importance is measured (evaluators, bootstrap, cost bounds, conditional parameters)
is described in :mod:`tuner.search.importance`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.errors import ReportError
from tuner.execution.logs import python_entry_point
from tuner.reporting._data import SCHEMA

if TYPE_CHECKING:
    import optuna

__all__ = ["SCHEMA", "ReportError", "load", "render_html", "render_markdown", "report"]


@python_entry_point
def report(
    study_or_name: optuna.Study | str,
    *,
    storage: Any = None,
    path: str | Path | None = None,
    n_bootstrap: int = 20,
    max_trials: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Build a study's report; with ``path``, also write it as a self-contained HTML page.

    Args:
        study_or_name: An Optuna study, or the name of one in ``storage``.
        storage: Storage URL or object; needed when a name is given.
        path: Where to write the HTML report (parent folders must exist).
        n_bootstrap: Bootstrap replicates behind each importance interval.
        max_trials: Importance uses at most this many complete trials (subsampled).
        seed: Seed of subsampling, resampling and the forests.

    Returns:
        The report data; its shape is the JSON schema in this module's docstring.

    Raises:
        StudyNotFoundError: No study of that name in ``storage``.
        ReportError: The study is empty.

    Example:
        >>> data = report("digits-mlp", storage="sqlite:///tuner.db",
        ...               path="digits-mlp-report.html")
        >>> data["importance"]["message"]
        'importance needs at least 20 complete trials or trials reporting a common epoch; ...'
        >>> data = report(staged_study, path="staged-report.html")
        >>> data["importance"]["params"][0]["name"]
        'learning_rate'
    """
    from tuner.reporting import _data

    study = load(study_or_name, storage=storage)
    data = _data.build(study, n_bootstrap=n_bootstrap, max_trials=max_trials, seed=seed)
    if path is not None:
        render_html(study, data, path)
    return data


def load(study_or_name: optuna.Study | str, *, storage: Any = None) -> optuna.Study:
    """The study itself, or the one of that name in ``storage`` (a URL or a storage)."""
    from tuner.storage import load_study

    if not isinstance(study_or_name, str):
        return study_or_name
    if storage is None:
        raise ReportError(f"a storage is needed to find study '{study_or_name}' by name")
    return load_study(study_or_name, storage=storage)


def render_html(study: optuna.Study, data: dict[str, Any], path: str | Path) -> Path:
    """Write the HTML page for ``data`` (from :func:`report`) to ``path``; return the path."""
    from tuner.reporting import _figures, _pareto, _render

    path = Path(path)
    figures = _figures.figures(_pareto.primary_view(study), data)
    if "pareto" in data:
        figures.insert(0, _pareto.figure(study, data))
    path.write_text(_render.page(data, figures), encoding="utf-8")
    return path


def render_markdown(data: dict[str, Any]) -> str:
    """The report as Markdown text: summary, importance table, declared vs measured."""
    from tuner.reporting import _render

    return _render.markdown(data)
