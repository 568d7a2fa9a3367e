"""Where trials run: in the driver's process, in local worker processes, or on Ray.

Every executor has one job: take a :class:`~lightning_ticktock.runner.TrialSpec`
and return a ``concurrent.futures.Future`` of its
:class:`~lightning_ticktock.runner.TrialOutcome`. The driver stays the single
ask/tell decision maker; executors never see the optimizer.

* ``"inprocess"``: one trial at a time in the driver's process (the default for
  ``n_workers=1``).
* ``"local"``: :class:`LocalProcessExecutor`, ``n_workers`` worker processes on
  this machine (forked from a server that has imported Lightning once, or
  spawned), one GPU each when there are GPUs (the default for ``n_workers > 1``).
* ``"ray"``: :class:`~lightning_ticktock.executors.ray.RayExecutor`, one Ray task
  per trial with ``resources_per_trial`` on a cluster (``ray_address="auto"``) or
  a local Ray; needs ``pip install 'lightning-ticktock[ray]'``.

What a trial needs (``model_fn``, ``datamodule_fn``, ``trainer_fn``, ...) travels to
the workers by pickle: use module-level functions of an importable module or
script, not lambdas, nested functions or functions typed into a REPL/notebook.

Cost under parallelism:
    A trial's cost is its own measure: the seconds of its own ``fit`` (or the
    user's cost function of its trainer), never the study's wall time, so a
    trial's cost is comparable with ``max_cost`` whatever runs beside it. But
    concurrent trials that *share hardware* slow each other down, and the
    slowdown lands in every trial's measured seconds: 4 trials on 2 idle cores
    each run about 2x slower (3.6x measured on a busy 2-core machine, see
    ``docs/benchmarks_parallel.md``), so the optimizer learns costs that are too high,
    early-stops runs that would have fit the budget, and its tick phase chases
    noise from its neighbours' load. What to do:

    * one trial per device: ``n_workers`` at most the number of GPUs (the local
      executor pins worker ``i`` to GPU ``i``), or at most the cores divided by
      the threads a trial needs on a CPU machine (the local executor gives each
      worker ``cores // n_workers`` torch threads);
    * on Ray, declare what a trial uses, ``resources_per_trial={"cpu": 4, "gpu": 1}``,
      so Ray never packs more trials on a node than it holds; data-loader workers
      count as CPUs;
    * when sharing is unavoidable (shared storage, network, a GPU split in
      fractions), measure something the neighbours do not change: a cost
      function ``cost=steps_cost`` with ``def steps_cost(trainer, module): return
      trainer.global_step * SECONDS_PER_STEP`` (module-level, like ``model_fn``), or
      a count of samples, tokens or FLOPs, so the budget means the same in every
      trial.

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
        **options: Executor options (local: ``gpus``, ``threads``, ``start_method``;
            Ray: ``ray_address``, ``resources_per_trial``); ``None`` means the default.
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
        return LocalProcessExecutor(n_workers, gpus=options.get("gpus"),
                                    threads=options.get("threads"),
                                    start_method=options.get("start_method"))
    if kind == "ray":
        from .ray import RayExecutor

        return RayExecutor(n_workers, ray_address=options.get("ray_address"),
                           resources_per_trial=options.get("resources_per_trial"))
    raise TickTockValueError(f"executor={kind!r} must be one of {list(_KINDS)}")
