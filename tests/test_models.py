from __future__ import annotations

import pytest
import torch

from helpers.models import tiny_bert
from senti_lit.data.labels import LabelSpace
from senti_lit.models.heads import pool
from senti_lit.training.mlm import MaskedLM
from senti_lit.training.module import SentimentClassifier


def test_masked_positions_only_loss_equals_full_mlm_loss():
    module = MaskedLM(tiny_bert()).eval()
    assert module.head is module.model.cls
    ids = torch.randint(5, 100, (3, 10))
    labels = torch.full_like(ids, -100)
    labels[:, 2], labels[1, 5] = ids[:, 2], 7
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    assert torch.allclose(module.loss(batch), module.model(**batch).loss, atol=1e-5)


def test_mlm_head_shares_the_backbone_embeddings():
    backbone = tiny_bert()
    module = MaskedLM(backbone)
    assert module.model.get_output_embeddings().weight is backbone.get_input_embeddings().weight
    assert module.model.bert is backbone


def test_pooling_ignores_padding():
    hidden = torch.tensor([[[1.0], [3.0], [100.0]], [[2.0], [4.0], [6.0]]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    assert pool(hidden, mask, "mean").squeeze(-1).tolist() == [2.0, 4.0]
    assert pool(hidden, mask, "last").squeeze(-1).tolist() == [3.0, 6.0]
    assert pool(hidden, mask, "cls").squeeze(-1).tolist() == [1.0, 2.0]


def test_token_dropout_only_in_training():
    model = SentimentClassifier(tiny_bert(), LabelSpace(("neg", "pos")), optimizer=torch.optim.AdamW,
                                token_dropout=0.5)
    ids = torch.randint(5, 100, (4, 50))
    mask = torch.ones_like(ids)
    model.eval()
    assert torch.equal(model(ids, mask), model(ids, mask))
    emb = model.backbone.get_input_embeddings()
    model.train()
    dropped = (emb(ids).abs().sum(-1) == 0).float().mean().item()
    assert 0.35 < dropped < 0.65
    model.eval()
    assert (emb(ids).abs().sum(-1) == 0).sum() == 0


def test_multilabel_head_uses_bce_and_multilabel_metrics():
    model = SentimentClassifier(tiny_bert(), LabelSpace(("a", "b", "c"), multi_label=True),
                                optimizer=torch.optim.AdamW)
    assert isinstance(model.loss_fn, torch.nn.BCEWithLogitsLoss)
    assert {"acc", "hamming", "micro_f1", "macro_f1"} <= set(model.val_metrics.keys())
    logits = model(torch.randint(5, 100, (2, 7)), torch.ones(2, 7, dtype=torch.long))
    assert logits.shape == (2, 3)


def test_warmup_ema_tracks_early_and_settles_at_decay():
    from senti_lit.training.callbacks import warmup_ema_fn

    avg = warmup_ema_fn(0.99)
    a, x = torch.zeros(1), torch.ones(1)
    first = avg(a, x, torch.tensor(0))
    assert torch.allclose(first, torch.tensor([0.9]))  # decay 1/10 at the first update: mostly the new weights
    late = avg(a, x, torch.tensor(10_000))
    assert torch.allclose(late, torch.tensor([0.01]))  # capped at the configured decay


def test_ema_checkpoint_keeps_averaged_weights_when_testing():
    from types import SimpleNamespace

    from torch.optim.swa_utils import AveragedModel

    from senti_lit.training.callbacks import WarmupEMA

    module = torch.nn.Linear(2, 2)
    averaged = {k: v.clone() for k, v in module.state_dict().items()}
    raw = {k: torch.zeros_like(v) for k, v in averaged.items()}
    callback = WarmupEMA()
    callback._average_model = AveragedModel(module)  # as after fit, on the same trainer
    checkpoint = {"state_dict": averaged, "current_model_state": raw,
                  "averaging_state": {"n_averaged": torch.tensor(5)}}
    callback.on_load_checkpoint(SimpleNamespace(state=SimpleNamespace(fn="test")), module, checkpoint)
    assert torch.equal(module.weight, averaged["weight"])  # tested weights = the averaged (validated) ones
    callback.on_load_checkpoint(SimpleNamespace(state=SimpleNamespace(fn="fit")), module, checkpoint)
    assert torch.equal(module.weight, raw["weight"])  # resuming fit restores the raw training weights


def test_multilabel_metrics_on_known_probabilities():
    from senti_lit.models.metrics import build_metrics, flatten

    labels = LabelSpace(("a", "b"), multi_label=True)
    metrics = build_metrics(labels)
    logits = torch.tensor([[0.3, -0.2], [-0.1, 0.4]])
    metrics.update(logits.sigmoid(), torch.tensor([[1, 0], [0, 1]]))
    values = flatten(metrics.compute(), labels, "val")
    assert values["val/acc"] == 1.0 and values["val/micro_f1"] == 1.0 and values["val/f1_b"] == 1.0
    with pytest.raises(TypeError, match="collection of labels"):
        labels.encode("ab")


def classifier(labels: LabelSpace, **kwargs) -> SentimentClassifier:
    return SentimentClassifier(tiny_bert(), labels, optimizer=torch.optim.AdamW, **kwargs)


def test_binary_threshold_calls_the_positive_label_only_above_it():
    probs = torch.tensor([[0.35, 0.65], [0.25, 0.75], [0.9, 0.1]])
    assert classifier(LabelSpace(("negative", "positive"))).decide(probs).tolist() == [1, 1, 0]  # argmax
    seed_rule = classifier(LabelSpace(("negative", "positive")), threshold=0.7)  # the mini-BERT seed's rule
    assert seed_rule.decide(probs).tolist() == [0, 1, 0]
    # the positive label need not be the second one
    reversed_space = classifier(LabelSpace(("positive", "negative")), threshold=0.7)
    assert reversed_space.decide(probs.flip(1)).tolist() == [1, 0, 1]
    named = classifier(LabelSpace(("bad", "good")), threshold=0.3, positive_label="bad")
    assert named.decide(probs).tolist() == [0, 1, 0]
    with pytest.raises(ValueError, match="3 labels and predicts the likeliest"):
        classifier(LabelSpace(("a", "b", "c")), threshold=0.5)
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        classifier(LabelSpace(("negative", "positive")), threshold=1.5)


def test_multilabel_thresholds_per_label_and_temperature():
    labels = LabelSpace(("a", "b", "c"), multi_label=True)
    probs = torch.tensor([[0.6, 0.3, 0.45], [0.4, 0.8, 0.2]])
    assert classifier(labels).decide(probs).tolist() == [[1, 0, 0], [0, 1, 0]]
    assert classifier(labels, threshold=[0.7, 0.25, 0.4]).decide(probs).tolist() == [[0, 1, 1], [0, 1, 0]]
    with pytest.raises(ValueError, match="2 values for 3 labels"):
        classifier(labels, threshold=[0.5, 0.5])
    model = classifier(labels)
    model.temperature.fill_(2.0)
    logits = torch.tensor([[2.0, -2.0, 0.0]])
    assert torch.allclose(model.probabilities(logits), torch.sigmoid(logits / 2))
    state = model.state_dict()
    assert state["temperature"] == 2.0 and state["thresholds"].tolist() == [0.5] * 3  # saved with the weights


def test_packing_keeps_every_training_token_once_in_full_rows():
    """group_texts-style packing: each text's ids (special tokens included) appear whole, once, in the seeded order;
    rows are `block` long except the last (kept, not dropped as HF's group_texts drops it)."""
    import numpy as np

    from senti_lit.data.encoding import EncodedDataset

    rng = np.random.default_rng(0)
    texts = [rng.integers(5, 100, size=n).astype(np.int32) for n in rng.integers(2, 30, size=57)]
    ds = EncodedDataset(np.concatenate(texts), np.cumsum([0] + [len(t) for t in texts]), None)
    packed = ds.packed(16, seed=3)
    rows = [packed[i]["input_ids"] for i in range(len(packed))]
    assert all(len(r) == 16 for r in rows[:-1]) and 0 < len(rows[-1]) <= 16
    order = np.random.default_rng(3).permutation(len(texts))
    assert sum(rows, []) == np.concatenate([texts[i] for i in order]).tolist()  # every token once, texts whole
    assert packed.packed(16, seed=3).ids.tolist() != packed.ids.tolist() or len(texts) < 2  # the seed orders
    assert ds.packed(16, seed=3).ids.tolist() == packed.ids.tolist()  # and reproduces


@pytest.mark.slow  # tokenizer training and a data module: ~20 s under load
def test_the_packed_warm_up_reads_the_training_split_only(reviews_dir):
    """Validation and test texts never reach the MLM warm-up: the packed loader's tokens are the training split's
    tokens, each once an epoch."""
    from collections import Counter

    from hydra.utils import instantiate

    from helpers.compose import TINY_MODEL, compose_train

    cfg = compose_train([f"data.path={reviews_dir}", *TINY_MODEL], reviews_dir.parent / "out")
    datamodule = instantiate(cfg.data)
    datamodule.prepare(dict(cfg.model.tokenizer), seed=1)
    loader = datamodule.packed_train_loader(4, 24, collate_fn=lambda rows: rows, seed=1)
    seen = Counter(t for batch in loader for row in batch for t in row["input_ids"])
    train = datamodule.datasets["train"]
    assert seen == Counter(train.ids.tolist())
    assert sum(seen.values()) == sum(len(datamodule.datasets[s].ids) for s in ("train",))
    assert sum(seen.values()) < sum(len(datamodule.datasets[s].ids) for s in ("train", "val", "test"))
