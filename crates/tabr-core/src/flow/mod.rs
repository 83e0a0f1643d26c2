//! Dense optical flow between two face crops (spec §4): the [`Flow`] seam and its two
//! implementations, our [`Farneback`] (the default) and OpenCV's call ([`OpenCvFarneback`],
//! the reference, kept selectable so conformance can compare both and users can fall back).
//!
//! A crop travels as a [`FlowFrame`]: the crop and whatever a method computes of it once and
//! keeps for the crop's second pair (our Farnebäck keeps the pyramid of polynomial
//! expansions, so each frame is expanded once, not twice).

/// Runs `$fast`, an AVX2 build (`#[target_feature(enable = "avx2")]`) of the safe `$slow`,
/// where the CPU has AVX2; `$slow` elsewhere.
macro_rules! with_avx2 {
    ($fast:expr, $slow:expr) => {{
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is present; the callee is plain safe Rust compiled for it.
            #[allow(unsafe_code)]
            unsafe {
                $fast
            }
        } else {
            $slow
        }
        #[cfg(not(target_arch = "x86_64"))]
        $slow
    }};
}

#[cfg(target_arch = "x86_64")]
mod avx2;
mod farneback;
mod filters;
mod poly;
mod system;

use std::any::Any;
use std::sync::OnceLock;

use opencv::core::{Mat, MatTraitConst, MatTraitConstManual, Vec2f};
use opencv::video;

pub use farneback::{Farneback, Pyramid};

use crate::error::{Error, Result};
use crate::spec::{FarnebackParams, FARNEBACK};

/// Dense flow from one 8-bit crop to the next, `(u, v)` per pixel in row order: the seam
/// where another implementation of spec §4's flow plugs in without touching the pipeline.
pub trait Flow: Send + Sync + std::fmt::Debug {
    /// Computes the flow from `a` to `b` (crops of the same size) into `out` (one entry per
    /// pixel).
    fn compute(&self, a: &FlowFrame, b: &FlowFrame, out: &mut [[f32; 2]]) -> Result<()>;
}

/// Which flow implementation an extractor uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FlowMethod {
    /// Our Farnebäck ([`Farneback`]): OpenCV's numbers, several times faster on a sequence.
    #[default]
    Rust,
    /// OpenCV's `calcOpticalFlowFarneback`: the reference.
    OpenCv,
}

impl FlowMethod {
    /// Every name [`FlowMethod::parse`] accepts.
    pub const NAMES: [&'static str; 2] = ["rust", "opencv"];

    /// `rust` or `opencv`.
    pub fn parse(name: &str) -> Result<FlowMethod> {
        match name {
            "rust" => Ok(FlowMethod::Rust),
            "opencv" => Ok(FlowMethod::OpenCv),
            _ => Err(Error::new(
                crate::ErrorCode::ModelError,
                format!("flow must be one of {:?}", FlowMethod::NAMES),
            )),
        }
    }

    /// A caller's option: a name, or the default when none is given.
    pub fn from_option(name: Option<&str>) -> Result<FlowMethod> {
        name.map_or(Ok(FlowMethod::default()), FlowMethod::parse)
    }

    /// The method's name (as [`FlowMethod::parse`] reads it).
    pub fn name(self) -> &'static str {
        match self {
            FlowMethod::Rust => "rust",
            FlowMethod::OpenCv => "opencv",
        }
    }

    /// The implementation, with the spec's parameters.
    pub fn build(self) -> std::sync::Arc<dyn Flow> {
        match self {
            FlowMethod::Rust => std::sync::Arc::new(
                Farneback::new(FARNEBACK).expect("the spec's Farnebäck parameters are supported"),
            ),
            FlowMethod::OpenCv => std::sync::Arc::new(OpenCvFarneback),
        }
    }
}

/// A crop on its way through the flow, with its pixels as floats (v1's crops are 8-bit, v2's
/// float) and what a flow method keeps of it between pairs.
pub struct FlowFrame {
    crop: Mat,
    px: Vec<f32>,
    kept: OnceLock<Option<Box<dyn Any + Send + Sync>>>,
}

impl std::fmt::Debug for FlowFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowFrame").finish_non_exhaustive()
    }
}

impl FlowFrame {
    /// A square crop: one channel, 8-bit or 32-bit float, continuous.
    pub fn new(crop: Mat) -> Result<FlowFrame> {
        let bad = |_| Error::internal("a crop is not a continuous one-channel image");
        let px = match crop.typ() {
            opencv::core::CV_8UC1 => crop
                .data_bytes()
                .map_err(bad)?
                .iter()
                .map(|&v| f32::from(v))
                .collect(),
            opencv::core::CV_32FC1 => crop.data_typed::<f32>().map_err(bad)?.to_vec(),
            _ => return Err(Error::internal("a crop is neither 8-bit nor float gray")),
        };
        Ok(FlowFrame {
            crop,
            px,
            kept: OnceLock::new(),
        })
    }

    /// The crop.
    pub fn crop(&self) -> &Mat {
        &self.crop
    }

    /// The crop's pixels, row after row.
    pub fn pixels(&self) -> &[f32] {
        &self.px
    }

