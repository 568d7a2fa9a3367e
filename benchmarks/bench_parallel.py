"""Benchmark several trials at once: throughput, ask() latency, quality, reliability.

Usage::

    python benchmarks/bench_parallel.py --out docs/benchmarks_parallel.json \\
        --plot docs/img/bench_parallel.png                     # everything (~30 min)
    python benchmarks/bench_parallel.py --only latency,quality --quick --out /tmp/b.json

Sections (``--only``, comma-separated; results are merged into ``--out``):

* ``throughput``: the same short Lightning trials (a small MLP, 1-3 epochs of 16
  batches, one torch thread per trial) run by the driver with 1 worker (in
  process) and 4 local workers; trials per minute, and the mean measured cost per
  trial (what sharing the cores does to it). With Sobol asks only (the
  executor's throughput; the first 4-worker run, "cold", includes starting the
  forkserver), with the GP after 8 initial trials, and with steps that wait 20 ms
  instead of computing ("sleep": trials bound by a device, not by these cores).
* ``latency``: ``TickTock.ask()`` on the synthetic ``plateau`` problem after 30
  and 100 told trials, with 0, 4 and 16 pending (running) trials.
* ``quality``: TickTock driven directly through ask/tell on the synthetic
  ``plateau`` problem (``problems.py``), with simulated asynchronous completion:
  ``k`` workers, each asked trial runs for its cost in simulated seconds, the
  next ask happens when a worker frees up, with the others' trials pending.
  Runs stop at the same total compute. Regret against cumulative compute and
  against simulated wall time, and the duplicates and near-duplicates asked.
* ``reliability``: 4 driver processes on one SQLite study of 200 trials (a toy
  model training 4 batches), one killed with SIGKILL midway; checks that exactly
  200 trials finished, none is left running, every trial ran once, and the
  killed process's trial became ``interrupted`` (and how fast).

Simulated early stopping (quality): as in ``bench_optimizer.py``, a run whose full
cost exceeds ``max_cost`` is charged ``min(0.1 * cost, max_cost)`` and told as
early-stopped with its full cost; a run that fits is charged its cost.
"""

from __future__ import annotations

import argparse
import heapq
import json
import logging
import math
import multiprocessing as mp
import os
import platform
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402
import problems as P  # noqa: E402

WARMUP_FRACTION = 0.10
#: Near-duplicate: same categories and every numeric encoded coordinate within this.
NEAR = 0.02
STAMPS_ENV = "TICKTOCK_BENCH_STAMPS"
#: Regret 0 (the optimum itself) is drawn at this value on the log-scale plot.
REGRET_FLOOR = 1e-3

_log = logging.getLogger("bench_parallel")


# ----------------------------------------------------------------- Lightning trials
# Module-level, so that worker processes import them (they travel by reference).

def _tiny_space() -> list[Any]:
    from lightning_ticktock import Float, Int

    return [Float("lr", 1e-3, 1e-1, log=True), Int("width", 64, 512, log=True),
            Int("epochs", 1, 3)]


def tiny_model(params: dict[str, Any]) -> Any:
    """A small MLP on a fixed synthetic regression task (a short, real CPU workload)."""
    _quiet_lightning()  # in the worker processes too
    import lightning.pytorch as lp
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    class Tiny(lp.LightningModule):
        def __init__(self, params: dict[str, Any]) -> None:
            super().__init__()
            w = int(params["width"])
            self.lr = float(params["lr"])
            self.net = torch.nn.Sequential(torch.nn.Linear(64, w), torch.nn.ReLU(),
                                           torch.nn.Linear(w, w), torch.nn.ReLU(),
                                           torch.nn.Linear(w, 1))
            self.batches = int(params.get("batches", 16))
            self.sleep = float(params.get("sleep", 0.0))

        def _data(self, n: int, seed: int) -> Any:
            g = torch.Generator().manual_seed(seed)
            x = torch.randn(n, 64, generator=g)
            y = torch.sin(x[:, :8].sum(1, keepdim=True)) + 0.1 * torch.randn(n, 1, generator=g)
            return DataLoader(TensorDataset(x, y), batch_size=64)

        def training_step(self, batch: Any, i: int) -> Any:
            if self.sleep:
                time.sleep(self.sleep)  # a step bound by a device or I/O, not by the CPU
            x, y = batch
            return torch.nn.functional.mse_loss(self.net(x), y)

        def validation_step(self, batch: Any, i: int) -> None:
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

        def configure_optimizers(self) -> Any:
            return torch.optim.Adam(self.parameters(), lr=self.lr)

        def train_dataloader(self) -> Any:
            return self._data(64 * self.batches, 0)

        def val_dataloader(self) -> Any:
            return self._data(256, 1)

    return Tiny(params)


