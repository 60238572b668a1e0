"""A budget in epochs, the unit that costs GPU time: the study stops once its trials have
trained that many epochs in all.

Counted from the study itself (every worker's finished trials), so workers on one storage
share one budget; the trials running when it is reached finish, as with a trial count.
"""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial

from tuner import records


def trial_epochs(trial: FrozenTrial) -> int:
    """Epochs a trial trained: user attr ``epochs``, else its count of reported values
    (one ``report()`` step of a plain objective is one epoch)."""
    value = trial.user_attrs.get(records.EPOCHS)
    return int(value) if isinstance(value, (int, float)) else len(trial.intermediate_values)


def spent_epochs(study: optuna.Study) -> int:
    """Epochs the study's finished trials trained in all."""
    return sum(trial_epochs(t) for t in study.get_trials(deepcopy=False) if t.state.is_finished())


class EpochBudget:
    """An Optuna callback: ``study.stop()`` once ``limit`` epochs are spent.

    Example:
        >>> study = optuna.create_study()
        >>> def objective(trial):
        ...     for epoch in range(10):
        ...         trial.report(0.5, step=epoch)
        ...     return 0.5
        >>> study.optimize(objective, callbacks=[EpochBudget(25)])
        >>> len(study.trials)       # 10 epochs a trial: stopped once 25 were spent
        3
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if spent_epochs(study) >= self.limit:
            study.stop()
