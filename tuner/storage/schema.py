"""Read-only connections that skip alembic: the schema revision checked by hand.

Opening Optuna's RDBStorage checks the schema through alembic, about 1 s with its import:
half of an interactive command's budget. Listings (:mod:`tuner.storage.tables`) read
through :func:`read_connection` instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from tuner._optuna_compat import alembic_versions_dir
from tuner.storage.engine import (
    check_storage_url,
    engine_kwargs,
    open_storage,
    require_sqlite_file,
)
from tuner.storage.urls import mask_url

if TYPE_CHECKING:
    import sqlalchemy


@contextmanager
def read_connection(url: str) -> Iterator[sqlalchemy.Connection]:
    """A connection to an existing Optuna storage, for read-only SQL (:mod:`tuner.storage.tables`).

    Opening Optuna's RDBStorage checks the schema through alembic, about 1 s with its
    import: half of an interactive command's budget. Here the stored revision is compared
    with Optuna's newest one directly; only when they differ, or the database cannot be
    read, is the storage opened the full way, so an old schema, a missing table or a
    refused connection gives the same one-line error as every other command.

    Example:
        >>> with read_connection("sqlite:///tuner.db") as conn:
        ...     studies = tuner.storage.tables.read_studies(conn)
    """
    parsed = check_storage_url(url, write=False)
    if parsed.get_backend_name() == "sqlite":
        require_sqlite_file(parsed.database, mask_url(url))
    engine = _engine_at_head(parsed) or open_storage(url, heartbeat=False, create=False).engine
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def _engine_at_head(parsed: Any) -> sqlalchemy.Engine | None:
    """An engine on the database if its schema is Optuna's newest, else None."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    try:
        engine = create_engine(parsed, **engine_kwargs(parsed))
    except (SQLAlchemyError, ImportError):
        return None
    try:
        with engine.connect() as conn:
            revision = conn.execute(text("select version_num from alembic_version")).scalar()
    except SQLAlchemyError:
        revision = None
    if revision is not None and revision == _schema_head():
        return engine
    engine.dispose()
    return None


def _schema_head() -> str | None:
    """Optuna's newest schema revision, read from the headers of its migration scripts.

    alembic's ``ScriptDirectory.get_current_head`` says the same but costs the import
    :func:`read_connection` avoids. Each script names its ``revision`` and ``down_revision``;
    the head is the one no script names as its parent. None when a script's header does
    not read as expected (a newer alembic layout), so the caller falls back to Optuna's
    own check rather than trust a partial reading.
    """
    versions = alembic_versions_dir()
    header = re.compile(r"^(down_)?revision\s*=\s*[\"']([^\"']+)[\"']", re.MULTILINE)
    named: set[str] = set()
    parents: set[str] = set()
    for script in versions.glob("*.py"):
        found = header.findall(script.read_text(encoding="utf-8"))
        revisions = [revision for down, revision in found if not down]
        if len(revisions) != 1:
            return None
        named.update(revisions)
        parents.update(revision for down, revision in found if down)
    heads = named - parents
    return heads.pop() if len(heads) == 1 else None
