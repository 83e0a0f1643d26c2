# /// script
# requires-python = ">=3.10"
# dependencies = ["tritonclient[http]==2.73.0", "numpy==2.4.6"]
# ///
"""The Open Inference Protocol routes as a standard client sees them: NVIDIA's tritonclient
(HTTP), which nobody here wrote, against a live tabr-serve. Run by test/oip.test.ts as
`uv run oip_client.py HOST:PORT` with the token in TABR_TOKEN. Every answer is compared with
the service's own POST /infer/{model} for the same feature vector (within 1e-6). Prints one
JSON line of figures; any failed check raises (exit 1).
"""

import json
import os
import sys
import urllib.request

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

URL = sys.argv[1]
MODEL = "tabr-demo"
TOKEN = os.environ["TABR_TOKEN"]


def auth():
    """A fresh headers dict per call: the client writes Inference-Header-Content-Length into
    the dict it is given, and a reused one would carry it into the next (JSON) request."""
    return {"Authorization": f"Bearer {TOKEN}"}


client = httpclient.InferenceServerClient(url=URL)
checks = 0


def check(ok, what):
    global checks
    if not ok:
        raise AssertionError(what)
    checks += 1


def refused(status, call):
    """`call` must fail through the client with this HTTP status and a message."""
    try:
        call()
    except InferenceServerException as e:
        check(e.status() == str(status), f"expected {status}, got {e.status()}: {e.message()}")
        check(bool(e.message()) and "/" not in e.message(), f"an error message without paths: {e.message()!r}")
        return e.message()
    raise AssertionError(f"expected HTTP {status}, the call succeeded")