def sleepy_model(params: dict[str, Any]) -> Any:
    """The tiny MLP with 20 ms of waiting per training step (like a GPU-bound step)."""
    return tiny_model(dict(params, sleep=0.02))


def tiny_trainer(params: dict[str, Any]) -> dict[str, Any]:
    return {"max_epochs": int(params["epochs"]), "accelerator": "cpu", "devices": 1,
            "logger": False, "num_sanity_val_steps": 0}


def few_batches_model(params: dict[str, Any]) -> Any:
    """The reliability study's trial: 4 batches of the tiny MLP."""
    return tiny_model(dict(params, batches=4))


def reliability_trainer(params: dict[str, Any]) -> dict[str, Any]:
    # The default per-trial logger stays on: its version names the trial for Stamp.
    return {"max_epochs": 1, "accelerator": "cpu", "devices": 1, "num_sanity_val_steps": 0}


def stamp_callbacks(params: dict[str, Any]) -> list[Any]:
    import lightning.pytorch as lp

    class Stamp(lp.Callback):
        def _write(self, trainer: Any, event: str) -> None:
            where = os.environ.get(STAMPS_ENV)
            if where and trainer.logger is not None:
                trial = int(str(trainer.logger.version).rsplit("_", 1)[-1])
                Path(where, f"{trial}.{event}.{os.getpid()}").write_text(str(time.time()))

        def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
            self._write(trainer, "start")

        def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
            self._write(trainer, "end")

    return [Stamp()]


def _quiet_lightning() -> None:
    import warnings

    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "lightning_ticktock"):
        logging.getLogger(name).setLevel(logging.ERROR)


# ---------------------------------------------------------------------- throughput

def _throughput_run(n_workers: int, n_trials: int, n_initial: int, tmp: Path, label: str,
                    model_fn: Any = tiny_model) -> dict[str, Any]:
    import torch

    from lightning_ticktock import TickTockDriver

    torch.set_num_threads(1)
    db = tmp / f"throughput_{label}_{n_workers}.db"
    driver = TickTockDriver(model_fn=model_fn, trainer_fn=tiny_trainer, space=_tiny_space(),
                            max_cost=600.0, storage=db, seed=0, n_initial=n_initial,
                            n_workers=n_workers, quiet=True)
    driver.executor_options["threads"] = 1  # one torch thread per trial in every setting
    t0 = time.perf_counter()
    study = driver.run(n_trials=n_trials)
    wall = time.perf_counter() - t0
    trials = study.trials
    costs = [t.cost for t in trials if t.cost is not None]
    return {"n_workers": n_workers, "n_trials": len(trials), "n_initial": n_initial,
            "wall_s": wall, "trials_per_min": 60.0 * len(trials) / wall,
            "mean_cost_s": statistics.fmean(costs), "sum_cost_s": sum(costs),
            "params": [t.params for t in trials], "costs": [t.cost for t in trials],
            "statuses": [t.status for t in trials], "loadavg_end": list(os.getloadavg())}


