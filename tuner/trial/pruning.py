"""Report every epoch to Optuna; ask the pruner only at the epochs where it could decide.

The reports all have to reach storage (dashboard, learning curves); they are written in
the background (:mod:`tuner.trial.epoch_reports`). The questions need not be asked where
the pruner's own settings rule out pruning.

optuna-integration's ``KerasPruningCallback`` is not used: its ``interval`` skips the
report along with the question, and it asks at every epoch otherwise.
"""

from __future__ import annotations

from typing import Any

import optuna

from tuner._optuna_compat import stepped_pruner_settings
from tuner.trial.keras_env import import_keras

# Pruners that prune only from ``n_warmup_steps`` on, at the first step of every
# ``interval_steps`` (Optuna's ``_is_first_in_interval_step``). Exact types: a subclass
# may decide otherwise.
STEPPED_PRUNERS = (
    optuna.pruners.MedianPruner,
    optuna.pruners.PercentilePruner,
    optuna.pruners.ThresholdPruner,
)


def could_prune(pruner: optuna.pruners.BasePruner, *, step: int) -> bool:
    """Whether ``pruner`` could prune a trial that has reported every step up to ``step``.

    False only where the pruner's settings make the answer False anyway; any other
    pruner (successive halving, Hyperband, patient, Wilcoxon) is asked at every step.

    Example:
        >>> could_prune(optuna.pruners.MedianPruner(n_warmup_steps=3), step=2)
        False
    """
    if type(pruner) is optuna.pruners.NopPruner:
        return False
    if type(pruner) not in STEPPED_PRUNERS:
        return True
    settings = stepped_pruner_settings(pruner)  # None: unknown settings mean ask
    if settings is None:
        return True
    warmup, interval = settings
    return step >= warmup and (step - warmup) % interval == 0


def pruning_callback(reports: Any, *, monitor: str) -> Any:
    """A Keras callback: report ``monitor`` at every epoch end, prune when the pruner says so
    (never after the last epoch: a trial trained to the end is complete).

    ``reports`` is the trial's :class:`~tuner.trial.epoch_reports.EpochReports`. Raises
    ``optuna.TrialPruned`` from inside ``fit``, as optuna-integration's does. In a study
    of several objectives it only records the learning curve: Optuna's pruners take one
    objective, and a trial behind on ``monitor`` may still be on the Pareto front. (Trial
    .report refuses such studies; the storage stores the curve all the same, for reports
    and the dashboard. Such a study prunes a trial only before its first epoch, a
    constraint, so no pruned trial has a curve: TPE ranks pruned trials by their last
    value with ``study.direction``, which raises for several objectives.)

    Example:
        >>> from tuner.trial.epoch_reports import epoch_reports
        >>> trial = optuna.create_study(direction="maximize").ask()
        >>> model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        >>> with epoch_reports(trial) as reports:
        ...     history = model.fit(dataset.x_train, dataset.y_train, epochs=2, verbose=0,
        ...                         validation_data=(dataset.x_val, dataset.y_val),
        ...                         callbacks=[pruning_callback(reports, monitor="val_accuracy")])
        >>> sorted(trial.study.trials[0].intermediate_values)     # one value per epoch
        [0, 1]
    """
    keras = import_keras()

    class PruningCallback(keras.callbacks.Callback):  # type: ignore[misc,name-defined]
        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            value = (logs or {}).get(monitor)
            if value is None:  # not logged: the objective reports the missing metric
                return
            # After the last epoch nothing is left to save: the trial is COMPLETE.
            last = epoch + 1 >= (self.params or {}).get("epochs", epoch + 2)
            reports.epoch_end(float(value), step=epoch, last=last)

    return PruningCallback()
