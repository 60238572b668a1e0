"""Which Ray cluster, and how a study's workers fit on it: connect, then place.

``tuner run --ray ADDRESS`` connects here before the study is created, so that a missing
Ray, an unreachable cluster, GPUs that are not there or an SQLite file that the nodes
cannot share are refused with one line and nothing written. Ray is imported here inside
functions, and by :mod:`tuner.execution.ray_launcher`, which only ``--ray`` imports:
``tuner run`` without ``--ray`` never loads it.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from fractions import Fraction
from types import ModuleType
from typing import Any

from tuner.errors import ClusterError, SpecError
from tuner.execution.supervisor import GpuError
from tuner.storage import mask_url

CONNECT_TIMEOUT_S = 5


@dataclass(frozen=True)
class Placement:
    """How many workers, and the share of a node each asks Ray for.

    Example:
        >>> place_workers([(8, 1), (8, 1)], workers=None, trials_per_gpu=2)
        Placement(workers=4, cpus=4.0, gpus=0.5)
    """

    workers: int
    cpus: float  # CPUs per worker (a fraction when there are more workers than CPUs)
    gpus: float  # GPU share per worker: 1 / trials-per-gpu; 0 on CPUs

    @property
    def threads(self) -> int:
        """CPU threads each worker trains with: its CPU share, at least one."""
        return max(1, int(self.cpus))


@dataclass(frozen=True)
class Cluster:
    """A connected Ray cluster and the study's workers placed on it."""

    address: str
    nodes: int
    cpus: float
    gpus: float
    placement: Placement


def place_workers(
    nodes: list[tuple[float, float]], *, workers: int | None, trials_per_gpu: int | None
) -> Placement:
    """Share the nodes (CPUs, GPUs of each) out to the workers.

    With ``trials_per_gpu`` (``--gpus all``) there are that many workers per GPU of the
    cluster (``workers`` may ask for fewer, never more), each asking for ``1/trials_per_gpu``
    of a GPU; otherwise ``workers`` CPU workers. Each worker gets the largest CPU share
    (whole CPUs, else 1/2, 1/3, ... of one) with which all of them fit on the nodes, as
    Ray places them: a worker never spans two nodes.
    """
    # Workers each node can hold on its GPUs; None: no limit but its CPUs.
    per_node: list[int | None] = [None] * len(nodes)
    gpu_share = Fraction(0)
    if trials_per_gpu is not None:
        shares = [int(gpus) * trials_per_gpu for _, gpus in nodes]
        per_node, gpu_share = list(shares), Fraction(1, trials_per_gpu)
        if workers is not None and workers > sum(shares):
            raise SpecError(
                f"--workers {workers} with --gpus all --trials-per-gpu {trials_per_gpu}: the "
                f"cluster has {sum(shares)} GPU shares; ask for at most that many workers"
            )
        workers = workers or sum(shares)
    if workers is None:
        raise ValueError("place_workers needs workers, trials_per_gpu or both")
    most = max(int(cpus) for cpus, _ in nodes)
    cpu_shares = [Fraction(c) for c in range(most, 0, -1)]
    cpu_shares += [Fraction(1, k) for k in range(2, workers + 1)]
    for share in cpu_shares:
        fits = sum(
            min(int(Fraction(cpus) / share), cap if cap is not None else workers)
            for (cpus, _), cap in zip(nodes, per_node, strict=True)
        )
        if fits >= workers:
            return Placement(workers=workers, cpus=float(share), gpus=float(gpu_share))
    raise ClusterError(
        f"{workers} workers do not fit on the cluster's nodes: the nodes with GPUs have no "
        f"CPU to give them; start those nodes with --num-cpus"
    )


def import_ray() -> ModuleType:
    """Ray, or one line saying which extra installs it."""
    try:
        import ray
    except ImportError:
        raise ClusterError(
            "--ray needs Ray, which is not installed: pip install 'tuner[ray]' "
            "(from a checkout: pip install -e '.[ray]')"
        ) from None
    return ray


