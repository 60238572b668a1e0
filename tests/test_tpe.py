"""TPE with a bounded cost: thinning what g(x) is fitted on must not lose the search."""

from __future__ import annotations

import itertools

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from tuner.errors import SpecError
from tuner.search.samplers import make_sampler
from tuner.search.tpe import thinned

X = optuna.distributions.FloatDistribution(0, 1)


def _trials(n: int, running: int = 0) -> list[optuna.trial.FrozenTrial]:
    trials = [
        create_trial(params={"x": i / n}, distributions={"x": X}, value=float(i)) for i in range(n)
    ] + [
        create_trial(params={"x": 0.5}, distributions={"x": X}, state=TrialState.RUNNING)
        for _ in range(running)
    ]
    for number, trial in enumerate(trials):
        trial.number = number
    return trials


def test_thinning_keeps_the_newest_every_running_trial_and_an_even_spread():
    trials = _trials(3000, running=4)
    kept = thinned(trials, keep=1000)
    numbers = [t.number for t in kept]
    assert len(kept) <= 1000
    assert numbers == sorted(numbers)
    assert numbers[-4:] == [3000, 3001, 3002, 3003]  # the constant liar's RUNNING trials
    assert 2999 in numbers  # the newest finished trial
    gaps = {b - a for a, b in itertools.pairwise(numbers[:-4])}
    assert gaps == {4}  # evenly spaced over the whole history, old trials included
    assert [t.number for t in thinned(_trials(10), keep=4)] == [0, 3, 6, 9]


def test_a_long_study_still_converges_with_a_small_bound():
    sampler = make_sampler("tpe", {"max_above_trials": 20, "n_startup_trials": 10}, seed=0)
    study = optuna.create_study(sampler=sampler)
    study.optimize(
        lambda t: (t.suggest_float("x", -5, 5) - 1.3) ** 2 + (t.suggest_float("y", -5, 5)) ** 2,
        n_trials=150,
    )
    assert study.best_value < 0.05


@pytest.mark.parametrize("bound", [20, None])
def test_the_above_density_is_fitted_on_at_most_the_bound(monkeypatch, bound):
    # Plain TPE fits g(x) on every trial but the best few; the bounded one on `bound` at most.
    sizes: list[int] = []
    fit = optuna.samplers.TPESampler._build_parzen_estimator

    def counting(self, study, search_space, trials, handle_below):
        if not handle_below:
            sizes.append(len(trials))
        return fit(self, study, search_space, trials, handle_below)

    monkeypatch.setattr(optuna.samplers.TPESampler, "_build_parzen_estimator", counting)
    options = {"n_startup_trials": 10} | ({"max_above_trials": bound} if bound else {})
    sampler = make_sampler("tpe", options, seed=0)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: t.suggest_float("x", -5, 5) ** 2, n_trials=70)
    if bound:
        assert max(sizes) == bound
    else:  # what the bound saves: plain TPE's g(x) grows with the study
        assert max(sizes) > 50


def test_a_bad_bound_is_one_clear_spec_error():
    with pytest.raises(SpecError, match="max_above_trials must be at least 1, not 0"):
        make_sampler("tpe", {"max_above_trials": 0}, seed=0)


def _quadratic_study(sampler: optuna.samplers.BaseSampler, n_trials: int) -> optuna.Study:
    study = optuna.create_study(sampler=sampler)
    study.optimize(
        lambda t: (t.suggest_float("x", -5, 5) - 1.3) ** 2 + t.suggest_float("y", -5, 5) ** 2,
        n_trials=n_trials,
    )
    return study


def test_the_default_sampler_draws_a_third_at_random_and_still_converges():
    sampler = make_sampler("tpe-explore", {}, seed=3)
    study = _quadratic_study(sampler, 150)
    explored = [t.number for t in study.trials if sampler.explores(t)]
    assert 35 <= len(explored) <= 65  # about a third of 150
    assert study.best_value < 0.1  # TPE still models the rest
    again = make_sampler("tpe-explore", {}, seed=3)
    assert [t.number for t in study.trials if again.explores(t)] == explored  # same seed


def test_random_draws_never_repeat_the_start_up_draws():
    # Both streams seeded alike would give trial 2 the parameters of trial 1, and so on.
    study = _quadratic_study(make_sampler("tpe-explore", {}, seed=0), 40)
    points = [(t.params["x"], t.params["y"]) for t in study.trials]
    assert len(set(points)) == len(points)


def test_bad_default_sampler_options_are_one_clear_spec_error():
    with pytest.raises(SpecError, match="random_share must be between 0 and 1, not 2"):
        make_sampler("tpe-explore", {"random_share": 2}, seed=0)
