"""Outcome: what a study yields and what users do with it afterwards.

- :mod:`~tuner.outcome.results`: the best trial, its values, the counts by state.
- :mod:`~tuner.outcome.retrain`: train the best configuration again and save the model.
- :mod:`~tuner.outcome.warmstart`: configurations queued from files or other studies.
- :mod:`~tuner.outcome.catalog`: studies and trials listed, copied, deleted.
- :mod:`~tuner.outcome.dashboard`: optuna-dashboard on the same storage.
"""
