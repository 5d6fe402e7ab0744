"""An artifact as a self-contained ONNX folder (`python -m senti_lit.export artifact=... format=onnx [quantize=int8]`)
that `OnnxPredictor` (numpy + tokenizers + onnxruntime, no torch) answers from.

The graph is the artifact's classifier as it is - backbone, pooling and head, single- or multi-label - traced by
torch's TorchScript exporter (fast, and it handles the transformers models here at opset 17); LoRA/IA3 are merged
into the base weights first (a plain graph, as fast as the base model), bottleneck adapters and from-scratch models
are traced as they are. It outputs the RAW logits: the temperature and decision rule live in onnx.json and
`inference.decisions`, as for the torch artifact, so `threshold=` overrides work the same.

Before the folder is written it is checked against the torch `Predictor` on the run's test texts (its data, read
again through artifact/config.yaml) or, where those cannot be read, on fixed sample texts: fp32 probabilities must
agree within 1e-4 and the tokenizers library must give the artifact's token ids, or the export fails. int8 (dynamic
quantisation of the weights, after onnxruntime's transformer fusions where they keep parity) only records how far
it moved: the largest probability change and accuracy (macro-F1 for multi-label) against the torch model.

Refused, with the reason: label words read off the LM head (cloze / next-token prompt verbalizers), a prompt or an
explanation joined to each text (the ONNX backend encodes the text alone), and models that do not trace.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn

import senti_lit
from senti_lit.core.files import write_json
from senti_lit.inference import decisions
from senti_lit.inference.artifact import base_config, base_model, input_spec, load_artifact
from senti_lit.inference.hf_export import NotExportable
from senti_lit.inference.onnx_predictor import FORMAT, OnnxPredictor, session
from senti_lit.inference.predictor import Predictor
from senti_lit.models.heads import VerbalizerHead
from senti_lit.models.methods import merge_lora

log = logging.getLogger(__name__)

OPSET = 17  # LayerNormalization is an ONNX op from 17 on: one node per layer norm
TOLERANCE = 1e-4  # largest fp32 probability difference to the torch model that the export accepts
MAX_CHECK_TEXTS = 512
# model types whose graphs onnxruntime's transformer optimizer fuses (attention, GELU, layer norm) as "bert"
BERT_TYPES = {"bert", "roberta", "xlm-roberta", "distilbert", "electra", "ernie", "camembert", "bert-generation"}
SAMPLE_TEXTS = [
    "这家酒店很干净，服务也好", "太差了，再也不来了", "The movie was fine.", "一般", "物流很快，包装完好，五星好评！",
    "I absolutely loved it, would buy again.", "客服态度恶劣，等了三天没人理", "Not bad, but the battery dies fast.",
    "这本书内容空洞，浪费时间", "味道还可以，就是有点贵", "Worst purchase ever. Total waste of money!!",
    "环境优美，适合带孩子来玩 😊", "质量一般般吧，凑合用", "Great value for the price, 推荐！",
    "屏幕有坏点，申请退货中", "ok",
]


class Logits(nn.Module):
    """The classifier as the graph sees it: (input_ids, attention_mask) -> raw float32 logits."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.net(input_ids, attention_mask).float()


def check_exportable(model, meta: dict[str, Any]) -> None:
    """A NotExportable (one line: why, and what to deploy instead) for what the ONNX folder cannot reproduce."""
    why = None
    if isinstance(model.head, VerbalizerHead):
        why = "it reads label words off the language-model head (cloze / next-token prompt)"
    elif meta["inputs"].get("knowledge"):
        why = "it reads an explanation joined to each text (knowledge), which the ONNX backend does not encode"
    elif meta["inputs"].get("prompt"):
        why = "it reads a prompt added to each text; the ONNX backend encodes the text alone"
    if why:
        raise NotExportable(f"this model cannot be exported to ONNX: {why}. Deploy the senti_lit artifact itself: "
                            "python -m senti_lit.predict artifact=...")


def run_test_texts(folder: Path) -> tuple[list[str], list | None, str]:
    """(texts, gold labels, where from): the run's test split, re-read through artifact/config.yaml when its data
    is still on disk (at most MAX_CHECK_TEXTS), else the fixed sample texts without labels."""
    reason = "no artifact/config.yaml"
    if (folder / "config.yaml").is_file():
        data = OmegaConf.load(folder / "config.yaml").get("data")
        path = data.get("path") if data is not None else None
        # never a download: a data config without its files falls back to the Hub; path null is a packaged copy
        local = Path(path).exists() if path else data is not None and not (data.get("source") or {}).get("hub")
        reason = f"its data.path={path} is not on this machine"
        if local:
            try:
                return read_test_split(data)
            except Exception as e:  # noqa: BLE001 - any reader's failure: the sample texts still check the export
                reason = f"its data could not be read again ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
    log.info("export check on %d sample texts: %s", len(SAMPLE_TEXTS), reason)
    return list(SAMPLE_TEXTS), None, f"{len(SAMPLE_TEXTS)} fixed sample texts ({reason})"


