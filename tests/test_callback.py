"""Tests of lightning_ticktock.callback: plan and projection math, the decision, the hooks
on a fake trainer with a fake clock, and one real tiny fit per behaviour (both Lightning
namespaces, and a 2-process CPU DDP fit in a subprocess)."""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import lightning.pytorch as lp
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from lightning_ticktock.callback import (
    CallbackResult,
    TickTockCallback,
    TrainingPlan,
    callback_for,
    decide,
    lightning_namespace,
    project_cost,
)
from lightning_ticktock.errors import TickTockTypeError, TickTockValueError


@pytest.fixture(autouse=True)
def _two_timed_batches(monkeypatch):
    """These tests were written against a 2-batch timing window, which keeps their
    hand-computed expectations short; the shipped default is checked separately."""
    import lightning_ticktock.callback as callback_module

    monkeypatch.setattr(callback_module, "_MIN_TIMED_BATCHES", 2)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# --------------------------------------------------------------------------------------
# A fake trainer and clock: drive the hooks the way Lightning's loops call them
# --------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class FakeLogger:
    def __init__(self) -> None:
        self.calls: list[tuple[dict, int]] = []

    def log_metrics(self, metrics: dict, step: int) -> None:
        self.calls.append((dict(metrics), step))


class FakeStrategy:
    """Identity broadcast; ``rank0`` overrides the payload the way rank 0's value would."""

    def __init__(self) -> None:
        self.calls: list = []
        self.rank0: dict | None = None

    def broadcast(self, obj, src=0):
        self.calls.append(obj)
        if self.rank0 is not None and isinstance(obj, dict) and "stop" in obj:
            return dict(self.rank0)
        return obj


def fake_trainer(**overrides) -> SimpleNamespace:
    trainer = SimpleNamespace(
        num_training_batches=10,
        max_epochs=3,
        max_steps=-1,
        accumulate_grad_batches=1,
        check_val_every_n_epoch=1,
        val_check_interval=1.0,
        _val_check_time_interval=None,
        num_val_batches=[4],
        limit_val_batches=1.0,
        enable_validation=True,
        should_stop=False,
        strategy=FakeStrategy(),
        is_global_zero=True,
        loggers=[FakeLogger()],
        current_epoch=0,
        global_step=0,
        callback_metrics={},
        fit_loop=SimpleNamespace(
            _can_stop_early=True, epoch_loop=SimpleNamespace(_skip_next_val=False)
        ),
    )
    for key, value in overrides.items():
        setattr(trainer, key, value)
    return trainer


def drive(cb, trainer, clock, *, train_dt=0.1, val_dt=0.05, losses=None, on_batch=None):
    """Run a fit's hooks: train batches of ``train_dt`` seconds (or ``train_dt(batch)``) and,
    on Lightning's schedule for these simple plans, validations of ``val_dt`` per batch."""
    plan = TrainingPlan.from_trainer(trainer)
    cb.on_fit_start(trainer, None)
    cb.on_train_start(trainer, None)
    total, per_epoch = plan.total_train_batches, plan.train_batches_per_epoch
    every = plan.val_check_batch
    batch = 0
    while batch < total and not trainer.should_stop:
        epoch, idx = divmod(batch, per_epoch)
        trainer.current_epoch = epoch
        batch += 1
        clock.t += train_dt(batch) if callable(train_dt) else train_dt
        trainer.global_step = batch // trainer.accumulate_grad_batches
        cb.on_train_batch_end(trainer, None, None, None, idx)
        if on_batch is not None:
            on_batch(batch)
        if trainer.should_stop:
            break
        epoch_ok = plan.val_batches and (epoch + 1) % (plan.check_val_every_n_epoch or 1) == 0
        if epoch_ok and ((idx + 1) % every == 0 if math.isfinite(every) else idx + 1 == per_epoch):
            cb.on_validation_start(trainer, None)
            for _ in range(int(plan.val_batches)):
                clock.t += val_dt
                cb.on_validation_batch_end(trainer, None, None, None, 0)
            if losses is not None:
                trainer.callback_metrics = {"val_loss": torch.tensor(losses.pop(0))}
            cb.on_validation_end(trainer, None)
        if idx + 1 == per_epoch:
            cb.on_train_epoch_end(trainer, None)
    cb.on_train_end(trainer, None)
    return batch


