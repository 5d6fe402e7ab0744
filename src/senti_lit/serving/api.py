"""The LitAPI of `senti_lit.serve`: each inference worker loads the artifact's `Predictor` (backend=torch) or the
ONNX export's `OnnxPredictor` (backend=onnx: numpy, tokenizers and onnxruntime; the worker never imports torch);
LitServe hands it one request or, with `max_batch_size > 1`, the requests that arrived within `batch_timeout`, and
all their texts are sorted by length and cut into forward batches of similar lengths (`forward_batches`): a short
text is not padded to a long one's length. Both predictors have the same surface and decide through
`inference.decisions`: the same texts give the same JSON whichever backend serves them."""
# no `from __future__ import annotations`: LitServe reads decode_request's annotation as a class, to make it
# the body FastAPI validates
import hmac
import logging
import os
import signal
from collections.abc import Iterator, Sequence
from typing import Any

import litserve as ls
from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse

from senti_lit.serving.schema import PredictRequest

log = logging.getLogger(__name__)
FAILED = "senti_lit: this request failed"  # a request's answer when the model failed on it alone


# A forward call's own cost, in tokens of compute: MiniLM under onnxruntime, one thread, runs one 8-token text alone
# in 7.2 ms and in a batch of 32 in 2.9 ms a text (the weights are read once per call), and long texts at ~0.39 ms a
# token: a call costs ~11 tokens (torch adds its Python per call). Batching on this CPU saves no more than that, so
# padding must not cost more: 32 requests' texts (demo test texts, 18-128 tokens) padded to their longest in one
# forward pass ran at 16 texts/s, one at a time at 30-39, cut by `forward_batches` at 33-38 (load average ~2.4).
CALL_TOKENS = 16


def forward_batches(lengths: Sequence[int], batch_size: int, call_tokens: float | None = CALL_TOKENS
                    ) -> list[list[int]]:
    """The texts' indices sorted by length and cut into forward batches of at most `batch_size`: a text starts a new
    batch when joining the one before would pad it by more than `call_tokens` tokens, what a call of its own costs
    (None: never; batches of `batch_size`, as offline prediction cuts them)."""
    batches: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        last = batches[-1] if batches else []
        padding = len(last) * (lengths[i] - lengths[last[-1]]) if last else 0
        if last and len(last) < batch_size and (call_tokens is None or padding <= call_tokens):
            last.append(i)
        else:
            batches.append([i])
    return batches


