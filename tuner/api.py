"""The Python API: ``tuner.tune`` from a spec file or from pieces."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tuner.errors import SpecError
from tuner.results import TuneResult


def tune(
    spec: str | Path | None = None,
    *,
    space: str | Path | None = None,
    data: Sequence[Any] | Mapping[str, Any] | str | None = None,
    build_model: Callable[..., Any] | None = None,
    family: str = "mlp",
    metric: str | None = None,
    direction: str | None = None,
    max_epochs: int | None = None,
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

    Give either ``spec`` (a ``studies/*.yaml`` file; keyword arguments override it) or the
    pieces: ``space`` (a ``search_spaces/*.yaml`` file), ``data`` (arrays
    ``(x_train, y_train, x_val, y_val)``, a dataset name such as ``"digits"``, or a data
    mapping as in a spec, e.g. ``{"source": "csv", "path": "houses.csv", "target": "price"}``)
    and optionally ``build_model(params, *, input_shape, n_outputs, task) -> keras.Model``,
    which receives a plain mapping of chosen values. The model is compiled, trained,
    pruned and recorded exactly as the built-in families are. ``strategy`` (``"flat"`` or
    ``"staged"``, see :mod:`tuner.strategy`) overrides the spec's.

    Example:
        >>> import tuner
        >>> result = tuner.tune("studies/digits-mlp.yaml", n_trials=20)
        >>> result = tuner.tune(space="search_spaces/importance-ranked.yaml",
        ...                     data=(x_train, y_train, x_val, y_val), build_model=my_build,
        ...                     metric="val_accuracy", direction="maximize", n_trials=20,
        ...                     storage="sqlite:///my.db")
        >>> result.best_params, result.best_value, result.study
    """
    from tuner.data import dataset_from_arrays
    from tuner.results import summarize
    from tuner.runner import execute, prepare_run
    from tuner.spec import load_spec, resolve_spec
    from tuner.storage import resolve_storage_url

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
        max_epochs=max_epochs,
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
    )
    execute(prepared, timeout=timeout, callbacks=list(callbacks))
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
        "space": {"file": str(Path(space).resolve())},
    }


def _apply_overrides(raw: dict[str, Any], *, builder: Any, **values: Any) -> None:
    for key in ("metric", "direction"):
        if values[key] is not None:
            raw[key] = values[key]
    if values["max_epochs"] is not None:
        raw.setdefault("training", {})["max_epochs"] = values["max_epochs"]
    for key in ("sampler", "pruner", "strategy"):
        if values[key] is not None:
            raw[key] = {"name": values[key]}
    if builder is not None:
        # Recorded by name so the study says which builder made its models.
        raw.setdefault("model", {})["builder"] = f"{builder.__module__}:{builder.__qualname__}"
