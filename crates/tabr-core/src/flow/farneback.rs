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
//! once per frame instead of twice, every buffer is reused by the worker thread, and the
//! inner loops are plain slices the compiler vectorises.

use std::cell::RefCell;

use super::filters::{blur, gaussian_kernel, resize, ResizeScratch};
use crate::error::{Error, Result};
use crate::spec::FarnebackParams;

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

/// Pixels from an edge whose systems are weighted down. (OpenCV updates the systems in
/// stripes while its box filter runs; a row's update reads only that row's final flow, so
/// updating after the whole pass, as here, gives the same numbers.)
const BORDER: usize = 5;
/// OpenCV's down-weighting of the systems within five pixels of an edge.
const BORDER_WEIGHT: [f32; BORDER] = [0.14, 0.14, 0.4472, 0.4472, 0.4472];

/// The polynomial expansion's separable kernels and the inverse Gram terms that turn the
/// correlations into coefficients.
#[derive(Debug, Clone)]
struct PolyKernel {
    n: usize,
    /// `g[k]`, `x·g[k]`, `x²·g[k]` for `k` in `0..=n` (the kernels are symmetric).
    g: Vec<f32>,
    xg: Vec<f32>,
    xxg: Vec<f32>,
    ig11: f64,
    ig03: f64,
    ig33: f64,
    ig55: f64,
}

impl PolyKernel {
    fn new(n: usize, sigma: f64) -> PolyKernel {
        let sigma = if sigma < f64::from(f32::EPSILON) {
            n as f64 * 0.3
        } else {
            sigma
        };
        let ni = n as i64;
        let mut gf = vec![0.0f32; 2 * n + 1];
        let mut s = 0.0f64;
        for x in -ni..=ni {
            let v = (-((x * x) as f64) / (2.0 * sigma * sigma)).exp() as f32;
            gf[(x + ni) as usize] = v;
            s += f64::from(v);
        }
        let s = 1.0 / s;
        for v in gf.iter_mut() {
            *v = (f64::from(*v) * s) as f32;
        }
        let at = |x: i64| gf[(x + ni) as usize];
        // The Gram matrix of the basis {1, x, y, x², y², xy} under the Gaussian weights,
        // accumulated as OpenCV does (products in f32, sums in f64).
        let (mut g00, mut g11, mut g33, mut g55) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        for y in -ni..=ni {
            for x in -ni..=ni {
                let w = at(y) * at(x);
                let (xf, yf) = (x as f32, y as f32);
                g00 += f64::from(w);
                g11 += f64::from(w * xf * xf);
                g33 += f64::from(w * xf * xf * xf * xf);
                g55 += f64::from(w * xf * xf * yf * yf);
            }
        }
        // G's {1, x², y²} block is [[g00, g11, g11], [g11, g33, g55], [g11, g55, g33]];
        // x, y and xy are decoupled (their inverses are 1/g11 and 1/g55).
        let det = g00 * (g33 * g33 - g55 * g55) - g11 * (g11 * g33 - g55 * g11)
            + g11 * (g11 * g55 - g33 * g11);
        let ig03 = -(g11 * g33 - g11 * g55) / det;
        let ig33 = (g00 * g33 - g11 * g11) / det;
        PolyKernel {
            n,
            g: (0..=ni).map(at).collect(),
            xg: (0..=ni).map(|k| k as f32 * at(k)).collect(),
            xxg: (0..=ni).map(|k| (k * k) as f32 * at(k)).collect(),
            ig11: 1.0 / g11,
            ig03,
            ig33,
            ig55: 1.0 / g55,
        }
    }

