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

    def __init__(
        self,
        *,
        total: int | None,
        direction: str,
        best: float | None = None,
        stream: TextIO | None = None,
    ) -> None:
        """``best``: the study's best value before this run (a resumed study has one)."""
        self.total = total
        self.maximize = direction == "maximize"
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.done = self.pruned = self.failed = self.requeued = 0
        self.best = best
        self.several = False
        self._bar: Any = None
        if self.stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(
                total=total,
                unit="trial",
                file=self.stream,
                dynamic_ncols=True,
                postfix=self._counts(),  # drawn from the first frame: a resumed study's best
            )

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
        values = trial.values or []
        # Several objectives have no single best: `tuner best` lists their front.
        self.several = len(study.directions) > 1
        feasible = all(v <= 0 for v in trial.constraints.values())
        if state == "COMPLETE" and len(values) == 1 and math.isfinite(values[0]) and feasible:
            better = self.best is None or (values[0] > self.best) == self.maximize
            self.best = values[0] if better else self.best
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
        if self.several:
            return f"pruned {self.pruned}, failed {self.failed}"
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
            return f"trial {trial.number} complete: {', '.join(f'{v:.4g}' for v in trial.values)}"
        if state == "fail":
            return f"trial {trial.number} failed: {_reason(trial)}"
        epochs = trial.user_attrs.get(records.EPOCHS, "?")
        infeasible = trial.user_attrs.get(records.INFEASIBLE)
        if infeasible:
            return f"trial {trial.number} {state} before training: {infeasible}"
        return f"trial {trial.number} {state} after {epochs} epochs"


def best_so_far(study: Any) -> float | None:
    """The best value a study already holds (None: none yet, or several objectives)."""
    if len(study.directions) > 1:
        return None
    try:
        return float(study.best_value)  # Optuna's best leaves infeasible trials out
    except ValueError:  # no complete trial yet
        return None


def _reason(trial: Any) -> str:
    return str(trial.user_attrs.get(records.FAIL_REASON, "unknown"))
