"""Where the Hydra configs live (`conf/` of a source checkout, or `senti_lit/conf` in a wheel), the resolvers they
use, and configs as plain Python."""
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf

from senti_lit.core.flat_config import CONFIG_DIR, config_dir  # noqa: F401 - where the configs live


def plain(value: Any) -> Any:
    """OmegaConf containers as plain Python (readers, cache keys and saved summaries want dicts and lists)."""
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value


def _mkdir(path: str) -> str:
    Path(path).mkdir(parents=True, exist_ok=True)
    return str(path)


# `${mkdir:DIR}`: DIR, created if missing (an Optuna sqlite study is opened before any job has made logs/).
if not OmegaConf.has_resolver("mkdir"):
    OmegaConf.register_new_resolver("mkdir", _mkdir)


LAST = Path("checkpoints") / "last.ckpt"  # a run's newest checkpoint, relative to its directory


def _task_overrides(overrides: Any) -> list[str]:
    """A command's overrides without `resume=` itself (it does not change what is trained)."""
    return sorted(o for o in overrides or [] if not str(o).lstrip("+~").startswith("resume="))


def resume_run_dir(runs: str, fresh: str, *, _root_: Any) -> str:
    """`runs/fresh`, or with `resume=auto` the newest unfinished run in `runs` whose overrides equal this command's."""
    if _root_.get("resume") != "auto":
        return f"{runs}/{fresh}"
    wanted = _task_overrides(OmegaConf.select(_root_, "hydra.overrides.task", default=[]))
    candidates = []
    for run in Path(runs).glob("*"):
        overrides = run / ".hydra" / "overrides.yaml"
        if not (run / LAST).is_file() or (run / "metrics.json").exists() or not overrides.is_file():
            continue
        if _task_overrides(yaml.safe_load(overrides.read_text(encoding="utf-8"))) == wanted:
            candidates.append(run)
    if not candidates:
        return f"{runs}/{fresh}"
    return str(max(candidates, key=lambda run: (run / LAST).stat().st_mtime))


if not OmegaConf.has_resolver("resume_run_dir"):
    OmegaConf.register_new_resolver("resume_run_dir", resume_run_dir)


LABEL_LENGTH = 150  # a run label's longest form: folder names stop at 255 bytes, and a long one hides the time


