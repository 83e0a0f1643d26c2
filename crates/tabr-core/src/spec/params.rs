//! The spec's tunable parameters ([`SpecParams`], a manifest's `params` object) and the
//! service's [`Limits`] over them. Every field defaults to the v1 value; [`SpecParams::validate`]
//! refuses absurd values at model load, so the extraction never sees them.

use serde::{Deserialize, Serialize};

use super::round_half_up;
use crate::error::{Error, ErrorCode, Result};

/// Server-wide limits over every model's [`SpecParams`] (`MAX_VIDEO_SECONDS`,
/// `MAX_FRAME_PIXELS`, `MAX_DECODED_MEGAPIXELS`, `MAX_FRAME_RATE` in the service). `None` leaves the model's value.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// Cap on `max_seconds`.
    pub max_seconds: Option<f64>,
    /// Cap on `max_pixels`.
    pub max_pixels: Option<u64>,
    /// Cap on `max_decoded_pixels`.
    pub max_decoded_pixels: Option<u64>,
    /// Cap on `max_frame_rate`.
    pub max_frame_rate: Option<f64>,
}

/// The largest `max_pixels` any model or caller may set: 4096 × 4096 (every 4K format fits), so
/// that the largest allocation of an honest decode, a BGR24 frame, stays under the process's
/// cap on any one allocation by FFmpeg ([`crate::video::input::MAX_ALLOC`]).
pub const MAX_PIXELS: u64 = 4096 * 4096;

/// Default of [`SpecParams::max_decoded_pixels`]: 1920×1080 frames at 60 fps for 10.5 s,
/// so every video within the other limits at up to 60 fps passes.
pub const DEFAULT_MAX_DECODED_PIXELS: u64 = 1920 * 1080 * 60 * 21 / 2;

/// The spec's tunable parameters. Defaults are the v1 values; models may override them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpecParams {
    /// Side of the canonical face crop in pixels.
    pub roi_size: usize,
    /// Width the frame is shrunk to for face detection.
    pub detect_width: usize,
    /// Longest accepted video, in seconds of decoded frames.
    pub max_seconds: f64,
    /// Largest accepted frame, in pixels (width × height).
    pub max_pixels: u64,
    /// Most pixels decoded for one video (frames × pixels per frame): a bound on the work a
    /// small upload can ask for (a high frame rate of large frames). Not a feature parameter:
    /// it never changes a value, only refuses with `video_too_large`.
    pub max_decoded_pixels: u64,
    /// Frames per second of `max_seconds` one video may hold (frames beyond
    /// `ceil(max_frame_rate × max_seconds)` are refused with `video_too_large`): most of the
    /// work is per frame (flow and POC on fixed-size crops), so small frames at a high rate
    /// are bounded by this, not by `max_decoded_pixels`. Not a feature parameter.
    pub max_frame_rate: f64,
    /// Minimum fraction of detection tries that must find a face.
    pub min_face_rate: f64,
    /// A new detection replaces the box only when IoU(old, new) is below this.
    pub iou_keep: f64,
    /// Re-detection period in seconds (`redetect_every = max(1, round(fps × this))`).
    pub redetect_seconds: f64,
}

impl Default for SpecParams {
    fn default() -> Self {
        Self {
            roi_size: 128,
            detect_width: 320,
            max_seconds: 10.5,
            max_pixels: 1920 * 1080,
            max_decoded_pixels: DEFAULT_MAX_DECODED_PIXELS,
            max_frame_rate: 120.0,
            min_face_rate: 0.3,
            iou_keep: 0.85,
            redetect_seconds: 0.5,
        }
    }
}

impl SpecParams {
    /// Checks ranges; a model with absurd parameters is refused at load.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str| {
            Err(Error::new(
                ErrorCode::ModelError,
                format!("feature spec parameter {what}"),
            ))
        };
        if !(16..=1024).contains(&self.roi_size) {
            return bad("roi_size must be within 16..=1024");
        }
        if !(32..=4096).contains(&self.detect_width) {
            return bad("detect_width must be within 32..=4096");
        }
        if !(self.max_seconds.is_finite() && self.max_seconds > 0.0 && self.max_seconds <= 600.0) {
            return bad("max_seconds must be within (0, 600]");
        }
        if self.max_pixels == 0 || self.max_pixels > MAX_PIXELS {
            return bad("max_pixels must be within 1..=4096*4096");
        }
        if self.max_decoded_pixels == 0 {
            return bad("max_decoded_pixels must be at least 1");
        }
        if !(self.max_frame_rate.is_finite()
            && self.max_frame_rate >= 1.0
            && self.max_frame_rate <= 10_000.0)
        {
            return bad("max_frame_rate must be within [1, 10000]");
        }
        if !(0.0..=1.0).contains(&self.min_face_rate) {
            return bad("min_face_rate must be within [0, 1]");
        }
        if !(0.0..=1.0).contains(&self.iou_keep) {
            return bad("iou_keep must be within [0, 1]");
        }
        if !(self.redetect_seconds.is_finite() && self.redetect_seconds >= 0.0) {
            return bad("redetect_seconds must be finite and non-negative");
        }
        Ok(())
    }

    /// These parameters with the service's limits applied: each limit given caps the
    /// model's own value (a server-wide bound over every manifest).
    pub fn capped(&self, limits: &Limits) -> SpecParams {
        let mut p = self.clone();
        if let Some(s) = limits.max_seconds {
            p.max_seconds = p.max_seconds.min(s);
        }
        if let Some(px) = limits.max_pixels {
            p.max_pixels = p.max_pixels.min(px);
        }
        if let Some(px) = limits.max_decoded_pixels {
            p.max_decoded_pixels = p.max_decoded_pixels.min(px);
        }
        if let Some(r) = limits.max_frame_rate {
            p.max_frame_rate = p.max_frame_rate.min(r);
        }
        p
    }

    /// The frame budget for a given fps: `ceil(fps × max_seconds)`.
    pub fn max_frames(&self, fps: f64) -> u64 {
        (fps * self.max_seconds).ceil() as u64
    }

    /// The frame budget of the work limit: `ceil(max_frame_rate × max_seconds)` (saturating).
    pub fn max_work_frames(&self) -> u64 {
        (self.max_frame_rate * self.max_seconds).ceil() as u64
    }

    /// Frames between detection tries once a face is found.
    pub fn redetect_every(&self, fps: f64) -> u64 {
        (round_half_up(fps * self.redetect_seconds) as u64).max(1)
    }
}