# --------------------------------------------------------------------------------------
# TrainingPlan: the planned work, by hand
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "train", "validations"),
    [
        (dict(max_epochs=3), 30, 3),
        # check_val_every_n_epoch: validate in epochs 2 and 4 only
        (dict(max_epochs=5, check_val_every_n_epoch=2), 50, 2),
        # float val_check_interval: every int(10 * 0.25) = 2 batches, 5 per epoch
        (dict(max_epochs=2, val_check_interval=0.25), 20, 10),
        # int val_check_interval: batches 3, 6, 9 of each epoch (not the 10th)
        (dict(max_epochs=2, val_check_interval=3), 20, 6),
        # int val_check_interval across epochs (check_val_every_n_epoch=None)
        (dict(max_epochs=3, val_check_interval=7, check_val_every_n_epoch=None), 30, 4),
        # max_steps wins over max_epochs; a partial epoch never reaches its end-of-epoch val
        (dict(max_epochs=5, max_steps=25), 25, 2),
        (dict(max_epochs=None, max_steps=25, val_check_interval=0.5), 25, 5),
        # accumulate_grad_batches: ceil(10 / 4) = 3 steps per epoch, 7 steps = 2 epochs + 4
        (dict(max_steps=7, accumulate_grad_batches=4), 24, 2),
        (dict(max_epochs=2, accumulate_grad_batches=4), 20, 2),
        # validation off
        (dict(max_epochs=2, val_batches=0), 20, 0),
        # unbounded
        (dict(max_epochs=-1), math.inf, math.inf),
        (dict(train_batches_per_epoch=math.inf, max_steps=12, val_check_interval=5), 12, 2),
        (dict(train_batches_per_epoch=0, max_epochs=3), 0, 0),
    ],
)
def test_plan_counts(kwargs, train, validations):
    kwargs = {"train_batches_per_epoch": 10, "val_batches": 4, **kwargs}
    plan = TrainingPlan(**kwargs)
    assert plan.total_train_batches == train
    assert plan.num_validations() == validations
    assert plan.total_val_batches() == (validations * 4 if validations else 0)


def test_plan_time_based_validation():
    plan = TrainingPlan(
        train_batches_per_epoch=10, max_epochs=2, val_check_seconds=0.5, val_batches=3
    )
    assert plan.val_check_batch is None
    assert plan.num_validations() == 0  # unknown without a projected train time
    assert plan.num_validations(train_elapsed=2.2) == 4
    # 10 s spent, 10 of 20 batches at 1 s: 10 more s of training, 40 validations of 3
    # batches at 0.1 s each
    projected = project_cost(
        plan,
        elapsed=10.0,
        train_rate=1.0,
        train_batches_done=10,
        val_rate=0.1,
        val_batches_done=0,
        train_elapsed=10.0,
    )
    assert projected == pytest.approx(10.0 + 10.0 + 40 * 3 * 0.1)


def test_plan_from_fake_trainer():
    trainer = fake_trainer(num_val_batches=[3, 2], max_steps=12, accumulate_grad_batches=2)
    plan = TrainingPlan.from_trainer(trainer)
    assert plan.val_batches == 5 and plan.total_train_batches == 24
    # not set up yet: an int limit gives the size, a float limit leaves it unknown
    assert (
        TrainingPlan.from_trainer(fake_trainer(num_val_batches=[], limit_val_batches=6)).val_batches
        == 6
    )
    assert TrainingPlan.from_trainer(fake_trainer(num_val_batches=[])).val_batches == 0
    assert TrainingPlan.from_trainer(fake_trainer(enable_validation=False)).val_batches == 0


