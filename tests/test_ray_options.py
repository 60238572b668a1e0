"""`tuner run --ray` refuses what cannot work before anything is written, without a
cluster; workers are shared out to a cluster's nodes as Ray would place them; and a run
without --ray never loads Ray."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tuner.errors import SpecError
from tuner.execution.ray_cluster import Placement, _reason, place_workers


def _tuner_without_ray(*args: str, cwd) -> subprocess.CompletedProcess[str]:
    """`tuner ARGS` in a Python where `import ray` fails, as where it is not installed."""
    code = "import sys; sys.modules['ray'] = None\nfrom tuner.cli import main\nmain()"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_two_trials_per_gpu_on_two_gpus_make_four_workers_of_half_a_gpu():
    assert place_workers([(2, 2)], workers=None, trials_per_gpu=2) == Placement(4, 0.5, 0.5)
    assert place_workers([(8, 1), (8, 1)], workers=None, trials_per_gpu=2) == Placement(4, 4, 0.5)
    assert place_workers([(8, 1), (8, 1)], workers=3, trials_per_gpu=2).workers == 3


def test_cpu_workers_get_the_largest_share_that_fits_on_every_node():
    # 3 workers on two 8-CPU nodes: 4 CPUs each (two on one node, one on the other)
    assert place_workers([(8, 0), (8, 0)], workers=3, trials_per_gpu=None).cpus == 4
    # more workers than CPUs: a third of a CPU each, one thread
    placement = place_workers([(2, 0)], workers=6, trials_per_gpu=None)
    assert placement.cpus == pytest.approx(1 / 3) and placement.threads == 1
    # a head node without CPUs (as KubeRay advises) holds no worker
    assert place_workers([(0, 0), (4, 0)], workers=2, trials_per_gpu=None).cpus == 2


def test_more_workers_than_gpu_shares_is_refused():
    with pytest.raises(SpecError, match="the cluster has 4 GPU shares; ask for at most that"):
        place_workers([(2, 2)], workers=5, trials_per_gpu=2)


def test_without_ray_installed_the_error_names_the_extra(tiny_spec, tmp_path):
    spec = tiny_spec()
    done = _tuner_without_ray(
        "run",
        str(spec),
        "--storage",
        "sqlite:///study.db",
        "--ray",
        "auto",
        "--workers",
        "2",
        cwd=tmp_path,
    )

    assert done.returncode == 1
    assert done.stderr.strip() == (
        "Error: --ray needs Ray, which is not installed: pip install 'tuner[ray]' "
        "(from a checkout: pip install -e '.[ray]')"
    )
    assert not (tmp_path / "study.db").exists()


@pytest.mark.parametrize(
    ("options", "expected", "code"),
    [
        (
            ["--ray", "127.0.0.1:1", "--workers", "2"],
            "Error: --ray 127.0.0.1:1: nothing answers at 127.0.0.1:1 ([Errno 111] Connection "
            "refused); start the cluster (`ray start --head`) or give its address (host:6379, "
            "ray://host:10001)",
            1,
        ),
        (
            # Nothing listens there: Ray Client is refused before connecting.
            ["--ray", "ray://127.0.0.1:1", "--workers", "2"],
            "Error: --storage sqlite:///study.db: an SQLite file cannot be shared through Ray "
            "Client (ray://127.0.0.1:1): the workers run on the cluster's nodes, not on this "
            "machine; give --storage postgresql://user@host/db, reachable from every node",
            2,
        ),
        (
            ["--ray", "auto", "--gpus", "0,1"],
            "Error: --gpus 0,1 with --ray: Ray chooses the devices; give --gpus all (every GPU "
            "of the cluster; --workers N to use fewer)",
            2,
        ),
        (
            ["--ray", "auto"],
            "Error: --ray needs --workers N or --gpus all: how many workers to run there",
            2,
        ),
    ],
)
def test_ray_options_that_cannot_work_are_refused_before_anything_is_written(
    cli, tiny_spec, tmp_path, options, expected, code
):
    done = cli("run", str(tiny_spec()), "--storage", "sqlite:///study.db", *options, cwd=tmp_path)

    assert done.returncode == code
    assert done.stderr.strip() == expected
    assert not (tmp_path / "study.db").exists()


def test_ray_client_named_by_ray_address_is_refused_for_sqlite_too(cli, tiny_spec, tmp_path):
    spec = str(tiny_spec())
    options = ["--storage", "sqlite:///study.db", "--ray", "auto", "--workers", "2"]
    env = {"RAY_ADDRESS": "ray://127.0.0.1:1"}
    done = cli("run", spec, *options, cwd=tmp_path, env=env)

    assert done.returncode == 2
    assert "cannot be shared through Ray Client (ray://127.0.0.1:1)" in done.stderr
    assert not (tmp_path / "study.db").exists()


def test_a_ray_client_server_failure_is_told_by_its_last_line():
    # Ray Client's server answers with a traceback after a line that only announces it.
    failure = ConnectionAbortedError(
        "Initialization failure from server:\nTraceback (most recent call last):\n"
        '  File "proxier.py", line 765, in Datapath\n'
        "RuntimeError: Starting Ray client server failed.\n"
    )
    assert _reason(failure) == (
        "Initialization failure from server: RuntimeError: Starting Ray client server failed."
    )
    assert _reason(ConnectionError("Could not find any running Ray instance.\nmore")) == (
        "Could not find any running Ray instance."
    )


@pytest.mark.slow
def test_a_run_without_ray_never_imports_it(tiny_spec, tmp_path):
    spec = tiny_spec(data={"source": "digits", "max_rows": 200}, training={"max_epochs": 1})
    code = (
        "import sys\nfrom tuner.cli import main\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "print('ray loaded:', 'ray' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "run",
            str(spec),
            "--storage",
            "sqlite:///study.db",
            "--n-trials",
            "1",
            "--workers",
            "1",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ray loaded: False")
