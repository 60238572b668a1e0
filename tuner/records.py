"""Names of what tuner records on Optuna studies and trials (user attributes).

Everything lives in Optuna's own schema, so plain Optuna and optuna-dashboard see it.
Readers (reports, CLI listings, workers) use these names rather than string literals.
"""

from __future__ import annotations

# Trial user attributes.
EPOCHS = "epochs"  # epochs actually trained (fewer than max_epochs when pruned or diverged)
SECONDS = "seconds"  # wall time of the trial's training, seconds
N_PARAMS = "n_params"  # number of model parameters
SEED = "seed"  # the random seed the trial trained with
FAIL_REASON = "fail_reason"  # why a FAIL trial failed: "diverged", "out of memory", ...
DIVERGED = "diverged"  # the fail_reason of a trial whose loss became NaN/inf or exploded
WORKER = "worker"  # host:pid of the process that ran the trial
NODE = "node"  # the Ray node ID the trial ran on (`tuner run --ray`)
PEAK_RSS_MB = "peak_rss_mb"  # peak resident memory of the worker process so far, MiB
RECOVERED_FROM = "recovered_from"  # number of the trial, failed as stale, whose result this is
STAGE = "stage"  # the staged strategy's stage this trial ran in (1 = tier 1 alone)
FROZEN = "frozen"  # values the strategy froze for this trial (model values, by name)
BASELINE = "baseline"  # True on the trial that trains the space's defaults (trial 0)
PROBE = "probe"  # True on the trials that train the defaults with the learning rate either side
# True on the default search's start trials (the baseline and its probes): trained to the
# end whatever the pruner says, and hidden from TPE's model (tuner.search.start).
START = "start"
INFEASIBLE = "infeasible"  # the constraints a trial broke before training, in words
# Also on every trial: its measures (tuner.specs.objectives.MEASURES, the final val_*
# metrics, a builder's own), each under its own name, so no measure may take these.
OWN_TRIAL_ATTRS = frozenset(
    (
        EPOCHS,
        SECONDS,
        SEED,
        FAIL_REASON,
        WORKER,
        PEAK_RSS_MB,
        RECOVERED_FROM,
        STAGE,
        FROZEN,
        BASELINE,
        PROBE,
        START,
        INFEASIBLE,
    )
)

# Study user attributes.
SPEC = "tuner_spec"  # the study spec as a JSON-able mapping (what a joining worker needs)
SPACE = "tuner_space"  # the resolved search space (declared tiers, ranges, defaults)
TIERS = "tuner_tiers"  # the tiers this study searches, as a sorted list
STRATEGY = "tuner_strategy"  # the search strategy and its stage plan (tuner.search.strategy)
SEARCH = "tuner_search"  # strategy, sampler and pruner with their options (search.described)
STAGE_DECISION = "tuner_stage_{stage}"  # one key per stage: frozen, narrowed, evidence
MAX_EPOCHS = "max_epochs"  # epochs a trial would train without pruning
BUDGET = "tuner_budget"  # trials that workers may still create (tuner.storage.queue)
