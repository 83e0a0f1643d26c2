"""docs/own-model.md, walked as a new user would, for both feature specs (poc-abs/1 and
poc-abs/2): the guide's own shell blocks (set-up, clips, labels, tabr-features, the example
Lightning training script, export_tabr.py, the Node step) run as printed, from the work folder
the guide names; the service is started as `make serve` starts it. The spec travels from the
feature table to the model's manifest without --feature-spec, and the probabilities the service
serves for clips the model never saw equal the user's own PyTorch + scikit-learn pipeline (the
checkpoint, the joblib preprocessing, the candidates) within 1e-5; so do Node's.

The walk needs `make build` (tabr-synth, tabr-features, the service's dist/, the Node addon)
and the pinned tooling with torch (`make test-python`); poc-abs/2 also needs the face fixtures
of ../shared (env TABR_SHARED). Without torch the walks are skipped, with the reason, shown by
`pytest -rs`. The checks of the guide's text, its set-up block and its Node step need none of
that (the Node step needs the built addon and ../shared's face clips, else it is skipped too).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import export_tabr  # noqa: E402
from tabr.table import feature_matrix, load_table  # noqa: E402

GUIDE = ROOT / "docs/own-model.md"
SHARED = Path(os.environ.get("TABR_SHARED", ROOT.parent / "shared"))
BIN = Path(os.environ.get("TABR_BIN_DIR", Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/tabr-serve/target")) / "release"))
LABELS = ["none", "micro_movement"]
TOKEN = "guide-token-0123456789abcdefghijklmnopqrstuvwxyz"
NO_TORCH = "torch is not installed: the guide's training and export need the pinned tooling (make test-python)"


def sh_blocks() -> list[str]:
    """The guide's ```sh blocks, in order."""
    return re.findall(r"^```sh\n(.*?)^```", GUIDE.read_text(), re.MULTILINE | re.DOTALL)


def block(marker: str) -> str:
    """The one ```sh block of the guide that contains `marker`."""
    found = [b for b in sh_blocks() if marker in b]
    assert len(found) == 1, f"{len(found)} sh blocks of docs/own-model.md contain {marker!r}"
    return found[0]


def run_block(text: str, cwd: Path, env: dict[str, str]) -> str:
    """A guide block as printed, in bash with -e and pipefail, in `cwd` with the guide's variables."""
    p = subprocess.run(["bash", "-euo", "pipefail", "-c", text], cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True)
    assert p.returncode == 0, f"this block of docs/own-model.md failed (status {p.returncode}):\n{text}\n{p.stderr[-3000:]}"
    return p.stdout


def set_up(tmp_path: Path) -> dict[str, str]:
    """Step 0 as printed, from a folder of the clone other than its root, with TMPDIR in the
    test's folder: the guide's variables and the folder it leaves the shell in."""
    out = run_block(block("REPO=") + 'printf "%s\\n" "$REPO" "$BIN" "$PY" "$SPEC" "$WORK" "$PWD"\n',
                    ROOT / "docs", {"TMPDIR": str(tmp_path)})
    keys = ["REPO", "BIN", "PY", "SPEC", "WORK", "PWD"]
    return dict(zip(keys, out.splitlines()[-len(keys):], strict=True))


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


# The guide's text and its set-up: no torch, no build.


def test_the_guide_covers_both_specs_and_serves_with_make_serve():
    text = GUIDE.read_text()
    assert "poc-abs/1" in text and "poc-abs/2" in text
    assert "make serve" in text and "make run" not in text
    assert "SPEC=poc-abs/1" in block("REPO=") and "--spec $SPEC" in block("tabr-features clips")


def test_the_guide_works_from_any_folder_and_writes_outside_the_checkout():
    for text in sh_blocks():
        # The clone's files are reached through $REPO, never relative to its root.
        for m in re.finditer(r"(\S*?)\b(scripts|packages|crates|docs)/", text):
            assert m.group(1).endswith("$REPO/"), f"docs/own-model.md: {m.group(0)!r} only resolves from the repository root"
    setup = block("REPO=")
    assert 'cd "$WORK"' in setup and "WORK=${TMPDIR:-/tmp}/" in setup
    node = block("predict.mjs")
    assert "'$REPO/packages/tabr-native/index.js'" in node, "the Node step must import a path that resolves without an install"


