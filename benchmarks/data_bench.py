"""Data benchmark (`make bench-data`): every reader over the real dataset copies, and the data pipeline at scale.

1. Readers: each data config over its files in ../shared/data (when that folder exists): rows read, kept, dropped
   by reason, split sizes, train label histogram, seconds to read + clean + split.
2. Scale: files in the published formats at full size (weibo 120k rows, emotion_sentiment 840k and 1M rows), made
   by resampling the real texts (only partial copies of those two datasets exist offline), each row made unique
   with a few extra words. Each pass runs in a fresh process: first pass (read, clean, split, tokenize, write
   the cache) and cached pass (load the cache); rows/s, their ratio and each process's peak RSS.
Each reader and each scale row becomes one record of the results store (benchmarks/store.py) and BENCHMARKS.md is
regenerated.

    python benchmarks/data_bench.py [--shared ../shared/data] [--quick]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from make_table import write_markdown
from store import git_commit, record

ROOT = Path(__file__).resolve().parents[1]

READERS_CAPTION = ("Data readers on the real copies in ../shared/data: rows read, kept, dropped by reason, split "
                   "sizes, train labels, seconds to read + clean + split")
SCALE_CAPTION = ("Data pipeline at scale: synthetic files in the published formats (resampled real texts), each pass "
                 "in a fresh process; first = read, clean, split, tokenize, write the cache; cached = load it")

# (config, path inside the shared folder, note)
READERS = [
    ("weibo", "weibo_senti_100k/dev.tsv", "dev copy only (the train copy is not available offline)"),
    ("weibo", "weibo_senti_100k/test.tsv", "test copy"),
    ("chnsenticorp", "ChnSentiCorp/ChnSentiCorp_htl_all.csv", "complete"),
    ("chnsenticorp", "ChnSentiCorp/baidu_chnsenticorp_train.tsv", "Baidu train split only"),
    ("ocemotion", "OCEMOTION/clue_emotion2020_valid.jsonl", "CLUEmotion2020 valid split (substitute)"),
    ("goemotions", "go_emotions", "train + dev (test split off train)"),
    ("cecps8", "ren_cecps_8label/train1.csv", "one-hot form, 25,000 rows"),
    ("emotions_in_text", "emotions_in_text", "complete"),
    ("tweet_emotions", "tweet_emotions", "complete"),
    ("emotion_sentiment", "emotion_analysis_based_on_text/emotion_sentimen_dataset_head500.csv", "500-row head"),
]


def compose(config: str, path: Path, cache_dir: Path | None, *overrides: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from senti_lit.core.config import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return hydra_compose("train", overrides=[
            f"data={config}", f"data.path={path}", f"data.cache_dir={cache_dir or 'null'}",
            "paths.output_dir=/tmp/senti_bench", *overrides])


def read_one(config: str, path: Path) -> dict:
    from hydra.utils import instantiate

    dm = instantiate(compose(config, path, None).data)
    start = time.perf_counter()
    try:
        dm.prepare_splits()
    except Exception as e:  # a reader that fails is a result too
        return {"error": f"{type(e).__name__}: {e}"[:160]}
    summary = dm.summary()
    summary["seconds"] = time.perf_counter() - start
    return summary


def readers(shared: Path):
    """(file, fields, metrics) of each reader over its real copy."""
    for config, rel, note in READERS:
        path = shared / rel
        if not path.exists():
            continue
        s = read_one(config, path)
        if "error" in s:
            yield rel, {"config": config, "about": note, "error": s["error"]}, {}
            continue
        d = s["dropped"]
        fields = {"config": config, "about": note,
                  "train / val / test": " / ".join(str(v["size"]) for v in s["splits"].values()),
                  "train labels": ", ".join(f"{k} {v}" for k, v in s["splits"]["train"]["labels"].items())}
        yield rel, fields, {"rows read": s["rows_read"], "kept": s["kept"], "empty": d["empty"],
                            "duplicates": d["duplicates"], "train copies of val/test texts": d["cross_split"],
                            "contradictory rows": d["contradictory_rows"], "bad rows": sum(d["bad_rows"].values()),
                            "s": round(s["seconds"], 1)}


# -- scale -------------------------------------------------------------------------------------------------------
EMOTIONS = ["neutral", "worry", "happiness", "sadness", "love", "surprise", "fun", "relief", "hate", "empty",
            "enthusiasm", "boredom", "anger"]


def real_texts(shared: Path, chinese: bool) -> list[str]:
    if chinese:
        texts = []
        for name in ("dev.tsv", "test.tsv"):
            with (shared / "weibo_senti_100k" / name).open(encoding="utf-8") as f:
                texts += [line.rstrip("\n").split("\t", 1)[1] for line in list(f)[1:]]
        return texts
    with (shared / "emotions_in_text" / "Emotion_final.csv").open(encoding="utf-8") as f:
        texts = [row["Text"] for row in csv.DictReader(f)]
    with (shared / "tweet_emotions" / "tweet_emotions.csv").open(encoding="utf-8") as f:
        return texts + [row["content"] for row in csv.DictReader(f)]


def synthesize(shared: Path, kind: str, rows: int, out: Path) -> Path:
    """A file in the published format with `rows` rows of resampled real texts (made unique by extra words)."""
    rng = random.Random(0)
    texts = real_texts(shared, chinese=kind == "weibo")
    words = sorted({w for t in texts[:5000] for w in (t if kind == "weibo" else t.split())})
    joiner = "" if kind == "weibo" else " "
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["label", "review"] if kind == "weibo" else ["", "text", "Emotion"])
        for i in range(rows):
            text = rng.choice(texts) + joiner + joiner.join(rng.choices(words, k=3))
            if kind == "weibo":
                writer.writerow([rng.randint(0, 1), text])
            else:  # ~85% neutral, like the real file
                label = "neutral" if rng.random() < 0.85 else rng.choice(EMOTIONS[1:])
                writer.writerow([i, text, label])
    return out


def one_pass(config: str, path: Path, cache: Path, tokenizer_dir: Path) -> dict:
    """Runs in its own process: read -> clean -> split -> tokenize (or load the cache); time and peak RSS."""
    from hydra.utils import instantiate
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    dm = instantiate(compose(config, path, cache).data)
    start = time.perf_counter()
    dm.set_tokenizer(tokenizer)
    seconds = time.perf_counter() - start
    tokens = sum(int(ds.offsets[-1]) for ds in dm.datasets.values())
    return {"seconds": seconds, "rows": dm.clean_report.rows_read, "tokens": tokens, "cache": dm.cache_hits,
            "cache_key": getattr(dm, "cache_key", None), "cached_files": sorted(str(p.relative_to(cache))
                                                                             for p in cache.rglob("*")),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_pass(config: str, path: Path, cache: Path, tokenizer_dir: Path) -> dict:
    cmd = [sys.executable, __file__, "--one", config, str(path), str(cache), str(tokenizer_dir)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def scale(shared: Path, quick: bool):
    """(row id, fields, metrics) of each file size: a first pass and a cached pass, each in a fresh process."""
    from senti_lit.data.tokenization import train_tokenizer

    sizes = [("weibo", 120_000), ("emotion_sentiment", 840_000), ("emotion_sentiment", 1_000_000)]
    if quick:
        sizes = [("weibo", 20_000), ("emotion_sentiment", 50_000)]
    with tempfile.TemporaryDirectory(prefix="senti_bench_") as tmp:
        tmp = Path(tmp)
        for config, rows in sizes:
            name = "weibo_senti_100k.csv" if config == "weibo" else "emotion_sentimen_dataset.csv"
            path = synthesize(shared, config, rows, tmp / f"{config}_{rows}" / name)
            tokenizer_dir = tmp / f"tok_{config}"
            if not tokenizer_dir.exists():  # the mini_bert default: BPE learned from (a sample of) the texts
                sample = [line for _, line in zip(range(50_000), path.open(encoding="utf-8"))]
                train_tokenizer(sample, vocab_size=8000, split_cjk_chars=False).save_pretrained(tokenizer_dir)
            cache = tmp / f"cache_{config}_{rows}"
            first = run_pass(config, path, cache, tokenizer_dir)
            cached = run_pass(config, path, cache, tokenizer_dir)
            assert first["cache"] == {"examples": False, "tokens": False}, first
            assert cached["cache"] == {"examples": True, "tokens": True}, (first, cached)
            yield f"{config}, {first['rows']:,} rows", {"config": config}, {
                "rows": first["rows"], "tokens": first["tokens"], "first pass s": round(first["seconds"], 1),
                "first pass rows/s": round(first["rows"] / first["seconds"]),
                "cached pass s": round(cached["seconds"], 2),
                "cached pass rows/s": round(cached["rows"] / cached["seconds"]),
                "speed-up (x)": round(first["seconds"] / cached["seconds"]),
                "peak RSS first MB": round(first["peak_rss_mb"]), "peak RSS cached MB": round(cached["peak_rss_mb"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--quick", action="store_true", help="small scale run (smoke test of the benchmark)")
    parser.add_argument("--one", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    from senti_lit.core.runtime import quiet_known_warnings

    quiet_known_warnings()
    if args.one:
        config, path, cache, tokenizer_dir = args.one
        print(json.dumps(one_pass(config, Path(path), Path(cache), Path(tokenizer_dir))))
        return
    if not args.shared.is_dir():
        raise SystemExit(f"{args.shared}: no real dataset copies here; pass --shared DIR")
    commit = git_commit()
    command = "python benchmarks/data_bench.py" + (" --quick" if args.quick else "")
    for caption, rows in ((READERS_CAPTION, readers(args.shared)), (SCALE_CAPTION, scale(args.shared, args.quick))):
        for id, fields, metrics in rows:
            print(record("data", id, command, metrics, f"{caption}; {os.cpu_count()} CPU cores", fields=fields,
                         commit=commit), flush=True)
    write_markdown()


if __name__ == "__main__":
    main()
