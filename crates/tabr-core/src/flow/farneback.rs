//! Farnebäck's two-frame motion estimation (Farnebäck 2003, "Two-Frame Motion Estimation
//! Based on Polynomial Expansion") as OpenCV's `calcOpticalFlowFarneback` computes it with
//! `flags = 0`, so our flow gives OpenCV's numbers (spec §4's reference) within float rounding.
//!
//! The work splits in two, which is what makes a frame sequence cheap:
//! - per frame ([`Farneback::pyramid`]): for each pyramid level, blur the full-resolution
//!   crop by the level's Gaussian, resize it to the level and expand every pixel's
//!   neighbourhood in a quadratic polynomial (five coefficients). A frame's pyramid serves
//!   both pairs it belongs to, as "next" in (t−1, t) and "previous" in (t, t+1);
//! - per pair ([`Farneback::flow`]): coarse to fine, start from the coarser level's flow,
//!   build each pixel's 2×2 system from the two expansions displaced by the current flow,
//!   average the systems over a `winsize` box and solve, `iterations` times.
//!
//! Why it is faster than OpenCV's call with the same arithmetic: the per-frame half is done
//! once per frame instead of twice, every buffer is reused (per worker thread, and a dropped
//! frame's pyramid by a later frame, through `Spare`), the inner loops are plain slices the
//! compiler vectorises, and the two scattered-access kernels are written for AVX2.

use std::cell::RefCell;
use std::sync::{Arc, Mutex};

use super::filters::{blur, gaussian_kernel, resize, ResizeScratch};
use super::poly::{ExpandScratch, PolyKernel};
use super::system::{blur_solve, edge_weights, update_matrices, BoxScratch, Systems};
use crate::error::{Error, Result};
use crate::spec::FarnebackParams;

/// One pyramid level of a frame: its size and its polynomial expansion.
#[derive(Debug, Clone, Default)]
pub(super) struct Level {
    pub(super) w: usize,
    pub(super) h: usize,
    pub(super) r: Planes,
}

/// The five coefficients of an expansion, a plane each.
pub(super) type Planes = [Plane; 5];

/// Values a [`Plane`] keeps on either side of its pixels. The system update fetches eight
/// neighbouring samples with one vector load; for lanes at the image's edge, whose samples
/// it then discards, such a load may start up to 8 values before the first pixel or end up
/// to 7 after the last.
pub(super) const SLACK: usize = 16;

/// One value per pixel in row order, with [`SLACK`] values either side that no result reads.
#[derive(Debug, Clone, Default)]
pub(super) struct Plane {
    buf: Vec<f32>,
}

impl Plane {
    /// Makes room for `n` pixels.
    pub(super) fn resize(&mut self, n: usize) {
        self.buf.resize(n + 2 * SLACK, 0.0);
    }

    /// The pixels.
    pub(super) fn px(&self) -> &[f32] {
        &self.buf[SLACK..self.buf.len() - SLACK]
    }

    /// The pixels, to write.
    pub(super) fn px_mut(&mut self) -> &mut [f32] {
        let n = self.buf.len();
        &mut self.buf[SLACK..n - SLACK]
    }

    /// A pointer to the first pixel, valid for reads from [`SLACK`] values before it to
    /// [`SLACK`] after the last.
    /// (Taken from the whole buffer, so reads into the slack stay within its provenance.)
    pub(super) fn as_ptr(&self) -> *const f32 {
        assert!(self.buf.len() >= 2 * SLACK, "a plane without its slack");
        self.buf.as_ptr().wrapping_add(SLACK)
    }
}

/// A frame's pyramid of polynomial expansions, finest level first: what [`Farneback::flow`]
/// needs of each frame, computed once per frame.
#[derive(Debug, Clone, Default)]
pub struct Pyramid {
    levels: Vec<Level>,
}

/// One level's geometry: its size, its scale, and the blur applied before the resize.
#[derive(Debug, Clone)]
struct LevelPlan {
    w: usize,
    h: usize,
    kernel: Vec<f32>,
}

/// OpenCV's rounding (`cvRound`): half to even.
fn cv_round(x: f64) -> i64 {
    x.round_ties_even() as i64
}

/// Farnebäck flow with fixed parameters (see the module docs).
#[derive(Debug, Clone)]
pub struct Farneback {
    p: FarnebackParams,
    poly: PolyKernel,
    spare: Spare,
}

/// Pyramids of frames no longer in use, for later frames to reuse their buffers (shared by a
/// [`Farneback`]'s clones).
#[derive(Debug, Clone, Default)]
pub(super) struct Spare(Arc<Mutex<SpareInner>>);

#[derive(Debug, Default)]
struct SpareInner {
    kept: Vec<Pyramid>,
    /// How many pyramids [`Spare::take`] has had to make.
    made: usize,
}

/// The most pyramids a [`Spare`] keeps (a sequence needs two or three at a time per thread;
/// the pyramid of a 128² crop is about 0.4 MB).
const MAX_SPARE: usize = 16;

