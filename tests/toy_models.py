"""Tiny LightningModules for driver tests (module-level: importable by worker processes)."""

from __future__ import annotations

import time

import lightning.pytorch as lp
import torch
from torch.utils.data import DataLoader, TensorDataset


def _data(n: int = 64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 0.0]) + 0.1 * torch.randn(n, generator=g)
    return TensorDataset(x, y.unsqueeze(-1))


class _ToyMixin:
    def _setup(self, params):
        self.params = dict(params)
        self.layer = torch.nn.Linear(4, 1)

    def forward(self, x):
        return self.layer(x)

    def training_step(self, batch, batch_idx):
        if self.params.get("crash"):
            raise RuntimeError("boom: this configuration crashes")
        delay = float(self.params.get("delay", 0.0))
        if delay:
            time.sleep(delay)  # makes cost grow with the params, deterministically
        x, y = batch
        return torch.nn.functional.mse_loss(self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self(x), y)
        if self.params.get("nan"):
            loss = loss * float("nan")
        self.log("val_loss", loss)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=float(self.params.get("lr", 0.1)))

    def train_dataloader(self):
        return DataLoader(_data(64, 0), batch_size=8)

    def val_dataloader(self):
        return DataLoader(_data(32, 1), batch_size=16)


class ToyModule(_ToyMixin, lp.LightningModule):
    def __init__(self, params):
        super().__init__()
        self._setup(params)


def make_model(params):
    return ToyModule(params)


def make_pl_model(params):
    import pytorch_lightning as pl

    class PLToyModule(_ToyMixin, pl.LightningModule):
        def __init__(self, params):
            super().__init__()
            self._setup(params)

    return PLToyModule(params)


def trainer_fn(params):
    return {"max_epochs": int(params["epochs"]), "accelerator": "cpu", "devices": 1}
