"""User code plugged in by reference (``module:function``): data loaders, model builders.

The module is found as pytest and uvicorn find a user's code, without ``PYTHONPATH``:
from the spec file's folder, then the working directory, then the installed packages.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


def import_function(
    ref: str, *, error: type[Exception], what: str, search_dirs: Iterable[Path] = ()
) -> Callable[..., Any]:
    """Import ``module:function``; any problem becomes ``error`` with a one-line message.

    ``search_dirs`` (the spec's folder) are searched first, then the working directory.

    Example:
        >>> build = import_function("models:build", error=SpecError, what="model.builder",
        ...                         search_dirs=[Path("studies")])
    """
    module_name, sep, func_name = ref.partition(":")
    if not (sep and module_name and func_name):
        raise error(f"{what} {ref!r} must look like module:function")
    _add_to_path([*search_dirs, Path.cwd()])
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as exc:
        raise error(
            f"{what} {ref!r} cannot be imported: {exc} (modules are found in the spec's "
            f"folder, the working directory and the installed packages)"
        ) from None
    if not callable(func):
        raise error(f"{what} {ref!r} is not a function")
    return func  # type: ignore[no-any-return]


def _add_to_path(folders: list[Path]) -> None:
    """Put ``folders`` first on ``sys.path``, in order, for the rest of the process.

    For good, not for the import alone: user code may import its own sibling modules
    later, when a trial calls it (as ``python script.py`` puts the script's folder first).
    """
    for folder in reversed(folders):
        entry = str(folder.resolve())
        if entry in sys.path:
            sys.path.remove(entry)
        sys.path.insert(0, entry)
