"""Tokenizers: loaded from a Hub id or local dir, or trained on the training texts for from-scratch models."""
from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast
from transformers.utils import logging as hf_logging

from senti_lit.weights.paths import resolve_path

log = logging.getLogger(__name__)

SPECIAL_TOKENS = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                  "mask_token": "[MASK]"}


def build_tokenizer(
    path: str | None = None, train: dict | None = None, texts: Iterable[str] | None = None,
    cache_dir: Path | None = None, trust_remote_code: bool = False,
) -> PreTrainedTokenizerBase:
    """`path` (Hub id or local dir) loads a tokenizer; otherwise `train` settings train one on `texts`.

    `cache_dir` (the data cache folder of these training texts) keeps a trained tokenizer for the next run.
    """
    if path:
        # AutoTokenizer also reads the model's config (to pick a tokenizer class) and would log that config's known
        # defects (the Chinese GPT2's out-of-vocabulary bos/eos ids), which build_backbone fixes; quiet here only
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            tokenizer = AutoTokenizer.from_pretrained(resolve_path(path), trust_remote_code=trust_remote_code)
        finally:
            hf_logging.set_verbosity(verbosity)
        return for_classification(tokenizer)
    if train is None or texts is None:
        raise ValueError("model.tokenizer needs either `path` (Hub id or local dir) or `train` settings")
    if cache_dir is None:
        return train_tokenizer(list(texts), **train)
    from senti_lit.core.config import plain
    from senti_lit.data.cache import digest  # the cache keys' hashing

    folder = Path(cache_dir) / f"tokenizer-{digest(plain(train))}"
    if (folder / "tokenizer.json").is_file():
        log.info("tokenizer: from cache %s", folder)
        return PreTrainedTokenizerFast.from_pretrained(folder)
    tokenizer = train_tokenizer(list(texts), **train)
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cache_dir, prefix=".tokenizer-"))
    tokenizer.save_pretrained(tmp)
    try:
        tmp.rename(folder)  # all files at once: a concurrent run never sees half a tokenizer
    except OSError:  # another run got there first: its tokenizer is the same
        shutil.rmtree(tmp, ignore_errors=True)
    return tokenizer


def for_classification(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Right padding (the `last` pooling and causal LMs read up to the last real token) and a pad token for
    tokenizers that have none (GPT2's): its end-of-text token, which attention masks out anyway."""
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"{tokenizer.name_or_path}: the tokenizer has neither a pad nor an eos token; set one")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def train_tokenizer(
    texts: list[str],
    algorithm: str = "bpe",
    vocab_size: int = 8000,
    min_frequency: int = 2,
    split_cjk_chars: bool = True,
    lowercase: bool = True,
    model_max_length: int = 512,
) -> PreTrainedTokenizerFast:
    """A BERT-style tokenizer ([CLS] text [SEP]) learned from `texts`.

    `bpe` is the default because its training is reproducible; the WordPiece trainer numbers its `##` tokens in
    hash-map order, so the same texts can give different vocabularies (huggingface/tokenizers#1794).

    `split_cjk_chars=True` isolates every Chinese character before the subword model sees the text (BERT's Chinese
    scheme: the vocabulary is characters); False lets the subword model learn multi-character words from the corpus.
    """
    if algorithm == "wordpiece":
        model, trainer_cls, decoder = models.WordPiece(unk_token="[UNK]"), trainers.WordPieceTrainer, decoders.WordPiece()
    elif algorithm == "bpe":
        model, trainer_cls, decoder = models.BPE(unk_token="[UNK]"), trainers.BpeTrainer, decoders.BPEDecoder()
    else:
        raise ValueError(f"model.tokenizer.train.algorithm must be 'wordpiece' or 'bpe', got {algorithm!r}")
    tok = Tokenizer(model)
    tok.normalizer = normalizers.Sequence([
        normalizers.NFKC(),  # full-width letters, digits and punctuation -> their usual forms
        normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=split_cjk_chars, strip_accents=None, lowercase=lowercase
        ),
    ])
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoder
    special = list(SPECIAL_TOKENS.values())
    trainer = trainer_cls(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=special,
                          show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    log.info("tokenizer: trained %s on %d texts, vocabulary %d", algorithm, len(texts), tok.get_vocab_size())
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=model_max_length, **SPECIAL_TOKENS)
