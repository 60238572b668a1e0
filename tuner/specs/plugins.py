"""User code plugged in by reference (``module:function``): data loaders, model builders."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def import_function(ref: str, *, error: type[Exception], what: str) -> Callable[..., Any]:
    """Import ``module:function``; any problem becomes ``error`` with a one-line message."""
    module_name, sep, func_name = ref.partition(":")
    if not (sep and module_name and func_name):
        raise error(f"{what} {ref!r} must look like module:function")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as exc:
        raise error(f"{what} {ref!r} cannot be imported: {exc}") from None
    if not callable(func):
        raise error(f"{what} {ref!r} is not a function")
    return func  # type: ignore[no-any-return]