def connect(
    address: str,
    *,
    storage_url: str,
    workers: int | None,
    gpus: str | None,
    trials_per_gpu: int,
) -> Cluster:
    """Connect to the Ray cluster at ``address`` and place the study's workers on it.

    ``address`` is ``auto`` (``$RAY_ADDRESS``, else the cluster ``ray start`` runs on this
    machine), ``host:port`` of a cluster this machine is a node of, or ``ray://host:10001``
    (Ray Client). ``gpus`` is None or ``all``: Ray, not the user, chooses the devices.

    Example (needs a running Ray cluster, so the test suite skips it):
        >>> connect("auto", storage_url="postgresql://tuner@db/tuner", workers=8,
        ...         gpus=None, trials_per_gpu=1).placement.threads  # doctest: +SKIP
        1
    """
    if gpus not in (None, "all"):
        raise SpecError(
            f"--gpus {gpus} with --ray: Ray chooses the devices; give --gpus all (every GPU of "
            f"the cluster; --workers N to use fewer)"
        )
    if workers is None and gpus is None:
        raise SpecError("--ray needs --workers N or --gpus all: how many workers to run there")
    target = _target(address)
    if storage_url.startswith("sqlite") and target.startswith("ray://"):
        # Refused before connecting: a Ray Client driver is never a node of the cluster, so
        # the answer does not depend on it (and Ray Client's server takes seconds to start).
        raise SpecError(
            f"--storage {mask_url(storage_url)}: an SQLite file cannot be shared through Ray "
            f"Client ({target}): the workers run on the cluster's nodes, not on this "
            f"machine; give --storage postgresql://user@host/db, reachable from every node"
        )
    ray = import_ray()
    _init(ray, address)
    alive = [node for node in ray.nodes() if node["Alive"]]
    nodes = [(n["Resources"].get("CPU", 0.0), n["Resources"].get("GPU", 0.0)) for n in alive]
    found = f"{address} ({len(nodes)} node{'s' if len(nodes) != 1 else ''})"
    if gpus == "all" and not any(g >= 1 for _, g in nodes):
        raise GpuError(
            f"--gpus all: the Ray cluster at {found} has no GPU; run without --gpus to "
            f"train on CPUs, or start nodes with GPUs (`ray start --num-gpus N`)"
        )
    if storage_url.startswith("sqlite") and not _on_this_machine(ray, alive):
        raise SpecError(
            f"--storage {mask_url(storage_url)}: an SQLite file cannot be shared by the "
            f"nodes of the Ray cluster at {found}; give --storage postgresql://user@host/db, "
            f"reachable from every node"
        )
    placement = place_workers(
        nodes, workers=workers, trials_per_gpu=trials_per_gpu if gpus else None
    )
    return Cluster(
        address=ray.get_runtime_context().gcs_address,
        nodes=len(nodes),
        cpus=sum(c for c, _ in nodes),
        gpus=sum(g for _, g in nodes),
        placement=placement,
    )


def _init(ray: Any, address: str) -> None:
    """``ray.init`` as a driver that leaves the actors' output in Ray's log files."""
    _check_answers(address)
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterError(
            f"--ray {address}: cannot join the Ray cluster ({_reason(exc)}); start one with `ray "
            f"start --head`, or give its address (host:6379, ray://host:10001)"
        ) from None


def _reason(exc: Exception) -> str:
    """One line of why Ray could not connect: the first line of its message, and the last
    when the first only announces the rest (Ray Client sends the server's traceback)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if lines[0].endswith(":") and len(lines) > 1:
        return f"{lines[0]} {lines[-1]}"
    return lines[0]


def _target(address: str) -> str:
    """The address ``ray.init`` will use: ``auto`` reads ``$RAY_ADDRESS``, else stays
    ``auto`` (the cluster ``ray start`` runs on this machine)."""
    if address == "auto":
        return os.environ.get("RAY_ADDRESS") or "auto"
    return address


def _check_answers(address: str) -> None:
    """Refuse at once an address where nothing listens: ``ray.init`` retries for minutes.

    ``auto`` without ``$RAY_ADDRESS`` is left to Ray, which finds the cluster of this
    machine or says at once that there is none.
    """
    target = _target(address)
    if target == "auto":
        return
    client = target.startswith("ray://")
    host, _, port = target.removeprefix("ray://").rpartition(":")
    if not host:  # no port given: Ray's defaults
        host, port = port, ("10001" if client else "6379")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except (OSError, ValueError) as exc:
        raise ClusterError(
            f"--ray {address}: nothing answers at {host}:{port} ({exc}); start the cluster "
            f"(`ray start --head`) or give its address (host:6379, ray://host:10001)"
        ) from None


def _on_this_machine(ray: Any, alive: list[dict[str, Any]]) -> bool:
    """Whether the cluster is this machine alone: one node, the one this driver runs on
    (never so through Ray Client, refused before connecting)."""
    here = ray.get_runtime_context().get_node_id()
    return [node["NodeID"] for node in alive] == [here]
