# /// script
# requires-python = ">=3.10"
# dependencies = ["numpy==2.4.6", "onnxruntime==1.32.0", "opencv-python-headless==4.10.0.84"]
# ///
"""POC-ABS feature vectors (v1 and v2) computed from the spec texts alone: the independent route.

    uv run scripts/poc_abs_v2_reference.py [--spec poc-abs/1|poc-abs/2] clips...

Prints one JSON line per clip: {"file", "error" (the spec's stable code or null), "values" (90
floats or null)}; `--meta` adds the face schedule (tries, hits, fits in force) for parity checks.

It shares no code with the Rust core (crates/): it follows ../shared/spec/poc-abs-v1.md and
docs/spec/poc-abs-v2.md step by step, so that agreement with the core means both read the texts
alike. Decoding is the ffmpeg CLI (bicubic swscale to BGR, as OpenCV's reader converts); the
image operations the specs name as OpenCV's (BGR→GRAY, INTER_AREA, the Haar cascade,
Farnebäck, warpAffine's fixed point) come from OpenCV's Python package; POC and the statistics
are numpy in float64. v2's face stage (BlazeFace, FaceMesh, the similarity fit) is the
prototype's, imported from poc_abs_v2_face.py.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

import poc_abs_v2_face as face

ROI_SIZE = 128
MAX_SECONDS = 10.5
MAX_PIXELS = 1920 * 1080
MIN_FACE_RATE = 0.3
REDETECT_SECONDS = 0.5
DEFAULT_FPS = 30.0
#: v1 §2's Haar parameters.
DETECT_WIDTH = 320
IOU_KEEP = 0.85
HAAR_CASCADE = Path(__file__).resolve().parent.parent / "crates/tabr-core/assets/haarcascade_frontalface_default.xml"
#: v1 §4: pyramid scale, levels, window, iterations, poly_n, poly_sigma, flags.
FARNEBACK = (0.5, 3, 15, 3, 5, 1.2, 0)
POC_EPS = 1e-9

Rect = tuple[float, float, float, float]
#: Regions in crop coordinates normalised to [0, 1]: (x0, y0, x1, y1), v1 §3 and v2 §6.
REGIONS: dict[int, dict[str, Rect]] = {
    1: {"brow_l": (0.12, 0.14, 0.46, 0.30), "brow_r": (0.54, 0.14, 0.88, 0.30), "eye_l": (0.12, 0.28, 0.46, 0.46),
        "eye_r": (0.54, 0.28, 0.88, 0.46), "nose": (0.36, 0.44, 0.64, 0.66), "cheek_l": (0.06, 0.46, 0.34, 0.72),
        "cheek_r": (0.66, 0.46, 0.94, 0.72), "mouth": (0.26, 0.66, 0.74, 0.92)},
    2: {"brow_l": (0.20, 0.22, 0.45, 0.36), "brow_r": (0.55, 0.22, 0.80, 0.36), "eye_l": (0.25, 0.35, 0.44, 0.45),
        "eye_r": (0.56, 0.35, 0.75, 0.45), "nose": (0.38, 0.44, 0.62, 0.63), "cheek_l": (0.18, 0.47, 0.38, 0.65),
        "cheek_r": (0.62, 0.47, 0.82, 0.65), "mouth": (0.33, 0.65, 0.67, 0.83)},
}


class ExtractError(Exception):
    """A clip without features: `code` is the spec's stable error code (v1 §6)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def round_half_up(x: float) -> int:
    """The specs' rounding: floor(x + 0.5)."""
    return math.floor(x + 0.5)


# --- v1 §1: decode ---------------------------------------------------------------------------

def decode(clip: Path) -> tuple[list[np.ndarray], float]:
    """Every frame as 8-bit gray (OpenCV's BGR→GRAY of the decoded frame) and the fps, with v1 §1's limits."""
    try:
        fps = face.probe(clip)["fps"]
        frames, w, h = face.read_frames(clip, "bgr24")
    except (subprocess.CalledProcessError, KeyError, IndexError, ValueError) as e:
        raise ExtractError("invalid_video", "the video cannot be opened or decoded") from e
    if not frames:
        raise ExtractError("invalid_video", "the video has no decodable frame")
    fps = fps if fps > 0 and math.isfinite(fps) else DEFAULT_FPS
    if w * h > MAX_PIXELS:
        raise ExtractError("frame_too_large", f"a frame of {w}×{h} is larger than allowed")
    if len(frames) > math.ceil(fps * MAX_SECONDS):
        raise ExtractError("video_too_long", f"the video is longer than {MAX_SECONDS} s")
    if len(frames) < 2:
        raise ExtractError("video_too_short", "the video has fewer than 2 frames")
    return [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in frames], fps