def test_project_cost_formula():
    plan = TrainingPlan(train_batches_per_epoch=20, max_epochs=2, val_batches=5)
    # 40 train, 10 val batches; 15 train and 5 val done
    got = project_cost(
        plan, elapsed=3.0, train_rate=0.2, train_batches_done=15, val_rate=0.1, val_batches_done=5
    )
    assert got == pytest.approx(3.0 + 25 * 0.2 + 5 * 0.1)
    # nothing remains: the projection is what was spent
    assert (
        project_cost(
            plan,
            elapsed=9.0,
            train_rate=0.2,
            train_batches_done=40,
            val_rate=0.1,
            val_batches_done=10,
        )
        == 9.0
    )
    assert (
        project_cost(
            TrainingPlan(train_batches_per_epoch=20, max_epochs=-1),
            elapsed=1.0,
            train_rate=0.1,
            train_batches_done=1,
        )
        == math.inf
    )


# --------------------------------------------------------------------------------------
# decide
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "stop", "reason"),
    [
        ((1.0, 100.0, None, 0.05, True), False, "no budget"),
        ((1.0, 100.0, 10.0, 0.05, False), False, "warming up"),
        ((1.0, None, 10.0, 0.05, True), False, "no projection"),
        ((1.0, 10.4, 10.0, 0.05, True), False, "within"),
        ((1.0, 10.6, 10.0, 0.05, True), True, r"projected cost 10.6 exceeds max_cost 10 "),
        ((1.0, 10.6, 10.0, 0.1, True), False, "within"),
        ((1.0, 10.01, 10.0, 0.0, True), True, "exceeds"),
        # spent cost over the budget stops even during the warm-up
        ((11.0, None, 10.0, 0.05, False), True, r"elapsed cost 11 exceeds"),
    ],
)
def test_decide(args, stop, reason):
    got_stop, got_reason = decide(*args)
    assert got_stop is stop
    assert re.search(reason, got_reason)


# --------------------------------------------------------------------------------------
# Argument validation
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(max_cost=0), TickTockValueError, r"max_cost=0\): max_cost must be a positive"),
        (dict(max_cost=-3.0), TickTockValueError, r"max_cost=-3.0"),
        (dict(max_cost=math.inf), TickTockValueError, r"max_cost=inf"),
        (dict(max_cost="10"), TickTockTypeError, r"max_cost='10'.*positive finite number"),
        (dict(max_cost=True), TickTockTypeError, r"max_cost=True"),
        (dict(monitor=""), TickTockTypeError, r"monitor=''.*non-empty"),
        (dict(cost="flops"), TickTockValueError, r"cost='flops'.*\['time'\]"),
        (dict(cost=3), TickTockTypeError, r"cost=3.*callable"),
        (dict(warmup_steps=-1), TickTockValueError, r"warmup_steps=-1.*int >= 0"),
        (dict(warmup_steps=2.5), TickTockTypeError, r"warmup_steps=2.5"),
        (dict(warmup_epochs=-2), TickTockValueError, r"warmup_epochs=-2"),
        (dict(warmup_steps=1, warmup_epochs=1), TickTockValueError, r"at most one"),
        (dict(margin=-0.1), TickTockValueError, r"margin=-0.1.*>= 0"),
        (dict(margin=math.nan), TickTockValueError, r"margin=nan"),
        (dict(margin="x"), TickTockTypeError, r"margin='x'"),
        (dict(clock=1.0), TickTockTypeError, r"clock=1.0.*callable"),
        (dict(check_every_n_batches=0), TickTockValueError, r"check_every_n_batches=0.*>= 1"),
        (dict(verbose=1), TickTockTypeError, r"verbose=1.*bool"),
    ],
)
def test_argument_validation(kwargs, error, match):
    with pytest.raises(error, match=match):
        TickTockCallback(**kwargs)


def test_max_cost_is_a_validated_attribute():
    cb = TickTockCallback()
    assert cb.max_cost is None
    cb.max_cost = 12
    assert cb.max_cost == 12.0 and isinstance(cb.max_cost, float)
    with pytest.raises(ValueError, match=r"max_cost=-1"):
        cb.max_cost = -1
    cb.max_cost = None
    assert cb.max_cost is None


# --------------------------------------------------------------------------------------
# The hooks on a fake trainer with a fake clock
# --------------------------------------------------------------------------------------


