"""Ray executor: each trial is one Ray task with the resources it declares.

Ray is an optional extra (``pip install 'lightning-ticktock[ray]'``), imported
when the executor is built, never by ``import lightning_ticktock``.

* **Cluster.** ``ray_address="auto"`` (or ``"ray://host:10001"``, or an address)
  joins an existing cluster through ``ray.init(address=...)``; ``None`` uses the
  Ray already initialized in this process, or starts a local one (``ray.init()``).
* **Resources.** ``resources_per_trial`` maps ``"cpu"`` and ``"gpu"`` to the task's
  ``num_cpus``/``num_gpus`` (fractions allowed), ``"memory"`` to its ``memory``
  (bytes), and any other key to a custom resource; the default is one CPU. Ray
  sets ``CUDA_VISIBLE_DEVICES`` to the task's GPUs, so Lightning's
  ``accelerator="auto"`` trains on exactly those; the task sets torch to
  ``num_cpus`` threads.
* **No silent reruns.** Trial tasks have ``max_retries=0``: a worker or node lost
  mid-trial (``WorkerCrashedError``, ``NodeDiedError``, ``OutOfMemoryError``, a
  ``RayTaskError`` wrapping a system error) resolves the trial's future with that
  error, which the driver records as a failed trial with its text; the study goes
  on. (A rerun would double the trial's compute and hide the crash.)
* **Futures.** ``ObjectRef.future()`` is the ``concurrent.futures.Future`` the
  driver waits on.
* **Heartbeats.** The driver beats for its Ray trials (it holds their futures);
  the task does not open the study file, which a node of a cluster does not
  have. Per-validation metrics are recorded when the trial is told. Loggers write
  on the node that ran the trial: give ``logger_fn`` a shared location (or a
  remote logger) on a real cluster.
* **Code.** The functions of the study must be importable on the nodes (installed
  there, or shipped with ``ray.init(runtime_env={"working_dir": ...})`` before the
  driver runs); ``cloudpickle`` sends lambdas and ``__main__`` functions by value.

Example:
    >>> ray_task_options({"cpu": 2, "gpu": 1, "A100": 1})
    {'num_cpus': 2.0, 'num_gpus': 1.0, 'resources': {'A100': 1.0}, 'max_retries': 0}
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import logging
import math
import numbers
import os
import threading
from collections.abc import Mapping
from typing import Any

from ..errors import TickTockError, TickTockTypeError, TickTockValueError
from ..runner import TrialOutcome, TrialSpec, run_trial
from .base import BaseExecutor

__all__ = ["RayExecutor", "RayNotInstalledError", "import_ray", "ray_task_options"]

_log = logging.getLogger(__name__)

_EXTRA = "pip install 'lightning-ticktock[ray]'"


class RayNotInstalledError(TickTockError, ImportError):
    """``executor="ray"`` was asked for, and Ray cannot be imported."""


def import_ray() -> Any:
    """Import Ray, or raise :class:`RayNotInstalledError` naming the extra to install."""
    try:
        import ray
    except ImportError as exc:
        raise RayNotInstalledError(
            f"executor='ray' needs Ray, which cannot be imported ({exc}); install the "
            f"optional extra: {_EXTRA}"
        ) from None
    return ray


def ray_task_options(resources_per_trial: Mapping[str, float] | None) -> dict[str, Any]:
    """Ray ``.options()`` of one trial task, from ``resources_per_trial``.

    Args:
        resources_per_trial: ``{"cpu": n, "gpu": n, "memory": bytes, "<custom>": n}``;
            ``"cpu"``/``"gpu"``/``"memory"`` are case-insensitive; amounts are finite
            numbers ``>= 0``. ``None``: one CPU.

    Raises:
        TickTockTypeError: Not a dict, a key not a string, an amount not a number.
        TickTockValueError: A negative or non-finite amount.

    Example:
        >>> ray_task_options(None)
        {'num_cpus': 1.0, 'num_gpus': 0.0, 'max_retries': 0}
    """
    if resources_per_trial is None:
        resources_per_trial = {}
    if not isinstance(resources_per_trial, Mapping):
        raise TickTockTypeError(
            f"resources_per_trial={resources_per_trial!r} must be a dict such as "
            "{'cpu': 2, 'gpu': 1}"
        )
    opts: dict[str, Any] = {"num_cpus": 1.0, "num_gpus": 0.0}
    custom: dict[str, float] = {}
    for key, amount in resources_per_trial.items():
        if not isinstance(key, str) or not key:
            raise TickTockTypeError(
                f"resources_per_trial: key {key!r} must be a resource name (str): 'cpu', "
                "'gpu', 'memory' or a custom resource of the cluster"
            )
        if isinstance(amount, bool) or not isinstance(amount, numbers.Real):
            raise TickTockTypeError(
                f"resources_per_trial[{key!r}]={amount!r} must be a number"
            )
        if not (math.isfinite(amount) and amount >= 0):
            raise TickTockValueError(
                f"resources_per_trial[{key!r}]={amount!r} must be a finite number >= 0"
            )
        low = key.lower()
        if low in ("cpu", "gpu"):
            opts[f"num_{low}s"] = float(amount)
        elif low == "memory":
            opts["memory"] = int(amount)
        else:
            custom[key] = float(amount)
    if custom:
        opts["resources"] = custom
    opts["max_retries"] = 0  # a crashed trial is recorded, never silently rerun
    return opts


def _ray_trial(spec: TrialSpec, threads: int) -> TrialOutcome:
    """The body of a trial task (module-level: Ray imports it by reference)."""
    import torch

    torch.set_num_threads(max(1, threads))
    return run_trial(spec)


def _node_capacity(nodes: list[dict[str, Any]], need: Mapping[str, float]) -> int:
    """How many trials needing ``need`` (Ray resource names) fit on the alive nodes."""
    total = 0
    for node in nodes:
        if not node.get("Alive", True):
            continue
        have = node.get("Resources", {})
        fits = [math.floor(have.get(k, 0.0) / v + 1e-9) for k, v in need.items() if v > 0]
        total += min(fits) if fits else 1 << 20
    return total


class RayExecutor(BaseExecutor):
    """Trials as Ray tasks, at most ``n_workers`` at once (the driver's limit).

    Args:
        n_workers: Trials at once; more than the cluster can place wait in Ray's queue.
        ray_address: Cluster address for ``ray.init(address=...)`` (``"auto"``);
            ``None``: the Ray already initialized, or a local one started now.
        resources_per_trial: See :func:`ray_task_options`.

    Raises:
        RayNotInstalledError: Ray is not installed.
        TickTockValueError: No node of a local Ray has the resources of one trial.
    """

    needs_pickle = True

    def __init__(self, n_workers: int, ray_address: str | None = None,
                 resources_per_trial: Mapping[str, float] | None = None) -> None:
        self.n_workers = n_workers
        self.options = ray_task_options(resources_per_trial)
        ray = self._ray = import_ray()
        self.started_ray = False
        if ray.is_initialized():
            if ray_address is not None:
                _log.info("Ray is already initialized in this process; ray_address=%r is not "
                          "used", ray_address)
        else:
            # None starts a local Ray (or joins the one RAY_ADDRESS names).
            ray.init(address=ray_address)
            self.started_ray = ray_address is None and not os.environ.get("RAY_ADDRESS")
        self._check_resources()
        self._threads = max(1, math.floor(self.options["num_cpus"]))
        self._task = ray.remote(_ray_trial).options(**self.options)
        self._refs: dict[cf.Future[TrialOutcome], Any] = {}
        self._lock = threading.Lock()

    def _check_resources(self) -> None:
        need = {"CPU": self.options["num_cpus"], "GPU": self.options["num_gpus"],
                **self.options.get("resources", {})}
        if "memory" in self.options:
            need["memory"] = float(self.options["memory"])
        try:
            nodes = self._ray.nodes()
        except Exception as exc:  # noqa: BLE001 - a diagnostic, never a reason to fail
            _log.debug("cannot list the Ray nodes: %s", exc)
            return
        capacity = _node_capacity(nodes, need)
        if capacity >= self.n_workers:
            return
        have = [n.get("Resources", {}) for n in nodes if n.get("Alive", True)]
        text = (f"the Ray cluster fits {capacity} trial(s) needing {need} at once, fewer "
                f"than n_workers={self.n_workers} (node resources: {have})")
        if capacity == 0 and self.started_ray:
            raise TickTockValueError(
                f"resources_per_trial: {text}; no trial could ever start on this local Ray. "
                "Lower resources_per_trial or run on a cluster that has them"
            )
        _log.warning("%s; the others wait in Ray's queue%s", text,
                     " (an autoscaler may add nodes)" if capacity == 0 else "")

    def submit(self, spec: TrialSpec) -> cf.Future[TrialOutcome]:
        # The study file stays with the driver (a cluster node has no copy of it).
        ref = self._task.remote(dataclasses.replace(spec, storage=None), self._threads)
        fut: cf.Future[TrialOutcome] = ref.future()
        with self._lock:
            self._refs[fut] = ref
        fut.add_done_callback(self._forget)
        return fut

    def _forget(self, fut: cf.Future[TrialOutcome]) -> None:
        with self._lock:
            self._refs.pop(fut, None)

    def shutdown(self, cancel: bool = False) -> None:
        """Forget the trials; ``cancel`` kills the tasks still running (Ray stays up)."""
        with self._lock:
            refs = list(self._refs.values())
            self._refs.clear()
        if cancel:
            for ref in refs:
                try:
                    self._ray.cancel(ref, force=True)
                except Exception as exc:  # noqa: BLE001 - best effort on the way out
                    _log.debug("ray.cancel failed: %s", exc)
