//! What several integration tests need: where the shared fixtures and ONNX Runtime are, and
//! ffmpeg for the media they make at test time.

use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `../shared` (or `TABR_SHARED`): the shared fixtures and reference values are inputs of
/// these tests, so a checkout without them fails the tests that need them, in every mode,
/// rather than letting them pass unseen.
#[allow(dead_code)] // not every test crate that includes this module reads fixtures
pub fn shared_root() -> PathBuf {
    let root = std::env::var_os("TABR_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared"));
    assert!(
        root.join("fixtures").is_dir(),
        "{} has no fixtures/: put ../shared beside the checkout or set TABR_SHARED",
        root.display()
    );
    root
}

/// `../shared/fixtures/<rel>`; a missing file fails the test ([`shared_root`]).
#[allow(dead_code)] // not every test crate that includes this module reads fixtures
pub fn shared_fixture(rel: &str) -> PathBuf {
    let p = shared_root().join("fixtures").join(rel);
    assert!(
        p.is_file(),
        "{} is missing from the shared fixtures",
        p.display()
    );
    p
}

/// The ONNX Runtime library: `ORT_DYLIB_PATH`, or the one `onnxruntime-node` brings, which
/// `make build` installs under packages/tabr-native.
#[allow(dead_code)] // not every test crate that includes this module loads ONNX models
pub fn ort_dylib() -> PathBuf {
    let tabr_native = repo().join("packages/tabr-native");
    let dylib = ort_node_locate::locate(None, &[&tabr_native]).unwrap_or_default();
    assert!(
        dylib.is_file(),
        "ONNX Runtime not found ({}): run `make build` (onnxruntime-node) or set ORT_DYLIB_PATH",
        dylib.display()
    );
    dylib
}

/// Runs ffmpeg (apt package `ffmpeg`) quietly with `args`; a failure fails the test with its
/// message.
#[allow(dead_code)] // not every test crate that includes this module makes media
pub fn ffmpeg(args: &[&str]) {
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg runs (apt package ffmpeg)");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes the 2×2 display matrix `[a b; c d]` (whole numbers; translation 0) into the first
/// `tkhd` box of an MP4 that ffmpeg wrote (version 0: the matrix is 36 bytes, big-endian, 48
/// bytes from the box's start). Debian 12's ffmpeg has no `-display_hflip`, so the mirrored
/// matrices a front camera writes are made this way; its `rotate=` tag writes only turns.
#[allow(dead_code)] // not every test crate that includes this module makes rotated media
pub fn set_display_matrix(mp4: &Path, [a, b, c, d]: [i32; 4]) {
    let mut bytes = std::fs::read(mp4).expect("the clip reads");
    let at = bytes
        .windows(4)
        .position(|w| w == b"tkhd")
        .expect("an MP4 with a track header")
        - 4;
    assert_eq!(bytes[at + 8], 0, "a version-0 track header");
    let m = [a << 16, b << 16, 0, c << 16, d << 16, 0, 0, 0, 1 << 30];
    for (i, v) in m.iter().enumerate() {
        bytes[at + 48 + 4 * i..][..4].copy_from_slice(&v.to_be_bytes());
    }
    std::fs::write(mp4, bytes).expect("the clip writes");
}

/// Every frame of `clip` as ffmpeg shows it (its autorotate applied; bicubic swscale to
/// BGR24, as OpenCV's reader converts), turned to gray by OpenCV's BGR→GRAY: the frames the
/// decoder must give (spec §1). Also the displayed width and height.
#[allow(dead_code)]
pub fn ffmpeg_gray_frames(clip: &Path) -> (Vec<Vec<u8>>, usize, usize) {
    use opencv::core::{Mat, MatTraitConstManual, MatTraitManual, CV_8UC3};
    use opencv::imgproc;
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(clip)
        .args([
            "-map",
            "0:v:0",
            "-fps_mode",
            "passthrough",
            "-sws_flags",
            "bicubic",
        ])
        .args(["-f", "rawvideo", "-pix_fmt", "bgr24", "-"])
        .output()
        .expect("ffmpeg runs");
    // The displayed size from ffprobe (rotation applied where it swaps the sides).
    let info = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height",
        ])
        .args([
            "-show_entries",
            "stream_side_data=rotation",
            "-of",
            "default=nw=1",
        ])
        .arg(clip)
        .output()
        .expect("ffprobe runs");
    let text = String::from_utf8_lossy(&info.stdout);
    let field = |k: &str| -> i64 {
        text.lines()
            .find_map(|l| l.strip_prefix(k)?.trim().parse().ok())
            .unwrap_or(0)
    };
    let (mut w, mut h) = (field("width=") as usize, field("height=") as usize);
    if field("rotation=").abs() == 90 {
        (w, h) = (h, w);
    }
    assert!(
        w * h > 0 && out.stdout.len().is_multiple_of(w * h * 3),
        "ffmpeg's output is whole {w}×{h} frames"
    );
    let frames = out
        .stdout
        .chunks_exact(w * h * 3)
        .map(|bgr| {
            let mut src = Mat::new_rows_cols_with_default(h as i32, w as i32, CV_8UC3, 0.0.into())
                .expect("a BGR frame");
            src.data_bytes_mut().expect("bytes").copy_from_slice(bgr);
            let mut gray = Mat::default();
            imgproc::cvt_color_def(&src, &mut gray, imgproc::COLOR_BGR2GRAY).expect("gray");
            gray.data_bytes().expect("bytes").to_vec()
        })
        .collect();
    (frames, w, h)
}

/// An extractor for `spec` with the default parameters, ONNX Runtime from [`ort_dylib`].
#[allow(dead_code)]
pub fn extractor(spec: tabr_core::Spec) -> tabr_core::Extractor {
    let dylib = ort_dylib();
    let assets = tabr_core::FaceAssets {
        cascade: None,
        ort_dylib: Some(&dylib),
        ..Default::default()
    };
    tabr_core::Extractor::for_spec(spec, tabr_core::SpecParams::default(), assets)
        .expect("the extractor builds")
}
