//! Farnebäck's per-pair solve: each pixel's 2×2 system from the two expansions (one sampled
//! at the displaced position), and the box-filtered systems solved for the flow, with
//! OpenCV's arithmetic (f32 systems, f64 running sums and solve).

#[cfg(target_arch = "x86_64")]
use super::avx2;
use super::farneback::{Level, Planes};

/// Pixels from an edge whose systems are weighted down. (OpenCV updates the systems in
/// stripes while its box filter runs; a row's update reads only that row's final flow, so
/// updating after the whole pass, as here, gives the same numbers.)
const BORDER: usize = 5;
/// OpenCV's down-weighting of the systems within five pixels of an edge.
const BORDER_WEIGHT: [f32; BORDER] = [0.14, 0.14, 0.4472, 0.4472, 0.4472];

/// OpenCV's `cvFloor` for the flow's sample positions.
#[inline(always)]
fn floor_i32(v: f32) -> i32 {
    let i = v as i32;
    i - i32::from((i as f32) > v)
}

/// OpenCV's down-weighting near the edges, per coordinate: the product of the weights from
/// both ends (at most one differs from 1 on levels of 10 pixels or more).
pub(super) fn edge_weights(n: usize, out: &mut Vec<f32>) {
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
pub(super) fn update_matrices(
    l0: &Level,
    l1: &Level,
    flow: &[f32],
    wx: &[f32],
    wy: &[f32],
    m: &mut Planes,
) {
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
pub(super) struct RowJob<'a> {
    pub(super) y: usize,
    pub(super) w: usize,
    pub(super) h: usize,
    pub(super) l0: &'a Level,
    pub(super) l1: &'a Level,
    pub(super) frow: &'a [f32],
    pub(super) wx: &'a [f32],
    pub(super) wyv: f32,
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

/// Averages the systems over a `win`×`win` box (replicated borders, running sums in f64, as
/// OpenCV's) and solves each pixel's regularised 2×2 system into `flow`.
#[inline(always)]
pub(super) fn blur_solve(
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
