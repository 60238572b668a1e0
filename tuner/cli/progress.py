"""Progress of a running study on stderr: a bar on a terminal, one line per trial in logs."""

from __future__ import annotations

import math
import sys
import time
from typing import Any, TextIO

import click

from tuner import records
from tuner.execution.worker import TERMINATED
from tuner.storage.queue import STALE

# A trial failed for these reasons is queued again (while retries are left).
REQUEUED = (TERMINATED, STALE)


class TrialProgress:
    """An Optuna callback that shows trials done / total, pruned, failed, best, elapsed."""

    def __init__(self, *, total: int | None, direction: str, stream: TextIO | None = None) -> None:
        self.total = total
        self.maximize = direction == "maximize"
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.done = self.pruned = self.failed = self.requeued = 0
        self.best: float | None = None
        self._bar: Any = None
        if self.stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="trial", file=self.stream, dynamic_ncols=True)

    def __call__(self, study: Any, trial: Any) -> None:
        state = trial.state.name
        if state == "FAIL" and _reason(trial) in REQUEUED:
            # Its retry is one of the trials to run: counting both would show 14/12 done.
            self.requeued += 1
            if self._bar is not None:
                self._bar.write(f"trial {trial.number} queued again: {_reason(trial)}")
            else:
                click.echo(f"trial {trial.number} queued again: {_reason(trial)}", file=self.stream)
            return
        self.done += 1
        self.pruned += state == "PRUNED"
        self.failed += state == "FAIL"
        if state == "COMPLETE" and trial.value is not None and math.isfinite(trial.value):
            better = self.best is None or (trial.value > self.best) == self.maximize
            self.best = trial.value if better else self.best
        if self._bar is not None:
            if state == "FAIL":
                self._bar.write(f"trial {trial.number} failed: {_reason(trial)}")
            self._bar.set_postfix_str(self._counts(), refresh=False)
            self._bar.update(1)
        else:
            click.echo(f"{self._trial_line(trial)} | {self._progress_line()}", file=self.stream)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def _counts(self) -> str:
        best = "-" if self.best is None else f"{self.best:.4g}"
        requeued = f", re-queued {self.requeued}" if self.requeued else ""
        return f"pruned {self.pruned}, failed {self.failed}{requeued}, best {best}"

    def _progress_line(self) -> str:
        total = "?" if self.total is None else str(self.total)
        elapsed = time.strftime("%H:%M:%S", time.gmtime(time.monotonic() - self.started))
        return f"{self.done}/{total} done, {self._counts()}, elapsed {elapsed}"

    @staticmethod
    def _trial_line(trial: Any) -> str:
        state = trial.state.name.lower()
        if state == "complete":
            return f"trial {trial.number} complete: {trial.value:.4g}"
        if state == "fail":
            return f"trial {trial.number} failed: {_reason(trial)}"
        epochs = trial.user_attrs.get(records.EPOCHS, "?")
        return f"trial {trial.number} {state} after {epochs} epochs"


def _reason(trial: Any) -> str:
    return str(trial.user_attrs.get(records.FAIL_REASON, "unknown"))
