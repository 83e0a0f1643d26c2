//! Phase-only correlation (spec §4) on rustfft.
//!
//! [`PocEngine`] keeps one [`Plan2d`] per patch shape: FFT plans, the 2-D Hann window and
//! every buffer a correlation needs. After the first call for a shape, [`PocEngine::poc`]
//! allocates nothing. Engines are per thread (see [`with_thread_engine`]), so pool workers
//! never contend on a lock.
//!
//! The 2-D transforms run rows first, then columns on a transposed copy; the cross-power
//! spectrum stays in the transposed layout, so an inverse costs one more transpose.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

/// Result of one correlation: shift of `b` relative to `a` and the correlation peak.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PocResult {
    /// Horizontal shift in pixels (positive: `b` is `a` moved right).
    pub dx: f64,
    /// Vertical shift in pixels (positive: `b` is `a` moved down).
    pub dy: f64,
    /// Peak of the normalised correlation surface (≈ 1 for identical patches).
    pub peak: f64,
}

/// A borrowed 8-bit patch: `w`×`h` pixels starting at `data[0]`, rows `stride` apart.
#[derive(Debug, Clone, Copy)]
pub struct Patch<'a> {
    /// Pixel data (gray levels, whole for v1's 8-bit crops); the first pixel of the patch is
    /// `data[0]`.
    pub data: &'a [f32],
    /// Distance between rows, in elements.
    pub stride: usize,
    /// Width in pixels.
    pub w: usize,
    /// Height in pixels.
    pub h: usize,
}

impl<'a> Patch<'a> {
    /// The sub-rectangle `(x, y, w, h)` of a contiguous `stride`-wide image.
    pub fn sub(image: &'a [f32], stride: usize, x: usize, y: usize, w: usize, h: usize) -> Self {
        Self {
            data: &image[y * stride + x..],
            stride,
            w,
            h,
        }
    }

    fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.stride..i * self.stride + self.w]
    }
}

/// The symmetric Hann window of numpy (`0.5 − 0.5·cos(2πk/(n−1))`).
pub fn hann(n: usize) -> Vec<f64> {
    if n <= 1 {
        return vec![1.0; n];
    }
    let d = (n - 1) as f64;
    (0..n)
        .map(|k| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * k as f64 / d).cos())
        .collect()
}

/// FFT plans, window and scratch space for one patch shape.
pub struct Plan2d {
    h: usize,
    w: usize,
    row_fwd: Arc<dyn Fft<f32>>,
    col_fwd: Arc<dyn Fft<f32>>,
    row_inv: Arc<dyn Fft<f32>>,
    col_inv: Arc<dyn Fft<f32>>,
    window: Vec<f32>,
    a: Vec<Complex32>,
    b: Vec<Complex32>,
    t: Vec<Complex32>,
    scratch: Vec<Complex32>,
}

impl Plan2d {
    fn new(planner: &mut FftPlanner<f32>, h: usize, w: usize) -> Self {
        let row_fwd = planner.plan_fft_forward(w);
        let col_fwd = planner.plan_fft_forward(h);
        let row_inv = planner.plan_fft_inverse(w);
        let col_inv = planner.plan_fft_inverse(h);
        let scratch_len = [&row_fwd, &col_fwd, &row_inv, &col_inv]
            .iter()
            .map(|p| p.get_inplace_scratch_len())
            .max()
            .unwrap_or(0);
        let (wh, ww) = (hann(h), hann(w));
        let window = wh
            .iter()
            .flat_map(|a| ww.iter().map(move |b| (a * b) as f32))
            .collect();
        let zero = Complex32::new(0.0, 0.0);
        Self {
            h,
            w,
            row_fwd,
            col_fwd,
            row_inv,
            col_inv,
            window,
            a: vec![zero; h * w],
            b: vec![zero; h * w],
            t: vec![zero; h * w],
            scratch: vec![zero; scratch_len],
        }
    }

    /// Mean-removed, windowed patch → spectrum in transposed (column-major) layout in `out`.
    fn forward(&mut self, p: &Patch<'_>, which: Which) {
        let (h, w) = (self.h, self.w);
        // In f64 the sum of 8-bit levels is exact, as an integer sum would be.
        let sum: f64 = (0..h)
            .map(|i| p.row(i).iter().map(|&v| f64::from(v)).sum::<f64>())
            .sum();
        let mean = sum / (h * w) as f64;
        for i in 0..h {
            let dst = &mut self.t[i * w..(i + 1) * w];
            let win = &self.window[i * w..(i + 1) * w];
            for ((d, &px), &wv) in dst.iter_mut().zip(p.row(i)).zip(win) {
                *d = Complex32::new((f64::from(px) - mean) as f32 * wv, 0.0);
            }
        }
        self.row_fwd
            .process_with_scratch(&mut self.t, &mut self.scratch);
        let out = match which {
            Which::A => &mut self.a,
            Which::B => &mut self.b,
        };
        transpose(&self.t, out, h, w);
        self.col_fwd.process_with_scratch(out, &mut self.scratch);
    }

