//! Our Farnebäck against OpenCV's `calcOpticalFlowFarneback`, per pixel: on the real crop
//! pairs of every face fixture in ../shared (through the real pipeline, so the crops are the
//! ones the features use), on synthetic textures with known motion, on edge cases (flat
//! images, a one-pixel line, sizes that are not multiples of 2 or 8) and with parameters other
//! than the spec's.

use std::sync::{Arc, Mutex};

use opencv::core::{
    Mat, MatTraitConst, MatTraitConstManual, MatTraitManual, Scalar, Vec2f, CV_8UC1,
};
use tabr_core::flow::{opencv_farneback, Farneback, Flow, FlowFrame, OpenCvFarneback};
use tabr_core::spec::{FarnebackParams, FARNEBACK};
use tabr_core::{CancelFlag, Extractor};

mod common;

/// Per-pixel |Δ| (length of the difference vector) between two flows.
fn deltas<'a>(a: &'a [[f32; 2]], b: &'a [[f32; 2]]) -> impl Iterator<Item = f32> + 'a {
    a.iter()
        .zip(b)
        .map(|(p, q)| ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)).sqrt())
}

fn p99_and_max(mut d: Vec<f32>) -> (f32, f32) {
    d.sort_by(f32::total_cmp);
    let p99 = d[((d.len() as f64 * 0.99).ceil() as usize).min(d.len()) - 1];
    (p99, *d.last().expect("deltas"))
}

/// Runs our flow for the pipeline and OpenCV's beside it, keeping every per-pixel |Δ|.
#[derive(Debug)]
struct Compare {
    ours: Farneback,
    deltas: Mutex<Vec<f32>>,
    pairs: Mutex<usize>,
}

impl Flow for Compare {
    fn compute(&self, a: &FlowFrame, b: &FlowFrame, out: &mut [[f32; 2]]) -> tabr_core::Result<()> {
        let mut reference = vec![[0.0f32; 2]; out.len()];
        OpenCvFarneback.compute(a, b, &mut reference)?;
        self.ours.compute(a, b, out)?;
        self.deltas
            .lock()
            .expect("lock")
            .extend(deltas(out, &reference));
        *self.pairs.lock().expect("lock") += 1;
        Ok(())
    }
}

#[test]
fn equals_opencv_on_the_real_crop_pairs_of_every_face_fixture() {
    let fixtures = common::shared_root().join("fixtures");
    let compare = Arc::new(Compare {
        ours: Farneback::new(FARNEBACK).expect("spec parameters"),
        deltas: Mutex::new(Vec::new()),
        pairs: Mutex::new(0),
    });
    let ex = Extractor::new()
        .expect("extractor")
        .with_flow(compare.clone());
    let mut clips = Vec::new();
    for sub in ["faces", "derived"] {
        for e in std::fs::read_dir(fixtures.join(sub)).expect("fixtures") {
            let p = e.expect("entry").path();
            if p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains("face"))
            {
                clips.push(p);
            }
        }
    }
    clips.sort();
    let mut worst_clip = (0.0f32, String::new());
    for clip in &clips {
        let before = compare.deltas.lock().expect("lock").len();
        // Truncated clips may fail later in the pipeline; the pairs they made still count.
        let _ = ex.extract_path(clip, &CancelFlag::new());
        let d = compare.deltas.lock().expect("lock")[before..].to_vec();
        if !d.is_empty() {
            let (p99, max) = p99_and_max(d);
            println!("{}: p99 {p99:.2e} max {max:.2e}", clip.display());
            if max > worst_clip.0 {
                worst_clip = (max, clip.display().to_string());
            }
        }
    }
    let pairs = *compare.pairs.lock().expect("lock");
    let (p99, max) = p99_and_max(std::mem::take(&mut *compare.deltas.lock().expect("lock")));
    println!(
        "{pairs} pairs: p99 |Δ| {p99:.2e} px, max {max:.2e} px (worst clip {})",
        worst_clip.1
    );
    assert!(pairs >= 300, "only {pairs} real pairs compared");
    assert!(p99 <= 0.01, "p99 |Δ| {p99} px over 0.01");
    assert!(max <= 0.05, "max |Δ| {max} px over 0.05");
}