def test_the_set_up_block_runs_from_a_subfolder_and_leaves_the_shell_in_the_work_folder(tmp_path):
    v = set_up(tmp_path)
    assert Path(v["REPO"]).resolve() == ROOT.resolve()
    assert Path(v["WORK"]) == tmp_path / "tabr-own-model" and Path(v["PWD"]).resolve() == (tmp_path / "tabr-own-model").resolve()
    assert v["SPEC"] == "poc-abs/1" and str(ROOT) not in v["WORK"]


@pytest.mark.parametrize("spec", [1, 2])
def test_the_node_step_runs_as_printed(tmp_path, spec):
    """Step 7 as printed, on a demo model in the place of my-model and a face fixture as the clip."""
    if not list((ROOT / "packages/tabr-native").glob("*.node")):
        pytest.skip("the Node addon is not built (make build)")
    clip = SHARED / "fixtures/faces/face_lp_d18_man_neutral_480_liveportrait.mp4"
    if not clip.is_file():
        pytest.skip(f"the shared face fixtures are not at {SHARED} (set TABR_SHARED)")
    work = tmp_path / "work"
    (work / "clips").mkdir(parents=True)
    shutil.copytree(ROOT / "models" / ("tabr-demo" if spec == 1 else "tabr-demo-v2"), work / "models/my-model")
    shutil.copyfile(clip, work / "clips/micro_movement_0.mp4")
    out = run_block(block("predict.mjs"), work, {"REPO": str(ROOT), "WORK": str(work), "CLIP": "clips/micro_movement_0.mp4"})
    got = json.loads(out.strip().splitlines()[-1])
    assert got["features"] == {"name": "poc-abs", "version": spec}
    assert got["prediction"]["label"] in LABELS and len(got["prediction"]["probabilities"]) == 2


# The whole walk: torch, the build and (for poc-abs/2) ../shared.


