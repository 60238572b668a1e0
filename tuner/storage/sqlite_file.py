"""An SQLite file watched while a study runs: deleted, replaced or emptied is noticed.

SQLite keeps writing through its open descriptor when the file's name is removed (``rm``)
or the file is replaced: every later trial goes to an inode nobody will ever read, and
the run ends with exit code 0 and a summary of a file that is not there. ``truncate -s 0``
leaves the name but not the data, and surfaces later as "database disk image is
malformed". Comparing the path's identity with the one opened catches all three.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tuner.errors import StorageError, UnusableStorageError

SQLITE_HEADER_BYTES = 100  # a database file is at least its header


class SqliteFile:
    """The identity (device, inode) of an SQLite file when it was opened.

    Example:
        >>> watched = SqliteFile("tuner.db")
        >>> watched.check()   # raises StorageError once the file is deleted or emptied
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        stat = self.path.stat()
        self._identity = (stat.st_dev, stat.st_ino)

    def check(self) -> None:
        """Raise :class:`~tuner.errors.StorageError` if the file is gone, other or empty."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            raise self._error("was deleted") from None
        if (stat.st_dev, stat.st_ino) != self._identity:
            raise self._error("was replaced by another file")
        if stat.st_size < SQLITE_HEADER_BYTES:
            raise self._error(f"was emptied ({stat.st_size} bytes left)")

    def _error(self, what: str) -> StorageError:
        return StorageError(
            f"the study's database file {self.path} {what} while the study ran; trials "
            f"since then are lost. Restore the file (or start a new study), then resume"
        )


def check_sqlite_target(parsed: Any, *, write: bool) -> None:
    """Refuse an SQLite URL that cannot keep a study, before anything is opened.

    In memory (``sqlite:///:memory:``), every connection sees its own empty database (a
    study's first write fails with "no such table") and all of it is gone when tuner
    exits. A read-only file, or a read-only folder where SQLite cannot write its ``-wal``
    and ``-shm`` files, fails at the first write; ``write`` asks for that check too.

    Example:
        >>> check_sqlite_target(make_url("sqlite:///:memory:"), write=True)
        Traceback (most recent call last):
        tuner.errors.UnusableStorageError: the storage is an in-memory SQLite database ...
    """
    database = parsed.database or ""
    if database in ("", ":memory:") or parsed.query.get("mode") == "memory":
        raise UnusableStorageError(
            "the storage is an in-memory SQLite database: each connection sees its own empty "
            "copy, and it is gone when tuner exits; use a file, like sqlite:///tuner.db"
        )
    if not write:
        return
    path = Path(database)
    read_only = parsed.query.get("mode") == "ro" or (path.exists() and not os.access(path, os.W_OK))
    folder_read_only = path.parent.is_dir() and not os.access(path.parent, os.W_OK)
    if read_only or folder_read_only:
        what = f"the database file {path}" if read_only else f"the folder {path.parent}"
        raise UnusableStorageError(
            f"{what} of the storage is read-only, and tuner writes its study there "
            f"(SQLite also writes -wal and -shm files beside the file); make it writable, "
            f"or choose another --storage"
        )
