"""The one place that builds database engines and Optuna storages.

Everything else receives a storage object or a URL. Engines are tuned per backend:
SQLite waits for its lock and runs in WAL mode; PostgreSQL connections a restart killed
are replaced before use. Workers open their storage with a heartbeat, so a trial whose
worker died is failed after the grace period and re-queued with the same parameters up
to ``$TUNER_MAX_RETRY`` times.
"""

from __future__ import annotations

import contextlib
import os
import select
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from tuner.errors import StorageError, StudyNotFoundError
from tuner.records import FAIL_REASON
from tuner.storage.resilient import ResilientRDBStorage
from tuner.storage.sqlite_file import check_sqlite_target
from tuner.storage.urls import mask_url, parse_url

if TYPE_CHECKING:
    pass


SQLITE_BUSY_TIMEOUT_S = 60


# A worker holds one connection for its trial loop, one for its heartbeat thread and one
# for the writer of its per-epoch reports (tuner.trial.epoch_reports).
CONNECTIONS_PER_WORKER = 3

SQLITE_MAX_WORKERS = 4
FIRST_START_ATTEMPTS = 5
SCHEMA_LOCK_KEY = 0x74756E6572  # "tuner": the advisory lock taken while creating the schema


def engine_kwargs(parsed: Any) -> dict[str, Any]:
    if parsed.get_backend_name() == "sqlite":
        # The busy timeout makes concurrent local writers wait instead of failing at once.
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    if os.environ.get("TUNER_DB_POOL") == "null":
        # Behind PgBouncer (or with a tight max_connections) hold nothing between calls;
        # a connection opened for each call needs no check that it is still alive.
        from sqlalchemy.pool import NullPool

        return {"poolclass": NullPool}
    # One process runs one trial at a time, so its pool needs only the loop, heartbeat and
    # report writer; recycling beats idle timeouts. Connections a database restart killed
    # are replaced: psycopg's by _drop_closed_connections, other drivers' by a ping first.
    return {
        "pool_pre_ping": parsed.get_driver_name() != "psycopg",
        "pool_recycle": 300,
        "pool_size": CONNECTIONS_PER_WORKER,
        "max_overflow": 1,
    }


