"""Trial: one Keras training run for one set of chosen values.

- :mod:`~tuner.trial.objective`: joins the search (Optuna) and training (Keras).
- :mod:`~tuner.trial.data`: datasets (built-in, files, a user's function), split and scaled.
- :mod:`~tuner.trial.models`: the built-in model families; a user's builder plugs in beside.
- :mod:`~tuner.trial.optim`: optimizers and learning-rate schedules.
- :mod:`~tuner.trial.training`: compile, fit, stop on divergence.
- :mod:`~tuner.trial.pruning`: per-epoch reports and the pruner's question.
- :mod:`~tuner.trial.memory` and :mod:`~tuner.trial.keras_env`: memory and TensorFlow setup.

The model side knows nothing of Optuna: it takes a plain mapping of chosen values.
"""
