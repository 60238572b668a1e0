"""Report every epoch to Optuna; ask the pruner only at the epochs where it could decide.

Each report is one storage write and each question one storage read (Optuna's median
and percentile pruners load the study's trials on every call), and against the epochs
of a small model these round trips are what tuner adds to training. The reports all
have to reach storage (dashboard, learning curves); the questions need not be asked
where the pruner's own settings rule out pruning.

optuna-integration's ``KerasPruningCallback`` is not used: its ``interval`` skips the
report along with the question, and it asks at every epoch otherwise.
"""

from __future__ import annotations

from typing import Any

import optuna

from tuner._optuna_compat import stepped_pruner_settings, storage_of, trial_id_of
from tuner.trial.keras_env import import_keras

# Pruners that prune only from ``n_warmup_steps`` on, at the first step of every
# ``interval_steps`` (Optuna's ``_is_first_in_interval_step``). Exact types: a subclass
# may decide otherwise.
_STEPPED = (
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
    if type(pruner) not in _STEPPED:
        return True
    settings = stepped_pruner_settings(pruner)  # None: unknown settings mean ask
    if settings is None:
        return True
    warmup, interval = settings
    return step >= warmup and (step - warmup) % interval == 0


def pruning_callback(trial: optuna.Trial, *, monitor: str) -> Any:
    """A Keras callback: report ``monitor`` at every epoch end, prune when the pruner says so
    (never after the last epoch: a trial trained to the end is complete).

    Raises ``optuna.TrialPruned`` from inside ``fit``, as optuna-integration's does. In a
    study of several objectives it only records the learning curve: Optuna's pruners take
    one objective, and a trial behind on ``monitor`` may still be on the Pareto front.

    Example:
        >>> model.fit(x, y, validation_data=val, callbacks=[pruning_callback(trial,
        ...           monitor="val_accuracy")])
    """
    keras = import_keras()
    several = len(trial.study.directions) > 1

    class PruningCallback(keras.callbacks.Callback):  # type: ignore[misc,name-defined]
        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            value = (logs or {}).get(monitor)
            if value is None:  # not logged: the objective reports the missing metric
                return
            if several:
                _record_curve(trial, float(value), step=epoch)
                return
            trial.report(float(value), step=epoch)
            # After the last epoch nothing is left to save: the trial is COMPLETE.
            last = epoch + 1 >= (self.params or {}).get("epochs", epoch + 2)
            if not last and could_prune(trial.study.pruner, step=epoch) and trial.should_prune():
                raise optuna.TrialPruned(f"Trial was pruned at epoch {epoch}.")

    return PruningCallback()


def _record_curve(trial: optuna.Trial, value: float, *, step: int) -> None:
    """Store ``value`` as the trial's intermediate value at ``step``, as ``report`` would.

    ``Trial.report`` refuses studies of several objectives; the storage stores the curve
    all the same (reports, the dashboard and learning-curve plots read it). Such a study
    prunes a trial only before its first epoch (a constraint), so no pruned trial has a
    curve: TPE ranks pruned trials by their last value with ``study.direction``, which
    raises for several objectives.
    """
    storage_of(trial.study).set_trial_intermediate_value(trial_id_of(trial), step, value)
