"""Storage: where studies live, and the only stage that talks to the database.

- :mod:`~tuner.storage.urls`: which database (``--storage``, ``$TUNER_STORAGE``, the spec,
  ``tuner.db``), passwords from the environment or a secret file, masked in messages.
- :mod:`~tuner.storage.engine`: engines and Optuna storages, tuned per backend.
- :mod:`~tuner.storage.resilient`: the storage that outlives dropped connections.
- :mod:`~tuner.storage.queue`: the trial queue: every claim, the budget, re-queue, reap.
- :mod:`~tuner.storage.schema` and :mod:`~tuner.storage.tables`: fast read-only SQL for
  listings; :mod:`~tuner.storage.maintenance`: ``tuner storage doctor/upgrade/reap``.
"""

from tuner.storage.engine import (
    check_connection_budget,
    check_storage_url,
    load_study,
    open_storage,
    sqlite_warning,
    study_exists,
    study_not_found,
)
from tuner.storage.schema import read_connection
from tuner.storage.urls import (
    DEFAULT_STORAGE,
    PASSWORD_ENV,
    mask_url,
    resolve_storage_url,
    without_password,
)

__all__ = [
    "DEFAULT_STORAGE",
    "PASSWORD_ENV",
    "check_connection_budget",
    "check_storage_url",
    "load_study",
    "mask_url",
    "open_storage",
    "read_connection",
    "resolve_storage_url",
    "sqlite_warning",
    "study_exists",
    "study_not_found",
    "without_password",
]