class SentimentAPI(ls.LitAPI):
    def __init__(self, artifact: str, *, backend: str = "torch", precision: str = "32", threshold: Any = None,
                 trust_remote_code: bool = False, batch_size: int = 64, threads: int | None = None,
                 max_batch_size: int = 8, batch_timeout: float = 0.01) -> None:
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout, api_path="/predict")
        if backend not in ("torch", "onnx"):  # `auto` is resolved by build_server, which can read the folder
            raise ValueError(f"backend={backend}: the worker loads torch or onnx")
        self.artifact, self.backend, self.precision, self.threshold = artifact, backend, precision, threshold
        self.trust_remote_code, self.batch_size, self.threads = trust_remote_code, batch_size, threads
        self.call_tokens: float | None = CALL_TOKENS

    def setup(self, device: str) -> None:
        # The main process orders the shutdown (HTTP servers drain first, then the workers stop): a Ctrl+C that
        # reaches the whole process group must not kill a worker while answers are still owed.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        from senti_lit.core.runtime import quiet_known_warnings

        quiet_known_warnings()
        from senti_lit.inference.onnx_predictor import load_predictor  # numpy only: torch just for a torch artifact

        self.predictor = load_predictor(self.artifact, self.backend, device=device, threads=self.threads,
                                        threshold=self.threshold, precision=self.precision,
                                        trust_remote_code=self.trust_remote_code)
        # on a GPU a call's fixed cost outweighs padding: plain batches of batch_size
        self.call_tokens = CALL_TOKENS if str(device) == "cpu" else None
        self.predictor.predict(["warm-up"])  # one-time kernel and allocator set-up is not the first client's wait
        self.pid = os.getpid()

    async def authorize(self, request: Request) -> None:
        """LitServe's auth hook, the FastAPI dependency of /predict, /health and /info, as a coroutine: LitServe's
        default is a plain function, which FastAPI hands to its thread pool on every request (one request at a time
        on a tiny model: 77-78 req/s with it, 84-85 without). Our API key is app.py's middleware (`api_key_env`);
        LitServe's own LIT_SERVER_API_KEY is still checked here, as LitServe checks it."""
        key = os.environ.get("LIT_SERVER_API_KEY")
        if key and not hmac.compare_digest(request.headers.get("x-api-key", "").encode(), key.encode()):
            raise HTTPException(401, "Invalid API Key. Check that you are passing a correct 'X-API-Key' in your header.")

    def decode_request(self, request: PredictRequest) -> PredictRequest:
        # The annotation is the contract: FastAPI validates the body against it in the HTTP process (schema.py)
        return request

    def predict(self, x: PredictRequest | list[PredictRequest]) -> Any:
        """One request (max_batch_size=1: LitServe's plain loop) or a list of them (its batched loop). When a batch
        fails, each of its requests is answered on its own: one bad request never fails another."""
        if not isinstance(x, list):
            return self.answer([x])[0]
        try:
            return self.answer(x)
        except Exception:  # noqa: BLE001 - whatever a text did to the model, the other requests are answered
            log.exception("a batch of %d requests failed; answering each on its own", len(x))
            return [self.answer_alone(r) for r in x]

    def answer_alone(self, request: PredictRequest) -> Any:
        try:
            return self.answer([request])[0]
        except Exception:  # noqa: BLE001
            log.exception("a request failed on its own")
            return FAILED

    def answer(self, requests: list[PredictRequest]) -> list[Any]:
        """Every text of `requests` through the model, in forward batches of similar lengths; one answer per
        request, decided by its own threshold and top_k."""
        owners = [n for n, r in enumerate(requests) for _ in r.items]
        texts = [text for r in requests for text in r.items]
        knowledge = None
        if any(r.knowledge is not None for r in requests):
            knowledge = [k for r in requests for k in (r.explanations or [None] * len(r.items))]
        predictor = self.predictor
        encoded = predictor.encode(texts, knowledge)
        cut = predictor.truncated(texts, encoded, knowledge)
        rules = [predictor.thresholds_for(r.threshold) if r.threshold is not None else None for r in requests]
        answers: list[Any] = [None] * len(texts)
        for rows, probs in self.forward(texts, knowledge, encoded):
            for row, i in enumerate(rows):
                answers[i] = predictor.answers(probs[row:row + 1], requests[owners[i]].top_k, rules[owners[i]])[0]
                answers[i]["truncated"] = cut[i]
        outputs, start = [], 0
        for r in requests:
            mine, start = answers[start:start + len(r.items)], start + len(r.items)
            outputs.append(mine[0] if r.text is not None else {"predictions": mine})
        return outputs

    def forward(self, texts: list[str], knowledge: list | None, encoded: Any) -> Iterator[tuple[Sequence[int], Any]]:
        """(the rows of `texts`, their probabilities) per forward batch (`forward_batches`)."""
        batches = forward_batches(encoded.lengths(), self.batch_size, self.call_tokens)
        if len(batches) == 1:  # one forward batch (a lone request, texts of one length): the encoding above serves
            yield range(len(texts)), self.predictor.probabilities(texts, knowledge, self.batch_size, encoded=encoded)
            return
        for rows in batches:
            # tokenized again: each predictor has its own encoding type; 32 texts take ~4 ms, their forward ~800 ms
            part = None if knowledge is None else [knowledge[i] for i in rows]
            yield rows, self.predictor.probabilities([texts[i] for i in rows], part, self.batch_size)

    def encode_response(self, output: Any) -> Any:
        if output is FAILED:  # this request alone (LitServe would fail every request of the batch for one raise)
            return JSONResponse({"detail": "the model failed on this request (the server's log has why)"},
                                status_code=500)
        return output
