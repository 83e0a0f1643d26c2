//! Decoding with OpenCV's FFmpeg backend, with the spec's limits (spec §1).
//!
//! [`Decoder`] opens a file, refuses what the header already shows to be too large or far too
//! long (milliseconds, before any frame is decoded), then yields gray frames in presentation
//! order with the container's rotation applied, enforcing the same limits on decoded frames.

use std::path::Path;

use opencv::core::{Mat, MatTraitConst};
use opencv::imgproc;
use opencv::videoio::{self, VideoCapture, VideoCaptureTrait, VideoCaptureTraitConst};

use crate::error::{Error, ErrorCode, Result};
use crate::spec::SpecParams;

/// The spec counts decoded frames, and headers can overstate them (a truncated file keeps
/// its full-length index). A header over the budget is therefore confirmed by seeking this
/// fraction past the budget and decoding one frame there: only a frame that really exists
/// refuses the video early. Otherwise decoding counts, and stops at the budget.
const PROBE_MARGIN: f64 = 0.1;

/// fps used when the container reports none (spec §1).
pub const DEFAULT_FPS: f64 = 30.0;

/// An open video with its limits.
pub struct Decoder {
    cap: VideoCapture,
    fps: f64,
    max_frames: u64,
    max_pixels: u64,
    max_seconds: f64,
    frames: u64,
    bgr: Mat,
}

impl Decoder {
    /// Opens `path` and applies the header checks.
    pub fn open(path: &Path, params: &SpecParams) -> Result<Decoder> {
        let unreadable = || Error::invalid_video("the upload is not a readable video");
        quiet_opencv();
        let mut cap = open_capture(path).ok_or_else(unreadable)?;
        let fps = cap.get(videoio::CAP_PROP_FPS).unwrap_or(0.0);
        let fps = if fps.is_finite() && fps > 0.0 {
            fps
        } else {
            DEFAULT_FPS
        };
        let max_frames = params.max_frames(fps);
        let w = cap.get(videoio::CAP_PROP_FRAME_WIDTH).unwrap_or(0.0);
        let h = cap.get(videoio::CAP_PROP_FRAME_HEIGHT).unwrap_or(0.0);
        if w > 0.0 && h > 0.0 && w * h > params.max_pixels as f64 {
            return Err(frame_too_large(w as u64, h as u64, params.max_pixels));
        }
        let n = cap.get(videoio::CAP_PROP_FRAME_COUNT).unwrap_or(0.0);
        let probe_at = (max_frames as f64 * (1.0 + PROBE_MARGIN)).ceil();
        if n.is_finite() && n > probe_at {
            let mut frame = Mat::default();
            let exists = cap
                .set(videoio::CAP_PROP_POS_FRAMES, probe_at)
                .unwrap_or(false)
                && cap.read(&mut frame).unwrap_or(false)
                && !frame.empty();
            if exists {
                return Err(too_long(params.max_seconds));
            }
            // The header overstates the stream: start again from the first frame.
            cap = open_capture(path).ok_or_else(unreadable)?;
        }
        Ok(Decoder {
            cap,
            fps,
            max_frames,
            max_pixels: params.max_pixels,
            max_seconds: params.max_seconds,
            frames: 0,
            bgr: Mat::default(),
        })
    }

    /// Frames per second (the container's, or 30 when it reports none).
    pub fn fps(&self) -> f64 {
        self.fps
    }

    /// Frames decoded so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Decodes the next frame into `gray` (8-bit). `Ok(false)` at the end of the stream.
    ///
    /// A decode error after at least one good frame ends the stream (what a player shows);
    /// before any frame it is `invalid_video`.
    pub fn next_gray(&mut self, gray: &mut Mat) -> Result<bool> {
        let ok = match self.cap.read(&mut self.bgr) {
            Ok(ok) => ok && !self.bgr.empty(),
            Err(_) if self.frames > 0 => false,
            Err(_) => return Err(Error::invalid_video("the video stream cannot be decoded")),
        };
        if !ok {
            return Ok(false);
        }
        self.frames += 1;
        if self.frames > self.max_frames {
            return Err(too_long(self.max_seconds));
        }
        let (w, h) = (self.bgr.cols() as u64, self.bgr.rows() as u64);
        if w * h > self.max_pixels {
            return Err(frame_too_large(w, h, self.max_pixels));
        }
        let converted = match self.bgr.channels() {
            1 => self.bgr.copy_to(gray),
            4 => imgproc::cvt_color_def(&self.bgr, gray, imgproc::COLOR_BGRA2GRAY),
            _ => imgproc::cvt_color_def(&self.bgr, gray, imgproc::COLOR_BGR2GRAY),
        };
        converted
            .map_err(|_| Error::invalid_video("a video frame has an unsupported pixel format"))?;
        Ok(true)
    }
}

/// Opens `path` with the FFmpeg backend, rotation applied (spec §1; OpenCV 4.6 takes the
/// orientation setting only after opening). `None` when it cannot be opened.
fn open_capture(path: &Path) -> Option<VideoCapture> {
    let mut cap = VideoCapture::from_file(path.as_os_str(), videoio::CAP_FFMPEG).ok()?;
    if !cap.is_opened().unwrap_or(false) {
        return None;
    }
    let _ = cap.set(videoio::CAP_PROP_ORIENTATION_AUTO, 1.0);
    Some(cap)
}

/// OpenCV writes decoder complaints to stderr; callers get stable codes instead, so its log
/// is silenced unless `OPENCV_LOG_LEVEL` asks for it.
fn quiet_opencv() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("OPENCV_LOG_LEVEL").is_none() {
            let _ = opencv::core::set_log_level(opencv::core::LogLevel::LOG_LEVEL_SILENT);
        }
    });
}

fn too_long(max_seconds: f64) -> Error {
    Error::new(
        ErrorCode::VideoTooLong,
        format!("the video is longer than the limit of {max_seconds:.1} s"),
    )
}

fn frame_too_large(w: u64, h: u64, max_pixels: u64) -> Error {
    Error::new(
        ErrorCode::FrameTooLarge,
        format!("frames of {w}×{h} pixels exceed the limit of {max_pixels} pixels"),
    )
}