# --- the face methods: v1's Haar box (§2–§3) and v2's aligned landmarks (§2–§4) ---------------

class FaceMethod(Protocol):
    """What the schedule needs from a spec's face stage: a fit from one frame, whether a new fit
    replaces the one in force, and the canonical crop a fit cuts from a frame."""

    def find(self, gray: np.ndarray, last: Any) -> Any: ...
    def replaces(self, old: Any, new: Any) -> bool: ...
    def crop(self, gray: np.ndarray, fit: Any) -> np.ndarray: ...


class HaarBox:
    """v1 §2–§3: the largest Haar face on the shrunk, equalised frame as a square box (left, top, side)."""

    def __init__(self) -> None:
        self.cascade = cv2.CascadeClassifier(str(HAAR_CASCADE))
        if self.cascade.empty():
            raise RuntimeError(f"cannot load the Haar cascade {HAAR_CASCADE}")

    def find(self, gray: np.ndarray, last: np.ndarray | None) -> np.ndarray | None:
        h, w = gray.shape
        small = gray
        if w > DETECT_WIDTH:
            small = cv2.resize(gray, (DETECT_WIDTH, round_half_up(h * DETECT_WIDTH / w)), interpolation=cv2.INTER_AREA)
        min_side = round_half_up(0.1 * small.shape[0])
        faces = self.cascade.detectMultiScale(cv2.equalizeHist(small), scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side))
        if len(faces) == 0:
            return None
        x, y, fw, fh = min(faces.tolist(), key=lambda f: (-f[2] * f[3], f[1], f[0]))
        s = w / small.shape[1]
        side = round_half_up(min(max(fw, fh) * s, w, h))
        cx, cy = (x + fw / 2) * s, (y + fh / 2) * s
        left = min(max(round_half_up(cx - side / 2), 0), w - side)
        top = min(max(round_half_up(cy - side / 2), 0), h - side)
        return np.array([left, top, side])

    def replaces(self, old: np.ndarray, new: np.ndarray) -> bool:
        (ox, oy, os_), (nx, ny, ns) = old, new
        ix = max(0, min(ox + os_, nx + ns) - max(ox, nx))
        iy = max(0, min(oy + os_, ny + ns) - max(oy, ny))
        inter = ix * iy
        return inter / (os_ * os_ + ns * ns - inter) < IOU_KEEP

    def crop(self, gray: np.ndarray, fit: np.ndarray) -> np.ndarray:
        left, top, side = (int(v) for v in fit)
        return cv2.resize(gray[top:top + side, left:left + side], (ROI_SIZE, ROI_SIZE), interpolation=cv2.INTER_AREA)


def apply(t: np.ndarray, points: np.ndarray) -> np.ndarray:
    """A 2×3 affine map applied to N×2 points."""
    return points @ t[:, :2].T + t[:, 2]


@dataclass
class AlignedFit:
    """v2's answer to a try: the similarity T (2×3, unit square → frame) and the region its
    landmarks imply, where the next try looks first (§3.5)."""

    t: np.ndarray
    track: tuple[float, float, float, float]


