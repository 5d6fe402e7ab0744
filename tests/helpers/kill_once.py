"""A callback for tests/test_resume.py (`+callbacks.kill._target_=helpers.kill_once.KillOnce`, tests/ on the training
subprocess's PYTHONPATH): SIGKILL this process at a given training step, once (a marker file remembers), so that
re-running the identical command resumes instead of dying again."""
import os
import signal
from pathlib import Path

from lightning.pytorch.callbacks import Callback


class KillOnce(Callback):
    def __init__(self, step: int, marker: str) -> None:
        self.step, self.marker = step, Path(marker)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step and not self.marker.exists():
            self.marker.write_text(f"killed at step {self.step}, epoch {trainer.current_epoch}\n")
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no atexit: as an OOM killer or a power cut would