    /// The five coefficients (y, x, x², y², xy terms in OpenCV's order) of every pixel of
    /// `src` (`w`×`h`, replicated borders) into `dst`. Same arithmetic as OpenCV's (f32
    /// vertical sums, f64 horizontal sums, taps in the same order), laid out in planes so the
    /// loops run over contiguous slices and vectorise.
    #[inline(always)]
    fn expand(&self, src: &[f32], w: usize, h: usize, s: &mut ExpandScratch, dst: &mut Planes) {
        let n = self.n;
        let pw = w + 2 * n;
        for p in dst.iter_mut() {
            p.resize(w * h, 0.0);
        }
        for v in [&mut s.v0, &mut s.v1, &mut s.v2] {
            v.resize(pw, 0.0);
        }
        for b in s.b.iter_mut() {
            b.resize(w, 0.0);
        }
        for y in 0..h {
            // Vertical part: for every column, Σ g, Σ x·g (odd), Σ x²·g over the rows.
            {
                let (v0, v1, v2) = (
                    &mut s.v0[n..][..w],
                    &mut s.v1[n..][..w],
                    &mut s.v2[n..][..w],
                );
                let (g0, s0) = (self.g[0], &src[y * w..][..w]);
                for x in 0..w {
                    v0[x] = s0[x] * g0;
                    v1[x] = 0.0;
                    v2[x] = 0.0;
                }
                for k in 1..=n {
                    let (g0, g1, g2) = (self.g[k], self.xg[k], self.xxg[k]);
                    let up = y.saturating_sub(k);
                    let down = (y + k).min(h - 1);
                    let (a, b) = (&src[up * w..][..w], &src[down * w..][..w]);
                    for x in 0..w {
                        let p = a[x] + b[x];
                        v0[x] += g0 * p;
                        v1[x] += g1 * (b[x] - a[x]);
                        v2[x] += g2 * p;
                    }
                }
            }
            // Replicated borders.
            for v in [&mut s.v0, &mut s.v1, &mut s.v2] {
                let (first, last) = (v[n], v[n + w - 1]);
                v[..n].fill(first);
                v[n + w..].fill(last);
            }
            // Horizontal part, in f64: four columns at a time with AVX2 (the six sums stay in
            // registers), the rest one by one; both add the same terms in the same order.
            let (v0, v1, v2) = (&s.v0[..pw], &s.v1[..pw], &s.v2[..pw]);
            #[allow(unused_mut)]
            let mut done = 0;
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: AVX2 is present; the kernel reads v*[x0 .. x0 + 4 + 2n] for
                // x0 + 4 ≤ w, within the padded rows of w + 2n values, and writes b*[..w].
                #[allow(unsafe_code)]
                unsafe {
                    done = avx2::hsums(self, v0, v1, v2, w, &mut s.b);
                }
            }
            let [b1, b2, b3, b4, b5, b6] = &mut s.b;
            let (b1, b2, b3) = (&mut b1[..w], &mut b2[..w], &mut b3[..w]);
            let (b4, b5, b6) = (&mut b4[..w], &mut b5[..w], &mut b6[..w]);
            let g0 = self.g[0];
            for x in done..w {
                let c = x + n;
                let (mut a1, mut a3, mut a5) = (
                    f64::from(v0[c] * g0),
                    f64::from(v1[c] * g0),
                    f64::from(v2[c] * g0),
                );
                let (mut a2, mut a4, mut a6) = (0.0f64, 0.0f64, 0.0f64);
                for k in 1..=n {
                    let (gk, xgk) = (self.g[k], self.xg[k]);
                    let (r, l) = (c + k, c - k);
                    let tg = f64::from(v0[r] + v0[l]);
                    a1 += tg * f64::from(gk);
                    a4 += tg * f64::from(self.xxg[k]);
                    a2 += f64::from((v0[r] - v0[l]) * xgk);
                    a3 += f64::from((v1[r] + v1[l]) * gk);
                    a6 += f64::from((v1[r] - v1[l]) * xgk);
                    a5 += f64::from((v2[r] + v2[l]) * gk);
                }
                (b1[x], b2[x], b3[x], b4[x], b5[x], b6[x]) = (a1, a2, a3, a4, a5, a6);
            }
            let [d0, d1, d2, d3, d4] = dst;
            let (d0, d1, d2) = (
                &mut d0[y * w..][..w],
                &mut d1[y * w..][..w],
                &mut d2[y * w..][..w],
            );
            let (d3, d4) = (&mut d3[y * w..][..w], &mut d4[y * w..][..w]);
            for x in 0..w {
                d0[x] = (b3[x] * self.ig11) as f32;
                d1[x] = (b2[x] * self.ig11) as f32;
                d2[x] = (b1[x] * self.ig03 + b5[x] * self.ig33) as f32;
                d3[x] = (b1[x] * self.ig03 + b4[x] * self.ig33) as f32;
                d4[x] = (b6[x] * self.ig55) as f32;
            }
        }
    }
}