class AlignedLandmarks:
    """v2 §2–§5: BlazeFace, FaceMesh and the similarity of the fit points onto the template; after
    a hit, a try first runs FaceMesh alone in the region the hit's landmarks imply."""

    def __init__(self) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self.detector, self.mesh = (ort.InferenceSession(str(face.ASSETS / name), opts, providers=["CPUExecutionProvider"])
                                    for name in ("blazeface_full_range.onnx", "facemesh.onnx"))

    def find(self, gray: np.ndarray, last: AlignedFit | None) -> AlignedFit | None:
        rgb = cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)  # v2 §1: the gray frame in all three channels
        points = None
        if last is not None:  # §5: the tracked region first, kept when FaceMesh's flag is above 0
            tracked, flag = face.landmarks_in(self.mesh, rgb, last.track)
            points = tracked if flag > 0 else None
        if points is None:
            points = self.detection_try(rgb)
        if points is None:
            return None
        return AlignedFit(face.similarity(face.TEMPLATE, points[face.FIT_POINTS]), face.region_from_landmarks(points))

    def detection_try(self, rgb: np.ndarray) -> np.ndarray | None:
        """§5's detection try: the detector's views in turn (§2.1); a hit needs FaceMesh's flag
        above 0 on the landmarks placed in the tracked region of the first ones (§3.4)."""
        for view in face.DETECTOR_VIEWS:
            det = face.detect(self.detector, rgb, view)
            if det is not None:
                placed, flag = face.landmarks_with_flag(self.mesh, rgb, det)
                if flag > 0:
                    return placed
        return None

    def replaces(self, old: AlignedFit, new: AlignedFit) -> bool:
        moved = np.linalg.norm(apply(new.t, face.TEMPLATE) - apply(old.t, face.TEMPLATE), axis=1)
        return bool((moved / (math.hypot(old.t[0, 0], old.t[1, 0]) / ROI_SIZE) > 1).any())

    def crop(self, gray: np.ndarray, fit: AlignedFit) -> np.ndarray:
        n, t = ROI_SIZE, fit.t
        # Crop pixel (u, v) samples the frame at T(((u + ½)/n, (v + ½)/n)).
        m = t[:, :2] / n
        m = np.hstack([m, (t[:, 2] + m.sum(1) / 2)[:, None]])
        f = math.floor(math.hypot(t[0, 0], t[1, 0]) / n)
        h, w = gray.shape
        f = min(f, w, h)
        if f >= 2:  # a large face: shrink the frame first, the map becomes (T(·) + ½)/f − ½
            # §4.5: the frame cut to whole f × f blocks, each the mean rounded half up.
            blocks = gray[: h // f * f, : w // f * f].astype(np.int64).reshape(h // f, f, w // f, f).sum(axis=(1, 3))
            gray = ((2 * blocks + f * f) // (2 * f * f)).astype(np.uint8)
            m = m / f
            m[:, 2] += 0.5 / f - 0.5
        return face.bilinear(gray, m, n, "replicate")


# --- v1 §2 / v2 §5: the schedule --------------------------------------------------------------

@dataclass
class Schedule:
    """The fit in force at every frame from the first face on, and the tries that made it."""

    first: int
    fits: list[Any]  # fits[t - first]: the fit in force at frame t (the method's answer)
    tries: int
    hits: int
    changes: list[tuple[int, Any]]  # (frame, fit) whenever a fit came into force


def schedule(frames: list[np.ndarray], fps: float, method: FaceMethod) -> Schedule:
    """Every frame tried until the first face, then every redetect_every frames; a hit replaces the
    fit in force only when the method says so; no_face below min_face_rate of all tries."""
    every = max(1, round_half_up(fps * REDETECT_SECONDS))
    tries = hits = 0
    current: Any = None
    first = -1
    fits: list[Any] = []
    changes: list[tuple[int, Any]] = []
    last = None  # the answer of the most recent try that found a face (v2 §5 looks there first)
    for t, gray in enumerate(frames):
        if current is None or (t - first) % every == 0:
            tries += 1
            found = method.find(gray, last)
            if found is not None:
                hits += 1
                last = found
                if current is None:
                    first = t
                if current is None or method.replaces(current, found):
                    current = found
                    changes.append((t, found))
        if current is not None:
            fits.append(current)
    if current is None or hits < MIN_FACE_RATE * tries:
        raise ExtractError("no_face", "no face was found in enough of the video")
    return Schedule(first, fits, tries, hits, changes)


# --- v1 §4: per pair --------------------------------------------------------------------------

def hann(n: int) -> np.ndarray:
    """hann_n(k) = 0.5 − 0.5·cos(2πk/(n − 1))."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / (n - 1))


def poc(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Phase-only correlation of b against a: (dx, dy, peak), v1 §4 steps 1–3."""
    h, w = a.shape
    window = np.outer(hann(h), hann(w))
    fa = np.fft.fft2((a - a.mean()) * window)
    fb = np.fft.fft2((b - b.mean()) * window)
    cross = fb * np.conj(fa)
    r = np.real(np.fft.ifft2(cross / (np.abs(cross) + POC_EPS)))
    iy, ix = np.unravel_index(int(np.argmax(r)), r.shape)
    peak = r[iy, ix]

    def refine(minus: float, plus: float) -> float:
        denom = minus - 2 * peak + plus
        return 0.0 if denom >= 0 else float(np.clip((minus - plus) / (2 * denom), -0.5, 0.5))

    dx = (ix - w if ix > w / 2 else ix) + refine(r[iy, (ix - 1) % w], r[iy, (ix + 1) % w])
    dy = (iy - h if iy > h / 2 else iy) + refine(r[(iy - 1) % h, ix], r[(iy + 1) % h, ix])
    return dx, dy, float(peak)


def region_slices(regions: dict[str, Rect], n: int) -> list[tuple[slice, slice]]:
    """Pixel rectangles (rows, columns) of the normalised regions: floor of the start, ceil of the end."""
    return [(slice(math.floor(y0 * n), math.ceil(y1 * n)), slice(math.floor(x0 * n), math.ceil(x1 * n))) for x0, y0, x1, y1 in regions.values()]


def pair_channels(prev: np.ndarray, cur: np.ndarray, slices: list[tuple[slice, slice]]) -> list[float]:
    """The 18 channels of one pair of 8-bit crops: per region abs then poc; global.head, global.poc."""
    flow = cv2.calcOpticalFlowFarneback(prev, cur, None, *FARNEBACK).astype(np.float64)
    a, b = prev.astype(np.float64), cur.astype(np.float64)
    gx, gy, pg = poc(a, b)
    residual = np.hypot(flow[..., 0] - gx, flow[..., 1] - gy)
    out: list[float] = []
    for rows, cols in slices:
        out += [float(residual[rows, cols].mean()), 1.0 - poc(a[rows, cols], b[rows, cols])[2]]
    return out + [math.hypot(gx, gy), 1.0 - pg]


# --- v1 §5: aggregation -----------------------------------------------------------------------

def statistics(x: np.ndarray) -> list[float]:
    """mean, population std, max, p95 (linear), spike = share of x > median + 3·MAD."""
    med = np.median(x)
    mad = np.median(np.abs(x - med))
    return [float(x.mean()), float(x.std()), float(x.max()), float(np.percentile(x, 95)), float((x > med + 3 * mad).mean())]


# --- the whole extractor ----------------------------------------------------------------------

def extract(clip: Path, version: int, method: FaceMethod) -> tuple[list[float], dict]:
    """The 90 values of a clip (channel-major, 18 channels × 5 statistics) and its schedule's metadata."""
    frames, fps = decode(clip)
    sched = schedule(frames, fps, method)
    if sched.first == len(frames) - 1:  # the specs leave this open; the core's reading
        raise ExtractError("video_too_short", "the face appears only in the last frame")
    slices = region_slices(REGIONS[version], ROI_SIZE)
    series = []
    for t in range(sched.first + 1, len(frames)):
        fit = sched.fits[t - sched.first]
        series.append(pair_channels(method.crop(frames[t - 1], fit), method.crop(frames[t], fit), slices))
    values = [v for channel in np.array(series).T for v in statistics(channel)]
    meta = {"frames": len(frames), "pairs": len(series), "fps": fps, "first": sched.first, "tries": sched.tries, "hits": sched.hits,
            "fits": [{"frame": t, "fit": np.asarray(getattr(f, "t", f), np.float64).round(4).tolist()} for t, f in sched.changes]}
    return values, meta


METHODS: dict[int, Callable[[], FaceMethod]] = {1: HaarBox, 2: AlignedLandmarks}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="poc_abs_v2_reference", description=__doc__.split("\n\n")[0])
    ap.add_argument("clips", nargs="+", type=Path, help="video files")
    ap.add_argument("--spec", default="poc-abs/2", choices=["poc-abs/1", "poc-abs/2"], help="the feature spec (default poc-abs/2)")
    ap.add_argument("--meta", action="store_true", help="add the face schedule of each clip (tries, hits, the fits in force)")
    args = ap.parse_args(argv)
    version = int(args.spec.rsplit("/", 1)[1])
    method = METHODS[version]()
    for clip in args.clips:
        row: dict = {"file": str(clip), "error": None, "values": None}
        try:
            values, meta = extract(clip, version, method)
            row["values"] = values
            if args.meta:
                row["meta"] = meta
        except ExtractError as e:
            row["error"] = e.code
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
