# /// script
# requires-python = ">=3.10"
# dependencies = ["numpy==2.4.6", "onnxruntime==1.32.0", "opencv-python-headless==4.10.0.84"]
# ///
"""Training clips for the poc-abs v2 demo model: real faces with movements known by construction.

v2 finds faces with BlazeFace and FaceMesh, which the cartoon faces of ``tabr-synth`` do not
fool reliably, so its demo model learns from real faces: frames of the licensed face fixtures
in ``../shared/fixtures/faces`` (read from there at build time, never copied into the
repository). Each clip holds one such frame still for 1.5 s at 30 fps, with fresh sensor noise
(σ = 1 gray level) in every frame. A ``micro_movement`` clip also moves one part of the face
(the mouth, the brows or the eyes, found with FaceMesh's landmarks) for 4–8 frames: a smooth
bump of displacement, up and back, of 0.5–1.2 pixels of the 128² canonical crop, however
large the face is in the frame. A ``none`` clip has only the noise. The label is known because
the movement is made, not judged.

Clips are written losslessly (FFV1 in Matroska), so the sub-pixel movement reaches the
extractor as it was made. ``make_demo_model.py --spec 2`` uses this module; run alone, it
writes fresh clips for a test (``uv run scripts/tabr/face_clips.py OUT --seed 7``: one clip
per class of every fixture's held-out frame, named ``<label>_<n>.mkv``).
"""
from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import poc_abs_v2_face as v2face  # noqa: E402  (the prototype: detector and FaceMesh in numpy + onnxruntime)

FPS = 30
FRAMES = 45
NOISE_SIGMA = 1.0
#: FaceMesh indices of the parts that move, as in docs/spec/poc-abs-v2.md §6.
PARTS = {
    "mouth": [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185],
    "brows": [70, 63, 105, 66, 107, 46, 53, 52, 65, 55, 300, 293, 334, 296, 336, 276, 283, 282, 295, 285],
    "eyes": [33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246,
             362, 382, 381, 380, 374, 373, 390, 249, 263, 466, 388, 387, 386, 385, 384, 398],
}
#: Where in each fixture the still frames are taken (fractions of its length); the held-out
#: fraction gives the test clips, frames the model never saw.
TRAIN_AT = (0.1, 0.3, 0.7, 0.9)
TEST_AT = (0.5,)


@dataclass
class Face:
    """One still frame of a fixture with what the movements need from its landmarks."""

    source: str
    frame: np.ndarray  # H×W×3 uint8, RGB
    landmarks: np.ndarray  # 468×2, frame pixels
    px_per_crop_px: float  # frame pixels per pixel of the 128² canonical crop


def faces(fixtures: Path, at: tuple[float, ...]) -> list[Face]:
    """The still frames at fractions `at` of every face fixture, with their landmarks."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    det = ort.InferenceSession(str(v2face.ASSETS / "blazeface_full_range.onnx"), opts, providers=["CPUExecutionProvider"])
    mesh = ort.InferenceSession(str(v2face.ASSETS / "facemesh.onnx"), opts, providers=["CPUExecutionProvider"])
    out = []
    for clip in sorted(fixtures.glob("face_*")):
        frames, _, _ = v2face.read_frames(clip)
        for f in at:
            frame = frames[min(len(frames) - 1, round(f * (len(frames) - 1)))]
            gray = np.repeat(np.rint(frame @ [0.299, 0.587, 0.114])[..., None], 3, 2).astype(np.uint8)
            found = v2face.detect(det, gray)
            if found is None:
                raise RuntimeError(f"{clip.name}: no face at {f:.0%} of the clip")
            pts = v2face.landmarks(mesh, gray, found)
            fit = v2face.similarity(v2face.TEMPLATE * v2face.ROI_SIZE, pts[v2face.FIT_POINTS])
            out.append(Face(clip.name, frame, pts, float(math.hypot(fit[0, 0], fit[1, 0]))))
    return out


def _moved(frame: np.ndarray, centre: np.ndarray, sigma: float, shift: np.ndarray) -> np.ndarray:
    """`frame` with a Gaussian bump of displacement `shift` (pixels, at the centre) around
    `centre`, by bilinear resampling of the bump's neighbourhood only."""
    h, w = frame.shape[:2]
    r = int(math.ceil(3 * sigma))
    x0, x1 = max(0, int(centre[0]) - r), min(w, int(centre[0]) + r + 2)
    y0, y1 = max(0, int(centre[1]) - r), min(h, int(centre[1]) + r + 2)
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    g = np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * sigma * sigma))
    # Content at p moves to p + g·shift: sample the still frame at p − g·shift.
    sx = np.clip(xs - g * shift[0], 0, w - 1)
    sy = np.clip(ys - g * shift[1], 0, h - 1)
    fx, fy = np.floor(sx).astype(int), np.floor(sy).astype(int)
    ax, ay = (sx - fx)[..., None], (sy - fy)[..., None]
    fx1, fy1 = np.minimum(fx + 1, w - 1), np.minimum(fy + 1, h - 1)
    src = frame.astype(np.float64)
    top = (1 - ax) * src[fy, fx] + ax * src[fy, fx1]
    bottom = (1 - ax) * src[fy1, fx] + ax * src[fy1, fx1]
    out = frame.astype(np.float64)
    out[y0:y1, x0:x1] = (1 - ay) * top + ay * bottom
    return out


