//! Farnebäck per pair: OpenCV's call against ours on the real crop pairs of a clip, one
//! thread, in the same run. Ours is timed two ways: over the sequence as the extractor runs
//! it (each frame's pyramid computed once and shared by its two pairs) and cold (both
//! pyramids computed for every pair, the cost of an isolated pair).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use opencv::core::Mat;
use tabr_core::extract::{FaceMethod, Geometry, HaarBox};
use tabr_core::flow::{Flow, FlowFrame, FlowMethod};
use tabr_core::video::Decoder;
use tabr_core::{CancelFlag, Extractor, SpecParams};

use crate::{median, RUNS};

/// The extraction's crops of `clip` as the pipeline pairs them: `(previous, current)` per
/// pair, the previous crop shared with the pair before unless the face box changed.
pub(crate) type Pairs = Vec<(Arc<Mat>, Arc<Mat>)>;

/// Decodes `clip` on this thread and cuts the extractor's own crops (boxes from its meta).
pub(crate) fn crop_sequence(clip: &Path) -> Pairs {
    crop_sequence_timed(clip).0
}

/// [`crop_sequence`], and the seconds the decoding to gray took (alone, on this thread).
pub(crate) fn crop_sequence_timed(clip: &Path) -> (Pairs, f64) {
    let ex = Extractor::new().expect("extractor");
    let f = ex
        .extract_path(clip, &CancelFlag::new())
        .expect("clip has features");
    let mut dec =
        Decoder::open(tabr_core::VideoSource::Path(clip), &SpecParams::default()).expect("open");
    let mut frames = Vec::new();
    let mut gray = Mat::default();
    let t = Instant::now();
    while dec.next_gray(&mut gray).expect("decode") {
        frames.push(gray.clone());
    }
    let decode_s = t.elapsed().as_secs_f64();
    let n = SpecParams::default().roi_size;
    let haar = HaarBox::new(tabr_core::face::FaceDetector::builtin().expect("cascade"));
    let crop = |m: &Mat, b| Arc::new(haar.crop(m, &Geometry::Box(b), n).expect("crop"));
    let first = f.meta.boxes[0].frame;
    let mut pairs = Vec::new();
    let mut prev: Option<(Arc<Mat>, tabr_core::face::FaceBox)> = None;
    for i in first + 1..frames.len() as u64 {
        let b = f
            .meta
            .boxes
            .iter()
            .rev()
            .find(|b| b.frame <= i)
            .expect("box")
            .face;
        let cur = crop(&frames[i as usize], b);
        let before = match &prev {
            Some((p, pb)) if *pb == b => p.clone(),
            _ => crop(&frames[i as usize - 1], b),
        };
        pairs.push((before, cur.clone()));
        prev = Some((cur, b));
    }
    (pairs, decode_s)
}

/// Seconds to run `flow` over every pair in order on this thread, each frame's per-crop work
/// shared by its two pairs as in the extractor.
pub(crate) fn run_sequence(pairs: &Pairs, flow: &dyn Flow) -> f64 {
    run_sequence_with(pairs, flow, &mut |_| {})
}

/// [`run_sequence`], handing each pair's flow to `on_pair`.
fn run_sequence_with(pairs: &Pairs, flow: &dyn Flow, on_pair: &mut dyn FnMut(&[[f32; 2]])) -> f64 {
    let mut out = vec![[0.0f32; 2]; 128 * 128];
    let t = Instant::now();
    let mut last: Option<(Arc<Mat>, Arc<FlowFrame>)> = None;
    for (a, b) in pairs {
        let fa = match &last {
            Some((m, f)) if Arc::ptr_eq(m, a) => f.clone(),
            _ => Arc::new(FlowFrame::new(a.as_ref().clone()).expect("a crop")),
        };
        let fb = Arc::new(FlowFrame::new(b.as_ref().clone()).expect("a crop"));
        out.resize(a.rows() as usize * a.cols() as usize, [0.0; 2]);
        flow.compute(&fa, &fb, &mut out).expect("flow");
        on_pair(&out);
        last = Some((b.clone(), fb));
    }
    t.elapsed().as_secs_f64()
}

/// Seconds for every pair computed cold (no per-crop work shared).
fn run_cold(pairs: &Pairs, flow: &dyn Flow) -> f64 {
    let mut out = vec![[0.0f32; 2]; 128 * 128];
    let t = Instant::now();
    for (a, b) in pairs {
        let (fa, fb) = (
            FlowFrame::new(a.as_ref().clone()).expect("a crop"),
            FlowFrame::new(b.as_ref().clone()).expect("a crop"),
        );
        flow.compute(&fa, &fb, &mut out).expect("flow");
    }
    t.elapsed().as_secs_f64()
}

use opencv::core::{MatTraitConst, MatTraitConstManual};
use tabr_core::flow::Farneback;
use tabr_core::spec::FARNEBACK;

