"""What the server's tests share (tests/test_serve.py, tests/test_serve_onnx.py): the fixture artifact, the texts,
the server settings and the table of bad requests."""
from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).parents[1] / "fixtures"
ARTIFACT = FIXTURES / "artifact_v1"  # a tiny trained binary model (max_length 32), with its test metrics
KEY = "s3cret-test-key"
TEXTS = ["这本书很好，推荐", "失望，很差", "The room was clean and quiet.", "一般般吧", "好" * 80]  # the last: > 32 tokens


# batching on (a batch fills for 50 ms), small limits to test, and an API key (also tests/test_serve_onnx.py's servers)
SETTINGS = ("max_batch_size=8", "batch_timeout=0.05", "max_texts=16", "max_chars=2000", "max_body_mb=1",
            "api_key_env=SENTI_TEST_KEY", "log_level=warning")


# (body, content type or None for JSON, status, a piece of the one-line `detail`)
BAD = {
    "empty text": ({"text": ""}, None, 422, "\"text\" is empty"),
    "whitespace text": ({"text": " \n\t"}, None, 422, "\"text\" is empty or only whitespace"),
    "one empty among texts": ({"texts": ["好", "  "]}, None, 422, "texts[1] is empty"),
    "no texts": ({"texts": []}, None, 422, "\"texts\" is empty"),
    "neither text nor texts": ({"top_k": 2}, None, 422, "either \"text\""),
    "both text and texts": ({"text": "好", "texts": ["好"]}, None, 422, "not both"),
    "unknown field": ({"text": "好", "threshhold": 0.5}, None, 422, "unknown field 'threshhold'"),
    "a list body": (["好"], None, 422, "must be a JSON object"),
    "texts not a list": ({"texts": "好"}, None, 422, "texts: Input should be a valid list"),
    "text not a string": ({"text": 3}, None, 422, "text: Input should be a valid string"),
    "top_k as a string": ({"text": "好", "top_k": "2"}, None, 422, "top_k"),
    "top_k zero": ({"text": "好", "top_k": 0}, None, 422, "top_k"),
    "threshold out of range": ({"text": "好", "threshold": 1.5}, None, 422, "between 0 and 1"),
    "threshold list, binary": ({"text": "好", "threshold": [0.5, 0.5]}, None, 422, "one number"),
    "knowledge for a plain model": ({"text": "好", "knowledge": "x"}, None, 422, "reads no knowledge"),
    "too many texts": ({"texts": ["好"] * 17}, None, 413, "max_texts=16"),
    "too many characters": ({"texts": ["好" * 1500, "差" * 600]}, None, 413, "max_chars=2000"),
    "not JSON": (b"{text: 1", "application/json", 400, "not valid JSON"),
    "not UTF-8": (b'{"text": "\xff\xfe\xfa"}', "application/json", 400, "UTF-8"),
    "a form body": (b"text=hello", "application/x-www-form-urlencoded", 422, "must be a JSON object"),
    "no body": (b"", "application/json", 422, "must be a JSON object"),
    "a body over max_body_mb": (b'{"text": "' + b"a" * (1 << 20) + b'"}', "application/json", 413, "max_body_mb=1"),
    # crafted inputs (issue 36): not text, invisible text, other encodings, bodies whose errors would be huge
    "a lone surrogate escape": (b'{"text": "\\ud800"}', "application/json", 422, "lone UTF-16 surrogate"),
    "a lone surrogate among texts": (b'{"texts": ["ok", "a\\udfffb"]}', "application/json", 422,
                                     "texts[1] holds a lone UTF-16 surrogate"),
    "a surrogate as raw bytes": (b'{"text": "\xed\xa0\x80"}', "application/json", 400, "not UTF-8"),
    "a UTF-16 body": ('{"text": "好"}'.encode("utf-16"), "application/json", 400, "not UTF-8"),
    "NUL characters only": ({"text": "\x00\x00"}, None, 422, "\"text\" is empty"),
    "zero-width characters only": ({"texts": ["好", "\u200b\u200d\ufeff"]}, None, 422, "texts[1] is empty"),
    "many numbers as texts": ({"texts": [1] * 300_000}, None, 413, "300000 texts in one request"),
    "numbers among texts": ({"texts": ["好", 1, 2]}, None, 422, "texts[1] is not a string but int (and 1 more item)"),
    "many unknown keys": ({f"k{i}": 1 for i in range(30_000)}, None, 422, "and 29995 more"),
}
