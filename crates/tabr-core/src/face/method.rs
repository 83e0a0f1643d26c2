//! The face-method seam: the pipeline asks a [`FaceMethod`] where the face is at a frame (its
//! [`Geometry`]), whether a new answer replaces the one in force, and for the canonical crop a
//! geometry implies. Spec v1's Haar box ([`HaarBox`]) is the first method; poc-abs v2's
//! landmark-aligned one ([`LandmarkAligned`]) plugs in as another `Geometry` (a similarity)
//! and another implementation, without touching the schedule or the pipeline.

use std::cell::RefCell;
use std::sync::Arc;

use opencv::core::{Mat, MatTraitConst, Size};
use opencv::imgproc;

use super::affine::{apply, invert, scale_angle, similarity, Affine};
use super::detector::DETECTOR_VIEWS;
use super::haar::{self, DetectScratch, FaceBox, FaceDetector};
use super::landmarks::{Landmarks, MeshRegion, Pose, FIT_POINTS};
use super::networks::FaceMesh;
use super::warp::{shrink, warp_exact, Outside};
use crate::error::{Error, Result};
use crate::spec::SpecParams;

/// Where the face is at a frame, as a face method places it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Geometry {
    /// Spec v1: an axis-aligned square box at full resolution.
    Box(FaceBox),
    /// Landmark-aligned (poc-abs v2): the similarity taking the canonical unit
    /// square (x right, y down, the crop's corners at 0 and 1) to frame pixels.
    Aligned {
        /// Unit square → frame pixels (pixel centres at whole numbers).
        to_frame: Affine,
        /// The square box covering the mapped unit square.
        bbox: FaceBox,
        /// Where the next try looks for the face first (v2 §3.5): the region the landmarks of
        /// this fit imply.
        track: MeshRegion,
        /// The head's pose on this try (recording quality only; the features never use it).
        pose: Pose,
        /// FaceMesh's face flag on this try, a logit (recording quality only).
        flag: f64,
    },
}

impl Geometry {
    /// The square box the geometry covers (what the extractor reports in `meta.boxes`).
    pub fn bounding_box(&self) -> FaceBox {
        match self {
            Geometry::Box(b) => *b,
            Geometry::Aligned { bbox, .. } => *bbox,
        }
    }
}

/// A way of finding the face and cutting its canonical crop.
pub trait FaceMethod: Send + Sync + std::fmt::Debug {
    /// Looks for the face in an 8-bit gray frame; `None` when there is none. `last` is the
    /// answer of the most recent try that found a face, if any (a method may look there first).
    fn detect(
        &self,
        gray: &Mat,
        params: &SpecParams,
        last: Option<&Geometry>,
    ) -> Result<Option<Geometry>>;
    /// Whether a new answer replaces the geometry in force (jitter is not motion).
    fn replaces(&self, old: &Geometry, new: &Geometry, params: &SpecParams) -> bool;
    /// The canonical `n`×`n` crop that `g` implies on `gray`: 8-bit (v1) or float (v2).
    fn crop(&self, gray: &Mat, g: &Geometry, n: usize) -> Result<Mat>;
}

/// Spec v1 §2–§3: the Haar cascade's largest face as a square box, replaced when IoU drops
/// below `iou_keep`, cropped and area-resized.
#[derive(Debug, Clone)]
pub struct HaarBox {
    detector: Arc<FaceDetector>,
}

impl HaarBox {
    /// The method over a loaded cascade.
    pub fn new(detector: Arc<FaceDetector>) -> HaarBox {
        HaarBox { detector }
    }
}

thread_local! {
    /// Detection buffers, reused by every try on this thread.
    static SCRATCH: RefCell<DetectScratch> = RefCell::new(DetectScratch::default());
}

impl FaceMethod for HaarBox {
    fn detect(
        &self,
        gray: &Mat,
        params: &SpecParams,
        _last: Option<&Geometry>,
    ) -> Result<Option<Geometry>> {
        // A classifier from the detector's pool: OpenCV's cascades are not shareable.
        let mut cc = self.detector.checkout()?;
        let found = SCRATCH.with(|s| haar::detect(&mut cc, gray, params, &mut s.borrow_mut()));
        self.detector.put_back(cc);
        found
            .map(|b| b.map(Geometry::Box))
            .map_err(|_| Error::internal("face detection failed"))
    }

    fn replaces(&self, old: &Geometry, new: &Geometry, params: &SpecParams) -> bool {
        old.bounding_box().iou(&new.bounding_box()) < params.iou_keep
    }