def test_projection_exact_with_fake_clock():
    clock = FakeClock()
    cb = TickTockCallback(max_cost=None, warmup_steps=0, clock=clock)
    trainer = fake_trainer()  # 3 epochs x 10 batches, 4 val batches per epoch
    seen = {}
    drive(
        cb,
        trainer,
        clock,
        train_dt=0.1,
        val_dt=0.05,
        on_batch=lambda b: seen.setdefault(b, cb.projected_cost),
    )
    true_cost = 30 * 0.1 + 12 * 0.05
    assert seen[1] is None  # one timed batch is not enough
    assert seen[2] == pytest.approx(30 * 0.1)  # no validation measured: train only
    assert seen[12] == pytest.approx(true_cost)  # after the first validation: exact
    assert cb.elapsed == pytest.approx(true_cost)
    result = cb.result
    assert result.status == "completed" and result.cost == pytest.approx(true_cost)
    assert [m["step"] for m in result.metrics] == [10, 20, 30]


def test_warmup_excludes_startup_cost():
    clock = FakeClock()
    cb = TickTockCallback(max_cost=None, clock=clock)  # default warm-up: 3 batches
    trainer = fake_trainer(num_val_batches=[0], enable_validation=False)
    seen = {}
    # the first batch pays 5 s of data-loader spin-up; later ones 0.1 s
    drive(
        cb,
        trainer,
        clock,
        train_dt=lambda b: 5.0 if b == 1 else 0.1,
        on_batch=lambda b: seen.setdefault(b, cb.projected_cost),
    )
    assert seen[4] is None  # 3 warm-up + 1 timed batch
    # the spin-up is counted once, as spent, and never extrapolated
    assert seen[5] == pytest.approx(5.0 + 29 * 0.1)
    assert cb.result.loss is None and cb.result.status == "completed"
    assert "without any validation" in cb.result.reason


def test_warmup_steps_count_optimizer_steps():
    clock = FakeClock()
    cb = TickTockCallback(warmup_steps=2, clock=clock)
    trainer = fake_trainer(accumulate_grad_batches=3, max_epochs=1)
    warmed = {}
    drive(cb, trainer, clock, on_batch=lambda b: warmed.setdefault(b, cb.warmed_up))
    # 2 steps = 6 batches of warm-up, then 2 timed batches
    assert [b for b, w in warmed.items() if w][0] == 8


def test_warmup_epochs():
    clock = FakeClock()
    cb = TickTockCallback(warmup_epochs=1, clock=clock)
    trainer = fake_trainer()
    seen = {}
    # epoch 1 is slow (0.3 s/batch, a cold cache), later epochs 0.1 s/batch
    drive(
        cb,
        trainer,
        clock,
        train_dt=lambda b: 0.3 if b <= 10 else 0.1,
        val_dt=0.05,
        on_batch=lambda b: seen.setdefault(b, cb.projected_cost),
    )
    assert all(seen[b] is None for b in range(1, 12))
    # epoch 2's first 2 batches timed: spent 3 + 0.2 (train) + 0.2 (val), then 18 train
    # batches at 0.1 and 8 val batches at 0.05
    assert seen[12] == pytest.approx(3.4 + 18 * 0.1 + 8 * 0.05)


def test_stop_on_projection_fake():
    clock = FakeClock()
    cb = TickTockCallback(max_cost=2.0, warmup_steps=0, clock=clock)
    trainer = fake_trainer()  # ~3.6 s planned
    done = drive(cb, trainer, clock)
    assert done == 2 and trainer.should_stop  # stopped as soon as it could project
    assert trainer.fit_loop.epoch_loop._skip_next_val  # no wasted validation on stop
    result = cb.result
    assert result.status == "early_stopped" and result.loss is None
    assert result.projected_cost == pytest.approx(3.0)  # no validation measured yet
    assert result.cost == result.projected_cost
    assert result.elapsed == pytest.approx(0.2)
    assert "projected cost 3 exceeds max_cost 2" in result.reason
    logged = trainer.loggers[0].calls
    assert logged[-1][0]["ticktock/early_stopped"] == 1.0
    assert {"ticktock/cost", "ticktock/projected_cost"} <= set(logged[-1][0])


