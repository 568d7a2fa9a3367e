"""A 2-process CPU DDP fit stopped by projected cost; run by tests/test_callback.py.

Usage: ``python tests/_ddp_script.py OUT_DIR``. Lightning's DDP launcher re-runs this
script once per extra rank; every rank writes ``OUT_DIR/rank{N}.json`` with what its
callback reported, so the test can check that the ranks agree.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main(out_dir: str) -> None:
    import lightning.pytorch as pl
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from lightning_ticktock.callback import TickTockCallback

    torch.set_num_threads(1)
    pl.seed_everything(0, verbose=False)

    class Sleepy(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch, batch_idx):
            time.sleep(0.02)  # 100 batches per rank: ~2 s planned, far over the budget
            x, y = batch
            return torch.nn.functional.mse_loss(self.layer(x), y)

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y), sync_dist=True)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(800, 4, generator=g), torch.randn(800, 1, generator=g))
    callback = TickTockCallback(max_cost=0.5, verbose=False)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_epochs=1,
        limit_val_batches=2,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback],
    )
    trainer.fit(
        Sleepy(),
        DataLoader(data, batch_size=4),
        DataLoader(data, batch_size=4),
    )
    result = callback.result
    record = {
        "rank": trainer.global_rank,
        "world_size": trainer.world_size,
        "global_step": trainer.global_step,
        "epoch": trainer.current_epoch,
        "planned_batches": callback.plan.total_train_batches if callback.plan else None,
        **result.to_dict(),
    }
    Path(out_dir, f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main(sys.argv[1])
