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

use super::filters::{blur, gaussian_kernel, resize};
use crate::error::{Error, Result};
use crate::spec::FarnebackParams;

/// Rows of the blur/solve pass between two updates of the systems (OpenCV updates in
/// stripes; every row's update only reads its own flow, so any stripe gives the same numbers).
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
    /// `src` (`w`×`h`, replicated borders) into `dst`.
    fn expand(&self, src: &[f32], w: usize, h: usize, row: &mut Vec<f32>, dst: &mut Vec<[f32; 5]>) {
        let n = self.n;
        dst.resize(w * h, [0.0; 5]);
        row.resize((w + 2 * n) * 3, 0.0);
        for y in 0..h {
            // Vertical part: for every column, Σ g, Σ x·g (odd), Σ x²·g over the rows.
            {
                let (g0, s0) = (self.g[0], &src[y * w..(y + 1) * w]);
                let mid = &mut row[n * 3..(n + w) * 3];
                for x in 0..w {
                    mid[x * 3] = s0[x] * g0;
                    mid[x * 3 + 1] = 0.0;
                    mid[x * 3 + 2] = 0.0;
                }
                for k in 1..=n {
                    let (g0, g1, g2) = (self.g[k], self.xg[k], self.xxg[k]);
                    let up = y.saturating_sub(k);
                    let down = (y + k).min(h - 1);
                    let (a, b) = (&src[up * w..(up + 1) * w], &src[down * w..(down + 1) * w]);
                    for x in 0..w {
                        let p = a[x] + b[x];
                        mid[x * 3] += g0 * p;
                        mid[x * 3 + 1] += g1 * (b[x] - a[x]);
                        mid[x * 3 + 2] += g2 * p;
                    }
                }
            }
            // Replicated borders, then the horizontal part in f64.
            for x in 0..n {
                for c in 0..3 {
                    row[x * 3 + c] = row[n * 3 + c];
                    row[(n + w + x) * 3 + c] = row[(n + w - 1) * 3 + c];
                }
            }
            let out = &mut dst[y * w..(y + 1) * w];
            for (x, o) in out.iter_mut().enumerate() {
                let c = (x + n) * 3;
                let g0 = self.g[0];
                let mut b1 = f64::from(row[c] * g0);
                let mut b2 = 0.0f64;
                let mut b3 = f64::from(row[c + 1] * g0);
                let mut b4 = 0.0f64;
                let mut b5 = f64::from(row[c + 2] * g0);
                let mut b6 = 0.0f64;
                for k in 1..=n {
                    let (r, l) = (c + k * 3, c - k * 3);
                    let tg = f64::from(row[r] + row[l]);
                    let gk = self.g[k];
                    b1 += tg * f64::from(gk);
                    b4 += tg * f64::from(self.xxg[k]);
                    b2 += f64::from((row[r] - row[l]) * self.xg[k]);
                    b3 += f64::from((row[r + 1] + row[l + 1]) * gk);
                    b6 += f64::from((row[r + 1] - row[l + 1]) * self.xg[k]);
                    b5 += f64::from((row[r + 2] + row[l + 2]) * gk);
                }
                *o = [
                    (b3 * self.ig11) as f32,
                    (b2 * self.ig11) as f32,
                    (b1 * self.ig03 + b5 * self.ig33) as f32,
                    (b1 * self.ig03 + b4 * self.ig33) as f32,
                    (b6 * self.ig55) as f32,
                ];
            }
        }
    }
}

/// One pyramid level of a frame: its size and its polynomial expansion.
#[derive(Debug, Clone, Default)]
struct Level {
    w: usize,
    h: usize,
    r: Vec<[f32; 5]>,
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
}

/// Per-thread buffers of the per-frame half.
#[derive(Default)]
struct FrameScratch {
    img: Vec<f32>,
    tmp: Vec<f32>,
    blurred: Vec<f32>,
    level: Vec<f32>,
    rows: Vec<f32>,
    row: Vec<f32>,
}

/// Per-thread buffers of the per-pair half.
#[derive(Default)]
struct PairScratch {
    flow: Vec<f32>,
    prev: Vec<f32>,
    m: Vec<[f32; 5]>,
    vsum: Vec<[f64; 5]>,
    rows: Vec<f32>,
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
            s.img.clear();
            s.img.extend(img[..w * h].iter().map(|&v| f32::from(v)));
            for (lp, level) in plan.iter().zip(out.levels.iter_mut()) {
                blur(&s.img, w, h, &lp.kernel, &mut s.tmp, &mut s.blurred);
                resize(&s.blurred, w, h, 1, &mut s.level, lp.w, lp.h, &mut s.rows);
                level.w = lp.w;
                level.h = lp.h;
                self.poly
                    .expand(&s.level, lp.w, lp.h, &mut s.row, &mut level.r);
            }
        });
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
                        resize(&s.prev, pw, ph, 2, &mut s.flow, w, h, &mut s.rows);
                        let up = (1.0 / self.p.pyr_scale) as f32;
                        for v in s.flow.iter_mut() {
                            *v *= up;
                        }
                    }
                }
                update_matrices(l0, l1, &s.flow, &mut s.m);
                let iters = self.p.iterations as usize;
                for i in 0..iters {
                    blur_solve(
                        &s.m,
                        w,
                        h,
                        self.p.winsize as usize,
                        &mut s.vsum,
                        &mut s.flow,
                    );
                    if i + 1 < iters {
                        update_matrices(l0, l1, &s.flow, &mut s.m);
                    }
                }
                prev_size = Some((w, h));
            }
            for (o, f) in out.iter_mut().zip(s.flow.chunks_exact(2)) {
                *o = [f[0], f[1]];
            }
        });
        Ok(())
    }
}

