//! The two AVX2 kernels of our Farnebäck, called only where the CPU has AVX2 (the callers
//! check; the rest of both halves gets its AVX2 build through `with_avx2!`).
//!
//! - `update_row`: the system update eight pixels at a time. Its bilinear samples of the
//!   other frame's expansion are scattered reads no compiler vectorises from the scalar loop.
//!   A smooth flow keeps the eight samples within one pixel boundary of each other, so they
//!   come from a block of 2–3 × 2–3 plain vector loads, each lane weighing the loads that are
//!   not its corners by zero (gathers, slow on current cores, only for rough flow: 0.1 % of
//!   d18's vectors). It also writes the systems in the box filter's layout (a 4×8 transpose).
//! - `hsums`: the expansion's f64 horizontal sums, four columns at a time in registers.
//!
//! No FMA: every product and sum is rounded as in the scalar code, so both give the same bits.
#![allow(unsafe_code)]

use std::arch::x86_64::*;

use super::poly::PolyKernel;
use super::system::{RowJob, Systems};

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
    // SAFETY: the caller guarantees AVX2 and the bounds this function's `# Safety` names.
    unsafe {
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
}

/// Pixels `0..w − w % 8` of row `y`; returns how many it did.
///
/// # Safety
/// The CPU must support AVX2, `w, h ≥ 2`, the planes must hold `w·h` values (and their
/// [`SLACK`](super::farneback::SLACK) either side, which [`Plane`](super::farneback::Plane)
/// keeps), `frow` `2w`, `wx` `w`.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn update_row(job: &RowJob<'_>, m: &mut Systems) -> usize {
    // SAFETY: the caller guarantees AVX2 and the bounds this function's `# Safety` names.
    unsafe {
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
        let lane_ids = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
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
        let quad = m.quad.as_mut_ptr().add(row).cast::<f32>();
        let h2 = m.h2.as_mut_ptr().add(row);
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
            let (gx, gy) = (_mm256_sub_ps(one, fx), _mm256_sub_ps(one, fy));
            let zero = _mm256_setzero_ps();
            // The samples of the other frame's expansion. The flow is smooth, so the eight lanes'
            // sample positions usually lie on one row and one integer shift from their pixels, or
            // straddle one pixel boundary (a flow near 0 does): then the corners of every lane
            // are in a 3×3 block of plain vector loads (rows `top..top + ny`, shifts
            // `shift..shift + nx`), and each lane weighs the block's loads with its bilinear
            // weights, zero for the loads that are not its corners. The nonzero terms are added
            // in the scalar code's order (upper left, upper right, lower left, lower right) and
            // adding a zero term changes nothing, so this gives the scalar code's bits. Anything
            // else (a rough flow) is gathered.
            let lane_shift =
                _mm256_sub_epi32(x1, _mm256_add_epi32(_mm256_set1_epi32(x as i32), lane_ids));
            let outside_i = _mm256_xor_si256(inside_i, minus1);
            let (big, small) = (_mm256_set1_epi32(i32::MAX), _mm256_set1_epi32(i32::MIN));
            let lo = |v: __m256i| hmin_epi32(_mm256_blendv_epi8(v, big, outside_i));
            let hi = |v: __m256i| hmax_epi32(_mm256_blendv_epi8(v, small, outside_i));
            let (shift, shift_hi, top, bottom) = (lo(lane_shift), hi(lane_shift), lo(y1), hi(y1));
            let any_inside = _mm256_movemask_ps(inside) != 0;
            let block = any_inside && shift_hi - shift <= 1 && bottom - top <= 1;
            let samples: [__m256; 5] = if block {
                // Lanes whose corner is one further right (down) than the block's first.
                let sx = _mm256_castsi256_ps(_mm256_cmpeq_epi32(
                    lane_shift,
                    _mm256_set1_epi32(shift + 1),
                ));
                let sy = _mm256_castsi256_ps(_mm256_cmpeq_epi32(y1, _mm256_set1_epi32(top + 1)));
                let wxs = [
                    _mm256_andnot_ps(sx, gx),
                    _mm256_blendv_ps(fx, gx, sx),
                    _mm256_and_ps(sx, fx),
                ];
                let wys = [
                    _mm256_andnot_ps(sy, gy),
                    _mm256_blendv_ps(fy, gy, sy),
                    _mm256_and_ps(sy, fy),
                ];
                // SAFETY (the loads): an inside lane's corners are pixels, and every load starts
                // at most 7 values before the first such corner or ends at most 7 after the
                // last, within the planes' SLACK on either side.
                let at = (top as isize) * w as isize + x as isize + shift as isize;
                let (nx, ny) = ((shift_hi - shift + 2) as usize, (bottom - top + 2) as usize);
                match (nx, ny) {
                    (2, 2) => block_samples::<2, 2>(&r1, at, w, [gx, fx, zero], [gy, fy, zero]),
                    (3, 2) => block_samples::<3, 2>(&r1, at, w, wxs, wys),
                    (2, 3) => block_samples::<2, 3>(&r1, at, w, wxs, wys),
                    _ => block_samples::<3, 3>(&r1, at, w, wxs, wys),
                }
            } else {
                // Outside lanes gather pixel 0 (their samples are discarded below).
                let j =
                    _mm256_and_si256(_mm256_add_epi32(_mm256_mullo_epi32(y1, wv), x1), inside_i);
                let (jlo, jhi) = (_mm256_castsi256_si128(j), _mm256_extracti128_si256::<1>(j));
                let (a00, a01) = (_mm256_mul_ps(gx, gy), _mm256_mul_ps(fx, gy));
                let (a10, a11) = (_mm256_mul_ps(gx, fy), _mm256_mul_ps(fx, fy));
                // The two horizontal neighbours are adjacent: one 8-byte gather fetches both, so
                // a row of corners costs two 4-element gathers instead of two 8-element ones.
                let corners = |p: *const f32| {
                    let lo = _mm256_castpd_ps(_mm256_i32gather_pd::<4>(p.cast(), jlo));
                    let hi = _mm256_castpd_ps(_mm256_i32gather_pd::<4>(p.cast(), jhi));
                    (
                        order(_mm256_shuffle_ps::<0b10_00_10_00>(lo, hi)),
                        order(_mm256_shuffle_ps::<0b11_01_11_01>(lo, hi)),
                    )
                };
                std::array::from_fn(|c| {
                    let p = r1[c];
                    let (p00, p01) = corners(p);
                    let (p10, p11) = corners(p.add(w));
                    let s = _mm256_add_ps(_mm256_mul_ps(a00, p00), _mm256_mul_ps(a01, p01));
                    let s = _mm256_add_ps(s, _mm256_mul_ps(a10, p10));
                    _mm256_add_ps(s, _mm256_mul_ps(a11, p11))
                })
            };
            let r0v = |c: usize| _mm256_loadu_ps(r0[c].add(x));
            let (q0, q1, q2, q3, q4) = (r0v(0), r0v(1), r0v(2), r0v(3), r0v(4));
            let r2 = _mm256_blendv_ps(zero, samples[0], inside);
            let r3 = _mm256_blendv_ps(zero, samples[1], inside);
            let r4 = _mm256_blendv_ps(
                q2,
                _mm256_mul_ps(_mm256_add_ps(q2, samples[2]), half),
                inside,
            );
            let r5 = _mm256_blendv_ps(
                q3,
                _mm256_mul_ps(_mm256_add_ps(q3, samples[3]), half),
                inside,
            );
            let r6 = _mm256_blendv_ps(
                _mm256_mul_ps(q4, half),
                _mm256_mul_ps(_mm256_add_ps(q4, samples[4]), quarter),
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
            let (g11, g12, g22) = (
                sq(r4, r6),
                _mm256_mul_ps(_mm256_add_ps(r4, r5), r6),
                sq(r5, r6),
            );
            let h1 = dot(r4, r2, r6, r3);
            _mm256_storeu_ps(h2.add(x), dot(r6, r2, r5, r3));
            // Eight pixels' (G11, G12, G22, h1) side by side: a 4×8 transpose.
            let (t0, t1) = (_mm256_unpacklo_ps(g11, g12), _mm256_unpackhi_ps(g11, g12));
            let (t2, t3) = (_mm256_unpacklo_ps(g22, h1), _mm256_unpackhi_ps(g22, h1));
            let (u0, u1) = (
                _mm256_shuffle_ps::<0x44>(t0, t2),
                _mm256_shuffle_ps::<0xEE>(t0, t2),
            );
            let (u2, u3) = (
                _mm256_shuffle_ps::<0x44>(t1, t3),
                _mm256_shuffle_ps::<0xEE>(t1, t3),
            );
            let q = quad.add(4 * x);
            _mm256_storeu_ps(q, _mm256_permute2f128_ps::<0x20>(u0, u1));
            _mm256_storeu_ps(q.add(8), _mm256_permute2f128_ps::<0x20>(u2, u3));
            _mm256_storeu_ps(q.add(16), _mm256_permute2f128_ps::<0x31>(u0, u1));
            _mm256_storeu_ps(q.add(24), _mm256_permute2f128_ps::<0x31>(u2, u3));
            x += 8;
        }
        n
    }
}

