"""The one module that builds database engines and Optuna storages.

Everything else receives a storage object or a URL. Which URL: ``--storage``, else the
``TUNER_STORAGE`` environment variable, else the spec's ``storage``, else an SQLite file
``tuner.db`` in the working directory. Any SQLAlchemy URL works; ``postgresql://`` is
served by psycopg 3.

Passwords stay off command lines: a URL without one takes it from ``$TUNER_DB_PASSWORD``
or from the file named by ``$TUNER_DB_PASSWORD_FILE`` (a Docker secret), percent-encoded
here, and every message shows URLs through :func:`mask_url`.

Faults survived here rather than in every caller: connections a database restart killed
are replaced before use; writes that meet a dropped connection are retried with backoff;
the heartbeat outlives database outages; a trial whose worker died is failed after the
grace period and re-queued with the same parameters up to ``$TUNER_MAX_RETRY`` times.

Workers take trials here too, each in one transaction: the oldest queued (WAITING) trial,
else a new trial from the study's budget (:meth:`ResilientRDBStorage.spending_budget`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import select
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuner import records
from tuner.errors import StorageError, StudyNotFoundError

if TYPE_CHECKING:
    import sqlalchemy

DEFAULT_STORAGE = "sqlite:///tuner.db"
ENV_VAR = "TUNER_STORAGE"
PASSWORD_ENV = "TUNER_DB_PASSWORD"
PASSWORD_FILE_ENV = "TUNER_DB_PASSWORD_FILE"
SQLITE_BUSY_TIMEOUT_S = 60
# Heartbeat timing and retries can be shortened (tests) or lengthened (slow networks).
HEARTBEAT_INTERVAL_S = int(os.environ.get("TUNER_HEARTBEAT_INTERVAL", "30"))
GRACE_PERIOD_S = int(os.environ.get("TUNER_GRACE_PERIOD", "120"))
MAX_RETRY = int(os.environ.get("TUNER_MAX_RETRY", "2"))
# A worker holds one connection for its trial loop and one for its heartbeat thread.
CONNECTIONS_PER_WORKER = 2
SQLITE_MAX_WORKERS = 4
WRITE_RETRY_S = float(os.environ.get("TUNER_WRITE_RETRY_SECONDS", "120"))

log = logging.getLogger(__name__)
T = TypeVar("T")


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
    return parsed.set(password=None).render_as_string(hide_password=False), str(parsed.password)


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


def _engine_kwargs(parsed: Any) -> dict[str, Any]:
    if parsed.get_backend_name() == "sqlite":
        # The busy timeout makes concurrent local writers wait instead of failing at once.
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    if os.environ.get("TUNER_DB_POOL") == "null":
        # Behind PgBouncer (or with a tight max_connections) hold nothing between calls;
        # a connection opened for each call needs no check that it is still alive.
        from sqlalchemy.pool import NullPool

        return {"poolclass": NullPool}
    # One process runs one trial at a time, so its pool needs only the loop and heartbeat;
    # recycling beats idle timeouts. Connections a database restart killed are replaced:
    # psycopg's by _drop_closed_connections, other drivers' by a ping before every use.
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

    parsed = _with_password(_normalise(url))
    masked = mask_url(url)
    if not create and parsed.get_backend_name() == "sqlite":
        _require_sqlite_file(parsed.database, masked)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat
            heartbeat_kwargs = _heartbeat_kwargs() if heartbeat else {}
            storage = ResilientRDBStorage(
                parsed.render_as_string(hide_password=False),
                engine_kwargs=_engine_kwargs(parsed),
                skip_table_creation=not create,
                skip_compatibility_check=not check_schema,
                **heartbeat_kwargs,
            )
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
        raise StorageError(f"cannot open storage {masked}: {reason}; {_fix_hint(parsed)}") from None
    except RuntimeError as exc:  # Optuna's schema-version check
        raise StorageError(
            f"storage {masked}: {str(exc).splitlines()[0]} (stop every worker, then run "
            f"`tuner storage upgrade --storage URL`)"
        ) from None
    if storage.engine.driver == "psycopg":
        _drop_closed_connections(storage.engine)
    if create and parsed.get_backend_name() == "sqlite":
        _use_wal(storage)
    return storage


def _require_sqlite_file(database: str | None, masked: str) -> None:
    if database and database != ":memory:" and not Path(database).is_file():
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


@contextmanager
def read_connection(url: str) -> Iterator[sqlalchemy.Connection]:
    """A connection to an existing Optuna storage, for read-only SQL (:mod:`tuner.tables`).

    Opening Optuna's RDBStorage checks the schema through alembic, about 1 s with its
    import: half of an interactive command's budget. Here the stored revision is compared
    with Optuna's newest one directly; only when they differ, or the database cannot be
    read, is the storage opened the full way, so an old schema, a missing table or a
    refused connection gives the same one-line error as every other command.

    Example:
        >>> with read_connection("sqlite:///tuner.db") as conn:
        ...     studies = tuner.tables.read_studies(conn)
    """
    parsed = _with_password(_normalise(url))
    if parsed.get_backend_name() == "sqlite":
        _require_sqlite_file(parsed.database, mask_url(url))
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
        engine = create_engine(parsed, **_engine_kwargs(parsed))
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
    versions = Path(optuna.__file__).parent / "storages" / "_rdb" / "alembic" / "versions"
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


def _fix_hint(parsed: Any) -> str:
    if parsed.get_backend_name() == "sqlite":
        return "check that the file's folder exists and is writable"
    return "check the URL's host, port, user, password and database, and that the server runs"


def _heartbeat_kwargs() -> dict[str, Any]:
    return {
        "heartbeat_interval": HEARTBEAT_INTERVAL_S,
        "grace_period": GRACE_PERIOD_S,
        "heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(
            max_retry=MAX_RETRY
        ),
    }


class BudgetSpent(Exception):
    """The study's budget allows no further trial (raised inside ``spending_budget``)."""


