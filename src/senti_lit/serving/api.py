"""The LitAPI of `senti_lit.serve`: each inference worker loads the artifact's `Predictor`; LitServe hands it one
request or, with `max_batch_size > 1`, the requests that arrived within `batch_timeout`, and all their texts go
through one `Predictor` call (sorted by length into forward batches of `batch_size`, as offline prediction does)."""
# no `from __future__ import annotations`: LitServe reads decode_request's annotation as a class, to make it
# the body FastAPI validates
import logging
import os
import signal
from typing import Any

import litserve as ls
from fastapi.responses import JSONResponse

from senti_lit.serving.schema import PredictRequest

log = logging.getLogger(__name__)
FAILED = "senti_lit: this request failed"  # a request's answer when the model failed on it alone


class SentimentAPI(ls.LitAPI):
    def __init__(self, artifact: str, *, precision: str = "32", threshold: Any = None,
                 trust_remote_code: bool = False, batch_size: int = 64, threads: int | None = None,
                 max_batch_size: int = 8, batch_timeout: float = 0.01) -> None:
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout, api_path="/predict")
        self.artifact, self.precision, self.threshold = artifact, precision, threshold
        self.trust_remote_code, self.batch_size, self.threads = trust_remote_code, batch_size, threads

    def setup(self, device: str) -> None:
        # The main process orders the shutdown (HTTP servers drain first, then the workers stop): a Ctrl+C that
        # reaches the whole process group must not kill a worker while answers are still owed.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        import torch

        from senti_lit.core.runtime import quiet_known_warnings
        from senti_lit.inference.predictor import Predictor

        quiet_known_warnings()
        if self.threads:
            torch.set_num_threads(int(self.threads))
        self.predictor = Predictor.load(self.artifact, device=device, precision=self.precision,
                                        threshold=self.threshold, trust_remote_code=self.trust_remote_code)
        self.predictor.predict(["warm-up"])  # one-time kernel and allocator set-up is not the first client's wait
        self.pid = os.getpid()

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
        """Every text of `requests` through one `Predictor` call; one answer per request."""
        texts = [text for r in requests for text in r.items]
        knowledge = None
        if any(r.knowledge is not None for r in requests):
            knowledge = [k for r in requests for k in (r.explanations or [None] * len(r.items))]
        predictor = self.predictor
        encoded = predictor.encode(texts, knowledge)
        cut = predictor.truncated(texts, encoded, knowledge)
        probs = predictor.probabilities(texts, knowledge, self.batch_size, encoded=encoded)
        outputs, start = [], 0
        for r in requests:
            rows = slice(start, start + len(r.items))
            start = rows.stop
            thresholds = predictor.thresholds_for(r.threshold) if r.threshold is not None else None
            answers = predictor.answers(probs[rows], r.top_k, thresholds)
            for answer, truncated in zip(answers, cut[rows]):
                answer["truncated"] = truncated
            outputs.append(answers[0] if r.text is not None else {"predictions": answers})
        return outputs

    def encode_response(self, output: Any) -> Any:
        if output is FAILED:  # this request alone (LitServe would fail every request of the batch for one raise)
            return JSONResponse({"detail": "the model failed on this request (the server's log has why)"},
                                status_code=500)
        return output
