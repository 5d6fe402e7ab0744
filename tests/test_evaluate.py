"""`senti_lit.evaluate` (inference.evaluation): every dataset is checked before any model is scored."""
from __future__ import annotations

from pathlib import Path


def test_evaluate_checks_every_dataset_before_scoring(tmp_path: Path):
    """Two datasets whose files are missing: one error names both, with the key that fixes it, and no model ran."""
    import pytest
    from hydra import compose, initialize_config_dir

    from senti_lit.core.config import CONFIG_DIR
    from senti_lit.core.errors import DataError
    from senti_lit.inference.evaluation import run

    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        cfg = compose("evaluate", overrides=[
            f"artifacts=[{tmp_path / 'not_an_artifact'}]", "datasets=[chnsenticorp,demo]",
            f"+data_overrides.chnsenticorp=['data.path={tmp_path / 'none'}']",
            f"+data_overrides.demo=['data.path={tmp_path / 'none'}']", f"paths.output_dir={tmp_path}",
            f"paths.cache_dir={tmp_path / 'cache'}"])
    with pytest.raises(DataError) as error:
        run(cfg)  # the artifact does not exist either: the data is checked first
    message = str(error.value)
    assert "data=chnsenticorp:" in message and "data=demo:" in message
    assert "+data_overrides.chnsenticorp=['data.path=DIR']" in message