# Set while this thread creates a trial that is to spend its study's budget.
_spending = threading.local()


class ResilientRDBStorage(optuna.storages.RDBStorage):
    """Optuna's RDB storage, made to outlive dropped connections and database restarts.

    Optuna's heartbeat thread dies at the first database error and a finished trial's
    final write is tried once; here the heartbeat logs and carries on, and the writes a
    trial makes are retried with backoff for up to ``$TUNER_WRITE_RETRY_SECONDS``.
    """

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            super().record_heartbeat(trial_id)
        except Exception as exc:  # the next beat retries; the thread must survive
            log.warning("heartbeat of trial %s not recorded: %s", trial_id, _first_line(exc))

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        if state == TrialState.RUNNING:
            return self._claim(_trials().c.trial_id == trial_id) is not None
        if not state.is_finished():
            return super().set_trial_state_values(trial_id, state, values)
        try:
            return _retry(
                lambda: super(ResilientRDBStorage, self).set_trial_state_values(
                    trial_id, state, values
                )
            )
        except optuna.exceptions.UpdateFinishedTrialError:
            # A retry after a write that committed but whose reply was lost.
            if self.get_trial(trial_id).state == state:
                return True
            raise

    def claim_next(self, study_id: int) -> int | None:
        """Claim the study's oldest WAITING trial, or return None if there is none.

        One UPDATE, where Optuna's pop reads every WAITING trial and then claims them in
        turn; PostgreSQL's SKIP LOCKED sends concurrent workers to different trials. A read
        goes first: usually nothing waits, and on SQLite an UPDATE takes the write lock
        even when it changes nothing.
        """
        import sqlalchemy as sa

        queued = _trials().alias("queued")
        oldest = (
            sa.select(queued.c.trial_id)
            .where(queued.c.study_id == study_id, queued.c.state == TrialState.WAITING)
            .order_by(queued.c.trial_id)
            .limit(1)
        )
        with self.engine.connect() as conn:
            if conn.execute(oldest).first() is None:
                return None
        # SQLite has no SKIP LOCKED (nor needs it: its writers queue up).
        taken = oldest.with_for_update(skip_locked=True).scalar_subquery()
        return self._claim(_trials().c.trial_id == taken)

    def _claim(self, which: Any) -> int | None:
        """Move the WAITING trial ``which`` selects to RUNNING, in one atomic UPDATE.

        Optuna reads the state, then writes it; on SQLite (no SELECT FOR UPDATE) two
        processes can both read WAITING and both run the trial. Not retried: after a lost
        reply the trial would look taken, and the queue simply offers the next one.
        """
        from datetime import datetime

        import sqlalchemy as sa

        trials = _trials()
        with self.engine.begin() as conn:
            claimed = conn.execute(
                sa.update(trials)
                .where(which, trials.c.state == TrialState.WAITING)
                .values(state=TrialState.RUNNING, datetime_start=datetime.now())
                .returning(trials.c.trial_id)
            ).scalar_one_or_none()
            if claimed is not None:
                self._first_beat(conn, claimed)
        return claimed

    @contextlib.contextmanager
    def spending_budget(self) -> Iterator[None]:
        """Trials created inside spend one of their study's budget (:class:`BudgetSpent`
        when none is left) and get their first heartbeat, in the creating transaction.

        The budget (study user attribute ``tuner_budget``) is the number of trials workers
        may still create. Queuing that many WAITING trials instead costs O(queue) per trial:
        Optuna's cache re-reads every unfinished trial on every read.
        """
        _spending.on = True
        try:
            yield
        finally:
            _spending.on = False

    def _get_prepared_new_trial(
        self, study_id: int, template_trial: FrozenTrial | None, session: Any
    ) -> Any:
        # Optuna's step that adds the trial row, in its transaction, with the study locked.
        if not getattr(_spending, "on", False):
            return super()._get_prepared_new_trial(study_id, template_trial, session)
        _spend_one(session, study_id)
        trial: Any = super()._get_prepared_new_trial(study_id, template_trial, session)
        self._first_beat(session, trial.trial_id)
        return trial

    def _first_beat(self, conn: Any, trial_id: int) -> None:
        # In the claiming transaction: a worker killed before its heartbeat thread first
        # beats must still be reaped (Optuna skips trials with no beat).
        import sqlalchemy as sa
        from optuna.storages._rdb.models import TrialHeartbeatModel

        if self.heartbeat_interval is not None:
            conn.execute(sa.insert(TrialHeartbeatModel.__table__).values(trial_id=trial_id))

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        _retry(lambda: super(ResilientRDBStorage, self).set_trial_user_attr(trial_id, key, value))

    def set_trial_intermediate_value(
        self, trial_id: int, step: int, intermediate_value: float
    ) -> None:
        _retry(
            lambda: super(ResilientRDBStorage, self).set_trial_intermediate_value(
                trial_id, step, intermediate_value
            )
        )


