# /// script
# requires-python = ">=3.10"
# dependencies = ["numpy==2.4.6", "onnxruntime==1.32.0", "opencv-python-headless==4.10.0.84"]
# ///
"""poc-abs v2's face stage in numpy, onnxruntime and OpenCV's Python package, sharing no code with the Rust core.

    uv run scripts/poc_abs_v2_face.py ../shared/fixtures/faces/*.mp4 --overlay out/

For each clip: frames from ffmpeg (RGB), the full-range BlazeFace detector on a letterboxed
192² frame (anchors, box and keypoint decoding, sigmoid scores, weighted suppression, the most
confident face), the FaceMesh region of interest (the box centre, 1.5 × its longer side, turned
so the eyes are level), FaceMesh's 468 landmarks mapped back to the frame (and once more from
the region they imply, as a tracked try looks), and the similarity
(scale, rotation, translation) that puts seven stable landmarks onto the canonical template of
a 128² crop. `--overlay DIR` writes, per clip, the first aligned crop with the landmarks used
as a PNG (through ffmpeg). Prints one JSON line per clip: detection score, box, fit residual.

This is the prototype of the v2 spec (docs/spec/poc-abs-v2.md, written from what it measured)
and the face stage of its independent route, `poc_abs_v2_reference.py`, which imports it. The
detector's letterbox is OpenCV's `warpAffine` (the spec makes its fixed-point rounding part of
the contract); FaceMesh's input and the canonical crop are sampled without rounding
(`bilinear`), as the spec says; the similarity is the spec's closed form.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ASSETS = Path(__file__).resolve().parent.parent / "crates/tabr-core/assets/face"
DET_SIZE = 192
#: v2 §2.1: the detector's views, letterboxes this many times the frame's longer side, in turn.
DETECTOR_VIEWS = (1.0, 2.0, 3.0)
MESH_SIZE = 192
ROI_SIZE = 128
MIN_SCORE = 0.5
SUPPRESSION_IOU = 0.3
ROI_SCALE = 1.5
#: FaceMesh indices that fix the similarity: the eyes' outer and inner corners (right eye 33,
#: 133; left eye 362, 263, in the subject's sense), the nose tip (1), the mouth corners (61, 291).
FIT_POINTS = [33, 133, 362, 263, 1, 61, 291]
#: Where they go in the canonical crop, as fractions of its side (x right, y down).
TEMPLATE = 0.5 + 0.85 * (np.array([[0.24, 0.38], [0.40, 0.385], [0.60, 0.385], [0.76, 0.38], [0.50, 0.59], [0.34, 0.75], [0.66, 0.75]]) - 0.5)


def probe(clip: Path) -> dict:
    """The first video stream's displayed size (rotation applied) and average frame rate (0 when unknown)."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height,avg_frame_rate:stream_side_data=rotation", "-of", "json", str(clip)], check=True, capture_output=True, text=True)
    info = json.loads(out.stdout)["streams"][0]
    w, h = info["width"], info["height"]
    rot = next((abs(int(s.get("rotation", 0))) for s in info.get("side_data_list", []) if "rotation" in s), 0)
    if rot in (90, 270):
        w, h = h, w
    num, _, den = info.get("avg_frame_rate", "0/0").partition("/")
    fps = float(num) / float(den) if den and float(den) else 0.0
    return {"width": w, "height": h, "fps": fps}


def read_frames(clip: Path, pix_fmt: str = "rgb24") -> tuple[list[np.ndarray], int, int]:
    """Every frame as H×W×3 uint8 (RGB, or `bgr24`), in presentation order, none dropped or
    repeated, display rotation applied, converted by swscale's bicubic path as OpenCV's reader
    does (ffmpeg)."""
    info = probe(clip)
    w, h = info["width"], info["height"]
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip), "-map", "0:v:0", "-fps_mode", "passthrough", "-sws_flags", "bicubic",
                          "-f", "rawvideo", "-pix_fmt", pix_fmt, "-"], check=True, capture_output=True).stdout
    a = np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)
    return list(a), w, h


