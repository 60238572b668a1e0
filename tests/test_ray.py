"""`tuner run --ray`: a study's workers as actors on a real Ray cluster, real PostgreSQL,
real Keras trials.

The cluster is started once for the module with `ray start --head --num-cpus 2 --num-gpus
2` on 127.0.0.1 (Ray accepts declared GPUs without hardware: enough to see it place the
actors and hand out CUDA_VISIBLE_DEVICES), in a temporary directory, with its own token,
and stopped afterwards. The study commands are the ones a user types.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.conftest import TAME_OVERRIDES, need, run_cli
from tests.ray_cluster import RAY_CLI, RayCluster, local_ray_cluster
from tests.test_workers_postgres import FAST_HEARTBEAT, _running_with_worker, _study

pytestmark = [pytest.mark.ray, pytest.mark.slow]
PLACED = re.compile(
    r"^worker (\d+): node (\w+) \(127\.0\.0\.1\), pid (\d+)(?:, CUDA_VISIBLE_DEVICES=(\S+))?$",
    re.MULTILINE,
)
OOM_BUILDER = """
from pathlib import Path

RAN_OUT = Path(__file__).with_suffix(".ran-out")


def build(params, *, input_shape, n_outputs):
    import keras
    import tensorflow as tf

    if not RAN_OUT.exists():  # the first trial of the cluster, wherever it runs
        RAN_OUT.touch()
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Dense(8, activation="relu")(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, keras.layers.Dense(n_outputs, activation="softmax")(x))
"""


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[RayCluster]:
    """A one-node Ray cluster on 127.0.0.1 (2 CPUs, 2 declared GPUs) for this module."""
    need(RAY_CLI.exists(), "Ray is not installed (pip install -e '.[ray]')")
    with local_ray_cluster(cpus=2, gpus=2) as cluster:
        yield cluster


def _run(cluster: RayCluster, spec: Path, url: str, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "TUNER_STORAGE"}
    env.update({**cluster.env, **FAST_HEARTBEAT})
    command = [sys.executable, "-m", "tuner", "run", str(spec), "--storage", url]
    command += ["--ray", cluster.address, *args]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _run_on_sqlite(cluster: RayCluster, spec: Path, address: str, *args: str):
    """`tuner run SPEC --storage sqlite:///study.db --ray ADDRESS ARGS` in the spec's folder."""
    env = {**cluster.env, **FAST_HEARTBEAT}
    storage = ["--storage", "sqlite:///study.db", "--ray", address]
    return run_cli("run", str(spec), *storage, *args, cwd=spec.parent, env=env)


def _finish(run: subprocess.Popen[str], timeout: float = 400) -> str:
    try:
        _, err = run.communicate(timeout=timeout)
    finally:
        run.kill()
    return err


def _spec(tiny_spec, *, epochs: int, n_trials: int, max_rows: int = 300, **changes) -> Path:
    return tiny_spec(
        data={"source": "digits", "max_rows": max_rows},
        training={"max_epochs": epochs},
        space={"overrides": TAME_OVERRIDES},
        budget={"n_trials": n_trials},
        **changes,
    )


def test_gpu_shares_four_actors_on_two_gpus_run_exactly_the_budget(
    ray_cluster, postgres_url, tiny_spec
):
    spec = _spec(tiny_spec, epochs=2, n_trials=6)
    run = _run(ray_cluster, spec, postgres_url, "--gpus", "all", "--trials-per-gpu", "2")
    err = _finish(run)

    assert run.returncode == 0, err
    assert "Traceback" not in err
    assert "4 Ray actors" in err and "0.5 CPU (1 thread(s)) and 0.5 GPU each" in err
    placed = PLACED.findall(err)
    assert len(placed) == 4, err
    assert sorted(cuda for *_, cuda in placed) == ["0", "0", "1", "1"]  # Ray's shares
    trials = _study(postgres_url).get_trials()
    assert sorted(t.number for t in trials) == list(range(6))  # none extra, none twice
    assert all(t.state == TrialState.COMPLETE for t in trials)
    [node] = {node for _, node, _, _ in placed}
    assert all(t.user_attrs["node"].startswith(node) for t in trials)
    pids = {pid for *_, pid, _ in placed}
    assert {t.user_attrs["worker"].rsplit(":", 1)[1] for t in trials} <= pids


