//! poc-abs v2's landmarks (spec §3): FaceMesh's 468 points and face flag in the square region
//! a detection or the previous landmarks imply, sampled without rounding, in frame pixels.

use opencv::core::{Mat, MatTraitConstManual};

use super::affine::apply;
use super::detector::Detection;
use super::networks::FaceMesh;
use super::warp::{warp_exact, Outside};
use crate::error::{Error, Result};

/// FaceMesh's square input side.
pub const MESH_SIZE: usize = 192;
/// The FaceMesh region's side, in units of the detection box's longer side.
pub const ROI_SCALE: f64 = 1.5;
/// Landmarks.
pub const N_LANDMARKS: usize = 468;
/// The FaceMesh landmarks the similarity is fitted to: the eyes' outer and inner corners
/// (33, 133 on the subject's right; 362, 263 on the left), the nose tip (1) and the mouth
/// corners (61, 291).
pub const FIT_POINTS: [usize; 7] = [33, 133, 362, 263, 1, 61, 291];

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

/// What FaceMesh says of a region: the 468 landmarks in frame pixels, its face flag (a
/// logit: above 0, a face fills the region) and the head's pose.
#[derive(Debug, Clone)]
pub struct Landmarks {
    /// The 468 points, frame pixels.
    pub points: Vec<[f64; 2]>,
    /// The face flag's logit.
    pub flag: f64,
    /// The head's rotation, from the landmarks' depth.
    pub pose: Pose,
}

/// A head's rotation in degrees, read off FaceMesh's 3-D landmarks (its `z` is depth on the
/// scale of `x`): `yaw` turns the face left or right (the cheek edges' depth difference),
/// `pitch` up or down (forehead against chin), `roll` tilts it in the image (the eye line).
/// 0 is a face looking straight at the camera; the sign says the direction. A recording
/// quality measure, not a calibrated head-pose estimate: a few degrees either way.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pose {
    /// Left–right turn, degrees.
    pub yaw: f64,
    /// Up–down nod, degrees.
    pub pitch: f64,
    /// Tilt in the image, degrees.
    pub roll: f64,
}

/// FaceMesh's cheek edges (image left, image right), forehead top, chin, and the eyes' outer
/// corners (image left, image right).
const POSE_POINTS: [usize; 6] = [234, 454, 10, 152, 33, 263];

/// What FaceMesh's forehead–chin depth reads on a face looking straight at the camera: 10°,
/// 11.5° and 16.5° (middles of their ranges) on the three frontal LivePortrait fixtures
/// (d0, d18, d19). Taken off, so that 0 is frontal.
const FRONTAL_PITCH_DEG: f64 = 12.0;

impl Pose {
    /// The pose of landmarks in FaceMesh's crop (`x`, `y`, `z` per point, crop pixels) whose
    /// crop is turned `angle` radians in the frame.
    fn of_mesh(p: &[f32], angle: f64) -> Pose {
        let at = |i: usize| {
            [
                f64::from(p[3 * i]),
                f64::from(p[3 * i + 1]),
                f64::from(p[3 * i + 2]),
            ]
        };
        let [l, r, top, chin, eye_l, eye_r] = POSE_POINTS.map(at);
        let deg = f64::to_degrees;
        Pose {
            yaw: deg((r[2] - l[2]).atan2(r[0] - l[0])),
            pitch: deg((chin[2] - top[2]).atan2(chin[1] - top[1])) - FRONTAL_PITCH_DEG,
            roll: deg((eye_r[1] - eye_l[1]).atan2(eye_r[0] - eye_l[0]) + angle),
        }
    }
}

impl FaceMesh {
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
            pose: Pose::of_mesh(pts, r.angle),
        })
    }
}