def test_no_skip_when_min_epochs_not_met():
    clock = FakeClock()
    cb = TickTockCallback(max_cost=1.0, warmup_steps=0, clock=clock)
    trainer = fake_trainer()
    trainer.fit_loop._can_stop_early = False
    cb.on_fit_start(trainer, None)
    cb.on_train_start(trainer, None)
    for _ in range(3):
        clock.t += 0.5
        cb.on_train_batch_end(trainer, None, None, None, 0)
    assert cb.stopped and trainer.should_stop
    assert not trainer.fit_loop.epoch_loop._skip_next_val


def test_within_budget_never_stops_and_logs(caplog):
    clock = FakeClock()
    cb = TickTockCallback(max_cost=10.0, clock=clock)
    trainer = fake_trainer()
    with caplog.at_level(logging.INFO, logger="lightning_ticktock.callback"):
        drive(cb, trainer, clock, losses=[0.9, 0.5, 0.3])
    result = cb.result
    assert isinstance(result, CallbackResult)
    assert result.status == "completed" and result.loss == pytest.approx(0.3)
    assert [m["val_loss"] for m in result.metrics] == pytest.approx([0.9, 0.5, 0.3])
    assert set(result.metrics[0]) == {"epoch", "step", "val_loss", "elapsed"}
    assert result.cost == result.elapsed == pytest.approx(3.6)
    assert "within" in result.reason
    final = trainer.loggers[0].calls[-1][0]
    assert final["ticktock/early_stopped"] == 0.0 and final["ticktock/cost"] == pytest.approx(3.6)
    assert any("run completed" in r.getMessage() for r in caplog.records)
    json.dumps(result.to_dict())


def test_user_cost_function():
    trainer = fake_trainer(max_epochs=1)
    cb = TickTockCallback(max_cost=6.0, warmup_steps=0, cost=lambda t, m: 1.0 * t.global_step)
    drive(cb, trainer, FakeClock())  # 10 batches planned at 1 unit each
    assert cb.stopped and cb.result.projected_cost == pytest.approx(10.0)
    assert cb.result.elapsed == pytest.approx(2.0)

    bad = TickTockCallback(cost=lambda t, m: "lots")
    with pytest.raises(TickTockTypeError, match="returned 'lots'"):
        bad.on_train_start(fake_trainer(), None)
    with pytest.raises(TickTockValueError, match="returned nan"):
        TickTockCallback(cost=lambda t, m: math.nan).on_train_start(fake_trainer(), None)


def test_missing_monitor_gives_no_loss(caplog):
    clock = FakeClock()
    cb = TickTockCallback(monitor="val_acc", clock=clock)
    trainer = fake_trainer(max_epochs=1)
    with caplog.at_level(logging.WARNING, logger="lightning_ticktock.callback"):
        drive(cb, trainer, clock, losses=[0.5])
    assert cb.result.loss is None and cb.result.metrics[0]["val_loss"] is None
    assert any("val_acc" in r.getMessage() and "val_loss" in r.getMessage() for r in caplog.records)


def test_rank0_decides():
    """A non-zero rank adopts rank 0's decision, cost and projection from the broadcast."""
    clock = FakeClock()
    cb = TickTockCallback(max_cost=None, warmup_steps=0, clock=clock)  # would never stop
    trainer = fake_trainer(is_global_zero=False)
    trainer.strategy.rank0 = {
        "stop": True,
        "reason": "rank 0 says so",
        "elapsed": 7.0,
        "projected": 99.0,
    }
    done = drive(cb, trainer, clock)
    assert done == 1 and trainer.should_stop
    assert cb.result.status == "early_stopped" and cb.result.cost == 99.0
    assert cb.result.reason == "rank 0 says so"
    assert trainer.loggers[0].calls == []  # only rank 0 logs


def test_check_every_n_batches():
    clock = FakeClock()
    cb = TickTockCallback(max_cost=None, check_every_n_batches=4, clock=clock)
    trainer = fake_trainer(max_epochs=1, enable_validation=False, num_val_batches=[0])
    drive(cb, trainer, clock)
    decisions = [c for c in trainer.strategy.calls if isinstance(c, dict) and "stop" in c]
    assert len(decisions) == 2  # at batches 4 and 8


