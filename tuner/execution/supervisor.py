"""Local worker processes for one study: started, pinned, watched, restarted, stopped.

``tuner run --workers N`` creates the study and queues its budget, then hands over here.
Each worker is ``python -m tuner worker NAME`` in its own process (one trial per process:
nothing is lost to threads, and a process that ran out of GPU memory is simply
replaced). The storage URL travels on the command line without its password, which goes
through the environment; each worker gets its share of the CPU threads and, with GPU
slots, one device through ``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import optuna

from tuner.errors import TunerError
from tuner.storage import PASSWORD_ENV, without_password
from tuner.storage.outage import through_outage
from tuner.storage.queue import FINISHED, reap_study
from tuner.trial.keras_env import thread_env

EXIT_OUT_OF_MEMORY = 75  # a worker asks to be replaced (out of GPU memory); EX_TEMPFAIL
EXIT_TRIAL_LIMIT = 76  # a worker ran its --recycle-after trials; a fresh process goes on
EXIT_TERMINATED = 128 + signal.SIGTERM  # a worker stopped by SIGTERM, as a shell reports it
STOP_GRACE_S = 15  # SIGTERM -> the trial is failed and re-queued within 10 s; then SIGKILL
MAX_RESTARTS_PER_SLOT = 5


class GpuError(TunerError, RuntimeError):
    """GPU slots were asked for, but the devices are not there."""


def detect_gpus() -> list[str]:
    """Indices of the NVIDIA GPUs ``nvidia-smi -L`` lists (without importing TensorFlow)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    lines = listed.stdout.splitlines() if listed.returncode == 0 else []
    return [line.split(":")[0].split()[1] for line in lines if line.startswith("GPU ")]


def gpu_slots(gpus: str, *, per_gpu: int, found: list[str] | None = None) -> list[str]:
    """One entry per worker: the device it is pinned to, ``per_gpu`` workers per device.

    Example:
        >>> gpu_slots("0,1", per_gpu=2, found=["0", "1"])
        ['0', '0', '1', '1']
    """
    found = detect_gpus() if found is None else found
    if not found:
        raise GpuError(
            f"--gpus {gpus}: no NVIDIA GPU found (`nvidia-smi -L` lists none); run without "
            f"--gpus to train on the CPU, or install the driver and tensorflow[and-cuda]"
        )
    wanted = found if gpus == "all" else [g.strip() for g in gpus.split(",") if g.strip()]
    missing = [g for g in wanted if g not in found]
    if missing or not wanted:
        raise GpuError(
            f"--gpus {gpus}: no GPU {', '.join(missing) or '(none named)'} on this machine; "
            f"choose from {', '.join(found)} or `all`"
        )
    return [gpu for gpu in wanted for _ in range(per_gpu)]


def worker_command(
    study_name: str, storage_url: str, *, data_dir: Path, recycle_after: int | None = None
) -> list[str]:
    """The argv of one worker: never a password (``ps`` shows it to every user)."""
    bare_url, _ = without_password(storage_url)
    recycle = [] if recycle_after is None else ["--recycle-after", str(recycle_after)]
    return [
        sys.executable,
        "-m",
        "tuner",
        "worker",
        study_name,
        "--storage",
        bare_url,
        "--data-dir",
        str(data_dir),
        *recycle,
        "--quiet",
    ]


def worker_env(storage_url: str, *, threads: int, gpu: str | None) -> dict[str, str]:
    """The environment of one worker: password, thread caps, and its GPU (or none)."""
    env = {**os.environ, **thread_env(threads)}
    _, password = without_password(storage_url)
    if password is not None:
        env[PASSWORD_ENV] = password
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    return env


