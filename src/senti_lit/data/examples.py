"""What every reader yields (`Example`); bad input raises `senti_lit.core.errors.DataError`."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)  # slots: a million examples cost ~100 MB less
class Example:
    text: str
    label: str | tuple[str, ...] | None  # a tuple of names for multi-label examples; None: unlabelled
    origin: str = ""  # "file:line", for error messages
    split: str | None = None  # "train" | "val" | "test" when the dataset publishes its splits
    knowledge: str | None = None  # an explanation read with the text (prediction files of knowledge models)

    @property
    def line(self) -> int:
        """The line number in `origin`."""
        return int(self.origin.rsplit(":", 1)[1])