/// The expansion's per-thread row buffers: three vertical sums with borders, six horizontal.
#[derive(Default)]
struct ExpandScratch {
    v0: Vec<f32>,
    v1: Vec<f32>,
    v2: Vec<f32>,
    b: [Vec<f64>; 6],
}

/// One pyramid level of a frame: its size and its polynomial expansion.
#[derive(Debug, Clone, Default)]
struct Level {
    w: usize,
    h: usize,
    r: Planes,
}

/// Five planes of one value per pixel (the expansion's coefficients, or the systems).
type Planes = [Vec<f32>; 5];

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
}

/// One frame for the per-frame half: its pixels, size and the levels to build.
#[derive(Clone, Copy)]
struct FrameJob<'a> {
    img: &'a [u8],
    w: usize,
    h: usize,
    plan: &'a [LevelPlan],
}

/// Per-thread buffers of the per-frame half.
#[derive(Default)]
struct FrameScratch {
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
    m: Planes,
    vsum: [Vec<f64>; 5],
    sums: [Vec<f64>; 5],
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
        })
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

    /// The per-frame half: the pyramid of polynomial expansions of an 8-bit `w`×`h` image,
    /// written into `out` (whose buffers are reused).
    pub fn pyramid_into(&self, img: &[u8], w: usize, h: usize, out: &mut Pyramid) {
        let plan = self.plan(w, h);
        out.levels.resize_with(plan.len(), Level::default);
        FRAME.with(|s| {
            let s = &mut *s.borrow_mut();
            let job = FrameJob {
                img,
                w,
                h,
                plan: &plan,
            };
            with_avx2!(
                self.pyramid_avx2(job, s, out),
                self.pyramid_body(job, s, out)
            );
        });
    }

    /// [`Farneback::pyramid_body`] compiled for AVX2 (wider vectors, the same operations).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    #[allow(unsafe_code)]
    unsafe fn pyramid_avx2(&self, job: FrameJob<'_>, s: &mut FrameScratch, out: &mut Pyramid) {
        self.pyramid_body(job, s, out)
    }

    #[inline(always)]
    fn pyramid_body(&self, job: FrameJob<'_>, s: &mut FrameScratch, out: &mut Pyramid) {
        let FrameJob { img, w, h, plan } = job;
        s.img.resize(w * h, 0.0);
        for (o, &v) in s.img.iter_mut().zip(&img[..w * h]) {
            *o = f32::from(v);
        }
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
            resize(&s.blurred, w, h, 1, &mut s.level, lp.w, lp.h, &mut s.resize);
            level.w = lp.w;
            level.h = lp.h;
            self.poly
                .expand(&s.level, lp.w, lp.h, &mut s.expand, &mut level.r);
        }
    }

    /// [`Farneback::pyramid_into`] into a new pyramid.
    pub fn pyramid(&self, img: &[u8], w: usize, h: usize) -> Pyramid {
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
                    resize(&s.prev, pw, ph, 2, &mut s.flow, w, h, &mut s.resize);
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
                    &mut s.vsum,
                    &mut s.sums,
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

/// OpenCV's `cvFloor` for the flow's sample positions.
#[inline(always)]
fn floor_i32(v: f32) -> i32 {
    let i = v as i32;
    i - i32::from((i as f32) > v)
}

/// OpenCV's down-weighting near the edges, per coordinate: the product of the weights from
/// both ends (at most one differs from 1 on levels of 10 pixels or more).
fn edge_weights(n: usize, out: &mut Vec<f32>) {
    out.clear();
    out.extend((0..n).map(|i| {
        (if i < BORDER { BORDER_WEIGHT[i] } else { 1.0 })
            * (if i + BORDER >= n {
                BORDER_WEIGHT[n - i - 1]
            } else {
                1.0
            })
    }));
}

/// Each pixel's 2×2 system (G11, G12, G22, h1, h2) from expansion `l0` at the pixel and `l1`
/// at the pixel displaced by the flow (bilinear), weighted down near the edges (`wx`, `wy`;
/// a weight of exactly 1 leaves the values as they are, as OpenCV's unweighted interior).
/// Rows go eight pixels at a time through AVX2 where the CPU has it (same operations in the
/// same order, so the same numbers), the rest through the scalar loop.
fn update_matrices(l0: &Level, l1: &Level, flow: &[f32], wx: &[f32], wy: &[f32], m: &mut Planes) {
    let (w, h) = (l0.w, l0.h);
    for p in m.iter_mut() {
        p.resize(w * h, 0.0);
    }
    #[cfg(target_arch = "x86_64")]
    let wide = w >= 8 && h >= 2 && std::arch::is_x86_feature_detected!("avx2");
    for y in 0..h {
        let frow = &flow[y * w * 2..][..w * 2];
        let job = RowJob {
            y,
            w,
            h,
            l0,
            l1,
            frow,
            wx,
            wyv: wy[y],
        };
        #[allow(unused_mut)]
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if wide {
            // SAFETY: AVX2 is present (checked above); the kernel's gathers stay within the
            // planes (indices of pixels outside the sampling area are replaced by 0, and w, h ≥ 2).
            #[allow(unsafe_code)]
            unsafe {
                done = avx2::update_row(&job, m);
            }
        }
        update_row(&job, done, m);
    }
}

/// One row of a system update: the row, the level's size, both expansions, the row's flow
/// and the edge weights.
#[derive(Clone, Copy)]
struct RowJob<'a> {
    y: usize,
    w: usize,
    h: usize,
    l0: &'a Level,
    l1: &'a Level,
    frow: &'a [f32],
    wx: &'a [f32],
    wyv: f32,
}