    fn crop(&self, gray: &Mat, g: &Geometry, n: usize) -> Result<Mat> {
        let fail = |_| Error::internal("cropping the face failed");
        let roi = Mat::roi(gray, g.bounding_box().rect()).map_err(fail)?;
        let mut out = Mat::default();
        let side = n as i32;
        imgproc::resize(
            &roi,
            &mut out,
            Size::new(side, side),
            0.0,
            0.0,
            imgproc::INTER_AREA,
        )
        .map_err(fail)?;
        Ok(out)
    }
}

/// Where [`FIT_POINTS`] go in the canonical unit square (v2 §4.2): the mean positions the
/// prototype measured on the face fixtures, made symmetric and shrunk by 0.85 about the
/// centre so the chin stays inside (the mean chin then sits at 0.92).
pub const TEMPLATE: [[f64; 2]; 7] = {
    const P: [[f64; 2]; 7] = [
        [0.24, 0.38],
        [0.40, 0.385],
        [0.60, 0.385],
        [0.76, 0.38],
        [0.50, 0.59],
        [0.34, 0.75],
        [0.66, 0.75],
    ];
    let mut out = [[0.0; 2]; 7];
    let mut i = 0;
    while i < 7 {
        out[i] = [0.5 + 0.85 * (P[i][0] - 0.5), 0.5 + 0.85 * (P[i][1] - 0.5)];
        i += 1;
    }
    out
};

/// A new fit replaces the one in force when it moves a template point by more than this, in
/// pixels of the canonical crop (v2 §4.4): landmark jitter below it never shows as motion.
pub const ALIGN_KEEP_PX: f64 = 1.0;

/// poc-abs v2's face method: the face found by
/// BlazeFace, placed by FaceMesh's landmarks, and cut as the canonical square the similarity
/// of [`FIT_POINTS`] onto [`TEMPLATE`] implies: turned and scaled, not only moved.
#[derive(Debug, Clone)]
pub struct LandmarkAligned {
    mesh: Arc<FaceMesh>,
}

/// One landmark-aligned fit: the geometry and the FaceMesh landmarks it was fitted to.
#[derive(Debug, Clone)]
pub struct AlignedFit {
    /// The geometry the extractor uses.
    pub geometry: Geometry,
    /// The 468 landmarks, frame pixels.
    pub points: Vec<[f64; 2]>,
}

impl AlignedFit {
    /// The landmarks mapped into the canonical unit square (x right, y down): what a picture
    /// of the placement draws (computed on request; the extractor never needs them).
    pub fn canonical(&self) -> Vec<[f64; 2]> {
        let Geometry::Aligned { to_frame, .. } = &self.geometry else {
            return Vec::new();
        };
        let to_unit = invert(to_frame);
        self.points.iter().map(|&p| apply(&to_unit, p)).collect()
    }
}

impl LandmarkAligned {
    /// The method over loaded face models.
    pub fn new(mesh: Arc<FaceMesh>) -> LandmarkAligned {
        LandmarkAligned { mesh }
    }

    /// Finds, places and aligns the face of one gray frame, or `None` without a face: with the
    /// detector (v2 §2–§4), as the first try of a clip does.
    pub fn fit(&self, gray: &Mat) -> Result<Option<AlignedFit>> {
        self.fit_after(gray, None)
    }

    /// v2 §5's try: the landmarks FaceMesh gives alone in the region `last` (the most recent
    /// hit) implies, kept when its face flag is above 0; otherwise, or without `last`, those of
    /// the detector's face (§2–§3.5: FaceMesh in the detection's region, then again in the
    /// region those landmarks imply); `None` when neither finds one.
    pub fn landmarks_after(
        &self,
        gray: &Mat,
        last: Option<&Geometry>,
    ) -> Result<Option<Landmarks>> {
        if let Some(Geometry::Aligned { track, .. }) = last {
            let found = self.mesh.landmarks_in(gray, track)?;
            if found.flag > 0.0 {
                return Ok(Some(found));
            }
        }
        // v2 §5's detection try: the detector's views of the frame in turn (§2.1).
        for view in DETECTOR_VIEWS {
            if let Some(points) = self.detected_in(gray, view)? {
                return Ok(Some(points));
            }
        }
        Ok(None)
    }

