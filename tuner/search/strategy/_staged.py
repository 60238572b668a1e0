"""``staged``: tier 1 first, one more tier per stage, deciding at each boundary what to
freeze and where to narrow, from the importance measured so far.

Everything lives in one Optuna study. The plan (stages, trial ranges, options) and one
decision per stage are study user attributes (JSON), so a resumed run and a worker that
joins mid-study follow them; each trial records its stage and the values frozen for it.

Several workers: a trial's stage follows from its number. The first worker to start a
trial of stage k+1 waits until every trial of stage k has finished (at most ``wait_s``;
stale trials of dead workers are failed meanwhile), decides on exactly those trials and
writes the decision; the others read it. Deciding is deterministic (seeded
importance on a fixed set of trials), so two workers that cross the boundary at the
same moment compute the same decision, and whichever write lands last changes nothing.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from tuner import records
from tuner.search.strategy._decide import decide, narrowed_space
from tuner.search.strategy._flat import recorded_strategy
from tuner.search.strategy._plan import (
    Stage,
    make_plan,
    plan_from_json,
    plan_to_json,
    stage_of,
)
from tuner.specs.param import ALL_TIERS, Choice
from tuner.specs.space import SearchSpace
from tuner.specs.strategies import StagedOptions

POLL_S = 0.2


@dataclass
class StagedStrategy:
    """Search tier by tier in one study; freeze and narrow at each stage boundary.

    Example:
        >>> import math
        >>> def f(params):
        ...     return (math.log10(params["learning_rate"]) + 3) ** 2
        >>> strategy = StagedStrategy(space=space, n_trials=30)
        >>> study = optuna.create_study()
        >>> strategy.prepare(study)
        >>> study.optimize(lambda trial: f(strategy.suggest(trial)), n_trials=30)
        >>> [trial.user_attrs["stage"] for trial in study.trials]
        [1, 1, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4]
    """

    space: SearchSpace
    n_trials: int
    tiers: frozenset[int] = ALL_TIERS
    fixed: Mapping[str, Any] = field(default_factory=dict)
    options: StagedOptions = field(default_factory=StagedOptions)
    name: str = "staged"
    plan: list[Stage] = field(init=False, default_factory=list)
    _decisions: dict[int, dict[str, Any]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.plan = make_plan(
            self.space,
            tiers=self.tiers,
            fixed=self.fixed,
            n_trials=self.n_trials,
            budget=self.options.budget,
        )

    def prepare(self, study: optuna.Study) -> None:
        """Record the plan on a new study; a resumed study keeps its recorded plan."""
        if recorded_strategy(study, self.name) is None:
            study.set_user_attr(
                records.STRATEGY,
                {
                    "name": self.name,
                    "n_trials": self.n_trials,
                    "options": self.options.model_dump(mode="json"),
                    "stages": plan_to_json(self.plan),
                },
            )
            first = self.plan[0]
            _write_decision(study, _decision(first, {}, {}, {}, {}, None))
        recorded = study.user_attrs[records.STRATEGY]
        self.options = StagedOptions.model_validate(recorded["options"])
        self.plan = plan_from_json(recorded["stages"])

    def suggest(self, trial: optuna.Trial) -> dict[str, Choice]:
        stage = stage_of(self.plan, trial.number)
        decision = self._decision_for(trial.study, stage)
        frozen = decision["frozen_all"]
        trial.set_user_attr(records.STAGE, stage.stage)
        if frozen:
            trial.set_user_attr(records.FROZEN, frozen)
        space = narrowed_space(self.space, decision["ranges"])
        return space.suggest(trial, tiers=stage.tiers, fixed={**self.fixed, **frozen})

    # -- decisions -------------------------------------------------------------------
    def _decision_for(self, study: optuna.Study, stage: Stage) -> dict[str, Any]:
        if stage.stage not in self._decisions:
            stored = _read_decision(study, stage.stage)
            if stored is None:
                before = self._decision_for(study, self.plan[stage.stage - 2])
                stored = _write_decision(study, self._decide(study, stage, before))
            self._decisions[stage.stage] = stored
        return self._decisions[stage.stage]

    def _decide(self, study: optuna.Study, stage: Stage, before: dict[str, Any]) -> dict[str, Any]:
        previous = self.plan[stage.stage - 2]
        window = range(previous.start, stage.start)
        waited, running = _wait_for(study, window, self.options.wait_s)
        frozen_before = before["frozen_all"]
        measured = self.space.searched(tiers=previous.tiers, fixed={**self.fixed, **frozen_before})
        trials = [t for t in study.get_trials(deepcopy=False) if t.number in window]
        made = decide(
            space=self.space,
            trials=trials,
            measured=measured,
            fixed=self.fixed,
            direction=study.direction,
            options=self.options,
        )
        made["evidence"].update(waited_s=round(waited, 3), still_running=running)
        return _decision(
            stage,
            made["frozen"],
            {**frozen_before, **made["frozen"]},
            made["narrowed"],
            {**before["ranges"], **made["narrowed"]},
            {"measured": measured, **made["evidence"]},
        )


def _decision(
    stage: Stage,
    frozen: dict[str, Any],
    frozen_all: dict[str, Any],
    narrowed: dict[str, Any],
    ranges: dict[str, Any],
    evidence: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "stage": stage.stage,
        "tiers": stage.tiers,
        "start": stage.start,
        "frozen": frozen,  # frozen at this boundary
        "frozen_all": frozen_all,  # every value frozen from this stage on
        "narrowed": narrowed,
        "ranges": {n: r for n, r in ranges.items() if n not in frozen_all},
        "evidence": evidence,
        # Who decided: the one process that crossed the boundary first.
        "computed_by": f"{socket.gethostname()}:{os.getpid()}",
    }


def _read_decision(study: optuna.Study, stage: int) -> dict[str, Any] | None:
    return study.user_attrs.get(records.STAGE_DECISION.format(stage=stage))  # type: ignore[no-any-return]


def _write_decision(study: optuna.Study, decision: dict[str, Any]) -> dict[str, Any]:
    """Write unless another worker did meanwhile; return the decision now stored."""
    stored = _read_decision(study, decision["stage"])
    if stored is None:
        study.set_user_attr(records.STAGE_DECISION.format(stage=decision["stage"]), decision)
        stored = _read_decision(study, decision["stage"])
    return stored or decision


def _wait_for(study: optuna.Study, numbers: range, wait_s: float) -> tuple[float, list[int]]:
    """Wait until the trials numbered in ``numbers`` have finished; give up after ``wait_s``."""
    started = time.monotonic()
    while True:
        unfinished = (TrialState.RUNNING, TrialState.WAITING)
        running = [
            t.number
            for t in study.get_trials(deepcopy=False, states=unfinished)
            if t.number in numbers
        ]
        waited = time.monotonic() - started
        if not running or waited >= wait_s:
            return waited, running
        optuna.storages.fail_stale_trials(study)  # a dead worker's trial must not block us
        time.sleep(POLL_S)