impl Spare {
    /// A pyramid no longer in use, or a new one.
    pub(super) fn take(&self) -> Pyramid {
        let Ok(mut s) = self.0.lock() else {
            return Pyramid::default();
        };
        s.kept.pop().unwrap_or_else(|| {
            s.made += 1;
            Pyramid::default()
        })
    }

    /// How many pyramids [`Spare::take`] has made so far.
    #[cfg(test)]
    pub(super) fn made(&self) -> usize {
        self.0.lock().map_or(0, |s| s.made)
    }

    /// Keeps a pyramid no longer in use (up to [`MAX_SPARE`]).
    pub(super) fn give(&self, p: Pyramid) {
        if let Ok(mut s) = self.0.lock() {
            if s.kept.len() < MAX_SPARE {
                s.kept.push(p);
            }
        }
    }
}

/// One frame for the per-frame half: its pixels, size and the levels to build.
#[derive(Clone, Copy)]
struct FrameJob<'a> {
    w: usize,
    h: usize,
    plan: &'a [LevelPlan],
}

/// Per-thread buffers of the per-frame half.
#[derive(Default)]
struct FrameScratch {
    plan: Vec<LevelPlan>,
    plan_for: Option<(usize, usize, FarnebackParams)>,
    img: Vec<f32>,
    tmp: Vec<f32>,
    padded: Vec<f32>,
    blurred: Vec<f32>,
    level: Vec<f32>,
    resize: ResizeScratch,
    expand: ExpandScratch,
}

/// Per-thread buffers of the per-pair half.
#[derive(Default)]
struct PairScratch {
    flow: Vec<f32>,
    prev: Vec<f32>,
    m: Systems,
    boxes: BoxScratch,
    resize: ResizeScratch,
    wx: Vec<f32>,
    wy: Vec<f32>,
}

thread_local! {
    static FRAME: RefCell<FrameScratch> = RefCell::new(FrameScratch::default());
    static PAIR: RefCell<PairScratch> = RefCell::new(PairScratch::default());
}

impl Farneback {
    /// Checks the parameters this implementation covers: `flags = 0` (the box-filtered
    /// update), `poly_n` 5 or 7, `0 < pyr_scale < 1`, positive `winsize` and `iterations`.
    pub fn new(p: FarnebackParams) -> Result<Farneback> {
        let ok = p.flags == 0
            && (p.poly_n == 5 || p.poly_n == 7)
            && p.pyr_scale > 0.0
            && p.pyr_scale < 1.0
            && p.winsize >= 1
            && p.iterations >= 1
            && p.levels >= 0
            && p.poly_sigma.is_finite();
        if !ok {
            return Err(Error::internal(
                "these Farnebäck parameters are not supported by the built-in flow (use OpenCV's)",
            ));
        }
        Ok(Farneback {
            p,
            poly: PolyKernel::new(p.poly_n as usize, p.poly_sigma),
            spare: Spare::default(),
        })
    }

    /// Where this flow's frames give their pyramids back (see [`Spare`]).
    pub(super) fn spare(&self) -> &Spare {
        &self.spare
    }

    /// The levels OpenCV uses for a `w`×`h` image, finest first: it stops before a level
    /// whose side would fall under 32 pixels.
    fn plan(&self, w: usize, h: usize) -> Vec<LevelPlan> {
        let mut levels = 0;
        let mut scale = 1.0f64;
        while levels < self.p.levels {
            scale *= self.p.pyr_scale;
            if (w as f64) * scale < 32.0 || (h as f64) * scale < 32.0 {
                break;
            }
            levels += 1;
        }
        (0..=levels)
            .map(|k| {
                let scale = (0..k).fold(1.0f64, |s, _| s * self.p.pyr_scale);
                let sigma = (1.0 / scale - 1.0) * 0.5;
                let size = ((cv_round(sigma * 5.0) | 1).max(3)) as usize;
                LevelPlan {
                    w: cv_round(w as f64 * scale) as usize,
                    h: cv_round(h as f64 * scale) as usize,
                    kernel: gaussian_kernel(size, sigma),
                }
            })
            .collect()
    }

    /// The per-frame half: the pyramid of polynomial expansions of a `w`×`h` image (8-bit
    /// gray levels, or floats for v2's crops), written into `out` (whose buffers are reused).
    pub fn pyramid_into<P: Copy + Into<f32>>(
        &self,
        img: &[P],
        w: usize,
        h: usize,
        out: &mut Pyramid,
    ) {
        FRAME.with(|s| {
            let s = &mut *s.borrow_mut();
            // The levels and their kernels depend on the size and the parameters only: built
            // once per thread, not once per frame.
            let key = (w, h, self.p);
            if s.plan_for != Some(key) {
                s.plan = self.plan(w, h);
                s.plan_for = Some(key);
            }
            s.img.clear();
            s.img.extend(img[..w * h].iter().map(|&v| v.into()));
            let plan = std::mem::take(&mut s.plan);
            out.levels.resize_with(plan.len(), Level::default);
            let job = FrameJob { w, h, plan: &plan };
            with_avx2!(
                self.pyramid_avx2(job, s, out),
                self.pyramid_body(job, s, out)
            );
            s.plan = plan;
        });
    }