/// The five expansions' bilinear samples from a block of `NY` rows × `NX` shifts of plain
/// loads starting `at` values from each plane's first pixel (rows `w` apart): the load at row
/// `i`, shift `j` weighs `wx[j]·wy[i]`, terms added row by row, left to right.
///
/// # Safety
/// AVX2; every load (8 values from `p + at + i·w + j`) within the planes and their slack.
#[inline(always)]
unsafe fn block_samples<const NX: usize, const NY: usize>(
    r1: &[*const f32; 5],
    at: isize,
    w: usize,
    wx: [__m256; 3],
    wy: [__m256; 3],
) -> [__m256; 5] {
    // SAFETY: the caller guarantees AVX2 and the bounds this function's `# Safety` names.
    unsafe {
        let a: [[__m256; NX]; NY] =
            std::array::from_fn(|i| std::array::from_fn(|j| _mm256_mul_ps(wx[j], wy[i])));
        std::array::from_fn(|c| {
            let p = r1[c].offset(at);
            let mut s = _mm256_mul_ps(a[0][0], _mm256_loadu_ps(p));
            for (i, row) in a.iter().enumerate() {
                for (j, &aij) in row.iter().enumerate() {
                    if i + j > 0 {
                        let t = _mm256_mul_ps(aij, _mm256_loadu_ps(p.add(i * w + j)));
                        s = _mm256_add_ps(s, t);
                    }
                }
            }
            s
        })
    }
}

/// The smallest of eight lanes.
///
/// # Safety
/// The CPU has AVX2 (callers are `#[target_feature(enable = "avx2")]`).
#[inline(always)]
unsafe fn hmin_epi32(v: __m256i) -> i32 {
    // SAFETY: the caller guarantees AVX2 and the bounds this function's `# Safety` names.
    unsafe {
        let m = _mm_min_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        let m = _mm_min_epi32(m, _mm_shuffle_epi32::<0b01_00_11_10>(m));
        _mm_cvtsi128_si32(_mm_min_epi32(m, _mm_shuffle_epi32::<0b10_11_00_01>(m)))
    }
}

/// The largest of eight lanes.
///
/// # Safety
/// The CPU has AVX2 (callers are `#[target_feature(enable = "avx2")]`).
#[inline(always)]
unsafe fn hmax_epi32(v: __m256i) -> i32 {
    // SAFETY: the caller guarantees AVX2 and the bounds this function's `# Safety` names.
    unsafe {
        let m = _mm_max_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        let m = _mm_max_epi32(m, _mm_shuffle_epi32::<0b01_00_11_10>(m));
        _mm_cvtsi128_si32(_mm_max_epi32(m, _mm_shuffle_epi32::<0b10_11_00_01>(m)))
    }
}
