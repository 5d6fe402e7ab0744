"""Where the Hydra configs live: `conf/` of a source checkout, or `senti_lit/conf` inside an installed wheel."""
from pathlib import Path

from omegaconf import OmegaConf


def config_dir() -> str:
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parents[1] / "conf"):
        if (candidate / "train.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError(f"senti_lit configs not found in {here / 'conf'} or {here.parents[1] / 'conf'}")


CONFIG_DIR = config_dir()


def _mkdir(path: str) -> str:
    Path(path).mkdir(parents=True, exist_ok=True)
    return str(path)


# `${mkdir:DIR}`: DIR, created if missing (an Optuna sqlite study is opened before any job has made logs/).
if not OmegaConf.has_resolver("mkdir"):
    OmegaConf.register_new_resolver("mkdir", _mkdir)
