"""docs/own-model.md, walked as a new user would: clips → tabr-features CSV → the example
Lightning training script → export_tabr.py → the service over HTTP. The probabilities the
service serves for clips the model never saw equal the user's own PyTorch + scikit-learn
pipeline (the checkpoint, the joblib preprocessing, the candidates) within 1e-5.

Needs `make build` (tabr-synth, tabr-features, the service's dist/) and the pinned tooling
(`make test-python`). The clips are drawn by the project's own generator.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("lightning")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import export_tabr  # noqa: E402
from tabr.model import Model  # noqa: E402
from tabr.table import feature_matrix, read_table  # noqa: E402

BIN = Path(os.environ.get("TABR_BIN_DIR", Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/tabr-serve/target")) / "release"))
LABELS = ["none", "micro_movement"]
TOKEN = "guide-token-0123456789abcdefghijklmnopqrstuvwxyz"


def run(*cmd: str | Path, cwd: Path) -> str:
    p = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True)
    assert p.returncode == 0, f"{cmd[0]} failed:\n{p.stderr[-3000:]}"
    return p.stdout


def draw(cwd: Path, folder: str, seeds: dict[str, range]) -> None:
    (cwd / folder).mkdir()
    procs = [
        subprocess.Popen([str(BIN / "tabr-synth"), f"{folder}/{label}_{seed}.mkv", "--demo-seed", str(seed), "--demo-class", label], cwd=cwd)
        for label, rng in seeds.items()
        for seed in rng
    ]
    assert all(p.wait() == 0 for p in procs)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post_video(url: str, path: Path) -> dict:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"video\"; filename=\"{path.name}\"\r\n"
            "Content-Type: video/x-matroska\r\n\r\n").encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(url, data=body, headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)


def test_the_guide_from_clips_to_a_served_model(tmp_path):
    if not (BIN / "tabr-features").is_file() or not (ROOT / "packages/server/dist/bin/tabr-serve.cjs").is_file():
        pytest.fail("run `make build` first (tabr-synth, tabr-features and the service)")
    # 1. Clips and their labels (docs/own-model.md, step 1).
    draw(tmp_path, "clips", {"none": range(50_000, 50_016), "micro_movement": range(60_000, 60_016)})
    labels_csv = "file,label\n" + "".join(f"clips/{p.name},{p.name.rsplit('_', 1)[0]}\n" for p in sorted((tmp_path / "clips").iterdir()))
    (tmp_path / "labels.csv").write_text(labels_csv)
    # 2. Features, with the serving extractor.
    run(BIN / "tabr-features", "clips", "--format", "csv", "-o", "features.csv", cwd=tmp_path)
    # 3. Training (the example script) and 4. export, as the guide prints them.
    out = run(sys.executable, ROOT / "scripts/train_tabr_example.py", "--features", "features.csv", "--train-y", "labels.csv",
              "--labels", ",".join(LABELS), "--out", "run", "--epochs", "8", cwd=tmp_path)
    assert "export it with:" in out
    run(sys.executable, ROOT / "scripts/export_tabr.py", "--checkpoint", "run/best.ckpt", "--train-x", "run/candidates.csv", "--train-y", "label",
        "--preprocess", "run/preprocess.joblib", "--labels", ",".join(LABELS), "--name", "my-model", "--out", "models/my-model", cwd=tmp_path)
    assert (tmp_path / "models/my-model/README.md").is_file()

    # The user's own pipeline: their joblib preprocessing and their checkpoint, in PyTorch.
    import joblib

    draw(tmp_path, "fresh", {"none": range(70_000, 70_002), "micro_movement": range(80_000, 80_002)})
    run(BIN / "tabr-features", "fresh", "--format", "csv", "-o", "fresh.csv", cwd=tmp_path)
    names = export_tabr.poc_abs_v1_names()
    rows, table_names = read_table(tmp_path / "fresh.csv")
    x_fresh = feature_matrix(rows, table_names, names, "fresh.csv")
    cand_rows, cand_names = read_table(tmp_path / "run/candidates.csv")
    x_cand = feature_matrix(cand_rows, cand_names, names, "candidates.csv")
    y_cand = torch.tensor([LABELS.index(r["label"]) for r in cand_rows])
    pre = joblib.load(tmp_path / "run/preprocess.joblib")
    ckpt = torch.load(tmp_path / "run/best.ckpt", map_location="cpu", weights_only=False)
    hp = ckpt["hyper_parameters"]
    model = Model(**hp["model"])
    model.load_state_dict({k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")})
    model.eval()
    with torch.no_grad():
        logits = model(torch.tensor(pre.transform(x_fresh), dtype=torch.float32), torch.tensor(pre.transform(x_cand), dtype=torch.float32), y_cand, hp["context_size"])
    p1 = torch.sigmoid(logits.squeeze(-1).double()).numpy()
    expected = {Path(r["file"]).name: [1 - p, p] for r, p in zip(rows, p1)}

    # 5. Serve it and ask over HTTP.
    port = free_port()
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "AI_API_TOKEN": TOKEN, "PORT": str(port), "LOG_LEVEL": "warn",
           "MODEL_REGISTRY": f"my-model:tabr:{tmp_path / 'models/my-model'}"}
    proc = subprocess.Popen(["node", str(ROOT / "packages/server/dist/bin/tabr-serve.cjs"), "serve"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None and time.time() < deadline, "the service did not become ready"
            time.sleep(0.3)
        worst = 0.0
        for clip in sorted((tmp_path / "fresh").iterdir()):
            served = post_video(f"http://127.0.0.1:{port}/infer/my-model", clip)
            assert served["model"] == "my-model"
            assert served["prediction"]["label"] == LABELS[int(np.argmax(expected[clip.name]))]
            worst = max(worst, float(np.max(np.abs(np.array(served["prediction"]["probabilities"]) - expected[clip.name]))))
        print(f"served vs PyTorch + scikit-learn: worst |Δp| = {worst:.2e}")
        assert worst <= 1e-5
    finally:
        proc.terminate()
        proc.wait(timeout=30)
