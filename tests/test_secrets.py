"""No password is stored on a study, and none leaks into a message, whatever it holds.

A spec's ``storage:`` URL with a password is recorded masked (the dashboard serves study
attributes to anyone); ``tuner storage doctor`` flags studies that older versions stored
one on, and ``tuner storage mask-secrets`` rewrites them. A password with an un-encoded
``@`` and ``:`` (``p@ss:w@rd``) logs in and is shown as ``***`` on every path that prints
a URL: the run's summary, errors, doctor, ``studies list/show``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.request import urlopen

import optuna
import pytest
import sqlalchemy as sa

from tests.conftest import PG_ADMIN_URL
from tests.test_dashboard import running_dashboard

PASSWORD = "p@ss:w@rd"
# Any piece of the password that a bad split at the first "@" or ":" would print.
PIECES = ("p@ss", "ss:w", "w@rd", "@rd@")


def _no_password(text: str) -> None:
    for piece in PIECES:
        assert piece not in text, f"{piece!r} leaked: {text}"


@pytest.fixture(params=["sqlite_url", "postgres_url"])
def any_url(request: pytest.FixtureRequest) -> str:
    """A real SQLite file, then a fresh database on the real PostgreSQL."""
    return request.getfixturevalue(request.param)


@pytest.fixture
def role_url(postgres_url: str) -> Iterator[str]:
    """``postgresql://ROLE:p@ss:w@rd@127.0.0.1:5432/DB``, un-encoded, for a role that owns
    the fresh database (the shared server trusts local logins, so messages are what is
    tested here; tests/test_names_backends.py logs in with such a password for real)."""
    role = f"tuner_at_{uuid.uuid4().hex[:8]}"
    database = postgres_url.rsplit("/", 1)[1]
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"create role {role} login password '{PASSWORD}'")
        conn.exec_driver_sql(f'alter database "{database}" owner to {role}')
    try:
        yield f"postgresql://{role}:{PASSWORD}@127.0.0.1:5432/{database}"
    finally:
        study_db = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
        with study_db.connect() as conn:  # the tables it created
            conn.exec_driver_sql(f"drop owned by {role}")
        study_db.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'alter database "{database}" owner to postgres')
            conn.exec_driver_sql(f"drop role {role}")
        admin.dispose()


def _spec_of(url: str, name: str) -> dict:
    return optuna.load_study(study_name=name, storage=url).user_attrs["tuner_spec"]


def test_a_password_in_the_spec_is_stored_masked_and_every_message_masks_it(
    role_url: str, postgres_url: str, cli, tiny_spec, tmp_path: Path
) -> None:
    masked = role_url.replace(PASSWORD, "***")
    spec = tiny_spec(storage=role_url, budget={"n_trials": 1})

    done = cli("run", str(spec), cwd=tmp_path)  # the URL from the spec, un-encoded "@"

    assert done.returncode == 0, done.stderr
    _no_password(done.stdout + done.stderr)
    assert f"Stored in {masked}" in done.stdout  # the summary
    assert _spec_of(postgres_url, "tiny")["storage"] == masked

    database = role_url.rsplit("/", 1)[1]
    shown = {
        "studies show": cli("studies", "show", "tiny", "--storage", role_url),
        "doctor": cli("storage", "doctor", "--storage", role_url),
        "unknown study": cli("studies", "show", "ghost", "--storage", role_url),
        "unknown database": cli(
            "studies", "list", "--storage", role_url.replace(f"/{database}", "/nodb")
        ),
        "refused connection": cli("studies", "list", "--storage", role_url.replace("5432", "1")),
    }
    for what, result in shown.items():
        _no_password(result.stdout + result.stderr)
        assert "***@127.0.0.1:" in result.stdout + result.stderr, what
        assert "Traceback" not in result.stderr, what
    assert shown["studies show"].returncode == 0 and shown["doctor"].returncode == 0
    assert f"storage      {masked}" in shown["doctor"].stdout
    assert shown["unknown study"].returncode == 2
    assert "does not exist" in shown["unknown database"].stderr


def test_an_empty_storage_is_listed_with_its_url_masked(role_url: str, cli) -> None:
    made = cli("storage", "doctor", "--storage", role_url)  # creates the tables
    listed = cli("studies", "list", "--storage", role_url)

    assert made.returncode == 0, made.stderr
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr.strip() == f"No studies in {role_url.replace(PASSWORD, '***')}."


def _old_study(url: str) -> None:
    """Studies as older versions of tuner stored them: the spec's password verbatim."""
    storage = optuna.storages.RDBStorage(url)  # plain Optuna: nothing masks
    old = optuna.create_study(study_name="old", storage=storage)
    old.set_user_attr("tuner_spec", {"name": "old", "seed": 3, "storage": SECRET_URL})
    optuna.create_study(study_name="clean", storage=storage).set_user_attr("note", "plain")
    storage.engine.dispose()


SECRET_URL = "postgresql://bob:s3cret@db.example/tuner"


def test_doctor_flags_a_stored_password_and_mask_secrets_rewrites_it(any_url: str, cli) -> None:
    _old_study(any_url)

    flagged = cli("storage", "doctor", "--storage", any_url)
    fixed = cli("storage", "mask-secrets", "--storage", any_url)
    again = cli("storage", "doctor", "--storage", any_url)
    nothing_left = cli("storage", "mask-secrets", "--storage", any_url)

    assert flagged.returncode == 1, flagged.stderr
    assert (
        "warning      study old: tuner_spec holds a database password in plain text (anyone "
        "who can open the study reads it): `tuner storage mask-secrets` masks it"
    ) in flagged.stdout
    assert "clean" not in flagged.stdout and "s3cret" not in flagged.stdout
    assert fixed.returncode == 0 and fixed.stdout == "old: masked the password in tuner_spec\n"
    assert _spec_of(any_url, "old") == {
        "name": "old",
        "seed": 3,
        "storage": "postgresql://bob:***@db.example/tuner",
    }
    assert optuna.load_study(study_name="clean", storage=any_url).user_attrs == {"note": "plain"}
    assert again.returncode == 0 and again.stdout.endswith("healthy\n"), again.stdout
    with running_dashboard(any_url) as dashboard:
        served = urlopen(dashboard.replace("/dashboard", "/api/studies"), timeout=30).read()
    assert b"postgresql://bob:***@db.example/tuner" in served and b"s3cret" not in served
    assert nothing_left.returncode == 0 and nothing_left.stdout == "no stored passwords\n"


def test_a_copied_study_leaves_the_password_behind(sqlite_url: str, cli, tmp_path: Path) -> None:
    _old_study(sqlite_url)
    target = f"sqlite:///{tmp_path / 'copy.db'}"

    done = cli("studies", "copy", "old", "--storage", sqlite_url, "--to-storage", target)

    assert done.returncode == 0, done.stderr
    assert _spec_of(target, "old")["storage"] == "postgresql://bob:***@db.example/tuner"
