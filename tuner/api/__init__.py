"""The Python API: ``tuner.tune`` (Keras models, from a spec or pieces) and
``tuner.optimize`` (the same search machinery on a plain function, no Keras involved)."""

from tuner.api._optimize import Objective, Report, optimize
from tuner.api._tune import tune

__all__ = ["Objective", "Report", "optimize", "tune"]