    /// Phase-only correlation of `b` against `a` (same shape as the plan).
    pub fn correlate(&mut self, a: &Patch<'_>, b: &Patch<'_>) -> PocResult {
        debug_assert!(a.w == self.w && a.h == self.h && b.w == self.w && b.h == self.h);
        self.forward(a, Which::A);
        self.forward(b, Which::B);
        // Cross-power spectrum R = Fb·conj(Fa) / (|Fb·conj(Fa)| + 1e-9), in place in `b`.
        for (fb, fa) in self.b.iter_mut().zip(&self.a) {
            let c = *fb * fa.conj();
            *fb = c / (c.norm() + 1e-9);
        }
        let (h, w) = (self.h, self.w);
        self.col_inv
            .process_with_scratch(&mut self.b, &mut self.scratch);
        transpose(&self.b, &mut self.t, w, h);
        self.row_inv
            .process_with_scratch(&mut self.t, &mut self.scratch);
        let norm = 1.0 / (h * w) as f32;
        let r = |i: usize, j: usize| f64::from(self.t[i * w + j].re * norm);
        let (mut pi, mut pj, mut best) = (0, 0, f32::NEG_INFINITY);
        for (k, c) in self.t.iter().enumerate() {
            if c.re > best {
                best = c.re;
                pi = k / w;
                pj = k % w;
            }
        }
        let peak = r(pi, pj);
        let dy_sub = parabola(r((pi + h - 1) % h, pj), peak, r((pi + 1) % h, pj));
        let dx_sub = parabola(r(pi, (pj + w - 1) % w), peak, r(pi, (pj + 1) % w));
        PocResult {
            dx: wrap(pj, w) + dx_sub,
            dy: wrap(pi, h) + dy_sub,
            peak,
        }
    }
}

#[derive(Clone, Copy)]
enum Which {
    A,
    B,
}

/// Index above n/2 → negative shift.
fn wrap(i: usize, n: usize) -> f64 {
    if 2 * i > n {
        i as f64 - n as f64
    } else {
        i as f64
    }
}

/// 3-point parabola vertex offset, clamped to ±0.5; 0 when the surface is not a maximum.
fn parabola(rm: f64, r0: f64, rp: f64) -> f64 {
    let den = 2.0 * (rm - 2.0 * r0 + rp);
    if den >= 0.0 {
        0.0
    } else {
        ((rm - rp) / den).clamp(-0.5, 0.5)
    }
}

fn transpose(src: &[Complex32], dst: &mut [Complex32], rows: usize, cols: usize) {
    const B: usize = 16;
    for i0 in (0..rows).step_by(B) {
        for j0 in (0..cols).step_by(B) {
            for i in i0..(i0 + B).min(rows) {
                for j in j0..(j0 + B).min(cols) {
                    dst[j * rows + i] = src[i * cols + j];
                }
            }
        }
    }
}

/// Plans per patch shape, reused across calls.
pub struct PocEngine {
    planner: FftPlanner<f32>,
    plans: HashMap<(usize, usize), Plan2d>,
}

impl PocEngine {
    /// An empty engine; plans are made on first use of each shape.
    pub fn new() -> Self {
        Self {
            planner: FftPlanner::new(),
            plans: HashMap::new(),
        }
    }

    /// POC(a, b): the shift of `b` against `a` and the peak. Shapes must match.
    pub fn poc(&mut self, a: &Patch<'_>, b: &Patch<'_>) -> PocResult {
        assert!(a.w == b.w && a.h == b.h, "POC needs patches of one shape");
        let Self { planner, plans } = self;
        plans
            .entry((a.h, a.w))
            .or_insert_with(|| Plan2d::new(planner, a.h, a.w))
            .correlate(a, b)
    }
}

impl Default for PocEngine {
    fn default() -> Self {
        Self::new()
    }
}

thread_local! {
    static ENGINE: RefCell<PocEngine> = RefCell::new(PocEngine::new());
}

/// Runs `f` with this thread's engine (plans and buffers persist per thread).
pub fn with_thread_engine<R>(f: impl FnOnce(&mut PocEngine) -> R) -> R {
    ENGINE.with(|e| f(&mut e.borrow_mut()))
}

#[cfg(test)]
mod tests;