def warp(img: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """Bilinear sampling, OpenCV's fixed point: output pixel (u, v) takes the input at m @ (u, v, 1); zero outside."""
    return cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def anchors() -> np.ndarray:
    """The full-range model's 2304 anchor centres: a 48 × 48 grid (stride 4), offset 0.5."""
    n = DET_SIZE // 4
    ys, xs = np.mgrid[0:n, 0:n]
    return np.stack([(xs.ravel() + 0.5) / n, (ys.ravel() + 0.5) / n], 1)


def detect(sess, frame: np.ndarray, view: float = 1.0) -> dict | None:
    """The most confident face: box (x0, y0, x1, y1) and 6 keypoints in frame pixels. `view`:
    the letterbox's side in units of the frame's longer side (v2 §2.1: 1, then 2 and 3 for close-ups)."""
    h, w = frame.shape[:2]
    scale = DET_SIZE / (view * max(w, h))
    pad_x, pad_y = (DET_SIZE - w * scale) / 2, (DET_SIZE - h * scale) / 2
    # Letterbox: frame pixel centre (x + 0.5) lands at (x + 0.5) * scale + pad.
    m = np.array([[1 / scale, 0, (0.5 - pad_x) / scale - 0.5], [0, 1 / scale, (0.5 - pad_y) / scale - 0.5]])
    # v2 §2.2, in float32 as the spec fixes it: f32(g) · f32(1/127.5) − 1.
    # The samples are v2's unrounded bilinear ones (§2.1), zero outside the frame.
    x = bilinear(frame, m, DET_SIZE, "zero") * (np.float32(1) / np.float32(127.5)) - np.float32(1)
    boxes, scores = sess.run(None, {sess.get_inputs()[0].name: x.transpose(2, 0, 1)[None].astype(np.float32)})
    raw = boxes[0].astype(np.float64)
    score = 1 / (1 + np.exp(-np.clip(scores[0, :, 0].astype(np.float64), -100, 100)))
    a = anchors()
    cx = raw[:, 0] / DET_SIZE + a[:, 0]
    cy = raw[:, 1] / DET_SIZE + a[:, 1]
    bw, bh = raw[:, 2] / DET_SIZE, raw[:, 3] / DET_SIZE
    kp = raw[:, 4:16].reshape(-1, 6, 2) / DET_SIZE + a[:, None, :]
    keep = np.flatnonzero(score >= MIN_SCORE)
    if not len(keep):
        return None
    box = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)
    # Weighted suppression: the best candidate's cluster (IoU ≥ 0.3) averaged by score.
    best = keep[np.argmax(score[keep])]
    b = box[keep]
    ix = np.clip(np.minimum(b[:, 2], box[best, 2]) - np.maximum(b[:, 0], box[best, 0]), 0, None)
    iy = np.clip(np.minimum(b[:, 3], box[best, 3]) - np.maximum(b[:, 1], box[best, 1]), 0, None)
    inter = ix * iy
    union = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) + (box[best, 2] - box[best, 0]) * (box[best, 3] - box[best, 1]) - inter
    cluster = keep[inter / union >= SUPPRESSION_IOU]
    wgt = score[cluster] / score[cluster].sum()
    mbox = (box[cluster] * wgt[:, None]).sum(0)
    mkp = (kp[cluster] * wgt[:, None, None]).sum(0)
    # Unit detector coordinates → frame pixels (centres at whole numbers).
    to_px = lambda p: (p * DET_SIZE - [pad_x, pad_y]) / scale - 0.5  # noqa: E731
    return {"score": float(score[best]), "box": np.concatenate([to_px(mbox[:2]), to_px(mbox[2:])]), "keypoints": to_px(mkp)}


