"""Shared helpers that turn pydantic and YAML errors into the one-line problems users read."""

from __future__ import annotations

import difflib
import re
import typing
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import BaseModel, BeforeValidator, ValidationError

from tuner.errors import SpecError

M = TypeVar("M", bound=BaseModel)

# One rule for names on every backend (RELIABILITY row 17): SQLite stores any text, while
# PostgreSQL refuses NUL and Optuna's columns hold at most 512 characters. Names that pass
# here work unchanged on both.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
NAME_RULE = "1-128 characters: letters, digits, '_', '.', '-', starting with a letter or digit"
PARAM_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
PARAM_NAME_RULE = "1-64 characters: ASCII letters, digits and '_', not starting with a digit"
MAX_SEED = 2**32 - 1  # numpy's and scikit-learn's random states take 0..2^32-1


def _not_a_bool(value: Any) -> Any:
    # pydantic reads true as 1 for an int field: `n_trials: true` ran one trial.
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {str(value).lower()} (a YAML boolean)")
    return value


# int and float fields that refuse booleans (YAML's true/false/yes/no/on/off).
Int = Annotated[int, BeforeValidator(_not_a_bool)]
Float = Annotated[float, BeforeValidator(_not_a_bool)]


def check_name(value: str, *, what: str, pattern: str = NAME_PATTERN, rule: str = NAME_RULE) -> str:
    """Return ``value`` if it is a valid name, else raise ValueError stating the rule.

    Example:
        >>> check_name("digits-mlp", what="study name")
        'digits-mlp'
    """
    if not isinstance(value, str) or not re.fullmatch(pattern, value):
        raise ValueError(f"{what} {shown(value)} is not allowed; use {rule}")
    return value


def shown(value: Any, *, limit: int = 40) -> str:
    """``repr`` of a value a user typed, cut so that a 600-character name stays one short line."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f" ({len(value)} characters)" if isinstance(value, str) else ""
    return f"{text[:limit]}...{size}"


def problems_from(error: ValidationError, *, model: type[BaseModel] | None = None) -> list[str]:
    """One ``field.path: message`` line per problem, in document order.

    A validator may report several problems of one field on separate lines; each becomes
    its own line. Unknown fields name the allowed ones (and the closest, for a typo).
    """
    lines: list[str] = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = _unknown_field(model, item["loc"])
        elif item["type"] == "missing":
            message = "required field is missing; add it"
        elif item["type"] != "value_error" and _is_scalar(item.get("input")):
            message = f"{message}, got {shown(item['input'])}"
        if not item["loc"] and item["type"] == "value_error":
            lines.extend(message.splitlines())  # a whole-spec rule names its fields itself
            continue
        lines.extend(f"{where}: {line}" for line in message.splitlines())
    return lines


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) or value is None


def _unknown_field(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> str:
    allowed = _fields_at(model, loc[:-1]) if model else []
    if not allowed:
        return "unknown field (check the spelling)"
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown field; {hint}allowed here: {', '.join(allowed)}"


def _fields_at(model: type[BaseModel], path: tuple[Any, ...]) -> list[str]:
    """The field names of the (nested) model found at ``path``, skipping mapping keys."""
    current: Any = model
    skip_key = False
    for part in path:
        if skip_key:
            skip_key = False
            continue
        field = current.model_fields.get(part) if _is_model(current) else None
        if field is None:
            return []
        current, skip_key = _model_inside(field.annotation)
    return list(current.model_fields) if _is_model(current) else []


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)


def _model_inside(annotation: Any) -> tuple[Any, bool]:
    """The model type in ``X``, ``X | None`` or ``dict[str, X]`` (True: a mapping key follows)."""
    if _is_model(annotation):
        return annotation, False
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is dict and args:
        return args[-1], True
    models = [a for a in args if _is_model(a)]
    return (models[0], False) if models else (None, False)


MAX_YAML_BYTES = 64 * 1024
# Specs and spaces are a few KB; PyYAML's parser reads ~64 KiB a second on a busy machine,
# so the cap keeps every refusal (and every load) within about a second.


class StrictYamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing aliases and repeated keys.

    An alias (``*name``) re-uses an anchored node (``&name``): a 1 KB file of nested
    aliases expands to billions of values (a "billion laughs"), and a spec never needs
    one. A repeated key silently keeps its last value in PyYAML (a study then minimized
    what its first line said to maximize). Both are refused with the lines they are on.
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None,
                None,
                f"found the alias *{event.anchor}; YAML anchors and aliases are not allowed "
                f"here: write the value out in full",
                event.start_mark,
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        first_at: dict[Any, int] = {}
        for key_node, _ in node.value if isinstance(node, yaml.MappingNode) else []:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = first_at.get(key)
                first_at.setdefault(key, line)
            except TypeError:  # an unhashable key: SafeConstructor reports it
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"the key {shown(key)} appears twice (lines {first} and {line}); keep one",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path, *, what: str, hint: str = "") -> Any:
    """Read a YAML file: a clear error for a missing, oversized, non-UTF-8 or invalid one.

    Files over :data:`MAX_YAML_BYTES`, aliases and repeated keys are refused
    (:class:`StrictYamlLoader`). ``hint`` follows "check the path" when the file is missing
    (e.g. the shipped names).
    """
    if not path.is_file():
        hint = f", {hint}" if hint else ""
        raise SpecError(f"{what} file not found: {path} (check the path{hint})")
    size = path.stat().st_size
    if size > MAX_YAML_BYTES:
        raise SpecError(
            f"the file holds {size:,} bytes; a {what} may hold at most "
            f"{MAX_YAML_BYTES // 1024} KiB (they are a few KB: check that this is the right file)",
            source=str(path),
        )
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=StrictYamlLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise SpecError(f"not valid YAML{where}: {problem}", source=str(path)) from None
    except UnicodeDecodeError:
        raise SpecError("not a UTF-8 text file", source=str(path)) from None


def read_yaml_mapping(path: Path, *, what: str, hint: str = "") -> dict[str, Any]:
    """Read a YAML file that must hold a mapping, with a clear error for every other case."""
    content = read_yaml(path, what=what, hint=hint)
    if not isinstance(content, dict):
        raise SpecError(
            f"expected a YAML mapping of fields, got {type(content).__name__}", source=str(path)
        )
    return content


def validate_model(model: type[M], data: dict[str, Any], *, source: str) -> M:
    """Validate ``data`` into ``model``, raising one SpecError that lists every problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SpecError(problems_from(exc, model=model), source=source) from None