/// Each pixel's 2×2 system (G11, G12, G22, h1, h2) from expansion `r0` at the pixel and `r1`
/// at the pixel displaced by the flow (bilinear), weighted down near the edges.
fn update_matrices(l0: &Level, l1: &Level, flow: &[f32], m: &mut Vec<[f32; 5]>) {
    let (w, h) = (l0.w, l0.h);
    m.resize(w * h, [0.0; 5]);
    let (r0s, r1s) = (&l0.r, &l1.r);
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let (dx, dy) = (flow[2 * i], flow[2 * i + 1]);
            let (mut fx, mut fy) = (x as f32 + dx, y as f32 + dy);
            let (x1, y1) = (fx.floor(), fy.floor());
            fx -= x1;
            fy -= y1;
            let r0 = &r0s[i];
            let (mut r2, mut r3, mut r4, mut r5, mut r6);
            if x1 >= 0.0 && y1 >= 0.0 && (x1 as usize) < w - 1 && (y1 as usize) < h - 1 {
                let j = y1 as usize * w + x1 as usize;
                let (p00, p01, p10, p11) = (&r1s[j], &r1s[j + 1], &r1s[j + w], &r1s[j + w + 1]);
                let a00 = (1.0 - fx) * (1.0 - fy);
                let a01 = fx * (1.0 - fy);
                let a10 = (1.0 - fx) * fy;
                let a11 = fx * fy;
                let lerp = |c: usize| a00 * p00[c] + a01 * p01[c] + a10 * p10[c] + a11 * p11[c];
                r2 = lerp(0);
                r3 = lerp(1);
                r4 = (r0[2] + lerp(2)) * 0.5;
                r5 = (r0[3] + lerp(3)) * 0.5;
                r6 = (r0[4] + lerp(4)) * 0.25;
            } else {
                r2 = 0.0;
                r3 = 0.0;
                r4 = r0[2];
                r5 = r0[3];
                r6 = r0[4] * 0.5;
            }
            r2 = (r0[0] - r2) * 0.5;
            r3 = (r0[1] - r3) * 0.5;
            r2 += r4 * dy + r6 * dx;
            r3 += r6 * dy + r5 * dx;
            if x < BORDER || x >= w - BORDER || y < BORDER || y >= h - BORDER {
                let edge = |i: usize, n: usize| {
                    (if i < BORDER { BORDER_WEIGHT[i] } else { 1.0 })
                        * (if i + BORDER >= n {
                            BORDER_WEIGHT[n - i - 1]
                        } else {
                            1.0
                        })
                };
                let scale = edge(x, w) * edge(y, h);
                r2 *= scale;
                r3 *= scale;
                r4 *= scale;
                r5 *= scale;
                r6 *= scale;
            }
            m[i] = [
                r4 * r4 + r6 * r6,
                (r4 + r5) * r6,
                r5 * r5 + r6 * r6,
                r4 * r2 + r6 * r3,
                r6 * r2 + r5 * r3,
            ];
        }
    }
}

/// Averages the systems over a `win`×`win` box (replicated borders, running sums in f64) and
/// solves each pixel's regularised 2×2 system into `flow`.
fn blur_solve(
    m: &[[f32; 5]],
    w: usize,
    h: usize,
    win: usize,
    vsum: &mut Vec<[f64; 5]>,
    flow: &mut [f32],
) {
    let r = win / 2;
    let scale = 1.0 / (win * win) as f64;
    // vsum holds the vertical box sums of every column, padded by r + 1 on each side.
    vsum.clear();
    vsum.resize(w + 2 * (r + 1), [0.0; 5]);
    let mid = r + 1;
    let row = |y: usize| &m[y * w..(y + 1) * w];
    for (x, v) in row(0).iter().enumerate() {
        for c in 0..5 {
            vsum[mid + x][c] = f64::from(v[c] * (r + 2) as f32);
        }
    }
    for y in 1..r {
        for (x, v) in row(y.min(h - 1)).iter().enumerate() {
            for c in 0..5 {
                vsum[mid + x][c] += f64::from(v[c]);
            }
        }
    }
    for y in 0..h {
        let (old, new) = (row(y.saturating_sub(r + 1)), row((y + r).min(h - 1)));
        for x in 0..w {
            for c in 0..5 {
                vsum[mid + x][c] += f64::from(new[x][c] - old[x][c]);
            }
        }
        for x in 0..=r {
            vsum[mid - 1 - x] = vsum[mid];
            vsum[mid + w + x] = vsum[mid + w - 1];
        }
        let mut s = [0.0f64; 5];
        for c in 0..5 {
            s[c] = vsum[mid][c] * (r + 2) as f64;
        }
        for x in 1..r {
            for c in 0..5 {
                s[c] += vsum[mid + x][c];
            }
        }
        let out = &mut flow[y * w * 2..(y + 1) * w * 2];
        for x in 0..w {
            let (add, sub) = (vsum[mid + x + r], vsum[mid + x - r - 1]);
            for c in 0..5 {
                s[c] += add[c] - sub[c];
            }
            let g11 = s[0] * scale;
            let g12 = s[1] * scale;
            let g22 = s[2] * scale;
            let h1 = s[3] * scale;
            let h2 = s[4] * scale;
            let idet = 1.0 / (g11 * g22 - g12 * g12 + 1e-3);
            out[2 * x] = ((g11 * h2 - g12 * h1) * idet) as f32;
            out[2 * x + 1] = ((g22 * h1 - g12 * h2) * idet) as f32;
        }
    }
}
