//! The image filters Farnebäck's pyramid needs, with OpenCV's conventions so the numbers agree:
//! a separable Gaussian blur with reflect-101 borders and OpenCV's kernel, and bilinear resizing
//! with pixel centres aligned (`(dx + 0.5)·scale − 0.5`, edges clamped), where an exact halving
//! averages 2×2 blocks.
//!
//! Everything works on `f32` planes in caller-owned buffers, so a worker thread reuses its
//! buffers from frame to frame.

/// OpenCV's Gaussian kernel of `n` taps (`getGaussianKernel`): the fixed small kernels when
/// `sigma <= 0`, else `exp(−x²/2σ²)` normalised to sum 1, computed in `f64`.
pub(super) fn gaussian_kernel(n: usize, sigma: f64) -> Vec<f32> {
    if sigma <= 0.0 {
        match n {
            1 => return vec![1.0],
            3 => return vec![0.25, 0.5, 0.25],
            5 => return vec![0.0625, 0.25, 0.375, 0.25, 0.0625],
            7 => {
                return vec![
                    0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125,
                ]
            }
            _ => {}
        }
    }
    let s = if sigma > 0.0 {
        sigma
    } else {
        ((n as f64 - 1.0) * 0.5 - 1.0) * 0.3 + 0.8
    };
    let half = (n as f64 - 1.0) * 0.5;
    let raw: Vec<f64> = (0..n)
        .map(|i| {
            let x = i as f64 - half;
            (-x * x / (2.0 * s * s)).exp()
        })
        .collect();
    let sum: f64 = raw.iter().sum();
    raw.iter().map(|v| (v / sum) as f32).collect()
}

/// Reflect-101 index (`gfedcb|abcdefgh|gfedcba`) for `i` in `−(len−1)..2·len−1`.
#[inline]
fn reflect101(i: isize, len: usize) -> usize {
    let n = len as isize;
    if n == 1 {
        return 0;
    }
    let mut i = i;
    loop {
        if i < 0 {
            i = -i;
        } else if i >= n {
            i = 2 * n - 2 - i;
        } else {
            return i as usize;
        }
    }
}

/// Separable blur of `src` (`w`×`h`) with the symmetric `kernel` in both directions, rows
/// first, borders reflect-101 (OpenCV's `GaussianBlur` default). `tmp`, `padded` and `dst` are
/// resized.
#[inline(always)]
pub(super) fn blur(
    src: &[f32],
    w: usize,
    h: usize,
    kernel: &[f32],
    tmp: &mut Vec<f32>,
    padded: &mut Vec<f32>,
    dst: &mut Vec<f32>,
) {
    let r = kernel.len() / 2;
    let c = &kernel[r..];
    tmp.resize(w * h, 0.0);
    dst.resize(w * h, 0.0);
    padded.resize(w + 2 * r, 0.0);
    for y in 0..h {
        let row = &src[y * w..(y + 1) * w];
        padded[r..r + w].copy_from_slice(row);
        for i in 0..r {
            padded[r - 1 - i] = row[reflect101(-1 - i as isize, w)];
            padded[r + w + i] = row[reflect101((w + i) as isize, w)];
        }
        let out = &mut tmp[y * w..][..w];
        if kernel.len() <= 5 {
            // OpenCV's small symmetric row filter: centre, then pairs.
            let centre = &padded[r..][..w];
            for (o, &v) in out.iter_mut().zip(centre) {
                *o = v * c[0];
            }
            for (k, &ck) in c.iter().enumerate().skip(1) {
                let (left, right) = (&padded[r - k..][..w], &padded[r + k..][..w]);
                for x in 0..w {
                    out[x] += ck * (left[x] + right[x]);
                }
            }
        } else {
            // OpenCV's general row filter: taps in order from the left.
            for (o, &v) in out.iter_mut().zip(&padded[..w]) {
                *o = kernel[0] * v;
            }
            for (k, &kk) in kernel.iter().enumerate().skip(1) {
                let taps = &padded[k..][..w];
                for x in 0..w {
                    out[x] += kk * taps[x];
                }
            }
        }
    }
    for y in 0..h {
        let out = &mut dst[y * w..(y + 1) * w];
        let centre = &tmp[y * w..(y + 1) * w];
        for (x, o) in out.iter_mut().enumerate() {
            *o = centre[x] * c[0];
        }
        for (k, &ck) in c.iter().enumerate().skip(1) {
            let up = reflect101(y as isize - k as isize, h);
            let down = reflect101((y + k) as isize, h);
            let (a, b) = (&tmp[up * w..(up + 1) * w], &tmp[down * w..(down + 1) * w]);
            for x in 0..w {
                out[x] += ck * (a[x] + b[x]);
            }
        }
    }
}