def write_clip(path: Path, face: Face, moving: bool, rng: np.random.Generator) -> dict:
    """One clip of `face` (see the module docs); returns what was done, for the record."""
    h, w = face.frame.shape[:2]
    plan: dict = {"source": face.source, "moving": moving}
    if moving:
        part = str(rng.choice(list(PARTS)))
        pts = face.landmarks[PARTS[part]]
        amp = rng.uniform(0.5, 1.2) * face.px_per_crop_px
        # Mouth down, brows up, eyes down (a lid's beat); the bump spans the part.
        direction = {"mouth": (0.0, 1.0), "brows": (0.0, -1.0), "eyes": (0.0, 1.0)}[part]
        start, length = int(rng.integers(10, FRAMES - 12)), int(rng.integers(4, 9))
        sigma = max(1.0, 0.35 * float(np.ptp(pts[:, 0])))
        plan.update(part=part, amplitude_crop_px=amp / face.px_per_crop_px, start=start, frames=length)
    proc = subprocess.Popen(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(FPS),
                             "-i", "-", "-c:v", "ffv1", "-pix_fmt", "yuv444p", str(path)], stdin=subprocess.PIPE)
    assert proc.stdin is not None
    for t in range(FRAMES):
        img = face.frame.astype(np.float64)
        if moving and start <= t <= start + length:
            k = math.sin(math.pi * (t - start) / length)
            if part in ("brows", "eyes"):
                # Both sides move together, each with its own bump.
                half = len(pts) // 2
                for side in (pts[:half], pts[half:]):
                    img = _moved(img, side.mean(0), max(1.0, 0.35 * float(np.ptp(side[:, 0]))), k * amp * np.array(direction))
            else:
                img = _moved(img, pts.mean(0), sigma, k * amp * np.array(direction))
        img = img + rng.normal(0.0, NOISE_SIGMA, img.shape)
        proc.stdin.write(np.clip(np.rint(img), 0, 255).astype(np.uint8).tobytes())
    proc.stdin.close()
    if proc.wait():
        raise RuntimeError(f"ffmpeg could not write {path}")
    return plan


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="face_clips", description="fresh v2 demo clips from the face fixtures' held-out frames")
    ap.add_argument("out", help="folder to write the clips into")
    shared = os.environ.get("TABR_SHARED", str(Path(__file__).resolve().parents[3] / "shared"))
    ap.add_argument("--fixtures", default=f"{shared}/fixtures/faces", help="the face fixtures (default ../shared/fixtures/faces, or $TABR_SHARED/fixtures/faces)")
    ap.add_argument("--per-face", type=int, default=1, help="clips per class and still frame (default 1)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the noise and the movements")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    n = 0
    for face in faces(Path(args.fixtures), TEST_AT):
        for _ in range(args.per_face):
            for label in ("none", "micro_movement"):
                write_clip(out / f"{label}_{n:03d}.mkv", face, label == "micro_movement", rng)
                n += 1
    print(f"{n} clips in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
