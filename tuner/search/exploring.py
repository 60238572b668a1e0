"""A sampler that hands a fixed share of its trials to uniform random search.

TPE models where the good trials were, and on a budget of a few dozen trials it settles
early; random draws keep finding other regions, which TPE then models. tuner's default
search (this over TPE, a third of the trials random, with successive halving) beat plain
TPE and TPE + Hyperband on the LCBench surrogate (benchmarks/lcbench.py, figures in
benchmarks/README.md). Optuna has no such option (``TPESampler`` draws at random only
before ``n_startup_trials``), hence this small wrapper.

Which trials are random is a pure function of the seed and the trial number, so the
relative (multivariate) and independent draws of one trial agree, and two runs with the
same seed draw the same trials at random.

The model does not see the trials ``hidden`` picks: the default search hides its start
trials, the baseline and the probes of its learning rate (:mod:`tuner.search.start`).
They train to the end, and TPE ranks every complete trial above every pruned one, so with
successive halving pruning most trials they would fill TPE's "good" set (2-3 trials for
the first 30) with the defaults' neighbourhood. On LCBench, random search's median result
was then never reached in 13 task-seeds of 170; 11 with the probes hidden, 8 with all
three (benchmarks/README.md, "The default search on LCBench").
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from tuner._optuna_compat import StudyWithout


class ExploringSampler(optuna.samplers.BaseSampler):
    """``model`` for most trials; uniform random for a ``random_share`` of them.

    Example:
        >>> sampler = ExploringSampler(optuna.samplers.TPESampler(seed=0), random_share=0.33,
        ...                            seed=0)
        >>> study = optuna.create_study(sampler=sampler)
    """

    def __init__(
        self,
        model: optuna.samplers.BaseSampler,
        *,
        random_share: float,
        seed: int | None,
        hidden: Callable[[FrozenTrial], bool] = lambda trial: False,
    ) -> None:
        if not 0 <= random_share <= 1:
            raise ValueError(f"random_share must be between 0 and 1, not {random_share}")
        self.model = model
        self.random_share = random_share
        self.hidden = hidden
        self._seed = seed
        # Not ``seed`` itself: the model's own start-up draws (TPE's RandomSampler) use it,
        # and the same stream here would repeat its trials one for one (measured: it did).
        self._random = optuna.samplers.RandomSampler(
            seed=None if seed is None else (seed + 1) % 2**32
        )

    def explores(self, trial: FrozenTrial) -> bool:
        """Whether ``trial`` is one of the uniformly random ones."""
        draw = random.Random(f"{self._seed}:{trial.number}").random()
        return draw < self.random_share

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        if self.explores(trial):
            return {}
        return self.model.infer_relative_search_space(self._seen(study), trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if self.explores(trial):
            return {}
        return self.model.sample_relative(self._seen(study), trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        if self.explores(trial):
            return self._random.sample_independent(study, trial, param_name, param_distribution)
        seen = self._seen(study)
        return self.model.sample_independent(seen, trial, param_name, param_distribution)

    def _seen(self, study: optuna.Study) -> optuna.Study:
        """The study as the model sees it: without the hidden trials."""
        return StudyWithout(study, self.hidden)  # type: ignore[return-value]  # a Study to it

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.model.before_trial(study, trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self.model.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.model.reseed_rng()
        self._random.reseed_rng()