    /// What `make` computes of this crop, computed once (the crop's other pair gets the same
    /// value; a pair running at the same time waits for it).
    pub fn keep<T: Any + Send + Sync>(
        &self,
        make: impl FnOnce(&FlowFrame) -> Result<T>,
    ) -> Result<&T> {
        let mut failed = None;
        let kept = self.kept.get_or_init(|| match make(self) {
            Ok(v) => Some(Box::new(v) as Box<dyn Any + Send + Sync>),
            Err(e) => {
                failed = Some(e);
                None
            }
        });
        match kept.as_ref().and_then(|b| b.downcast_ref::<T>()) {
            Some(v) => Ok(v),
            None => Err(failed.unwrap_or_else(|| Error::internal("a crop's flow data is missing"))),
        }
    }
}

/// OpenCV's `calcOpticalFlowFarneback` with the spec's [`FARNEBACK`] arguments: the reference.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenCvFarneback;

thread_local! {
    static CV_FLOW: std::cell::RefCell<Mat> = std::cell::RefCell::new(Mat::default());
}

/// OpenCV's `calcOpticalFlowFarneback` of two 8-bit (or float) images with the given parameters, into a
/// `CV_32FC2` `out`.
pub fn opencv_farneback(a: &Mat, b: &Mat, p: &FarnebackParams, out: &mut Mat) -> Result<()> {
    video::calc_optical_flow_farneback(
        a,
        b,
        out,
        p.pyr_scale,
        p.levels,
        p.winsize,
        p.iterations,
        p.poly_n,
        p.poly_sigma,
        p.flags,
    )
    .map_err(|_| Error::internal("optical flow failed"))
}

impl Flow for OpenCvFarneback {
    fn compute(&self, a: &FlowFrame, b: &FlowFrame, out: &mut [[f32; 2]]) -> Result<()> {
        let fail = |_| Error::internal("optical flow failed");
        CV_FLOW.with(|m| {
            let m = &mut *m.borrow_mut();
            opencv_farneback(a.crop(), b.crop(), &FARNEBACK, m)?;
            let uv: &[Vec2f] = m.data_typed::<Vec2f>().map_err(fail)?;
            if uv.len() != out.len() {
                return Err(Error::internal("flow output of the wrong size"));
            }
            for (o, v) in out.iter_mut().zip(uv) {
                *o = [v[0], v[1]];
            }
            Ok(())
        })
    }
}

impl Flow for Farneback {
    fn compute(&self, a: &FlowFrame, b: &FlowFrame, out: &mut [[f32; 2]]) -> Result<()> {
        let pyramid = |f: &FlowFrame| -> Result<Kept> {
            let (w, h) = (f.crop.cols() as usize, f.crop.rows() as usize);
            let mut p = self.spare().take();
            self.pyramid_into(f.pixels(), w, h, &mut p);
            Ok(Kept {
                pyramid: p,
                spare: self.spare().clone(),
            })
        };
        let (pa, pb) = (a.keep(pyramid)?, b.keep(pyramid)?);
        self.flow(&pa.pyramid, &pb.pyramid, out)
    }
}

/// A frame's pyramid, kept by its [`FlowFrame`]; when the frame is dropped (after its second
/// pair), the pyramid's buffers go back to the [`Farneback`] that made them, for a later
/// frame. So a sequence allocates a few pyramids, not one per frame.
struct Kept {
    pyramid: Pyramid,
    spare: farneback::Spare,
}

impl Drop for Kept {
    fn drop(&mut self) {
        self.spare.give(std::mem::take(&mut self.pyramid));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opencv::core::{Scalar, CV_8UC1};
    use opencv::prelude::MatTraitManual;

    /// A 64² crop with a texture that moves by `t` pixels.
    fn crop(t: i32) -> FlowFrame {
        let mut m =
            Mat::new_rows_cols_with_default(64, 64, CV_8UC1, Scalar::all(0.0)).expect("a crop");
        let px = m.data_bytes_mut().expect("continuous");
        for (i, v) in px.iter_mut().enumerate() {
            let (x, y) = ((i % 64) as i32 + t, (i / 64) as i32);
            *v = ((x * 37 + y * 11) % 97 + (x * y) % 13) as u8;
        }
        FlowFrame::new(m).expect("a frame")
    }

    #[test]
    fn a_sequence_reuses_the_pyramids_of_frames_it_has_dropped() {
        let flow = Farneback::new(FARNEBACK).expect("spec parameters");
        let mut out = vec![[0.0f32; 2]; 64 * 64];
        let mut prev = crop(0);
        for t in 1..12 {
            let cur = crop(t);
            flow.compute(&prev, &cur, &mut out).expect("flow");
            prev = cur;
        }
        // Frame t's pyramid is live while pairs (t − 1, t) and (t, t + 1) run: two or three
        // pyramids at a time, their buffers passed on, never one per frame.
        let made = flow.spare().made();
        assert!(made <= 3, "{made} pyramids for 12 frames");
        // And the flow is still the flow: the texture moves one pixel left per frame.
        let mean_u = out.iter().map(|f| f64::from(f[0])).sum::<f64>() / out.len() as f64;
        assert!((mean_u + 1.0).abs() < 0.2, "mean u {mean_u}");
    }
}