def _drop_closed_connections(engine: Any) -> None:
    """Replace pooled psycopg connections that the server has closed, before they are used.

    SQLAlchemy's ``pool_pre_ping`` costs a round trip per checkout, and Optuna checks out a
    connection for every storage call: it was a fifth of a worker's round trips. A server
    that restarts, or terminates a backend, sends a FATAL notice and closes the socket, so
    an idle pooled connection with input waiting is dead (nothing else writes to it). The
    checkout event raising InvalidatePoolError is SQLAlchemy's own way to replace it, and
    every older connection, exactly as a failed pre-ping does. A peer gone without closing
    (a cut network) is left to the write retries, as a ping would hang on it too.
    """
    from sqlalchemy import event
    from sqlalchemy.exc import InvalidatePoolError

    @event.listens_for(engine, "checkout")
    def _check(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if dbapi_connection.closed or _has_input(dbapi_connection.pgconn.socket):
            raise InvalidatePoolError("the database server closed this connection")


def _has_input(fd: int) -> bool:
    readable, _, _ = select.select([fd], [], [], 0)
    return bool(readable)


def open_storage(
    url: str, *, heartbeat: bool = True, create: bool = True, check_schema: bool = True
) -> optuna.storages.RDBStorage:
    """Open (and, with ``create``, set up) the Optuna storage at ``url``.

    Without ``create`` (commands that only read), a missing SQLite file is an error
    instead of a new empty database.

    SQLite files are switched to WAL so readers (dashboard, reports) never block a
    running study. With ``heartbeat``, a worker that dies leaves no trial RUNNING for
    more than the grace period, and its trial is re-queued with the same parameters.
    ``check_schema=False`` opens an old schema so that it can be upgraded.

    Example:
        >>> storage = open_storage("sqlite:///tuner.db")
        >>> [s.study_name for s in optuna.get_all_study_summaries(storage)]
    """
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

    parsed = check_storage_url(url, write=create)
    masked = mask_url(url)
    if not create and parsed.get_backend_name() == "sqlite":
        require_sqlite_file(parsed.database, masked)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat
            options = {
                "engine_kwargs": engine_kwargs(parsed),
                "skip_table_creation": not create,
                "skip_compatibility_check": not check_schema,
                # Processes that run trials wait out outages; other commands give up.
                "patience_s": _patience(running_trials=heartbeat),
                **(_heartbeat_kwargs() if heartbeat else {}),
            }
            storage = _first_start_safe(parsed, create=create, **options)
    except NoSuchModuleError:
        raise StorageError(
            f"storage URL {masked}: unknown database scheme {parsed.drivername!r}; use "
            f"sqlite:///FILE.db or postgresql://USER@HOST:PORT/DATABASE"
        ) from None
    except (ModuleNotFoundError, ImportError) as exc:
        raise StorageError(
            f"no database driver for {masked} ({exc}); for PostgreSQL install "
            f"`pip install 'tuner[postgres]'`"
        ) from None
    except (OperationalError, ArgumentError, optuna.exceptions.StorageInternalError) as exc:
        # Without table creation, Optuna wraps a refused connection in StorageInternalError.
        cause = exc.__cause__ or exc
        reason = str(getattr(cause, "orig", cause)).strip().splitlines()[0]
        hint = _fix_hint(parsed, reason)
        raise StorageError(f"cannot open storage {masked}: {reason}; {hint}") from None
    except RuntimeError as exc:  # Optuna's schema-version check
        raise StorageError(
            f"storage {masked}: {str(exc).splitlines()[0]} (stop every worker, then run "
            f"`tuner storage upgrade --storage URL`)"
        ) from None
    if storage.engine.driver == "psycopg":
        _drop_closed_connections(storage.engine)
    if create and parsed.get_backend_name() == "sqlite":
        _use_wal(storage)
        storage.watch_file(parsed.database)
    return storage


def check_storage_url(url: str, *, write: bool = True) -> Any:
    """The parsed URL, once it is known to name a database that can keep studies.

    Cheap (nothing is opened), so a run refuses a malformed, in-memory or read-only
    storage before it loads any data.

    Example:
        >>> check_storage_url("sqlite:///:memory:")
        Traceback (most recent call last):
        tuner.errors.UnusableStorageError: the storage is an in-memory SQLite database ...
    """
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        check_sqlite_target(parsed, write=write)
    return parsed


def _patience(*, running_trials: bool) -> float | None:
    """Seconds a write waits out a database outage: ``$TUNER_WRITE_RETRY_SECONDS``, else
    as long as the outage lasts where trials run, else 120 s (a command someone waits on)."""
    configured = os.environ.get("TUNER_WRITE_RETRY_SECONDS")
    if configured:
        return float(configured)
    return None if running_trials else 120.0


def _first_start_safe(parsed: Any, *, create: bool, **options: Any) -> ResilientRDBStorage:
    """Open the storage; when it creates the schema, safely against others doing the same.

    Optuna creates its tables and version row with a check first, so workers starting
    at once on an empty database race: on PostgreSQL, all but one die on a duplicate type
    or row. An advisory lock there makes them create one after the other; on SQLite
    (writers already queue up) a creation that lost the race is simply tried again.
    """
    url = parsed.render_as_string(hide_password=False)
    if not create:
        return ResilientRDBStorage(url, **options)
    attempt = 1
    with _schema_lock(parsed):
        while True:
            try:
                return ResilientRDBStorage(url, **options)
            except Exception as exc:
                if attempt == FIRST_START_ATTEMPTS or not _created_meanwhile(exc):
                    raise
                time.sleep(0.2 * attempt)
                attempt += 1


@contextlib.contextmanager
def _schema_lock(parsed: Any) -> Iterator[None]:
    if parsed.get_backend_name() != "postgresql":
        yield
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(parsed, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text("select pg_advisory_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
            try:
                yield
            finally:
                conn.execute(text("select pg_advisory_unlock(:key)"), {"key": SCHEMA_LOCK_KEY})
    finally:
        engine.dispose()


def _created_meanwhile(exc: BaseException) -> bool:
    text = f"{exc} {exc.__cause__}".lower()
    return "already exists" in text or "unique" in text or "duplicate" in text


def require_sqlite_file(database: str | None, masked: str) -> None:
    if database and not Path(database).is_file():
        raise StudyNotFoundError(
            f"no database file at {database} ({masked}); check --storage or $TUNER_STORAGE"
        )


def load_study(name: str, *, storage: str | optuna.storages.BaseStorage) -> optuna.Study:
    """The study of that name, from a URL (opened read-side, nothing created) or a storage.

    Example:
        >>> study = load_study("digits-mlp", storage="sqlite:///tuner.db")
    """
    opened = (
        open_storage(storage, heartbeat=False, create=False)
        if isinstance(storage, str)
        else storage
    )
    try:
        return optuna.load_study(study_name=name, storage=opened)
    except KeyError:
        where = mask_url(storage) if isinstance(storage, str) else "this storage"
        raise study_not_found(name, where) from None


def study_not_found(name: str, where: str) -> StudyNotFoundError:
    """The error for a study name that is not in the storage ``where`` (a masked URL)."""
    return StudyNotFoundError(
        f"no study named {name!r} in {where}; `tuner studies list` shows the studies there"
    )


def _fix_hint(parsed: Any, reason: str) -> str:
    if parsed.get_backend_name() == "sqlite":
        return "check that the file's folder exists and is writable"
    if f'database "{parsed.database}" does not exist' in reason:
        # PostgreSQL's own words; a server holds many databases and tuner never creates one.
        port = f" -p {parsed.port}" if parsed.port else ""
        user = f" -U {parsed.username}" if parsed.username else ""
        where = f"-h {parsed.host or 'localhost'}{port}{user}"
        return f"create it first: createdb {where} {parsed.database}"
    return "check the URL's host, port, user, password and database, and that the server runs"


def grace_period_s() -> int:
    """Seconds without a heartbeat after which a RUNNING trial is stale.

    Heartbeat timing and retries come from the environment when a storage is opened, so
    they can be shortened (tests) or lengthened (slow networks): ``$TUNER_HEARTBEAT_INTERVAL``
    (30), ``$TUNER_GRACE_PERIOD`` (120), ``$TUNER_MAX_RETRY`` (2).
    """
    return int(os.environ.get("TUNER_GRACE_PERIOD", "120"))


def _heartbeat_kwargs() -> dict[str, Any]:
    return {
        "heartbeat_interval": int(os.environ.get("TUNER_HEARTBEAT_INTERVAL", "30")),
        "grace_period": grace_period_s(),
        "heartbeat_stale_trial_callback": RequeueStaleTrial(
            max_retry=int(os.environ.get("TUNER_MAX_RETRY", "2"))
        ),
    }


class RequeueStaleTrial(optuna.storages.RetryHeartbeatStaleTrialCallback):
    """Optuna's retry of a stale trial, without the reason it failed: the retry is a new
    chance, and a completed retry must not read as failed."""

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        trial.user_attrs = {k: v for k, v in trial.user_attrs.items() if k != FAIL_REASON}
        super().__call__(study, trial)


def _use_wal(storage: optuna.storages.RDBStorage) -> None:
    """WAL, and with it ``synchronous=NORMAL`` on this storage's connections.

    WAL is a property of the file: setting it once makes every later connection use it.
    ``synchronous`` is a property of each connection. Its default (FULL) syncs the disk at
    every commit, about 18 per trial; NORMAL syncs at checkpoints only, which with WAL still
    never corrupts the file and loses no commit when a process dies; a power cut may undo
    the last commits (at worst the last trials, which their retry runs again).
    """
    from sqlalchemy import event, text

    with storage.engine.connect() as conn:
        conn.execute(text("PRAGMA journal_mode=WAL"))

    @event.listens_for(storage.engine, "connect")
    def _fewer_syncs(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    storage.engine.dispose()  # connections pooled so far were opened without it


def study_exists(storage: optuna.storages.BaseStorage, name: str) -> bool:
    """Whether a study of that name is in the storage."""
    try:
        storage.get_study_id_from_name(name)
    except KeyError:
        return False
    return True


def sqlite_warning(url: str, *, workers: int) -> str | None:
    """A warning when several workers share an SQLite file, else None."""
    if not url.startswith("sqlite") or workers <= 1:
        return None
    many = (
        f"{workers} workers is more than the {SQLITE_MAX_WORKERS} it serves well; "
        if (workers > SQLITE_MAX_WORKERS)
        else ""
    )
    return (
        f"SQLite is for one machine and a few workers: {many}use PostgreSQL "
        f"(postgresql://user@host/db) to share a study between machines"
    )


def connection_budget(storage: optuna.storages.RDBStorage) -> tuple[int, int] | None:
    """PostgreSQL's (max_connections, connections in use), or None on other backends."""
    from sqlalchemy import text

    if storage.engine.dialect.name != "postgresql":
        return None
    with storage.engine.connect() as conn:
        limit = int(conn.execute(text("show max_connections")).scalar_one())
        reserved = int(conn.execute(text("show superuser_reserved_connections")).scalar_one())
        used = int(conn.execute(text("select count(*) from pg_stat_activity")).scalar_one())
    return limit - reserved, used


def check_connection_budget(url: str, *, workers: int) -> None:
    """Refuse to start ``workers`` processes that PostgreSQL has no connections for."""
    storage = open_storage(url, heartbeat=False)
    try:
        budget = connection_budget(storage)
    finally:
        storage.engine.dispose()
    if budget is None:
        return
    limit, used = budget
    needed = workers * (CONNECTIONS_PER_WORKER + 1)
    if used + needed > limit:
        raise StorageError(
            f"{workers} workers need up to {needed} database connections, but PostgreSQL "
            f"allows {limit} and {used} are in use; use fewer --workers, raise "
            f"max_connections, or set TUNER_DB_POOL=null behind PgBouncer"
        )
