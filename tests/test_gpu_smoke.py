"""benchmarks/gpu_smoke.sh (run by hand on a GPU machine): its training commands compose with the current conf/."""
from __future__ import annotations

from pathlib import Path


def test_gpu_smoke_script_commands_compose(tmp_path: Path):
    """benchmarks/gpu_smoke.sh cannot run here (no GPU); what can be checked is checked: every training command in
    it composes (the same configs the CPU tests train with)."""
    import re
    import shlex

    from helpers.compose import compose_train

    script = (Path(__file__).parents[1] / "benchmarks" / "gpu_smoke.sh").read_text(encoding="utf-8")
    tiny = shlex.split(re.search(r'^TINY="(.*)"$', script, re.M).group(1))
    commands = [shlex.split(m.replace("\\\n", " ")) for m in
                re.findall(r'-m senti_lit\.train ((?:[^\n]|\\\n)*?)(?:\$TINY)', script)]
    assert len(commands) >= 4
    for overrides in commands:
        cfg = compose_train([o for o in overrides if not o.startswith("hydra.")] + tiny, tmp_path)
        assert cfg.data.limit_train == 300
    assert compose_train(["trainer=gpu_fp16", *tiny], tmp_path).trainer.precision == "16-mixed"