/// The scalar system update for pixels `from..w` of row `y`.
fn update_row(job: &RowJob<'_>, from: usize, m: &mut Planes) {
    let (y, w, h, frow, wx, wyv) = (job.y, job.w, job.h, job.frow, job.wx, job.wyv);
    let (l0, l1) = (job.l0, job.l1);
    let r1 = &l1.r;
    for x in from..w {
        let i = y * w + x;
        let (dx, dy) = (frow[2 * x], frow[2 * x + 1]);
        let (fx, fy) = (x as f32 + dx, y as f32 + dy);
        let (x1, y1) = (floor_i32(fx), floor_i32(fy));
        let (fx, fy) = (fx - x1 as f32, fy - y1 as f32);
        let r0 = |c: usize| l0.r[c][i];
        let (mut r2, mut r3, mut r4, mut r5, mut r6);
        if (x1 as u32) < (w - 1) as u32 && (y1 as u32) < (h - 1) as u32 {
            let j = y1 as usize * w + x1 as usize;
            let a00 = (1.0 - fx) * (1.0 - fy);
            let a01 = fx * (1.0 - fy);
            let a10 = (1.0 - fx) * fy;
            let a11 = fx * fy;
            let lerp = |c: usize| {
                let p = &r1[c];
                a00 * p[j] + a01 * p[j + 1] + a10 * p[j + w] + a11 * p[j + w + 1]
            };
            r2 = lerp(0);
            r3 = lerp(1);
            r4 = (r0(2) + lerp(2)) * 0.5;
            r5 = (r0(3) + lerp(3)) * 0.5;
            r6 = (r0(4) + lerp(4)) * 0.25;
        } else {
            r2 = 0.0;
            r3 = 0.0;
            r4 = r0(2);
            r5 = r0(3);
            r6 = r0(4) * 0.5;
        }
        r2 = (r0(0) - r2) * 0.5;
        r3 = (r0(1) - r3) * 0.5;
        r2 += r4 * dy + r6 * dx;
        r3 += r6 * dy + r5 * dx;
        let scale = wx[x] * wyv;
        r2 *= scale;
        r3 *= scale;
        r4 *= scale;
        r5 *= scale;
        r6 *= scale;
        m[0][i] = r4 * r4 + r6 * r6;
        m[1][i] = (r4 + r5) * r6;
        m[2][i] = r5 * r5 + r6 * r6;
        m[3][i] = r4 * r2 + r6 * r3;
        m[4][i] = r6 * r2 + r5 * r3;
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx2 {
    //! The system update eight pixels at a time. The bilinear samples of the other frame's
    //! expansion are gathers, which no compiler vectorises from the scalar loop; this kernel
    //! is what makes the update several times cheaper. No FMA: every product and sum is
    //! rounded as in the scalar loop, so both give the same bits.
    use std::arch::x86_64::*;

    use super::{Planes, PolyKernel, RowJob};

    /// The expansion's six horizontal sums for columns `0..w − w % 4`, four at a time;
    /// returns how many columns it did.
    ///
    /// # Safety
    /// The CPU must support AVX2; `v0`, `v1`, `v2` hold `w + 2n` values, `b` six of `w`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn hsums(
        k: &PolyKernel,
        v0: &[f32],
        v1: &[f32],
        v2: &[f32],
        w: usize,
        b: &mut [Vec<f64>; 6],
    ) -> usize {
        let n = k.n;
        let done = w - w % 4;
        let (p0, p1, p2) = (v0.as_ptr(), v1.as_ptr(), v2.as_ptr());
        let out: [*mut f64; 6] = std::array::from_fn(|i| b[i].as_mut_ptr());
        let g0 = _mm_set1_ps(k.g[0]);
        let mut x = 0;
        while x < done {
            let c = x + n;
            let mut a1 = _mm256_cvtps_pd(_mm_mul_ps(_mm_loadu_ps(p0.add(c)), g0));
            let mut a3 = _mm256_cvtps_pd(_mm_mul_ps(_mm_loadu_ps(p1.add(c)), g0));
            let mut a5 = _mm256_cvtps_pd(_mm_mul_ps(_mm_loadu_ps(p2.add(c)), g0));
            let (mut a2, mut a4, mut a6) = (
                _mm256_setzero_pd(),
                _mm256_setzero_pd(),
                _mm256_setzero_pd(),
            );
            for t in 1..=n {
                let (gk, xgk) = (_mm_set1_ps(k.g[t]), _mm_set1_ps(k.xg[t]));
                let (gd, xxgd) = (
                    _mm256_set1_pd(f64::from(k.g[t])),
                    _mm256_set1_pd(f64::from(k.xxg[t])),
                );
                let (r0, l0) = (_mm_loadu_ps(p0.add(c + t)), _mm_loadu_ps(p0.add(c - t)));
                let (r1, l1) = (_mm_loadu_ps(p1.add(c + t)), _mm_loadu_ps(p1.add(c - t)));
                let (r2, l2) = (_mm_loadu_ps(p2.add(c + t)), _mm_loadu_ps(p2.add(c - t)));
                let tg = _mm256_cvtps_pd(_mm_add_ps(r0, l0));
                a1 = _mm256_add_pd(a1, _mm256_mul_pd(tg, gd));
                a4 = _mm256_add_pd(a4, _mm256_mul_pd(tg, xxgd));
                a2 = _mm256_add_pd(a2, _mm256_cvtps_pd(_mm_mul_ps(_mm_sub_ps(r0, l0), xgk)));
                a3 = _mm256_add_pd(a3, _mm256_cvtps_pd(_mm_mul_ps(_mm_add_ps(r1, l1), gk)));
                a6 = _mm256_add_pd(a6, _mm256_cvtps_pd(_mm_mul_ps(_mm_sub_ps(r1, l1), xgk)));
                a5 = _mm256_add_pd(a5, _mm256_cvtps_pd(_mm_mul_ps(_mm_add_ps(r2, l2), gk)));
            }
            for (o, a) in out.iter().zip([a1, a2, a3, a4, a5, a6]) {
                _mm256_storeu_pd(o.add(x), a);
            }
            x += 4;
        }
        done
    }

    /// Pixels `0..w − w % 8` of row `y`; returns how many it did.
    ///
    /// # Safety
    /// The CPU must support AVX2, `w, h ≥ 2`, the planes must hold `w·h` values and `frow`
    /// `2w`, `wx` `w`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn update_row(job: &RowJob<'_>, m: &mut Planes) -> usize {
        let RowJob {
            y,
            w,
            h,
            l0,
            l1,
            frow,
            wx,
            wyv,
        } = *job;
        let n = w - w % 8;
        let row = y * w;
        let lanes = _mm256_setr_ps(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0);
        let (one, half, quarter) = (
            _mm256_set1_ps(1.0),
            _mm256_set1_ps(0.5),
            _mm256_set1_ps(0.25),
        );
        let yv = _mm256_set1_ps(y as f32);
        let (wm1, hm1, minus1) = (
            _mm256_set1_epi32(w as i32 - 1),
            _mm256_set1_epi32(h as i32 - 1),
            _mm256_set1_epi32(-1),
        );
        let wv = _mm256_set1_epi32(w as i32);
        let wyv = _mm256_set1_ps(wyv);
        let r1: [*const f32; 5] = std::array::from_fn(|c| l1.r[c].as_ptr());
        let r0: [*const f32; 5] = std::array::from_fn(|c| l0.r[c].as_ptr().add(row));
        let out: [*mut f32; 5] = std::array::from_fn(|c| m[c].as_mut_ptr().add(row));
        let mut x = 0;
        while x < n {
            // (dx, dy) pairs → two vectors of eight.
            let f0 = _mm256_loadu_ps(frow.as_ptr().add(2 * x));
            let f1 = _mm256_loadu_ps(frow.as_ptr().add(2 * x + 8));
            let order = |v: __m256| {
                _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(v)))
            };
            let dx = order(_mm256_shuffle_ps::<0b10_00_10_00>(f0, f1));
            let dy = order(_mm256_shuffle_ps::<0b11_01_11_01>(f0, f1));
            let fx = _mm256_add_ps(_mm256_add_ps(_mm256_set1_ps(x as f32), lanes), dx);
            let fy = _mm256_add_ps(yv, dy);
            let (x1f, y1f) = (_mm256_floor_ps(fx), _mm256_floor_ps(fy));
            let (x1, y1) = (_mm256_cvttps_epi32(x1f), _mm256_cvttps_epi32(y1f));
            let (fx, fy) = (_mm256_sub_ps(fx, x1f), _mm256_sub_ps(fy, y1f));
            let inside_i = _mm256_and_si256(
                _mm256_and_si256(_mm256_cmpgt_epi32(x1, minus1), _mm256_cmpgt_epi32(wm1, x1)),
                _mm256_and_si256(_mm256_cmpgt_epi32(y1, minus1), _mm256_cmpgt_epi32(hm1, y1)),
            );
            let inside = _mm256_castsi256_ps(inside_i);
            let j = _mm256_and_si256(_mm256_add_epi32(_mm256_mullo_epi32(y1, wv), x1), inside_i);
            let (gx, gy) = (_mm256_sub_ps(one, fx), _mm256_sub_ps(one, fy));
            let a00 = _mm256_mul_ps(gx, gy);
            let a01 = _mm256_mul_ps(fx, gy);
            let a10 = _mm256_mul_ps(gx, fy);
            let a11 = _mm256_mul_ps(fx, fy);
            let (jlo, jhi) = (_mm256_castsi256_si128(j), _mm256_extracti128_si256::<1>(j));
            // Usually the eight samples lie on one row, within 16 columns of each other (the
            // flow is smooth): then two plain loads and two in-register permutes fetch a
            // row of corners. Otherwise gathers do; both fetch the same values.
            let y10 = _mm256_cvtsi256_si32(y1);
            let base = _mm256_cvtsi256_si32(x1) - 4;
            let off = _mm256_sub_epi32(x1, _mm256_set1_epi32(base));
            let ok = _mm256_and_si256(
                _mm256_and_si256(inside_i, _mm256_cmpeq_epi32(y1, _mm256_set1_epi32(y10))),
                _mm256_and_si256(
                    _mm256_cmpgt_epi32(off, minus1),
                    _mm256_cmpgt_epi32(_mm256_set1_epi32(16), off),
                ),
            );
            let window = _mm256_movemask_ps(_mm256_castsi256_ps(ok)) == 0xFF
                && base >= 0
                && base as usize + 17 <= w;
            let upper = _mm256_castsi256_ps(_mm256_cmpgt_epi32(off, _mm256_set1_epi32(7)));
            let pick = |lo: __m256, hi: __m256| {
                _mm256_blendv_ps(
                    _mm256_permutevar8x32_ps(lo, off),
                    _mm256_permutevar8x32_ps(hi, off),
                    upper,
                )
            };
            // The two horizontal neighbours are adjacent: one 8-byte gather fetches both, so
            // a row of corners costs two 4-element gathers instead of two 8-element ones.
            let corners = |p: *const f32| {
                if window {
                    let q = p.add(y10 as usize * w + base as usize);
                    return (
                        pick(_mm256_loadu_ps(q), _mm256_loadu_ps(q.add(8))),
                        pick(_mm256_loadu_ps(q.add(1)), _mm256_loadu_ps(q.add(9))),
                    );
                }
                let lo = _mm256_castpd_ps(_mm256_i32gather_pd::<4>(p.cast(), jlo));
                let hi = _mm256_castpd_ps(_mm256_i32gather_pd::<4>(p.cast(), jhi));
                (
                    order(_mm256_shuffle_ps::<0b10_00_10_00>(lo, hi)),
                    order(_mm256_shuffle_ps::<0b11_01_11_01>(lo, hi)),
                )
            };
            let lerp = |c: usize| {
                let p = r1[c];
                let (p00, p01) = corners(p);
                let (p10, p11) = corners(p.add(w));
                let s = _mm256_add_ps(_mm256_mul_ps(a00, p00), _mm256_mul_ps(a01, p01));
                let s = _mm256_add_ps(s, _mm256_mul_ps(a10, p10));
                _mm256_add_ps(s, _mm256_mul_ps(a11, p11))
            };
            let r0v = |c: usize| _mm256_loadu_ps(r0[c].add(x));
            let (q0, q1, q2, q3, q4) = (r0v(0), r0v(1), r0v(2), r0v(3), r0v(4));
            let zero = _mm256_setzero_ps();
            let r2 = _mm256_blendv_ps(zero, lerp(0), inside);
            let r3 = _mm256_blendv_ps(zero, lerp(1), inside);
            let r4 = _mm256_blendv_ps(q2, _mm256_mul_ps(_mm256_add_ps(q2, lerp(2)), half), inside);
            let r5 = _mm256_blendv_ps(q3, _mm256_mul_ps(_mm256_add_ps(q3, lerp(3)), half), inside);
            let r6 = _mm256_blendv_ps(
                _mm256_mul_ps(q4, half),
                _mm256_mul_ps(_mm256_add_ps(q4, lerp(4)), quarter),
                inside,
            );
            let r2 = _mm256_mul_ps(_mm256_sub_ps(q0, r2), half);
            let r3 = _mm256_mul_ps(_mm256_sub_ps(q1, r3), half);
            let r2 = _mm256_add_ps(
                r2,
                _mm256_add_ps(_mm256_mul_ps(r4, dy), _mm256_mul_ps(r6, dx)),
            );
            let r3 = _mm256_add_ps(
                r3,
                _mm256_add_ps(_mm256_mul_ps(r6, dy), _mm256_mul_ps(r5, dx)),
            );
            let scale = _mm256_mul_ps(_mm256_loadu_ps(wx.as_ptr().add(x)), wyv);
            let (r2, r3) = (_mm256_mul_ps(r2, scale), _mm256_mul_ps(r3, scale));
            let (r4, r5, r6) = (
                _mm256_mul_ps(r4, scale),
                _mm256_mul_ps(r5, scale),
                _mm256_mul_ps(r6, scale),
            );
            let sq = |a: __m256, b: __m256| _mm256_add_ps(_mm256_mul_ps(a, a), _mm256_mul_ps(b, b));
            let dot = |a: __m256, b: __m256, c: __m256, d: __m256| {
                _mm256_add_ps(_mm256_mul_ps(a, b), _mm256_mul_ps(c, d))
            };
            _mm256_storeu_ps(out[0].add(x), sq(r4, r6));
            _mm256_storeu_ps(out[1].add(x), _mm256_mul_ps(_mm256_add_ps(r4, r5), r6));
            _mm256_storeu_ps(out[2].add(x), sq(r5, r6));
            _mm256_storeu_ps(out[3].add(x), dot(r4, r2, r6, r3));
            _mm256_storeu_ps(out[4].add(x), dot(r6, r2, r5, r3));
            x += 8;
        }
        n
    }
}

