"""Benchmark TickTock against peers on synthetic cost/loss problems with known optima.

Usage::

    python benchmarks/bench_optimizer.py --seeds 10 --out docs/          # the full run
    python benchmarks/bench_optimizer.py --quick --out /tmp/bench/       # 2 seeds, small budget
    python benchmarks/bench_optimizer.py --report-only --out docs/       # redo doc from JSON

Methods (see ``optimizer_methods.py``): ``ticktock`` (default phase cycle tock, tick),
``tock_only`` (``phase_cycle=("tock",)``: the same models and acquisition without
ticks), ``optuna_gp`` (``GPSampler``, cost constraint), ``optuna_tpe`` (multivariate
``TPESampler``, cost constraint) and ``random`` (uniform in the encoded space).

Simulated early stopping, the same for every method: a run whose full cost exceeds
``max_cost`` is stopped by the cost callback after its warm-up, the first
:data:`WARMUP_FRACTION` of the run, and is charged ``min(WARMUP_FRACTION * cost,
max_cost)``; the method is told it was stopped with the projected full cost. A run
that fits is charged its full cost. Every method runs until its cumulative charged
compute reaches the same total, ``budget_runs * max_cost``.

Runs are interleaved: a job is one (seed, problem) pair and runs every method in
turn (in an order rotated by the seed), so all methods see the same machine load.
Each process uses one torch thread.

Outputs in ``--out``: ``bench_optimizer.json`` (every trial of every run, the known
optima and the ask() latencies), ``benchmarks_optimizer.md`` and
``img/bench_optimizer_regret.png``. The Markdown is regenerated from the JSON by
``--report-only``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import math
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import optimizer_problems as P  # noqa: E402
from optimizer_methods import METHODS, make_method  # noqa: E402

#: Fraction of a run's full cost spent before the callback can project it over budget.
WARMUP_FRACTION = 0.10
#: Relative loss tolerance of "reached the optimum" in the cost-at-equal-loss table.
REL_TOL = 0.01
LATENCY_SIZES = (50, 100, 200, 500)


def _set_threads() -> None:
    import torch

    torch.set_num_threads(1)


def simulate(problem: P.Problem, params: dict[str, Any], rng: np.random.Generator
             ) -> dict[str, Any]:
    """One simulated training run under the cost callback."""
    full = problem.cost(params)
    true = problem.loss(params)
    if full > problem.max_cost:
        charge = min(WARMUP_FRACTION * full, problem.max_cost)
        return {"status": "stopped", "full_cost": full, "charge": charge,
                "loss_obs": None, "loss_true": true}
    return {"status": "completed", "full_cost": full, "charge": full,
            "loss_obs": problem.noisy_loss(params, rng), "loss_true": true}


class _LogCollector(logging.Handler):
    """Keeps what lightning_ticktock logs at WARNING, and its Sobol fallbacks."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if record.levelno >= logging.WARNING or "Sobol point" in msg:
            self.messages.append(f"{record.levelname}: {msg}"[:300])


def run_one(problem_name: str, method: str, seed: int, total: float) -> dict[str, Any]:
    """Run one method on one problem until ``total`` compute is charged.

    Exceptions of the method are recorded in ``error`` (the run then ends early);
    warnings and lightning_ticktock's warning logs are counted in ``warnings``/``log``.
    """
    log = _LogCollector()
    tt_logger = logging.getLogger("lightning_ticktock")
    tt_logger.addHandler(log)
    tt_logger.setLevel(logging.INFO)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            r = _run_one(problem_name, method, seed, total)
    finally:
        tt_logger.removeHandler(log)
    counts: dict[str, int] = {}
    for w in caught:
        key = f"{w.category.__name__}: {str(w.message)[:160]}"
        counts[key] = counts.get(key, 0) + 1
    r["warnings"] = counts
    r["log"] = log.messages
    return r


def _run_one(problem_name: str, method: str, seed: int, total: float) -> dict[str, Any]:
    problem = P.PROBLEMS[problem_name]
    # The same noise stream for every method of a (problem, seed) pair.
    rng = np.random.default_rng([seed, list(P.PROBLEMS).index(problem_name)])
    m = make_method(method, problem.max_cost, seed)
    spent, trials, t_start = 0.0, [], time.perf_counter()
    error = None
    while spent < total:
        rec: dict[str, Any] = {}
        if hasattr(m, "tt"):
            inc = m.tt.best_trial
            rec["inc_cost"] = None if inc is None else inc.cost
            rec["inc_loss"] = None if inc is None else inc.loss
            rec["tol"] = m.tt.effective_loss_tolerance()
        t0 = time.perf_counter()
        try:
            params, phase = m.ask()
            ask_s = time.perf_counter() - t0
            out = simulate(problem, params, rng)
            m.tell(out["loss_obs"], out["full_cost"])
        except Exception:  # noqa: BLE001 - record a crash of the method, keep benchmarking
            error = traceback.format_exc()
            print(f"{problem_name} seed={seed} {method}: CRASH\n{error}", flush=True)
            break
        spent += out["charge"]
        rec.update(params=params, phase=phase, ask_s=ask_s, spent=spent, **out)
        trials.append(rec)
    inc = m.incumbent()
    return {
        "problem": problem_name, "method": method, "seed": seed, "trials": trials,
        "wall_s": time.perf_counter() - t_start,
        "error": error,
        "incumbent": inc,
        "incumbent_loss_true": None if inc is None else problem.loss(inc),
        "incumbent_cost": None if inc is None else problem.cost(inc),
        "loadavg_end": list(os.getloadavg()),
    }


