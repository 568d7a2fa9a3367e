"""Where trials run: in the driver's process, in local worker processes, or on Ray.

Every executor has one job: take a :class:`~lightning_ticktock.runner.TrialSpec`
and return a ``concurrent.futures.Future`` of its
:class:`~lightning_ticktock.runner.TrialOutcome`. The driver stays the single
ask/tell decision maker; executors never see the optimizer.

Example:
    >>> from lightning_ticktock.executors import make_executor
    >>> ex = make_executor("inprocess", n_workers=1)
    >>> ex.n_workers
    1
    >>> ex.shutdown()
"""

from __future__ import annotations

from typing import Any

from ..errors import TickTockValueError
from .base import BaseExecutor, InProcessExecutor
from .local import LocalProcessExecutor

__all__ = ["BaseExecutor", "InProcessExecutor", "LocalProcessExecutor", "make_executor"]

_KINDS = ("inprocess", "local", "ray")


def make_executor(kind: str | None, n_workers: int, **options: Any) -> BaseExecutor:
    """Build an executor by name.

    Args:
        kind: ``"inprocess"``, ``"local"`` (worker processes) or ``"ray"``;
            ``None`` picks ``"inprocess"`` for one worker and ``"local"`` otherwise.
        n_workers: Trials run at once.
        **options: Executor options (Ray: ``ray_address``, ``resources_per_trial``).
    """
    if kind is None:
        kind = "inprocess" if n_workers == 1 else "local"
    if kind == "inprocess":
        if n_workers != 1:
            raise TickTockValueError(
                f"executor='inprocess' runs one trial at a time; got n_workers={n_workers}. "
                "Use executor='local' or 'ray' for several"
            )
        return InProcessExecutor()
    if kind == "local":
        return LocalProcessExecutor(n_workers, gpus=options.get("gpus"))
    if kind == "ray":
        from .ray import RayExecutor

        return RayExecutor(n_workers, ray_address=options.get("ray_address"),
                           resources_per_trial=options.get("resources_per_trial"))
    raise TickTockValueError(f"executor={kind!r} must be one of {list(_KINDS)}")