/// Averages the systems over a `win`×`win` box (replicated borders, running sums in f64, as
/// OpenCV's) and solves each pixel's regularised 2×2 system into `flow`.
#[inline(always)]
fn blur_solve(
    m: &Planes,
    w: usize,
    h: usize,
    win: usize,
    vsum: &mut [Vec<f64>; 5],
    sums: &mut [Vec<f64>; 5],
    flow: &mut [f32],
) {
    let r = win / 2;
    let pad = r + 1;
    let scale = 1.0 / (win * win) as f64;
    for c in 0..5 {
        let (v, p) = (&mut vsum[c], &m[c]);
        v.clear();
        v.resize(w + 2 * pad, 0.0);
        let mid = &mut v[pad..][..w];
        for (o, &a) in mid.iter_mut().zip(&p[..w]) {
            *o = f64::from(a * (r + 2) as f32);
        }
        for y in 1..r {
            let src = &p[y.min(h - 1) * w..][..w];
            for (o, &a) in mid.iter_mut().zip(src) {
                *o += f64::from(a);
            }
        }
        sums[c].resize(w, 0.0);
    }
    for y in 0..h {
        let (old, new) = (y.saturating_sub(r + 1) * w, (y + r).min(h - 1) * w);
        for c in 0..5 {
            let v = &mut vsum[c];
            let (a, b) = (&m[c][old..][..w], &m[c][new..][..w]);
            for ((o, &oa), &nb) in v[pad..][..w].iter_mut().zip(a).zip(b) {
                *o += f64::from(nb - oa);
            }
            let (first, last) = (v[pad], v[pad + w - 1]);
            v[..pad].fill(first);
            v[pad + w..].fill(last);
        }
        // Horizontal running sums, the five channels side by side: five independent chains
        // the CPU overlaps (one channel after another would wait on each add's latency).
        let [v0, v1, v2, v3, v4] = &*vsum;
        let vs = [
            &v0[..w + 2 * pad],
            &v1[..w + 2 * pad],
            &v2[..w + 2 * pad],
            &v3[..w + 2 * pad],
            &v4[..w + 2 * pad],
        ];
        let mut acc = [0.0f64; 5];
        for c in 0..5 {
            acc[c] = vs[c][pad] * (r + 2) as f64;
            for x in 1..r {
                acc[c] += vs[c][pad + x];
            }
        }
        let [s0, s1, s2, s3, s4] = &mut *sums;
        let outs = [
            &mut s0[..w],
            &mut s1[..w],
            &mut s2[..w],
            &mut s3[..w],
            &mut s4[..w],
        ];
        for x in 0..w {
            for c in 0..5 {
                acc[c] += vs[c][pad + x + r] - vs[c][pad + x - r - 1];
            }
            for c in 0..5 {
                outs[c][x] = acc[c] * scale;
            }
        }
        let [g11, g12, g22, h1, h2] = &*sums;
        let (g11, g12, g22, h1, h2) = (&g11[..w], &g12[..w], &g22[..w], &h1[..w], &h2[..w]);
        let out = &mut flow[y * w * 2..][..w * 2];
        for x in 0..w {
            let idet = 1.0 / (g11[x] * g22[x] - g12[x] * g12[x] + 1e-3);
            out[2 * x] = ((g11[x] * h2[x] - g12[x] * h1[x]) * idet) as f32;
            out[2 * x + 1] = ((g22[x] * h1[x] - g12[x] * h2[x]) * idet) as f32;
        }
    }
}