    /// [`Farneback::pyramid_body`] compiled for AVX2 (wider vectors, the same operations).
    ///
    /// # Safety
    /// The CPU has AVX2 (the caller checked `is_x86_feature_detected!("avx2")`).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    #[allow(unsafe_code)]
    unsafe fn pyramid_avx2(&self, job: FrameJob<'_>, s: &mut FrameScratch, out: &mut Pyramid) {
        self.pyramid_body(job, s, out)
    }

    #[inline(always)]
    fn pyramid_body(&self, job: FrameJob<'_>, s: &mut FrameScratch, out: &mut Pyramid) {
        let FrameJob { w, h, plan } = job;
        for (lp, level) in plan.iter().zip(out.levels.iter_mut()) {
            blur(
                &s.img,
                w,
                h,
                &lp.kernel,
                &mut s.tmp,
                &mut s.padded,
                &mut s.blurred,
            );
            resize::<1>(&s.blurred, w, h, &mut s.level, lp.w, lp.h, &mut s.resize);
            level.w = lp.w;
            level.h = lp.h;
            self.poly
                .expand(&s.level, lp.w, lp.h, &mut s.expand, &mut level.r);
        }
    }

    /// [`Farneback::pyramid_into`] into a new pyramid.
    pub fn pyramid<P: Copy + Into<f32>>(&self, img: &[P], w: usize, h: usize) -> Pyramid {
        let mut p = Pyramid::default();
        self.pyramid_into(img, w, h, &mut p);
        p
    }

    /// The per-pair half: the flow from frame `a` to frame `b` (pyramids of the same size),
    /// `(u, v)` per pixel of the finest level, into `out`.
    pub fn flow(&self, a: &Pyramid, b: &Pyramid, out: &mut [[f32; 2]]) -> Result<()> {
        let same = a.levels.len() == b.levels.len()
            && a.levels
                .iter()
                .zip(&b.levels)
                .all(|(x, y)| x.w == y.w && x.h == y.h);
        let Some(fine) = a.levels.first().filter(|_| same) else {
            return Err(Error::internal("flow between frames of different sizes"));
        };
        if out.len() != fine.w * fine.h {
            return Err(Error::internal("flow output of the wrong size"));
        }
        PAIR.with(|s| {
            let s = &mut *s.borrow_mut();
            with_avx2!(self.levels_avx2(a, b, s), self.levels(a, b, s));
            for (o, f) in out.iter_mut().zip(s.flow.chunks_exact(2)) {
                *o = [f[0], f[1]];
            }
        });
        Ok(())
    }

    /// [`Farneback::levels`] compiled for AVX2 (wider vectors, the same operations).
    ///
    /// # Safety
    /// The CPU has AVX2 (the caller checked `is_x86_feature_detected!("avx2")`).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    #[allow(unsafe_code)]
    unsafe fn levels_avx2(&self, a: &Pyramid, b: &Pyramid, s: &mut PairScratch) {
        self.levels(a, b, s)
    }

    /// Coarse to fine over the levels; the finest level's flow is left in `s.flow`.
    #[inline(always)]
    fn levels(&self, a: &Pyramid, b: &Pyramid, s: &mut PairScratch) {
        let mut prev_size: Option<(usize, usize)> = None;
        for k in (0..a.levels.len()).rev() {
            let (l0, l1) = (&a.levels[k], &b.levels[k]);
            let (w, h) = (l0.w, l0.h);
            match prev_size {
                None => {
                    s.flow.clear();
                    s.flow.resize(w * h * 2, 0.0);
                }
                Some((pw, ph)) => {
                    std::mem::swap(&mut s.flow, &mut s.prev);
                    resize::<2>(&s.prev, pw, ph, &mut s.flow, w, h, &mut s.resize);
                    let up = (1.0 / self.p.pyr_scale) as f32;
                    for v in s.flow.iter_mut() {
                        *v *= up;
                    }
                }
            }
            edge_weights(w, &mut s.wx);
            edge_weights(h, &mut s.wy);
            update_matrices(l0, l1, &s.flow, &s.wx, &s.wy, &mut s.m);
            let iters = self.p.iterations as usize;
            for i in 0..iters {
                blur_solve(
                    &s.m,
                    w,
                    h,
                    self.p.winsize as usize,
                    &mut s.boxes,
                    &mut s.flow,
                );
                if i + 1 < iters {
                    update_matrices(l0, l1, &s.flow, &s.wx, &s.wy, &mut s.m);
                }
            }
            prev_size = Some((w, h));
        }
    }
}
