//! The face-method seam: the pipeline asks a [`FaceMethod`] where the face is at a frame (its
//! [`Geometry`]), whether a new answer replaces the one in force, and for the canonical crop a
//! geometry implies. Spec v1's Haar box ([`HaarBox`]) is the first method; a landmark-aligned
//! one (a similarity transform) plugs in as another `Geometry` and another implementation,
//! without touching the schedule or the pipeline.

use std::cell::RefCell;
use std::sync::Arc;

use opencv::core::{Mat, Size};
use opencv::imgproc;

use crate::error::{Error, Result};
use crate::face::{self, DetectScratch, FaceBox, FaceDetector};
use crate::spec::SpecParams;

/// Where the face is at a frame, as a face method places it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Geometry {
    /// Spec v1: an axis-aligned square box at full resolution.
    Box(FaceBox),
}

impl Geometry {
    /// The square box the geometry covers (what the extractor reports in `meta.boxes`).
    pub fn bounding_box(&self) -> FaceBox {
        match self {
            Geometry::Box(b) => *b,
        }
    }
}

/// A way of finding the face and cutting its canonical crop.
pub trait FaceMethod: Send + Sync + std::fmt::Debug {
    /// Looks for the face in an 8-bit gray frame; `None` when there is none.
    fn detect(&self, gray: &Mat, params: &SpecParams) -> Result<Option<Geometry>>;
    /// Whether a new answer replaces the geometry in force (jitter is not motion).
    fn replaces(&self, old: &Geometry, new: &Geometry, params: &SpecParams) -> bool;
    /// The canonical `n`×`n` 8-bit crop that `g` implies on `gray`.
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
    fn detect(&self, gray: &Mat, params: &SpecParams) -> Result<Option<Geometry>> {
        // A classifier from the detector's pool: OpenCV's cascades are not shareable.
        let mut cc = self.detector.checkout()?;
        let found = SCRATCH.with(|s| face::detect(&mut cc, gray, params, &mut s.borrow_mut()));
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
