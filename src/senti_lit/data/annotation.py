"""An LLM's explanation ("knowledge") of every text, for `data.knowledge` (experiment=cecps8_knowledge_bert); the
command is `python -m senti_lit.annotate data=... annotator=openai|hf`.

- `openai`: any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama, DashScope's compatible mode for
  qwen-max as the 8-label seed used); key from an environment variable. Requests run concurrently up to a limit and
  are retried with exponential backoff (honouring Retry-After) on 429, 5xx, timeouts and malformed replies.
- `hf`: a local `AutoModelForCausalLM`, greedy, through the tokenizer's chat template.
Every answer is appended to a cache keyed by (text, prompt, model) as it arrives: a re-run - after a crash, a
quota stop or with more data - sends only what is not cached, so no text is ever paid for twice. Texts that still
fail are listed and the command exits non-zero; the knowledge file holds every text that has an answer.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Protocol, Sequence

from hydra.utils import instantiate
from omegaconf import DictConfig
from rich.console import Console
from rich.progress import Progress

from senti_lit.core.config import plain
from senti_lit.core.files import atomic_write
from senti_lit.core.runtime import quiet_known_warnings

log = logging.getLogger(__name__)

Messages = list[dict[str, str]]
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class AnnotationError(RuntimeError):
    """A text the annotator could not explain (after retries)."""


class AnnotationFailed(RuntimeError):
    """Some texts still have no answer after the retries; `report` is the run's report (what was written)."""

    def __init__(self, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.report = report


class Annotator(Protocol):
    model: str

    def complete(self, messages: Messages) -> str: ...


class OpenAIChat:
    """POST {base_url}/chat/completions, as the OpenAI API and every compatible server speak it."""

    def __init__(self, model: str, base_url: str = "https://api.openai.com/v1", api_key_env: str | None = "OPENAI_API_KEY",
                 temperature: float = 0.0, max_tokens: int = 256, timeout: float = 60.0, max_retries: int = 6,
                 backoff: float = 1.0, concurrency: int = 8) -> None:
        self.model, self.url = model, base_url.rstrip("/") + "/chat/completions"
        self.key = os.environ.get(api_key_env, "") if api_key_env else ""
        if api_key_env and not self.key:
            raise ValueError(f"annotator.api_key_env={api_key_env}: the environment variable is not set (export it, "
                             "or annotator.api_key_env=null for a server without keys, e.g. a local vLLM/Ollama)")
        self.temperature, self.max_tokens, self.timeout = temperature, max_tokens, timeout
        self.max_retries, self.backoff, self.concurrency = max_retries, backoff, concurrency

    def _post(self, messages: Messages) -> str:
        body = json.dumps({"model": self.model, "messages": messages, "temperature": self.temperature,
                           "max_tokens": self.max_tokens}).encode()
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json", **({"Authorization": f"Bearer {self.key}"} if self.key else {})})
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            reply = json.loads(response.read().decode("utf-8"))
        content = reply["choices"][0]["message"]["content"]
        if not isinstance(content, str) or not content.strip():
            raise ValueError("empty content")
        return content.strip()

    def complete(self, messages: Messages) -> str:
        for attempt in range(self.max_retries + 1):
            try:
                return self._post(messages)
            except urllib.error.HTTPError as e:
                with e:  # the error is also the open response
                    detail, retry_after = e.read()[:200], e.headers.get("Retry-After")
                if e.code not in RETRY_STATUS or attempt == self.max_retries:
                    raise AnnotationError(f"HTTP {e.code}: {detail!r}") from None
                wait = float(retry_after) if retry_after else self._delay(attempt)
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                if attempt == self.max_retries:
                    raise AnnotationError(f"no answer from {self.url}: {e}") from None
                wait = self._delay(attempt)
            except (json.JSONDecodeError, KeyError, IndexError, TypeError, ValueError) as e:
                if attempt == self.max_retries:
                    raise AnnotationError(f"malformed reply ({type(e).__name__}: {e})") from None
                wait = self._delay(attempt)
            log.debug("retrying in %.1f s (attempt %d)", wait, attempt + 1)
            time.sleep(wait)
        raise AssertionError("unreachable")

    def _delay(self, attempt: int) -> float:
        return self.backoff * 2 ** attempt * (0.5 + random.random())  # jitter: parallel requests do not sync up


class LocalCausalLM:
    """A local causal LM (transformers), greedy decoding; one request at a time."""

    concurrency = 1

    def __init__(self, path: str, max_new_tokens: int = 128, device: str = "cpu",
                 trust_remote_code: bool = False) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from senti_lit.weights.paths import resolve_path

        self.model = str(path)
        self.tokenizer = AutoTokenizer.from_pretrained(resolve_path(path), trust_remote_code=trust_remote_code)
        self.lm = AutoModelForCausalLM.from_pretrained(resolve_path(path),
                                                       trust_remote_code=trust_remote_code).to(device).eval()
        self.max_new_tokens, self.device = max_new_tokens, device

    def _prompt(self, messages: Messages) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        # no chat template (a base model): a plain transcript ending where the answer starts
        return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"

    def complete(self, messages: Messages) -> str:
        import torch

        ids = self.tokenizer(self._prompt(messages), return_tensors="pt", add_special_tokens=False).to(self.device)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        with torch.no_grad():
            out = self.lm.generate(**ids, max_new_tokens=self.max_new_tokens, do_sample=False, pad_token_id=pad)
        return self.tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def build_messages(text: str, labels: Sequence[str] | None, prompt: dict[str, Any]) -> Messages:
    """System prompt, few-shot pairs, then the text: with its gold labels (`with_label`) or without (`free`)."""
    messages: Messages = [{"role": "system", "content": prompt["system"]}] if prompt.get("system") else []
    for shot in prompt.get("shots") or []:
        messages += [{"role": "user", "content": prompt["free"].format(text=shot["text"])},
                     {"role": "assistant", "content": shot["knowledge"]}]
    names = prompt.get("label_names") or {}
    if labels is not None:
        shown = "、".join(names.get(l, l) for l in labels) or prompt.get("no_label", "无")
        messages.append({"role": "user", "content": prompt["with_label"].format(text=text, labels=shown)})
    else:
        messages.append({"role": "user", "content": prompt["free"].format(text=text)})
    return messages


def cache_key(messages: Messages, model: str) -> str:
    return hashlib.sha256(json.dumps([model, messages], ensure_ascii=False).encode()).hexdigest()


class AnswerCache:
    """Append-only JSON lines {key, text, knowledge}: every answer is on disk as soon as it arrives; a line cut
    by a crash is ignored on the next load."""

    def __init__(self, path: Path) -> None:
        self.path, self.lock = path, threading.Lock()
        self.answers: dict[str, str] = {}
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                    self.answers[row["key"]] = row["knowledge"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue
        path.parent.mkdir(parents=True, exist_ok=True)

    def add(self, key: str, text: str, knowledge: str) -> None:
        with self.lock:
            self.answers[key] = knowledge
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"key": key, "text": text, "knowledge": knowledge}, ensure_ascii=False) + "\n")