def run_job(job: tuple[int, str, float, tuple[str, ...]]) -> list[dict[str, Any]]:
    seed, problem_name, total, methods = job
    _set_threads()
    order = list(methods[seed % len(methods):]) + list(methods[:seed % len(methods)])
    out = []
    for method in order:
        r = run_one(problem_name, method, seed, total)
        n = len(r["trials"])
        ask = statistics.median(t["ask_s"] for t in r["trials"])
        print(f"[{time.strftime('%H:%M:%S')}] {problem_name} seed={seed} {method}: "
              f"{n} trials, {r['wall_s']:.0f}s, median ask {ask:.2f}s, final regret "
              f"{_final_regret(r):.4g}", flush=True)
        out.append(r)
    return out


_OPT_CACHE: dict[str, float] = {}


def _final_regret(r: dict[str, Any]) -> float:
    prob = P.PROBLEMS[r["problem"]]
    feas = [t["loss_true"] for t in r["trials"] if t["status"] == "completed"]
    if r["problem"] not in _OPT_CACHE:
        return min(feas) if feas else math.inf
    return (min(feas) if feas else P.CHANCE_LOSS) - _OPT_CACHE[prob.name]


# ---------------------------------------------------------------------------- latency
def _random_results(n: int, seed: int) -> list[tuple[dict[str, Any], float | None, float]]:
    from lightning_ticktock import SearchSpace

    problem = P.PROBLEMS["plateau"]
    space = SearchSpace(P.space())
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x = [float(rng.random()) for _ in range(4)] + [float(rng.integers(2))]
        p = space.decode(x)
        s = simulate(problem, p, rng)
        out.append((p, s["loss_obs"], s["full_cost"]))
    return out


def latency_ticktock(n: int, repeats: int = 3) -> dict[str, Any]:
    """ask() time with ``n`` random completed/early-stopped trials on problem 1.

    One untimed ask first (its GP fit starts from default hyperparameters; in a
    study every fit is warm-started from the previous ask's), then ``repeats``
    timed asks, each told its simulated result so the phase alternates.
    """
    from lightning_ticktock import TickTock

    problem = P.PROBLEMS["plateau"]
    rng = np.random.default_rng(n)
    tt = TickTock(P.space(), max_cost=problem.max_cost, seed=0)
    for p, loss, cost in _random_results(n, seed=n):
        if loss is None:
            tt.add_trial(p, cost=cost, early_stopped=True)
        else:
            tt.add_trial(p, loss=loss, cost=cost)
    t0 = time.perf_counter()
    tr = tt.ask()
    cold = time.perf_counter() - t0
    tt.mark_interrupted(tr)
    times, phases = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        tr = tt.ask()
        times.append(time.perf_counter() - t0)
        phases.append(tr.phase)
        s = simulate(problem, tr.params, rng)
        if s["loss_obs"] is None:
            tt.tell(tr, cost=s["full_cost"], early_stopped=True)
        else:
            tt.tell(tr, loss=s["loss_obs"], cost=s["full_cost"])
    return {"n": n, "cold_s": cold, "times_s": times, "phases": phases,
            "median_s": statistics.median(times)}


def latency_optuna_gp(n: int, repeats: int = 3) -> dict[str, Any]:
    """Optuna GPSampler ask (study.ask + suggest) time with ``n`` trials (same data)."""
    import optuna
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    problem = P.PROBLEMS["plateau"]
    dists = {
        "lr": FloatDistribution(1e-4, 1.0, log=True),
        "epochs": IntDistribution(1, 64),
        "width": IntDistribution(8, 1024, log=True),
        "batch": IntDistribution(32, 256, log=True),
        "optimizer": CategoricalDistribution(["adam", "sgd"]),
    }
    m = make_method("optuna_gp", problem.max_cost, 0)
    for p, loss, cost in _random_results(n, seed=n):
        m.study.add_trial(optuna.trial.create_trial(
            params=p, distributions=dists,
            value=P.CHANCE_LOSS if loss is None else loss,
            constraints={"cost": math.log(cost / problem.max_cost)},
        ))
    rng = np.random.default_rng(n)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        params, _ = m.ask()
        times.append(time.perf_counter() - t0)
        s = simulate(problem, params, rng)
        m.tell(s["loss_obs"], s["full_cost"])
    return {"n": n, "times_s": times, "median_s": statistics.median(times)}


