//! Decoding to gray: the core's FFmpeg decoder (its own I/O, allow-listed demuxers, per-frame
//! checks) against OpenCV's `VideoCapture` (what the core used before), on the same clips in
//! the same run. Both give the same bytes (crates/tabr-core/tests/decode.rs); this says what
//! the safety costs or saves in time.

use std::path::{Path, PathBuf};
use std::time::Instant;

use opencv::core::{Mat, MatTraitConst};
use opencv::imgproc;
use opencv::videoio::{self, VideoCapture, VideoCaptureTrait, VideoCaptureTraitConst};
use tabr_core::video::Decoder;
use tabr_core::{SpecParams, VideoSource};

use crate::{median, RUNS};

fn ours(clip: &Path, bytes: Option<&[u8]>) -> u64 {
    let src = bytes.map_or(VideoSource::Path(clip), VideoSource::Bytes);
    let mut d = Decoder::open(src, &SpecParams::default()).expect("open");
    let mut gray = Mat::default();
    let mut n = 0;
    while d.next_gray(&mut gray).expect("decode") {
        n += 1;
    }
    n
}

fn opencv(clip: &Path) -> u64 {
    let mut cap =
        VideoCapture::from_file(clip.to_str().expect("utf-8"), videoio::CAP_FFMPEG).expect("open");
    assert!(cap.is_opened().unwrap_or(false));
    let _ = cap.set(videoio::CAP_PROP_ORIENTATION_AUTO, 1.0);
    let (mut bgr, mut gray) = (Mat::default(), Mat::default());
    let mut n = 0;
    while cap.read(&mut bgr).unwrap_or(false) && !bgr.empty() {
        imgproc::cvt_color_def(&bgr, &mut gray, imgproc::COLOR_BGR2GRAY).expect("gray");
        n += 1;
    }
    n
}

fn time_ms(mut f: impl FnMut() -> u64) -> (f64, u64) {
    let n = f();
    let runs: Vec<f64> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    (median(runs), n)
}

/// Prints the table.
pub fn decode_bench(clips: &[(String, PathBuf)]) {
    println!("\n## Decoding to gray: FFmpeg libraries (ours) vs OpenCV's VideoCapture ({RUNS} runs, medians)\n");
    println!(
        "| clip | frames | ours, path ms | ours, bytes ms | OpenCV ms | OpenCV / ours (path) |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, clip) in clips {
        let bytes = std::fs::read(clip).expect("clip");
        let (path_ms, n) = time_ms(|| ours(clip, None));
        let (bytes_ms, _) = time_ms(|| ours(clip, Some(&bytes)));
        let (cv_ms, n_cv) = time_ms(|| opencv(clip));
        assert_eq!(n, n_cv, "{name}: both read every frame");
        println!(
            "| {name} | {n} | {path_ms:.1} | {bytes_ms:.1} | {cv_ms:.1} | {:.2} |",
            cv_ms / path_ms
        );
    }
}
