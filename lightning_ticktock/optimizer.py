"""TickTock: the ask/tell tick-tock Bayesian optimizer.

The optimizer is a function of the trials told so far. On each :meth:`TickTock.ask`
it fits two GPs on them (see :mod:`lightning_ticktock.models`), picks the phase
from the schedule and maximizes that phase's acquisition
(:mod:`lightning_ticktock.acquisition`). It never imports Lightning or storage.

Phases:

* ``initial``: scrambled Sobol points until ``n_initial`` trials exist (and at
  least two runs reported a cost).
* ``tock``: lower the loss subject to ``cost <= max_cost``. With no completed run
  yet (every run so far was stopped over budget), search for feasibility first.
* ``tick``: lower the cost while the loss stays within ``loss_tolerance`` of the
  best feasible loss. Without a feasible incumbent a tick is run as a tock.
* ``enqueued``: a configuration given with :meth:`TickTock.enqueue`.
* ``added``: a result given with :meth:`TickTock.add_trial`.

Loss tolerance: ``loss_tolerance`` (absolute, in loss units) when given. Else
:attr:`TickTock.best_trial` treats losses within 1% of the best as equal (and
picks the cheaper run), and the tick phase accepts losses within
``max(1% of |best loss|, the full-run GP's noise standard deviation at the best
loss)``, the latter capped at 3% of ``|best loss|``: two losses closer than
the observation noise cannot be told apart, so the tick may trade them for cost.

Failed trials (a crash, or a non-finite loss): their cost is not a full-run
cost, so they never enter the cost model. Once completed runs exist, a failed
point enters the loss model with the worst observed loss (an imputation, as
Ax does), so neither phase proposes its region again blindly; before that it
is treated as a pending point, so the acquisition moves away from it.

Example:
    >>> from lightning_ticktock import TickTock, Float, Int
    >>> tt = TickTock([Float("lr", 1e-3, 1.0, log=True), Int("epochs", 1, 10)],
    ...               max_cost=5.0, seed=0)
    >>> trial = tt.ask()
    >>> trial.phase
    'initial'
    >>> tt.tell(trial, loss=0.3, cost=float(trial.params["epochs"])).status
    'completed'
"""

from __future__ import annotations

import contextlib
import logging
import math
import numbers
import random
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .errors import TickTockTypeError, TickTockValueError
from .space import Choice, Parameter, SearchSpace
from .trial import Phase, Trial, TrialStatus

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["TickTock"]

_log = logging.getLogger(__name__)

# NOTE: default relative tolerance: 1% of the best loss is below what a user
# would call "worse" for a validation loss, and above float round-off.
_DEFAULT_REL_TOLERANCE = 0.01
# NOTE: the noise-based tolerance is capped so one noisy fit cannot make the
# tick phase accept a clearly worse model: the GP's noise estimate also absorbs
# model misfit (benchmarks/bench_optimizer.py measured 3-7% with 0.5% true noise).
_MAX_NOISE_REL_TOLERANCE = 0.03
# NOTE: half-width, in the unit cube, of the box around the incumbent that the
# tick phase searches: a fifth of each range either way is local enough for the
# loss GP to be informed there, and wide enough to halve an epoch count or a width
# on a log scale in one step.
_TICK_TRUST_HALF_WIDTH = 0.2


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    """Run GP fitting and acquisition on one intra-op thread, then restore.

    NOTE: the GPs hold at most a few hundred points; at that size torch's
    OpenMP threads cost more in synchronization than they save, and on a
    loaded 2-core machine spinning threads made ask() 4x slower (measured).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _with_full_cost(trials: Iterable[Trial]) -> list[Trial]:
    """Trials whose cost is a full-run cost (measured, or projected by an early stop):
    the partial-run GP's data."""
    return [
        t for t in trials
        if t.status in (TrialStatus.COMPLETED, TrialStatus.EARLY_STOPPED) and t.cost is not None
    ]


