//! What several integration tests need: where the shared fixtures and ONNX Runtime are, and
//! ffmpeg for the media they make at test time.

use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `../shared/fixtures/<rel>` (or under `TABR_SHARED`). Absent, a test skips itself, except
/// under `CI=true`, where a missing `../shared` fails it instead of letting it pass unseen.
#[allow(dead_code)] // not every test crate that includes this module reads fixtures
pub fn shared_fixture(rel: &str) -> Option<PathBuf> {
    let root = std::env::var_os("TABR_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared"));
    let p = root.join("fixtures").join(rel);
    if p.is_file() {
        return Some(p);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{} is missing: under CI=true the shared fixtures are required",
        p.display()
    );
    eprintln!("SKIPPED: {} not found (set TABR_SHARED)", p.display());
    None
}

/// The ONNX Runtime library: `ORT_DYLIB_PATH`, or the one `onnxruntime-node` brings, which
/// `make build` installs under packages/tabr-native.
#[allow(dead_code)] // not every test crate that includes this module loads ONNX models
pub fn ort_dylib() -> PathBuf {
    let tabr_native = repo().join("packages/tabr-native");
    let dylib = tabr_core::model::runtime::locate(None, &[&tabr_native]).unwrap_or_default();
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
