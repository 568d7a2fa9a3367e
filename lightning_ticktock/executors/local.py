"""Local worker processes: several trials at once on one machine.

A ``concurrent.futures.ProcessPoolExecutor`` with the ``spawn`` start method
(CUDA and fork do not mix). Each worker process is pinned to one GPU through
``CUDA_VISIBLE_DEVICES`` when GPUs are present, so trials never share a device;
on a CPU-only machine each worker gets ``cores / n_workers`` torch threads so
concurrent trials do not oversubscribe the cores (which would inflate every
trial's measured cost).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
from collections.abc import Sequence

from ..runner import TrialOutcome, TrialSpec, run_trial
from .base import BaseExecutor


def _init_worker(device_queue, threads: int) -> None:
    gpu = None
    if device_queue is not None:
        try:
            gpu = device_queue.get_nowait()
        except Exception:  # noqa: BLE001 - more workers than GPUs: share the last
            gpu = None
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    import torch

    torch.set_num_threads(max(1, threads))


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
    """

    needs_pickle = True

    def __init__(self, n_workers: int, gpus: Sequence[int] | None = None) -> None:
        self.n_workers = n_workers
        self._gpus = list(gpus) if gpus is not None else _detect_gpus()
        self._pool = self._new_pool()

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        ctx = mp.get_context("spawn")
        queue = None
        if self._gpus:
            queue = ctx.Queue()
            for i in range(self.n_workers):
                queue.put(self._gpus[i % len(self._gpus)])
        threads = max(1, (os.cpu_count() or 1) // self.n_workers)
        return cf.ProcessPoolExecutor(
            max_workers=self.n_workers, mp_context=ctx,
            initializer=_init_worker, initargs=(queue, threads),
        )

    def submit(self, spec: TrialSpec) -> cf.Future[TrialOutcome]:
        try:
            return self._pool.submit(run_trial, spec)
        except cf.process.BrokenProcessPool:
            # A worker died (killed, OOM): its trial was recorded failed by the driver;
            # start a fresh pool so the study goes on.
            self._pool = self._new_pool()
            return self._pool.submit(run_trial, spec)

    def shutdown(self, cancel: bool = False) -> None:
        if cancel:
            for proc in list(getattr(self._pool, "_processes", {}).values()):
                proc.terminate()
        self._pool.shutdown(wait=not cancel, cancel_futures=cancel)
