//! Farnebäck's polynomial expansion (the per-frame half's main cost): every pixel's
//! neighbourhood fitted by a quadratic polynomial under Gaussian weights, with OpenCV's
//! separable kernels and arithmetic (f32 vertical sums, f64 horizontal sums, in tap order).

#[cfg(target_arch = "x86_64")]
use super::avx2;
use super::farneback::{Plane, Planes};

/// The polynomial expansion's separable kernels and the inverse Gram terms that turn the
/// correlations into coefficients.
#[derive(Debug, Clone)]
pub(super) struct PolyKernel {
    pub(super) n: usize,
    /// `g[k]`, `x·g[k]`, `x²·g[k]` for `k` in `0..=n` (the kernels are symmetric).
    pub(super) g: Vec<f32>,
    pub(super) xg: Vec<f32>,
    pub(super) xxg: Vec<f32>,
    ig11: f64,
    ig03: f64,
    ig33: f64,
    ig55: f64,
}

impl PolyKernel {
    pub(super) fn new(n: usize, sigma: f64) -> PolyKernel {
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
    pub(super) fn expand(
        &self,
        src: &[f32],
        w: usize,
        h: usize,
        s: &mut ExpandScratch,
        dst: &mut Planes,
    ) {
        let n = self.n;
        let pw = w + 2 * n;
        for p in dst.iter_mut() {
            p.resize(w * h);
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
            let [d0, d1, d2, d3, d4] = dst.each_mut().map(Plane::px_mut);
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
pub(super) struct ExpandScratch {
    v0: Vec<f32>,
    v1: Vec<f32>,
    v2: Vec<f32>,
    b: [Vec<f64>; 6],
}
