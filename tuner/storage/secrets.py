"""No password is stored on a study: what anyone who can open a study reads (reports,
``tuner studies show``, optuna-dashboard's ``/api/studies``) holds none.

Every URL written into an attribute is masked on the way in
(:class:`~tuner.storage.resilient.ResilientRDBStorage` calls :func:`masked`);
:func:`stored_secrets` finds what older versions stored verbatim (a spec's
``storage: postgresql://bob:s3cret@db/tuner``), for ``tuner storage doctor`` and
``tuner storage mask-secrets``.
"""

from __future__ import annotations

from typing import Any

import optuna

from tuner.storage.urls import mask_url


def masked(value: Any) -> Any:
    """``value`` (a JSON-able attribute) with the password of every URL in it masked.

    Example:
        >>> masked({"storage": "postgresql://bob:s3cret@db/tuner", "seed": 0})
        {'storage': 'postgresql://bob:***@db/tuner', 'seed': 0}
    """
    if isinstance(value, str):
        return mask_url(value) if "://" in value else value
    if isinstance(value, dict):
        return {key: masked(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(masked(item) for item in value)
    return value


def stored_secrets(storage: optuna.storages.BaseStorage) -> dict[str, list[str]]:
    """Study name -> the user attributes that hold a password in plain text."""
    found = {}
    for study in storage.get_all_studies():
        keys = sorted(k for k, v in study.user_attrs.items() if masked(v) != v)
        if keys:
            found[study.study_name] = keys
    return found