def bench_throughput(quick: bool) -> dict[str, Any]:
    _quiet_lightning()
    n = 8 if quick else 32
    out: dict[str, Any] = {"runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        # The first 4-worker run starts the forkserver (one Lightning import): "cold".
        for n_initial, label, k in ((n, "sobol", 1), (n, "sobol_cold", 4), (n, "sobol", 4),
                                    (8, "gp", 1), (8, "gp", 4), (n, "sleep", 1),
                                    (n, "sleep", 4)):
            model_fn = sleepy_model if label == "sleep" else tiny_model
            r = _throughput_run(k, n, n_initial, Path(tmp), label, model_fn)
            r["asks"] = label
            print(f"throughput {label} workers={k}: {r['n_trials']} trials in "
                  f"{r['wall_s']:.1f}s = {r['trials_per_min']:.1f}/min, mean cost "
                  f"{r['mean_cost_s']:.3f}s", flush=True)
            out["runs"].append(r)
    return out


# ------------------------------------------------------------------------- latency

def _told_trials(n: int, seed: int) -> list[Any]:
    from lightning_ticktock import SearchSpace
    from lightning_ticktock.trial import Trial

    problem = P.PROBLEMS["plateau"]
    space = SearchSpace(P.space())
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        x = [float(rng.integers(len(q.options))) if hasattr(q, "options")
             else float(rng.random()) for q in space.params]
        p = space.decode(x)
        c = problem.cost(p)
        if c > problem.max_cost:
            out.append(Trial(id=i, params=p, phase="initial", status="early_stopped", cost=c,
                             elapsed=min(WARMUP_FRACTION * c, problem.max_cost)))
        else:
            out.append(Trial(id=i, params=p, phase="initial", status="completed", cost=c,
                             loss=problem.noisy_loss(p, rng)))
    return out


def bench_latency(quick: bool) -> dict[str, Any]:
    import torch

    from lightning_ticktock import TickTock
    from lightning_ticktock.trial import Trial

    torch.set_num_threads(1)
    problem = P.PROBLEMS["plateau"]
    repeats = 2 if quick else 5
    rows = []
    for n_told in ((30,) if quick else (30, 100)):
        told = _told_trials(n_told, seed=n_told)
        tt = TickTock(P.space(), max_cost=problem.max_cost, seed=0)
        tt.sync(told)
        tt.ask()  # warm-up: imports, first fit
        extra = tt.space.sobol(16, seed=7)
        for k in (0, 4, 16):
            pending = [Trial(id=n_told + j, params=extra[j], phase="tock") for j in range(k)]
            times, phases = [], []
            for _ in range(repeats):
                tt.sync(told + pending)
                t0 = time.perf_counter()
                trial = tt.ask()
                times.append(time.perf_counter() - t0)
                phases.append(trial.phase)
            rows.append({"n_told": n_told, "n_pending": k, "seconds": times, "phases": phases,
                         "median_s": statistics.median(times)})
            print(f"latency told={n_told} pending={k}: median {statistics.median(times):.2f}s "
                  f"{[round(t, 2) for t in times]}", flush=True)
    return {"rows": rows, "repeats": repeats, "loadavg_end": list(os.getloadavg())}


# ------------------------------------------------------------------------- quality

def _encoded(space: Any, params: dict[str, Any]) -> tuple[tuple[int, ...], list[float]]:
    x = space.encode(params)
    cats = set(space.cat_dims)
    return (tuple(int(x[i]) for i in sorted(cats)),
            [v for i, v in enumerate(x) if i not in cats])


def _distance(space: Any, a: dict[str, Any], b: dict[str, Any]) -> float:
    ca, xa = _encoded(space, a)
    cb, xb = _encoded(space, b)
    if ca != cb:
        return math.inf
    return max(abs(u - v) for u, v in zip(xa, xb))


def simulate_async(n_workers: int, seed: int, budget_runs: float) -> dict[str, Any]:
    """TickTock with ``n_workers`` simulated asynchronous workers, until the compute
    charged reaches ``budget_runs * max_cost``."""
    import torch

    from lightning_ticktock import TickTock

    torch.set_num_threads(1)
    problem = P.PROBLEMS["plateau"]
    total = budget_runs * problem.max_cost
    tt = TickTock(P.space(), max_cost=problem.max_cost, seed=seed)
    rng = np.random.default_rng([seed, 0])
    now, committed = 0.0, 0.0
    events: list[tuple[float, int]] = []  # (finish time, trial id)
    runs: dict[int, dict[str, Any]] = {}
    curve: list[dict[str, Any]] = []
    best_true = math.inf

    def spent_at(t: float) -> float:  # compute charged by time t, running trials included
        return sum(min(max(t - r["start"], 0.0), r["charge"]) for r in runs.values())

    while True:
        while len(events) < n_workers and committed < total:
            pending = tt.pending_trials
            earlier = [t for t in tt.trials if t.status != "running"]
            t0 = time.perf_counter()
            trial = tt.ask()
            ask_s = time.perf_counter() - t0
            full = problem.cost(trial.params)
            fits = full <= problem.max_cost
            charge = full if fits else min(WARMUP_FRACTION * full, problem.max_cost)
            d_pending = min((_distance(tt.space, trial.params, t.params) for t in pending),
                            default=math.inf)
            d_earlier = min((_distance(tt.space, trial.params, t.params) for t in earlier),
                            default=math.inf)
            runs[trial.id] = {
                "id": trial.id, "phase": trial.phase, "params": trial.params, "start": now,
                "charge": charge, "full_cost": full, "fits": fits, "ask_s": ask_s,
                "n_pending": len(pending), "d_pending": d_pending, "d_earlier": d_earlier,
                "loss_true": problem.loss(trial.params),
            }
            committed += charge
            heapq.heappush(events, (now + charge, trial.id))
        if not events:
            break
        now, tid = heapq.heappop(events)
        r = runs[tid]
        if r["fits"]:
            tt.tell(tid, loss=problem.noisy_loss(r["params"], rng), cost=r["full_cost"])
            best_true = min(best_true, r["loss_true"])
        else:
            tt.tell(tid, cost=r["full_cost"], early_stopped=True,
                    elapsed=r["charge"])
        r["finish"] = now
        curve.append({"time": now, "compute": spent_at(now), "best_true": best_true,
                      "n_told": len(curve) + 1})
    return {"n_workers": n_workers, "seed": seed, "runs": list(runs.values()), "curve": curve,
            "total_compute": total}


def _quality_job(job: tuple[int, int, float]) -> dict[str, Any]:
    k, seed, budget = job
    _quiet_lightning()
    t0 = time.perf_counter()
    r = simulate_async(k, seed, budget)
    r["wall_s"] = time.perf_counter() - t0
    print(f"quality workers={k} seed={seed}: {len(r['runs'])} trials, final best "
          f"{r['curve'][-1]['best_true']:.4f}, {r['wall_s']:.0f}s", flush=True)
    return r


def bench_quality(quick: bool, processes: int) -> dict[str, Any]:
    problem = P.PROBLEMS["plateau"]
    opt = P.known_optimum(problem)
    seeds = range(2) if quick else range(4)
    budget = 6.0 if quick else 20.0
    jobs = [(k, s, budget) for s in seeds for k in (1, 4)]
    with mp.get_context("spawn").Pool(processes) as pool:
        results = pool.map(_quality_job, jobs, chunksize=1)
    for r in results:
        for c in r["curve"]:
            c["regret"] = (c["best_true"] if math.isfinite(c["best_true"])
                           else P.CHANCE_LOSS) - opt["best_loss"]
        rs = r["runs"]
        keys = [json.dumps(x["params"], sort_keys=True) for x in rs]
        r["n_trials"] = len(rs)
        r["n_exact_duplicates"] = len(keys) - len(set(keys))
        r["n_near_pending"] = sum(x["d_pending"] <= NEAR for x in rs)
        r["n_near_earlier"] = sum(x["d_earlier"] <= NEAR for x in rs)
        r["phases"] = {p: sum(x["phase"] == p for x in rs) for p in ("initial", "tick", "tock")}
        r["final_regret"] = r["curve"][-1]["regret"]
    return {"problem": problem.name, "optimum": opt, "budget_runs": budget, "near": NEAR,
            "warmup_fraction": WARMUP_FRACTION, "results": results,
            "summary": _quality_summary(results)}


def _regret_at(curve: list[dict[str, Any]], key: str, x: float) -> float:
    best = None
    for c in curve:
        if c[key] <= x:
            best = c["regret"]
    return best if best is not None else P.CHANCE_LOSS


def _first_reach(curve: list[dict[str, Any]], key: str, target: float) -> float | None:
    for c in curve:
        if c["regret"] <= target + 1e-12:
            return c[key]
    return None


def _quality_summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in (1, 4):
        rs = [r for r in results if r["n_workers"] == k]
        total = rs[0]["total_compute"]
        reach = {
            f"{key}_to_regret_{target}": [_first_reach(r["curve"], key, target) for r in rs]
            for key in ("compute", "time") for target in (0.05, 0.025)
        }
        out[str(k)] = {
            "seeds": len(rs),
            "median_final_regret": statistics.median(r["final_regret"] for r in rs),
            "median_regret_at_compute_fraction": {
                str(f): statistics.median(_regret_at(r["curve"], "compute", f * total)
                                          for r in rs)
                for f in (0.05, 0.1, 0.25, 0.5, 1.0)
            },
            "median_regret_at_half_compute": statistics.median(
                _regret_at(r["curve"], "compute", total / 2) for r in rs),
            "reach": reach,
            "median_wall_sim": statistics.median(r["curve"][-1]["time"] for r in rs),
            "trials": sum(r["n_trials"] for r in rs),
            "exact_duplicates": sum(r["n_exact_duplicates"] for r in rs),
            "near_duplicates_of_pending": sum(r["n_near_pending"] for r in rs),
            "near_duplicates_of_earlier": sum(r["n_near_earlier"] for r in rs),
            "phases": {p: sum(r["phases"][p] for r in rs) for p in ("initial", "tick", "tock")},
            "median_ask_s": statistics.median(x["ask_s"] for r in rs for x in r["runs"]),
        }
    return out


# --------------------------------------------------------------------- reliability

def _reliability_driver(db: str, n_trials: int) -> None:
    """One of the driver processes of the reliability study (run as a subprocess)."""
    import torch

    from lightning_ticktock import TickTockDriver

    _quiet_lightning()
    torch.set_num_threads(1)
    driver = TickTockDriver(model_fn=few_batches_model, trainer_fn=reliability_trainer,
                            callbacks_fn=stamp_callbacks, space=_tiny_space(), max_cost=600.0,
                            storage=db, seed=0, n_initial=n_trials, quiet=True,
                            heartbeat_interval=2.0)
    driver.run(n_trials=n_trials)


def _counts(db: Path) -> dict[str, Any]:
    with sqlite3.connect(db, timeout=60) as con:
        rows = con.execute("SELECT id, status, owner_pid, datetime_complete FROM trials"
                           ).fetchall()
    return {"rows": rows, "finished": sum(r[1] in ("completed", "early_stopped", "failed")
                                          for r in rows)}


def bench_reliability(quick: bool, n_procs: int = 4) -> dict[str, Any]:
    n_trials = 40 if quick else 200
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        db, stamps = tmpd / "study.db", tmpd / "stamps"
        stamps.mkdir()
        env = dict(os.environ, **{STAMPS_ENV: str(stamps)})
        cmd = [sys.executable, str(Path(__file__).resolve()), "--_driver", str(db),
               "--n-trials", str(n_trials)]
        t0 = time.time()
        procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE) for _ in range(n_procs)]
        by_pid = {p.pid: p for p in procs}
        victim, killed_trial, kill_time = None, None, None
        try:
            while victim is None:
                if any(p.poll() is not None for p in procs):
                    raise RuntimeError("a driver exited before the kill: "
                                       + next(p.stderr.read().decode()[-2000:]
                                              for p in procs if p.poll() is not None))
                if db.exists():
                    try:
                        c = _counts(db)
                    except sqlite3.OperationalError:
                        c = {"rows": [], "finished": 0}
                    if c["finished"] >= n_trials // 2:
                        for tid, status, owner, _ in c["rows"]:
                            if status == "running" and owner in by_pid:
                                victim, killed_trial = by_pid[owner], tid
                                break
                time.sleep(0.02)
            victim.send_signal(signal.SIGKILL)
            kill_time = time.time()
            victim.wait()
            errs = []
            for p in procs:
                if p is not victim:
                    _, err = p.communicate(timeout=1800)
                    if p.returncode != 0:
                        errs.append(err.decode()[-2000:])
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        wall = time.time() - t0
        c = _counts(db)
        rows = {r[0]: r for r in c["rows"]}
        starts: dict[int, int] = {}
        ends: dict[int, int] = {}
        for f in stamps.iterdir():
            tid, event, _ = f.name.split(".")
            (starts if event == "start" else ends)[int(tid)] = \
                (starts if event == "start" else ends).get(int(tid), 0) + 1
        from lightning_ticktock.storage import SQLiteStorage

        params = [json.dumps(t.params, sort_keys=True)
                  for t in SQLiteStorage(db).load_trials() if t.status != "interrupted"]
        by_status: dict[str, int] = {}
        for r in rows.values():
            by_status[r[1]] = by_status.get(r[1], 0) + 1
        killed = rows.get(killed_trial)
        result = {
            "n_procs": n_procs, "n_trials": n_trials, "wall_s": wall,
            "trials_in_storage": len(rows), "by_status": by_status,
            "finished": c["finished"], "killed_trial": killed_trial,
            "killed_trial_status": killed[1] if killed else None,
            "detected_after_s": (killed[3] - kill_time) if killed and killed[3] else None,
            "ids_contiguous": sorted(rows) == list(range(len(rows))),
            "trials_started_twice": sorted(t for t, n in starts.items() if n > 1),
            "finished_without_a_fit_end": sorted(
                t for t, r in rows.items() if r[1] in ("completed", "early_stopped")
                and t not in ends),
            # Only the killed process's trial may have fitted without being told.
            "fits_ended_not_recorded": sorted(
                t for t in ends if t != killed_trial
                and rows.get(t, (0, ""))[1] not in ("completed", "early_stopped", "failed")),
            "duplicate_params": len(params) - len(set(params)),
            "survivor_errors": errs,
        }
        result["ok"] = bool(
            result["finished"] == n_trials and not by_status.get("running")
            and result["killed_trial_status"] == "interrupted" and result["ids_contiguous"]
            and not result["trials_started_twice"] and not result["finished_without_a_fit_end"]
            and not result["fits_ended_not_recorded"] and not result["duplicate_params"]
            and not errs
        )
        print(f"reliability: {json.dumps({k: v for k, v in result.items()})}", flush=True)
        return result