def run_label(stage: str) -> str:
    """`${run_label:fit}`: `stage`, then the command's overrides as Hydra's `override_dirname` writes them
    (`fit,model=bert_lora,seed=1`): the TensorBoard run name, so that runs are told apart outside the HPARAMS tab.
    `resume=`, `hydra.*` and `paths.*` are left out (they do not change what is learnt); a `/` in a value becomes
    `_` (it would nest folders); a label longer than LABEL_LENGTH ends in a hash of the whole."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return stage
    # sorted without the `+`/`++` that core.command_line.widen adds to some keys: the order of the keys alone
    kept = sorted(o.lstrip("+") for o in _task_overrides(HydraConfig.get().overrides.task)
                  if not o.lstrip("+~").startswith(("hydra.", "paths.")))
    label = ",".join([stage, *kept]).replace("/", "_").replace("\\", "_")
    if len(label) > LABEL_LENGTH:
        import hashlib

        label = label[:LABEL_LENGTH - 9] + "~" + hashlib.sha1(label.encode()).hexdigest()[:8]
    return label


if not OmegaConf.has_resolver("run_label"):
    OmegaConf.register_new_resolver("run_label", run_label)


HIDDEN_GROUPS = ("hydra", "command", "local", "paths")  # composed for every command, not choices a user makes


def help_text(command: str) -> str:
    """`--help`'s template for `command` (`hydra.help.template: ${help_text:${hydra.job.config_name}}`): the usage
    lines at the top of conf/<command>.yaml, then only the config groups that command composes (its defaults list;
    not the building blocks data/base, model/family… nor another command's groups), then Hydra's `$CONFIG`: the
    command's own options."""
    lines = (Path(CONFIG_DIR) / f"{command}.yaml").read_text(encoding="utf-8").splitlines()
    usage = [line.removeprefix("#").strip() for line in lines[:next(i for i, line in enumerate(lines)
                                                                    if not line.startswith("#"))]]
    groups = []
    for entry in (yaml.safe_load("\n".join(lines)) or {}).get("defaults", []):
        name = next(iter(entry)) if isinstance(entry, dict) else None
        name = name.removeprefix("optional ").split("@")[0] if name else None
        if name and not name.startswith("override") and name not in HIDDEN_GROUPS and "/" not in name:
            options = sorted(p.stem for p in (Path(CONFIG_DIR) / name).glob("*.yaml"))
            groups.append(f"{name}: {', '.join(options)}")
    parts = ["\n".join(usage)]
    if groups:
        parts.append("== Config groups (group=option) ==\n" + "\n".join(groups))
    parts.append("== Options (key=value; the defaults shown) ==\n$CONFIG")
    return "\n\n".join(parts) + "\n"


if not OmegaConf.has_resolver("help_text"):
    OmegaConf.register_new_resolver("help_text", help_text)


SMALL_HIDDEN = 256  # hidden sizes up to this train faster in bf16 on a CPU with native bf16 (see auto_precision)


def auto_precision(accelerator: str = "auto", hidden_size: int | None = None) -> str:
    """`${auto_precision:${.accelerator},${oc.select:model.backbone.config.hidden_size,null}}`: bf16-mixed on CUDA
    GPUs that have it. On a CPU with native bf16 it depends on the CPU and the model's size (`hidden_size`: a
    from-scratch backbone's; None for a pretrained one), as measured (docs/performance.md, "Precision"):
    - AMX tiles (Intel Xeon, Sapphire Rapids and later): bf16 matmuls take 0.11-0.21x the fp32 time at transformer
      shapes, so e5_small trains 1.66x faster in bf16-mixed; a small backbone (hidden <= SMALL_HIDDEN) is faster in
      fp32 (the default job's MLM warm-up 9.46 -> 11.6 steps/s: BENCHMARKS.md, memory), its matmuls too small to
      repay autocast's casts: bf16-mixed above it.
    - avx512_bf16 without AMX (the AMD EPYC measured): bf16 matmuls took 1.3-1.5x the fp32 time, e5_small 27% slower
      in bf16, while mini_bert's memory-bound steps ran ~1.2x faster: bf16-mixed up to SMALL_HIDDEN.
    Elsewhere (bf16 emulated) 32-true."""
    import torch

    from senti_lit.core.runtime import cpu_has_amx, cpu_has_native_bf16

    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32-true"
    if accelerator not in ("auto", "cpu") or not cpu_has_native_bf16():
        return "32-true"
    small = hidden_size is not None and int(hidden_size) <= SMALL_HIDDEN
    if cpu_has_amx():
        return "32-true" if small else "bf16-mixed"
    return "bf16-mixed" if small else "32-true"


if not OmegaConf.has_resolver("auto_precision"):
    OmegaConf.register_new_resolver("auto_precision", auto_precision)


# keys whose values are numbers wherever they appear (optimiser, warm-up, regularisation, sizes)
NUMBER_KEYS = {"lr", "weight_decay", "warmup_ratio", "dropout", "label_smoothing", "token_dropout", "mask_prob",
               "head_lr", "gamma", "max_epochs", "max_steps", "batch_size", "eval_batch_size", "max_length",
               "epochs", "seed", "limit_train", "per_label", "gradient_clip_val", "accumulate_grad_batches", "alpha",
               "temperature"}


def check_numbers(cfg: Any, path: str = "") -> None:
    """A number-valued key holding text (`model.optimizer.lr=notanumber`) fails here, naming the key, before any
    data is read or any model trained."""
    if isinstance(cfg, DictConfig):
        for key in cfg:
            node, where = cfg._get_node(key), f"{path}{key}"
            if isinstance(node, (DictConfig, ListConfig)):
                check_numbers(node, where + ".")
            elif (key in NUMBER_KEYS and isinstance(node._value(), str) and not OmegaConf.is_interpolation(cfg, key)
                  and not OmegaConf.is_missing(cfg, key)):
                raise ValueError(f"{where}={node._value()!r}: must be a number (e.g. {where}=3e-4)")
    elif isinstance(cfg, ListConfig):
        for i, item in enumerate(cfg):
            if isinstance(item, (DictConfig, ListConfig)):
                check_numbers(item, f"{path}{i}.")


def dataset_name(entry: str) -> str:
    """The name of a `config` or `name:config` entry of a list of datasets (see `named_datasets`)."""
    return entry.split(":", 1)[0]


def named_datasets(entries: Sequence[str], overrides: Mapping[str, Sequence[str]], key: str,
                   overrides_key: str) -> dict[str, tuple[str, list[str]]]:
    """{name: (data config, its overrides)} of `entries`, each `config` or `name:config` (one config's data read
    twice with other files, e.g. `htl:chnsenticorp`), with `overrides` keyed by name. `key`/`overrides_key`: where
    the user wrote them, for the errors."""
    from senti_lit.core.errors import DataError

    pairs = [(dataset_name(e), e.split(":", 1)[-1]) for e in entries]
    named = dict(pairs)
    if len(named) < len(pairs):
        raise DataError(f"{key}={list(entries)}: a name twice; read one config's data twice as name:config with "
                        "distinct names (htl:chnsenticorp,baidu:chnsenticorp)")
    unknown = set(overrides) - set(named)
    if unknown:
        raise DataError(f"{overrides_key}: {sorted(unknown)} not in {key}={list(named)}")
    return {name: (config, list(overrides.get(name, []))) for name, config in named.items()}


def data_config(app: str, name: str, overrides: Sequence[str], paths: Any = None) -> DictConfig:
    """`conf/data/<name>.yaml` composed as the `app` config (evaluate, pretrain) would, inside a running Hydra app
    or standalone: for commands that read several datasets, each with its own files, aliases and seeded split.
    `paths`: the calling command's `paths` (data and cache dirs), set as values, not parsed as overrides."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    overrides = [f"data={name}", *overrides]
    if GlobalHydra.instance().is_initialized():
        root = compose(config_name=app, overrides=overrides)
    else:
        with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
            root = compose(config_name=app, overrides=overrides)
    for key in ("data_dir", "cache_dir"):
        if paths is not None and key in paths:
            root.paths[key] = paths[key]
    return root.data


def compose_config(app: str, overrides: Sequence[str] = (), output_dir: Path | str | None = None) -> DictConfig:
    """Config `app` (train, pretrain, predict …) as `python -m senti_lit.<app> <overrides>` composes it, outside a
    running Hydra app (tests, benchmarks, notebooks). With `output_dir`, the run's outputs, logs and cache go there."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if output_dir is not None:
        overrides = [*overrides, f"paths.output_dir={output_dir}", f"paths.log_dir={output_dir}",
                     f"paths.cache_dir={output_dir}/cache"]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(app, overrides=list(overrides))
    GlobalHydra.instance().clear()
    return cfg
