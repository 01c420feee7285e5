"""transformers autologging against the real library: a two-layer BERT made from a config (no
download) trained for two epochs on CPU; params, step series, the saved model, a failed run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

import gitmlm
from gitmlm.autolog import common
from gitmlm.autolog import transformers as hf_autolog
from gitmlm.core.git import Repo
from gitmlm.tracking import logged


class Pairs(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __init__(self, n: int) -> None:
        gen = torch.Generator().manual_seed(0)
        self.ids = torch.randint(5, 60, (n, 8), generator=gen)
        self.labels = (self.ids[:, 0] > 30).long()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


@pytest.fixture(autouse=True)
def own_runs_end() -> Iterator[None]:
    yield
    common.end_own()


def tiny_bert() -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=2,
    )
    return BertForSequenceClassification(config)


def trainer(out: Path, model: BertForSequenceClassification, **kw: object) -> Trainer:
    args = TrainingArguments(
        output_dir=str(out),
        num_train_epochs=2,
        per_device_train_batch_size=8,
        learning_rate=1e-3,
        logging_steps=1,
        eval_strategy="epoch",
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
    )
    return Trainer(model=model, args=args, train_dataset=Pairs(32), eval_dataset=Pairs(8), **kw)


def test_callback_records_params_series_and_model(repo: Path, tmp_path: Path) -> None:
    model = tiny_bert()
    with gitmlm.start_run(name="bert") as run:
        trainer(tmp_path / "out", model, callbacks=[hf_autolog.GitmlmCallback()]).train()
    got = gitmlm.get_run(run.id)
    assert got.status == "finished"
    assert got.params["learning_rate"] == 1e-3 and got.params["num_train_epochs"] == 2
    assert got.params["num_hidden_layers"] == 2 and got.params["hidden_size"] == 16
    assert got.params["resume_from_checkpoint"] == "None"  # as MLflow records None
    # 32 examples in batches of 8 for two epochs: a loss at each of the 8 steps
    assert got.steps["loss"]["step"] == list(range(1, 9))
    assert got.steps["eval_loss"]["step"] == [4, 8]  # once per epoch
    assert "grad_norm" in got.steps and "train_runtime" in got.metrics
    info = got.artifacts[hf_autolog.MODEL]
    assert info["kind"] == "dir" and info["files"] >= 2
    kept = logged.kept_path(Repo.open(repo), run.id, hf_autolog.MODEL)
    again = BertForSequenceClassification.from_pretrained(kept)
    assert torch.equal(
        again.bert.embeddings.word_embeddings.weight, model.bert.embeddings.word_embeddings.weight
    )


class Explode(TrainerCallback):  # type: ignore[misc]
    def on_step_end(self, args: object, state: object, control: object, **kw: object) -> None:
        if getattr(state, "global_step", 0) == 3:
            raise RuntimeError("out of memory")


def test_autolog_opens_a_run_and_a_raising_train_fails_it(repo: Path, tmp_path: Path) -> None:
    hf_autolog.autolog()
    try:
        with pytest.raises(RuntimeError, match="out of memory"):
            trainer(tmp_path / "out", tiny_bert(), callbacks=[Explode()]).train()
    finally:
        hf_autolog.autolog(disable=True)
    (row,) = gitmlm.runs().to_dict("records")
    got = gitmlm.get_run(row["run_id"])
    assert got.status == "failed" and got.tags["mlm.autolog"] == "transformers"
    assert got.extra["error"]["type"] == "RuntimeError"
    assert got.steps["loss"]["step"] == [1, 2]  # step 3 raised before its log
    assert hf_autolog.MODEL not in got.artifacts
