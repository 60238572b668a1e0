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
from typing import Any

from tuner.errors import StorageError, UnusableStorageError

DEFAULT_STORAGE = "sqlite:///tuner.db"

ENV_VAR = "TUNER_STORAGE"

PASSWORD_ENV = "TUNER_DB_PASSWORD"

PASSWORD_FILE_ENV = "TUNER_DB_PASSWORD_FILE"


def resolve_storage_url(explicit: str | None = None, *, spec_storage: str | None = None) -> str:
    """The storage URL in force: explicit, then $TUNER_STORAGE, then the spec, then tuner.db."""
    return explicit or os.environ.get(ENV_VAR) or spec_storage or DEFAULT_STORAGE


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***, for every message and log line.

    The password ends at the *last* ``@`` (an un-encoded ``@`` inside it must not leak
    the rest), so over-masking a query that holds ``@`` is the price of never leaking.

    Example:
        >>> mask_url("postgresql://bob:p@ss:w@db/tuner")
        'postgresql://bob:***@db/tuner'
    """
    parts = _userinfo(url)
    if parts is None or ":" not in parts[1]:
        return url
    scheme, userinfo, rest = parts
    return f"{scheme}{userinfo.split(':', 1)[0]}:***@{rest}"


def _userinfo(url: str) -> tuple[str, str, str] | None:
    """``(scheme://, user[:password], host...)`` split at the last ``@``, or None."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    # A user name holds no "/": "sqlite:///dir@x/t.db" is a path, not a user.
    if not sep or not at or "/" in userinfo.split(":", 1)[0]:
        return None
    return scheme + sep, userinfo, host


def _encode_at_signs(url: str) -> str:
    """Percent-encode an ``@`` inside the password, which SQLAlchemy would take as the
    host's start (``bob:p@ss@db`` would mean host ``ss@db``)."""
    parts = _userinfo(url)
    if parts is None or "@" not in parts[1]:
        return url
    scheme, userinfo, rest = parts
    return f"{scheme}{userinfo.replace('@', '%40')}@{rest}"


def without_password(url: str) -> tuple[str, str | None]:
    """Split a URL into the URL without its password and the password (for a child's env).

    Example:
        >>> without_password("postgresql://bob:s3cret@db/tuner")
        ('postgresql://bob@db/tuner', 's3cret')
    """
    parsed = _normalise(url, keep_driver=True)
    parts = _userinfo(url)
    if parsed.password is None or parts is None:
        return url, None
    # Cut it from the text: SQLAlchemy's URL.set(password=None) keeps the password.
    scheme, userinfo, rest = parts
    return f"{scheme}{userinfo.split(':', 1)[0]}@{rest}", str(parsed.password)


def _password_from_env() -> str | None:
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    secret = os.environ.get(PASSWORD_FILE_ENV)
    if not secret:
        return None
    try:
        return Path(secret).read_text(encoding="utf-8").rstrip("\r\n")
    except PermissionError:
        # Docker Compose mounts a file secret with the host file's owner and mode.
        raise StorageError(
            f"${PASSWORD_FILE_ENV} names {secret!r}, which this process (uid {os.getuid()}) "
            f"may not read; make the file readable by it (for a Docker Compose secret: "
            f"chmod 644 the host file and keep its folder chmod 700)"
        ) from None
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
        parsed = make_url(_encode_at_signs(url))
    except ArgumentError:
        raise StorageError(
            f"storage URL {mask_url(url)!r} is not a database URL; expected e.g. "
            f"sqlite:///tuner.db or postgresql://user@host/db"
        ) from None
    except ValueError:  # SQLAlchemy's int() of the port
        parsed = None
    if parsed is None or not 0 < (parsed.port or 1) < 2**16:
        raise UnusableStorageError(
            f"storage URL {mask_url(url)!r}: the port must be a number from 1 to 65535, "
            f"like postgresql://user@host:5432/db"
        )
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
