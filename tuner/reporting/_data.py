"""Compute what a report shows: plain data, no figures, no printing."""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any

from tuner import records
from tuner.errors import ReportError
from tuner.execution.epoch_budget import trial_epochs
from tuner.search.described import decisions_line, search_line
from tuner.search.importance import compare_with_declared, measure_importance
from tuner.search.objectives import is_feasible
from tuner.search.strategy import stage_decisions
from tuner.specs.param import unstored

if TYPE_CHECKING:
    import optuna

SCHEMA = "tuner.report/1"
# A report measures importance from 20 trials on, on learning curves when most trials were
# pruned, and says when the intervals are wide; acting on importance (the staged strategy's
# freezing) waits for 4 trials per parameter (tuner.search.importance.min_trials_for).
REPORT_MIN_TRIALS = 20
STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")


def build(study: optuna.Study, **importance_options: Any) -> dict[str, Any]:
    """The whole report as a JSON-able mapping (schema in ``tuner.reporting``).

    A study of several objectives gets a ``pareto`` part; the rest shows its primary
    objective alone.
    """
    from tuner.reporting import _pareto

    if len(study.directions) > 1:
        data = build(_pareto.primary_view(study), **importance_options)
        data["pareto"] = _pareto.section(study, data["importance"], **importance_options)
        return data
    trials = study.get_trials(deepcopy=False)
    if not trials:
        raise ReportError(f"study '{study.study_name}' has no trials yet; run it first")
    attrs = study.user_attrs
    space = _space(attrs)
    importance = measure_importance(
        study, **{"curves": True, "min_trials": REPORT_MIN_TRIALS, **importance_options}
    )
    stages = stage_decisions(study)
    tiers = space.tiers() if space else {}
    notes = _notes(importance)
    if not space:
        notes.append(
            "the study records no search space (user attr tuner_space): declared tiers unknown"
        )
    return {
        "schema": SCHEMA,
        "study": {
            "name": study.study_name,
            "direction": study.direction.name.lower(),
            "metric": metric_name(study),
            "n_trials": len(trials),
        },
        "summary": summary(study),
        "importance": importance,
        "declared_vs_measured": {
            "space": space.name if space else None,
            "rows": compare_with_declared(importance, tiers),
        },
        "batch_size": batch_size_table(study),
        "search": {"line": search_line(study), "decisions": decisions_line(study, stages)},
        "stages": stages,
        "notes": notes,
    }


def metric_name(study: optuna.Study) -> str:
    """The metric's name: Optuna's metric_names, else the spec's metric, else 'value'."""
    names = getattr(study, "metric_names", None)
    if names and names[0]:
        return str(names[0])
    spec = study.user_attrs.get(records.SPEC)
    if isinstance(spec, dict) and spec.get("metric"):
        return str(spec["metric"])
    return "value"