@dataclass
class Supervisor:
    """Keeps one worker process per slot alive until the study's queue is empty.

    A worker that dies of a signal (kill -9, the OOM killer) is restarted, up to
    :data:`MAX_RESTARTS_PER_SLOT` times per slot; one whose trial ran out of memory (a
    failed trial, which spends one of the budget like any other), or that ran its
    ``recycle_after`` trials, is replaced by a fresh process, as often as it takes
    (TensorFlow never frees the graphs it traced, so a long-lived process only grows).
    The study's stale trials are reaped here too, so a dead worker's trial is
    failed and re-queued within the grace period even when every other worker is busy.

    Example:
        >>> from tuner.storage import open_storage       # with heartbeats: it reaps
        >>> url = "sqlite:///tuner.db"
        >>> study = optuna.load_study(study_name="digits-mlp", storage=open_storage(url))
        >>> sup = Supervisor(study=study, storage_url=url, slots=[None], threads=1,
        ...                  data_dir=Path.cwd())
        >>> sup.run()   # [] when every worker finished cleanly
        []
    """

    study: optuna.Study
    storage_url: str
    slots: list[str | None]
    threads: int
    data_dir: Path
    recycle_after: int | None = None
    on_trial: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None
    on_event: Callable[[str], None] = lambda message: None
    poll_s: float = 1.0
    deadline: float | None = None  # time.monotonic() after which workers are stopped
    _procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    _restarts: dict[int, int] = field(default_factory=dict)

    def run(self) -> list[str]:
        """Run until every worker has finished; returns problems (workers that gave up).

        On ``KeyboardInterrupt`` every worker is stopped (its trial failed and
        re-queued) before the interrupt propagates.
        """
        report = NewTrials(self.study, self.on_trial)
        problems: list[str] = []
        try:
            for slot in range(len(self.slots)):
                self._start(slot)
            while self._procs:
                time.sleep(self.poll_s)
                problems += self._check_workers()
                # A database outage pauses the supervisor as it pauses workers.
                through_outage(lambda: reap_study(self.study))
                report()
                if self.deadline is not None and time.monotonic() > self.deadline:
                    self.on_event("timeout reached: stopping the workers")
                    self.stop()
        except KeyboardInterrupt:
            self.stop()
            raise
        report()
        return problems

    def stop(self) -> None:
        """SIGTERM every worker (trial failed and re-queued), SIGKILL any still there later."""
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        until = time.monotonic() + STOP_GRACE_S
        for proc in self._procs.values():
            try:
                proc.wait(timeout=max(0.1, until - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._procs.clear()

    def _start(self, slot: int) -> None:
        self._procs[slot] = subprocess.Popen(
            worker_command(
                self.study.study_name,
                self.storage_url,
                data_dir=self.data_dir,
                recycle_after=self.recycle_after,
            ),
            env=worker_env(self.storage_url, threads=self.threads, gpu=self.slots[slot]),
            # Own session: Ctrl-C reaches the supervisor only, which stops workers in order.
            start_new_session=True,
        )

    def _check_workers(self) -> list[str]:
        problems = []
        for slot, proc in list(self._procs.items()):
            code = proc.poll()
            if code is None:
                continue
            del self._procs[slot]
            if code == 0:
                continue
            if code == EXIT_TRIAL_LIMIT:  # planned: not a fault, so not counted
                self._start(slot)
                continue
            if code == EXIT_OUT_OF_MEMORY:  # a trial's outcome: each spends one of the budget
                self.on_event(
                    f"worker {slot} recycled after running out of memory: starting a new one"
                )
                self._start(slot)
                continue
            # Killed (kill -9, the OOM killer) or stopped by someone else.
            restartable = code < 0 or code == EXIT_TERMINATED
            if restartable and self._restarts.get(slot, 0) < MAX_RESTARTS_PER_SLOT:
                self._restarts[slot] = self._restarts.get(slot, 0) + 1
                self.on_event(f"worker {slot} stopped ({_signal(code)}): starting a new one")
                self._start(slot)
            else:
                problems.append(f"worker {slot} exited with code {code}")
        return problems


class NewTrials:
    """Hands each of the study's trials to ``on_trial`` once, when it has finished,
    whichever process ran it (the progress of a run whose workers are elsewhere)."""

    def __init__(
        self,
        study: optuna.Study,
        on_trial: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None,
    ) -> None:
        self.study = study
        self.on_trial = on_trial
        self._seen = {t.number for t in self._finished()}

    def __call__(self) -> None:
        for trial in self._finished():
            if trial.number not in self._seen:
                self._seen.add(trial.number)
                if self.on_trial is not None:
                    self.on_trial(self.study, trial)

    def _finished(self) -> list[optuna.trial.FrozenTrial]:
        return through_outage(lambda: self.study.get_trials(deepcopy=False, states=FINISHED))


def _signal(code: int) -> str:
    number = -code if code < 0 else code - 128
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