/// OpenCV's flow for two 8-bit images with given parameters.
fn opencv_flow(a: &[u8], b: &[u8], w: usize, h: usize, p: FarnebackParams) -> Vec<[f32; 2]> {
    let mat = |d: &[u8]| {
        let mut m = Mat::new_rows_cols_with_default(h as i32, w as i32, CV_8UC1, Scalar::all(0.0))
            .expect("mat");
        m.data_bytes_mut().expect("bytes").copy_from_slice(d);
        m
    };
    let mut f = Mat::default();
    opencv_farneback(&mat(a), &mat(b), &p, &mut f).expect("opencv flow");
    assert_eq!(f.rows() as usize, h);
    f.data_typed::<Vec2f>()
        .expect("flow")
        .iter()
        .map(|v| [v[0], v[1]])
        .collect()
}

fn our_flow(a: &[u8], b: &[u8], w: usize, h: usize, p: FarnebackParams) -> Vec<[f32; 2]> {
    let fb = Farneback::new(p).expect("parameters");
    let mut out = vec![[0.0f32; 2]; w * h];
    fb.flow(&fb.pyramid(a, w, h), &fb.pyramid(b, w, h), &mut out)
        .expect("flow");
    out
}

/// A smooth random texture sampled at (x, y) after moving it: sums of sinusoids with fixed
/// random frequencies and phases, so any sub-pixel motion can be rendered exactly.
fn texture(w: usize, h: usize, seed: u64, warp: impl Fn(f64, f64) -> (f64, f64)) -> Vec<u8> {
    let mut s = seed;
    let mut rnd = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let waves: Vec<(f64, f64, f64, f64)> = (0..24)
        .map(|_| {
            (
                rnd() * 0.6 - 0.3,
                rnd() * 0.6 - 0.3,
                rnd() * 6.3,
                10.0 + rnd() * 20.0,
            )
        })
        .collect();
    let mut img = vec![0u8; w * h];
    for y in 0..h {
        for x in 0..w {
            let (u, v) = warp(x as f64, y as f64);
            let val: f64 = waves
                .iter()
                .map(|&(fx, fy, ph, amp)| amp * (fx * u + fy * v + ph).sin())
                .sum();
            img[y * w + x] = (128.0 + val * 0.35).round().clamp(0.0, 255.0) as u8;
        }
    }
    img
}

fn assert_close(name: &str, a: &[u8], b: &[u8], w: usize, h: usize, p: FarnebackParams) {
    let (ours, theirs) = (our_flow(a, b, w, h, p), opencv_flow(a, b, w, h, p));
    let (p99, max) = p99_and_max(deltas(&ours, &theirs).collect());
    println!("{name} ({w}×{h}): p99 {p99:.2e} max {max:.2e}");
    assert!(p99 <= 0.01 && max <= 0.05, "{name}: p99 {p99}, max {max}");
}

#[test]
fn equals_opencv_on_textures_with_known_motion() {
    let n = 128;
    let base = texture(n, n, 1, |x, y| (x, y));
    for (name, dx, dy) in [
        ("shift 1.0, 0", 1.0, 0.0),
        ("shift 0.3, -0.7", 0.3, -0.7),
        ("shift 3.5, 2.25", 3.5, 2.25),
    ] {
        let moved = texture(n, n, 1, |x, y| (x - dx, y - dy));
        assert_close(name, &base, &moved, n, n, FARNEBACK);
        // The flow finds the motion itself (in the centre, away from the weighted edges).
        let f = our_flow(&base, &moved, n, n, FARNEBACK);
        let c = f[64 * n + 64];
        assert!(
            (c[0] as f64 - dx).abs() < 0.1 && (c[1] as f64 - dy).abs() < 0.1,
            "{name}: {c:?}"
        );
    }
    let (s, c) = (0.03f64.sin(), 0.03f64.cos());
    let rotated = texture(n, n, 1, |x, y| {
        let (u, v) = (x - 64.0, y - 64.0);
        (c * u + s * v + 64.0, -s * u + c * v + 64.0)
    });
    assert_close("rotation 0.03 rad", &base, &rotated, n, n, FARNEBACK);
}

