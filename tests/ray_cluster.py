"""A throwaway one-node Ray cluster on 127.0.0.1, for the Ray tests and the benchmark.

`ray start --head --block` in a temporary directory, with free ports and its own token (not
the ~/.ray/auth_token every user of the machine shares), stopped with its process group.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RAY_CLI = Path(sys.executable).parent / "ray"
STARTED = "Ray runtime started"


@dataclass(frozen=True)
class RayCluster:
    address: str
    env: dict[str, str]  # what a shell that talks to this cluster has set
    modules: Path  # on the PYTHONPATH of the driver and every actor


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def local_ray_cluster(*, cpus: int, gpus: int) -> Iterator[RayCluster]:
    """Start a Ray head with ``cpus`` CPUs and ``gpus`` declared GPUs (Ray accepts GPUs
    that are not there); actors import tuner from this checkout."""
    # A short path: Ray's socket names must fit in 107 characters.
    temp = Path(tempfile.mkdtemp(prefix="tuner-ray-"))
    (temp / "token").write_text(secrets.token_hex(32), encoding="utf-8")
    modules = temp / "modules"
    modules.mkdir()
    env = {
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(modules)]),
        # Ray binds to the machine's address even when told 127.0.0.1, unless this is off.
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(temp / "token"),
    }
    port, client_port = _free_port(), _free_port()
    # Ports that are fixed by default are free ones here, so that two runs do not meet.
    command = [str(RAY_CLI), "start", "--head", "--block", "--node-ip-address", "127.0.0.1"]
    command += ["--port", str(port), "--ray-client-server-port", str(client_port)]
    command += ["--dashboard-agent-listen-port", str(_free_port()), "--include-dashboard=false"]
    command += ["--num-cpus", str(cpus), "--num-gpus", str(gpus), "--temp-dir", str(temp)]
    command += ["--disable-usage-stats"]
    log = temp / "ray-start.log"
    head = subprocess.Popen(
        command,
        env={**os.environ, **env},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, ended whole below if need be
    )
    try:
        deadline = time.monotonic() + 120
        while STARTED not in log.read_text() and head.poll() is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"ray start: no cluster in 120 s\n{log.read_text()}")
            time.sleep(0.5)
        if head.poll() is not None:
            raise RuntimeError(f"ray start failed:\n{log.read_text()}")
        yield RayCluster(
            address=f"127.0.0.1:{port}",
            env=env,
            modules=modules,
        )
    finally:
        head.terminate()  # `ray start --block` stops the cluster's processes on SIGTERM
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        shutil.rmtree(temp, ignore_errors=True)
