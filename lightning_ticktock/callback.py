"""TickTockCallback: measure a run's loss and cost, project its full cost, stop it if over budget.

The callback does one job, in the manner of Lightning's ``Timer``: it records the
monitored validation loss at every validation and the cost spent so far (by
default wall-clock seconds of the training and validation loops), and after a
warm-up it projects the cost of the whole planned run. When the projection
exceeds ``max_cost * (1 + margin)`` it sets ``trainer.should_stop = True``, which
Lightning honours at the end of the current batch, so a hopeless run is stopped
mid-epoch. It never imports the optimizer: the driver reads :attr:`result`.

The math is in two pure functions, tested without a Trainer:

* :func:`project_cost` -- what has been spent plus the remaining planned work at
  the measured rates::

      projected = elapsed + train_rate * remaining_train_batches
                          + val_rate * remaining_val_batches

  with the planned work taken from a :class:`TrainingPlan` (``max_epochs``,
  ``max_steps``, ``limit_train_batches``, ``accumulate_grad_batches``,
  ``check_val_every_n_epoch``, ``val_check_interval``, validation size).
* :func:`decide` -- ``(elapsed, projected, max_cost, margin, warmed_up) -> (stop, reason)``.

Example:
    >>> from lightning_ticktock.callback import TrainingPlan, decide, project_cost
    >>> plan = TrainingPlan(train_batches_per_epoch=100, max_epochs=10, val_batches=20)
    >>> plan.total_train_batches, plan.total_val_batches()
    (1000, 200)
    >>> # 250 train batches at 0.1 s and 2 validations (40 batches) at 0.05 s done, 27 s spent:
    >>> projected = project_cost(plan, elapsed=27.0, train_rate=0.1, train_batches_done=250,
    ...                          val_rate=0.05, val_batches_done=40)
    >>> round(projected, 6)  # 27 + 750 * 0.1 + 160 * 0.05
    110.0
    >>> decide(elapsed=27.0, projected=projected, max_cost=60.0, margin=0.05, warmed_up=True)[0]
    True
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import math
import numbers
import time
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

import lightning.pytorch as _lp

from .errors import TickTockTypeError, TickTockValueError
from .trial import TrialStatus

if TYPE_CHECKING:
    import lightning.pytorch as pl

# PLTickTockCallback is public too but not in __all__: it is created on first access,
# which imports pytorch_lightning, and a star-import should not pay for that.
__all__ = [
    "CallbackResult",
    "TickTockCallback",
    "TrainingPlan",
    "callback_for",
    "decide",
    "lightning_namespace",
    "project_cost",
]

log = logging.getLogger(__name__)

# NOTE: the first batches of a fit pay one-off start-up costs (data-loader workers
# spinning up, CUDA context and cuDNN autotuning, torch.compile, DDP buckets). Three
# batches cover those in practice and cost little on a run that is going to be stopped.
_DEFAULT_WARMUP_BATCHES = 3
# NOTE: a rate measured over a few batches is at the mercy of a GC pause, a cache
# still warming up or a straggling rank. On the MNIST example, deciding after 2 timed
# batches put the projection 11-24 % off the real full cost (benchmarks/
# bench_overheads.py); 10 batches cost a fraction of a second more on a run that is
# going to be stopped anyway.
_MIN_TIMED_BATCHES = 10
# NOTE: a 5% margin absorbs the noise of a rate measured over a few batches, so a run
# whose true cost sits at the budget is not stopped on a jitter.
_DEFAULT_MARGIN = 0.05

_NAMESPACES = ("lightning.pytorch", "pytorch_lightning")
_COST_CHOICES = ("time",)


# --------------------------------------------------------------------------------------
# The planned work and the projection (pure)
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TrainingPlan:
    """The work a ``Trainer.fit`` is configured to do, in batches.

    Mirrors Lightning 2.x's loop logic (``_FitLoop.setup_data`` and
    ``_TrainingEpochLoop._should_check_val_fx``): ``max_steps`` counts optimizer
    steps, Lightning steps on the last batch of an epoch even mid-accumulation,
    and a float ``val_check_interval`` ``f`` validates every
    ``max(1, int(f * train_batches_per_epoch))`` batches.

    Attributes:
        train_batches_per_epoch: Training batches per epoch after
            ``limit_train_batches`` (``trainer.num_training_batches``); may be ``inf``.
        max_epochs: ``None`` or ``-1`` for no epoch limit.
        max_steps: Optimizer steps; ``-1`` (or ``None``) for no step limit.
        accumulate_grad_batches: Batches per optimizer step.
        check_val_every_n_epoch: Validate in every n-th epoch; ``None`` counts
            ``val_check_interval`` (then an int) in batches across epochs.
        val_check_interval: ``int`` (every k batches) or ``float`` (fraction of an epoch).
        val_check_seconds: A time-based ``val_check_interval`` in seconds (Lightning's
            ``"DD:HH:MM:SS"`` / timedelta form); the count of validations is then
            estimated from the projected training time.
        val_batches: Batches in one validation run, all validation loaders
            together; ``0`` when validation is off or not known yet.

    Example:
        >>> plan = TrainingPlan(train_batches_per_epoch=10, max_epochs=4,
        ...                     check_val_every_n_epoch=2, val_check_interval=0.5, val_batches=3)
        >>> plan.val_check_batch, plan.num_validations(), plan.total_val_batches()
        (5, 4, 12)
        >>> TrainingPlan(train_batches_per_epoch=10, max_steps=7,
        ...              accumulate_grad_batches=4).total_train_batches  # 3 steps/epoch
        24
    """

    train_batches_per_epoch: float
    max_epochs: int | None = None
    max_steps: int | None = -1
    accumulate_grad_batches: int = 1
    check_val_every_n_epoch: int | None = 1
    val_check_interval: int | float = 1.0
    val_check_seconds: float | None = None
    val_batches: float = 0

    @classmethod
    def from_trainer(cls, trainer: pl.Trainer) -> TrainingPlan:
        """Read the plan off a trainer whose training data has been set up (``on_train_start``)."""
        val_batches: float = 0
        if trainer.enable_validation:
            known = list(trainer.num_val_batches or [])
            if known and all(math.isfinite(n) for n in known):
                val_batches = sum(known)
            elif isinstance(trainer.limit_val_batches, int):
                # The val loader is set up at the first validation when there is no sanity
                # check; an int limit already tells its size (for one loader).
                val_batches = trainer.limit_val_batches
        return cls(
            train_batches_per_epoch=trainer.num_training_batches,
            max_epochs=trainer.max_epochs,
            max_steps=trainer.max_steps,
            accumulate_grad_batches=trainer.accumulate_grad_batches,
            check_val_every_n_epoch=trainer.check_val_every_n_epoch,
            val_check_interval=trainer.val_check_interval,
            val_check_seconds=getattr(trainer, "_val_check_time_interval", None),
            val_batches=val_batches,
        )

    @property
    def steps_per_epoch(self) -> float:
        """Optimizer steps per epoch: ``ceil(batches / accumulate_grad_batches)``."""
        if math.isinf(self.train_batches_per_epoch):
            return math.inf
        return math.ceil(self.train_batches_per_epoch / self.accumulate_grad_batches)

    @property
    def total_train_batches(self) -> float:
        """Training batches of the whole run (``inf`` when the run is unbounded)."""
        per_epoch = self.train_batches_per_epoch
        if per_epoch == 0:
            return 0
        epochs = math.inf if self.max_epochs in (None, -1) else self.max_epochs
        by_epochs = epochs * per_epoch if epochs else 0
        if self.max_steps is None or self.max_steps < 0:
            return by_epochs
        steps, acc = self.max_steps, self.accumulate_grad_batches
        if math.isinf(per_epoch):
            by_steps = steps * acc
        else:
            full, rest = divmod(steps, self.steps_per_epoch)
            # A partial epoch never reaches its last batch, so each step there is acc batches.
            by_steps = full * per_epoch + rest * acc
        return min(by_epochs, by_steps)

    @property
    def val_check_batch(self) -> float | None:
        """Training batches between validations (``inf``: once per epoch; ``None``: time-based)."""
        if self.val_check_seconds is not None:
            return None
        if isinstance(self.val_check_interval, int):
            return self.val_check_interval
        if math.isinf(self.train_batches_per_epoch):
            return math.inf
        return max(1, int(self.train_batches_per_epoch * self.val_check_interval))

    def num_validations(self, train_elapsed: float | None = None) -> float:
        """Validation runs in the whole run.

        Args:
            train_elapsed: Projected training cost of the whole run in seconds; used only
                with a time-based ``val_check_interval`` (``0`` validations without it).
        """
        total = self.total_train_batches
        if not self.val_batches or total == 0:
            return 0
        if math.isinf(total):
            return math.inf
        if self.val_check_seconds is not None:
            if train_elapsed is None or self.val_check_seconds <= 0:
                return 0
            return math.floor(train_elapsed / self.val_check_seconds)
        every = self.val_check_batch
        assert every is not None  # not time-based here
        if self.check_val_every_n_epoch is None:
            return total // every if math.isfinite(every) else 0
        per_epoch, n = self.train_batches_per_epoch, self.check_val_every_n_epoch
        if math.isinf(per_epoch):
            full, rest = 0, total
        else:
            full, rest = divmod(total, per_epoch)
        at_epoch_end = math.isinf(every)
        count = 0
        if full:  # per_epoch is finite here
            count = (full // n) * (1 if at_epoch_end else per_epoch // every)
        if rest and not at_epoch_end and (full + 1) % n == 0:
            count += rest // every  # validations inside the last, partial epoch
        return int(count)

    def total_val_batches(self, train_elapsed: float | None = None) -> float:
        """Validation batches of the whole run: ``num_validations * val_batches``."""
        count = self.num_validations(train_elapsed)
        return count * self.val_batches if count else 0


def project_cost(
    plan: TrainingPlan,
    *,
    elapsed: float,
    train_rate: float,
    train_batches_done: int,
    val_rate: float = 0.0,
    val_batches_done: int = 0,
    train_elapsed: float | None = None,
) -> float:
    """Project the full cost of a run from what it spent and its measured rates.

    ``projected = elapsed + train_rate * max(0, T - t) + val_rate * max(0, V - v)``
    where ``T``, ``V`` are the planned train and validation batches and ``t``,
    ``v`` the ones done. Costs already spent (warm-up included) are counted
    exactly; only the remaining work is extrapolated.

    Args:
        plan: The planned work.
        elapsed: Cost spent so far (train and validation).
        train_rate: Cost per training batch, measured after the warm-up.
        train_batches_done: Training batches done so far.
        val_rate: Cost per validation batch (``0`` until one has been measured).
        val_batches_done: Validation batches done so far.
        train_elapsed: Training part of ``elapsed``; needed only with a time-based
            ``val_check_interval``, to count the validations still to come.

    Returns:
        The projected cost, ``inf`` when the planned work is unbounded.

    Example:
        >>> plan = TrainingPlan(train_batches_per_epoch=50, max_epochs=2, val_batches=10)
        >>> project_cost(plan, elapsed=5.0, train_rate=0.1, train_batches_done=20,
        ...              val_rate=0.2, val_batches_done=0)  # 5 + 80 * 0.1 + 20 * 0.2
        17.0
    """
    total_train = plan.total_train_batches
    if math.isinf(total_train):
        return math.inf
    remaining_train = max(0.0, total_train - train_batches_done)
    projected_train = None
    if train_elapsed is not None:
        projected_train = train_elapsed + train_rate * remaining_train
    remaining_val = max(0.0, plan.total_val_batches(projected_train) - val_batches_done)
    return elapsed + train_rate * remaining_train + val_rate * remaining_val


def decide(
    elapsed: float,
    projected: float | None,
    max_cost: float | None,
    margin: float,
    warmed_up: bool,
) -> tuple[bool, str]:
    """Whether to stop a run, and why. Pure; the callback's only decision.

    A run is stopped when the cost already spent, or (once warmed up) the
    projected full cost, exceeds ``max_cost * (1 + margin)``. Spent cost needs
    no warm-up: it is a fact, not an estimate.

    Args:
        elapsed: Cost spent so far.
        projected: Projected full cost (``None`` when not projected yet).
        max_cost: The budget; ``None`` never stops.
        margin: Relative tolerance over the budget before stopping.
        warmed_up: Whether the rates behind ``projected`` are past the warm-up.

    Returns:
        ``(stop, reason)``.

    Example:
        >>> decide(2.0, 30.0, max_cost=10.0, margin=0.05, warmed_up=True)
        (True, 'projected cost 30 exceeds max_cost 10 * (1 + margin 0.05) = 10.5')
        >>> decide(2.0, 30.0, max_cost=10.0, margin=0.05, warmed_up=False)[0]
        False
    """
    if max_cost is None:
        return False, "no budget (max_cost=None): measuring only"
    limit = max_cost * (1.0 + margin)
    budget = f"max_cost {max_cost:.6g} * (1 + margin {margin:.6g}) = {limit:.6g}"
    if elapsed > limit:
        return True, f"elapsed cost {elapsed:.6g} exceeds {budget}"
    if not warmed_up:
        return False, "warming up"
    if projected is None:
        return False, "no projection yet"
    if projected > limit:
        return True, f"projected cost {projected:.6g} exceeds {budget}"
    return False, f"projected cost {projected:.6g} within {budget}"


# --------------------------------------------------------------------------------------
# The result the driver reads
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class CallbackResult:
    """What a run measured, read by the driver after ``fit``.

    Attributes:
        status: ``"completed"`` or ``"early_stopped"`` (stopped by this callback on cost).
            A run stopped by anything else (``EarlyStopping``, ``max_time``) is completed.
        loss: The monitored value at the last validation; ``None`` when early stopped,
            when the run never validated, or when the monitored key was missing. It can
            be ``nan`` if the model diverged. A completed run with ``loss=None`` is a
            failed run for the driver.
        cost: The measured cost of a completed run; the projected full cost of an
            early-stopped one (never less than ``elapsed``).
        elapsed: Cost actually spent.
        projected_cost: The last projection of the full cost (``None`` if never projected).
        reason: The last decision's reason, in words.
        metrics: One record per validation:
            ``{"epoch": int, "step": int, "val_loss": float | None, "elapsed": float}``.
    """

    status: Literal["completed", "early_stopped"]
    loss: float | None
    cost: float
    elapsed: float
    projected_cost: float | None
    reason: str
    metrics: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict of every field."""
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------------------
# Argument validation
# --------------------------------------------------------------------------------------