# ---------------------------------------------------------------------------- main
def _machine() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    import botorch
    import optuna
    import torch

    return {
        "cpus": os.cpu_count(), "platform": platform.platform(),
        "python": platform.python_version(), "torch": torch.__version__,
        "botorch": botorch.__version__, "optuna": optuna.__version__,
        "loadavg_start": list(load),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--out", type=Path, default=Path("docs"))
    ap.add_argument("--quick", action="store_true",
                    help="2 seeds, 3 x max_cost of compute, latency at 50 trials only")
    ap.add_argument("--budget-runs", type=float, default=6.0,
                    help="compute per method and run, in units of max_cost (default 6)")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--problems", default=",".join(P.PROBLEMS))
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite the Markdown and plot from OUT/bench_optimizer.json")
    args = ap.parse_args(argv)
    _set_threads()
    out: Path = args.out
    json_path = out / "bench_optimizer.json"

    import optimizer_report

    if args.report_only:
        data = json.loads(json_path.read_text())
        optimizer_report.write_report(data, out)
        return 0

    seeds = 2 if args.quick else args.seeds
    budget_runs = 3.0 if args.quick else args.budget_runs
    methods = tuple(m for m in args.methods.split(",") if m)
    problems = [p for p in args.problems.split(",") if p]
    command = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]) \
        if argv is None else "python benchmarks/bench_optimizer.py " + " ".join(argv)
    data: dict[str, Any] = {
        "command": command,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": _machine(),
        "settings": {"seeds": seeds, "budget_runs": budget_runs, "jobs": args.jobs,
                     "warmup_fraction": WARMUP_FRACTION, "rel_tol": REL_TOL,
                     "noise_rel": P.NOISE_REL, "chance_loss": P.CHANCE_LOSS,
                     "methods": list(methods), "problems": problems},
        "problems": {}, "runs": [], "latency": {},
    }
    t_all = time.perf_counter()
    for name in problems:
        prob = P.PROBLEMS[name]
        t0 = time.perf_counter()
        opt = P.known_optimum(prob, rel_tol=REL_TOL)
        _OPT_CACHE[name] = opt["best_loss"]
        data["problems"][name] = {"title": prob.title, "max_cost": prob.max_cost,
                                  "total_compute": budget_runs * prob.max_cost, **opt}
        print(f"{name}: optimum {opt['best_loss']:.4f} at cost {opt['best_cost']:.1f} "
              f"{opt['best_params']}; cheapest within {REL_TOL:.0%}: "
              f"{opt['min_cost_within_tol']:.1f} ({time.perf_counter() - t0:.0f}s)",
              flush=True)
    jobs = [(seed, name, budget_runs * P.PROBLEMS[name].max_cost, methods)
            for seed in range(seeds) for name in problems]
    if args.jobs > 1:
        ctx = mp.get_context("fork")
        with ctx.Pool(args.jobs, initializer=_init_worker, initargs=(dict(_OPT_CACHE),)) as pool:
            for res in pool.imap(run_job, jobs):
                data["runs"].extend(res)
    else:
        for job in jobs:
            data["runs"].extend(run_job(job))
    data["bench_wall_s"] = time.perf_counter() - t_all
    out.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(data))  # save before the (slow) latency part
    if not args.no_latency:
        sizes = LATENCY_SIZES[:1] if args.quick else LATENCY_SIZES
        data["latency"]["loadavg_before"] = list(os.getloadavg())
        data["latency"]["ticktock"] = []
        data["latency"]["optuna_gp"] = []
        for n in sizes:  # interleaved too: TickTock then GPSampler at each size
            r = latency_ticktock(n)
            data["latency"]["ticktock"].append(r)
            print(f"latency ticktock n={n}: median {r['median_s']:.2f}s "
                  f"(times {[round(t, 2) for t in r['times_s']]}, cold {r['cold_s']:.2f}s)",
                  flush=True)
            g = latency_optuna_gp(n)
            data["latency"]["optuna_gp"].append(g)
            print(f"latency optuna_gp n={n}: median {g['median_s']:.2f}s", flush=True)
        data["latency"]["loadavg_after"] = list(os.getloadavg())
    data["machine"]["loadavg_end"] = list(os.getloadavg())
    data["total_wall_s"] = time.perf_counter() - t_all
    json_path.write_text(json.dumps(data))
    optimizer_report.write_report(data, out)
    print(f"wrote {json_path}, {out / 'benchmarks_optimizer.md'} "
          f"({data['total_wall_s'] / 60:.1f} min)", flush=True)
    return 0


def _init_worker(opt_cache: dict[str, float]) -> None:
    _OPT_CACHE.update(opt_cache)
    _set_threads()


if __name__ == "__main__":
    raise SystemExit(main())
