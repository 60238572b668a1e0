"""Names and text behave the same on SQLite and PostgreSQL (RELIABILITY rows 17-18).

SQLite stores any text; PostgreSQL refuses NUL and Optuna's name columns hold 512
characters. tuner's own name rule refuses the same names on both before anything is
written, and what it accepts works on both. A wrong password on a real PostgreSQL that
checks passwords is one masked line.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import optuna
import pytest
import sqlalchemy as sa

from tests.conftest import need
from tuner.errors import SpecError, StorageError
from tuner.execution.run import prepare_run
from tuner.specs.spec import load_spec
from tuner.storage import open_storage
from tuner.trial.data import split_dataset

pytestmark = pytest.mark.postgres

REFUSED = ["n" * 129, "n" * 600, "a\x00b", "it's", 'say "hi"', "a b", "é", "-lead", ""]
ACCEPTED = ["n" * 128, "a.b_c-d", "A1", "digits-mlp.v2"]


@pytest.fixture(params=["sqlite", "postgres"])
def any_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")


@pytest.fixture(scope="module")
def small_data():
    import numpy as np

    rng = np.random.default_rng(0)
    return split_dataset(rng.normal(size=(40, 3)), rng.integers(0, 2, 40), name="small")


def _study_names(url: str) -> list[str]:
    return [s.study_name for s in optuna.get_all_study_summaries(url)] if _has_tables(url) else []


def _has_tables(url: str) -> bool:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        return "studies" in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


@pytest.mark.parametrize("name", REFUSED, ids=lambda n: repr(n)[:20])
def test_the_same_names_are_refused_on_every_backend_before_anything_is_written(
    name: str, any_url: str, tiny_spec, small_data
) -> None:
    with pytest.raises(SpecError) as refused:
        prepare_run(
            load_spec(tiny_spec()), storage_url=any_url, study_name=name, dataset=small_data
        )
    message = str(refused.value)
    assert message.startswith("--study-name: study name ") and "1-128 characters" in message
    assert "\n" not in message and len(message) < 200, "one short line, even for 600 characters"
    assert not _has_tables(any_url) if any_url.startswith("sqlite") else not _study_names(any_url)


@pytest.mark.parametrize("name", ACCEPTED, ids=lambda n: n[:20])
def test_names_the_rule_accepts_work_on_every_backend(
    name: str, any_url: str, tiny_spec, small_data
) -> None:
    prepared = prepare_run(
        load_spec(tiny_spec()), storage_url=any_url, study_name=name, dataset=small_data
    )
    assert _study_names(any_url) == [name]
    odd = "quote ' double \" NUL \x00 brace {} percent % é"
    prepared.study.set_user_attr("note", odd)  # attribute values are JSON: any text works
    trial = prepared.study.ask()
    trial.set_user_attr("fail_reason", odd)
    assert optuna.load_study(study_name=name, storage=any_url).user_attrs["note"] == odd
    assert (
        optuna.load_study(study_name=name, storage=any_url).trials[0].user_attrs["fail_reason"]
        == odd
    )


# --- a PostgreSQL that checks passwords --------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def password_postgres() -> Iterator[str]:
    """A private, throwaway PostgreSQL cluster with scram-sha-256 auth on a free port.

    The shared server trusts every local connection, so a wrong password would pass
    there; this cluster checks it. Yields the URL prefix of role ``tuner_pw``
    (password ``p@ss{w}%rd``), e.g. ``postgresql://tuner_pw:...@127.0.0.1:PORT``.
    """
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    need(bool(bins), "PostgreSQL server binaries not installed (/usr/lib/postgresql/*/bin)")
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="tuner-pg-"))
    data, port = folder / "data", _free_port()
    (folder / "pw").write_text("admin-secret\n")
    if as_postgres:
        shutil.chown(folder, "postgres")
        shutil.chown(folder / "pw", "postgres")
    run = lambda *cmd: subprocess.run([*as_postgres, *cmd], check=True, capture_output=True)  # noqa: E731
    run(f"{bins[-1]}/initdb", "-D", str(data), "-A", "scram-sha-256", "-U", "admin",
        f"--pwfile={folder / 'pw'}")  # fmt: skip
    run(f"{bins[-1]}/pg_ctl", "-D", str(data), "-w", "-l", str(folder / "log"), "-o",
        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start")  # fmt: skip
    try:
        admin = sa.create_engine(
            f"postgresql+psycopg://admin:admin-secret@127.0.0.1:{port}/postgres",
            isolation_level="AUTOCOMMIT",
        )
        with admin.connect() as conn:
            conn.execute(sa.text("create role tuner_pw login password 'p@ss{w}%rd'"))
            conn.execute(sa.text("create database tuner_pw owner tuner_pw"))
        admin.dispose()
        yield f"postgresql://tuner_pw:{quote('p@ss{w}%rd', safe='')}@127.0.0.1:{port}/tuner_pw"
    finally:
        run(f"{bins[-1]}/pg_ctl", "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def test_a_wrong_password_is_one_masked_line_and_nothing_is_written(
    password_postgres: str, cli, tiny_spec, tmp_path: Path
) -> None:
    wrong = password_postgres.replace(quote("p@ss{w}%rd", safe=""), "not-it")

    result = cli("run", str(tiny_spec()), "--storage", wrong, cwd=tmp_path)

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert 'password authentication failed for user "tuner_pw"' in result.stderr
    assert "not-it" not in result.stderr and "***" in result.stderr, "password masked"
    assert "check the URL's host, port, user, password" in result.stderr
    assert not _has_tables(password_postgres), "nothing written"


def test_a_password_with_braces_at_and_percent_works_percent_encoded(
    password_postgres: str,
) -> None:
    storage = open_storage(password_postgres)  # creates the tables: the login worked
    assert optuna.get_all_study_summaries(storage) == []
    with pytest.raises(StorageError, match=r"tuner_pw:\*\*\*@") as refused:
        open_storage(password_postgres.replace("rd@", "rX@"))
    assert "p%40ss" not in str(refused.value)


def test_a_password_with_an_unencoded_at_logs_in_and_stays_off_worker_command_lines(
    password_postgres: str, tmp_path: Path
) -> None:
    from tuner.execution.supervisor import worker_command, worker_env

    encoded = quote("p@ss{w}%rd", safe="")
    raw = password_postgres.replace(encoded, "p@ss{w}%rd")  # as someone would type it
    bare = password_postgres.replace(f":{encoded}@", "@")

    storage = open_storage(raw)  # logs in: the password ends at the last "@"
    assert optuna.get_all_study_summaries(storage) == []
    for url in (raw, password_postgres):
        argv = worker_command("s", url, data_dir=tmp_path)
        assert argv[argv.index("--storage") + 1] == bare
        assert worker_env(url, threads=1, gpu=None)["TUNER_DB_PASSWORD"] == "p@ss{w}%rd"