#[test]
fn equals_opencv_on_edge_cases_and_odd_sizes() {
    let flat = vec![90u8; 128 * 128];
    let flat2 = vec![91u8; 128 * 128];
    assert_close("flat", &flat, &flat2, 128, 128, FARNEBACK);
    let mut line = vec![40u8; 128 * 128];
    let mut line2 = line.clone();
    for y in 0..128 {
        line[y * 128 + 60] = 220;
        line2[y * 128 + 61] = 220;
    }
    assert_close("one-pixel line", &line, &line2, 128, 128, FARNEBACK);
    for (w, h) in [
        (100, 100),
        (97, 97),
        (130, 130),
        (37, 37),
        (16, 16),
        (120, 90),
        (65, 129),
    ] {
        let a = texture(w, h, 7, |x, y| (x, y));
        let b = texture(w, h, 7, |x, y| (x - 0.6, y + 0.4));
        assert_close("odd size", &a, &b, w, h, FARNEBACK);
    }
}

#[test]
fn equals_opencv_with_other_parameters() {
    let n = 128;
    let a = texture(n, n, 3, |x, y| (x, y));
    let b = texture(n, n, 3, |x, y| (x - 1.4, y + 0.8));
    for p in [
        FarnebackParams {
            pyr_scale: 0.6,
            levels: 5,
            ..FARNEBACK
        },
        FarnebackParams {
            winsize: 9,
            iterations: 5,
            ..FARNEBACK
        },
        FarnebackParams {
            poly_n: 7,
            poly_sigma: 1.5,
            ..FARNEBACK
        },
        FarnebackParams {
            levels: 0,
            winsize: 21,
            iterations: 1,
            ..FARNEBACK
        },
    ] {
        assert_close(&format!("{p:?}"), &a, &b, n, n, p);
    }
}

/// Counts the crops a flow prepares: `keep` runs its closure once per crop.
#[derive(Debug, Default)]
struct CountPrepared {
    prepared: Mutex<usize>,
    pairs: Mutex<usize>,
}

/// What this test's flow keeps of a crop.
struct Prepared;

impl Flow for CountPrepared {
    fn compute(&self, a: &FlowFrame, b: &FlowFrame, out: &mut [[f32; 2]]) -> tabr_core::Result<()> {
        for f in [a, b] {
            f.keep(|_| {
                *self.prepared.lock().expect("lock") += 1;
                Ok(Prepared)
            })?;
        }
        *self.pairs.lock().expect("lock") += 1;
        OpenCvFarneback.compute(a, b, out)
    }
}

#[test]
fn the_pipeline_prepares_each_crop_once_for_both_of_its_pairs() {
    use tabr_core::synth::{write_clip, ClipSpec};
    let dir = tempfile::tempdir().expect("tempdir");
    let clip = dir.path().join("face.mkv");
    write_clip(
        &clip,
        &ClipSpec {
            frames: 40,
            ..ClipSpec::default()
        },
    )
    .expect("clip");
    let counter = Arc::new(CountPrepared::default());
    let ex = Extractor::new()
        .expect("extractor")
        .with_flow(counter.clone());
    let f = ex
        .extract_path(&clip, &CancelFlag::new())
        .expect("features");
    let (pairs, prepared) = (
        *counter.pairs.lock().expect("lock"),
        *counter.prepared.lock().expect("lock"),
    );
    assert_eq!(pairs as u64, f.meta.pairs);
    // Without sharing it would be 2 per pair; with it, one per frame plus one more crop of the
    // previous frame at each box change.
    assert_eq!(
        prepared as u64,
        f.meta.pairs + 1 + f.meta.box_changes,
        "{prepared} crops prepared for {pairs} pairs"
    );
}
