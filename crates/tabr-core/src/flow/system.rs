//! Farnebäck's per-pair solve: each pixel's 2×2 system from the two expansions (one sampled
//! at the displaced position), and the box-filtered systems solved for the flow, with
//! OpenCV's arithmetic (f32 systems, f64 running sums and solve).
//!
//! The systems are kept four channels side by side per pixel (G11, G12, G22, h1) and h2
//! apart ([`Systems`]): the box filter's horizontal running sums are a chain of dependent
//! adds along the row, and with the four channels in one vector a row costs one chain of
//! vector adds instead of five scalar ones.

#[cfg(target_arch = "x86_64")]
use super::avx2;
use super::farneback::Level;

/// Every pixel's 2×2 system: `quad` holds (G11, G12, G22, h1) per pixel, `h2` the fifth
/// value, both in row order.
#[derive(Debug, Default)]
pub(super) struct Systems {
    pub(super) quad: Vec<[f32; 4]>,
    pub(super) h2: Vec<f32>,
}

/// The box filter's per-thread buffers: the vertical running sums (with `pad` replicated
/// columns either side) and one row of box sums, in the layout of [`Systems`].
#[derive(Debug, Default)]
pub(super) struct BoxScratch {
    vq: Vec<[f64; 4]>,
    v1: Vec<f64>,
    sq: Vec<[f64; 4]>,
    s1: Vec<f64>,
}

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
    m: &mut Systems,
) {
    let (w, h) = (l0.w, l0.h);
    m.quad.resize(w * h, [0.0; 4]);
    m.h2.resize(w * h, 0.0);
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
            // SAFETY: AVX2 is present (checked above); w, h ≥ 2. The kernel's gathers stay
            // within the planes (indices of pixels outside the sampling area are replaced by
            // 0), and its block loads within the planes' slack (see `avx2::update_row`).
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
fn update_row(job: &RowJob<'_>, from: usize, m: &mut Systems) {
    let (y, w, h, frow, wx, wyv) = (job.y, job.w, job.h, job.frow, job.wx, job.wyv);
    let (l0, l1) = (job.l0, job.l1);
    let r1 = &l1.r;
    for x in from..w {
        let i = y * w + x;
        let (dx, dy) = (frow[2 * x], frow[2 * x + 1]);
        let (fx, fy) = (x as f32 + dx, y as f32 + dy);
        let (x1, y1) = (floor_i32(fx), floor_i32(fy));
        let (fx, fy) = (fx - x1 as f32, fy - y1 as f32);
        let r0 = |c: usize| l0.r[c].px()[i];
        let (mut r2, mut r3, mut r4, mut r5, mut r6);
        if (x1 as u32) < (w - 1) as u32 && (y1 as u32) < (h - 1) as u32 {
            let j = y1 as usize * w + x1 as usize;
            let a00 = (1.0 - fx) * (1.0 - fy);
            let a01 = fx * (1.0 - fy);
            let a10 = (1.0 - fx) * fy;
            let a11 = fx * fy;
            let lerp = |c: usize| {
                let p = r1[c].px();
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
        m.quad[i] = [
            r4 * r4 + r6 * r6,
            (r4 + r5) * r6,
            r5 * r5 + r6 * r6,
            r4 * r2 + r6 * r3,
        ];
        m.h2[i] = r6 * r2 + r5 * r3;
    }
}

/// Averages the systems over a `win`×`win` box (replicated borders, running sums in f64, as
/// OpenCV's) and solves each pixel's regularised 2×2 system into `flow`.
#[inline(always)]
pub(super) fn blur_solve(
    m: &Systems,
    w: usize,
    h: usize,
    win: usize,
    s: &mut BoxScratch,
    flow: &mut [f32],
) {
    let r = win / 2;
    let pad = r + 1;
    let scale = 1.0 / (win * win) as f64;
    let BoxScratch { vq, v1, sq, s1 } = s;
    vq.clear();
    vq.resize(w + 2 * pad, [0.0; 4]);
    v1.clear();
    v1.resize(w + 2 * pad, 0.0);
    sq.resize(w, [0.0; 4]);
    s1.resize(w, 0.0);
    // The vertical sums (both layouts, flattened to values) start as OpenCV's: the first row
    // r + 2 times (the replicated border above), then rows 1..r.
    let k = (r + 2) as f32;
    let quad_row = |y: usize| m.quad[y * w..][..w].as_flattened();
    let h2_row = |y: usize| &m.h2[y * w..][..w];
    start_sums(vq[pad..][..w].as_flattened_mut(), quad_row(0), k);
    start_sums(&mut v1[pad..][..w], h2_row(0), k);
    for y in 1..r {
        add_row(vq[pad..][..w].as_flattened_mut(), quad_row(y.min(h - 1)));
        add_row(&mut v1[pad..][..w], h2_row(y.min(h - 1)));
    }
    let kd = (r + 2) as f64;
    for y in 0..h {
        // Slide the vertical sums down one row: add row y + r, drop row y − r − 1.
        let (old, new) = (y.saturating_sub(r + 1), (y + r).min(h - 1));
        slide(
            vq[pad..][..w].as_flattened_mut(),
            quad_row(old),
            quad_row(new),
        );
        slide(&mut v1[pad..][..w], h2_row(old), h2_row(new));
        replicate_edges(vq, pad);
        replicate_edges(v1, pad);
        // Horizontal running sums: four channels in one vector, h2 beside them.
        let mut acc = vq[pad].map(|v| v * kd);
        let mut acc1 = v1[pad] * kd;
        for x in 1..r {
            for c in 0..4 {
                acc[c] += vq[pad + x][c];
            }
            acc1 += v1[pad + x];
        }
        // Column x adds column x + r and drops column x − r − 1 (both shifted by `pad`).
        let (sq, s1) = (&mut sq[..w], &mut s1[..w]);
        let (vq_add, vq_sub) = (&vq[pad + r..][..w], &vq[pad - r - 1..][..w]);
        let (v1_add, v1_sub) = (&v1[pad + r..][..w], &v1[pad - r - 1..][..w]);
        for (((o, o1), (add, sub)), (add1, sub1)) in sq
            .iter_mut()
            .zip(s1.iter_mut())
            .zip(vq_add.iter().zip(vq_sub))
            .zip(v1_add.iter().zip(v1_sub))
        {
            for c in 0..4 {
                acc[c] += add[c] - sub[c];
            }
            acc1 += add1 - sub1;
            *o = acc.map(|v| v * scale);
            *o1 = acc1 * scale;
        }
        let out = &mut flow[y * w * 2..][..w * 2];
        for ((o, &[g11, g12, g22, h1]), &h2) in out.chunks_exact_mut(2).zip(&sq[..w]).zip(&s1[..w])
        {
            let idet = 1.0 / (g11 * g22 - g12 * g12 + 1e-3);
            o[0] = ((g11 * h2 - g12 * h1) * idet) as f32;
            o[1] = ((g22 * h1 - g12 * h2) * idet) as f32;
        }
    }
}

/// Vertical sums started from a row counted `k` times: `v[i] = f64(row[i]·k)`.
#[inline(always)]
fn start_sums(v: &mut [f64], row: &[f32], k: f32) {
    for (o, &a) in v.iter_mut().zip(row) {
        *o = f64::from(a * k);
    }
}

/// A row added to the vertical sums.
#[inline(always)]
fn add_row(v: &mut [f64], row: &[f32]) {
    for (o, &a) in v.iter_mut().zip(row) {
        *o += f64::from(a);
    }
}

/// The vertical sums slid down one row: `v[i] += f64(new[i] − old[i])`, the difference in
/// f32 as OpenCV takes it.
#[inline(always)]
fn slide(v: &mut [f64], old: &[f32], new: &[f32]) {
    for ((o, &a), &b) in v.iter_mut().zip(old).zip(new) {
        *o += f64::from(b - a);
    }
}

/// The `pad` columns either side of a row set to the row's first and last (replicated
/// borders).
#[inline(always)]
fn replicate_edges<T: Copy>(v: &mut [T], pad: usize) {
    let n = v.len();
    let (first, last) = (v[pad], v[n - pad - 1]);
    v[..pad].fill(first);
    v[n - pad..].fill(last);
}
