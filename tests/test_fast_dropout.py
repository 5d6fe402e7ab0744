"""models.fast_dropout: the cheaper CPU dropout mask has dropout's distribution and gradient, its attention path
computes transformers' sdpa attention, and `cpu_fast_dropout` switches a model in and back out."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import BertConfig, BertModel, GPT2Config, GPT2Model
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from senti_lit.models import fast_dropout as fd


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5])
def test_each_element_is_dropped_with_probability_p_independently(p: float):
    torch.manual_seed(0)
    keep = fd.keep_mask(torch.Size([4096, 256]), p, torch.device("cpu"))
    assert keep.dtype == torch.bool and keep.shape == (4096, 256)
    # each of the four 16-bit lanes of a 64-bit draw (one of them holds the sign bit) drops at rate p
    lanes = (~keep).reshape(-1, 4).float().mean(dim=0)
    assert torch.allclose(lanes, torch.full((4,), p), atol=0.005), lanes
    # neighbours are independent: P(both dropped) = p^2
    pairs = (~keep).reshape(-1, 2)
    assert (pairs[:, 0] & pairs[:, 1]).float().mean().item() == pytest.approx(p * p, abs=0.004)


def test_odd_sizes_and_seeded_reproducibility():
    torch.manual_seed(3)
    a = fd.keep_mask(torch.Size([7, 3]), 0.3, torch.device("cpu"))
    torch.manual_seed(3)
    b = fd.keep_mask(torch.Size([7, 3]), 0.3, torch.device("cpu"))
    assert a.shape == (7, 3) and torch.equal(a, b)


def test_kept_elements_are_scaled_and_the_gradient_follows_the_mask():
    torch.manual_seed(0)
    x = torch.randn(64, 100, requires_grad=True)
    y = fd.fast_dropout(x, 0.25)
    kept = y != 0
    assert 0.70 < kept.float().mean().item() < 0.80
    assert torch.allclose(y[kept], x[kept] / 0.75)
    y.sum().backward()
    assert torch.allclose(x.grad, kept.float() / 0.75)
    # evaluation and p = 0 leave the input alone; p = 1 (or within 2^-17 of it) drops everything, as F.dropout does
    assert torch.equal(fd.fast_dropout(x, 0.25, training=False), x)
    assert torch.equal(fd.fast_dropout(x, 0.0), x)
    assert torch.count_nonzero(fd.fast_dropout(x, 1.0)) == 0
    assert torch.count_nonzero(fd.fast_dropout(x, 1 - 2**-18)) == 0


def test_kept_elements_are_scaled_by_the_rounded_keep_rate():
    # p = 0.1 drops 6554 of the 65536 16-bit values: the expected output is x exactly when kept ones are scaled
    # by 65536 / 58982, not by 1 / 0.9
    torch.manual_seed(0)
    x = torch.ones(1000, 100)
    y = fd.fast_dropout(x, 0.1)
    assert fd.drop_count(0.1) == 6554
    assert torch.allclose(y[y != 0], torch.tensor(65536 / 58982))


class Attn(nn.Module):
    """What transformers' attention functions read from the calling module."""

    def __init__(self, is_causal: bool, groups: int = 1) -> None:
        super().__init__()
        self.is_causal, self.num_key_value_groups = is_causal, groups


def cases():
    torch.manual_seed(0)
    b, h, q, d = 2, 4, 5, 8
    pad = torch.ones(b, 1, q, q, dtype=torch.bool)
    pad[0, ..., 3:] = False  # the first text is 3 tokens long
    return {
        "bool padding mask (BERT)": (Attn(False), 4, pad),
        "additive float mask": (Attn(False), 4, torch.where(pad, 0.0, torch.finfo(torch.float32).min)),
        "no mask, causal (GPT2)": (Attn(True), 4, None),
        "no mask, bidirectional": (Attn(False), 4, None),
        "grouped key/value heads (LLMs)": (Attn(True, groups=2), 2, None),
    }, (b, h, q, d)


@pytest.mark.parametrize("case", list(cases()[0]))
def test_attention_computes_sdpa_attention(case: str, monkeypatch: pytest.MonkeyPatch):
    (module, kv_heads, mask), (b, h, q, d) = cases()[0][case], cases()[1]
    query, key, value = torch.randn(b, h, q, d), torch.randn(b, kv_heads, q, d), torch.randn(b, kv_heads, q, d)
    expected, _ = sdpa_attention_forward(module.eval(), query, key, value, mask, dropout=0.0)
    # a mask that keeps everything: the dropout path must be sdpa attention times 1 / (1 - p)
    monkeypatch.setattr(fd, "keep_mask", lambda shape, p, device: torch.ones(shape, dtype=torch.bool))
    got, _ = fd.attention(module.train(), query, key, value, mask, dropout=0.2)
    assert got.shape == expected.shape == (b, q, h, d)
    assert torch.allclose(got, expected / 0.8, atol=1e-5)


