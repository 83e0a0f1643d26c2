//! The decoder against two outside references, on every fixture in `../shared/fixtures`:
//! - spec §1's read rule: the decoded frame count equals `ffprobe -count_frames` wherever
//!   ffprobe opens the file, and a file ffprobe cannot open is `invalid_video` here too;
//! - "converted exactly as OpenCV's FFmpeg backend does": every frame OpenCV's `VideoCapture`
//!   gives (it stops at the first packet it cannot use) is byte-for-byte our gray frame. Not
//!   for files with a ±90° or mirrored display matrix: OpenCV 4.6's reader turns ±90° the wrong
//!   way (a portrait phone clip comes out upside down) and reads a mirror as a half turn, so
//!   there OpenCV's frames are read as decoded and turned the way players turn them (spec §1;
//!   `tests/orientation.rs` holds that turn to ffmpeg's autorotate);
//! - every frame of a cut file: files cut at 10–90 % of their bytes (MP4 with the index first
//!   and last, Matroska, WebM) give `ffprobe -count_frames`'s count: the frames still inside
//!   the decoder when reading fails are drained.
//!
//! A missing `../shared` fails these tests (it is their input).

use std::path::{Path, PathBuf};
use std::process::Command;

use opencv::core::{Mat, MatTraitConst, MatTraitConstManual};
use opencv::imgproc;
use opencv::videoio::{self, VideoCapture, VideoCaptureTrait, VideoCaptureTraitConst};
use tabr_core::video::{count_frames, Decoder, Orientation};
use tabr_core::{ErrorCode, SpecParams, VideoSource};

mod common;
use common::ffmpeg;

const MEDIA: [&str; 5] = ["mp4", "mkv", "webm", "mov", "avi"];

fn fixtures() -> Vec<PathBuf> {
    let root = common::shared_root().join("fixtures");
    let mut files = Vec::new();
    for cat in std::fs::read_dir(&root).expect("fixtures").flatten() {
        if !cat.path().is_dir() {
            continue;
        }
        for f in std::fs::read_dir(cat.path()).expect("category").flatten() {
            let p = f.path();
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
            if MEDIA.contains(&ext) {
                files.push(p);
            }
        }
    }
    files.sort();
    assert!(
        files.len() >= 20,
        "expected the shared fixtures, found {}",
        files.len()
    );
    files
}

/// `ffprobe -count_frames` of the first video stream; None when ffprobe cannot read one.
fn ffprobe_count(p: &Path) -> Option<u64> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_frames"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(p)
        .output()
        .expect("ffprobe runs (apt package ffmpeg)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .and_then(|l| l.trim().trim_end_matches(',').parse().ok())
}

#[test]
fn frame_counts_equal_ffprobe_on_every_fixture() {
    let files = fixtures();
    let mut bad = Vec::new();
    for p in &files {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        let ours = count_frames(VideoSource::Path(p));
        match (ffprobe_count(p), ours) {
            (Some(want), Ok(got)) if want == got => println!("ok    {name}: {got} frames"),
            (None | Some(0), Err(e)) if e.code() == ErrorCode::InvalidVideo => {
                println!("ok    {name}: does not open ({})", e.message())
            }
            (Some(0), Ok(0)) => println!("ok    {name}: no frames"),
            (want, got) => bad.push(format!("{name}: ffprobe {want:?}, ours {got:?}")),
        }
    }
    assert!(bad.is_empty(), "frame counts differ:\n{}", bad.join("\n"));
}

