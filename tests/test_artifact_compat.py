"""An artifact written before the model builder and input pipeline were consolidated (format 1, 21d7ded: a tiny
mini_bert trained on the fixture reviews) still loads and predicts the probabilities it predicted then."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from senti_lit.inference.predictor import Predictor

FIXTURES = Path(__file__).parent / "fixtures"


def test_an_artifact_of_an_earlier_version_predicts_the_same():
    expected = json.loads((FIXTURES / "artifact_v1_expected.json").read_text(encoding="utf-8"))
    predictor = Predictor.load(FIXTURES / "artifact_v1")
    probs = predictor.probabilities(expected["texts"])
    assert torch.allclose(probs, torch.tensor(expected["probs"]), atol=1e-6)
    assert predictor.predict(expected["texts"]) == expected["answers"]