def test_attention_under_bf16_autocast_is_computed_in_fp32_as_sdpa_does(monkeypatch: pytest.MonkeyPatch):
    torch.manual_seed(0)
    module = Attn(False)
    # scores large enough that rounding them to bf16 before the softmax shows (by ~0.14 here)
    query, key, value = (4 * torch.randn(2, 4, 16, 8)).bfloat16(), (4 * torch.randn(2, 4, 16, 8)).bfloat16(), \
        torch.randn(2, 4, 16, 8).bfloat16()
    pad = torch.ones(2, 1, 16, 16, dtype=torch.bool)
    pad[0, ..., 9:] = False
    expected, _ = sdpa_attention_forward(module.eval(), query, key, value, pad, dropout=0.0)
    monkeypatch.setattr(fd, "keep_mask", lambda shape, p, device: torch.ones(shape, dtype=torch.bool))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, _ = fd.attention(module.train(), query, key, value, pad, dropout=0.2)
    assert got.dtype == torch.bfloat16
    # the same up to bf16 rounding of the result itself
    assert (got.float() - expected.float() / 0.8).abs().max() < 0.04


def test_a_row_with_no_key_to_attend_to_outputs_zeros_as_sdpa_does(monkeypatch: pytest.MonkeyPatch):
    torch.manual_seed(0)
    module = Attn(False)
    query, key, value = torch.randn(1, 2, 4, 8), torch.randn(1, 2, 4, 8), torch.randn(1, 2, 4, 8)
    mask = torch.ones(1, 1, 4, 4, dtype=torch.bool)
    mask[0, 0, 1] = False  # the second query may attend to no key (left padding, a custom 4D mask)
    expected, _ = sdpa_attention_forward(module.eval(), query, key, value, mask, dropout=0.0)
    monkeypatch.setattr(fd, "keep_mask", lambda shape, p, device: torch.ones(shape, dtype=torch.bool))
    got, _ = fd.attention(module.train(), query, key, value, mask, dropout=0.2)
    assert torch.count_nonzero(got[:, 1]) == 0
    assert torch.allclose(got, torch.nan_to_num(expected) / 0.8, atol=1e-5)


def test_more_keys_than_queries_stays_with_sdpa(monkeypatch: pytest.MonkeyPatch):
    calls = []
    monkeypatch.setattr(fd, "sdpa_attention_forward", lambda *a, **k: calls.append(a[2].shape) or (None, None))
    module = Attn(True).train()
    fd.attention(module, torch.randn(1, 2, 1, 8), torch.randn(1, 2, 5, 8), torch.randn(1, 2, 5, 8), None, dropout=0.1)
    assert calls == [torch.Size([1, 2, 5, 8])]


def tiny(model_type: str) -> nn.Module:
    if model_type == "bert":
        return BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                    intermediate_size=32, attention_probs_dropout_prob=0.1), add_pooling_layer=False)
    return GPT2Model(GPT2Config(vocab_size=50, n_embd=16, n_layer=2, n_head=2, attn_pdrop=0.1))


@pytest.mark.parametrize("model_type", ["bert", "gpt2"])
def test_a_model_is_switched_for_the_block_and_back(model_type: str, monkeypatch: pytest.MonkeyPatch):
    model = tiny(model_type).train()
    ids, mask = torch.randint(0, 50, (3, 6)), torch.ones(3, 6, dtype=torch.long)
    mask[0, 4:] = 0
    calls = []
    monkeypatch.setattr(fd, "keep_mask", lambda *a, _f=fd.keep_mask: calls.append(a[0]) or _f(*a))
    with fd.cpu_fast_dropout(model) as switched:
        assert switched == sum(isinstance(m, nn.Dropout) for m in model.modules()) > 0
        assert model.config._attn_implementation == fd.ATTENTION
        model(input_ids=ids, attention_mask=mask).last_hidden_state.sum().backward()
    # every dropout of the step drew the cheap mask, the attention probabilities' ([3, 2, 6, 6]) included
    assert torch.Size([3, 2, 6, 6]) in calls and len(calls) >= switched
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
    assert model.config._attn_implementation == "sdpa"
    assert all(type(m) is nn.Dropout for m in model.modules() if isinstance(m, nn.Dropout))


def test_switched_back_on_errors_too():
    model = tiny("bert")
    with pytest.raises(RuntimeError), fd.cpu_fast_dropout(model):
        raise RuntimeError("fit failed")
    assert model.config._attn_implementation == "sdpa"
    assert all(type(m) is nn.Dropout for m in model.modules() if isinstance(m, nn.Dropout))


def test_sub_configs_keep_their_own_attention_setting():
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig(text_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                                     "num_attention_heads": 2, "vocab_size": 50},
                        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                                       "num_attention_heads": 2, "image_size": 8, "patch_size": 4})
    model = CLIPModel(config)
    model.config.text_config._attn_implementation_internal = "eager"  # as a user may set one part
    settings = lambda: (model.config._attn_implementation_internal,  # noqa: E731
                        model.config.text_config._attn_implementation_internal,
                        model.config.vision_config._attn_implementation_internal)
    assert settings() == ("sdpa", "eager", "sdpa")
    with fd.cpu_fast_dropout(model):
        assert settings() == (fd.ATTENTION, "eager", fd.ATTENTION)
    assert settings() == ("sdpa", "eager", "sdpa")
