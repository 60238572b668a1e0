"""A trial's per-epoch reports, off the training thread.

Synchronously, each epoch costs a storage write (the report) and, where the pruner could
decide, a storage read (Optuna's median and percentile pruners load the study's complete
trials on every question): ~10 ms an epoch on SQLite, as long as a small model's epoch on
a GPU. Here the training thread only queues the value; a writer thread, with its own
database connection (SQLAlchemy's scoped sessions are per thread), writes it through
outages. Median, percentile and threshold pruners decide on the trial's own values (kept
in the process, as ``Trial.report`` keeps them) and on a snapshot of the study's complete
trials, read when the trial starts and refreshed by the writer every :data:`REFRESH_S`.

Decisions are those of the synchronous path given the same complete trials. Trials run
one after the other (one worker) see exactly the same ones: a trial completes before the
next starts, and the snapshot is read at the start. With several workers, a trial that
completed elsewhere during the last :data:`REFRESH_S` may not be counted yet; the
synchronous path is no more exact there (it counts what completed before its read, and
workers race anyway). Other pruners (successive halving, Hyperband, Wilcoxon) write and
read the study as they decide: for them the queue is flushed and Optuna asked as before.

No value is lost: leaving the ``with`` block (trial finished, pruned, failed, SIGTERM)
waits until every queued value is written, before the trial's outcome is told.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import optuna
from optuna.trial import TrialState

from tuner._optuna_compat import TrialsView, own_view, storage_of, trial_id_of, wrote_report
from tuner.search.start import spared
from tuner.storage.outage import through_outage
from tuner.trial.pruning import STEPPED_PRUNERS, could_prune

REFRESH_S = 2.0  # how stale the view of other workers' complete trials may get
_STOP = None


class EpochReports:
    """Report a trial's epochs in the background; prune where its pruner says so.

    Use through :func:`epoch_reports`, which flushes the queue on the way out.
    """

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial
        self.study = trial.study
        self.pruner = self.study.pruner
        self.several = len(self.study.directions) > 1
        self._storage = storage_of(self.study)
        self._trial_id = trial_id_of(trial)
        self._queue: queue.Queue[tuple[int, float] | None] = queue.Queue()
        self._error: BaseException | None = None
        self._complete: list[Any] | None = None  # others' complete trials, when read
        self._read_at = 0.0
        self._decides_locally = not self.several and type(self.pruner) in STEPPED_PRUNERS
        self._spared = spared(trial)  # asked all the same: ASHA records its rungs
        self._thread = threading.Thread(target=self._write, name="epoch-reports", daemon=True)

    def epoch_end(self, value: float, *, step: int, last: bool = False) -> None:
        """Queue ``value`` as the trial's value at ``step``; raise ``optuna.TrialPruned``
        if the pruner prunes the trial there (never at the ``last`` step: nothing is left
        to save by stopping it)."""
        self._raise_writer_error()
        if step in own_view(self.trial).intermediate_values:
            return  # as Trial.report: the first value of a step stays
        wrote_report(self.trial, step, value)  # the trial's own copy, as Trial.report keeps
        self._queue.put((step, value))
        if last or self.several or not could_prune(self.pruner, step=step):
            return  # Optuna's pruners take one objective; or its settings rule pruning out
        if self._decides_locally:
            others = TrialsView(self.study, self._complete or [])
            pruned = self.pruner.prune(others, own_view(self.trial))  # type: ignore[arg-type]  # a Study to it
        else:  # the pruner reads and writes the study itself: it must see every value
            self.flush()
            pruned = self.trial.should_prune()
        if pruned and not self._spared:
            raise optuna.TrialPruned(f"Trial was pruned at epoch {step}.")

    def start(self) -> None:
        if self._decides_locally:
            self._complete = self._read_complete()
        self._thread.start()

    def flush(self) -> None:
        """Wait until every queued value is written (a SIGTERM meanwhile waits its turn)."""
        interrupt: BaseException | None = None
        while True:
            try:
                self._queue.join()
                break
            except KeyboardInterrupt as exc:  # finish writing, then stop as asked
                interrupt = exc
        self._raise_writer_error()
        if interrupt is not None:
            raise interrupt

    def close(self) -> None:
        self._queue.put(_STOP)
        self.flush()
        self._thread.join()

    def _read_complete(self) -> list[Any]:
        self._read_at = time.monotonic()
        return through_outage(
            lambda: self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        )

    def _write(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=REFRESH_S)
            except queue.Empty:
                self._refresh()
                continue
            try:
                if item is _STOP:
                    return
                if self._error is None:  # after a fault, only drain: the trial fails
                    self._write_one(*item)
                    self._refresh()
            except BaseException as exc:  # handed to the training thread
                self._error = exc
            finally:
                self._queue.task_done()

    def _write_one(self, step: int, value: float) -> None:
        write = self._storage.set_trial_intermediate_value
        through_outage(lambda: write(self._trial_id, step, value))

    def _refresh(self) -> None:
        stale = time.monotonic() - self._read_at >= REFRESH_S
        if self._complete is not None and stale and self._error is None:
            try:
                self._complete = self._read_complete()
            except BaseException as exc:
                self._error = exc

    def _raise_writer_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error


@contextmanager
def epoch_reports(trial: optuna.Trial) -> Iterator[EpochReports]:
    """Reports of one trial's epochs, every one written before the block is left.

    Example:
        >>> trial = optuna.create_study(direction="maximize").ask()
        >>> with epoch_reports(trial) as reports:
        ...     for epoch, value in enumerate([0.5, 0.6, 0.7]):
        ...         reports.epoch_end(value, step=epoch)
        >>> trial.study.trials[0].intermediate_values     # all written when the block ends
        {0: 0.5, 1: 0.6, 2: 0.7}
    """
    reports = EpochReports(trial)
    reports.start()
    try:
        yield reports
    finally:
        reports.close()