def test_exception_freezes_the_measurement():
    clock = FakeClock()
    cb = TickTockCallback(max_cost=10.0, clock=clock)
    trainer = fake_trainer()
    cb.on_fit_start(trainer, None)
    cb.on_train_start(trainer, None)
    clock.t += 0.5
    cb.on_train_batch_end(trainer, None, None, None, 0)
    clock.t += 0.25
    cb.on_exception(trainer, None, RuntimeError("boom"))
    clock.t += 100.0
    cb.on_train_batch_end(trainer, None, None, None, 1)  # ignored: not running
    assert cb.result.elapsed == pytest.approx(0.75) and cb.result.status == "completed"
    assert not trainer.should_stop


def test_state_dict_round_trip():
    clock = FakeClock()
    cb = TickTockCallback(max_cost=2.5, warmup_steps=0, clock=clock)
    drive(cb, fake_trainer(), clock, losses=[0.7, 0.4, 0.2])
    state = cb.state_dict()
    json.dumps(state)
    assert state["elapsed"] == pytest.approx(cb.elapsed) and state["stopped"]

    other = TickTockCallback(clock=clock)
    other.load_state_dict(state)
    assert other.state_dict() == state
    assert other.result == cb.result

    # a resumed fit keeps the loaded state (on_fit_start does not reset it) and time
    # keeps counting from the restored elapsed
    trainer = fake_trainer()
    other.on_fit_start(trainer, None)
    other.on_train_start(trainer, None)
    clock.t += 1.0
    other.on_train_batch_end(trainer, None, None, None, 0)
    assert other.elapsed == pytest.approx(state["elapsed"] + 1.0)
    assert other.state_key == cb.state_key == "TickTockCallback{'monitor': 'val_loss'}"


def test_reused_callback_starts_each_fit_from_zero():
    clock = FakeClock()
    cb = TickTockCallback(max_cost=1.0, warmup_steps=0, clock=clock)
    drive(cb, fake_trainer(), clock)
    assert cb.stopped
    cb.max_cost = 100.0
    drive(cb, fake_trainer(), clock, losses=[0.3, 0.2, 0.1])
    assert not cb.stopped and cb.result.status == "completed"
    assert cb.result.elapsed == pytest.approx(3.6) and len(cb.result.metrics) == 3


# --------------------------------------------------------------------------------------
# Namespaces
# --------------------------------------------------------------------------------------


def test_lightning_namespace():
    import pytorch_lightning as pl_classic

    assert lightning_namespace(lp.LightningModule()) is lp
    assert lightning_namespace(_module_class(pl_classic)) is pl_classic
    assert lightning_namespace(pl_classic.Trainer) is pl_classic
    assert lightning_namespace("lightning.pytorch") is lp
    assert lightning_namespace(pl_classic) is pl_classic
    with pytest.raises(TickTockTypeError, match=r"derives from neither"):
        lightning_namespace(torch.nn.Linear(1, 1))
    with pytest.raises(TickTockValueError, match=r"obj='lightning'.*pytorch_lightning"):
        lightning_namespace("lightning")


def test_callback_for_both_namespaces():
    import pytorch_lightning as pl_classic

    from lightning_ticktock import callback as module

    cb = callback_for(pl_classic, max_cost=3.0)
    assert isinstance(cb, pl_classic.Callback) and not isinstance(cb, lp.Callback)
    assert type(cb) is module.PLTickTockCallback and cb.max_cost == 3.0
    assert isinstance(callback_for(lp.LightningModule()), TickTockCallback)
    # picklable (ddp_spawn pickles callbacks), found again through the module
    assert type(pickle.loads(pickle.dumps(cb))) is module.PLTickTockCallback
    with pytest.raises(AttributeError):
        module.NoSuchName  # noqa: B018


# --------------------------------------------------------------------------------------
# Real tiny fits
# --------------------------------------------------------------------------------------


