"""``tuner.tune``: Keras models tuned from a study spec, or from pieces (a space, data and
a model builder)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tuner.errors import SpecError
from tuner.execution.logs import python_entry_point
from tuner.outcome.results import TuneResult
from tuner.specs.shipped import find_file


@python_entry_point
def tune(
    spec: str | Path | None = None,
    *,
    space: str | Path | None = None,
    data: Sequence[Any] | Mapping[str, Any] | str | None = None,
    build_model: Callable[..., Any] | None = None,
    family: str = "mlp",
    metric: str | None = None,
    direction: str | None = None,
    metrics: Sequence[Mapping[str, str]] | None = None,
    constraints: Mapping[str, Mapping[str, float]] | None = None,
    max_epochs: int | None = None,
    training: Mapping[str, Any] | None = None,
    n_trials: int | None = None,
    timeout: float | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    seed: int | None = None,
    tiers: str | Sequence[int] | None = None,
    sampler: str | None = None,
    pruner: str | None = None,
    strategy: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: Sequence[Callable[..., None]] = (),
) -> TuneResult:
    """Run a study and return its best configuration.

    Give either ``spec`` (a ``studies/*.yaml`` file or a shipped spec's name such as
    ``"digits-mlp"``; keyword arguments override it) or the pieces: ``space`` (a
    ``search_spaces/*.yaml`` file or a shipped space's name such as
    ``"importance-ranked"``), ``data`` (arrays
    ``(x_train, y_train, x_val, y_val)``, a dataset name such as ``"digits"``, or a data
    mapping as in a spec, e.g. ``{"source": "csv", "path": "houses.csv", "target": "price"}``)
    and optionally ``build_model(params, *, input_shape, n_outputs, task) -> keras.Model``,
    which receives a plain mapping of chosen values. The model is compiled, trained,
    pruned and recorded exactly as the built-in families are. ``strategy`` (``"flat"`` or
    ``"staged"``, see :mod:`tuner.search.strategy`) overrides the spec's.

    ``metrics`` (``[{"name": "val_accuracy", "direction": "maximize"}, {"name": "n_params",
    "direction": "minimize"}]``) optimizes several measures at once: ``result.pareto`` then
    holds the Pareto front and ``result.best_*`` raise. ``constraints`` (``{"n_params":
    {"max": 2e5}}``) makes trials outside the limits infeasible: never best, never on the
    front, and pruned before training when the limit is known then.

    ``result.best_params`` holds the values the best trial searched, by model name (for
    the baseline trial, the defaults of the searched parameters); ``result.best_config``
    every value. Quiet unless the caller configures ``logging``; errors name these
    arguments (``resume=True``, ``overwrite=True``), not CLI flags.

    ``training`` sets keys of the spec's ``training`` section, e.g. the GPU settings
    ``{"mixed_precision": True, "jit_compile": "auto", "memory_growth": True,
    "gpu_memory_limit_mb": 4096}`` (recorded on the study; ignored on a CPU, with one
    logged line).

    Example:
        >>> import tuner
        >>> result = tuner.tune("studies/digits-mlp.yaml", n_trials=2, max_epochs=1)
        >>> result.best_value, result.n_trials
        (0..., 2)

        Your own arrays and model (a plain Keras builder):

        >>> import keras
        >>> from sklearn.datasets import load_digits
        >>> x, y = load_digits(return_X_y=True)
        >>> x_train, y_train, x_val, y_val = x[:1400] / 16, y[:1400], x[1400:] / 16, y[1400:]
        >>> def my_build(params, *, input_shape, n_outputs, task):
        ...     return keras.Sequential([keras.Input(input_shape),
        ...                              keras.layers.Dense(params["units"], activation="relu"),
        ...                              keras.layers.Dense(n_outputs, activation="softmax")])
        >>> result = tuner.tune(space="search_spaces/importance-ranked.yaml",
        ...                     data=(x_train, y_train, x_val, y_val), build_model=my_build,
        ...                     metric="val_accuracy", direction="maximize", n_trials=1,
        ...                     max_epochs=1, storage="sqlite:///my.db")
        >>> result.best_params, result.best_value, result.study
        ({'optimizer': 'adam', 'learning_rate': 0.001, ...}, 0..., <optuna.study.study.Study ...>)

        Accuracy and size at once, with at most 50,000 weights:

        >>> result = tuner.tune("studies/digits-mlp.yaml", n_trials=1, max_epochs=1,
        ...                     study_name="digits-mlp-size", strategy="flat",
        ...                     metrics=[{"name": "val_accuracy", "direction": "maximize"},
        ...                              {"name": "n_params", "direction": "minimize"}],
        ...                     constraints={"n_params": {"max": 50_000}})
        >>> [(t.number, t.values) for t in result.pareto]
        [(0, {'val_accuracy': 0..., 'n_params': 26122.0})]
    """
    from tuner.execution.run import execute, gpu_options, prepare_run
    from tuner.execution.supervisor import detect_gpus
    from tuner.outcome.results import summarize
    from tuner.specs.spec import load_spec, resolve_spec
    from tuner.storage import resolve_storage_url
    from tuner.trial.data import dataset_from_arrays
    from tuner.trial.keras_env import gpu_notice

    tier_text = (
        ",".join(map(str, tiers)) if tiers is not None and not isinstance(tiers, str) else tiers
    )
    arrays = data if isinstance(data, Sequence) and not isinstance(data, str) else None
    if spec is not None:
        if space is not None or data is not None:
            raise SpecError("give either a spec file or space= and data=, not both")
        resolved = load_spec(spec, tiers=tier_text)
        raw = resolved.spec.model_dump(mode="json")
        base_dir = resolved.base_dir
    else:
        if space is None or data is None:
            raise SpecError("tune() needs a spec file, or both space= and data=")
        raw = _spec_from_pieces(space=space, data=data, arrays=arrays is not None, family=family)
        base_dir = Path.cwd()
    _apply_overrides(
        raw,
        metric=metric,
        direction=direction,
        metrics=metrics,
        constraints=constraints,
        max_epochs=max_epochs,
        training=training,
        sampler=sampler,
        pruner=pruner,
        strategy=strategy,
        builder=build_model,
    )
    resolved = resolve_spec(raw, base_dir=base_dir, source=str(spec or "tune()"), tiers=tier_text)
    dataset = None
    if arrays is not None:
        if len(arrays) != 4:
            raise SpecError("data= as arrays must be (x_train, y_train, x_val, y_val)")
        dataset = dataset_from_arrays(*arrays, task=resolved.spec.data.task)
    url = resolve_storage_url(storage, spec_storage=resolved.spec.storage)
    prepared = prepare_run(
        resolved,
        storage_url=url,
        study_name=study_name,
        n_trials=n_trials,
        seed=seed,
        resume=resume,
        overwrite=overwrite,
        dataset=dataset,
        builder=build_model,
        timeout=timeout,
    )
    notice = gpu_notice(gpu_options(resolved.spec.training), has_gpu=bool(detect_gpus()))
    if notice:
        logging.getLogger("tuner").warning("Note: %s.", notice)
    execute(prepared, callbacks=list(callbacks))
    return summarize(prepared.study, storage_url=url)


def _spec_from_pieces(*, space: str | Path, data: Any, arrays: bool, family: str) -> dict[str, Any]:
    if arrays:
        data_section: dict[str, Any] = {"source": "arrays"}
    elif isinstance(data, str):
        data_section = {"source": data}
    else:
        data_section = dict(data)
    name = Path(str(space)).stem
    return {
        "name": f"{name}-{data_section.get('source', 'data')}".replace(":", "-")[:128],
        "data": data_section,
        "model": {"family": family},
        "space": {"file": str(find_file(space, kind="search_spaces", base_dir=Path.cwd()))},
    }


def _apply_overrides(raw: dict[str, Any], *, builder: Any, **values: Any) -> None:
    # One form of objectives wins whole: a spec's `metrics` give way to metric=/direction=,
    # and its metric + direction to metrics=.
    if values["metric"] is not None or values["direction"] is not None:
        raw.pop("metrics", None)
    if values["metrics"] is not None:
        raw.pop("metric", None)
        raw.pop("direction", None)
        raw["metrics"] = [dict(m) for m in values["metrics"]]
    if values["constraints"] is not None:
        raw["constraints"] = {k: dict(v) for k, v in values["constraints"].items()}
    for key in ("metric", "direction"):
        if values[key] is not None:
            raw[key] = values[key]
    if values["training"] is not None:
        raw.setdefault("training", {}).update(values["training"])
    if values["max_epochs"] is not None:
        raw.setdefault("training", {})["max_epochs"] = values["max_epochs"]
    for key in ("sampler", "pruner", "strategy"):
        if values[key] is not None:
            raw[key] = {"name": values[key]}
    if builder is not None:
        # Recorded by name so the study says which builder made its models.
        raw.setdefault("model", {})["builder"] = f"{builder.__module__}:{builder.__qualname__}"
