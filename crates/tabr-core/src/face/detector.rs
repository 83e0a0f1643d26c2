//! poc-abs v2's face detector (spec §2): MediaPipe's full-range BlazeFace on the frame
//! letterboxed into a square, in up to three views ([`DETECTOR_VIEWS`]); its anchors decoded and
//! the best candidate's cluster averaged by score (weighted suppression), back in frame pixels.

use opencv::core::{Mat, MatTraitConst};

use super::networks::FaceMesh;
use super::warp::sample;
use crate::error::{Error, Result};

/// The detector's square input side.
pub const DETECT_SIZE: usize = 192;
/// Detections scoring lower are ignored.
pub const MIN_SCORE: f64 = 0.5;
/// Candidates overlapping the best one at least this much (IoU) are averaged into it.
pub const SUPPRESSION_IOU: f64 = 0.3;
/// The detector's views of a frame, in the order a detection try takes them (v2 §2.1): the
/// frame letterboxed into a square of this many times its longer side, centred on black.
/// Full-range BlazeFace is trained on faces away from the camera and misses one that fills
/// the frame (a phone's selfie recording): measured on close-ups cut from the five face
/// fixtures at 1.0×, 1.3× and 1.6× (cut at chin and forehead), the first view finds 65 of
/// 234, the first two 228, all three 234 (`tests/v2.rs`, `close_ups_…`).
pub const DETECTOR_VIEWS: [f64; 3] = [1.0, 2.0, 3.0];

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

impl FaceMesh {
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
}
