"""Overheads of the Lightning integration, measured on the MNIST example.

Four measurements (issue "Lightning integration", section 8):

1. **Callback overhead per training step**: the seconds spent inside
   ``TickTockCallback``'s hooks (timed directly around each hook) divided by the
   seconds of the training loop, and an A/B of whole fits with and without the
   callback (interleaved, medians). Target: < 1 %.
2. **Projection error at the stop decision**: over-budget configurations run to
   the end with a measuring callback (``max_cost=None``); at the batch where the
   real callback would have stopped (first projection above
   ``max_cost * (1 + margin)`` after warm-up) the projection is recorded and
   compared with the real full cost. Target: within 10 %.
3. **Optimizer share of a study's wall time** on the MNIST example study:
   from the study file, the time between one trial's end and the next one's
   creation (tell + GP fits + acquisition + storage) over the study's wall time.
   Target: < 5 %.
4. **Resident memory across 30 trials** of one driver process (psutil RSS after
   each trial): it must not grow trial over trial.

Usage::

    python benchmarks/bench_overheads.py --out docs/ [--study runs/mnist.db]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

import lightning.pytorch as pl  # noqa: E402
import mnist  # noqa: E402

from lightning_ticktock.callback import TickTockCallback  # noqa: E402

HOOKS = ("on_train_start", "on_train_batch_end", "on_train_epoch_end", "on_validation_start",
         "on_validation_batch_end", "on_validation_end", "on_train_end")


class _TimedCallback(TickTockCallback):
    """TickTockCallback with the time spent in each of its hooks accumulated."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.hook_seconds = 0.0

    def __getattribute__(self, name: str) -> Any:
        attr = super().__getattribute__(name)
        if name in HOOKS:
            @functools.wraps(attr)
            def timed(*a: Any, **kw: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return attr(*a, **kw)
                finally:
                    object.__setattr__(self, "hook_seconds",
                                       object.__getattribute__(self, "hook_seconds")
                                       + time.perf_counter() - t0)
            return timed
        return attr


class _StepTimer(pl.Callback):
    def on_train_start(self, trainer, pl_module):
        self.t0 = time.perf_counter()
        self.steps = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps += 1

    def on_train_end(self, trainer, pl_module):
        self.seconds = time.perf_counter() - self.t0


class _DecisionRecorder(pl.Callback):
    """Records the measuring callback's projection at the would-be stop decision."""

    def __init__(self, tt: TickTockCallback, max_cost: float) -> None:
        self.tt, self.max_cost = tt, max_cost
        self.at_decision: tuple[float, float, int] | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        p = self.tt.projected_cost
        if self.at_decision is None and p is not None and self.tt.warmed_up \
                and p > self.max_cost * (1 + self.tt.margin):
            self.at_decision = (p, self.tt.elapsed, trainer.global_step)


def _fit(params: dict[str, Any], callbacks: list, limit_train_batches=None) -> None:
    kwargs = dict(mnist.FIXED_TRAINER_KWARGS, accelerator="cpu", callbacks=callbacks)
    kwargs.update(mnist.trainer_kwargs_for(params))
    if limit_train_batches is not None:
        kwargs["limit_train_batches"] = limit_train_batches
    trainer = pl.Trainer(**kwargs)
    trainer.fit(mnist.make_model(params), datamodule=mnist.make_data(params))


def callback_overhead(repeats: int) -> dict[str, Any]:
    params = dict(mnist.DEFAULT_PARAMS, epochs=1, batch_size=32)
    direct, with_cb, without_cb = [], [], []
    for _ in range(repeats):  # interleaved A/B so both see the same machine load
        timer, cb = _StepTimer(), _TimedCallback(max_cost=1e9)
        _fit(params, [cb, timer], limit_train_batches=60)
        direct.append(cb.hook_seconds / timer.seconds)
        with_cb.append(timer.seconds / timer.steps)
        timer = _StepTimer()
        _fit(params, [timer], limit_train_batches=60)
        without_cb.append(timer.seconds / timer.steps)
    return {
        "config": params, "repeats": repeats, "train_batches": 60,
        "hook_share_median": statistics.median(direct),
        "hook_share_max": max(direct),
        "step_seconds_with": statistics.median(with_cb),
        "step_seconds_without": statistics.median(without_cb),
        "ab_overhead_median": statistics.median(with_cb) / statistics.median(without_cb) - 1,
    }


def projection_error(max_cost: float, n_configs: int) -> list[dict[str, Any]]:
    from lightning_ticktock.space import SearchSpace

    space = SearchSpace(mnist.SPACE)
    # Over-budget but not absurdly (so running them to the end stays affordable):
    # more epochs and wider layers than the default, smaller batches.
    base = dict(mnist.DEFAULT_PARAMS)
    configs = [
        dict(base, epochs=12),
        dict(base, epochs=8, batch_size=32),
        dict(base, epochs=6, c1=24, c2=48, units=256),
        dict(base, epochs=10, batch_size=48, optimizer="sgd", max_lr=0.05),
        dict(base, epochs=12, c1=16, c2=32),
        dict(base, epochs=7, batch_size=24, c1=12),
    ][:n_configs]
    rows = []
    for params in configs:
        params = space.validate(params)
        cb = TickTockCallback(max_cost=None)
        rec = _DecisionRecorder(cb, max_cost)
        t0 = time.perf_counter()
        _fit(params, [cb, rec])
        wall = time.perf_counter() - t0
        actual = cb.elapsed
        row = {"params": params, "actual_cost": actual, "fit_wall": wall}
        if rec.at_decision is not None:
            proj, at, step = rec.at_decision
            row.update(projected_at_stop=proj, elapsed_at_stop=at, step_at_stop=step,
                       relative_error=(proj - actual) / actual)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def optimizer_share(study: Path) -> dict[str, Any]:
    from lightning_ticktock.storage import SQLiteStorage

    trials = SQLiteStorage(study).load_trials()
    trials = [t for t in trials if t.datetime_complete is not None]
    trials.sort(key=lambda t: t.datetime_start)
    gaps = [max(0.0, b.datetime_start - a.datetime_complete)
            for a, b in zip(trials, trials[1:])]
    wall = trials[-1].datetime_complete - trials[0].datetime_start
    return {"study": str(study), "n_trials": len(trials), "wall_seconds": wall,
            "optimizer_seconds": sum(gaps), "share": sum(gaps) / wall,
            "median_gap": statistics.median(gaps), "max_gap": max(gaps)}


def memory_over_trials(n: int) -> list[float]:
    import psutil

    from lightning_ticktock import TickTockDriver

    driver = TickTockDriver(
        model_fn=mnist.make_model, datamodule_fn=mnist.make_data,
        trainer_fn=mnist.trainer_kwargs_for,
        trainer_kwargs=dict(mnist.FIXED_TRAINER_KWARGS, limit_train_batches=5,
                            limit_val_batches=1, accelerator="cpu"),
        space=mnist.SPACE, max_cost=60.0, seed=0, quiet=True, n_initial=n + 1,
    )
    proc = psutil.Process()
    rss = []
    for k in range(1, n + 1):
        driver.run(n_trials=k)  # the study's total: one more trial each call
        rss.append(proc.memory_info().rss / 2**20)
    return rss


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="docs/")
    ap.add_argument("--study", default="runs/mnist.db", help="a finished MNIST study file")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--configs", type=int, default=6)
    ap.add_argument("--memory-trials", type=int, default=30)
    ap.add_argument("--max-cost", type=float, default=mnist.DEFAULT_MAX_COST)
    ap.add_argument("--parts", default="callback,memory,share,projection",
                    help="comma-separated subset to run; results merge into the JSON")
    args = ap.parse_args(argv)
    torch.set_num_threads(mnist.DEFAULT_THREADS)
    pl.seed_everything(0, verbose=False)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {"command": "python benchmarks/bench_overheads.py " +
                           " ".join(argv if argv is not None else sys.argv[1:]),
                           "date": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(),
                           "loadavg_start": os.getloadavg()}
    parts = set(args.parts.split(","))
    path = out / "bench_overheads.json"
    if path.exists():  # keep the parts not rerun this time
        old = json.loads(path.read_text())
        res = {**old, **{k: v for k, v in res.items()}}
        res.setdefault("commands", []).append(res["command"])
    if "callback" in parts:
        res["callback"] = callback_overhead(args.repeats)
        print(json.dumps(res["callback"]), flush=True)
    if "memory" in parts:
        res["memory_mib"] = memory_over_trials(args.memory_trials)
        print(json.dumps(res["memory_mib"]), flush=True)
    if "share" in parts and Path(args.study).exists():
        res["optimizer_share"] = optimizer_share(Path(args.study))
        print(json.dumps(res["optimizer_share"]), flush=True)
    if "projection" in parts:
        res["projection"] = projection_error(args.max_cost, args.configs)
    res["loadavg_end"] = os.getloadavg()
    path.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
