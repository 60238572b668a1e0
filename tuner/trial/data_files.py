"""Datasets from a user's files and functions: a CSV with a named target, an NPZ of x and
y, a loader ``module:function``. Each returns raw ``(x, y)`` arrays, or raises one clear
:class:`~tuner.errors.DataError` for anything it cannot read; ``tuner.trial.data`` checks,
scales and splits them.
"""

from __future__ import annotations

import contextlib
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from tuner.errors import DataError
from tuner.specs.plugins import import_function


def read_csv(path: Path, *, target: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Read a numeric CSV with a header; ``target`` names the label column."""
    import csv

    if not target:
        raise DataError("a csv dataset needs data.target: the name of the label column")
    rows = _read_rows(path, csv)
    header, body = rows[0], rows[1:]
    if target not in header:
        other = next((d for d in (";", "\t", "|") if len(header) == 1 and d in header[0]), None)
        hint = (
            f" (the file seems to use {other!r} between columns; tuner reads ',')" if other else ""
        )
        raise DataError(f"{path.name}: no column named {target!r}; columns are {header}{hint}")
    if not body:
        raise DataError(f"{path.name}: has a header but no data rows")
    t = header.index(target)
    x_cols = [i for i in range(len(header)) if i != t]
    if not x_cols:
        raise DataError(
            f"{path.name}: the only column is the target {target!r}; a model needs at least "
            f"one feature column beside it"
        )
    empty = next((n for n, r in enumerate(body, 2) if not r[t].strip()), None)
    if empty is not None:
        raise DataError(
            f"{path.name}: line {empty} has no value in the target column {target!r}; every "
            f"row needs a label (fill it in or drop the row)"
        )
    x = np.array(
        [[_number(path, header[i], r[i], n) for i in x_cols] for n, r in enumerate(body, 2)],
        dtype="float32",
    )
    labels = [r[t] for r in body]
    return x, _labels_to_array(labels)


def _read_rows(path: Path, csv: Any) -> list[list[str]]:
    if not path.is_file():
        raise DataError(f"data file not found: {path} (check data.path)")
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = [row for row in csv.reader(fh) if row]
    except UnicodeDecodeError:
        raise DataError(f"{path.name}: not a UTF-8 text CSV file") from None
    if not rows:
        raise DataError(f"{path.name}: the file is empty; expected a header and data rows")
    widths = {len(r) for r in rows}
    if len(widths) > 1:
        raise DataError(f"{path.name}: rows have different numbers of columns {sorted(widths)}")
    return rows


def _number(path: Path, column: str, cell: str, line: int) -> float:
    if not cell.strip():
        return float("nan")  # reported with the other missing values by _check_arrays
    try:
        return float(cell)
    except ValueError:
        raise DataError(
            f"{path.name}: line {line}, column {column!r} holds {cell!r}, not a number; "
            f"features must be numeric (encode or drop that column)"
        ) from None


def _labels_to_array(labels: list[str]) -> np.ndarray:
    try:
        return np.array([float(v) for v in labels], dtype="float64")
    except ValueError:  # text labels: classes in sorted order
        classes = sorted(set(labels))
        return np.array([classes.index(v) for v in labels])


def read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read arrays ``x`` and ``y`` from an ``.npz`` file (as ``np.savez`` writes it)."""
    if not path.is_file():
        raise DataError(f"data file not found: {path} (check data.path)")
    try:
        with contextlib.ExitStack() as stack:
            npz = np.load(path, allow_pickle=False)
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise DataError(
                    f"{path.name}: holds one array, not an .npz archive; save x and y with "
                    f"numpy.savez(path, x=x, y=y)"
                )
            stack.enter_context(npz)
            if not {"x", "y"} <= set(npz.files):
                raise DataError(f"{path.name}: needs arrays named 'x' and 'y', found {npz.files}")
            return npz["x"], npz["y"]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"{path.name}: not a readable .npz file ({reason}); save x and y with "
            f"numpy.savez(path, x=x, y=y)"
        ) from None


def user_arrays(ref: str, *, base_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Call the loader ``module:function`` (found from ``base_dir`` too) for ``(x, y)``;
    whatever it does wrong is a DataError."""
    loader = import_function(ref, error=DataError, what="data.source", search_dirs=[base_dir])
    try:
        result = loader()
    except SystemExit as exc:  # sys.exit() in a loader would end tuner with no study
        raise DataError(
            f"{ref} exited (sys.exit({exc.code!r})) instead of returning (x, y); return "
            f"the arrays instead"
        ) from None
    except Exception as exc:
        reason = (str(exc).splitlines() or [""])[0]
        raise DataError(f"{ref} raised {type(exc).__name__}: {reason} (fix the loader)") from None
    if not (isinstance(result, tuple) and len(result) == 2):
        raise DataError(f"{ref} must return (x, y) arrays, got {type(result).__name__}")
    arrays = []
    for what, value in zip(("x", "y"), result, strict=True):
        try:
            arrays.append(np.asarray(value))
        except ValueError:  # ragged nested lists
            raise DataError(
                f"{ref} returned an {what} whose rows differ in length; every row must have "
                f"the same shape"
            ) from None
    return arrays[0], arrays[1]
