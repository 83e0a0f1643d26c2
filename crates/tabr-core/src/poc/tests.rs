//! Phase-only correlation against known shifts, windows and the spec's edge cases.

use super::*;

/// A broadband random texture (white noise smoothed by [1 2 1]/4, which removes the
/// Nyquist band), circularly shifted by (sx, sy) through the Fourier shift theorem: an
/// exact sub-pixel shift. Values are quantised to 8 bits with a wide contrast.
fn texture(w: usize, h: usize, sx: f64, sy: f64, seed: u64) -> Vec<f32> {
    let mut s = seed;
    let mut rnd = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 33) as f64) / f64::from(1u32 << 31) - 0.5
    };
    let noise: Vec<f64> = (0..w * h).map(|_| rnd()).collect();
    let at = |y: usize, x: usize| noise[(y % h) * w + (x % w)];
    let k = [1.0, 2.0, 1.0];
    let mut img = vec![Complex32::new(0.0, 0.0); w * h];
    for y in 0..h {
        for x in 0..w {
            let mut v = 0.0;
            for (i, ki) in k.iter().enumerate() {
                for (j, kj) in k.iter().enumerate() {
                    v += ki * kj * at(y + h + i - 1, x + w + j - 1);
                }
            }
            img[y * w + x] = Complex32::new((v / 16.0) as f32, 0.0);
        }
    }
    // 2-D DFT by rows then columns (naive layout, test-only).
    let mut planner = FftPlanner::<f32>::new();
    let (fw, fh, iw, ih) = (
        planner.plan_fft_forward(w),
        planner.plan_fft_forward(h),
        planner.plan_fft_inverse(w),
        planner.plan_fft_inverse(h),
    );
    let mut t = vec![Complex32::new(0.0, 0.0); w * h];
    fw.process(&mut img);
    transpose(&img, &mut t, h, w);
    fh.process(&mut t);
    let freq = |k: usize, n: usize| {
        if 2 * k > n {
            k as f64 - n as f64
        } else {
            k as f64
        }
    };
    for kx in 0..w {
        for ky in 0..h {
            let ph = -2.0
                * std::f64::consts::PI
                * (freq(kx, w) * sx / w as f64 + freq(ky, h) * sy / h as f64);
            t[kx * h + ky] *= Complex32::new(ph.cos() as f32, ph.sin() as f32);
        }
    }
    ih.process(&mut t);
    transpose(&t, &mut img, w, h);
    iw.process(&mut img);
    let norm = (w * h) as f32;
    img.iter()
        .map(|c| (128.0 + 600.0 * c.re / norm).round().clamp(0.0, 255.0))
        .collect()
}

fn run(w: usize, h: usize, sx: f64, sy: f64) -> PocResult {
    let a = texture(w, h, 0.0, 0.0, 7);
    let b = texture(w, h, sx, sy, 7);
    let mut e = PocEngine::new();
    e.poc(
        &Patch::sub(&a, w, 0, 0, w, h),
        &Patch::sub(&b, w, 0, 0, w, h),
    )
}

#[test]
fn identical_patches_peak_at_one() {
    let r = run(128, 128, 0.0, 0.0);
    assert!((r.peak - 1.0).abs() < 1e-4, "{r:?}");
    assert!(r.dx.abs() < 1e-6 && r.dy.abs() < 1e-6, "{r:?}");
}

#[test]
fn integer_shifts_are_recovered() {
    for (sx, sy) in [(3.0, -2.0), (-5.0, 4.0), (0.0, 7.0), (11.0, 0.0)] {
        let r = run(128, 128, sx, sy);
        assert!(
            (r.dx - sx).abs() <= 0.05 && (r.dy - sy).abs() <= 0.05,
            "({sx},{sy}) → {r:?}"
        );
        assert!(r.peak > 0.5, "{r:?}");
    }
}

/// What the spec's estimator returns for a true shift `d` on an ideal (sinc) POC peak:
/// the 3-point parabola is biased towards the integer peak between 0 and ½ px (0.3 → 0.18).
fn spec_estimate(d: f64) -> f64 {
    let sinc = |x: f64| {
        if x == 0.0 {
            1.0
        } else {
            (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
        }
    };
    let p = d.round();
    let f = d - p;
    p + parabola(sinc(1.0 + f), sinc(f), sinc(1.0 - f))
}

#[test]
fn subpixel_shifts_follow_the_spec_estimator() {
    for (sx, sy) in [
        (0.3, -0.2),
        (1.25, 0.4),
        (-2.4, -0.35),
        (0.1, 0.45),
        (3.0, -0.1),
    ] {
        let r = run(128, 128, sx, sy);
        let (ex, ey) = (spec_estimate(sx), spec_estimate(sy));
        assert!(
            (r.dx - ex).abs() <= 0.05 && (r.dy - ey).abs() <= 0.05,
            "({sx},{sy}): want ({ex:.3},{ey:.3}), got {r:?}"
        );
        // Right direction and never past the true shift.
        assert!(
            sx == sx.round() || (r.dx - sx.round()).signum() == (sx - sx.round()).signum(),
            "{r:?}"
        );
        assert!(
            (r.dx - sx).abs() <= 0.15 && (r.dy - sy).abs() <= 0.15,
            "{r:?}"
        );
    }
}

#[test]
fn odd_region_shapes_work() {
    // Region sizes at 128 include prime sides (e.g. 37, 29, 23).
    for (w, h) in [(44, 22), (37, 35), (36, 29), (62, 34)] {
        let r = run(w, h, 1.0, -1.0);
        assert!(
            (r.dx - 1.0).abs() <= 0.1 && (r.dy + 1.0).abs() <= 0.1,
            "{w}x{h} → {r:?}"
        );
    }
}

#[test]
fn flat_patches_give_zero_peak() {
    let a = vec![90.0f32; 32 * 32];
    let mut e = PocEngine::new();
    let p = Patch::sub(&a, 32, 0, 0, 32, 32);
    let r = e.poc(&p, &p);
    assert_eq!((r.dx, r.dy, r.peak), (0.0, 0.0, 0.0));
}

#[test]
fn hann_matches_numpy() {
    // numpy.hanning(5) == [0, 0.5, 1, 0.5, 0]
    let w = hann(5);
    for (a, b) in w.iter().zip([0.0, 0.5, 1.0, 0.5, 0.0]) {
        assert!((a - b).abs() < 1e-12);
    }
    assert_eq!(hann(1), vec![1.0]);
}

#[test]
fn parabola_rules() {
    assert_eq!(parabola(0.5, 1.0, 0.5), 0.0);
    assert!(parabola(0.2, 1.0, 0.6) > 0.0);
    assert_eq!(parabola(1.0, 1.0, 1.0), 0.0); // flat: denominator 0
    assert_eq!(parabola(0.0, 0.1, 5.0), 0.0); // not a maximum
    assert_eq!(wrap(64, 128), 64.0);
    assert_eq!(wrap(65, 128), -63.0);
    assert_eq!(wrap(11, 21), -10.0);
    assert_eq!(wrap(10, 21), 10.0);
}
