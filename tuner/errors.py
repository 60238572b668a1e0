"""Errors a user can cause or meet, each turned into one line by the CLI.

The tree::

    TunerError                      base of everything this package raises on purpose
    ├── SpecError (ValueError)      a study spec or search space is invalid
    ├── DataError (ValueError)      a dataset is missing, unreadable or unfit for the model
    ├── StorageError (RuntimeError) the storage URL is wrong or the database unreachable
    │   └── UnusableStorageError (ValueError) a port not a number, an in-memory or read-only SQLite
    ├── StudyExistsError            a study of that name exists and neither resume nor overwrite
    ├── StudyNotFoundError (KeyError) no study of that name in the storage
    ├── NoCompletedTrialError (LookupError) a study has no completed trial to use yet
    ├── DashboardError (OSError)    the dashboard cannot listen on the address asked for
    ├── StudyStopped (RuntimeError) the whole study had to stop (circuit breaker)
    ├── ClusterError (RuntimeError) Ray is not installed, or its cluster cannot be reached
    ├── ReportError (ValueError)    a study cannot be reported on as asked
    └── MultiObjectiveError (ValueError) one best trial asked of a study of several objectives

Trial-level faults are not here: they FAIL one trial (see ``tuner.trial.objective``).
"""

from __future__ import annotations


class TunerError(Exception):
    """Base class of the errors this package raises on purpose."""


class SpecError(TunerError, ValueError):
    """A study spec or search space is invalid; the message lists every problem."""

    def __init__(self, problems: list[str] | str, *, source: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__("\n".join(prefix + p for p in self.problems))


class DataError(TunerError, ValueError):
    """A dataset is missing, unreadable, or does not fit the model."""


class StorageError(TunerError, RuntimeError):
    """The storage URL is malformed or the database cannot be reached."""


class UnusableStorageError(StorageError, ValueError):
    """The storage cannot work as given: a port that is not a number, an in-memory or a
    read-only SQLite database. Bad input (exit 2), unlike a server that does not answer."""


class StudyExistsError(TunerError):
    """A study of that name already exists and the caller chose neither resume nor overwrite."""


class StudyNotFoundError(TunerError, KeyError):
    """No study of that name in the storage."""

    def __str__(self) -> str:  # KeyError quotes its message; a user wants it plain
        return str(self.args[0]) if self.args else ""


class NoCompletedTrialError(TunerError, LookupError):
    """The study has no completed trial, so it has no best configuration yet."""


class DashboardError(TunerError, OSError):
    """The dashboard cannot listen on the host and port asked for (busy, forbidden, unknown)."""


class StudyStopped(TunerError, RuntimeError):
    """The study stopped before its budget, for a reason that concerns every trial."""


class ClusterError(TunerError, RuntimeError):
    """Ray is not installed, its cluster cannot be reached, or cannot hold the workers."""


class ReportError(TunerError, ValueError):
    """A study cannot be reported on as asked (empty, bad option)."""


class MultiObjectiveError(TunerError, ValueError):
    """A single best trial was asked of a study of several objectives (it has a Pareto front)."""
