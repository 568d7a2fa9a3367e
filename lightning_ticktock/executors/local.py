"""Local worker processes: several trials at once on one machine.

One single-process ``concurrent.futures.ProcessPoolExecutor`` per worker slot.
Workers start through a ``forkserver`` that has imported torch and Lightning once
(POSIX), so a worker is ready in a fraction of a second instead of paying
Lightning's import (seconds) per worker; elsewhere they are ``spawn``-ed. Neither
forks the driver itself: CUDA and fork do not mix. Each worker takes the driver's
environment variables as they are when the executor is built. One pool per slot, not
one pool of ``n_workers``: when a worker process dies (killed, out of memory), a
shared pool breaks and takes every running trial down with it; a slot's pool
breaks alone, so only the trial of the dead worker is lost (the driver marks it
``interrupted``) and the slot gets a fresh process for the next trial.

Each slot is pinned to one GPU through ``CUDA_VISIBLE_DEVICES`` when GPUs are
present (slot ``i`` gets GPU ``gpus[i % len(gpus)]``), so trials never share a
device unless there are more workers than GPUs; on a CPU-only machine each worker
gets ``cores // n_workers`` torch threads (at least one) so concurrent trials do
not oversubscribe the cores (which would inflate every trial's measured cost).

A worker whose driver dies (``kill -9``) exits within a second (it watches its
parent: the driver, or the forkserver, which exits with the driver), so it never
trains on as an orphan whose result nobody records.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures.process import BrokenProcessPool

from ..errors import TickTockValueError
from ..runner import TrialOutcome, TrialSpec, run_trial
from .base import BaseExecutor

# NOTE: a dead driver's worker exits within this many seconds: short enough that
# its trial is seen interrupted (its owner has exited) long before a heartbeat
# grace period, long enough that the check costs nothing.
_PARENT_POLL_SECONDS = 0.5


# NOTE: imported once by the forkserver, so that workers forked from it start warm.
_PRELOAD = ["torch", "lightning.pytorch"]


def _watch_parent(parent_pid: int) -> None:
    # The parent is the driver (spawn) or the forkserver, which exits with the driver.
    while True:
        time.sleep(_PARENT_POLL_SECONDS)
        if os.getppid() != parent_pid:  # reparented: the driver is gone
            os._exit(1)


def _init_worker(gpu: int | None, threads: int, env: dict[str, str] | None = None) -> None:
    if env is not None:
        # A forkserver child inherits the forkserver's environment, which may predate
        # changes made in the driver since: take the driver's, as spawn would.
        os.environ.clear()
        os.environ.update(env)
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    import torch

    torch.set_num_threads(max(1, threads))
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True,
                     name="ticktock-parent-watch").start()


def _context(start_method: str | None) -> mp.context.BaseContext:
    if start_method is None:
        start_method = ("forkserver" if "forkserver" in mp.get_all_start_methods()
                        else "spawn")
    if start_method not in ("forkserver", "spawn"):
        raise TickTockValueError(
            f"start_method={start_method!r} must be 'forkserver', 'spawn' or None (fork "
            "is not offered: a forked driver breaks CUDA and SQLite connections)"
        )
    ctx = mp.get_context(start_method)
    if start_method == "forkserver":
        ctx.set_forkserver_preload(_PRELOAD)  # no effect once the server runs
    return ctx


def _detect_gpus() -> list[int]:
    try:
        import torch

        return list(range(torch.cuda.device_count()))
    except Exception:  # noqa: BLE001
        return []


class LocalProcessExecutor(BaseExecutor):
    """``n_workers`` worker processes on this machine.

    Args:
        n_workers: Trials at once.
        gpus: GPU indices to spread workers over (default: all visible GPUs).
        threads: Torch threads per worker (default ``cores // n_workers``, at least 1).
        start_method: ``"forkserver"`` (default where available) or ``"spawn"``.

    Example:
        >>> ex = LocalProcessExecutor(2, gpus=[])
        >>> ex.n_workers
        2
        >>> ex.shutdown()
    """

    needs_pickle = True

    def __init__(self, n_workers: int, gpus: Sequence[int] | None = None,
                 threads: int | None = None, start_method: str | None = None) -> None:
        self.n_workers = n_workers
        self._gpus = list(gpus) if gpus is not None else _detect_gpus()
        self._threads = threads or max(1, (os.cpu_count() or 1) // n_workers)
        self._ctx = _context(start_method)
        self._env = dict(os.environ)
        self._pools: list[cf.ProcessPoolExecutor | None] = [None] * n_workers
        self._busy: list[cf.Future[TrialOutcome] | None] = [None] * n_workers
        self._next = 0

    def _gpu_of(self, slot: int) -> int | None:
        return self._gpus[slot % len(self._gpus)] if self._gpus else None

    def _new_pool(self, slot: int) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(
            max_workers=1, mp_context=self._ctx, initializer=_init_worker,
            initargs=(self._gpu_of(slot), self._threads, self._env),
        )

    def _free_slot(self) -> int:
        for slot, fut in enumerate(self._busy):
            if fut is None or fut.done():
                return slot
        # More submits than workers: queue behind the slots in turn.
        self._next = (self._next + 1) % self.n_workers
        return self._next

    def submit(self, spec: TrialSpec) -> cf.Future[TrialOutcome]:
        slot = self._free_slot()
        pool = self._pools[slot]
        if pool is None:
            pool = self._pools[slot] = self._new_pool(slot)
        try:
            fut = pool.submit(run_trial, spec)
        except BrokenProcessPool:
            # This slot's worker died (killed, OOM): its trial was recorded by the
            # driver; a fresh process takes the slot so the study goes on.
            pool.shutdown(wait=False)
            pool = self._pools[slot] = self._new_pool(slot)
            fut = pool.submit(run_trial, spec)
        self._busy[slot] = fut
        return fut

    def worker_pids(self) -> list[int]:
        """Pids of the live worker processes (for tests and diagnostics)."""
        return [p.pid for pool in self._pools if pool is not None
                for p in list(getattr(pool, "_processes", {}).values())]

    def shutdown(self, cancel: bool = False) -> None:
        for pool in self._pools:
            if pool is None:
                continue
            if cancel:
                for proc in list(getattr(pool, "_processes", {}).values()):
                    proc.terminate()
            pool.shutdown(wait=not cancel, cancel_futures=cancel)
        self._pools = [None] * self.n_workers
        self._busy = [None] * self.n_workers
