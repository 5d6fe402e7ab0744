"""model.embedding_rows: train — only the rows the training texts use train, with the dense update's results."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import BertModel

from helpers.compose import TINY_MODEL, compose_train
from helpers.models import tiny_bert
from senti_lit.models.embedding import TrainedRowsEmbedding, restore_embedding, train_used_rows
from senti_lit.train import train

COVERED = torch.tensor([[1, 5, 7, 9, 2, 0], [1, 9, 9, 5, 11, 2]])  # 0 = BERT's pad id
ROWS = torch.tensor([1, 2, 5, 7, 9, 11])


def adamw_steps(model: BertModel, steps: int = 5) -> BertModel:
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.01)
    model.train()
    for step in range(steps):
        torch.manual_seed(step)  # the same dropout masks for both models: the embedding draws no random numbers
        model(COVERED, attention_mask=(COVERED != 0).long()).last_hidden_state.sum().backward()
        opt.step()
        opt.zero_grad()
    return model.eval()


def test_training_only_the_used_rows_gives_the_dense_result_on_text_they_cover():
    dense, rows = tiny_bert(), tiny_bert()
    pretrained = dense.embeddings.word_embeddings.weight.detach().clone()
    assert train_used_rows(rows, ROWS)
    wrapped = rows.get_input_embeddings()
    assert isinstance(wrapped, TrainedRowsEmbedding) and wrapped.trained.shape == (len(ROWS), 32)
    uncovered = torch.tensor([[1, 40, 41, 2]])
    assert torch.equal(dense.eval()(uncovered).last_hidden_state, rows.eval()(uncovered).last_hidden_state)

    adamw_steps(dense), adamw_steps(rows)
    torch.testing.assert_close(rows(COVERED).last_hidden_state, dense(COVERED).last_hidden_state, rtol=0, atol=1e-6)
    table = rows.state_dict()["embeddings.word_embeddings.weight"]
    assert "embeddings.word_embeddings.trained" not in rows.state_dict()  # the dense model's keys, nothing more
    torch.testing.assert_close(table[ROWS], dense.embeddings.word_embeddings.weight[ROWS], rtol=0, atol=1e-6)
    others = torch.ones(len(table), dtype=torch.bool)
    others[ROWS] = False
    assert torch.equal(table[others], pretrained[others])  # untouched: only weight decay moved the dense rows
    torch.testing.assert_close(table[others], dense.embeddings.word_embeddings.weight[others], rtol=1e-3, atol=0)


def test_the_state_dict_loads_both_ways_and_restores_a_plain_embedding():
    rows = tiny_bert()
    train_used_rows(rows, ROWS)
    adamw_steps(rows, steps=2)
    plain = tiny_bert()
    plain.load_state_dict(rows.state_dict())  # a checkpoint of the wrapped model is a dense model's checkpoint
    assert torch.equal(plain.eval()(COVERED).last_hidden_state, rows(COVERED).last_hidden_state)

    again = tiny_bert()
    train_used_rows(again, ROWS)
    again.load_state_dict(plain.state_dict())  # resuming: the trained rows come from the saved table
    assert torch.equal(again.get_input_embeddings().trained, plain.embeddings.word_embeddings.weight[ROWS])
    restore_embedding(again)
    embedding = again.get_input_embeddings()
    assert type(embedding) is torch.nn.Embedding and embedding.weight.requires_grad
    assert torch.equal(again.eval()(COVERED).last_hidden_state, plain.eval()(COVERED).last_hidden_state)


def test_a_training_token_outside_the_trained_rows_fails_instead_of_silently_staying_frozen():
    model = tiny_bert()
    train_used_rows(model, ROWS)
    with pytest.raises(RuntimeError, match=r"token ids \[40\] are not among the embedding rows trained"):
        model.train()(torch.tensor([[1, 40, 2]]))
    model.eval()(torch.tensor([[1, 40, 2]]))  # evaluation reads every row


def test_frozen_or_tied_embeddings_are_left_alone():
    frozen = tiny_bert()
    frozen.embeddings.word_embeddings.weight.requires_grad_(False)  # LoRA, adapters: the embedding does not train
    assert not train_used_rows(frozen, ROWS)
    from transformers import BertConfig, BertForMaskedLM

    tied = BertForMaskedLM(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                      intermediate_size=64, vocab_size=100))
    assert not train_used_rows(tied, ROWS)  # the MLM head reads every row
    assert type(tied.get_input_embeddings()) is torch.nn.Embedding


@pytest.mark.parametrize("value", ["some"])
def test_a_wrong_setting_names_the_choices(reviews_dir: Path, tmp_path: Path, value: str):
    cfg = compose_train([f"data.path={reviews_dir}", *TINY_MODEL, "trainer.max_epochs=1",
                         f"model.embedding_rows={value}"], tmp_path)
    with pytest.raises(ValueError, match="model.embedding_rows=some: use all .* or train"):
        train(cfg)


def test_a_run_with_the_used_rows_matches_the_dense_run_and_writes_a_plain_artifact(reviews_dir: Path,
                                                                                     tmp_path: Path):
    common = [f"data.path={reviews_dir}", *TINY_MODEL, "trainer.max_epochs=2", "seed=7"]
    dense = train(compose_train(common, tmp_path / "dense"))
    rows = train(compose_train([*common, "model.embedding_rows=train"], tmp_path / "rows"))
    for key in [k for k in dense if k.startswith("test/")]:
        assert rows[key] == pytest.approx(dense[key], abs=1e-4), key
    assert rows["params/trainable"] < dense["params/trainable"]  # the special tokens no text uses stay frozen
    from safetensors.torch import load_file

    saved = {k: v for f in (tmp_path / "rows" / "artifact").rglob("*.safetensors") for k, v in load_file(f).items()}
    assert saved and not any(k.endswith(".trained") for k in saved)


def test_gradient_checkpointing_hooks_move_to_the_new_embedding():
    import copy

    model = tiny_bert()
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})  # as the builder does
    assert train_used_rows(model, ROWS)
    copy.deepcopy(model)  # what weight averaging (EMA) does at setup: failed on the old module's dead hook
    model.train()(COVERED).last_hidden_state.sum().backward()
    assert model.get_input_embeddings().trained.grad.abs().sum() > 0