def read_test_split(data) -> tuple[list[str], list | None, str]:
    from hydra.utils import instantiate

    if data.get("cache_dir") and not Path(data.cache_dir).is_dir():
        data.cache_dir = None  # a moved run's cache folder is not re-created by an export
    examples = instantiate(data).prepare_splits()["test"]
    if not examples:
        raise ValueError("an empty test split")
    kept = examples[:MAX_CHECK_TEXTS]
    return [ex.text for ex in kept], [ex.label for ex in kept], \
        f"the run's test split ({len(kept)} of {len(examples)} texts, data.path={data.path})"


def trace(model: nn.Module, pad_id: int, path: Path, max_length: int) -> None:
    """The TorchScript exporter on two rows of different lengths: a padded row in the example keeps the attention
    mask a computed input of the graph (with none, transformers may skip the mask while tracing)."""
    width = max(2, min(8, max_length))
    input_ids = torch.full((2, width), 5, dtype=torch.long)
    mask = torch.ones((2, width), dtype=torch.long)
    input_ids[1, width // 2:], mask[1, width // 2:] = pad_id, 0
    dynamic = {0: "batch", 1: "sequence"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's and the legacy exporter's notes are not the user's business
        torch.onnx.export(Logits(model).eval(), (input_ids, mask), str(path), input_names=["input_ids",
                          "attention_mask"], output_names=["logits"], opset_version=OPSET, dynamo=False,
                          dynamic_axes={"input_ids": dynamic, "attention_mask": dynamic, "logits": {0: "batch"}})


@contextmanager
def eager_attention(backbone: nn.Module) -> Iterator[None]:
    """Trace a BERT-type backbone with transformers' eager attention, then give it back its own. Why: onnxruntime's
    transformer optimizer finds the attention pattern only in the eager graph (traced from sdpa, MiniLM's 6 attention
    blocks stay unfused), and its fused Attention is what int8 quantises to QAttention: MiniLM int8 1.73x -> 1.97x the
    torch fp32 Predictor on a 2-core AMX Xeon (docs/prediction.md). Same arithmetic: the fp32 parity check still applies."""
    inner = base_model(backbone)
    config = inner.config
    own = getattr(config, "_attn_implementation", None)
    if (config.model_type not in BERT_TYPES or own in (None, "eager")
            or not getattr(inner, "_can_set_attn_implementation", lambda: False)()):
        yield
        return
    inner.set_attn_implementation("eager")
    try:
        yield
    finally:
        inner.set_attn_implementation(own)


def save_tokenizer(tokenizer, source: Path, target: Path) -> None:
    """The artifact's tokenizer folder, with a tokenizer.json that the `tokenizers` library loads alone (written
    from the transformers tokenizer when the artifact has none)."""
    shutil.copytree(source, target, symlinks=False)
    if (target / "tokenizer.json").is_file():
        return
    if not getattr(tokenizer, "is_fast", False):
        raise NotExportable("this model cannot be exported to ONNX: its tokenizer has no fast (tokenizers library) "
                            "form. Deploy the senti_lit artifact itself: python -m senti_lit.predict artifact=...")
    tokenizer.backend_tokenizer.save(str(target / "tokenizer.json"))


def check_encoding(onnx: OnnxPredictor, predictor: Predictor, texts: Sequence[str]) -> None:
    """The tokenizers library alone must give the artifact's token ids (truncation and special tokens included)."""
    probes = list(texts) + ["好" * (3 * onnx.max_length), "Ｆｕｌｌ－ｗｉｄｔｈ ＡＢＣ １２３", "MiXeD case, émoji 👍🏽!"]
    theirs = predictor.encode(probes)
    ours = onnx.encode(probes).ids
    for i, text in enumerate(probes):
        expected = theirs.ids[theirs.offsets[i]:theirs.offsets[i + 1]].tolist()
        if ours[i] != expected:
            raise NotExportable(f"this model cannot be exported to ONNX: the tokenizers library encodes {text[:40]!r} "
                                f"as {ours[i][:12]}..., the artifact's tokenizer as {expected[:12]}.... Deploy the "
                                "senti_lit artifact itself: python -m senti_lit.predict artifact=...")


def score(answers: list[dict[str, Any]], gold: list, names: Sequence[str], multi_label: bool) -> float:
    """Accuracy (single-label) or macro-F1 over the labels (multi-label) of `answers` against `gold`."""
    if not multi_label:
        return float(np.mean([a["label"] == g for a, g in zip(answers, gold)]))
    predicted = np.array([[n in a["labels"] for n in names] for a in answers])
    truth = np.array([[n in set(g) for n in names] for g in gold])
    tp = (predicted & truth).sum(0)
    wrong = (predicted ^ truth).sum(0)
    return float(np.mean(np.where(2 * tp + wrong > 0, 2 * tp / np.maximum(2 * tp + wrong, 1), 1.0)))


def compare(onnx: OnnxPredictor, expected: np.ndarray, reference: list[dict[str, Any]], texts: list[str],
            gold: list | None) -> dict[str, Any]:
    """How the ONNX model's answers on `texts` differ from the torch model's (`expected` probabilities,
    `reference` answers): largest probability difference, answers that agree, and accuracy (macro-F1 for
    multi-label) of both against the gold labels, or against the torch answers where there are none."""
    probs = onnx.probabilities(texts, batch_size=16)  # several batch shapes: the graph's axes are dynamic
    answers = onnx.answers(probs)
    key = "labels" if onnx.multi_label else "label"
    if gold is None:  # the torch model's answers are the reference: it scores 1
        gold = [a["labels"] if onnx.multi_label else a["label"] for a in reference]
    torch_score, onnx_score = (score(a, gold, onnx.names, onnx.multi_label) for a in (reference, answers))
    return {"max_probability_difference": float(np.abs(probs - expected).max()),
            "answers_agree": float(np.mean([a[key] == r[key] for a, r in zip(answers, reference)])),
            "metric": "macro_f1" if onnx.multi_label else "accuracy",
            "torch": torch_score, "onnx": onnx_score, "difference": onnx_score - torch_score}


def fused(fp32: Path, config, folder: Path, parity: Callable[[Path], float]) -> Path:
    """fp32 graph with onnxruntime's transformer fusions (attention, GELU, layer norm) for BERT-type models, kept
    only where its probabilities stay within TOLERANCE of the torch model's; else `fp32` unchanged."""
    if config.model_type not in BERT_TYPES:
        return fp32
    from onnxruntime.transformers.optimizer import optimize_model

    target = folder / "model.fused.onnx"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            optimize_model(str(fp32), model_type="bert", num_heads=config.num_attention_heads,
                           hidden_size=config.hidden_size).save_model_to_file(str(target))
        difference = parity(target)
    except Exception as e:  # noqa: BLE001 - the optimizer is best effort: the plain graph quantises too
        log.info("onnxruntime transformer optimizer not used: %s: %s", type(e).__name__, e)
        return fp32
    log.info("fused graph: largest probability difference to torch %.1e", difference)
    return target if difference <= TOLERANCE else fp32


def quantize_int8(fp32: Path, target: Path, config, parity: Callable[[Path], float]) -> bool:
    """Dynamic int8 quantisation of the weights (per output channel), of the fused graph where it keeps parity;
    returns whether the fused graph was used.

    reduce_range (7-bit weights): x86 CPUs without VNNI (AVX2, most AVX-512) saturate the int16 sums of the u8 x s8
    products with 8-bit weights; on this 2-core AVX2 EPYC the tiny mini_bert's logits moved by 0.32 with 8 bits,
    0.008 with 7 (onnxruntime's quantization docs name the same remedy). The export may run on another CPU than
    the one that serves it, so 7 bits always."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source = fused(fp32, config, target.parent, parity)
    with quiet_root_warning("pre-processing before quantization"):  # advice about static quantisation
        # the fused operators (com.microsoft domain) have no ONNX shape inference: their outputs are float
        quantize_dynamic(str(source), str(target), per_channel=True, reduce_range=True, weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": TensorProto.FLOAT})
    return source != fp32


@contextmanager
def quiet_root_warning(text: str) -> Iterator[None]:
    """Drop root-logger records containing `text` (onnxruntime's quantizer logs through the root logger)."""

    def keep(record: logging.LogRecord) -> bool:
        return text not in str(record.msg)

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


def metadata(meta: dict[str, Any], tokenizer, artifact: Path, quantize: str | None) -> dict[str, Any]:
    """onnx.json without its check: what OnnxPredictor needs and what the export came from."""
    labels, decision = meta["labels"], meta["decision"]
    return {
        "format": FORMAT, "senti_lit": senti_lit.__version__, "source": str(artifact.resolve()),
        "labels": labels, "multi_label": bool(labels.get("multi_label", False)),
        "decision": {**decision, "rule": decisions.rule(labels["names"], bool(labels.get("multi_label")),
                                                        decision["thresholds"], decision.get("positive_label"),
                                                        decision["temperature"])},
        "inputs": meta["inputs"],
        "tokenizer": {"file": "tokenizer/tokenizer.json", "pad_token_id": int(tokenizer.pad_token_id),
                      "truncation_side": tokenizer.truncation_side},
        "model": {"file": "model.onnx", "inputs": ["input_ids", "attention_mask"], "output": "logits (raw: "
                  "before the temperature)", "opset": OPSET, "exporter": "torch.onnx (TorchScript)",
                  "quantize": quantize and f"{quantize} (dynamic, weights per channel, 7-bit range)",
                  "backbone": meta["backbone"], "method": meta["method"],
                  "head": (meta.get("classifier") or {}).get("head")},
        "data": meta.get("data") or {}, "metrics": meta.get("metrics") or {},
    }


def check_output(artifact: Path, output: Path) -> None:
    """`output` is replaced whole: never the artifact (nor a folder holding it), nor a folder that is not an
    earlier ONNX export."""
    if artifact.resolve().is_relative_to(output.resolve()):
        raise ValueError(f"output={output} holds the artifact {artifact}, which the export would replace: choose "
                         "another output (default: <run>/export-onnx)")
    if output.exists() and not (output / "onnx.json").is_file() and (not output.is_dir() or any(output.iterdir())):
        raise FileExistsError(f"output={output} exists and is not an ONNX export (no onnx.json); the export "
                              "replaces its folder whole: choose another output, or remove it")


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def export_onnx(artifact: str | Path, output: str | Path, quantize: str | None = None,
                texts: Sequence[str] | None = None, trust_remote_code: bool = False) -> tuple[Path, dict[str, Any]]:
    """Export `artifact` to the folder `output` (replaced whole, only once the export is checked); returns it and
    its check. `texts`: the check's texts (default: the run's test split, else fixed samples)."""
    if quantize not in (None, "int8"):
        raise ValueError(f"quantize={quantize}: must be null (fp32) or int8")
    artifact, output = Path(artifact), Path(output)
    check_output(artifact, output)
    model, tokenizer, meta = load_artifact(artifact, trust_remote_code=trust_remote_code)
    check_exportable(model, meta)
    texts, gold, where = (list(texts), None, f"{len(texts)} given texts") if texts else run_test_texts(artifact)
    predictor = Predictor(model, tokenizer, meta, precision="32")
    expected = predictor.probabilities(texts).numpy()  # the artifact as loaded: before LoRA is merged
    reference = predictor.answers(torch.from_numpy(expected))
    model.backbone = merge_lora(model.backbone)
    output.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.partial-"))
    work.chmod(0o777 & ~current_umask())  # mkdtemp's 0700 would hide the folder from the group sharing results
    try:
        info = build(work, model, tokenizer, meta, artifact, quantize, predictor, texts, expected, reference, gold)
        info["check"]["texts"] = where
        write_json(work / "onnx.json", info)
        if output.exists():
            shutil.rmtree(output)
        work.rename(output)  # the folder appears checked and whole, or not at all
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return output, info["check"]


def build(work: Path, model, tokenizer, meta: dict[str, Any], artifact: Path, quantize: str | None,
          predictor: Predictor, texts: list[str], expected: np.ndarray, reference: list, gold: list | None) -> dict:
    """model.onnx, tokenizer/ and the metadata in `work`, checked; returns the metadata with its check."""
    info = metadata(meta, tokenizer, artifact, quantize)
    fp32 = work / "model.onnx"  # replaced by its int8 form with quantize=int8
    try:
        with eager_attention(model.backbone):
            trace(model, tokenizer.pad_token_id, fp32, input_spec(meta).max_length)
    except Exception as e:  # noqa: BLE001 - whatever the tracer cannot follow, in one line
        raise NotExportable(f"this model cannot be exported to ONNX: the exporter cannot trace it ({type(e).__name__}: "
                            f"{str(e).splitlines()[0][:200] if str(e) else ''}). Deploy the senti_lit artifact itself: "
                            "python -m senti_lit.predict artifact=...") from None
    save_tokenizer(tokenizer, artifact / "tokenizer", work / "tokenizer")
    onnx = OnnxPredictor(work, info)
    check_encoding(onnx, predictor, texts)

    def parity(path: Path) -> float:
        onnx.session = session(path)
        return compare(onnx, expected, reference, texts, gold)["max_probability_difference"]

    fp32_difference = parity(fp32)
    if fp32_difference > TOLERANCE:
        raise NotExportable(f"the ONNX model's probabilities differ from the artifact's by {fp32_difference:.2e} "
                            f"(> {TOLERANCE:.0e}) on the check texts: not exported; deploy the senti_lit artifact")
    if quantize:
        info["model"]["fused"] = quantize_int8(fp32, work / "model.int8.onnx", base_config(model.backbone), parity)
        (work / "model.int8.onnx").replace(fp32)
        (work / "model.fused.onnx").unlink(missing_ok=True)
    onnx.session = session(work / "model.onnx")
    info["check"] = {"fp32_max_probability_difference": fp32_difference,
                     **compare(onnx, expected, reference, texts, gold)}
    return info
