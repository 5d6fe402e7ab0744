"""OnnxPredictor: an ONNX export (`python -m senti_lit.export ... format=onnx`) answering texts with numpy, the
`tokenizers` library and onnxruntime only: no torch, transformers or Lightning is imported (a one-text predict
starts in a fraction of the torch path's time). Same answers as the torch `Predictor`: the decision rule is
`inference.decisions`, the encoding reproduces the artifact's InputSpec for plain text (checked at export).

    <export>/model.onnx         input_ids + attention_mask (int64, batch x sequence) -> raw logits (batch x labels)
    <export>/tokenizer/         tokenizer.json (what `tokenizers.Tokenizer.from_file` loads) and its companions
    <export>/onnx.json          labels, decision rule, InputSpec, the source artifact's metrics, the export's check
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from senti_lit.core.files import read_json
from senti_lit.inference import decisions

FORMAT = 1
BACKENDS = ("auto", "torch", "onnx")
REQUIRED = ("format", "labels", "decision", "inputs", "tokenizer")


def choose_backend(backend: str, folder: str | Path) -> str:
    """`torch` or `onnx` for `artifact=folder`: auto is onnx when the folder holds onnx.json (an export), else
    torch; a backend the folder cannot serve is a one-line error saying what to do."""
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend}: must be one of {', '.join(BACKENDS)}")
    folder = Path(folder)
    exported = (folder / "onnx.json").is_file()
    if backend == "auto":
        return "onnx" if exported else "torch"
    if backend == "onnx" and not exported:
        if not folder.is_dir():
            raise FileNotFoundError(f"artifact={folder}: no such folder")
        raise ValueError(f"artifact={folder} holds no onnx.json (backend=onnx reads an ONNX export): export it "
                         f"first: python -m senti_lit.export artifact={folder} format=onnx, then give "
                         "artifact=<run>/export-onnx")
    if backend == "torch" and exported and not (folder / "artifact.json").is_file():
        source = read_meta(folder).get("source") or "its training run's artifact/"
        raise ValueError(f"artifact={folder} is an ONNX export: use backend=onnx (or auto), or backend=torch with "
                         f"the artifact it was exported from ({source})")
    return backend


def load_predictor(folder: str | Path, backend: str = "auto", *, device: str = "cpu", threads: int | None = None,
                   threshold: Any = None, precision: str = "32", trust_remote_code: bool = False) -> Any:
    """The model in `folder` for predict, evaluate and serve: `OnnxPredictor` for an ONNX export (backend auto or
    onnx: numpy, tokenizers and onnxruntime; torch is never imported), else the torch `Predictor` (`threads`: its
    intra-op threads)."""
    if choose_backend(backend, folder) == "onnx":
        return OnnxPredictor.load(folder, threads=threads, threshold=threshold, device=device)
    import torch

    from senti_lit.inference.predictor import Predictor  # torch: only for a torch artifact

    if threads:
        torch.set_num_threads(int(threads))
    return Predictor.load(folder, device=device, precision=str(precision), threshold=threshold,
                          trust_remote_code=trust_remote_code)


def read_meta(folder: Path) -> dict[str, Any]:
    """onnx.json, checked: a missing, damaged or foreign file is an error that names it."""
    path = Path(folder) / "onnx.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: not an ONNX export (no onnx.json); make one with python -m "
                                "senti_lit.export artifact=<run>/artifact format=onnx")
    meta = read_json(path)
    missing = [k for k in REQUIRED if k not in meta] if isinstance(meta, dict) else list(REQUIRED)
    if missing:
        raise ValueError(f"{path}: not a senti_lit ONNX export's metadata (missing {', '.join(missing)}); export "
                         "again")
    if meta["format"] != FORMAT:
        raise ValueError(f"{path}: ONNX export format {meta['format']}, this senti_lit reads format {FORMAT}")
    return meta


def load_tokenizer(path: Path, max_length: int, truncation_side: str = "right"):
    """The export's tokenizer, set to cut texts as the artifact's InputSpec does (`max_length`, special tokens
    included) and never to pad (batches are padded here, to their longest text)."""
    from tokenizers import Tokenizer

    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; the ONNX export is incomplete (export again, or copy the whole "
                                "folder)")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as e:  # noqa: BLE001 - the library raises a bare Exception for a damaged file
        raise ValueError(f"{path}: the tokenizer cannot be loaded ({str(e).splitlines()[0][:200]}); export again, "
                         "or copy the whole folder") from None
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length, strategy="longest_first", direction=truncation_side)
    return tokenizer


def session(path: Path, threads: int | None = None):
    """An onnxruntime CPU session on `path`: every graph optimisation, `threads` intra-op threads (default: every
    core the machine has)."""
    import onnxruntime as ort

    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; the ONNX export is incomplete (export again, or copy the whole "
                                "folder)")
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads or os.cpu_count() or 1)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: its warnings (unused initialisers...) are not the user's business
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime's errors are its own pybind types
        raise ValueError(f"{path}: cannot load this ONNX model ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                         "the file is truncated or damaged: export again") from None


class Encoded:
    """Token ids per text (what `OnnxPredictor.encode` returns; `lengths()` as the torch EncodedDataset's)."""

    def __init__(self, ids: list[list[int]]) -> None:
        self.ids = ids

    def __len__(self) -> int:
        return len(self.ids)

    def lengths(self) -> list[int]:
        return [len(x) for x in self.ids]


class OnnxPredictor(decisions.Answering):
    """Texts in, calibrated probabilities and decisions out, from an ONNX export (sorted by length into batches:
    little padding). The public surface of `Predictor` that predict, evaluate and serve use."""

    def __init__(self, folder: str | Path, meta: dict[str, Any], threads: int | None = None,
                 threshold: float | Sequence[float] | None = None) -> None:
        self.folder, self.meta = Path(folder), meta
        labels, decision = meta["labels"], meta["decision"]
        self.names = [str(n) for n in labels["names"]]
        self.multi_label = bool(labels.get("multi_label", False))
        self.aliases = dict(labels.get("aliases") or {})
        self.temperature = float(decision.get("temperature", 1.0))
        self.positive_index = decisions.positive_index(self.names, decision.get("positive_label"))
        # as the artifact saved them: one per label (multi-label), [P(positive) cut] or [] (argmax)
        self.thresholds = np.asarray(decision.get("thresholds") or [], dtype=np.float32)
        self.max_length = int(meta["inputs"]["max_length"])
        self.pad_id = int(meta["tokenizer"]["pad_token_id"])
        self.truncation_side = meta["tokenizer"].get("truncation_side", "right")
        self.tokenizer = load_tokenizer(self.folder / "tokenizer" / "tokenizer.json", self.max_length,
                                        self.truncation_side)
        self.session = session(self.folder / "model.onnx", threads)
        self._longer = None  # the tokenizer cutting one token later (`truncated`), made on first use
        if threshold is not None:
            self.set_threshold(threshold)

    @classmethod
    def load(cls, folder: str | Path, threads: int | None = None, threshold: float | Sequence[float] | None = None,
             device: str = "cpu") -> "OnnxPredictor":
        if str(device) != "cpu":
            raise ValueError(f"device={device}: backend=onnx runs on the CPU (onnxruntime's CPU build); use "
                             "backend=torch with the training artifact for a GPU")
        return cls(folder, read_meta(Path(folder)), threads=threads, threshold=threshold)

    def thresholds_for(self, threshold: float | Sequence[float]) -> np.ndarray:
        """The decision thresholds `threshold` stands for (binary: P(positive) cut; multi-label: one or one per
        label); a ValueError names what this task accepts."""
        return decisions.thresholds_for(self.names, self.multi_label, threshold)

    def set_threshold(self, threshold: float | Sequence[float]) -> None:
        """Override the export's decision thresholds (binary: P(positive) cut; multi-label: one or one per label)."""
        self.thresholds = self.thresholds_for(threshold)

    def encode(self, texts: Sequence[str], knowledge: Sequence[str | None] | None = None) -> Encoded:
        """Token ids of `texts`, cut to max_length with the special tokens added, as the artifact's InputSpec does
        for plain text."""
        if knowledge is not None and any(k is not None for k in knowledge):
            raise ValueError("this ONNX export reads texts alone: explanations (knowledge) are not part of it")
        return Encoded([e.ids for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=True)])

    def truncated(self, texts: Sequence[str], encoded: Encoded,
                  knowledge: Sequence[str | None] | None = None) -> list[bool]:
        """Per text: whether `encode` cut it to max_length. Truncation leaves exactly max_length tokens, so only
        texts at the limit are encoded again, one token longer: cut iff that is longer."""
        lengths = encoded.lengths()
        at_limit = [i for i, n in enumerate(lengths) if n >= self.max_length]
        out = [False] * len(lengths)
        if at_limit:
            if self._longer is None:
                self._longer = load_tokenizer(self.folder / "tokenizer" / "tokenizer.json", self.max_length + 1,
                                              self.truncation_side)
            again = self._longer.encode_batch([texts[i] for i in at_limit], add_special_tokens=True)
            for i, e in zip(at_limit, again):
                out[i] = len(e.ids) > self.max_length
        return out

    def logits(self, texts: Sequence[str], knowledge: Sequence[str | None] | None = None, batch_size: int = 64,
               progress: bool = False, encoded: Encoded | None = None) -> np.ndarray:
        """(len(texts), num_labels) raw logits, before the calibration temperature, in input order."""
        encoded = self.encode(texts, knowledge) if encoded is None else encoded
        order = sorted(range(len(encoded)), key=lambda i: len(encoded.ids[i]))
        out = np.empty((len(encoded), len(self.names)), dtype=np.float32)
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        for rows in with_progress(batches, progress):
            input_ids, mask = self.pad([encoded.ids[i] for i in rows])
            out[rows] = self.session.run(["logits"], {"input_ids": input_ids, "attention_mask": mask})[0]
        return out

    def pad(self, ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """A batch padded on the right (as training's collator pads) to its longest text, and its attention mask."""
        width = max(len(x) for x in ids)
        input_ids = np.full((len(ids), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for row, x in enumerate(ids):
            input_ids[row, :len(x)], mask[row, :len(x)] = x, 1
        return input_ids, mask

    def probabilities(self, texts: Sequence[str], knowledge: Sequence[str | None] | None = None,
                      batch_size: int = 64, progress: bool = False, encoded: Encoded | None = None) -> np.ndarray:
        """(len(texts), num_labels) calibrated probabilities, in input order."""
        logits = self.logits(texts, knowledge, batch_size, progress, encoded)
        return decisions.probabilities(logits, self.temperature, self.multi_label)

    def answers(self, probs: np.ndarray, top_k: int = 1, thresholds: np.ndarray | None = None
                ) -> list[dict[str, Any]]:
        """`predict`'s answers from `probabilities`' rows, decided by the export's rule or by `thresholds`
        (`thresholds_for(...)`: one caller's rule, leaving the export's untouched)."""
        rule = self.thresholds if thresholds is None else np.asarray(thresholds, dtype=np.float32)
        decided = decisions.decide(probs, rule, self.multi_label, self.positive_index)
        return decisions.answers(probs, decided, self.names, self.multi_label, top_k)


def with_progress(batches: list, progress: bool):
    """`batches`, with a progress bar on stderr (stdout stays for the answers) when asked and stderr is a terminal."""
    if not progress:
        return batches
    from rich.console import Console
    from rich.progress import track

    console = Console(stderr=True)
    return track(batches, description="predicting", disable=not console.is_terminal, transient=True,
                 console=console)
