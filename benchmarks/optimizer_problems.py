"""Synthetic cost/loss problems for the optimizer benchmark.

Both problems share one mixed search space that looks like a small training job:

* ``lr``: Float in ``[1e-4, 1]``, log scale;
* ``epochs``: Int in ``[1, 64]``;
* ``width``: Int in ``[8, 1024]``, log scale (hidden units);
* ``batch``: Int in ``[32, 256]``, log scale (batch size);
* ``optimizer``: Choice ``["adam", "sgd"]``.

Cost (think: seconds of training) is deterministic::

    cost = epochs * (width / 64) ** 1.3 * (0.45 + 50 / batch) * OPT_COST[optimizer]

Loss is built from an *effective training progress* ``s`` (epochs scaled by how
good the learning rate is for that optimizer and batch size, and by how many
steps an epoch has) and the model width:

* ``lr_opt(adam, b) = 2e-3 * sqrt(b / 64)``, ``lr_opt(sgd, b) = 5e-2 * b / 64``;
  ``u = log10(lr / lr_opt)``; ``lr_eff = exp(-u^2 / (2 * 0.5^2))``;
* ``s = epochs * lr_eff * (256 / batch) ** 0.3 * OPT_SPEED[optimizer]``;
* a learning rate more than ``10^0.8`` times too large diverges: the loss rises
  towards chance level;
* every loss is capped at :data:`CHANCE_LOSS` (a model that learned nothing).

``plateau`` (problem 1, "the optimum fits the budget"): the loss stops improving
once ``s >= 12`` and ``width >= 128``; the floor is 0.30 (adam) or 0.32 (sgd).
The optimum is reachable at about a fifth of ``max_cost = 100``, and many
feasible configurations reach it at very different costs.

``scaling`` (problem 2, "the optimum is beyond the budget"): a power law in width
and progress, so a bigger or longer run is always better and the best feasible
loss lies on the budget boundary ``cost = max_cost = 100``.

Observation noise: the loss a method sees is multiplied by ``exp(N(0, 0.005^2))``
(0.5% noise); regret is always computed on the noiseless loss.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

__all__ = ["Problem", "PROBLEMS", "CHANCE_LOSS", "space", "known_optimum"]

#: The loss of a model that learned nothing (like ``ln 12`` for a 12-class task).
CHANCE_LOSS = 2.5
LR_BOUNDS = (1e-4, 1.0)
EPOCH_BOUNDS = (1, 64)
WIDTH_BOUNDS = (8, 1024)
BATCH_BOUNDS = (32, 256)
OPTIMIZERS = ("adam", "sgd")
OPT_COST = {"adam": 1.15, "sgd": 1.0}
OPT_SPEED = {"adam": 1.0, "sgd": 0.7}
NOISE_REL = 0.005


def space() -> list[Any]:
    """The search space as lightning_ticktock parameters."""
    from lightning_ticktock import Choice, Float, Int

    return [
        Float("lr", *LR_BOUNDS, log=True),
        Int("epochs", *EPOCH_BOUNDS),
        Int("width", *WIDTH_BOUNDS, log=True),
        Int("batch", *BATCH_BOUNDS, log=True),
        Choice("optimizer", list(OPTIMIZERS)),
    ]


def _lr_opt(opt: str, batch: Any) -> Any:
    b = np.asarray(batch, dtype=float)
    return 2e-3 * np.sqrt(b / 64.0) if opt == "adam" else 5e-2 * b / 64.0


def cost_fn(lr: Any, epochs: Any, width: Any, batch: int, opt: str) -> Any:
    """Full-run cost (vectorized over lr, epochs, width)."""
    del lr
    e = np.asarray(epochs, dtype=float)
    w = np.asarray(width, dtype=float)
    b = np.asarray(batch, dtype=float)
    return e * (w / 64.0) ** 1.3 * (0.45 + 50.0 / b) * OPT_COST[opt]


def _progress(lr: Any, epochs: Any, batch: int, opt: str) -> tuple[Any, Any]:
    u = np.log10(np.asarray(lr, dtype=float) / _lr_opt(opt, batch))
    lr_eff = np.exp(-(u**2) / (2 * 0.5**2))
    s = np.asarray(epochs, dtype=float) * lr_eff * (256.0 / batch) ** 0.3 * OPT_SPEED[opt]
    diverge = 3.0 * np.maximum(u - 0.8, 0.0) ** 2
    return s, diverge


def plateau_loss(lr: Any, epochs: Any, width: Any, batch: int, opt: str) -> Any:
    s, diverge = _progress(lr, epochs, batch, opt)
    w = np.asarray(width, dtype=float)
    floor = 0.30 if opt == "adam" else 0.32
    under_trained = 1.5 * np.maximum(1.0 - s / 12.0, 0.0) ** 2
    too_narrow = 0.8 * np.maximum(1.0 - np.log(w) / math.log(128.0), 0.0) ** 2 * 4.0
    return np.minimum(floor + under_trained + too_narrow + diverge, CHANCE_LOSS)


def scaling_loss(lr: Any, epochs: Any, width: Any, batch: int, opt: str) -> Any:
    s, diverge = _progress(lr, epochs, batch, opt)
    w = np.asarray(width, dtype=float)
    floor = 0.20 if opt == "adam" else 0.21
    raw = floor + 0.9 * (w / 8.0) ** -0.45 + 1.2 * (np.maximum(s, 1e-3) / 1.0) ** -0.55
    return np.minimum(raw + diverge, CHANCE_LOSS)


@dataclasses.dataclass(frozen=True)
class Problem:
    """One benchmark problem: noiseless loss and cost of a configuration, and the budget."""

    name: str
    title: str
    max_cost: float
    _loss: Callable[..., Any]

    def loss(self, params: Mapping[str, Any]) -> float:
        """Noiseless loss of one configuration."""
        return float(self._loss(params["lr"], params["epochs"], params["width"],
                                params["batch"], params["optimizer"]))

    def cost(self, params: Mapping[str, Any]) -> float:
        """Full-run cost of one configuration."""
        return float(cost_fn(params["lr"], params["epochs"], params["width"],
                             params["batch"], params["optimizer"]))

    def noisy_loss(self, params: Mapping[str, Any], rng: np.random.Generator) -> float:
        """The loss a method observes: noiseless loss times 0.5% log-normal noise."""
        return self.loss(params) * math.exp(NOISE_REL * float(rng.standard_normal()))


PROBLEMS = {
    "plateau": Problem("plateau", "1: optimum fits the budget (plateau)", 100.0, plateau_loss),
    "scaling": Problem("scaling", "2: optimum beyond the budget (scaling law)", 100.0,
                       scaling_loss),
}


def known_optimum(problem: Problem, rel_tol: float = 0.01, n_lr_check: int = 61) -> dict[str, Any]:
    """Dense search of the noiseless problem under ``cost <= max_cost``.

    Every integer ``epochs``, ``width`` and ``batch`` and both optimizers. The cost does
    not depend on ``lr`` and both losses decrease in ``lr_eff``, which peaks (at 1, no
    divergence) at ``lr = lr_opt(optimizer, batch)`` (inside the bounds for every
    batch), so the exact optimum over ``lr`` of each grid point is at ``lr_opt``. As a
    check, ``n_lr_check`` log-spaced learning rates are also searched (coarser grid in
    ``width``); no grid point may beat the optimum.

    Returns:
        ``best_loss``, ``best_params`` and ``best_cost`` (the optimum; ties broken by
        cost), and ``min_cost_within_tol``/``min_cost_params``: the cheapest feasible
        configuration whose loss is within ``rel_tol`` (relative) of the optimum.
    """
    E, W = np.meshgrid(
        np.arange(EPOCH_BOUNDS[0], EPOCH_BOUNDS[1] + 1, dtype=float),
        np.arange(WIDTH_BOUNDS[0], WIDTH_BOUNDS[1] + 1, dtype=float),
        indexing="ij",
    )
    batches = range(BATCH_BOUNDS[0], BATCH_BOUNDS[1] + 1)

    def point(k: int, lr: float, b: int, opt: str) -> dict[str, Any]:
        i, j = np.unravel_index(k, E.shape)
        return {"lr": float(lr), "epochs": int(E[i, j]), "width": int(W[i, j]),
                "batch": b, "optimizer": opt}

    table = []  # (feasible loss or inf, cost, lr, batch, optimizer) per grid slice
    for opt in OPTIMIZERS:
        for b in batches:
            lr = float(_lr_opt(opt, b))
            cost = cost_fn(lr, E, W, b, opt)
            loss = np.where(cost <= problem.max_cost, problem._loss(lr, E, W, b, opt), np.inf)
            table.append((loss, cost, lr, b, opt))
    best: tuple[float, float, dict[str, Any]] | None = None
    for loss, cost, lr, b, opt in table:
        m = float(loss.min())
        k = int(np.argmin(np.where(loss == m, cost, np.inf)))
        if best is None or (m, float(cost.flat[k])) < (best[0], best[1]):
            best = (m, float(cost.flat[k]), point(k, lr, b, opt))
    assert best is not None
    target = best[0] * (1.0 + rel_tol)
    cheap: tuple[float, dict[str, Any]] | None = None
    for loss, cost, lr, b, opt in table:
        c = np.where(loss <= target, cost, np.inf)
        k = int(np.argmin(c))
        if math.isfinite(float(c.flat[k])) and (cheap is None or c.flat[k] < cheap[0]):
            cheap = (float(c.flat[k]), point(k, lr, b, opt))
    assert cheap is not None
    # Check: a grid over lr (every 4th width, every 8th batch) must not beat the optimum.
    lr_min_found = math.inf
    for opt in OPTIMIZERS:
        for b in batches[::8]:
            for lr in np.geomspace(*LR_BOUNDS, n_lr_check):
                Es, Ws = E[:, ::4], W[:, ::4]
                cost = cost_fn(lr, Es, Ws, b, opt)
                loss = np.where(cost <= problem.max_cost, problem._loss(lr, Es, Ws, b, opt),
                                np.inf)
                lr_min_found = min(lr_min_found, float(loss.min()))
    assert lr_min_found >= best[0] - 1e-12, (lr_min_found, best)
    return {
        "best_loss": best[0], "best_cost": best[1], "best_params": best[2],
        "rel_tol": rel_tol, "min_cost_within_tol": cheap[0], "min_cost_params": cheap[1],
        "grid": "every integer epochs/width/batch x both optimizers at lr_opt, "
                f"checked against {n_lr_check} log-spaced lr",
    }


def min_cost_within(problem: Problem, losses: list[float]) -> list[float]:
    """Cheapest feasible cost reaching each loss in ``losses`` (inf when none does).

    Same grid as :func:`known_optimum` (exact in ``lr``, see there).
    """
    E, W = np.meshgrid(
        np.arange(EPOCH_BOUNDS[0], EPOCH_BOUNDS[1] + 1, dtype=float),
        np.arange(WIDTH_BOUNDS[0], WIDTH_BOUNDS[1] + 1, dtype=float),
        indexing="ij",
    )
    out = [math.inf] * len(losses)
    for opt in OPTIMIZERS:
        for b in range(BATCH_BOUNDS[0], BATCH_BOUNDS[1] + 1):
            lr = float(_lr_opt(opt, b))
            cost = cost_fn(lr, E, W, b, opt)
            loss = np.where(cost <= problem.max_cost, problem._loss(lr, E, W, b, opt), np.inf)
            for i, target in enumerate(losses):
                c = float(np.where(loss <= target, cost, np.inf).min())
                out[i] = min(out[i], c)
    return out