# ---------------------------------------------------------------------------- plot

def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    q = results.get("quality")
    if not q:
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    total = q["results"][0]["total_compute"]
    grid = np.linspace(0, total, 200)
    wall_max = max(r["curve"][-1]["time"] for r in q["results"])
    wgrid = np.linspace(0, wall_max, 200)
    for k, color in ((1, "tab:blue"), (4, "tab:orange")):
        rs = [r for r in q["results"] if r["n_workers"] == k]
        for ax, key, g in ((axes[0], "compute", grid), (axes[1], "time", wgrid)):
            ys = np.array([[max(_regret_at(r["curve"], key, x), REGRET_FLOOR) for x in g]
                           for r in rs])
            med = np.median(ys, axis=0)
            ax.plot(g, med, color=color, label=f"{k} worker{'s' if k > 1 else ''} (median)")
            ax.fill_between(g, ys.min(axis=0), ys.max(axis=0), color=color, alpha=0.15)
    axes[0].set_xlabel("cumulative compute charged (simulated seconds)")
    axes[1].set_xlabel("simulated wall time (seconds)")
    for ax in axes:
        ax.set_yscale("log")
        ax.set_ylabel("simple regret (true loss - optimum)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"TickTock on '{q['problem']}', simulated asynchronous workers: median of "
                 f"{len(q['results']) // 2} seeds, band min-max, regret 0 drawn at "
                 f"{REGRET_FLOOR:g}", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


# ---------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="throughput,latency,quality,reliability")
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument("--out", type=Path, default=Path("docs/benchmarks_parallel.json"))
    ap.add_argument("--plot", type=Path, default=None)
    ap.add_argument("--processes", type=int, default=2, help="processes for 'quality'")
    ap.add_argument("--_driver", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--n-trials", type=int, default=200, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._driver:
        _reliability_driver(args._driver, args.n_trials)
        return 0

    import torch

    results: dict[str, Any] = {}
    if args.out.exists():
        results = json.loads(args.out.read_text())
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    if sections:
        results["machine"] = {
            "cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__,
            "date": time.strftime("%Y-%m-%d %H:%M"), "quick": args.quick,
        }
    for s in sections:
        load_before = list(os.getloadavg())
        t0 = time.perf_counter()
        if s == "throughput":
            results[s] = bench_throughput(args.quick)
        elif s == "latency":
            results[s] = bench_latency(args.quick)
        elif s == "quality":
            results[s] = bench_quality(args.quick, args.processes)
        elif s == "reliability":
            results[s] = bench_reliability(args.quick)
        else:
            raise SystemExit(f"--only: unknown section {s!r}")
        results[s]["section_wall_s"] = time.perf_counter() - t0
        results[s]["loadavg_before"] = load_before
        results[s]["loadavg_after"] = list(os.getloadavg())
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1, default=str))
    if "quality" in results:  # recomputed from the runs (``--only ''`` redoes it alone)
        results["quality"]["summary"] = _quality_summary(results["quality"]["results"])
        args.out.write_text(json.dumps(results, indent=1, default=str))
    if args.plot:
        plot(results, args.plot)
    ok = results.get("reliability", {}).get("ok", True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
