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

from tuner.errors import StorageError

SQLITE_HEADER_BYTES = 100  # a database file is at least its header


class SqliteFile:
    """The identity (device, inode) of an SQLite file when it was opened.

    Example:
        >>> watched = SqliteFile("tuner.db")
        >>> watched.check()   # the same file, still there: nothing to say
        >>> Path("tuner.db").unlink()
        >>> watched.check()
        Traceback (most recent call last):
        tuner.errors.StorageError: the study's database file tuner.db was deleted while ...
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
