//! Sampling without a library's resampler (spec §3.2, §4.5): the exact bilinear warp in double
//! precision that every network input and the canonical crop use, and the whole-block shrink
//! of large faces. The numbers are the spec's own, so another implementation can match them.

use opencv::core::{Mat, MatTraitConst, MatTraitConstManual, MatTraitManual, Scalar};

use super::affine::Affine;
use crate::error::{Error, Result};

/// What a sample outside the frame takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outside {
    /// The nearest border pixel (each neighbour's index clamped into the frame).
    Replicate,
    /// Zero (a neighbour outside the frame counts as 0).
    Zero,
}

/// The `side`² float image whose pixel (u, v) is the 8-bit `gray` sampled at `m(u, v)`
/// (frame pixels, centres at whole numbers), bilinearly in double precision with `outside`
/// for samples beyond the border, and never rounded: the crop moves continuously with `m`, so landmark noise far
/// below a pixel changes it by as little (v2 §4.5). OpenCV's `warpAffine` would place samples
/// on a 1/32-pixel grid and round them to 8 bits, steps a 1e-4 px nudge can cross.
pub fn warp_exact(gray: &Mat, m: &Affine, side: usize, outside: Outside) -> Result<Mat> {
    let fail = |_| Error::internal("sampling the face failed");
    let (w, h) = (gray.cols().max(1) as usize, gray.rows().max(1) as usize);
    let px = gray.data_bytes().map_err(fail)?;
    if px.len() != w * h {
        return Err(Error::internal("a frame is not a continuous 8-bit image"));
    }
    let s = side as i32;
    let mut out = Mat::new_rows_cols_with_default(s, s, opencv::core::CV_32FC1, Scalar::all(0.0))
        .map_err(fail)?;
    let dst = out.data_typed_mut::<f32>().map_err(fail)?;
    // An index clamped into the frame (far-off and non-finite positions land on the border).
    let clamp = |k: f64, n: usize| k.clamp(0.0, (n - 1) as f64) as usize;
    let (wl, hl) = ((w - 1) as f64, (h - 1) as f64);
    for (v, row) in dst.chunks_exact_mut(side).enumerate() {
        let vf = v as f64;
        // The position of crop pixel (u, v), exactly as `apply` computes it.
        let at = |u: usize| {
            let uf = u as f64;
            (m[0] * uf + m[1] * vf + m[2], m[3] * uf + m[4] * vf + m[5])
        };
        // The row's positions lie on a segment: when both ends keep all four neighbours inside
        // the frame (with a margin far above rounding error), so does every pixel between,
        // and no index needs clamping; the values are the same either way.
        let ((xa, ya), (xb, yb)) = (at(0), at(side - 1));
        const MARGIN: f64 = 1e-6;
        let inside =
            |x: f64, y: f64| x >= MARGIN && y >= MARGIN && x < wl - MARGIN && y < hl - MARGIN;
        if inside(xa, ya) && inside(xb, yb) {
            for (u, d) in row.iter_mut().enumerate() {
                let (x, y) = at(u);
                // Positive here, so truncation is the floor (and no libm call).
                let (xi, yi) = (x as usize, y as usize);
                let (fx, fy) = (x - xi as f64, y - yi as f64);
                let i = yi * w + xi;
                let (p00, p01) = (f64::from(px[i]), f64::from(px[i + 1]));
                let (p10, p11) = (f64::from(px[i + w]), f64::from(px[i + w + 1]));
                let top = (1.0 - fx) * p00 + fx * p01;
                let bottom = (1.0 - fx) * p10 + fx * p11;
                *d = ((1.0 - fy) * top + fy * bottom) as f32;
            }
            continue;
        }
        for (u, d) in row.iter_mut().enumerate() {
            let (x, y) = at(u);
            let (x0, y0) = (x.floor(), y.floor());
            let (fx, fy) = (x - x0, y - y0);
            // The neighbour at (x0 + i, y0 + j), by the border rule.
            let p = |i: f64, j: f64| {
                let (xx, yy) = (x0 + i, y0 + j);
                match outside {
                    Outside::Replicate => f64::from(px[clamp(yy, h) * w + clamp(xx, w)]),
                    Outside::Zero
                        if xx < 0.0 || yy < 0.0 || xx > wl || yy > hl || !(xx + yy).is_finite() =>
                    {
                        0.0
                    }
                    Outside::Zero => f64::from(px[yy as usize * w + xx as usize]),
                }
            };
            let top = (1.0 - fx) * p(0.0, 0.0) + fx * p(1.0, 0.0);
            let bottom = (1.0 - fx) * p(0.0, 1.0) + fx * p(1.0, 1.0);
            *d = ((1.0 - fy) * top + fy * bottom) as f32;
        }
    }
    Ok(out)
}

/// The 8-bit frame shrunk by the whole factor `f` (v2 §4.5): the frame cut to ⌊W/f⌋·f ×
/// ⌊H/f⌋·f (the last columns and rows that do not fill a block are dropped), each shrunk pixel
/// the mean of its f × f block rounded half up, in integer arithmetic (⌊(2·sum + f²) / 2f²⌋),
/// so the result is fixed by the frame alone, with no library's resampler in it.
pub fn shrink(gray: &Mat, f: usize) -> Result<Mat> {
    let fail = |_| Error::internal("shrinking the frame failed");
    let (w, h) = (gray.cols().max(0) as usize, gray.rows().max(0) as usize);
    let px = gray.data_bytes().map_err(fail)?;
    if f == 0 || px.len() != w * h {
        return Err(Error::internal("a frame is not a continuous 8-bit image"));
    }
    let (sw, sh) = (w / f, h / f);
    let mut out = Mat::new_rows_cols_with_default(
        sh as i32,
        sw as i32,
        opencv::core::CV_8UC1,
        Scalar::all(0.0),
    )
    .map_err(fail)?;
    let dst = out.data_bytes_mut().map_err(fail)?;
    let area = (f * f) as u64;
    let mut sums = vec![0u64; sw];
    for (y, row) in dst.chunks_exact_mut(sw.max(1)).enumerate().take(sh) {
        sums.fill(0);
        for line in px[y * f * w..].chunks_exact(w).take(f) {
            for (acc, block) in sums.iter_mut().zip(line.chunks_exact(f)) {
                *acc += block.iter().map(|&v| u64::from(v)).sum::<u64>();
            }
        }
        for (d, &sum) in row.iter_mut().zip(&sums) {
            *d = ((2 * sum + area) / (2 * area)) as u8;
        }
    }
    Ok(out)
}

/// `side`² pixels of `gray` sampled through `m` (output pixel → frame pixel) as
/// [`warp_exact`] samples them (bilinear in double precision, zero outside, unrounded), as the
/// three channels of an NCHW tensor with `f32(v)·scale + offset` in float32 arithmetic.
pub(super) fn sample(
    gray: &Mat,
    m: &Affine,
    side: usize,
    scale: f32,
    offset: f32,
) -> Result<Vec<f32>> {
    let out = warp_exact(gray, m, side, Outside::Zero)?;
    let px = out
        .data_typed::<f32>()
        .map_err(|_| Error::internal("sampling the face failed"))?;
    let plane: Vec<f32> = px.iter().map(|&v| v * scale + offset).collect();
    Ok([plane.as_slice(), plane.as_slice(), plane.as_slice()].concat())
}
