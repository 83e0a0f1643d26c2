//! Where the face is, and its canonical crop: both specs' face stages and the seam between them
//! and the pipeline.
//!
//! - [`method`]: the [`FaceMethod`] seam the pipeline asks (where the face is at a frame, its
//!   [`Geometry`]; whether a new answer replaces the one in force; the crop a geometry implies)
//!   and its two implementations, [`HaarBox`] (poc-abs v1) and [`LandmarkAligned`] (v2). A spec
//!   names one by its [`crate::spec::FaceKind`].
//! - [`haar`]: v1's Haar detection on a shrunk, equalised frame and its box rule (v1 §2).
//! - v2 (`docs/spec/poc-abs-v2.md` §1–§4; `scripts/poc_abs_v2_reference.py` is its independent
//!   route), by job: [`detector`] (MediaPipe's full-range BlazeFace on the gray frame, in up to
//!   three views so a face filling it is found too; anchors decoded, weighted suppression),
//!   [`landmarks`] (FaceMesh's 468 points in the region a detection implies, turned so the eyes
//!   are level, and its face flag), [`affine`] (the least-squares similarity of seven stable
//!   landmarks onto a canonical template: the face's pose, not only a box), [`warp`] (every
//!   sample the networks see and the canonical crop, bilinear in double precision and never
//!   rounded, so the arithmetic is the spec's own), [`networks`] (the two ONNX models, loaded
//!   once per process).

pub mod affine;
pub mod detector;
pub mod haar;
pub mod landmarks;
pub mod method;
pub mod networks;
pub mod warp;

pub use affine::{apply, invert, scale_angle, similarity, Affine};
pub use detector::{Detection, DETECTOR_VIEWS, DETECT_SIZE, MIN_SCORE, SUPPRESSION_IOU};
pub use haar::{
    box_from_detection, detect, pick_largest, DetectScratch, FaceBox, FaceDetector,
    DEFAULT_CASCADE_XML,
};
pub use landmarks::{Landmarks, MeshRegion, Pose, FIT_POINTS, MESH_SIZE, N_LANDMARKS, ROI_SCALE};
pub use method::{
    AlignedFit, FaceMethod, Geometry, HaarBox, LandmarkAligned, ALIGN_KEEP_PX, TEMPLATE,
};
pub use networks::FaceMesh;
pub use warp::{shrink, warp_exact, Outside};
