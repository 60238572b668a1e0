"""Search: which values a trial tries.

- :mod:`~tuner.search.strategy`: how the budget is spent over the tiers.
- :mod:`~tuner.search.samplers`: Optuna's samplers and pruners by name.
- :mod:`~tuner.search.tpe`: TPE with its cost bounded on long studies.
- :mod:`~tuner.search.importance`: which parameters mattered, with intervals.
"""
