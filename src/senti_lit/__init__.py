"""senti_lit: Lightning + Hydra training framework for Chinese and English sentiment and emotion classification."""

__version__ = "0.1.0"