def annotate(jobs: list[tuple[str, Messages]], annotator: Annotator, cache: AnswerCache,
             progress: bool = True) -> tuple[dict[str, str], dict[str, str], int]:
    """({text: knowledge}, {text: error}, requests sent): cached answers reused, the rest asked concurrently."""
    keyed = [(text, messages, cache_key(messages, annotator.model)) for text, messages in jobs]
    todo = [(t, m, k) for t, m, k in keyed if k not in cache.answers]
    failures: dict[str, str] = {}
    log.info("annotate: %d texts, %d cached, %d to ask %s", len(keyed), len(keyed) - len(todo), len(todo),
             annotator.model)
    console = Console(stderr=True)
    with Progress(disable=not (progress and console.is_terminal), transient=True, console=console) as bar, \
            ThreadPoolExecutor(max_workers=max(1, int(getattr(annotator, "concurrency", 1)))) as pool:
        task = bar.add_task("annotating", total=len(todo))
        futures = {pool.submit(annotator.complete, m): (t, k) for t, m, k in todo}
        for future in as_completed(futures):
            text, key = futures[future]
            try:
                cache.add(key, text, future.result())
            except AnnotationError as e:
                failures[text] = str(e)
            except Exception as e:  # noqa: BLE001 - one text's unexpected error must not lose the others' answers
                failures[text] = f"{type(e).__name__}: {e}"
            bar.advance(task)
    answers = {t: cache.answers[k] for t, _, k in keyed if k in cache.answers}
    return answers, failures, len(todo)


def default_output(data_path: str | None) -> Path:
    if not data_path:
        raise ValueError("output=...: this data config has no local path to write next to")
    path = Path(data_path)
    return path / "knowledge.jsonl" if path.is_dir() else path.with_name(path.stem + ".knowledge.jsonl")


def run(cfg: DictConfig) -> dict[str, Any]:
    quiet_known_warnings()
    datamodule = instantiate(cfg.data)
    splits = datamodule.prepare_splits()
    prompt = plain(cfg.prompt)
    jobs = []
    for name in cfg.splits:
        for ex in splits[name]:
            labels = None
            if name in prompt.get("gold_label_splits", []):
                labels = list(ex.label) if isinstance(ex.label, tuple) else [ex.label]
            jobs.append((ex.text, build_messages(ex.text, labels, prompt)))
    annotator = instantiate(cfg.annotator)
    cache = AnswerCache(Path(cfg.paths.cache_dir) / "annotate" / "answers.jsonl")
    answers, failures, asked = annotate(jobs, annotator, cache)
    output = Path(cfg.output) if cfg.output else default_output(cfg.data.path)
    rows = "".join(json.dumps({"text": t, "knowledge": k}, ensure_ascii=False) + "\n" for t, k in answers.items())
    atomic_write(output, lambda f: f.write(rows.encode("utf-8")))
    report = {"texts": len(jobs), "answered": len(answers), "asked_now": asked, "failed": len(failures),
              "output": str(output)}
    print(f"{len(answers)} of {len(jobs)} texts explained ({asked} asked now, the rest cached) -> {output}")
    failed_file = output.with_name(output.name.removesuffix(".jsonl") + ".failed.jsonl")
    if failures:
        rows = "".join(json.dumps({"text": t, "error": e}, ensure_ascii=False) + "\n" for t, e in failures.items())
        atomic_write(failed_file, lambda f: f.write(rows.encode("utf-8")))
        report["failed_file"] = str(failed_file)
        examples = "; ".join(f"{t[:20]!r}: {e}" for t, e in list(failures.items())[:3])
        raise AnnotationFailed(f"{len(failures)} of {len(jobs)} texts failed, every one listed in {failed_file} "
                               f"(e.g. {examples}); re-run the same command to retry them (answers so far are "
                               "cached)", report)
    failed_file.unlink(missing_ok=True)  # a list from an earlier run that has since been answered
    return report