def infer_one(row, include=""):
    """The service's own route for one feature vector (NaN → null, as its JSON says)."""
    body = json.dumps({"features": [None if np.isnan(v) else float(v) for v in row]}).encode()
    req = urllib.request.Request(
        f"http://{URL}/infer/{MODEL}{include}", data=body, headers={**auth(), "Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req) as r:
        answer = json.load(r)
        return answer if include else answer["prediction"]


# Server: liveness and readiness (no token, like /healthz), metadata (token).
check(client.is_server_live(), "server live")
check(client.is_server_ready(), "server ready")
meta = client.get_server_metadata(headers=auth())
check(meta["name"] == "tabr-serve" and "binary_tensor_data" in meta["extensions"], f"server metadata {meta}")

# Model metadata and readiness, plain and under its version.
m = client.get_model_metadata(MODEL, headers=auth())
version = m["versions"][0]
check(m["name"] == MODEL, f"model metadata {m}")
check(m["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 90]}], f"inputs {m['inputs']}")
EVIDENCE = ["neighbour_id", "neighbour_label", "neighbour_weight", "neighbour_distance", "novelty"]
check(
    m["outputs"]
    == [
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
        {"name": "neighbour_id", "datatype": "BYTES", "shape": [-1, 5]},
        {"name": "neighbour_label", "datatype": "BYTES", "shape": [-1, 5]},
        {"name": "neighbour_weight", "datatype": "FP32", "shape": [-1, 5]},
        {"name": "neighbour_distance", "datatype": "FP32", "shape": [-1, 5]},
        {"name": "novelty", "datatype": "FP32", "shape": [-1, 1]},
    ],
    f"outputs {m['outputs']}",
)
check(client.get_model_metadata(MODEL, model_version=version, headers=auth()) == m, "metadata under /versions")
check(client.is_model_ready(MODEL, headers=auth()), "model ready")
check(client.is_model_ready(MODEL, model_version=version, headers=auth()), "model ready under /versions")

# 64 rows from the spread the demo model was trained on; the binary rows also carry missing
# values (NaN), which JSON cannot (tritonclient refuses to write NaN into JSON).
rng = np.random.default_rng(7)
x = rng.normal(0.0, 0.5, size=(64, 90)).astype(np.float32)
x_nan = x.copy()
x_nan[rng.random(x.shape) < 0.05] = np.nan
expected = {}
worst = 0.0
for binary in (True, False):
    data = x_nan if binary else x
    for n in (1, 64):
        inp = httpclient.InferInput("features", [n, 90], "FP32")
        inp.set_data_from_numpy(data[:n], binary_data=binary)
        outs = [
            httpclient.InferRequestedOutput("probabilities", binary_data=binary),
            httpclient.InferRequestedOutput("label", binary_data=binary),
        ]
        rid = f"rows-{n}-{'binary' if binary else 'json'}"
        r = client.infer(MODEL, [inp], outputs=outs, request_id=rid, headers=auth())
        resp = r.get_response()
        check(resp["id"] == rid and resp["model_name"] == MODEL and resp["model_version"] == version, f"response {resp}")
        probs, labels = r.as_numpy("probabilities"), r.as_numpy("label")
        check(probs.dtype == np.float32 and probs.shape == (n, 2), f"probabilities {probs.dtype} {probs.shape}")
        check(labels.shape == (n,), f"labels {labels.shape}")
        for i in range(n):
            key = (binary, i)
            if key not in expected:
                expected[key] = infer_one(data[i])
            want = expected[key]
            # BYTES come back as bytes from binary data, as str from JSON.
            label = labels[i].decode() if isinstance(labels[i], bytes) else labels[i]
            check(label == want["label"], f"row {i}: label {label!r} vs {want['label']}")
            d = float(np.max(np.abs(probs[i].astype(np.float64) - np.array(want["probabilities"]))))
            worst = max(worst, d)
            check(d <= 1e-6, f"row {i}: |Δ| {d:.2e} > 1e-6")

# The evidence outputs, asked for by name (binary and JSON): the same neighbours and novelty
# as POST /infer?include=evidence gives the same vector.
inp = httpclient.InferInput("features", [2, 90], "FP32")
inp.set_data_from_numpy(x[:2])
for binary in (True, False):
    r = client.infer(MODEL, [inp], outputs=[httpclient.InferRequestedOutput(n, binary_data=binary) for n in EVIDENCE], headers=auth())
    check(r.as_numpy("probabilities") is None, "only the evidence outputs asked for")
    text = lambda v: v.decode() if isinstance(v, bytes) else v  # noqa: E731
    for i in range(2):
        want = infer_one(x[i], "?include=evidence")["evidence"]
        ns = want["neighbours"]
        check([text(v) for v in r.as_numpy("neighbour_id")[i]] == [n["id"] for n in ns], f"row {i}: neighbour ids")
        check([text(v) for v in r.as_numpy("neighbour_label")[i]] == [n["label"] for n in ns], f"row {i}: neighbour labels")
        w = np.abs(r.as_numpy("neighbour_weight")[i].astype(np.float64) - [n["weight"] for n in ns])
        check(float(w.max()) <= 1e-6, f"row {i}: weights |Δ| {w.max():.2e}")
        d = np.array([n["distance"] for n in ns])
        check(np.allclose(r.as_numpy("neighbour_distance")[i], d, rtol=1e-6), f"row {i}: distances")
        check(abs(float(r.as_numpy("novelty")[i, 0]) - want["novelty"]) <= 1e-6, f"row {i}: novelty")

# Without `outputs` the client asks for every output as binary data; a subset is honoured.
inp = httpclient.InferInput("features", [3, 90], "FP32")
inp.set_data_from_numpy(x[:3])
r = client.infer(MODEL, [inp], headers=auth())
check(r.as_numpy("probabilities").shape == (3, 2) and r.as_numpy("label").shape == (3,), "all outputs by default")
r = client.infer(MODEL, [inp], outputs=[httpclient.InferRequestedOutput("label")], headers=auth())
check(r.as_numpy("probabilities") is None and r.as_numpy("label").shape == (3,), "only the requested output")
r = client.infer(MODEL, [inp], model_version=version, headers=auth())
check(r.as_numpy("label").shape == (3,), "inference under /versions")
r = client.infer(MODEL, [inp], headers=auth(), request_compression_algorithm="gzip")
check(r.as_numpy("label").shape == (3,), "a gzip request body")

# Refusals, through the client: wrong token 401, unknown model or version 404, wrong shape or
# datatype 400.
bad = {"Authorization": "Bearer " + "x" * 48}
refused(401, lambda: client.infer(MODEL, [inp], headers=bad))
refused(401, lambda: client.get_model_metadata(MODEL, headers=bad))
refused(401, lambda: client.get_server_metadata())
refused(404, lambda: client.infer("no-such-model", [inp], headers=auth()))
refused(404, lambda: client.get_model_metadata("no-such-model", headers=auth()))
refused(404, lambda: client.infer(MODEL, [inp], model_version="9.9.9", headers=auth()))
short = httpclient.InferInput("features", [2, 89], "FP32")
short.set_data_from_numpy(np.zeros((2, 89), np.float32))
refused(400, lambda: client.infer(MODEL, [short], headers=auth()))
f64 = httpclient.InferInput("features", [1, 90], "FP64")
f64.set_data_from_numpy(np.zeros((1, 90), np.float64))
refused(400, lambda: client.infer(MODEL, [f64], headers=auth()))
other = httpclient.InferInput("pixels", [1, 90], "FP32")
other.set_data_from_numpy(np.zeros((1, 90), np.float32))
refused(400, lambda: client.infer(MODEL, [other], headers=auth()))
inf = httpclient.InferInput("features", [1, 90], "FP32")
inf.set_data_from_numpy(np.full((1, 90), np.inf, np.float32))
refused(422, lambda: client.infer(MODEL, [inf], headers=auth()))

print(json.dumps({"checks": checks, "rows_compared": len(expected), "worst_abs_diff": worst}))
