"""Study specs (``studies/*.yaml``): validated with every problem reported at once.

A spec names the metric, the data, the model family, the training settings, the search
space (a file in ``search_spaces/`` plus overrides), the sampler, the pruner and the
budget. ``StudySpec.model_json_schema()`` is the JSON Schema editors use.

This module knows nothing of Keras.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tuner.errors import SpecError
from tuner.specs.objectives import (
    LimitSpec,
    MetricSpec,
    is_validation_metric,
    measure_problems,
    objective_problems,
    primary_metric,
)
from tuner.specs.shipped import find_file, not_found_hint
from tuner.specs.space import SearchSpace, load_space, parse_tiers
from tuner.specs.strategies import STRATEGIES, parse_staged_options
from tuner.specs.validation import (
    MAX_SEED,
    NAME_RULE,
    Float,
    Int,
    check_name,
    read_yaml_mapping,
    shown,
    validate_model,
)

SAMPLERS = ("tpe", "random", "gp", "cmaes", "qmc", "grid", "nsga2", "nsga3")
PRUNERS = (
    "median",
    "none",
    "percentile",
    "successive-halving",
    "hyperband",
    "wilcoxon",
    "patient",
    "threshold",
)


# The built-in model families (tuner.trial.models builds each) and the input rank each
# needs (None: any); adding a family is a line here and a builder there.
MODEL_FAMILIES: dict[str, int | None] = {"mlp": None, "cnn": 3, "linear": None}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSpec(_Section):
    """Where the data comes from and how the validation split is held out."""

    source: str = Field(
        description="digits | iris | wine | breast_cancer | diabetes | synthetic_linear | "
        "csv | npz | mnist | fashion_mnist | cifar10 | module:function"
    )
    path: str | None = Field(None, description="file for csv/npz, relative to the spec file")
    target: str | None = Field(None, description="target column of a csv file")
    task: Literal["auto", "classification", "regression"] = "auto"
    validation_split: Float = Field(0.2, gt=0, lt=1)
    n_samples: Int = Field(1000, ge=10, description="rows of synthetic data")
    n_features: Int = Field(8, ge=1, description="features of synthetic data")
    noise: Float = Field(0.1, ge=0, description="noise std of synthetic data")
    max_rows: Int | None = Field(None, ge=10, description="use at most this many rows")
    impute: Literal["none", "mean", "median"] = Field(
        "none", description="fill missing (NaN) features with the column's mean or median"
    )


class ModelSpec(_Section):
    """The model family, or a user builder ``module:function``."""

    family: Literal[tuple(MODEL_FAMILIES)] = "mlp"  # type: ignore[valid-type]
    builder: str | None = Field(
        None, description="module:function(params, *, input_shape, n_outputs) -> keras.Model"
    )


class TrainingSpec(_Section):
    max_epochs: Int = Field(20, ge=1, le=10_000)
    loss: str = Field("auto", description="auto = cross-entropy or mse by task")
    mixed_precision: bool = Field(
        False, description="float16 compute on GPUs (Keras mixed_float16; output layer float32)"
    )
    jit_compile: Literal["auto", True, False] = Field(
        "auto", description="XLA-compile the training step: true, false, or auto (on for GPUs)"
    )
    memory_growth: bool = Field(
        True, description="each worker takes GPU memory as it needs it, not all of it at once"
    )
    gpu_memory_limit_mb: int | None = Field(
        None, ge=64, description="GPU memory of each worker, MiB (for --trials-per-gpu)"
    )
    latency_batch_size: Int = Field(
        1, ge=1, le=65_536, description="rows per prediction when measuring latency_ms"
    )

    @model_validator(mode="before")
    @classmethod
    def _xla_was_jit_compile(cls, data: Any) -> Any:
        # Studies stored before the rename say `xla: true|false|null`.
        if isinstance(data, dict) and "xla" in data and "jit_compile" not in data:
            data = dict(data)
            xla = data.pop("xla")
            data["jit_compile"] = "auto" if xla is None else xla
        return data


class SpaceSpec(_Section):
    file: str = Field(
        description="search space YAML, relative to the spec file, or a shipped space's name "
        "(importance-ranked, linear-sgd)"
    )
    overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)
    fixed: dict[str, Any] = Field(default_factory=dict, description="values not searched")
    tiers: str | None = Field(None, description="tiers to search, e.g. '1-2'")
    baseline_first: bool = Field(
        True, description="trial 0 trains the defaults: a baseline known after one trial"
    )


class SamplerSpec(_Section):
    name: Literal[SAMPLERS] = "tpe"  # type: ignore[valid-type]
    options: dict[str, Any] = Field(default_factory=dict)


class PrunerSpec(_Section):
    name: Literal[PRUNERS] = "median"  # type: ignore[valid-type]
    options: dict[str, Any] = Field(default_factory=dict)


class StrategySpec(_Section):
    """How the budget is spent over the tiers: ``flat`` or ``staged`` (tuner.search.strategy)."""

    name: Literal[STRATEGIES] = "flat"  # type: ignore[valid-type]
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _options_fit(self) -> StrategySpec:
        if self.name == "flat" and self.options:
            raise ValueError(f"the flat strategy takes no options, got {sorted(self.options)}")
        if self.name == "staged":
            try:
                parse_staged_options(self.options)
            except SpecError as exc:
                raise ValueError("; ".join(exc.problems)) from None
        return self


class BudgetSpec(_Section):
    n_trials: Int | None = Field(20, ge=1, description="total trials of the study")
    timeout: Float | None = Field(None, gt=0, description="seconds for this run")
    max_consecutive_failures: Int = Field(5, ge=1, description="circuit breaker")


class StudySpec(_Section):
    """A whole study definition, as written in ``studies/*.yaml``."""

    name: str = Field(description=NAME_RULE)
    metric: str = Field("val_accuracy", description="the (primary) validation metric")
    direction: Literal["maximize", "minimize"] = "maximize"
    metrics: list[MetricSpec] = Field(
        default_factory=list,
        description="several objectives (a Pareto front) instead of metric + direction",
    )
    constraints: dict[str, LimitSpec] = Field(
        default_factory=dict, description="limits per measure; a trial outside is infeasible"
    )
    data: DataSpec
    model: ModelSpec = Field(default_factory=ModelSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    space: SpaceSpec
    sampler: SamplerSpec = Field(default_factory=SamplerSpec)
    pruner: PrunerSpec = Field(default_factory=PrunerSpec)
    strategy: StrategySpec = Field(default_factory=StrategySpec)
    budget: BudgetSpec = Field(default_factory=BudgetSpec)
    seed: Int = Field(0, ge=0, le=MAX_SEED, description="random seed of the sampler and the split")
    storage: str | None = None

    @field_validator("sampler", "pruner", "strategy", mode="before")
    @classmethod
    def _name_alone(cls, value: Any) -> Any:
        # `sampler: tpe` is the short form of `sampler: {name: tpe}`.
        return {"name": value} if isinstance(value, str) else value

    @field_validator("space", mode="before")
    @classmethod
    def _file_alone(cls, value: Any) -> Any:
        return _space_section(value)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return check_name(value, what="study name")

    @field_validator("metric")
    @classmethod
    def _metric_is_validation(cls, value: str) -> str:
        if not value.startswith("val_"):
            raise ValueError(
                f"metric must be a validation metric such as val_accuracy or val_loss, "
                f"got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _objectives_fit(self) -> StudySpec:
        # Both forms end up in `metrics`; `metric` + `direction` name the primary objective,
        # so a spec stored with all three (as a study records it) validates again.
        given = self.model_fields_set
        if "metrics" not in given:
            self.metrics = [MetricSpec(name=self.metric, direction=self.direction)]
            self.model_fields_set.discard("metrics")
        elif not self.metrics:
            raise ValueError("metrics: give at least one {name, direction}")
        problems = _objective_problems(self)
        primary = primary_metric(self.metrics)
        chosen = {"metric": primary.name, "direction": primary.direction}
        for key, value in chosen.items():
            if key in given and "metrics" in given and getattr(self, key) != value:
                problems.append(
                    f"{key}: give either metric + direction or metrics, not both (metrics' "
                    f"primary objective is {primary.name}, {primary.direction})"
                )
        if problems:
            raise ValueError("\n".join(problems))
        self.metric, self.direction = primary.name, primary.direction
        return self

    @property
    def multi_objective(self) -> bool:
        """Whether the study optimizes several measures (its best trials: a Pareto front)."""
        return len(self.metrics) > 1

    @property
    def validation_metrics(self) -> list[str]:
        """The validation metrics (``val_*``) the objectives and constraints name."""
        names = [m.name for m in self.metrics] + list(self.constraints)
        return list(dict.fromkeys(n for n in names if is_validation_metric(n)))


def check_objectives(spec: StudySpec) -> None:
    """Refuse objectives that do not fit the spec's sampler and strategy (after an override).

    Example:
        >>> check_objectives(spec.model_copy(update={"strategy": StrategySpec(name="staged")}))
        Traceback (most recent call last):
        tuner.errors.SpecError: strategy: staged decides each stage from importance ...
    """
    problems = _objective_problems(spec)
    if problems:
        raise SpecError(problems)


def _objective_problems(spec: StudySpec) -> list[str]:
    has_builder = spec.model.builder is not None
    problems = objective_problems(
        spec.metrics,
        sampler=spec.sampler.name,
        strategy=spec.strategy.name,
        has_builder=has_builder,
    )
    return problems + measure_problems(
        spec.constraints, where="constraints", has_builder=has_builder
    )


@dataclass(frozen=True)
class ResolvedSpec:
    """A validated spec with its space loaded and paths made absolute."""

    spec: StudySpec
    space: SearchSpace
    base_dir: Path
    tiers: frozenset[int] = field(default_factory=lambda: parse_tiers(None))


def load_spec(path: str | Path, *, tiers: str | None = None) -> ResolvedSpec:
    """Load a study spec and its search space; every problem is reported at once.

    ``path`` may be a bare name (``digits-mlp``): an example spec shipped with tuner.

    Example:
        >>> resolved = load_spec("studies/digits-mlp.yaml", tiers="1-2")
        >>> resolved.spec.metric, sorted(resolved.tiers)
        ('val_accuracy', [1, 2])
    """
    path = find_file(path, kind="studies")
    raw = read_yaml_mapping(path, what="study spec", hint=not_found_hint("studies"))
    return resolve_spec(raw, base_dir=path.parent, source=str(path), tiers=tiers)


def resolve_spec(
    raw: dict[str, Any],
    *,
    base_dir: Path,
    source: str,
    tiers: str | None = None,
    space: SearchSpace | None = None,
) -> ResolvedSpec:
    """Validate a spec mapping (from a file, the API or the database) and load its space.

    The spec, its space file, ``space.fixed`` and the tiers are all checked before one
    :class:`~tuner.errors.SpecError` lists every problem, each line naming its file. A
    worker that joins a study passes the ``space`` stored with it: the space file may
    not exist on the worker's machine, and the stored space already has its overrides.
    """
    base_dir = base_dir.resolve()
    problems: list[str] = []
    spec = _collect(problems, lambda: validate_model(StudySpec, raw, source=source))
    section = _space_section(raw.get("space"))
    section = section if isinstance(section, dict) else {}
    space_file, overrides = section.get("file"), section.get("overrides") or {}
    if space is None and isinstance(space_file, str) and _is_overrides(overrides):
        space_path = find_file(space_file, kind="search_spaces", base_dir=base_dir)
        space = _collect(
            problems,
            lambda: load_space(space_path, overrides=overrides, overrides_source=source),
        )
    tier_text = tiers if tiers is not None else section.get("tiers")
    where = "--tiers" if tiers is not None else f"{source}: space.tiers"
    chosen = _collect(problems, lambda: parse_tiers(tier_text), where=where)
    fixed = section.get("fixed")
    if space is not None and isinstance(fixed, dict):
        problems.extend(f"{source}: {p}" for p in fixed_problems(space, fixed))
    if problems:
        raise SpecError(problems)
    assert spec is not None and space is not None and chosen is not None
    space = space.within_epochs(spec.training.max_epochs)
    return ResolvedSpec(spec=spec, space=space, base_dir=base_dir, tiers=chosen)


def fixed_problems(space: SearchSpace, fixed: dict[str, Any]) -> list[str]:
    """Problems of ``space.fixed``: unknown names, or values a parameter cannot take.

    Numeric values outside the searched range are allowed on purpose: fixing a value is
    how a user tries one the space would never suggest (e.g. a learning rate of 10).
    """
    problems = []
    for name, value in fixed.items():
        param = space.parameters.get(name)
        if param is None:
            problems.append(
                f"space.fixed.{name}: not a parameter of the space "
                f"(known: {', '.join(space.parameters)})"
            )
        elif param.type == "categorical" and value not in (param.choices or []):
            problems.append(
                f"space.fixed.{name}: {shown(value)} is not one of the choices {param.choices}"
            )
        elif param.type != "categorical" and (
            isinstance(value, bool) or not isinstance(value, (int, float))
        ):
            problems.append(f"space.fixed.{name}: must be a number, got {shown(value)}")
    return problems


T = TypeVar("T")


def _collect(problems: list[str], load: Callable[[], T], *, where: str = "") -> T | None:
    """Run ``load``; on a SpecError add its lines to ``problems`` and return None.

    ``where`` prefixes the lines of an error that does not name its own source.
    """
    try:
        return load()
    except SpecError as exc:
        if where and exc.source is None:
            problems.extend(f"{where}: {p}" for p in exc.problems)
        else:
            problems.extend(str(exc).splitlines())
        return None


def _space_section(value: Any) -> Any:
    """``space: importance-ranked`` is the short form of ``space: {file: importance-ranked}``."""
    return {"file": value} if isinstance(value, str) else value


def _is_overrides(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(v, dict) for v in value.values())
