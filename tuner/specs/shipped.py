"""The search spaces and example specs shipped with tuner, found by bare name.

``tuner/shipped/search_spaces`` and ``tuner/shipped/studies`` link to the top-level
folders of a checkout (the files users read and edit there), and the wheel holds copies
of the files (pyproject.toml's package-data), so ``importance-ranked`` or
``digits-mlp`` name the same file in a checkout and in an installed package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

Kind = Literal["search_spaces", "studies"]
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "shipped"


def shipped_files(kind: Kind) -> dict[str, Path]:
    """The shipped files of one kind, by bare name (the file name without ``.yaml``).

    Example:
        >>> sorted(shipped_files("search_spaces"))
        ['importance-ranked', 'linear-sgd']
    """
    # Resolved: in a checkout, the top-level file users edit, not the link to it.
    return {p.stem: p.resolve() for p in sorted((SHIPPED_DIR / kind).glob("*.yaml"))}


def is_bare_name(ref: str | Path) -> bool:
    """Whether ``ref`` names a shipped file rather than a path: no folder, no suffix."""
    text = str(ref)
    return bool(text) and Path(text).name == text and not Path(text).suffix


def find_file(ref: str | Path, *, kind: Kind, base_dir: Path | None = None) -> Path:
    """The file ``ref`` names: a path (relative to ``base_dir``, else the working
    directory) when it exists or is not a bare name, else the shipped file of that name.

    A bare name that is neither a file nor shipped comes back as a path, so the caller's
    "file not found" names it; :func:`not_found_hint` adds the shipped names.

    Example:
        >>> find_file("importance-ranked", kind="search_spaces").name
        'importance-ranked.yaml'
    """
    path = Path(ref).expanduser()
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    if path.exists() or not is_bare_name(ref):
        return path
    return shipped_files(kind).get(str(ref), path)


def not_found_hint(kind: Kind) -> str:
    """What to write instead of a path that does not exist: the shipped names."""
    names = ", ".join(shipped_files(kind)) or "none"
    return f"or a shipped name: {names}"
