"""PyTorch Lightning autologging against the real library, a two-layer MLP on CPU: the module's
hyperparameters and the optimizer as params, step and epoch metrics as step series, the weights
and the checkpoint as artifacts, and a fit that raises as a failed run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import gitmlm
from gitmlm.autolog import common
from gitmlm.autolog import lightning as pl_autolog
from gitmlm.core.git import Repo
from gitmlm.tracking import logged


class Mlp(pl.LightningModule):
    def __init__(self, hidden: int = 8, lr: float = 0.05, dropout: float | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.explode_at: int | None = None

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], i: int) -> torch.Tensor:
        if self.explode_at is not None and self.global_step == self.explode_at:
            raise ValueError("loss went to nan")
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], i: int) -> None:
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)


@pytest.fixture
def loaders() -> tuple[DataLoader, DataLoader]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(48, 4, generator=gen)
    y = x[:, :1] * 2
    train = DataLoader(TensorDataset(x[:32], y[:32]), batch_size=8)
    return train, DataLoader(TensorDataset(x[32:], y[32:]), batch_size=8)


@pytest.fixture(autouse=True)
def own_runs_end() -> Iterator[None]:
    yield
    common.end_own()


def trainer(root: Path, **kw: object) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=2,
        log_every_n_steps=1,
        accelerator="cpu",
        default_root_dir=root,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kw,
    )


def test_logger_records_params_series_and_model(repo: Path, tmp_path: Path, loaders: tuple) -> None:
    model = Mlp(hidden=8, lr=0.05)
    with gitmlm.start_run(name="mlp") as run:
        trainer(tmp_path / "out", logger=pl_autolog.GitmlmLogger()).fit(model, *loaders)
    got = gitmlm.get_run(run.id)
    assert got.status == "finished"
    assert got.params["hidden"] == 8 and got.params["lr"] == 0.05
    assert got.params["dropout"] == "None"  # as MLflow records None
    assert got.params["epochs"] == 2 and got.params["optimizer_name"] == "SGD"
    assert got.params["momentum"] == 0.9
    # 32 samples in batches of 8, two epochs: steps 0..7 per batch, and per epoch
    assert got.steps["train_loss_step"]["step"] == list(range(8))
    assert len(got.steps["train_loss_epoch"]["step"]) == 2
    assert len(got.steps["val_loss"]["step"]) == 2
    kept = logged.kept_path(Repo.open(repo), run.id, pl_autolog.WEIGHTS)
    state = torch.load(kept, weights_only=True)
    assert torch.equal(state["net.0.weight"], model.net[0].weight)
    (ckpt,) = [a for a in got.artifacts if a.endswith(".ckpt")]
    assert got.artifacts[ckpt]["size"] > 0
    again = Mlp.load_from_checkpoint(logged.kept_path(Repo.open(repo), run.id, ckpt))
    assert torch.equal(again.net[0].weight, model.net[0].weight)


def test_autolog_opens_a_run_and_a_raising_fit_fails_it(
    repo: Path, tmp_path: Path, loaders: tuple
) -> None:
    pl_autolog.autolog()
    try:
        model = Mlp()
        model.explode_at = 2
        with pytest.raises(ValueError, match="loss went to nan"):
            trainer(tmp_path / "out", logger=False).fit(model, *loaders)
    finally:
        pl_autolog.autolog(disable=True)
    (row,) = gitmlm.runs().to_dict("records")
    got = gitmlm.get_run(row["run_id"])
    assert got.status == "failed" and got.tags["mlm.autolog"] == "lightning"
    assert got.extra["error"]["type"] == "ValueError"
    assert got.extra["error"]["message"] == "loss went to nan"
    assert got.steps["train_loss_step"]["step"] == [0, 1]
