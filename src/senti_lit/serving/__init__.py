"""Serving a trained artifact over HTTP (`python -m senti_lit.serve`): LitServe's dynamic batching and workers around
the one `Predictor`, request limits checked before anything reaches the model, and a plain web page.

    schema.py   the request body (pydantic) and the limits it is checked against
    api.py      the LitAPI: a worker loads the Predictor (or OnnxPredictor); batched requests' texts are cut
                into forward batches by length
    app.py      the LitServer: page, file reading, API key, error answers, port check, graceful shutdown
    static/     the page (HTML, CSS, JS; no CDN, no external fonts)

`api.py` and `app.py` import litserve (the `serve` extra); `schema.py` needs only pydantic. Nothing here imports
torch or lightning at module level: the worker process imports them when it loads the model in `setup`, and with
`backend=onnx` (an ONNX export) no process of the server imports them at all.
"""