def _module_class(ns):
    class Tiny(ns.LightningModule):
        def __init__(self, train_sleep: float = 0.0, val_sleep: float = 0.0, n: int = 64):
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)
            self.train_sleep, self.val_sleep, self.n = train_sleep, val_sleep, n

        def _data(self):
            g = torch.Generator().manual_seed(0)
            return TensorDataset(
                torch.randn(self.n, 4, generator=g), torch.randn(self.n, 1, generator=g)
            )

        def training_step(self, batch, batch_idx):
            if self.train_sleep:
                time.sleep(self.train_sleep)
            x, y = batch
            return torch.nn.functional.mse_loss(self.layer(x), y)

        def validation_step(self, batch, batch_idx):
            if self.val_sleep:
                time.sleep(self.val_sleep)
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

        def train_dataloader(self):
            return DataLoader(self._data(), batch_size=4)

        def val_dataloader(self):
            return DataLoader(self._data(), batch_size=8)

    return Tiny


def _fit(ns, module, callbacks, **trainer_kwargs):
    torch.set_num_threads(1)
    ns.seed_everything(0, verbose=False)
    kwargs = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer = ns.Trainer(callbacks=callbacks, **{**kwargs, **trainer_kwargs})
    trainer.fit(module)
    return trainer


def _namespaces():
    import pytorch_lightning as pl_classic

    return [lp, pl_classic]


@pytest.mark.parametrize(
    "trainer_kwargs",
    [
        dict(max_epochs=3, limit_train_batches=5, check_val_every_n_epoch=2),
        dict(max_epochs=2, limit_train_batches=6, val_check_interval=0.5, limit_val_batches=2),
        dict(max_epochs=2, limit_train_batches=7, val_check_interval=3, limit_val_batches=1),
        dict(max_steps=7, accumulate_grad_batches=2, limit_train_batches=5, limit_val_batches=2),
        dict(
            max_steps=10,
            limit_train_batches=3,
            val_check_interval=4,
            check_val_every_n_epoch=None,
            limit_val_batches=1,
        ),
        dict(max_epochs=1, limit_train_batches=0.5, limit_val_batches=0.25, num_sanity_val_steps=0),
        dict(
            max_steps=9,
            limit_train_batches=4,
            val_check_interval=0.5,
            check_val_every_n_epoch=2,
            limit_val_batches=1,
        ),
        dict(
            max_epochs=2,
            limit_train_batches=5,
            accumulate_grad_batches=3,
            val_check_interval=2,
            limit_val_batches=1,
        ),
    ],
    ids=[
        "every_2_epochs",
        "float_interval",
        "int_interval",
        "max_steps_accumulate",
        "interval_across_epochs",
        "float_limits_no_sanity",
        "max_steps_partial_epoch",
        "accumulate_epochs",
    ],
)
def test_plan_matches_lightning(trainer_kwargs):
    """The planned batches equal what Lightning actually runs, config by config."""
    cb = TickTockCallback(warmup_steps=0)
    _fit(lp, _module_class(lp)(), [cb], **trainer_kwargs)
    plan = cb.plan
    assert plan is not None
    assert plan.total_train_batches == cb._train_batches
    assert plan.total_val_batches() == cb._val_batches
    assert plan.num_validations() == len(cb.result.metrics)
    assert cb.result.status == "completed" and cb.result.loss is not None


@pytest.mark.parametrize("ns", _namespaces(), ids=lambda ns: ns.__name__)
def test_fit_stopped_mid_epoch_by_projection(ns):
    # 200 batches of >= 10 ms: >= 2 s planned against a 0.5 s budget
    cb = callback_for(ns, max_cost=0.5, verbose=False)
    module = _module_class(ns)(train_sleep=0.01, n=800)
    trainer = _fit(ns, module, [cb], max_epochs=1, limit_val_batches=2)
    result = cb.result
    assert result.status == "early_stopped" and result.loss is None
    # cut short mid-epoch, at the first projection: 3 warm-up batches + 2 timed ones
    assert trainer.global_step == 5
    assert result.projected_cost > 1.0 and result.cost == result.projected_cost
    assert result.elapsed < 0.5
    assert result.metrics == []  # the validation Lightning runs on a stop was skipped
    assert cb.plan.total_train_batches == 200


def _probe_class(ns):
    class Probe(ns.Callback):
        """Reads the TickTock callback's projection at one step (it runs after it)."""

        def __init__(self, cb, at: int) -> None:
            self.cb, self.at, self.seen = cb, at, None

        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == self.at:
                self.seen = self.cb.projected_cost

    return Probe