/// A resize's per-thread buffers: the taps of both axes, the horizontally resized source
/// rows and which of them are done.
#[derive(Default)]
pub(super) struct ResizeScratch {
    xs: Vec<(usize, f32)>,
    ys: Vec<(usize, f32)>,
    rows: Vec<f32>,
    done: Vec<bool>,
}

/// Source index and weight of the second tap for each destination coordinate of a bilinear
/// resize from `src` to `dst` samples (OpenCV's `INTER_LINEAR` mapping, edges clamped).
fn linear_taps(src: usize, dst: usize, out: &mut Vec<(usize, f32)>) {
    // OpenCV's scale is the inverse of dst/src, which is not always src/dst to the last bit.
    let scale = 1.0 / (dst as f64 / src as f64);
    out.clear();
    out.extend((0..dst).map(|d| {
        let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
        let mut s = f.floor();
        let mut a = f - s;
        if s < 0.0 {
            s = 0.0;
            a = 0.0;
        }
        if s as usize >= src - 1 {
            s = (src - 1) as f32;
            a = 0.0;
        }
        (s as usize, a)
    }));
}

/// Resizes a `CN`-channel interleaved plane from `sw`×`sh` to `dw`×`dh` as OpenCV's
/// `resize(.., INTER_LINEAR)` does for floats: a copy at the same size, the 2×2 mean for an
/// exact halving, else bilinear with [`linear_taps`]. (`CN` a constant, so the per-pixel
/// channel loops unroll.)
#[inline(always)]
pub(super) fn resize<const CN: usize>(
    src: &[f32],
    sw: usize,
    sh: usize,
    dst: &mut Vec<f32>,
    dw: usize,
    dh: usize,
    s: &mut ResizeScratch,
) {
    dst.resize(dw * dh * CN, 0.0);
    if sw == dw && sh == dh {
        dst.copy_from_slice(&src[..dw * dh * CN]);
        return;
    }
    if sw == 2 * dw && sh == 2 * dh {
        for y in 0..dh {
            let (r0, r1) = (
                &src[2 * y * sw * CN..(2 * y + 1) * sw * CN],
                &src[(2 * y + 1) * sw * CN..(2 * y + 2) * sw * CN],
            );
            for x in 0..dw {
                for c in 0..CN {
                    let (i, j) = (2 * x * CN + c, (2 * x + 1) * CN + c);
                    dst[(y * dw + x) * CN + c] = (r0[i] + r0[j] + r1[i] + r1[j]) * 0.25;
                }
            }
        }
        return;
    }
    linear_taps(sw, dw, &mut s.xs);
    linear_taps(sh, dh, &mut s.ys);
    let ResizeScratch { xs, ys, rows, done } = s;
    // Horizontal pass into one buffer row per source row used, then the vertical pass.
    rows.resize(sh * dw * CN, 0.0);
    done.clear();
    done.resize(sh, false);
    let mut hrow = |sy: usize, rows: &mut Vec<f32>| {
        if done[sy] {
            return;
        }
        done[sy] = true;
        let s = &src[sy * sw * CN..(sy + 1) * sw * CN];
        let out = &mut rows[sy * dw * CN..(sy + 1) * dw * CN];
        for (x, &(sx, a)) in xs.iter().enumerate() {
            let nx = (sx + 1).min(sw - 1);
            for c in 0..CN {
                out[x * CN + c] = s[sx * CN + c] * (1.0 - a) + s[nx * CN + c] * a;
            }
        }
    };
    for &(sy, _) in ys.iter() {
        hrow(sy, rows);
        hrow((sy + 1).min(sh - 1), rows);
    }
    for (y, &(sy, b)) in ys.iter().enumerate() {
        let ny = (sy + 1).min(sh - 1);
        let (r0, r1) = (
            &rows[sy * dw * CN..(sy + 1) * dw * CN],
            &rows[ny * dw * CN..(ny + 1) * dw * CN],
        );
        let out = &mut dst[y * dw * CN..(y + 1) * dw * CN];
        for i in 0..dw * CN {
            out[i] = r0[i] * (1.0 - b) + r1[i] * b;
        }
    }
}
