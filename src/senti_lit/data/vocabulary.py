"""Words kept whole (`data.tokenizer.keep_whole`, course report §4.1.2): domain words and sentiment phrases become
single tokens instead of characters or sub-words, and the model's embedding matrix grows to hold them.

A new word's embedding starts as the mean of the embeddings of the pieces it used to be split into, so a
pretrained model reads it, from the first step, about as it read the pieces (a random row would be noise).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:  # read_words is torch-free (data.splits reads keep_whole); torch only where embeddings grow
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)


def read_words(spec: str | Sequence[str] | None) -> list[str]:
    """A list of words, or a file of them (one per line; blank lines and `#` comments skipped), deduplicated."""
    if not spec:
        return []
    if isinstance(spec, str):
        path = Path(spec)
        if not path.is_file():
            raise FileNotFoundError(f"data.tokenizer.keep_whole={spec}: no such file (give a list [w1,w2] or a "
                                    "file with one word per line)")
        words = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        words = [w for w in words if w and not w.startswith("#")]
    else:
        words = [str(w).strip() for w in spec if str(w).strip()]
    return list(dict.fromkeys(words))


def add_whole_words(tokenizer: PreTrainedTokenizerBase, words: Sequence[str]) -> dict[str, list[int]]:
    """Add `words` that are not single tokens yet; {added word: the token ids it was split into before}."""
    if not words:
        return {}
    pieces: dict[str, list[int]] = {}
    for word in words:
        ids = tokenizer(word, add_special_tokens=False)["input_ids"]
        if len(ids) == 1 and ids[0] != tokenizer.unk_token_id:
            continue  # already one token
        if not ids:
            raise ValueError(f"data.tokenizer.keep_whole: {word!r} encodes to no tokens")
        pieces[word] = ids
    added = tokenizer.add_tokens(list(pieces))
    if added != len(pieces):
        raise ValueError(f"data.tokenizer.keep_whole: {len(pieces)} words to add, the tokenizer took {added}")
    log.info("tokenizer: %d of %d keep_whole words added as single tokens (the rest already were), vocabulary %d",
             len(pieces), len(words), len(tokenizer))
    return pieces


def init_whole_words(backbone: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                     pieces: dict[str, list[int]]) -> None:
    """Grow the embeddings to the tokenizer's size (a pretrained backbone) and start each added word's row (input,
    and an untied LM head's output row) at the mean of its pieces' rows."""
    if not pieces:
        return
    import torch

    if backbone.get_input_embeddings().weight.size(0) < len(tokenizer):
        backbone.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    matrices = [backbone.get_input_embeddings().weight]
    output = backbone.get_output_embeddings()
    if output is not None and output.weight is not matrices[0]:
        matrices.append(output.weight)
    with torch.no_grad():
        for word, ids in pieces.items():
            new = tokenizer.convert_tokens_to_ids(word)
            for matrix in matrices:
                matrix[new] = matrix[ids].mean(dim=0)