def _finite_number(name: str, value: Any, *, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TickTockTypeError(f"{name}={value!r} must be a real number")
    v = float(value)
    if not math.isfinite(v):
        raise TickTockValueError(f"{name}={value!r} must be finite")
    if minimum is not None and v < minimum:
        raise TickTockValueError(f"{name}={value!r} must be >= {minimum}")
    return v


class TickTock:
    """Tick-tock Bayesian optimization under a per-run cost budget.

    Args:
        space: The search space: a list of :class:`Float`, :class:`Int`,
            :class:`Choice`, or a :class:`SearchSpace`.
        max_cost: Budget of one run (e.g. seconds of training), ``> 0``.
            May be changed between asks through the ``max_cost`` attribute.
        seed: Drives the Sobol design, acquisition restarts and MC samples.
            Same seed and same tells give the same asks.
        n_initial: Size of the initial Sobol design (default ``max(4, d + 1)``).
        phase_cycle: The schedule after the initial design, repeated; e.g.
            ``("tock", "tock", "tick")`` for two tocks per tick.
        loss_tolerance: Absolute loss difference treated as "no worse" by the tick
            phase and by :attr:`best_trial`; ``None`` for the noise-tied default.
        num_restarts: L-BFGS-B restarts of the acquisition optimization.
        raw_samples: Random points screened to start those restarts.

    Example:
        >>> from lightning_ticktock import TickTock, Float, Choice
        >>> tt = TickTock([Float("x", 0.0, 1.0), Choice("c", ["a", "b"])], max_cost=1.0)
        >>> tt.enqueue({"x": 0.5, "c": "a"})
        True
        >>> t = tt.ask(); (t.phase, t.params)
        ('enqueued', {'x': 0.5, 'c': 'a'})
    """

    def __init__(
        self,
        space: SearchSpace | Iterable[Parameter],
        max_cost: float,
        seed: int | None = None,
        n_initial: int | None = None,
        phase_cycle: Sequence[str] = ("tock", "tick"),
        loss_tolerance: float | None = None,
        num_restarts: int = 4,
        raw_samples: int = 256,
    ) -> None:
        self.space = SearchSpace.coerce(space)
        self.max_cost = max_cost  # validated by the property setter
        if seed is None:
            seed = random.SystemRandom().randrange(2**31)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise TickTockValueError(f"seed={seed!r} must be a non-negative integer or None")
        self.seed = seed
        if n_initial is None:
            n_initial = max(4, self.space.dim + 1)
        if isinstance(n_initial, bool) or not isinstance(n_initial, int) or n_initial < 1:
            raise TickTockValueError(f"n_initial={n_initial!r} must be an integer >= 1")
        self.n_initial = n_initial
        cycle = tuple(str(p) for p in phase_cycle) if not isinstance(phase_cycle, str) else ()
        if not cycle or any(p not in ("tick", "tock") for p in cycle) or "tock" not in cycle:
            raise TickTockValueError(
                f"phase_cycle={phase_cycle!r} must be a non-empty sequence of 'tick' and 'tock' "
                "with at least one 'tock'"
            )
        self.phase_cycle = cycle
        if loss_tolerance is not None:
            loss_tolerance = _finite_number("loss_tolerance", loss_tolerance, minimum=0.0)
        self.loss_tolerance = loss_tolerance
        for name, v, lo in (("num_restarts", num_restarts, 1), ("raw_samples", raw_samples, 2)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise TickTockValueError(f"{name}={v!r} must be an integer >= {lo}")
        self.num_restarts = num_restarts
        self.raw_samples = raw_samples
        self._trials: list[Trial] = []
        self._queue: list[dict[str, Any]] = []
        # Warm starts and the last noise estimate: caches that speed up or
        # refine the next fit, never a source of truth (resume rebuilds them).
        self._warm: dict[str, dict[str, torch.Tensor]] = {}
        self._loss_noise_rel = 0.0
        #: Diagnostics of the last model-based ask: the data each GP saw, the
        #: phase run, the tolerance used and the seconds it took.
        self.last_fit: dict[str, Any] = {}

    # ------------------------------------------------------------------ budget
    @property
    def max_cost(self) -> float:
        """The per-run budget; settable between asks (nothing recorded changes)."""
        return self._max_cost

    @max_cost.setter
    def max_cost(self, value: float) -> None:
        v = _finite_number("max_cost", value)
        if v <= 0:
            raise TickTockValueError(f"max_cost={value!r} must be > 0")
        self._max_cost = v

    # ------------------------------------------------------------------ state
    @property
    def trials(self) -> list[Trial]:
        """Every trial so far, in id order (copies: mutating them changes nothing)."""
        return [t.copy() for t in self._trials]

    @property
    def queue(self) -> list[dict[str, Any]]:
        """Enqueued configurations not yet asked, in order."""
        return [dict(p) for p in self._queue]

    @property
    def pending_trials(self) -> list[Trial]:
        """Trials asked and not yet told."""
        return [t.copy() for t in self._trials if t.status == TrialStatus.RUNNING]

    def sync(self, trials: Iterable[Trial], queue: Iterable[Mapping[str, Any]] = ()) -> None:
        """Replace the optimizer's trials and queue (e.g. with those a storage holds).

        The optimizer's state is derived from these alone, which is what makes a
        resumed study continue exactly where it stopped.

        Raises:
            TickTockValueError: a trial's params are not in the space, or ids repeat.
        """
        new = sorted((t.copy() for t in trials), key=lambda t: t.id)
        ids = [t.id for t in new]
        if len(set(ids)) != len(ids):
            raise TickTockValueError("sync: trial ids repeat")
        for t in new:
            t.params = self.space.validate(t.params)
        self._trials = new
        self._queue = [self.space.validate(p) for p in queue]

    def _find(self, trial: Trial | int) -> Trial:
        tid = trial.id if isinstance(trial, Trial) else trial
        if isinstance(tid, bool) or not isinstance(tid, int):
            raise TickTockTypeError(f"trial={trial!r} must be a Trial or a trial id (int)")
        for t in self._trials:
            if t.id == tid:
                return t
        raise TickTockValueError(
            f"trial {tid} is not in this study (ids: 0..{self._next_id() - 1})"
        )

    def _next_id(self) -> int:
        return self._trials[-1].id + 1 if self._trials else 0

    def _in_study(self, params: Mapping[str, Any]) -> bool:
        return any(
            t.params == params for t in self._trials if t.status != TrialStatus.INTERRUPTED
        )

    # ------------------------------------------------------------------ results
    def _feasible_completed(self) -> list[Trial]:
        return [
            t for t in self._trials
            if t.status == TrialStatus.COMPLETED and t.cost is not None
            and t.cost <= self._max_cost
        ]

    def _best_feasible_loss(self) -> float | None:
        feas = self._feasible_completed()
        return min(t.loss for t in feas) if feas else None  # type: ignore[type-var]

    def effective_loss_tolerance(self) -> float:
        """The band of "no worse" losses the tick phase accepts (see the module docstring).

        ``loss_tolerance`` when given; else ``max(1% of |best loss|, noise)``, where
        noise is the full-run GP's noise standard deviation at the best loss from
        the last fit (capped at 3% of ``|best loss|``).
        """
        if self.loss_tolerance is not None:
            return self.loss_tolerance
        best = self._best_feasible_loss()
        if best is None:
            return 0.0
        noise = min(self._loss_noise_rel, _MAX_NOISE_REL_TOLERANCE)
        return abs(best) * max(_DEFAULT_REL_TOLERANCE, noise)

    def _tick_incumbent(self) -> Trial | None:
        """The cheapest feasible run whose loss is within the tick band of the best."""
        feas = self._feasible_completed()
        if not feas:
            return None
        best = min(t.loss for t in feas)  # type: ignore[type-var]
        tol = self.effective_loss_tolerance()
        near = [t for t in feas if t.loss <= best + tol]  # type: ignore[operator]
        return min(near, key=lambda t: (t.cost, t.loss, t.id))

    @property
    def best_trial(self) -> Trial | None:
        """Lowest loss among completed trials with ``cost <= max_cost``.

        Among losses equal within tolerance (``loss_tolerance``, default 1% of the
        best loss: the rule of :func:`lightning_ticktock.report.best_trial`, which
        ``ticktock report`` uses too), the cheaper run. ``None`` while no completed
        trial fits the budget. Unlike the tick band, it does not depend on a GP fit,
        so it is the same wherever the trials are read.
        """
        from .report import best_trial

        t = best_trial(self._trials, self._max_cost, self.loss_tolerance)
        return t.copy() if t is not None else None

    # ------------------------------------------------------------------ enqueue/add
    def enqueue(self, params: Mapping[str, Any]) -> bool:
        """Make a later :meth:`ask` return exactly ``params`` (phase ``"enqueued"``), FIFO.

        Returns:
            False (and does nothing) when the same params are already enqueued or
            already in the study, so re-running a script is safe.
        """
        p = self.space.validate(params)
        if p in self._queue or self._in_study(p):
            return False
        self._queue.append(p)
        return True

    def add_trial(
        self,
        params: Mapping[str, Any],
        loss: float | None = None,
        cost: float | None = None,
        *,
        early_stopped: bool = False,
        failed: bool = False,
        **extra: Any,
    ) -> Trial:
        """Register a result obtained elsewhere (phase ``"added"``).

        Arguments and checks are those of :meth:`tell`.
        """
        p = self.space.validate(params)
        trial = Trial(id=self._next_id(), params=p, phase=Phase.ADDED)
        fields = self._told_fields(trial, loss, cost, early_stopped, failed, **extra)
        for k, v in fields.items():
            setattr(trial, k, v)
        self._trials.append(trial)
        if p in self._queue:
            self._queue.remove(p)
        return trial.copy()

    # ------------------------------------------------------------------ tell
    def _told_fields(
        self,
        trial: Trial,
        loss: float | None,
        cost: float | None,
        early_stopped: bool,
        failed: bool,
        *,
        elapsed: float | None = None,
        projected_cost: float | None = None,
        error: str | None = None,
        metrics: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Validate a tell and return the fields to set; raises before anything changes."""
        tid = trial.id
        if early_stopped and failed:
            raise TickTockValueError(
                f"tell(trial {tid}): early_stopped=True and failed=True are exclusive"
            )
        if cost is not None:
            cost = _finite_number(f"tell(trial {tid}): cost", cost, minimum=0.0)
        if elapsed is not None:
            elapsed = _finite_number(f"tell(trial {tid}): elapsed", elapsed, minimum=0.0)
        if projected_cost is not None:
            projected_cost = _finite_number(
                f"tell(trial {tid}): projected_cost", projected_cost, minimum=0.0
            )
        status = TrialStatus.COMPLETED
        if failed:
            status = TrialStatus.FAILED
            loss = None
        elif early_stopped:
            if cost is None:
                raise TickTockValueError(
                    f"tell(trial {tid}, early_stopped=True) needs cost= (the projected full cost)"
                )
            if loss is not None:
                raise TickTockValueError(
                    f"tell(trial {tid}, early_stopped=True, loss={loss!r}): an early-stopped run "
                    "has no loss; pass loss only for completed runs"
                )
            status = TrialStatus.EARLY_STOPPED
        else:
            if loss is None:
                raise TickTockValueError(
                    f"tell(trial {tid}): a completed run needs loss=; pass early_stopped=True "
                    "or failed=True otherwise"
                )
            if cost is None:
                raise TickTockValueError(f"tell(trial {tid}): a completed run needs cost=")
            if isinstance(loss, bool) or not isinstance(loss, numbers.Real):
                raise TickTockTypeError(f"tell(trial {tid}): loss={loss!r} must be a real number")
            loss = float(loss)
            if not math.isfinite(loss):
                # A diverged run: a failure, not a data point for the loss GP.
                status = TrialStatus.FAILED
                error = error or f"non-finite loss {loss!r}"
                loss = None
        return {
            "status": str(status.value),
            "loss": loss,
            "cost": cost,
            "elapsed": elapsed if elapsed is not None else cost,
            "projected_cost": projected_cost,
            "error": error,
            "metrics": list(metrics) if metrics else list(trial.metrics),
            "datetime_complete": time.time(),
        }

    def tell(
        self,
        trial: Trial | int,
        loss: float | None = None,
        cost: float | None = None,
        *,
        early_stopped: bool = False,
        failed: bool = False,
        elapsed: float | None = None,
        projected_cost: float | None = None,
        error: str | None = None,
        metrics: list[dict[str, Any]] | None = None,
    ) -> Trial:
        """Report the result of an asked trial.

        Args:
            trial: The trial (or its id) returned by :meth:`ask`.
            loss: Final validation loss of a completed run. A non-finite loss makes
                the trial ``failed``.
            cost: Measured cost of a completed run; the projected full cost of an
                early-stopped one; optional for a failed one. Finite, ``>= 0``.
            early_stopped: The run was stopped over budget: feeds the cost model only.
            failed: The run crashed.
            elapsed: Compute actually spent (defaults to ``cost``).
            projected_cost: The callback's last projection, for the record.
            error: Exception text of a failed run.
            metrics: Per-validation records, for the record.

        Returns:
            A copy of the updated trial.

        Raises:
            TickTockValueError: unknown or already-told trial, bad cost, a completed
                tell without loss. The optimizer's state is then unchanged.
        """
        t = self._find(trial)
        if t.status != TrialStatus.RUNNING:
            raise TickTockValueError(
                f"tell(trial {t.id}): the trial is already {t.status}; each trial is told once"
            )
        fields = self._told_fields(
            t, loss, cost, early_stopped, failed,
            elapsed=elapsed, projected_cost=projected_cost, error=error, metrics=metrics,
        )
        for k, v in fields.items():
            setattr(t, k, v)
        _log.info("trial %d %s: loss=%s cost=%s", t.id, t.status, t.loss, t.cost)
        return t.copy()

    def mark_interrupted(self, trial: Trial | int) -> Trial:
        """Mark a running trial interrupted (Ctrl-C, a dead worker): it is ignored
        by the models and its configuration may be asked again."""
        t = self._find(trial)
        if t.status != TrialStatus.RUNNING:
            raise TickTockValueError(f"mark_interrupted(trial {t.id}): the trial is {t.status}")
        t.status = TrialStatus.INTERRUPTED.value
        t.datetime_complete = time.time()
        return t.copy()

    # ------------------------------------------------------------------ ask
    def ask(self) -> Trial:
        """Propose the next configuration and register it as a running trial.

        Returns:
            A copy of the new trial: ``id``, ``params`` (dict), ``phase``.
        """
        tid = self._next_id()
        if self._queue:
            params, phase = self._queue.pop(0), Phase.ENQUEUED
        else:
            params, phase = self._propose(tid)
        trial = Trial(id=tid, params=params, phase=phase)
        self._trials.append(trial)
        _log.info("ask: trial %d (%s) %s", tid, phase, params)
        return trial.copy()

    def _ask_seed(self, tid: int) -> int:
        # One stream per trial id: the same seed and the same tells give the same
        # asks, whatever happened in this process before (resume is exact).
        return (self.seed * 1_000_003 + tid * 7_919) % (2**31 - 1)

    def _live(self) -> list[Trial]:
        return [t for t in self._trials if t.status != TrialStatus.INTERRUPTED]

    def _sobol_point(self, seed: int) -> dict[str, Any]:
        """Next unused point of the initial design (skipping points already in the study)."""
        n_sobol = sum(1 for t in self._live() if t.phase == Phase.INITIAL)
        for skip in range(n_sobol, n_sobol + 64):
            p = self.space.sobol(1, seed=self.seed, skip=skip)[0]
            if not self._in_study(p) and p not in self._pending_params():
                return p
        return self.space.sobol(1, seed=seed, skip=0)[0]

    def _pending_params(self) -> list[dict[str, Any]]:
        return [t.params for t in self._trials if t.status == TrialStatus.RUNNING]

    def _next_phase(self) -> str:
        k = sum(1 for t in self._live() if t.phase in (Phase.TICK, Phase.TOCK))
        return self.phase_cycle[k % len(self.phase_cycle)]

    def _propose(self, tid: int) -> tuple[dict[str, Any], Phase]:
        live = self._live()
        with_cost = _with_full_cost(live)
        seed = self._ask_seed(tid)
        if len(live) < self.n_initial or len(with_cost) < 2:
            return self._sobol_point(seed), Phase.INITIAL
        try:
            start = time.perf_counter()
            with _single_thread():
                params, phase = self._propose_model_based(seed)
            self.last_fit["seconds"] = time.perf_counter() - start
            self.last_fit["phase"] = str(phase)
            return params, phase
        except Exception as exc:  # noqa: BLE001 - a numerical failure must not end a study
            _log.warning("model-based proposal failed (%s: %s); using a Sobol point",
                         type(exc).__name__, exc)
            return self._sobol_point(seed), Phase.INITIAL

    def _propose_model_based(self, seed: int) -> tuple[dict[str, Any], Phase]:
        import torch
        from botorch.models import ModelListGP

        from . import acquisition as acq
        from .models import COST_FLOOR, FeatureMap, LossTransform, fit_gp

        live = self._live()
        fmap = FeatureMap([len(p.options) if isinstance(p, Choice) else 0
                           for p in self.space.params])

        def feats(trials: Sequence[Trial]) -> torch.Tensor:
            rows = [fmap.features(self.space.encode(t.params)) for t in trials]
            return torch.tensor(rows, dtype=torch.float64).reshape(len(rows), fmap.n_features)

        bounds = torch.zeros(2, fmap.n_features, dtype=torch.float64)
        bounds[1] = 1.0
        completed = [t for t in live if t.status == TrialStatus.COMPLETED]
        costed = _with_full_cost(live)
        failed = [t for t in live if t.status == TrialStatus.FAILED]
        pending = [t for t in live if t.status == TrialStatus.RUNNING]

        # Partial-run GP: log cost of every run with a full-run cost (measured or projected).
        Yc = torch.tensor([[math.log(max(t.cost, COST_FLOOR))] for t in costed],
                          dtype=torch.float64)
        cost_gp = fit_gp(feats(costed), Yc, self._warm.get("cost"), seed)
        self._warm["cost"] = cost_gp.hyperparameters
        log_max_cost = math.log(self._max_cost)
        self.last_fit = {"n_cost_obs": len(costed), "n_loss_obs": len(completed),
                         "n_failed": len(failed), "n_pending": len(pending)}
        search = {"fmap": fmap, "bounds": bounds, "seed": seed}

        if len(completed) < 2:
            # No loss model yet: every run so far was stopped or crashed. Look for
            # configurations that fit the budget first.
            Xp = feats(pending + failed) if pending or failed else None
            af = acq.feasibility_acquisition(cost_gp.model, log_max_cost, Xp, seed)
            return self._best_new_candidate(af, **search), Phase.TOCK

        # Full-run GP: transformed loss of completed runs; failed points imputed with
        # the worst observed loss so their region is not proposed again blindly.
        losses = [float(t.loss) for t in completed]  # type: ignore[arg-type]
        g = LossTransform.for_losses(losses)
        worst = max(losses)
        Yl = torch.tensor([[g.forward(v)] for v in losses + [worst] * len(failed)],
                          dtype=torch.float64)
        loss_gp = fit_gp(feats(completed + failed), Yl, self._warm.get("loss"), seed + 1)
        self._warm["loss"] = loss_gp.hyperparameters
        if g.kind == "log":
            self._loss_noise_rel = math.expm1(loss_gp.noise_sd())
        else:
            scale = max(abs(v) for v in losses) or 1.0
            self._loss_noise_rel = loss_gp.noise_sd() / scale

        self.last_fit["loss_transform"] = g.kind
        self.last_fit["loss_tolerance"] = self.effective_loss_tolerance()
        model = ModelListGP(loss_gp.model, cost_gp.model)
        Xp = feats(pending) if pending else None
        phase = self._next_phase()
        incumbent = self._tick_incumbent()
        if phase == "tick" and incumbent is not None:
            best = self._best_feasible_loss()
            threshold = g.forward(best + self.effective_loss_tolerance())  # type: ignore[operator]
            af = acq.tick_acquisition(
                model, math.log(max(incumbent.cost, COST_FLOOR)),  # type: ignore[arg-type]
                threshold, Xp, seed,
            )
            # The tick refines the incumbent: search a box around it (a trust region,
            # as in TuRBO) with its categories fixed. Far from the incumbent the loss
            # GP knows little, and constrained EI would happily trade a cheap corner's
            # huge cost improvement against a small chance of keeping the loss.
            x_inc = self.space.encode(incumbent.params)
            f_inc = torch.tensor(fmap.features(x_inc), dtype=torch.float64)
            for c in fmap.numeric_features:
                bounds[0, c] = max(0.0, float(f_inc[c]) - _TICK_TRUST_HALF_WIDTH)
                bounds[1, c] = min(1.0, float(f_inc[c]) + _TICK_TRUST_HALF_WIDTH)
            search["only_combos"] = [fmap.combo(x_inc)]
            chosen = Phase.TICK
        else:
            best_loss = self._best_feasible_loss()
            if best_loss is None:
                # Nothing feasible completed yet (e.g. the budget was lowered):
                # improve on the worst loss, weighted by feasibility.
                best_loss = worst
            af = acq.tock_acquisition(model, g.forward(best_loss), log_max_cost, Xp, seed)
            if incumbent is not None:
                search["preferred"] = [fmap.combo(self.space.encode(incumbent.params))]
            chosen = Phase.TOCK
        return self._best_new_candidate(af, **search), chosen

    def _best_new_candidate(
        self, af: Any, fmap: Any, bounds: Any, seed: int,
        preferred: Sequence[tuple[int, ...]] = (),
        only_combos: Sequence[tuple[int, ...]] | None = None,
    ) -> dict[str, Any]:
        from .acquisition import optimize_candidates

        X, _ = optimize_candidates(
            af, bounds, fmap.groups, num_restarts=self.num_restarts,
            raw_samples=self.raw_samples, preferred_combos=preferred,
            only_combos=only_combos, seed=seed,
        )
        taken = self._pending_params()
        for f in X.tolist():
            p = self.space.decode(fmap.encoded(f))
            # Integers and categories round: a candidate can land on a point already
            # run or pending; re-running it teaches the models nothing new.
            if not self._in_study(p) and p not in taken:
                return p
        _log.info("every acquisition optimum rounds onto a known point; using a Sobol point")
        return self._sobol_point(seed)