/// The table: ms per 128² pair, one thread, medians of [`RUNS`] passes over the clip's pairs.
pub(crate) fn flow_bench(name: &str, clip: &Path) {
    let _ = opencv::core::set_num_threads(1);
    let pairs = crop_sequence(clip);
    let (ours, cv) = (FlowMethod::Rust.build(), FlowMethod::OpenCv.build());
    let n = pairs.len() as f64;
    // Warm both (thread-local buffers, OpenCV's lazy init).
    run_sequence(&pairs, ours.as_ref());
    run_sequence(&pairs, cv.as_ref());
    // Rounds of the three, alternated so the machine's drift hits all alike; each ratio is
    // taken within its round, then the medians.
    let (mut cv_ms, mut seq_ms, mut cold_ms, mut seq_x, mut cold_x) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let c = run_sequence(&pairs, cv.as_ref()) * 1e3 / n;
        let s = run_sequence(&pairs, ours.as_ref()) * 1e3 / n;
        let k = run_cold(&pairs, ours.as_ref()) * 1e3 / n;
        cv_ms.push(c);
        seq_ms.push(s);
        cold_ms.push(k);
        seq_x.push(c / s);
        cold_x.push(c / k);
    }
    let (opencv_ms, seq_ms, cold_ms) = (median(cv_ms), median(seq_ms), median(cold_ms));
    let (seq_x, cold_x) = (median(seq_x), median(cold_x));
    println!("\n## Farnebäck per 128² pair ({name}, {} real crop pairs, one thread, {RUNS} runs, medians)\n", pairs.len());
    println!(
        "| OpenCV ms | ours ms (sequence) | OpenCV / ours | ours ms (cold pair) | OpenCV / ours |"
    );
    println!("|---|---|---|---|---|");
    println!("| {opencv_ms:.3} | {seq_ms:.3} | {seq_x:.2}× | {cold_ms:.3} | {cold_x:.2}× |");
    // Where ours spends it: the per-frame pyramid and the per-pair solve, apart.
    let fb = Farneback::new(FARNEBACK).expect("spec parameters");
    let crops: Vec<&Mat> = pairs.iter().map(|(_, b)| b.as_ref()).collect();
    let (mut pyr_ms, mut solve_ms) = (Vec::new(), Vec::new());
    let mut out = vec![[0.0f32; 2]; 128 * 128];
    for _ in 0..RUNS {
        let t = Instant::now();
        let pyramids: Vec<_> = crops
            .iter()
            .map(|m| fb.pyramid(m.data_bytes().expect("crop"), 128, 128))
            .collect();
        pyr_ms.push(t.elapsed().as_secs_f64() * 1e3 / crops.len() as f64);
        let t = Instant::now();
        for w in pyramids.windows(2) {
            fb.flow(&w[0], &w[1], &mut out).expect("flow");
        }
        solve_ms.push(t.elapsed().as_secs_f64() * 1e3 / (crops.len() - 1) as f64);
    }
    println!(
        "\nours, apart: pyramid {:.3} ms per frame, solve {:.3} ms per pair",
        median(pyr_ms),
        median(solve_ms)
    );
}

/// Passes over the clip's pairs a profiling aid times (it prints their median).
const PASSES: usize = 21;

/// A profiling aid's line: the fastest pass (the steadiest figure on a noisy machine when two
/// builds are compared) and the median.
fn report(what: &str, per: &str, ms: Vec<f64>) {
    let min = ms.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "{what} {min:.3} ms per {per} fastest, {:.3} median of {PASSES} passes",
        median(ms)
    );
}

/// Profiling aid: only our per-pair solve, over and over (`tabr-bench --flow-solve`).
pub(crate) fn solve_only(clip: &Path) {
    let pairs = crop_sequence(clip);
    let fb = Farneback::new(FARNEBACK).expect("spec parameters");
    let pyramids: Vec<_> = pairs
        .iter()
        .map(|(_, b)| fb.pyramid(b.data_bytes().expect("crop"), 128, 128))
        .collect();
    let mut out = vec![[0.0f32; 2]; 128 * 128];
    let ms = (0..PASSES).map(|_| {
        let t = Instant::now();
        for w in pyramids.windows(2) {
            fb.flow(&w[0], &w[1], &mut out).expect("flow");
        }
        t.elapsed().as_secs_f64() * 1e3 / (pyramids.len() - 1) as f64
    });
    report("solve", "pair", ms.collect());
}

/// Profiling aid: only our per-frame pyramid, over and over (`tabr-bench --flow-pyramid`).
pub(crate) fn pyramid_only(clip: &Path) {
    let pairs = crop_sequence(clip);
    let fb = Farneback::new(FARNEBACK).expect("spec parameters");
    let mut p = tabr_core::flow::Pyramid::default();
    let ms = (0..PASSES).map(|_| {
        let t = Instant::now();
        for (_, b) in &pairs {
            fb.pyramid_into(b.data_bytes().expect("crop"), 128, 128, &mut p);
        }
        t.elapsed().as_secs_f64() * 1e3 / pairs.len() as f64
    });
    report("pyramid", "frame", ms.collect());
}

/// Profiling aid: only our flow over the clip's pairs in order, as the extractor runs it
/// (`tabr-bench --flow-sequence`).
pub(crate) fn sequence_only(clip: &Path) {
    let pairs = crop_sequence(clip);
    let ours = FlowMethod::Rust.build();
    run_sequence(&pairs, ours.as_ref());
    let ms = (0..PASSES).map(|_| run_sequence(&pairs, ours.as_ref()) * 1e3 / pairs.len() as f64);
    report("sequence", "pair", ms.collect());
}

/// Profiling aid: one digest of our flow's bits over the clip's pairs (`tabr-bench
/// --flow-digest`), to show that a change meant to be faster gives the same numbers.
pub(crate) fn digest(clip: &Path) {
    use std::hash::Hasher;
    let pairs = crop_sequence(clip);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    run_sequence_with(&pairs, FlowMethod::Rust.build().as_ref(), &mut |out| {
        for uv in out.iter().flatten() {
            h.write_u32(uv.to_bits());
        }
    });
    println!("flow digest {:016x} over {} pairs", h.finish(), pairs.len());
}
