"""Where the Hydra configs live: `conf/` of a source checkout, or `senti_lit/conf` inside an installed wheel."""
from pathlib import Path


def config_dir() -> str:
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parents[1] / "conf"):
        if (candidate / "train.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError(f"senti_lit configs not found in {here / 'conf'} or {here.parents[1] / 'conf'}")


CONFIG_DIR = config_dir()