def _bad(param: str, value: Any, rule: str, type_error: bool = False) -> Exception:
    cls = TickTockTypeError if type_error else TickTockValueError
    return cls(f"TickTockCallback({param}={value!r}): {param} must be {rule}")


def _check_max_cost(value: Any) -> float | None:
    if value is None:
        return None
    rule = "a positive finite number, or None to never stop"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _bad("max_cost", value, rule, type_error=True)
    if not (math.isfinite(value) and value > 0):
        raise _bad("max_cost", value, rule)
    return float(value)


def _check_count(param: str, value: Any, minimum: int, allow_none: bool) -> int | None:
    if value is None and allow_none:
        return None
    rule = f"an int >= {minimum}" + (", or None" if allow_none else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _bad(param, value, rule, type_error=True)
    if value < minimum:
        raise _bad(param, value, rule)
    return int(value)


# --------------------------------------------------------------------------------------
# The callback
# --------------------------------------------------------------------------------------


class _TickTockCallbackBase:
    """The callback's logic, shared by the ``lightning.pytorch`` and ``pytorch_lightning`` classes.

    Lightning's two namespaces have distinct ``Callback`` classes and each Trainer
    rejects the other's, so the logic lives in this mixin and each public class
    adds one namespace's ``Callback`` base. See :class:`TickTockCallback`.
    """

    def __init__(
        self,
        max_cost: float | None = None,
        monitor: str = "val_loss",
        cost: str | Callable[[Any, Any], float] = "time",
        warmup_steps: int | None = None,
        warmup_epochs: int | None = None,
        margin: float = _DEFAULT_MARGIN,
        clock: Callable[[], float] = time.monotonic,
        check_every_n_batches: int = 1,
        verbose: bool = True,
    ) -> None:
        super().__init__()
        self.max_cost = max_cost  # validated by the property
        if not isinstance(monitor, str) or not monitor:
            raise _bad("monitor", monitor, "a non-empty metric name", type_error=True)
        if isinstance(cost, str):
            if cost not in _COST_CHOICES:
                raise _bad("cost", cost, f"one of {list(_COST_CHOICES)} or a callable")
        elif not callable(cost):
            raise _bad("cost", cost, "'time' or a callable (trainer, pl_module) -> float", True)
        self._warmup_steps = _check_count("warmup_steps", warmup_steps, 0, allow_none=True)
        self._warmup_epochs = _check_count("warmup_epochs", warmup_epochs, 0, allow_none=True)
        if warmup_steps is not None and warmup_epochs is not None:
            raise TickTockValueError(
                f"TickTockCallback(warmup_steps={warmup_steps!r}, warmup_epochs={warmup_epochs!r})"
                ": give at most one of warmup_steps and warmup_epochs"
            )
        rule = "a finite number >= 0"
        if isinstance(margin, bool) or not isinstance(margin, numbers.Real):
            raise _bad("margin", margin, rule, type_error=True)
        if not (math.isfinite(margin) and margin >= 0):
            raise _bad("margin", margin, rule)
        if not callable(clock):
            raise _bad("clock", clock, "a callable returning seconds", type_error=True)
        self._check_every = _check_count("check_every_n_batches", check_every_n_batches, 1, False)
        if not isinstance(verbose, bool):
            raise _bad("verbose", verbose, "a bool", type_error=True)
        self.monitor = monitor
        self.margin = float(margin)
        self.verbose = verbose
        self._cost = cost
        self._clock = clock
        self._loaded = False
        self._reset()

    # -- public state ------------------------------------------------------------------

    @property
    def max_cost(self) -> float | None:
        """The budget (``None``: never stop); the driver sets it per trial, between fits."""
        return self._max_cost

    @max_cost.setter
    def max_cost(self, value: float | None) -> None:
        self._max_cost = _check_max_cost(value)

    @property
    def state_key(self) -> str:
        return self._generate_state_key(monitor=self.monitor)  # type: ignore[attr-defined]

    @property
    def elapsed(self) -> float:
        """Cost spent so far (frozen once training ends)."""
        return self._elapsed

    @property
    def projected_cost(self) -> float | None:
        """The last projection of the full cost, ``None`` before the warm-up is over."""
        return self._projected

    @property
    def stopped(self) -> bool:
        """Whether this callback asked the trainer to stop."""
        return self._stopped

    @property
    def warmed_up(self) -> bool:
        """Whether enough batches were timed after the warm-up point to project."""
        return self._mark is not None and self._train_batches - self._mark[1] >= _MIN_TIMED_BATCHES

    @property
    def plan(self) -> TrainingPlan | None:
        """The plan behind the last projection."""
        return self._plan

    @property
    def metrics(self) -> list[dict[str, Any]]:
        """Per-validation records (a copy)."""
        return [dict(m) for m in self._metrics]

    @property
    def result(self) -> CallbackResult:
        """The run's outcome, for the driver. See :class:`CallbackResult`."""
        last = self._metrics[-1]["val_loss"] if self._metrics else None
        if self._stopped:
            cost = self._elapsed if self._projected is None else max(self._projected, self._elapsed)
            return CallbackResult(
                status=TrialStatus.EARLY_STOPPED.value,
                loss=None,
                cost=cost,
                elapsed=self._elapsed,
                projected_cost=self._projected,
                reason=self._reason,
                metrics=self.metrics,
            )
        return CallbackResult(
            status=TrialStatus.COMPLETED.value,
            loss=last,
            cost=self._elapsed,
            elapsed=self._elapsed,
            projected_cost=self._projected,
            reason=self._reason,
            metrics=self.metrics,
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "elapsed": self._elapsed,
            "val_cost": self._val_cost,
            "train_batches": self._train_batches,
            "val_batches": self._val_batches,
            "projected_cost": self._projected,
            "stopped": self._stopped,
            "reason": self._reason,
            "metrics": self.metrics,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._reset()
        self._elapsed = float(state_dict.get("elapsed", 0.0))
        self._val_cost = float(state_dict.get("val_cost", 0.0))
        self._train_batches = int(state_dict.get("train_batches", 0))
        self._val_batches = int(state_dict.get("val_batches", 0))
        self._projected = state_dict.get("projected_cost")
        self._stopped = bool(state_dict.get("stopped", False))
        self._reason = str(state_dict.get("reason", ""))
        self._metrics = [dict(m) for m in state_dict.get("metrics", [])]
        # Time keeps counting from the restored elapsed, like Timer's offset; the warm-up
        # is redone because a new process pays the start-up costs again.
        self._offset = self._elapsed
        # Lightning restores callbacks before on_fit_start (after it for some strategies);
        # this flag stops on_fit_start from wiping what was just loaded.
        self._loaded = True

    # -- hooks ---------------------------------------------------------------------------

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # One callback may serve several trials in turn: each fit starts from zero,
        # unless it resumes from a checkpoint.
        if not self._loaded:
            self._reset()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._loaded = False
        self._running = True
        self._t0 = self._clock()
        self._fit_batches = 0
        self._fit_epochs = 0
        self._mark = None
        self._warned_monitor = False
        if self._warmup_epochs is not None:
            self._warmup_batches = None
        elif self._warmup_steps is not None:
            # max_steps and warmup_steps count optimizer steps; the loop counts batches.
            self._warmup_batches = self._warmup_steps * trainer.accumulate_grad_batches
        else:
            self._warmup_batches = _DEFAULT_WARMUP_BATCHES
        elapsed = self._read(trainer, pl_module)
        if self._warmup_batches == 0 or self._warmup_epochs == 0:
            self._set_mark(elapsed)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any, **kwargs: Any
    ) -> None:
        if not self._running:
            return
        self._train_batches += 1
        self._fit_batches += 1
        elapsed = self._read(trainer, pl_module)
        if self._mark is None and self._warmup_batches is not None:
            if self._fit_batches >= self._warmup_batches:
                self._set_mark(elapsed)
        if self._fit_batches % self._check_every == 0:
            self._check(trainer, pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._running:
            return
        self._fit_epochs += 1
        if self._mark is None and self._warmup_epochs is not None:
            if self._fit_epochs >= self._warmup_epochs:
                self._set_mark(self._read(trainer, pl_module))

    def on_sanity_check_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # The sanity check is not part of the cost, but it is the first measurement of
        # what a validation batch costs: until a real validation has run, the projection
        # uses it instead of leaving validation out (which under-projected the MNIST
        # example's runs by ~10 %, benchmarks/bench_overheads.py).
        if self._cost == "time":
            self._sanity_started_at = self._clock()
            self._sanity_batches = 0

    def on_sanity_check_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._sanity_started_at is not None and self._sanity_batches:
            self._sanity_val_rate = (
                (self._clock() - self._sanity_started_at) / self._sanity_batches
            )
        self._sanity_started_at = None

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Only validations inside fit's training loop count: not the sanity check (it
        # runs before on_train_start) and not trainer.validate().
        if self._running:
            self._val_started_at = self._read(trainer, pl_module)

    def on_validation_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any, **kwargs: Any
    ) -> None:
        if self._sanity_started_at is not None and getattr(trainer, "sanity_checking", False):
            self._sanity_batches += 1
        if self._running and self._val_started_at is not None:
            self._val_batches += 1

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._running or self._val_started_at is None:
            return
        elapsed = self._read(trainer, pl_module)
        self._val_cost += elapsed - self._val_started_at
        self._val_started_at = None
        record = {
            "epoch": int(trainer.current_epoch),
            "step": int(trainer.global_step),
            "val_loss": self._monitored_value(trainer),
            "elapsed": elapsed,
        }
        # Every rank keeps rank 0's record, so all ranks report the same history.
        record = trainer.strategy.broadcast(record, src=0)
        self._metrics.append(record)
        metrics = {"ticktock/cost": record["elapsed"]}
        if self._projected is not None:
            metrics["ticktock/projected_cost"] = self._projected
        self._log_metrics(trainer, metrics)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._running:
            return
        elapsed = self._read(trainer, pl_module)
        self._running = False
        self._elapsed = trainer.strategy.broadcast(elapsed, src=0)
        if not self._stopped and not self._metrics:
            # The driver treats a completed run without a loss as failed; say why.
            self._reason = "finished without any validation: no loss"
        metrics = {"ticktock/cost": self._elapsed, "ticktock/early_stopped": float(self._stopped)}
        if self._projected is not None:
            metrics["ticktock/projected_cost"] = self._projected
        self._log_metrics(trainer, metrics)
        self._info(
            trainer,
            f"run {'early stopped' if self._stopped else 'completed'}: cost spent "
            f"{self._elapsed:.6g}, projected {_fmt(self._projected)}; {self._reason}",
        )

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        # No broadcast here: the other ranks may not reach this hook.
        if self._running:
            try:
                self._read(trainer, pl_module)
            except Exception:  # the cost function may be what failed
                pass
            self._running = False

    # -- internals -----------------------------------------------------------------------

    def _reset(self) -> None:
        self._offset = 0.0
        self._elapsed = 0.0
        self._val_cost = 0.0
        self._train_batches = 0
        self._val_batches = 0
        self._projected: float | None = None
        self._stopped = False
        self._reason = ""
        self._metrics: list[dict[str, Any]] = []
        self._plan: TrainingPlan | None = None
        self._plan_epoch = -1
        self._sanity_started_at: float | None = None
        self._sanity_batches = 0
        self._sanity_val_rate: float | None = None
        self._running = False
        self._t0 = 0.0
        self._fit_batches = 0
        self._fit_epochs = 0
        self._warmup_batches: int | None = _DEFAULT_WARMUP_BATCHES
        self._mark: tuple[float, int] | None = None  # (train cost, train batches) at warm-up end
        self._val_started_at: float | None = None
        self._warned_monitor = False
        self._warned_unbounded = False

    def _read(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> float:
        """Take a cost reading, store it as ``elapsed`` and return it."""
        if callable(self._cost):
            raw = self._cost(trainer, pl_module)
            try:
                value = float(raw)
            except (TypeError, ValueError):
                raise TickTockTypeError(
                    f"TickTockCallback(cost={self._cost!r}): the cost function returned {raw!r}"
                    "; it must return a finite number"
                ) from None
            if not math.isfinite(value):
                raise TickTockValueError(
                    f"TickTockCallback(cost={self._cost!r}): the cost function returned {raw!r}"
                    "; it must return a finite number"
                )
        else:
            value = self._offset + (self._clock() - self._t0)
        self._elapsed = value
        return value

    def _set_mark(self, elapsed: float) -> None:
        self._mark = (elapsed - self._val_cost, self._train_batches)

    def _rates(self) -> tuple[float, float] | None:
        """``(cost per train batch after the warm-up, cost per validation batch)``."""
        if not self.warmed_up:
            return None
        assert self._mark is not None
        mark_cost, mark_batches = self._mark
        train_cost = self._elapsed - self._val_cost
        train_rate = max(0.0, train_cost - mark_cost) / (self._train_batches - mark_batches)
        # Every validation's own start-up (val loader workers) recurs, so it belongs in the
        # rate. Until one has run, the sanity check's rate stands in (a measurement, on
        # the same batches); without one, validation is left out: the projection is then
        # a lower bound, and a run is never stopped on a guess.
        if self._val_batches:
            val_rate = self._val_cost / self._val_batches
        else:
            val_rate = self._sanity_val_rate or 0.0
        return train_rate, val_rate

    def _project(self, trainer: pl.Trainer) -> float | None:
        rates = self._rates()
        if rates is None:
            return None
        # The planned work only changes when Lightning reloads the dataloaders (at most
        # once an epoch): re-reading it per batch was the callback's largest cost.
        epoch = trainer.current_epoch
        if self._plan is None or self._plan_epoch != epoch:
            self._plan = TrainingPlan.from_trainer(trainer)
            self._plan_epoch = epoch
        projected = project_cost(
            self._plan,
            elapsed=self._elapsed,
            train_rate=rates[0],
            train_batches_done=self._train_batches,
            val_rate=rates[1],
            val_batches_done=self._val_batches,
            train_elapsed=self._elapsed - self._val_cost,
        )
        if math.isinf(projected):
            if not self._warned_unbounded and trainer.is_global_zero:
                log.warning(
                    "TickTockCallback: the planned work is unbounded (max_epochs=-1 and no "
                    "max_steps, or an infinite train loader): no projection, no stop on it"
                )
            self._warned_unbounded = True
            return None
        return projected

    def _check(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Project, decide on rank 0, broadcast, and stop every rank alike."""
        if self._stopped:
            # Sticky: re-assert in case min_epochs / min_steps kept the loop going.
            trainer.should_stop = True
            return
        projected = self._project(trainer)
        stop, reason = decide(
            self._elapsed, projected, self.max_cost, self.margin, warmed_up=self.warmed_up
        )
        # Rank 0 decides; every rank adopts its cost, projection and decision, so the
        # ranks cannot disagree and a stopped run stops everywhere at the same batch.
        payload = {"stop": stop, "reason": reason, "elapsed": self._elapsed, "projected": projected}
        payload = trainer.strategy.broadcast(payload, src=0)
        self._elapsed = payload["elapsed"]
        self._projected = payload["projected"]
        self._reason = payload["reason"]
        log.debug(
            "TickTockCallback: elapsed %.6g, projected %s: %s",
            self._elapsed,
            _fmt(self._projected),
            self._reason,
        )
        if not payload["stop"]:
            return
        self._stopped = True
        trainer.should_stop = True
        self._skip_validation_on_stop(trainer)
        self._log_metrics(
            trainer,
            {
                "ticktock/cost": self._elapsed,
                "ticktock/projected_cost": (
                    self._projected if self._projected is not None else self._elapsed
                ),
                "ticktock/early_stopped": 1.0,
            },
        )
        self._info(trainer, f"stopping the run at step {trainer.global_step}: {self._reason}")

    @staticmethod
    def _skip_validation_on_stop(trainer: pl.Trainer) -> None:
        # Lightning runs one more validation when should_stop is set mid-epoch (so that
        # EarlyStopping sees a final score). A run stopped on cost reports no loss, so that
        # validation would be pure waste; the epoch loop's _skip_next_val flag (Lightning
        # 2.x, private) skips it. Only when the loop can stop now, otherwise a
        # min_epochs / min_steps run would lose a scheduled validation.
        fit_loop = getattr(trainer, "fit_loop", None)
        epoch_loop = getattr(fit_loop, "epoch_loop", None)
        if epoch_loop is None or not hasattr(epoch_loop, "_skip_next_val"):
            return
        if getattr(fit_loop, "_can_stop_early", True):
            epoch_loop._skip_next_val = True

    def _monitored_value(self, trainer: pl.Trainer) -> float | None:
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            if not self._warned_monitor and trainer.is_global_zero:
                log.warning(
                    "TickTockCallback(monitor=%r): the metric is not in trainer.callback_metrics"
                    " (available: %s); log it in validation_step with self.log(%r, ...)",
                    self.monitor,
                    sorted(trainer.callback_metrics),
                    self.monitor,
                )
            self._warned_monitor = True
            return None
        return float(value)

    @staticmethod
    def _log_metrics(trainer: pl.Trainer, metrics: dict[str, float]) -> None:
        if not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)

    def _info(self, trainer: pl.Trainer, message: str) -> None:
        if trainer.is_global_zero:
            log.log(
                logging.INFO if self.verbose else logging.DEBUG, "TickTockCallback: %s", message
            )


def _fmt(value: float | None) -> str:
    return "none" if value is None else f"{value:.6g}"


class TickTockCallback(_TickTockCallbackBase, _lp.Callback):
    """Record val loss and cost; stop runs whose projected cost exceeds the budget.

    For ``lightning.pytorch`` Trainers; use :func:`callback_for` (or
    :data:`PLTickTockCallback`) for ``pytorch_lightning``.

    **Cost.** By default, wall-clock seconds from ``on_train_start`` to
    ``on_train_end`` (the training loop and the validations inside it; the sanity
    check and setup are not counted), read with ``clock``. A callable
    ``cost(trainer, pl_module) -> float`` returning the run's cumulative cost so
    far (FLOPs, samples, joules...) replaces it; its value is the elapsed cost.

    **Warm-up.** The rate is measured only from a warm-up point on, so one-off
    start-up costs (data-loader spin-up, CUDA/cuDNN initialisation) are not
    extrapolated: by default after the first 3 training batches of the fit;
    ``warmup_steps`` puts it after that many optimizer steps
    (``warmup_steps * accumulate_grad_batches`` batches), ``warmup_epochs`` after
    that many epochs. Projections start once 2 more batches have been timed.

    **Projection.** Train and validation costs are measured apart (validation from
    ``on_validation_start`` to ``on_validation_end``)::

        train_rate = (train cost now - train cost at warm-up) / batches since warm-up
        val_rate   = validation cost / validation batches      (0 until one ran)
        projected  = elapsed + train_rate * remaining train batches
                             + val_rate * remaining validation batches

    with the planned batches from :class:`TrainingPlan`. It is re-projected every
    ``check_every_n_batches`` training batches.

    **Decision.** :func:`decide`: stop when the projection (or the cost spent)
    exceeds ``max_cost * (1 + margin)``, by setting ``trainer.should_stop``, which
    Lightning honours after the current batch; the validation Lightning would run
    on a stop is skipped. Under DDP rank 0 decides and broadcasts its decision,
    cost and projection, so every rank stops at the same batch. Hooks never raise
    to stop a run (a broken ``cost`` callable does raise).

    **Result.** :attr:`result` (a :class:`CallbackResult`); the cost, projection
    and decision are also logged to the trainer's loggers as ``ticktock/cost``,
    ``ticktock/projected_cost`` and ``ticktock/early_stopped``, and to
    ``logging`` (INFO when ``verbose``).

    Args:
        max_cost: The per-run budget in cost units (seconds by default); ``None``
            only measures. Settable as an attribute between fits.
        monitor: Key of the validation loss in ``trainer.callback_metrics``.
        cost: ``"time"`` or a callable ``(trainer, pl_module) -> float``.
        warmup_steps: Optimizer steps before the rate is measured (``>= 0``).
        warmup_epochs: Epochs before the rate is measured (``>= 0``); at most one of
            the two warm-ups may be given.
        margin: Relative tolerance over ``max_cost`` (``>= 0``).
        clock: Seconds, monotonic; injected for tests.
        check_every_n_batches: Re-project (and, under DDP, broadcast) every n batches.
        verbose: Log decisions at INFO rather than DEBUG.

    Raises:
        TickTockTypeError: If an argument has the wrong type.
        TickTockValueError: If an argument is out of range.

    Example:
        >>> cb = TickTockCallback(max_cost=60.0, warmup_epochs=1)
        >>> cb.max_cost = 120.0  # the driver sets it per trial
        >>> cb.max_cost, cb.result.status, cb.result.loss
        (120.0, 'completed', None)
        >>> try:
        ...     TickTockCallback(margin=-1)
        ... except ValueError as err:
        ...     print(err)
        TickTockCallback(margin=-1): margin must be a finite number >= 0
    """


_PL_CALLBACK: type | None = None


def _pl_callback_class() -> type:
    """The ``pytorch_lightning`` twin of :class:`TickTockCallback`, created on first use."""
    global _PL_CALLBACK
    if _PL_CALLBACK is None:
        import pytorch_lightning

        _PL_CALLBACK = type(
            "PLTickTockCallback",
            (_TickTockCallbackBase, pytorch_lightning.Callback),
            {
                "__module__": __name__,
                "__qualname__": "PLTickTockCallback",
                "__doc__": "TickTockCallback for ``pytorch_lightning`` Trainers "
                "(same arguments and behaviour).",
            },
        )
    return _PL_CALLBACK


def __getattr__(name: str) -> Any:
    # PLTickTockCallback is built lazily: importing pytorch_lightning costs seconds and it
    # may not be installed. Module-level __getattr__ also lets pickle find the class.
    if name == "PLTickTockCallback":
        return _pl_callback_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def lightning_namespace(obj: Any) -> ModuleType:
    """The Lightning package (``lightning.pytorch`` or ``pytorch_lightning``) ``obj`` derives from.

    Args:
        obj: A LightningModule (or Trainer, Callback, DataModule) instance or class,
            a namespace module, or its name.

    Returns:
        The package module, e.g. to build the matching ``Trainer`` from.

    Raises:
        TickTockTypeError: If ``obj`` derives from neither namespace.

    Example:
        >>> import lightning.pytorch as pl
        >>> lightning_namespace(pl.LightningModule()).__name__
        'lightning.pytorch'
        >>> lightning_namespace("pytorch_lightning").__name__
        'pytorch_lightning'
    """
    if isinstance(obj, ModuleType):
        obj = obj.__name__
    if isinstance(obj, str):
        if obj in _NAMESPACES:
            return importlib.import_module(obj)
        raise TickTockValueError(
            f"lightning_namespace(obj={obj!r}): obj must name one of {list(_NAMESPACES)}"
        )
    cls = obj if isinstance(obj, type) else type(obj)
    for klass in cls.__mro__:
        module = getattr(klass, "__module__", "") or ""
        for name in _NAMESPACES:
            if module == name or module.startswith(name + "."):
                return importlib.import_module(name)
    raise TickTockTypeError(
        f"lightning_namespace(obj={obj!r}): expected a LightningModule, Trainer or Callback "
        f"from one of {list(_NAMESPACES)}; {cls.__qualname__} derives from neither"
    )


def callback_for(namespace_or_module: Any, **kwargs: Any) -> _TickTockCallbackBase:
    """A TickTock callback of the namespace a Trainer (or LightningModule) belongs to.

    Args:
        namespace_or_module: Anything :func:`lightning_namespace` accepts.
        **kwargs: :class:`TickTockCallback`'s arguments.

    Returns:
        A :class:`TickTockCallback` for ``lightning.pytorch``, a ``PLTickTockCallback``
        for ``pytorch_lightning``.

    Example:
        >>> import lightning.pytorch as pl
        >>> type(callback_for(pl.LightningModule(), max_cost=10.0)).__name__
        'TickTockCallback'
    """
    namespace = lightning_namespace(namespace_or_module)
    if namespace.__name__ == "pytorch_lightning":
        return _pl_callback_class()(**kwargs)
    return TickTockCallback(**kwargs)
