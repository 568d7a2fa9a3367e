"""The executor interface and the in-process executor."""

from __future__ import annotations

import abc
import concurrent.futures as cf

from ..runner import TrialOutcome, TrialSpec, run_trial


class BaseExecutor(abc.ABC):
    """Runs trials; ``submit`` returns a future of the outcome.

    Contract: a future either resolves to a :class:`TrialOutcome` or raises the
    error that made the worker itself fail. The driver records a dead local worker
    process (``BrokenProcessPool``) as an interrupted trial the first time and as a
    failed one when the same configuration kills its worker again; any other worker
    error (a lost Ray node or worker) is a failed trial. ``KeyboardInterrupt`` in
    the driver's own process propagates.
    """

    #: How many trials may run at once.
    n_workers: int = 1
    #: Whether trial specs cross a process boundary (and so must pickle).
    needs_pickle: bool = True

    @abc.abstractmethod
    def submit(self, spec: TrialSpec) -> cf.Future[TrialOutcome]:
        """Start a trial."""

    def shutdown(self, cancel: bool = False) -> None:
        """Release workers; ``cancel`` abandons trials still running."""
        return None  # nothing to release by default


class InProcessExecutor(BaseExecutor):
    """Runs each trial synchronously in the driver's process (the default)."""

    n_workers = 1
    needs_pickle = False

    def submit(self, spec: TrialSpec) -> cf.Future[TrialOutcome]:
        fut: cf.Future[TrialOutcome] = cf.Future()
        fut.set_result(run_trial(spec))  # KeyboardInterrupt propagates to the driver
        return fut