    /// One view of a detection try (v2 §2, §3, §5): the detector's face in the frame
    /// letterboxed into `view` times its longer side, placed by FaceMesh; `None` when the
    /// detector finds none or FaceMesh's face flag on the placed landmarks is not above 0 (a
    /// detector's guess on a blurred speck gives landmarks of noise, whose flag says so).
    pub fn detected_in(&self, gray: &Mat, view: f64) -> Result<Option<Landmarks>> {
        let Some(d) = self.mesh.detect_in(gray, view)? else {
            return Ok(None);
        };
        // A detection's region is drawn differently from a tracked one: FaceMesh looks once
        // more where its landmarks point, so every fit comes from the same kind of region and
        // the switch to tracking is not a replacement.
        let first = self.mesh.landmarks(gray, &d)?;
        let again = self
            .mesh
            .landmarks_in(gray, &MeshRegion::from_landmarks(&first))?;
        Ok((again.flag > 0.0).then_some(again))
    }

    /// v2 §5's try, aligned: [`LandmarkAligned::landmarks_after`] and the fit they imply.
    pub fn fit_after(&self, gray: &Mat, last: Option<&Geometry>) -> Result<Option<AlignedFit>> {
        Ok(self.landmarks_after(gray, last)?.map(Self::align))
    }

    /// The fit (v2 §4.1–4.3) that FaceMesh's 468 landmarks, in frame pixels, imply.
    pub fn align(found: Landmarks) -> AlignedFit {
        let Landmarks {
            points: pts,
            flag,
            pose,
        } = found;
        let src = FIT_POINTS.map(|i| pts[i]);
        let to_frame = similarity(&TEMPLATE, &src);
        let corners = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]].map(|p| apply(&to_frame, p));
        let (x0, x1) = corners
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p[0]), b.max(p[0])));
        let (y0, y1) = corners
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p[1]), b.max(p[1])));
        let side = (x1 - x0).max(y1 - y0);
        let bbox = FaceBox {
            x: ((x0 + x1 - side) / 2.0).round() as i32,
            y: ((y0 + y1 - side) / 2.0).round() as i32,
            side: side.round().max(1.0) as i32,
        };
        AlignedFit {
            geometry: Geometry::Aligned {
                to_frame,
                bbox,
                track: MeshRegion::from_landmarks(&pts),
                pose,
                flag,
            },
            points: pts,
        }
    }
}

impl FaceMethod for LandmarkAligned {
    fn detect(
        &self,
        gray: &Mat,
        _params: &SpecParams,
        last: Option<&Geometry>,
    ) -> Result<Option<Geometry>> {
        Ok(self.fit_after(gray, last)?.map(|f| f.geometry))
    }

    fn replaces(&self, old: &Geometry, new: &Geometry, params: &SpecParams) -> bool {
        let (Geometry::Aligned { to_frame: a, .. }, Geometry::Aligned { to_frame: b, .. }) =
            (old, new)
        else {
            return true;
        };
        // Frame pixels per canonical crop pixel, under the fit in force.
        let k = scale_angle(a).0 / params.roi_size as f64;
        TEMPLATE.iter().any(|&p| {
            let (u, v) = (apply(a, p), apply(b, p));
            (u[0] - v[0]).hypot(u[1] - v[1]) / k > ALIGN_KEEP_PX
        })
    }

    fn crop(&self, gray: &Mat, g: &Geometry, n: usize) -> Result<Mat> {
        let Geometry::Aligned { to_frame: t, .. } = g else {
            return Err(Error::internal(
                "a landmark-aligned crop needs an aligned geometry",
            ));
        };
        let nf = n as f64;
        // Crop pixel (u, v) ↦ the unit square at ((u + 0.5)/n, (v + 0.5)/n) ↦ frame pixels.
        let mut m = [t[0] / nf, t[1] / nf, 0.0, t[3] / nf, t[4] / nf, 0.0];
        m[2] = t[2] + 0.5 * (t[0] + t[1]) / nf;
        m[5] = t[5] + 0.5 * (t[3] + t[4]) / nf;
        // A face much larger than the crop is first shrunk by a whole factor, each pixel the
        // mean of an f × f block, so the bilinear warp never skips pixels (no aliasing).
        // (Never below one shrunk pixel, whatever a fit far outside the frame implies.)
        let short = f64::from(gray.cols().min(gray.rows()).max(1));
        let f = (scale_angle(t).0 / nf).floor().clamp(1.0, short);
        let small;
        let (src, m) = if f >= 2.0 {
            small = shrink(gray, f as usize)?;
            // A frame pixel x lies at (x + 0.5)/f − 0.5 in the shrunk frame.
            let s = |v: f64| v / f;
            (
                &small,
                [
                    s(m[0]),
                    s(m[1]),
                    (m[2] + 0.5) / f - 0.5,
                    s(m[3]),
                    s(m[4]),
                    (m[5] + 0.5) / f - 0.5,
                ],
            )
        } else {
            (gray, m)
        };
        warp_exact(src, &m, n, Outside::Replicate)
    }
}