def region_from_detection(det: dict) -> tuple[float, float, float, float]:
    """v2 §3.1: FaceMesh's region for a detection, (centre x, centre y, side, angle): the box
    centre, 1.5 × its longer side, turned so the detector's eye keypoints are level."""
    x0, y0, x1, y1 = det["box"]
    (rx, ry), (lx, ly) = det["keypoints"][0], det["keypoints"][1]  # the subject's right and left eye
    return (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * ROI_SCALE, math.atan2(ly - ry, lx - rx)


def region_from_landmarks(pts: np.ndarray) -> tuple[float, float, float, float]:
    """v2 §3.5: the region a face's landmarks imply (where the next try looks first): turned so
    the eyes' outer corners (33, 263) are level, the landmarks' box in that turned frame, its
    centre, 1.5 × its longer side."""
    (rx, ry), (lx, ly) = pts[33], pts[263]
    theta = math.atan2(ly - ry, lx - rx)
    c, s = math.cos(theta), math.sin(theta)
    u, v = c * pts[:, 0] + s * pts[:, 1], -s * pts[:, 0] + c * pts[:, 1]
    mu, mv = (u.min() + u.max()) / 2, (v.min() + v.max()) / 2
    side = max(u.max() - u.min(), v.max() - v.min()) * ROI_SCALE
    return c * mu - s * mv, s * mu + c * mv, side, theta


def bilinear(img: np.ndarray, m: np.ndarray, n: int, outside: str) -> np.ndarray:
    """The n×n float32 image whose pixel (u, v) is `img` (H×W or H×W×C) at m @ (u, v, 1),
    bilinear in float64 and unrounded (v2 §3.2, §4.5); a neighbour outside the frame is the
    nearest border pixel (`outside="replicate"`) or 0 (`"zero"`)."""
    h, w = img.shape[:2]
    v, u = np.mgrid[0:n, 0:n].astype(np.float64)
    x, y = m[0, 0] * u + m[0, 1] * v + m[0, 2], m[1, 0] * u + m[1, 1] * v + m[1, 2]
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = x - x0, y - y0
    g = img.astype(np.float64)
    if g.ndim == 3:
        fx, fy = fx[..., None], fy[..., None]

    def at(xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
        xi, yi = np.clip(xx, 0, w - 1).astype(int), np.clip(yy, 0, h - 1).astype(int)
        px = g[yi, xi]
        if outside == "zero":
            out = (xx < 0) | (yy < 0) | (xx > w - 1) | (yy > h - 1)
            px = np.where(out[..., None] if g.ndim == 3 else out, 0.0, px)
        return px

    top = (1 - fx) * at(x0, y0) + fx * at(x0 + 1, y0)
    bottom = (1 - fx) * at(x0, y0 + 1) + fx * at(x0 + 1, y0 + 1)
    return ((1 - fy) * top + fy * bottom).astype(np.float32)


def landmarks_in(sess, frame: np.ndarray, region: tuple[float, float, float, float]) -> tuple[np.ndarray, float]:
    """FaceMesh's 468 points (x, y in frame pixels) in a region, and its face flag (a logit)."""
    cx, cy, side, theta = region
    c, s = math.cos(theta), math.sin(theta)
    k = side / MESH_SIZE
    # Crop pixel (u, v) ↔ frame: centre + R(θ) · k · (u + 0.5 − 96, v + 0.5 − 96) − 0.5.
    m = np.array([[c * k, -s * k, cx - 0.5 + (c * (0.5 - MESH_SIZE / 2) - s * (0.5 - MESH_SIZE / 2)) * k],
                  [s * k, c * k, cy - 0.5 + (s * (0.5 - MESH_SIZE / 2) + c * (0.5 - MESH_SIZE / 2)) * k]])
    # v2 §3.2–§3.3: sampled without rounding (zero outside), then in float32 · f32(1/255).
    crop = bilinear(frame, m, MESH_SIZE, "zero") * (np.float32(1) / np.float32(255))
    outs = sess.run(None, {sess.get_inputs()[0].name: crop.transpose(2, 0, 1)[None].astype(np.float32)})
    pts = next(o for o in outs if o.size == 3 * 468).reshape(468, 3)[:, :2].astype(np.float64)
    flag = float(next(o for o in outs if o.size == 1).ravel()[0])
    # FaceMesh's coordinates are crop pixels with the pixel centre at +0.5.
    return (m[:, :2] @ (pts - 0.5).T).T + m[:, 2], flag


def landmarks_with_flag(sess, frame: np.ndarray, det: dict) -> tuple[np.ndarray, float]:
    """A detection's landmarks (v2 §3): FaceMesh's 468 points (x, y in frame pixels) in the
    detection's region, then again in the region those points imply (§3.5), as a tracked try
    would look: the second set, with its face flag (a logit)."""
    first = landmarks_in(sess, frame, region_from_detection(det))[0]
    return landmarks_in(sess, frame, region_from_landmarks(first))


def landmarks(sess, frame: np.ndarray, det: dict) -> np.ndarray:
    """A detection's landmarks, as `landmarks_with_flag` places them."""
    return landmarks_with_flag(sess, frame, det)[0]


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The least-squares similarity [a −b c; b a f] taking src onto dst (v2 spec §4.3's closed form on
    centred points; no reflection), as a 2×3 matrix."""
    ms, md = src.mean(0), dst.mean(0)
    (x, y), (xd, yd) = (src - ms).T, (dst - md).T
    norm = (x * x + y * y).sum()
    a, b = (x * xd + y * yd).sum() / norm, (x * yd - y * xd).sum() / norm
    return np.array([[a, -b, md[0] - a * ms[0] + b * ms[1]], [b, a, md[1] - b * ms[0] - a * ms[1]]])


def png(path: Path, rgb: np.ndarray) -> None:
    h, w = rgb.shape[:2]
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-i", "-", str(path)], input=np.clip(rgb, 0, 255).astype(np.uint8).tobytes(), check=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="poc_abs_v2_face", description=__doc__.split("\n\n")[0])
    ap.add_argument("clips", nargs="+", help="video files")
    ap.add_argument("--overlay", help="folder for one PNG per clip: the first aligned crop, 4× enlarged, with the fit landmarks")
    ap.add_argument("--frames", type=int, default=10, help="frames per clip to run (default 10, spread over the clip)")
    ap.add_argument("--mean-shape", help="write the mean canonical position of all 468 landmarks over every frame run (JSON), after a generalised Procrustes fit of the seven fit points: what the template and the regions are chosen from")
    ap.add_argument("--gray", action="store_true", help="give the models the gray frame in all three channels (as v1's decoder delivers it) instead of colour")
    args = ap.parse_args(argv)
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    det_sess = ort.InferenceSession(str(ASSETS / "blazeface_full_range.onnx"), opts, providers=["CPUExecutionProvider"])
    mesh_sess = ort.InferenceSession(str(ASSETS / "facemesh.onnx"), opts, providers=["CPUExecutionProvider"])
    all_shapes: list[np.ndarray] = []
    for clip in map(Path, args.clips):
        frames, w, h = read_frames(clip)
        if args.gray:
            # v1 §1's gray (OpenCV's conversion), replicated into R, G and B.
            frames = [cv2.cvtColor(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB) for f in frames]
        picks = np.linspace(0, len(frames) - 1, min(args.frames, len(frames))).round().astype(int)
        found, scores, residuals, first = 0, [], [], None
        shapes = all_shapes
        t_det = t_mesh = 0.0
        for i in picks:
            t0 = time.perf_counter()
            det = detect(det_sess, frames[i])
            t_det += time.perf_counter() - t0
            if det is None:
                continue
            found += 1
            scores.append(det["score"])
            t0 = time.perf_counter()
            pts = landmarks(mesh_sess, frames[i], det)
            t_mesh += time.perf_counter() - t0
            shapes.append(pts)
            dst = TEMPLATE * ROI_SIZE
            fit = similarity(pts[FIT_POINTS], dst)
            mapped = (fit[:, :2] @ pts[FIT_POINTS].T).T + fit[:, 2]
            residuals.append(float(np.sqrt(((mapped - dst) ** 2).sum(1).mean())))
            if first is None:
                first = (frames[i], fit, pts)
        print(json.dumps({"clip": clip.name, "size": [w, h], "frames_tried": len(picks), "faces": found,
                          "score_min": min(scores) if scores else None, "fit_rms_px": float(np.mean(residuals)) if residuals else None,
                          "ms_per_detection": 1e3 * t_det / len(picks), "ms_per_mesh": 1e3 * t_mesh / max(found, 1)}))
        if args.overlay and first is not None:
            frame, fit, pts = first
            inv = np.linalg.inv(np.vstack([fit, [0, 0, 1]]))[:2]
            big = 4
            crop = warp(frame, inv @ np.diag([1 / big, 1 / big, 1]), ROI_SIZE * big)
            canon = (fit[:, :2] @ pts.T).T + fit[:, 2]
            for j, (x, y) in enumerate(canon * big):
                r = 3 if j in FIT_POINTS else 1
                colour = [255, 60, 60] if j in FIT_POINTS else [60, 220, 60]
                yy, xx = int(round(y)), int(round(x))
                crop[max(0, yy - r):yy + r + 1, max(0, xx - r):xx + r + 1] = colour
            Path(args.overlay).mkdir(parents=True, exist_ok=True)
            png(Path(args.overlay) / f"{clip.stem}.png", crop)
    if args.mean_shape and all_shapes:
        Path(args.mean_shape).write_text(json.dumps(mean_shape(all_shapes)))
    return 0


def mean_shape(shapes: list[np.ndarray], rounds: int = 10) -> dict:
    """Generalised Procrustes on the fit points: each face's similarity onto the running mean of
    the fit points, the mean re-estimated, then scaled and placed so that the outer eye corners
    sit where TEMPLATE puts them. Returns the fit points' mean and every landmark's mean and
    spread, in canonical pixels."""
    target = TEMPLATE * ROI_SIZE
    for _ in range(rounds):
        fits = [similarity(s[FIT_POINTS], target) for s in shapes]
        mean = np.mean([(f[:, :2] @ s[FIT_POINTS].T).T + f[:, 2] for f, s in zip(fits, shapes, strict=False)], 0)
        # Keep the frame of reference: the mean's outer eye corners onto the template's.
        anchor = similarity(mean[[0, 3]], (TEMPLATE * ROI_SIZE)[[0, 3]])
        target = (anchor[:, :2] @ mean.T).T + anchor[:, 2]
    fits = [similarity(s[FIT_POINTS], target) for s in shapes]
    canon = np.array([(f[:, :2] @ s.T).T + f[:, 2] for f, s in zip(fits, shapes, strict=False)])
    return {"roi_size": ROI_SIZE, "faces": len(shapes), "fit_points": FIT_POINTS, "fit_mean": target.round(3).tolist(),
            "landmarks_mean": canon.mean(0).round(3).tolist(), "landmarks_sd": canon.std(0).round(3).tolist()}


if __name__ == "__main__":
    sys.exit(main())