#[test]
fn gray_frames_equal_opencv_reader_frames() {
    let files = fixtures();
    let params = SpecParams {
        max_seconds: 600.0,
        max_pixels: tabr_core::spec::MAX_PIXELS,
        ..SpecParams::default()
    };
    let mut compared = 0;
    let mut bad = Vec::new();
    for p in &files {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        let Ok(mut cap) = VideoCapture::from_file(p.to_str().expect("utf-8"), videoio::CAP_FFMPEG)
        else {
            continue;
        };
        if !cap.is_opened().unwrap_or(false) {
            continue;
        }
        let _ = cap.set(videoio::CAP_PROP_ORIENTATION_AUTO, 1.0);
        let Ok(mut ours) = Decoder::open(VideoSource::Path(p), &params) else {
            bad.push(format!("{name}: OpenCV opens it, we do not"));
            continue;
        };
        // OpenCV 4.6 turns ±90° the wrong way and reads mirrors as half turns: for a file
        // with a display matrix its frames are taken as decoded and turned as ffmpeg's
        // autorotate turns them (that turn is held to ffmpeg's own in tests/orientation.rs).
        let orientation = ours.orientation();
        if orientation != Orientation::Upright {
            let _ = cap.set(videoio::CAP_PROP_ORIENTATION_AUTO, 0.0);
        }
        let mut turned = Mat::default();
        let mut scratch = Mat::default();
        let (mut bgr, mut want, mut got) = (Mat::default(), Mat::default(), Mat::default());
        let mut n = 0;
        while cap.read(&mut bgr).unwrap_or(false) && !bgr.empty() {
            imgproc::cvt_color_def(&bgr, &mut want, imgproc::COLOR_BGR2GRAY).expect("gray");
            if orientation != Orientation::Upright {
                orientation
                    .apply(&want, &mut turned, &mut scratch)
                    .expect("turned");
                std::mem::swap(&mut want, &mut turned);
            }
            match ours.next_gray(&mut got) {
                Ok(true) => {}
                other => {
                    bad.push(format!(
                        "{name}: frame {n}: OpenCV has one, we got {other:?}"
                    ));
                    break;
                }
            }
            let same = want.size().ok() == got.size().ok()
                && want.data_bytes().ok() == got.data_bytes().ok();
            if !same {
                bad.push(format!("{name}: frame {n} differs from OpenCV's"));
                break;
            }
            n += 1;
        }
        println!("{name}: {n} frames identical to OpenCV's ({orientation:?})");
        compared += n;
    }
    assert!(compared > 1000, "too few frames compared: {compared}");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Spec §1: frames still inside the decoder when reading fails are frames of the video. Clips
/// made here from a shared face clip are cut at 10, 25, 50, 75 and 90 % of their bytes, in
/// four layouts; each cut file decodes to `ffprobe -count_frames`'s count, or, where ffprobe
/// cannot open it either (an MP4 whose index was at the end), to `invalid_video`.
#[test]
fn cut_files_decode_every_frame_ffprobe_decodes() {
    let files = fixtures();
    let d18 = files
        .iter()
        .find(|p| p.ends_with("face_lp_d18_man_neutral_480_liveportrait.mp4"))
        .expect("the d18 fixture");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let src = d18.to_str().expect("UTF-8");
    let layouts: [(&str, &[&str]); 4] = [
        // x264's defaults (B-frames, so the decoder holds frames back to reorder them).
        (
            "index_first.mp4",
            &["-c:v", "libx264", "-movflags", "+faststart"],
        ),
        ("index_last.mp4", &["-c:v", "libx264"]),
        ("cut.mkv", &["-c:v", "libx264"]),
        (
            "cut.webm",
            &[
                "-c:v",
                "libvpx",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
                "-b:v",
                "1M",
            ],
        ),
    ];
    let mut bad = Vec::new();
    let mut drained = 0;
    for (name, codec) in layouts {
        let whole = dir.path().join(name);
        let mut args = vec!["-i", src, "-t", "3", "-an"];
        args.extend_from_slice(codec);
        args.push(whole.to_str().expect("UTF-8"));
        ffmpeg(&args);
        let bytes = std::fs::read(&whole).expect("the clip reads");
        for pct in [10, 25, 50, 75, 90] {
            let cut = dir.path().join(format!("{pct}_{name}"));
            std::fs::write(&cut, &bytes[..bytes.len() * pct / 100]).expect("writes");
            let ours = count_frames(VideoSource::Path(&cut));
            let want = ffprobe_count(&cut);
            let line = format!("{pct} % of {name}: ffprobe {want:?}, ours {ours:?}");
            match (want, &ours) {
                (Some(w), Ok(g)) if w == *g => drained += 1,
                // No frame at all: the extractor's `invalid_video` (spec §1).
                (None | Some(0), Err(e)) if e.code() == ErrorCode::InvalidVideo => {}
                (None | Some(0), Ok(0)) => {}
                _ => bad.push(line.clone()),
            }
            println!("{line}");
        }
    }
    assert!(drained >= 12, "too few cut files decoded: {drained}");
    assert!(bad.is_empty(), "frame counts differ:\n{}", bad.join("\n"));
}

/// The probe decodes under the request's own `max_pixels`, so a frame over it cannot be decoded
/// there, and a decoder that refuses clears the size the probe writes back. Every fixture that
/// opens is still refused as `frame_too_large` from its header when its frames are one pixel over
/// the limit, and opens when they are exactly at it (these were `invalid_video` while the size
/// came from the probe alone).
#[test]
fn frames_over_the_limit_are_frame_too_large_from_the_header() {
    let files = fixtures();
    let mut checked = 0;
    let mut bad = Vec::new();
    for p in &files {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        let roomy = SpecParams {
            max_seconds: 600.0,
            ..SpecParams::default()
        };
        let Ok(d) = Decoder::open(VideoSource::Path(p), &roomy) else {
            continue;
        };
        let (w, h) = d.declared_size();
        drop(d);
        let px = u64::from(w) * u64::from(h);
        let at = |max_pixels| SpecParams {
            max_pixels,
            ..roomy.clone()
        };
        match Decoder::open(VideoSource::Path(p), &at(px - 1)) {
            Err(e) if e.code() == ErrorCode::FrameTooLarge => {}
            other => bad.push(format!(
                "{name} ({w}×{h}) at {} px: {:?}",
                px - 1,
                other.err()
            )),
        }
        if let Err(e) = Decoder::open(VideoSource::Path(p), &at(px)) {
            bad.push(format!("{name} ({w}×{h}) at {px} px: {e}"));
        }
        checked += 1;
    }
    println!("{checked} fixtures checked");
    assert!(checked >= 10, "{checked} fixtures open");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
