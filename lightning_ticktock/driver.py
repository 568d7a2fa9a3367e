"""TickTockDriver: the study loop around a LightningModule.

Each trial: ask the optimizer (with the running trials pending), build a Trainer
with :class:`~lightning_ticktock.callback.TickTockCallback` plus the user's
callbacks and loggers, fit, tell the outcome. As in Optuna's ``_run_trial``,
every exception of a trial maps to a status (``failed`` with its text) and the
study goes on; Ctrl-C marks the running trials ``interrupted`` and stops.

The study lives in a storage (an SQLite file by default): every ask happens in
one storage transaction (load the trials, rebuild the optimizer from them, ask,
insert), so a rerun of the same command resumes, and several driver processes
may share one study file.

Example:
    >>> from lightning_ticktock import TickTockDriver, Float
    >>> driver = TickTockDriver(model_fn=lambda p: None, space=[Float("lr", 1e-3, 1.0)],
    ...                         max_cost=5.0, seed=0, quiet=True)
    >>> driver.enqueue({"lr": 0.01})
    True
    >>> driver.study.trials
    []
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import os
import pickle
import signal
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from .errors import StorageError, TickTockTypeError, TickTockValueError
from .optimizer import TickTock
from .report import format_progress, summary
from .runner import TrialOutcome, TrialSpec
from .space import Parameter, SearchSpace
from .storage import BaseStorage, InMemoryStorage, SQLiteStorage, get_storage
from .trial import Trial, TrialStatus

__all__ = ["TickTockDriver", "Study"]

_log = logging.getLogger(__name__)
_progress = logging.getLogger("lightning_ticktock.progress")

# NOTE: a running trial whose heartbeat is older than this many heartbeat
# intervals is taken as dead (its worker or driver was killed) and interrupted.
_STALE_INTERVALS = 6
# NOTE: two configurations closer than this in every encoded (unit-cube) coordinate
# are the same run for the worker-death rule of _finish: far below any distance the
# acquisition tells apart, far above float round-off.
_SAME_CONFIG_TOL = 1e-3


def _ensure_progress_handler() -> None:
    # Progress goes through logging (never print), with a plain handler of our own
    # as Optuna does, so a script shows it without configuring logging.
    if not _progress.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        _progress.addHandler(handler)
        _progress.setLevel(logging.INFO)
        _progress.propagate = False


class Study:
    """A view of a study's storage: trials, best trial, compute.

    Example:
        >>> from lightning_ticktock import Float, TickTock
        >>> from lightning_ticktock.storage import InMemoryStorage
        >>> tt = TickTock([Float("x", 0.0, 1.0)], max_cost=2.0, seed=0)
        >>> s = InMemoryStorage(); s.open_study(tt.space, {"max_cost": 2.0})
        >>> Study(s, tt).best_trial is None
        True
    """

    def __init__(self, storage: BaseStorage, optimizer: TickTock) -> None:
        self.storage = storage
        self._optimizer = optimizer

    @property
    def trials(self) -> list[Trial]:
        """Every trial, in id order."""
        return self.storage.load_trials()

    @property
    def max_cost(self) -> float:
        return self._optimizer.max_cost

    @property
    def best_trial(self) -> Trial | None:
        """As :attr:`TickTock.best_trial`."""
        self._optimizer.sync(self.storage.load_trials(), self.storage.load_queue())
        return self._optimizer.best_trial

    def summary(self) -> dict[str, Any]:
        """Counts per status, total compute, compute spent and saved by early stops."""
        return summary(self.trials, self.max_cost)

    @property
    def n_finished(self) -> int:
        return sum(t.is_finished for t in self.trials)

    @property
    def total_compute(self) -> float:
        return float(self.summary()["total_compute"])

    def __repr__(self) -> str:
        return f"Study(n_trials={len(self.trials)}, max_cost={self.max_cost})"


def _check_callable(name: str, fn: Any, allow_none: bool = True) -> None:
    if fn is None and allow_none:
        return
    if not callable(fn):
        raise TickTockTypeError(f"{name}={fn!r} must be a callable taking the params dict")


class TickTockDriver:
    """Tune a LightningModule under a per-run cost budget.

    Args:
        model_fn: ``params -> LightningModule`` (``lightning.pytorch`` or
            ``pytorch_lightning``; the Trainer and callback follow its namespace).
        space: The search space.
        max_cost: Budget per run, in units of ``cost``; settable between runs.
        datamodule_fn: ``params -> LightningDataModule``.
        datamodule: A fixed datamodule instead of ``datamodule_fn``.
        trainer_fn: ``params -> dict`` of per-trial Trainer kwargs (e.g. ``max_epochs``).
        trainer_kwargs: Fixed Trainer kwargs; ``trainer_fn``'s win on conflicts.
        cost: ``"time"`` (seconds of fit) or ``callable(trainer, pl_module) -> float``.
        storage: SQLite file path (reopening resumes), a storage object, or None
            (in memory).
        seed: Seeds the optimizer and each trial's ``seed_everything(seed + id)``.
        monitor: Validation metric to minimize.
        callbacks_fn: ``params -> list`` of extra callbacks per trial.
        logger_fn: ``(trial_id, params) -> logger``; by default a CSVLogger version
            per trial next to the study file (none for an in-memory study).
        log_dir: Where the default loggers write.
        n_initial, phase_cycle, loss_tolerance: See :class:`TickTock`.
        warmup_steps, warmup_epochs, margin: See
            :class:`~lightning_ticktock.callback.TickTockCallback`.
        n_workers: Trials run at once.
        executor: ``"inprocess"``, ``"local"`` (worker processes) or ``"ray"``;
            default: in-process for one worker, local processes otherwise.
        ray_address: Ray cluster address (``"auto"``), for ``executor="ray"``.
        resources_per_trial: Ray resources of one trial, e.g. ``{"cpu": 2, "gpu": 1}``.
        heartbeat_interval: Seconds between a running trial's heartbeats.
        quiet: No per-trial progress lines.

    Example:
        >>> from lightning_ticktock import TickTockDriver, Int
        >>> d = TickTockDriver(model_fn=lambda p: None, space=[Int("epochs", 1, 3)],
        ...                    max_cost=1.0, quiet=True)
        >>> d.max_cost = 2.0; d.max_cost
        2.0
    """

    def __init__(
        self,
        model_fn: Callable[[dict[str, Any]], Any],
        space: SearchSpace | Iterable[Parameter],
        max_cost: float,
        datamodule_fn: Callable[[dict[str, Any]], Any] | None = None,
        trainer_fn: Callable[[dict[str, Any]], Mapping[str, Any]] | None = None,
        trainer_kwargs: Mapping[str, Any] | None = None,
        cost: str | Callable[[Any, Any], float] = "time",
        storage: str | os.PathLike | BaseStorage | None = None,
        seed: int | None = None,
        *,
        datamodule: Any = None,
        monitor: str = "val_loss",
        callbacks_fn: Callable[[dict[str, Any]], list[Any]] | None = None,
        logger_fn: Callable[[int, dict[str, Any]], Any] | None = None,
        log_dir: str | os.PathLike | None = None,
        n_initial: int | None = None,
        phase_cycle: Sequence[str] = ("tock", "tick"),
        loss_tolerance: float | None = None,
        warmup_steps: int | None = None,
        warmup_epochs: int | None = None,
        margin: float | None = None,
        n_workers: int = 1,
        executor: str | None = None,
        ray_address: str | None = None,
        resources_per_trial: Mapping[str, float] | None = None,
        heartbeat_interval: float = 10.0,
        quiet: bool = False,
    ) -> None:
        _check_callable("model_fn", model_fn, allow_none=False)
        for name, fn in (("datamodule_fn", datamodule_fn), ("trainer_fn", trainer_fn),
                         ("callbacks_fn", callbacks_fn), ("logger_fn", logger_fn)):
            _check_callable(name, fn)
        if datamodule_fn is not None and datamodule is not None:
            raise TickTockValueError("give datamodule_fn= or datamodule=, not both")
        if trainer_kwargs is not None and not isinstance(trainer_kwargs, Mapping):
            raise TickTockTypeError(f"trainer_kwargs={trainer_kwargs!r} must be a dict")
        if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
            raise TickTockValueError(f"n_workers={n_workers!r} must be an integer >= 1")
        if not (isinstance(heartbeat_interval, (int, float)) and heartbeat_interval > 0):
            raise TickTockValueError(
                f"heartbeat_interval={heartbeat_interval!r} must be a number of seconds > 0"
            )
        self.optimizer = TickTock(space, max_cost=max_cost, seed=seed, n_initial=n_initial,
                                  phase_cycle=phase_cycle, loss_tolerance=loss_tolerance)
        self.space = self.optimizer.space
        self.seed = self.optimizer.seed
        self.model_fn, self.datamodule_fn, self.trainer_fn = model_fn, datamodule_fn, trainer_fn
        self.datamodule = datamodule
        self.trainer_kwargs = dict(trainer_kwargs or {})
        self.callbacks_fn, self.logger_fn = callbacks_fn, logger_fn
        self.callback_kwargs: dict[str, Any] = {"monitor": monitor, "cost": cost}
        for k, v in (("warmup_steps", warmup_steps), ("warmup_epochs", warmup_epochs),
                     ("margin", margin)):
            if v is not None:
                self.callback_kwargs[k] = v
        # Validate the callback arguments now, not in the first trial.
        from .callback import TickTockCallback

        TickTockCallback(max_cost=max_cost, **self.callback_kwargs)
        self.n_workers = n_workers
        self.executor_kind = executor
        self.executor_options = {"ray_address": ray_address,
                                 "resources_per_trial": resources_per_trial}
        if executor is not None and executor not in ("inprocess", "local", "ray"):
            raise TickTockValueError(
                f"executor={executor!r} must be one of ['inprocess', 'local', 'ray']"
            )
        kind = executor or ("local" if n_workers > 1 else "inprocess")
        if kind == "ray":
            from .executors.ray import import_ray, ray_task_options

            ray_task_options(resources_per_trial)  # validate now, not in run()
            import_ray()  # a missing extra fails here, with the pip command
        elif ray_address is not None or resources_per_trial is not None:
            raise TickTockValueError(
                f"ray_address={ray_address!r}, resources_per_trial={resources_per_trial!r}: "
                f"these are options of executor='ray', not of executor={kind!r}; pass "
                "executor='ray' (local workers get one GPU each, or cores / n_workers threads)"
            )
        if kind != "inprocess":
            self._check_picklable(kind)
        self.heartbeat_interval = float(heartbeat_interval)
        self.quiet = quiet
        self.storage = get_storage(storage)
        self.storage.open_study(self.space, {"max_cost": self.optimizer.max_cost,
                                             "seed": self.seed})
        if log_dir is None and isinstance(self.storage, SQLiteStorage):
            path = os.fspath(self.storage.path)
            log_dir = os.path.join(os.path.dirname(path), os.path.splitext(
                os.path.basename(path))[0] + "_logs")
        self.log_dir = os.fspath(log_dir) if log_dir is not None else None
        self.study_name = "ticktock"
        self.study = Study(self.storage, self.optimizer)

    # ------------------------------------------------------------------ settings
    @property
    def max_cost(self) -> float:
        """Budget per run; may be raised or lowered between runs."""
        return self.optimizer.max_cost

    @max_cost.setter
    def max_cost(self, value: float) -> None:
        self.optimizer.max_cost = value
        self.storage.set_settings(max_cost=self.optimizer.max_cost)

    def _check_picklable(self, kind: str = "local") -> None:
        """Check that what a trial needs can be sent to a worker of executor ``kind``.

        Local workers receive it through ``pickle`` (functions travel by reference:
        importable module-level functions only); Ray through ``cloudpickle``, which
        also sends lambdas and ``__main__`` functions by value.
        """
        items: list[tuple[str, Any]] = [
            (name, getattr(self, name, None))
            for name in ("model_fn", "datamodule_fn", "trainer_fn", "callbacks_fn",
                         "logger_fn", "datamodule")
        ]
        if callable(self.callback_kwargs.get("cost")):
            items.append(("cost", self.callback_kwargs["cost"]))
        if self.trainer_kwargs:
            items.append(("trainer_kwargs", self.trainer_kwargs))
        if kind == "ray":
            from ray import cloudpickle as dumper
        else:
            dumper = pickle
        main = sys.modules.get("__main__")
        interactive = main is not None and not hasattr(main, "__file__")
        how = ("model_fn, datamodule_fn and trainer_fn must be importable (module-level "
               "functions in a module or script, not lambdas or nested functions) or "
               "picklable objects")
        for name, obj in items:
            if obj is None:
                continue
            try:
                dumper.dumps(obj)
            except Exception as exc:  # noqa: BLE001 - any pickling error means the same
                raise TickTockValueError(
                    f"{name}={obj!r} cannot be sent to worker processes "
                    f"({type(exc).__name__}: {exc}). With n_workers > 1 or "
                    f"executor='local'/'ray' (here {kind!r}), {how}"
                ) from None
            if kind == "local" and interactive and getattr(obj, "__module__", None) == "__main__":
                # pickle only records "__main__.<name>"; a spawned worker has no such
                # module when __main__ is an interactive session (REPL, notebook, -c).
                raise TickTockValueError(
                    f"{name}={obj!r} is defined in an interactive session (__main__ has no "
                    f"file), so worker processes cannot import it. With n_workers > 1 or "
                    f"executor='local', {how}: move it into a .py module and import it "
                    "(or use executor='ray', which sends it by value)"
                )

    # ------------------------------------------------------------------ enqueue
    def enqueue(self, params: Mapping[str, Any]) -> bool:
        """Run ``params`` before any proposal; persisted in the storage.

        Returns:
            False (a no-op) when the same params are already enqueued or were run.
        """
        p = self.space.validate(params)
        with self.storage.transaction():
            if any(t.params == p and t.status != TrialStatus.INTERRUPTED
                   for t in self.storage.load_trials()):
                return False
            return self.storage.enqueue(p)

    # ------------------------------------------------------------------ the loop
    def run(self, n_trials: int | None = None, max_total_cost: float | None = None) -> Study:
        """Run trials until the study holds ``n_trials`` finished trials, or until its
        recorded compute reaches ``max_total_cost`` (whichever comes first).

        Finished means completed, early-stopped or failed; interrupted trials do not
        count, so rerunning the same command continues to the same total.

        Returns:
            The :class:`Study`.
        """
        if n_trials is None and max_total_cost is None:
            raise TickTockValueError("run() needs n_trials= or max_total_cost= (or both)")
        if n_trials is not None and (isinstance(n_trials, bool) or not isinstance(n_trials, int)
                                     or n_trials < 0):
            raise TickTockValueError(f"run(n_trials={n_trials!r}): must be an integer >= 0")
        if max_total_cost is not None and not (
            isinstance(max_total_cost, (int, float)) and max_total_cost > 0
        ):
            raise TickTockValueError(
                f"run(max_total_cost={max_total_cost!r}): must be a number > 0"
            )
        if not self.quiet:
            _ensure_progress_handler()
        self.storage.set_settings(max_cost=self.max_cost)
        self.storage.interrupt_dead_owner_trials()
        self.storage.fail_stale_trials(self._stale_after())

        from .executors import make_executor

        executor = make_executor(self.executor_kind, self.n_workers, **self.executor_options)
        running: dict[cf.Future[TrialOutcome], Trial] = {}
        last_check = time.monotonic()
        try:
            while True:
                waiting_on_others = False
                while len(running) < executor.n_workers:
                    trial, why = self._claim(n_trials, max_total_cost)
                    if trial is None:
                        waiting_on_others = why == "wait"
                        break
                    try:
                        fut = executor.submit(self._spec(trial))
                    except KeyboardInterrupt:
                        # In-process: the trial was running inside submit() itself.
                        running[cf.Future()] = trial
                        raise
                    running[fut] = trial
                    if not executor.needs_pickle:
                        break  # in-process: the trial already ran
                if not running:
                    if not waiting_on_others:
                        break
                    # Another driver runs the study's last trials: wait, and take over
                    # any of them whose driver dies.
                    time.sleep(min(self.heartbeat_interval, 2.0))
                    self._check_liveness(running)
                    last_check = time.monotonic()
                    continue
                done, _ = cf.wait(list(running), timeout=self.heartbeat_interval,
                                  return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    self._finish(running.pop(fut), fut, n_trials, max_total_cost)
                if time.monotonic() - last_check >= self.heartbeat_interval:
                    self._check_liveness(running)
                    last_check = time.monotonic()
        except KeyboardInterrupt:
            for trial in running.values():
                self.storage.mark_interrupted(trial.id)
                _log.warning("trial %d interrupted", trial.id)
            running.clear()
            executor.shutdown(cancel=True)
            # Lightning ignores SIGINT after a Ctrl-C; give the user their Ctrl-C back.
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise
        finally:
            for trial in running.values():  # only on an unexpected error in the loop itself
                self.storage.mark_interrupted(trial.id)
            executor.shutdown(cancel=bool(running))
        return self.study

    def _stale_after(self) -> float:
        return self.heartbeat_interval * _STALE_INTERVALS

    def _check_liveness(self, running: Mapping[cf.Future[TrialOutcome], Trial]) -> None:
        """Once per heartbeat interval, while trials run: vouch for ours, bury the dead.

        The driver beats for the trials it has submitted and not yet told (keeping
        the recorded owner, usually the worker that beats too): it holds their
        futures, which report a dead worker, and a trial may wait for a worker
        (a Ray queue, a worker still starting) longer than the grace period. Then
        any running trial of the study whose owner process on this host has exited
        (a killed worker or driver) is interrupted, and any whose heartbeat is older
        than the grace period (an owner on another host, or a hung one).
        """
        try:
            for fut, trial in list(running.items()):
                if not fut.done():
                    with self.storage.transaction():
                        owner = self.storage.get_owner(trial.id)
                        self.storage.heartbeat(trial.id, owner=owner)
            self.storage.interrupt_dead_owner_trials()
            self.storage.fail_stale_trials(self._stale_after())
        except StorageError as exc:  # a lock held too long: try again next interval
            _log.warning("liveness check of the study failed: %s", exc)

    def _claim(self, n_trials: int | None, max_total_cost: float | None
               ) -> tuple[Trial | None, str]:
        """Atomically decide whether a trial is due, ask for it and record it."""
        with self.storage.transaction():
            trials = self.storage.load_trials()
            n_finished = sum(t.is_finished for t in trials)
            n_running = sum(t.status == TrialStatus.RUNNING for t in trials)
            if n_trials is not None and n_finished + n_running >= n_trials:
                return None, ("wait" if n_finished < n_trials else "done")
            if max_total_cost is not None and (
                summary(trials, self.max_cost)["total_compute"] >= max_total_cost
            ):
                return None, "done"
            self.optimizer.sync(trials, self.storage.load_queue())
            trial = self.optimizer.ask()
            self.storage.insert_trial(trial)
            if trial.phase == "enqueued":
                self.storage.remove_from_queue(trial.params)
        return trial, "claimed"

    def _spec(self, trial: Trial) -> TrialSpec:
        return TrialSpec(
            trial_id=trial.id,
            params=dict(trial.params),
            model_fn=self.model_fn,
            max_cost=self.max_cost,
            datamodule_fn=self.datamodule_fn,
            datamodule=self.datamodule,
            trainer_fn=self.trainer_fn,
            trainer_kwargs=dict(self.trainer_kwargs),
            callback_kwargs=dict(self.callback_kwargs),
            callbacks_fn=self.callbacks_fn,
            logger_fn=self.logger_fn,
            log_dir=self.log_dir,
            study_name=self.study_name,
            storage=None if isinstance(self.storage, InMemoryStorage) else self.storage,
            heartbeat_interval=self.heartbeat_interval,
            seed=None if self.seed is None else (self.seed + trial.id) % (2**31),
        )

    def _finish(self, trial: Trial, fut: cf.Future[TrialOutcome], n_trials: int | None,
                max_total_cost: float | None) -> None:
        try:
            out = fut.result()
        except KeyboardInterrupt:
            raise
        except BrokenProcessPool as exc:
            # The worker process died (killed, out of memory). Once, it may not be the
            # configuration's fault: interrupted, to be run again. But an interrupted
            # configuration is proposed again (the optimizer learns nothing from it), so
            # one that kills its worker every time (out of memory) would loop forever:
            # the second death on the same configuration is recorded as a crash.
            earlier = self._earlier_interruptions(trial)
            if not earlier:
                self.storage.mark_interrupted(trial.id)
                _log.warning("trial %d interrupted: its worker process died (%s)",
                             trial.id, exc)
                return
            out = TrialOutcome(trial.id, "failed", error=(
                f"the worker process died while running this configuration (killed, or out "
                f"of memory), as it did in trial(s) {earlier}: recorded as failed so that it "
                f"is not proposed again ({type(exc).__name__}: {exc})"
            ))
        except BaseException as exc:  # noqa: BLE001 - a lost Ray node / worker: a crash
            out = TrialOutcome(trial.id, "failed", error=f"{type(exc).__name__}: {exc}")
        self._tell(trial, out, n_trials, max_total_cost)

    def _earlier_interruptions(self, trial: Trial) -> list[int]:
        """Ids of earlier interrupted trials of (nearly) the same configuration."""
        x = self.space.encode(trial.params)
        return [
            t.id for t in self.storage.load_trials()
            if t.id != trial.id and t.status == TrialStatus.INTERRUPTED
            and max(abs(a - b) for a, b in zip(self.space.encode(t.params), x))
            <= _SAME_CONFIG_TOL
        ]

    def _tell(self, trial: Trial, out: TrialOutcome, n_trials: int | None,
              max_total_cost: float | None) -> None:
        with self.storage.transaction():
            current = self.storage.get_trial(trial.id)
            if current.status != TrialStatus.RUNNING:
                _log.warning("trial %d finished but is already %s (a stale heartbeat?); "
                             "its result is not recorded", trial.id, current.status)
                return
            self.optimizer.sync(self.storage.load_trials(), self.storage.load_queue())
            common = {"elapsed": out.elapsed, "projected_cost": out.projected_cost,
                      "metrics": out.metrics}
            if out.status == "completed":
                told = self.optimizer.tell(trial.id, loss=out.loss, cost=out.cost, **common)
            elif out.status == "early_stopped":
                told = self.optimizer.tell(trial.id, cost=out.cost, early_stopped=True, **common)
            else:
                told = self.optimizer.tell(trial.id, cost=out.cost, failed=True,
                                           error=out.error, **common)
            self.storage.update_trial(told)
        if told.status == TrialStatus.FAILED:
            _log.warning("trial %d failed: %s", told.id,
                         told.error.splitlines()[0] if told.error else "")
        if not self.quiet:
            # The optimizer was synced from storage and told inside the transaction, so
            # its trials are the study's: no second read of the storage is needed.
            trials = self.optimizer.trials
            n_finished = sum(t.is_finished for t in trials)
            compute = summary(trials, self.max_cost)["total_compute"]
            _progress.info(format_progress(n_finished, n_trials, told, self.optimizer.best_trial,
                                           compute, compute_budget=max_total_cost))