@pytest.mark.parametrize("spec", [1, 2])
def test_the_guide_from_clips_to_a_served_model(tmp_path, spec):
    torch = pytest.importorskip("torch", reason=NO_TORCH)
    pytest.importorskip("lightning", reason=NO_TORCH.replace("torch is", "lightning is"))
    import joblib

    from tabr.model import Model

    if not (BIN / "tabr-features").is_file() or not (ROOT / "packages/server/dist/bin/tabr-serve.cjs").is_file():
        pytest.fail("run `make build` first (tabr-synth, tabr-features and the service)")
    if spec == 2 and not (SHARED / "fixtures/faces").is_dir():
        pytest.skip(f"poc-abs/2's clips are made from the shared face fixtures, not at {SHARED} (set TABR_SHARED)")
    v = set_up(tmp_path)
    work = Path(v["WORK"])
    # The tooling this test runs in stands for $PY (uv with scripts/requirements.txt).
    env = {"REPO": v["REPO"], "BIN": str(BIN), "PY": sys.executable, "SPEC": f"poc-abs/{spec}", "WORK": str(work)}

    # 1. Clips and their labels, 2. features, 3. training and 4. export, as printed.
    run_block(block("$BIN/tabr-synth") if spec == 1 else block("face_clips.py"), work, env)
    run_block(block("echo file,label"), work, env)
    run_block(block("tabr-features clips"), work, env)
    assert load_table(work / "features.csv").spec == {"name": "poc-abs", "version": spec}
    out = run_block(block("train_tabr_example.py"), work, env)
    assert "export it with:" in out and f"feature spec poc-abs/{spec}" in out
    assert load_table(work / "run/candidates.csv").spec == {"name": "poc-abs", "version": spec}
    run_block(block("export_tabr.py"), work, env)
    manifest = json.loads((work / "models/my-model/manifest.json").read_text())
    assert manifest["features"] == {"name": "poc-abs", "version": spec, "params": {}}
    assert (work / "models/my-model/face_cascade.xml").is_file() == (spec == 1)
    assert (work / "models/my-model/README.md").is_file()
    # A contradicting --feature-spec is one line and status 2.
    other = f"poc-abs/{3 - spec}"
    p = subprocess.run([sys.executable, ROOT / "scripts/export_tabr.py", "--checkpoint", "run/best.ckpt", "--train-x", "run/candidates.csv",
                        "--train-y", "label", "--preprocess", "run/preprocess.joblib", "--labels", ",".join(LABELS), "--name", "other",
                        "--out", "models/other", "--feature-spec", other], cwd=work, capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and f"--feature-spec says {other}" in p.stderr, p.stderr

    # The user's own pipeline on clips the model never saw: their joblib preprocessing and their checkpoint, in PyTorch.
    fresh = work / "fresh"
    if spec == 1:
        fresh.mkdir()
        procs = [subprocess.Popen([str(BIN / "tabr-synth"), f"fresh/{label}_{seed}.mkv", "--demo-seed", str(seed), "--demo-class", label], cwd=work)
                 for label, seeds in {"none": range(70_000, 70_002), "micro_movement": range(80_000, 80_002)}.items() for seed in seeds]
        assert all(p.wait() == 0 for p in procs)
    else:
        run_block('$PY $REPO/scripts/tabr/face_clips.py fresh --per-face 1 --seed 2', work, env)
    subprocess.run([str(BIN / "tabr-features"), "fresh", "--spec", f"poc-abs/{spec}", "--format", "csv", "-o", "fresh.csv"], cwd=work, check=True)
    names = export_tabr.poc_abs_v1_names()
    table = load_table(work / "fresh.csv")
    x_fresh = feature_matrix(table.rows, table.names, names, "fresh.csv")
    cand = load_table(work / "run/candidates.csv")
    x_cand = feature_matrix(cand.rows, cand.names, names, "candidates.csv")
    y_cand = torch.tensor([LABELS.index(r["label"]) for r in cand.rows])
    pre = joblib.load(work / "run/preprocess.joblib")
    ckpt = torch.load(work / "run/best.ckpt", map_location="cpu", weights_only=False)
    hp = ckpt["hyper_parameters"]
    assert hp["feature_spec"] == {"name": "poc-abs", "version": spec}
    model = Model(**hp["model"])
    model.load_state_dict({k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")})
    model.eval()
    with torch.no_grad():
        logits = model(torch.tensor(pre.transform(x_fresh), dtype=torch.float32), torch.tensor(pre.transform(x_cand), dtype=torch.float32), y_cand, hp["context_size"])
    p1 = torch.sigmoid(logits.squeeze(-1).double()).numpy()
    expected = {Path(r["file"]).name: [1 - p, p] for r, p in zip(table.rows, p1, strict=True)}

    # 5. Serve it (what `make serve` runs, from the clone) and 6. ask over HTTP.
    port = free_port()
    serve_env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "AI_API_TOKEN": TOKEN, "PORT": str(port), "LOG_LEVEL": "warn",
                 "MODEL_REGISTRY": f"my-model:tabr:{work / 'models/my-model'}"}
    proc = subprocess.Popen(["make", "--no-print-directory", "serve"], cwd=ROOT, env=serve_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
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
        for clip in sorted(fresh.iterdir()):
            served = post_video(f"http://127.0.0.1:{port}/infer/my-model", clip)
            assert served["model"] == "my-model"
            assert served["prediction"]["label"] == LABELS[int(np.argmax(expected[clip.name]))]
            worst = max(worst, float(np.max(np.abs(np.array(served["prediction"]["probabilities"]) - expected[clip.name]))))
        print(f"poc-abs/{spec}: served vs PyTorch + scikit-learn: worst |Δp| = {worst:.2e}")
        assert worst <= 1e-5
    finally:
        try:
            os.killpg(proc.pid, 15)  # make and the service it started: the process group this test made
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)

    # 7. From Node, as printed, on one of the fresh clips.
    clip = sorted(fresh.iterdir())[-1]
    out = run_block(block("predict.mjs"), work, {**env, "CLIP": f"fresh/{clip.name}"})
    got = json.loads(out.strip().splitlines()[-1])
    assert got["features"] == {"name": "poc-abs", "version": spec}
    np.testing.assert_allclose(got["prediction"]["probabilities"], expected[clip.name], atol=1e-5)
