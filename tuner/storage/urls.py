"""Which database, and its password: storage URLs, secrets and masking.

Which URL: ``--storage``, else the ``TUNER_STORAGE`` environment variable, else the
spec's ``storage``, else an SQLite file ``tuner.db`` in the working directory. Any
SQLAlchemy URL works; ``postgresql://`` is served by psycopg 3.

Passwords stay off command lines: a URL without one takes it from ``$TUNER_DB_PASSWORD``
or from the file named by ``$TUNER_DB_PASSWORD_FILE`` (a Docker secret), percent-encoded
here, and every message shows URLs through :func:`mask_url`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.errors import StorageError

if TYPE_CHECKING:
    pass


DEFAULT_STORAGE = "sqlite:///tuner.db"

ENV_VAR = "TUNER_STORAGE"

PASSWORD_ENV = "TUNER_DB_PASSWORD"

PASSWORD_FILE_ENV = "TUNER_DB_PASSWORD_FILE"


def resolve_storage_url(explicit: str | None = None, *, spec_storage: str | None = None) -> str:
    """The storage URL in force: explicit, then $TUNER_STORAGE, then the spec, then tuner.db."""
    return explicit or os.environ.get(ENV_VAR) or spec_storage or DEFAULT_STORAGE


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***, for every message and log line."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return url.split("@")[-1] if "@" in url else url
    return parsed.render_as_string(hide_password=True)


def without_password(url: str) -> tuple[str, str | None]:
    """Split a URL into the URL without its password and the password (for a child's env).

    Example:
        >>> without_password("postgresql://bob:s3cret@db/tuner")
        ('postgresql://bob@db/tuner', 's3cret')
    """
    parsed = _normalise(url, keep_driver=True)
    if parsed.password is None:
        return url, None
    # Not parsed.set(password=None): SQLAlchemy 2.1's set() takes None as "leave unchanged".
    bare = parsed._replace(password=None)
    return bare.render_as_string(hide_password=False), str(parsed.password)


def _password_from_env() -> str | None:
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    secret = os.environ.get(PASSWORD_FILE_ENV)
    if not secret:
        return None
    try:
        return Path(secret).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise StorageError(
            f"${PASSWORD_FILE_ENV} names {secret!r}, which cannot be read ({exc.strerror}); "
            f"point it at the file that holds the database password"
        ) from None


def _normalise(url: str, *, keep_driver: bool = False) -> Any:
    """Parse the URL; plain ``postgresql://`` means psycopg 3, the driver we install."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StorageError(
            f"storage URL {mask_url(url)!r} is not a database URL; expected e.g. "
            f"sqlite:///tuner.db or postgresql://user@host/db"
        ) from None
    if not keep_driver and parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _with_password(parsed: Any) -> Any:
    if parsed.password is not None or parsed.username is None:
        return parsed
    password = _password_from_env()
    return parsed if password is None else parsed.set(password=password)


def parse_url(url: str) -> Any:
    """The URL parsed by SQLAlchemy, with psycopg 3 for PostgreSQL and the password from
    the environment when the URL names a user without one."""
    return _with_password(_normalise(url))