@pytest.mark.parametrize("ns", _namespaces(), ids=lambda ns: ns.__name__)
def test_fit_completes_under_budget(ns):
    cb = callback_for(ns, max_cost=60.0)
    probe = _probe_class(ns)(cb, at=10)  # in epoch 2, after the first validation
    module = _module_class(ns)(train_sleep=0.01, val_sleep=0.01)
    _fit(ns, module, [cb, probe], max_epochs=2, limit_train_batches=8, limit_val_batches=2)
    result = cb.result
    assert result.status == "completed"
    assert len(result.metrics) == 2 and result.loss == result.metrics[-1]["val_loss"]
    assert result.cost == result.elapsed > 16 * 0.01 + 4 * 0.01
    # generous: the early projection lands within 40% of what the run really cost
    assert probe.seen == pytest.approx(result.elapsed, rel=0.4)


def test_fit_without_validation_reports_no_loss():
    cb = TickTockCallback(max_cost=60.0)
    _fit(lp, _module_class(lp)(), [cb], max_epochs=1, limit_train_batches=6, limit_val_batches=0)
    assert cb.result.status == "completed" and cb.result.loss is None
    assert cb.result.metrics == [] and "without any validation" in cb.result.reason


def test_state_in_checkpoint(tmp_path):
    cb = TickTockCallback(max_cost=60.0)
    trainer = _fit(
        lp, _module_class(lp)(), [cb], max_epochs=1, limit_train_batches=6, limit_val_batches=1
    )
    path = tmp_path / "last.ckpt"
    trainer.save_checkpoint(path)
    state = torch.load(path, weights_only=False)["callbacks"][cb.state_key]
    assert state == cb.state_dict() and len(state["metrics"]) == 1


# --------------------------------------------------------------------------------------
# DDP: 2 CPU processes, gloo, launched as a subprocess so pytest is not forked
# --------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_ranks_stop_together(tmp_path):
    script = Path(__file__).with_name("_ddp_script.py")
    env = {
        **os.environ,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(Path(__file__).parents[1]),
    }
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    for r in ranks:
        assert r["status"] == "early_stopped" and r["loss"] is None
        assert r["global_step"] < r["planned_batches"] == 100
    keys = ["global_step", "status", "reason", "cost", "elapsed", "projected_cost", "metrics"]
    assert {k: ranks[0][k] for k in keys} == {k: ranks[1][k] for k in keys}


def test_default_timing_window_is_ten_batches(monkeypatch):
    import lightning_ticktock.callback as callback_module

    monkeypatch.undo()  # the shipped default, not the 2-batch window of the tests above
    assert callback_module._MIN_TIMED_BATCHES == 10
    clock = FakeClock()
    trainer = fake_trainer()
    cb = TickTockCallback(max_cost=None, warmup_steps=0, clock=clock)
    cb.on_train_start(trainer, None)
    for i in range(12):
        clock.t += 0.1
        cb.on_train_batch_end(trainer, None, None, None, i)
        assert (cb.projected_cost is not None) == (i + 1 >= 10)


def test_sanity_check_rate_projects_validation_before_the_first_one():
    clock = FakeClock()
    cb = TickTockCallback(max_cost=None, warmup_steps=0, clock=clock)
    trainer = fake_trainer()  # 3 epochs x 10 batches, 4 val batches per epoch
    cb.on_fit_start(trainer, None)
    trainer.sanity_checking = True
    cb.on_sanity_check_start(trainer, None)
    for _ in range(2):
        clock.t += 0.05
        cb.on_validation_batch_end(trainer, None, None, None, 0)
    cb.on_sanity_check_end(trainer, None)
    trainer.sanity_checking = False
    seen = {}
    cb._reset = lambda: None  # drive() calls on_fit_start again; keep the sanity timing
    drive(cb, trainer, clock, train_dt=0.1, val_dt=0.05,
          on_batch=lambda b: seen.setdefault(b, cb.projected_cost))
    # At batch 2 no real validation has run; the sanity check's 0.05 s per batch stands in.
    assert seen[2] == pytest.approx(30 * 0.1 + 12 * 0.05)
    assert cb.elapsed == pytest.approx(30 * 0.1 + 12 * 0.05)  # the sanity check is not cost
