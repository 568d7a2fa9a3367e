"""The methods compared by the benchmark, behind one small ask/tell interface.

Every method sees the same simulated training runs (see ``bench_optimizer.simulate``):
a run whose full cost fits ``max_cost`` completes and reports its (noisy) loss and its
cost; a run that does not fit is stopped by the cost callback after its warm-up and
reports only its projected full cost. What each method is told:

* ``ticktock`` / ``tock_only``: ``tell(trial, loss=, cost=)`` for a completed run,
  ``tell(trial, cost=projected, early_stopped=True)`` for a stopped one.
* ``optuna_tpe`` / ``optuna_gp``: the trial is told ``COMPLETE`` with the constraint
  ``log(cost / max_cost)`` set through ``Trial.set_constraint`` (feasible when ``<= 0``;
  the projected cost for a stopped run). A stopped run has no loss, so it is told
  with the penalty value :data:`optimizer_problems.CHANCE_LOSS` (the loss of a model
  that learned nothing). Why COMPLETE with a penalty, not PRUNED: Optuna documents that
  constraints are evaluated for successful trials only, and ``GPSampler`` fits its
  objective and constraint GPs on COMPLETE trials only, so a PRUNED trial would hide
  the over-budget region from it; TPE ranks an infeasible trial by its violation,
  whatever its value, so the penalty value does not matter to TPE.
  (``constraints_func=`` is deprecated since Optuna 5.0 in favour of
  ``Trial.set_constraint``, which stores the same constraint values.)
* ``random``: nothing (it is only charged).
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any

import numpy as np
from optimizer_problems import CHANCE_LOSS, space

__all__ = ["METHODS", "make_method"]

#: Method names in the order they are run (and plotted).
METHODS = ("ticktock", "tock_only", "optuna_gp", "optuna_tpe", "random")
# Optuna's default n_startup_trials for TPESampler and GPSampler.
_OPTUNA_STARTUP = 10


class _TickTockMethod:
    def __init__(self, max_cost: float, seed: int, phase_cycle: tuple[str, ...]) -> None:
        from lightning_ticktock import TickTock

        self.tt = TickTock(space(), max_cost=max_cost, seed=seed, phase_cycle=phase_cycle)
        self._trial: Any = None

    def ask(self) -> tuple[dict[str, Any], str]:
        self._trial = self.tt.ask()
        return dict(self._trial.params), str(self._trial.phase)

    def tell(self, loss: float | None, cost: float) -> None:
        if loss is None:
            self.tt.tell(self._trial, cost=cost, early_stopped=True)
        else:
            self.tt.tell(self._trial, loss=loss, cost=cost)

    def incumbent(self) -> dict[str, Any] | None:
        t = self.tt.best_trial
        return None if t is None else dict(t.params)


class _OptunaMethod:
    def __init__(self, max_cost: float, seed: int, kind: str) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # GPSampler warns (once per study) that greenlet is not installed, so its
        # L-BFGS-B runs sequentially; noted in the report instead.
        logging.getLogger("optuna._gp.batched_lbfgsb").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        if kind == "gp":
            sampler: Any = optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)
        else:
            sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True)
        self.study = optuna.create_study(direction="minimize", sampler=sampler)
        self.max_cost = max_cost
        self._trial: Any = None

    def ask(self) -> tuple[dict[str, Any], str]:
        t = self.study.ask()
        params = {
            "lr": t.suggest_float("lr", 1e-4, 1.0, log=True),
            "epochs": t.suggest_int("epochs", 1, 64),
            "width": t.suggest_int("width", 8, 1024, log=True),
            "batch": t.suggest_int("batch", 32, 256, log=True),
            "optimizer": t.suggest_categorical("optimizer", ["adam", "sgd"]),
        }
        self._trial = t
        # Both samplers start with 10 independent (random) trials by default.
        return params, "initial" if t.number < _OPTUNA_STARTUP else "model"

    def tell(self, loss: float | None, cost: float) -> None:
        self._trial.set_constraint("cost", math.log(max(cost, 1e-12) / self.max_cost))
        self.study.tell(self._trial, CHANCE_LOSS if loss is None else loss)

    def incumbent(self) -> dict[str, Any] | None:
        try:
            return dict(self.study.best_trial.params)  # feasible-only when constrained
        except ValueError:
            return None


class _RandomMethod:
    def __init__(self, max_cost: float, seed: int) -> None:
        from lightning_ticktock import SearchSpace

        self.space = SearchSpace(space())
        self.rng = np.random.default_rng(seed)
        self.max_cost = max_cost
        self._best: tuple[float, dict[str, Any]] | None = None
        self._params: dict[str, Any] = {}

    def ask(self) -> tuple[dict[str, Any], str]:
        # Uniform in the encoded unit cube (log scale where the space says log).
        x = [float(self.rng.random()) for _ in range(4)] + [float(self.rng.integers(2))]
        self._params = self.space.decode(x)
        return dict(self._params), "random"

    def tell(self, loss: float | None, cost: float) -> None:
        if loss is not None and cost <= self.max_cost and (
            self._best is None or loss < self._best[0]
        ):
            self._best = (loss, dict(self._params))

    def incumbent(self) -> dict[str, Any] | None:
        return None if self._best is None else dict(self._best[1])


def make_method(name: str, max_cost: float, seed: int) -> Any:
    """A fresh method: ``ask() -> (params, phase)``, ``tell(loss | None, cost)``,
    ``incumbent() -> params | None`` (what the method would return now)."""
    if name == "ticktock":
        return _TickTockMethod(max_cost, seed, ("tock", "tick"))
    if name == "tock_only":
        return _TickTockMethod(max_cost, seed, ("tock",))
    if name == "optuna_gp":
        return _OptunaMethod(max_cost, seed, "gp")
    if name == "optuna_tpe":
        return _OptunaMethod(max_cost, seed, "tpe")
    if name == "random":
        return _RandomMethod(max_cost, seed)
    raise ValueError(f"method={name!r}; allowed: {METHODS}")