def summary(study: optuna.Study) -> dict[str, Any]:
    """Direction, best trial, trials by state, time, epochs saved by pruning, failures."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    states = Counter(t.state.name for t in trials)
    complete = [
        t for t in trials if t.state == TrialState.COMPLETE and _finite(t.value) and is_feasible(t)
    ]
    best = None
    if complete:
        pick = min if study.direction.name == "MINIMIZE" else max
        b = pick(complete, key=lambda t: float(t.value))  # type: ignore[arg-type]
        space = _space(study.user_attrs)
        best = {
            "trial": b.number,
            "value": b.value,
            "params": dict(b.params),
            "values": space.values_from_stored(b.params) if space else dict(b.params),
        }
    return {
        "direction": study.direction.name.lower(),
        "metric": metric_name(study),
        "best": best,
        "states": {s: states.get(s, 0) for s in STATES},
        "time": _time(trials),
        "epochs": epochs_saved(study),
        "failures": failures(trials),
        "out_of_memory": out_of_memory_sizes(study, trials),
    }


def trial_seconds(trial: optuna.trial.FrozenTrial) -> float | None:
    """Training time of a trial: user attr ``seconds``, else its duration."""
    value = trial.user_attrs.get(records.SECONDS)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    if trial.datetime_start and trial.datetime_complete:
        return (trial.datetime_complete - trial.datetime_start).total_seconds()
    return None


def epochs_saved(study: optuna.Study) -> dict[str, Any]:
    """Epochs trained against the epochs a run without pruning would have trained.

    Without pruning, a pruned trial would have trained ``max_epochs``; complete and failed
    trials train what they trained either way. ``max_epochs`` comes from the study's user
    attr, else it is estimated as the most epochs any trial trained.
    """
    finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    trained = sum(trial_epochs(t) for t in finished)
    max_epochs = study.user_attrs.get(records.MAX_EPOCHS)
    source: str | None = "study"
    if not isinstance(max_epochs, int):
        max_epochs = max((trial_epochs(t) for t in finished), default=0) or None
        source = "observed maximum" if max_epochs else None
    full = sum(
        max(max_epochs or 0, trial_epochs(t)) if t.state.name == "PRUNED" else trial_epochs(t)
        for t in finished
    )
    return {
        "max_epochs": max_epochs,
        "max_epochs_source": source,
        "trained": trained,
        "without_pruning": full,
        "saved": full - trained,
        "saved_fraction": (full - trained) / full if full else 0.0,
    }


def failures(trials: list[optuna.trial.FrozenTrial]) -> list[dict[str, Any]]:
    """Failed trials grouped by ``fail_reason``, most common first."""
    groups: dict[str, list[int]] = defaultdict(list)
    for t in trials:
        if t.state.name == "FAIL":
            reason = t.user_attrs.get(records.FAIL_REASON) or "no reason recorded"
            groups[str(reason)].append(t.number)
    return [
        {"reason": r, "count": len(n), "trials": n[:20]}
        for r, n in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    ]


def out_of_memory_sizes(
    study: optuna.Study, trials: list[optuna.trial.FrozenTrial]
) -> list[dict[str, Any]]:
    """Trials out of memory counted per batch size and units (None where not searched):
    where the memory wall of the device is. Most common first."""
    space = _space(study.user_attrs)
    counts: Counter[tuple[Any, Any]] = Counter()
    for t in trials:
        if t.state.name == "FAIL" and t.user_attrs.get(records.FAIL_REASON) == "out of memory":
            values = space.values_from_stored(t.params) if space else dict(t.params)
            counts[(values.get("batch_size"), values.get("units"))] += 1
    return [
        {"batch_size": batch, "units": units, "count": n}
        for (batch, units), n in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
    ]


def batch_size_param(study: optuna.Study) -> tuple[str, Any] | None:
    """The stored name of the batch-size parameter and a function to its model value."""
    names = {p for t in study.get_trials(deepcopy=False) for p in t.params}
    for stored in sorted(names):
        name, to_value = unstored(stored)
        if name == "batch_size":
            return stored, to_value
    return None


def batch_points(study: optuna.Study) -> list[dict[str, Any]]:
    """Per finished trial with a batch size: batch size, seconds per epoch, metric value."""
    found = batch_size_param(study)
    if not found:
        return []
    stored, to_value = found
    points = []
    for t in study.get_trials(deepcopy=False):
        if stored not in t.params or not t.state.is_finished():
            continue
        seconds, epochs = trial_seconds(t), trial_epochs(t)
        value = t.value if t.state.name == "COMPLETE" and _finite(t.value) else None
        points.append(
            {
                "trial": t.number,
                "batch_size": to_value(t.params[stored]),
                "seconds_per_epoch": seconds / epochs if seconds is not None and epochs else None,
                "value": value,
                "state": t.state.name,
            }
        )
    return points


def batch_size_table(study: optuna.Study) -> list[dict[str, Any]] | None:
    """Median seconds per epoch and metric per batch size (None: batch size not searched)."""
    points = batch_points(study)
    if not points:
        return None
    by_size: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for p in points:
        by_size[p["batch_size"]].append(p)
    rows = []
    for size in sorted(by_size):
        group = by_size[size]
        spe = [p["seconds_per_epoch"] for p in group if p["seconds_per_epoch"] is not None]
        values = [p["value"] for p in group if p["value"] is not None]
        rows.append(
            {
                "batch_size": size,
                "n_trials": len(group),
                "median_seconds_per_epoch": statistics.median(spe) if spe else None,
                "median_value": statistics.median(values) if values else None,
            }
        )
    return rows


def curves(study: optuna.Study, *, max_curves: int = 600) -> dict[str, Any]:
    """Learning curves (intermediate values) by state, at most ``max_curves`` of them.

    When there are more, the best complete trials and an even spread of the others are
    kept, so that the picture stays readable and the HTML small.
    """
    trials = [t for t in study.get_trials(deepcopy=False) if t.intermediate_values]
    total = len(trials)
    if total > max_curves:
        step = total / max_curves
        trials = [trials[int(i * step)] for i in range(max_curves)]
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in trials:
        steps = sorted(t.intermediate_values)
        out[t.state.name].append(
            {"trial": t.number, "steps": steps, "values": [t.intermediate_values[s] for s in steps]}
        )
    return {"total": total, "shown": len(trials), "by_state": dict(out)}


def timeline(study: optuna.Study) -> list[dict[str, Any]]:
    """Start and end of each started trial (seconds since the first start), per worker."""
    started = [(t, t.datetime_start) for t in study.get_trials(deepcopy=False) if t.datetime_start]
    if not started:
        return []
    origin = min(start for _, start in started)
    latest = max((t.datetime_complete or start) for t, start in started)
    rows = []
    for t, start in started:
        end = t.datetime_complete or latest
        rows.append(
            {
                "trial": t.number,
                "worker": str(t.user_attrs.get(records.WORKER) or "unknown"),
                "start": (start - origin).total_seconds(),
                "end": (end - origin).total_seconds(),
                "state": t.state.name,
            }
        )
    return rows


def top_params(
    data: dict[str, Any], study: optuna.Study, k: int, *, min_distinct: int = 1
) -> list[str]:
    """The ``k`` most important parameters that Optuna's plots can draw for this study.

    Most important first (by name when importance was not measured), keeping only those
    with at least ``min_distinct`` distinct values among the complete trials of finite
    value (the trials Optuna plots). In a study shaped like the shipped specs make, most
    trials are pruned: a conditional parameter seen only in pruned or failed trials makes
    Optuna refuse the whole plot, and one seen with a single value gives a contour of
    nothing (and a warning).
    """
    seen: dict[str, set[str]] = defaultdict(set)
    for t in study.get_trials(deepcopy=False):
        if t.state.name == "COMPLETE" and _finite(t.value):
            for name, value in t.params.items():
                seen[name].add(repr(value))
    measured = [p["name"] for p in data["importance"]["params"]]
    ranked = measured + sorted(set(seen) - set(measured))
    return [name for name in ranked if len(seen.get(name, ())) >= min_distinct][:k]


def _time(trials: list[optuna.trial.FrozenTrial]) -> dict[str, Any]:
    seconds = [s for s in (trial_seconds(t) for t in trials if t.state.is_finished()) if s]
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    wall = (max(ends) - min(starts)).total_seconds() if starts and ends else None
    return {
        "total_seconds": sum(seconds),
        "wall_seconds": wall,
        "per_trial_mean": statistics.fmean(seconds) if seconds else None,
        "per_trial_median": statistics.median(seconds) if seconds else None,
        "per_trial_max": max(seconds) if seconds else None,
    }


def _notes(importance: dict[str, Any]) -> list[str]:
    notes = []
    if importance["status"] != "ok":
        notes.append(str(importance["message"]))
        return notes
    settings = importance["settings"]
    at = importance.get("measured_at")
    if at:
        notes.append(
            f"importance measured on the values {at['n_trials']} trials reported at epoch "
            f"{at['step'] + 1} (only {importance['n_complete']} trained to the end): pruned "
            "trials' learning curves count"
            + (
                f"; {at['n_diverged']} diverged trial(s) count (at the worst value there, "
                "if they diverged before it)"
                if at["n_diverged"]
                else ""
            )
        )
    per_param = importance["n_used"] / max(1, len(importance["searched"]))
    if per_param < 4:
        notes.append(
            f"{importance['n_used']} trials for {len(importance['searched'])} searched "
            "parameters (fewer than 4 each): the intervals are wide; trust a parameter's "
            "rank only where its interval says so"
        )
    if importance["n_used"] < importance["n_complete"]:
        notes.append(
            f"importance used a random {importance['n_used']} of "
            f"{importance['n_complete']} complete trials (max_trials={settings['max_trials']})"
        )
    fanova = importance["evaluators"].get("fanova")
    if fanova and fanova["n_trials"] < importance["n_used"]:
        notes.append(
            f"fANOVA used {fanova['n_trials']} of them, {settings['n_trees']} trees of depth "
            f"{settings['fanova_max_depth']}, {settings['fanova_bootstrap']} bootstrap replicates"
        )
    conditional = [p["name"] for p in importance["params"] if p["conditional"]]
    if conditional:
        notes.append(
            f"conditional parameters ({', '.join(conditional)}) appear in only some trials: "
            "PED-ANOVA measures them per regime; fANOVA and mean decrease impurity cover only "
            "parameters present in every trial"
        )
    for info in importance["evaluators"].values():
        if info["error"]:
            notes.append(f"{info['label']} did not run: {info['error']}")
    return notes


def _space(attrs: dict[str, Any]) -> Any:
    raw = attrs.get(records.SPACE)
    if not raw:
        return None
    from tuner.specs.space import SearchSpace

    try:
        return SearchSpace.model_validate(raw)
    except ValueError:  # a space written by another version: report without tiers
        return None


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