def _retry(write: Callable[[], T]) -> T:
    """Run a write, retrying with backoff while the database connection is the problem."""
    deadline = time.monotonic() + WRITE_RETRY_S
    delay = 0.5
    while True:
        try:
            return write()
        except Exception as exc:
            if not is_connection_error(exc) or time.monotonic() + delay > deadline:
                raise
            log.warning("database write failed (%s); retrying in %.1fs", _first_line(exc), delay)
            time.sleep(delay)
            delay = min(delay * 2, 15.0)


def _trials() -> Any:
    from optuna.storages._rdb.models import TrialModel

    return TrialModel.__table__


def _spend_one(session: Any, study_id: int) -> None:
    """Take one trial from the study's budget in one UPDATE, or raise :class:`BudgetSpent`.

    The CASE keeps PostgreSQL from casting other attributes' JSON to a number, as it may
    test the conditions of a WHERE clause in any order.
    """
    import sqlalchemy as sa
    from optuna.storages._rdb.models import StudyUserAttributeModel

    attrs = StudyUserAttributeModel.__table__
    is_budget = attrs.c.key == records.BUDGET
    left = sa.case((is_budget, sa.cast(attrs.c.value_json, sa.Integer)), else_=0)
    spent = session.execute(
        sa.update(attrs)
        .where(attrs.c.study_id == study_id, is_budget, left > 0)
        .values(value_json=sa.cast(left - 1, sa.Text))
    )
    if spent.rowcount != 1:
        raise BudgetSpent()


def is_connection_error(exc: BaseException) -> bool:
    """Whether an error came from a lost or refused database connection (worth retrying)."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    for error in (exc, exc.__cause__):
        if isinstance(error, OperationalError | InterfaceError):
            return True
        if isinstance(error, DBAPIError) and error.connection_invalidated:
            return True
    return False


def _first_line(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0]


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
