"""A study's workers as Ray actors: placed, sized, restarted and stopped by Ray.

``tuner run --ray ADDRESS`` creates the study and queues its budget, connects
(:mod:`tuner.execution.ray_cluster`), then hands over here. Each actor runs the loop of
``tuner worker`` (:func:`tuner.execution.run.join_study` then
:func:`~tuner.execution.run.execute`) in its own process, so the budget, claims,
heartbeats, reaping, recycling and the circuit breaker are those of every other worker;
Ray chooses the node, sets ``CUDA_VISIBLE_DEVICES`` for the actor's GPU share, and
restarts an actor whose process died (``max_restarts``). Stopping sends each actor's
process SIGTERM, through a task on its node, so that its trial is failed ``terminated``
and queued again, exactly as a local worker's.

Ray is imported at the top: only ``tuner run --ray`` imports this module, after
:func:`tuner.execution.ray_cluster.connect` has said what to install if Ray is missing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import ray

from tuner import records
from tuner.execution.ray_cluster import Cluster
from tuner.execution.run import PreparedRun, execute, join_study
from tuner.execution.signals import Sigterm, WorkerTerminated
from tuner.execution.supervisor import MAX_RESTARTS_PER_SLOT, STOP_GRACE_S, NewTrials
from tuner.storage import PASSWORD_ENV, without_password
from tuner.storage.queue import reap_study, work_left
from tuner.storage.urls import parse_url
from tuner.trial.keras_env import thread_env

# Settings that a worker reads from its environment (heartbeat, grace period, retries,
# pool) travel to the actors; secrets do not: the password goes as an argument.
FORWARDED_PREFIX = "TUNER_"
NOT_FORWARDED = {"TUNER_STORAGE", "TUNER_DB_PASSWORD", "TUNER_DB_PASSWORD_FILE"}
RESTART_POLL_S = 0.5  # how often an actor that Ray is restarting is asked where it is


@ray.remote(max_restarts=MAX_RESTARTS_PER_SLOT)
class RayWorker:
    """One worker of a study, in a Ray actor's process: ``tuner worker``'s loop.

    Its methods run in the actor process's main thread (one call at a time), so the trial
    loop's SIGTERM and Ctrl-C handling works as in any worker process. A process that died
    is started again by Ray (``max_restarts``); calls fail while it restarts, and the
    launcher asks where it is until it answers, then asks it to run again.
    """

    def __init__(self, study_name: str, storage_url: str, password: str | None, data_dir: str):
        self._join = (study_name, storage_url, password, Path(data_dir))
        self._prepared: PreparedRun | None = None

    def where(self) -> dict[str, Any]:
        """Where Ray placed this actor: node, process, GPU share."""
        return {
            "node": ray.get_runtime_context().get_node_id(),
            "ip": ray.util.get_node_ip_address(),
            "pid": os.getpid(),
            "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
        }

    def run(self, max_trials: int | None) -> str:
        """Run the study's trials until none is left; returns why it stopped
        (:class:`~tuner.execution.worker.WorkerOutcome`'s reasons, or ``terminated``)."""
        if self._prepared is None:
            name, url, password, data_dir = self._join
            if password is not None:
                os.environ[PASSWORD_ENV] = password  # where a local worker finds it too
            self._prepared = _recording_node(join_study(url, name, data_dir=data_dir))
        try:
            return execute(self._prepared, max_trials=max_trials, replaceable=True).reason
        except WorkerTerminated:  # the trial is failed and queued again
            return "terminated"


def _recording_node(prepared: PreparedRun) -> PreparedRun:
    """The same run, each trial recording the Ray node it ran on beside its worker."""
    node = ray.get_runtime_context().get_node_id()
    objective = prepared.objective

    def on_node(trial: optuna.Trial) -> float | Sequence[float]:
        trial.set_user_attr(records.NODE, node)
        return objective(trial)

    return dataclasses.replace(prepared, objective=on_node)


@ray.remote(num_cpus=0)
def _send_signal(pid: int, signum: int) -> None:
    """Signal a process, as a task on its node (the launcher may be on another machine)."""
    with contextlib.suppress(ProcessLookupError):  # it has just ended
        os.kill(pid, signum)


@dataclass
class _Slot:
    """One worker: its actor, and the call it is on (``where``, then ``run``)."""

    actor: Any
    call: Any | None  # ObjectRef of the pending where() or run(); None while restarting
    where: dict[str, Any] | None = None  # known once where() answered; None while placing
    ask_at: float = 0.0  # time.monotonic() at which to ask a restarting actor again


@dataclass
class RayLauncher:
    """Keeps one Ray actor per worker running the study until its queue is empty.

    An actor whose process died (killed, OOM killer, node lost) is restarted by Ray, up
    to :data:`~tuner.execution.supervisor.MAX_RESTARTS_PER_SLOT` times, and runs on; its
    trial is failed and re-queued by the reaper after the grace period. An actor that ran
    ``recycle_after`` trials, or ran out of GPU memory, is replaced by a fresh one.

    Example:
        >>> cluster = connect("auto", storage_url=url, workers=4, gpus=None, trials_per_gpu=1)
        >>> RayLauncher(study=study, storage_url=url, cluster=cluster, data_dir=Path.cwd()).run()
        []
    """

    study: optuna.Study
    storage_url: str
    cluster: Cluster
    data_dir: Path
    recycle_after: int | None = None
    on_trial: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None
    on_event: Callable[[str], None] = lambda message: None
    poll_s: float = 1.0
    deadline: float | None = None  # time.monotonic() after which the actors are stopped
    _slots: dict[int, _Slot] = field(default_factory=dict)
    _out_of_memory: dict[int, int] = field(default_factory=dict)

    def run(self) -> list[str]:
        """Run until every actor has finished; returns problems (actors that gave up).

        On Ctrl-C or SIGTERM every actor is stopped (its trial failed and re-queued)
        before the interrupt propagates.
        """
        report = NewTrials(self.study, self.on_trial)
        problems: list[str] = []
        sigterm = Sigterm()  # in place of ray.init's handler, which exits at once
        try:
            with sigterm.installed(), sigterm.armed():
                for slot in range(self.cluster.placement.workers):
                    self._start(slot)
                while self._slots:
                    problems += self._answer(self._wait())
                    self._end_unplaced_without_work()
                    reap_study(self.study)
                    report()
                    if self.deadline is not None and time.monotonic() > self.deadline:
                        self.on_event("timeout reached: stopping the workers")
                        self.stop()
        except KeyboardInterrupt:  # WorkerTerminated (SIGTERM) included
            self.stop()
            if sigterm.requested:  # Ray turns an interrupt inside its calls into a plain one
                raise WorkerTerminated() from None
            raise
        report()
        return problems

    def _wait(self) -> list[Any]:
        """The calls that returned within a poll; restarting actors are asked again where
        they are (a call to an actor that is restarting fails at once)."""
        for state in self._slots.values():
            if state.call is None and time.monotonic() >= state.ask_at:
                state.call = state.actor.where.remote()
        calls = [s.call for s in self._slots.values() if s.call is not None]
        if not calls:
            time.sleep(RESTART_POLL_S)
            return []
        ready, _ = ray.wait(calls, num_returns=1, timeout=self.poll_s)
        return ready

    def stop(self) -> None:
        """SIGTERM every running actor's process (its trial failed and re-queued), wait
        for them as a local supervisor does, then end every actor."""
        calls = []
        for state in self._slots.values():
            if state.where is not None:
                on_node = ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(
                    node_id=state.where["node"], soft=False
                )
                signal_task = _send_signal.options(scheduling_strategy=on_node)
                signal_task.remote(state.where["pid"], signal.SIGTERM)
                calls += [state.call] if state.call is not None else []
        if calls:
            ray.wait(calls, num_returns=len(calls), timeout=STOP_GRACE_S)
        for slot in self._slots.values():
            ray.kill(slot.actor, no_restart=True)
        self._slots.clear()

    def _start(self, slot: int) -> None:
        placement = self.cluster.placement
        bare_url, _ = without_password(_from_any_directory(self.storage_url))
        forwarded = {
            k: v
            for k, v in os.environ.items()
            if k.startswith(FORWARDED_PREFIX) and k not in NOT_FORWARDED
        }
        actor = RayWorker.options(  # type: ignore[attr-defined]  # ray.remote made it an actor class
            num_cpus=placement.cpus,
            num_gpus=placement.gpus,
            runtime_env={"env_vars": {**forwarded, **thread_env(placement.threads)}},
        ).remote(
            self.study.study_name,
            bare_url,
            parse_url(self.storage_url).password,
            str(self.data_dir.resolve()),
        )
        self._slots[slot] = _Slot(actor=actor, call=actor.where.remote())

    def _answer(self, ready: list[Any]) -> list[str]:
        """Act on the calls that returned: placed actors run, finished ones end."""
        problems = []
        for slot, state in list(self._slots.items()):
            call = state.call
            if call is None or call not in ready:
                continue
            try:
                answer: Any = ray.get(call)
            except ray.exceptions.RayActorError as exc:
                problems += self._lost(slot, exc)
            except ray.exceptions.RayTaskError as exc:  # the loop raised: the breaker, ...
                problems.append(f"worker {slot}: {_first_line(exc.cause)}")
                self._end(slot)
            else:
                if state.where is None:
                    self._placed(slot, answer)
                else:
                    problems += self._finished(slot, answer)
        return problems

    def _placed(self, slot: int, where: dict[str, Any]) -> None:
        state = self._slots[slot]
        state.where = where
        gpu = f", CUDA_VISIBLE_DEVICES={where['cuda']}" if self.cluster.placement.gpus else ""
        self.on_event(
            f"worker {slot}: node {where['node'][:8]} ({where['ip']}), pid {where['pid']}{gpu}"
        )
        state.call = state.actor.run.remote(self.recycle_after)

    def _finished(self, slot: int, reason: str) -> list[str]:
        self._end(slot)
        if reason == "trial_limit":  # planned: not a fault, so not counted
            self._start(slot)
        elif reason == "out_of_memory":
            self._out_of_memory[slot] = self._out_of_memory.get(slot, 0) + 1
            if self._out_of_memory[slot] > MAX_RESTARTS_PER_SLOT:
                return [f"worker {slot} ran out of GPU memory {self._out_of_memory[slot]} times"]
            self.on_event(f"worker {slot} recycled after running out of memory: starting a new one")
            self._start(slot)
        return []

    def _lost(self, slot: int, exc: Exception) -> list[str]:
        state = self._slots[slot]
        if isinstance(exc, ray.exceptions.ActorDiedError) and state.where is None:
            self._end(slot)  # dead for good: Ray has had its max_restarts, or it never began
            return [f"worker {slot}: Ray could not start it ({_death_cause(exc)})"]
        if state.where is not None:
            self.on_event(f"worker {slot} lost ({_death_cause(exc)}): Ray restarts it")
        # Calls fail at once while it restarts: ask again a little later, not in a spin.
        state.where, state.call = None, None
        state.ask_at = time.monotonic() + RESTART_POLL_S
        return []

    def _end_unplaced_without_work(self) -> None:
        """An actor still waiting for a place (or a restart) when the study has nothing
        left to run would keep the run waiting for nothing: end it."""
        unplaced = [slot for slot, state in self._slots.items() if state.where is None]
        if unplaced and not work_left(self.study):
            for slot in unplaced:
                self._end(slot)

    def _end(self, slot: int) -> None:
        ray.kill(self._slots.pop(slot).actor, no_restart=True)


def _from_any_directory(url: str) -> str:
    """The URL with a relative SQLite path made absolute: an actor's working directory is
    the one its node's ``ray start`` ran in, not this one."""
    parsed = parse_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return url
    absolute = parsed.set(database=str(Path(database).resolve()))
    return absolute.render_as_string(hide_password=False)


def _first_line(exc: BaseException | None) -> str:
    text = str(exc).strip() if exc is not None else ""
    return (text.splitlines() or [type(exc).__name__])[0]


def _death_cause(exc: Exception) -> str:
    """What Ray says ended the actor's process, shortly (its messages run to many lines)."""
    detail = re.search(r"[Ee]xit detail: ([^\n]+)", str(exc))
    if detail:
        return detail.group(1).strip()
    if isinstance(exc, ray.exceptions.ActorUnavailableError):
        return "its process ended, or its node cannot be reached"
    return _first_line(exc)