def test_a_killed_actor_comes_back_and_its_trial_runs_again(ray_cluster, postgres_url, tiny_spec):
    spec = _spec(tiny_spec, epochs=30, n_trials=2, max_rows=1797)
    run = _run(ray_cluster, spec, postgres_url, "--workers", "2")
    try:
        victim = _running_with_worker(postgres_url)
        victim_pid = int(victim.user_attrs["worker"].rsplit(":", 1)[1])
        os.kill(victim_pid, signal.SIGKILL)  # as the OOM killer does
    finally:
        err = _finish(run)

    assert run.returncode == 0, err
    lost = re.search(r"^worker (\d) lost \((.+)\): Ray restarts it$", err, re.MULTILINE)
    assert lost, err
    slot_pids = [pid for slot, _, pid, _ in PLACED.findall(err) if slot == lost.group(1)]
    assert slot_pids[0] == str(victim_pid) and len(slot_pids) == 2, err  # the actor came back
    trials = _study(postgres_url).get_trials()
    by_number = {t.number: t for t in trials}
    assert by_number[victim.number].state == TrialState.FAIL
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
    assert retried and retried[0].params == by_number[victim.number].params
    assert retried[0].state == TrialState.COMPLETE
    assert len([t for t in trials if t.state == TrialState.COMPLETE]) == 2  # the budget
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


def test_sigterm_stops_the_actors_and_requeues_their_trials(ray_cluster, postgres_url, tiny_spec):
    spec = _spec(tiny_spec, epochs=80, n_trials=4, max_rows=1797)
    run = _run(ray_cluster, spec, postgres_url, "--workers", "2")
    try:
        first = _running_with_worker(postgres_url)
        second = _running_with_worker(postgres_url, exclude={first.number})
        run.send_signal(signal.SIGTERM)
        started = time.monotonic()
        err = _finish(run, timeout=60)
        seconds = time.monotonic() - started
    finally:
        run.kill()

    assert run.returncode == 128 + signal.SIGTERM, err
    assert "Terminated: the running trial is marked failed and queued again." in err
    assert seconds < 30, f"took {seconds:.0f} s to stop"
    trials = _study(postgres_url).get_trials()
    by_number = {t.number: t for t in trials}
    waiting = [t.system_attrs["fixed_params"] for t in trials if t.state == TrialState.WAITING]
    for stopped in (first, second):
        assert by_number[stopped.number].user_attrs["fail_reason"] == "terminated"
        assert by_number[stopped.number].params in waiting  # queued again
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    for pid in {int(t.user_attrs["worker"].rsplit(":", 1)[1]) for t in (first, second)}:
        assert _gone_within(pid, seconds=15), f"actor process {pid} still running"


def _gone_within(pid: int, *, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":  # exited; its parent (the raylet) has yet to collect it
            return True
        time.sleep(0.2)
    return False


def test_out_of_memory_fails_the_trial_and_recycles_the_actor(ray_cluster, tmp_path, tiny_spec):
    (ray_cluster.modules / "oom_builder.py").write_text(OOM_BUILDER, encoding="utf-8")
    spec = tiny_spec(
        model={"builder": "oom_builder:build"},
        data={"source": "digits", "max_rows": 300},
        training={"max_epochs": 1},
        budget={"n_trials": 2},
    )
    # SQLite serves a cluster that is this machine alone (its path made absolute).
    done = _run_on_sqlite(ray_cluster, spec, ray_cluster.address, "--workers", "1")

    assert done.returncode == 0, done.stderr
    assert "worker 0 recycled after running out of memory: starting a new one" in done.stderr
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'study.db'}")
    first, second = study.get_trials()
    assert first.state == TrialState.FAIL
    assert first.user_attrs["fail_reason"] == "out of memory"
    assert second.state == TrialState.COMPLETE
    pids = [pid for _, _, pid, _ in PLACED.findall(done.stderr)]
    assert len(pids) == 2 and pids[0] != pids[1], done.stderr  # a fresh actor process
    assert [t.user_attrs["worker"].rsplit(":", 1)[1] for t in (first, second)] == pids
