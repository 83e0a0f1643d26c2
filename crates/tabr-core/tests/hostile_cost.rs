//! Small uploads that asked for gigabytes or half a minute (issue "Hardening, round two"), each
//! measured as an attacker would: the process's peak RSS over the one call, and its time.
//!
//! This file holds one test on purpose: the peak resident size is a property of the whole
//! process (`VmHWM`, reset through `/proc/self/clear_refs`), so no other test may run beside it.
//! Cargo runs test binaries one after another, so nothing else shares the process.
//!
//! Before the fixes: 16 tracks of one 8192² frame, 2.6 GB and 11 s; an MP4 claiming 80 million
//! one-byte samples, 1.9 GB and 5 s; the same through a fragment's `trun`, 5.1 GB and 21 s;
//! 10,000 frames of 128² at 1000 fps, decoded to the end (11 s here).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use tabr_core::synth::{write_clip, ClipSpec};
use tabr_core::{CancelFlag, ErrorCode, Extractor};

mod common;
use common::repo;

/// The bound the issue sets on what opening or refusing any upload may add to the process.
const MAX_GROWTH_MB: f64 = 64.0;

/// A bound on time loose enough for a noisy 2-core machine; `make bench` has the figures.
const MAX_SECONDS: f64 = 5.0;

fn status_kb(field: &str) -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

/// Runs `f` and returns its result, the growth of the peak RSS over the RSS before it (MB), and
/// its wall time (s).
fn measured<T>(f: impl FnOnce() -> T) -> (T, f64, f64) {
    std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak RSS (Linux ≥ 4.0)");
    let before = status_kb("VmRSS:");
    let t = Instant::now();
    let out = f();
    let secs = t.elapsed().as_secs_f64();
    let peak = status_kb("VmHWM:");
    (out, (peak - before) / 1024.0, secs)
}

struct Case {
    what: String,
    file: PathBuf,
    code: ErrorCode,
}

/// The media, made at test time from ffmpeg's test sources by `hostile_media.py cost-set`
/// (the same set the service's test and `make bench --hostile` use).
fn cases(dir: &Path) -> Vec<Case> {
    let script = repo().join("tests/media/hostile_media.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg("cost-set")
        .arg(dir)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "hostile_media.py cost-set: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("its JSON list");
    list.iter()
        .map(|c| {
            let code = c["code"].as_str().expect("code");
            Case {
                what: c["what"].as_str().expect("what").to_string(),
                file: PathBuf::from(c["file"].as_str().expect("file")),
                code: *ErrorCode::ALL
                    .iter()
                    .find(|k| k.as_str() == code)
                    .unwrap_or_else(|| panic!("{code} is a code of the core")),
            }
        })
        .collect()
}

#[test]
fn no_small_upload_costs_gigabytes_or_seconds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = cases(dir.path());
    let ex = Extractor::new().expect("extractor");
    // A warm-up extraction: the libraries, the cascade and the thread pool are in memory, as
    // in a service that has answered once.
    let honest = dir.path().join("honest.mkv");
    write_clip(
        &honest,
        &ClipSpec {
            frames: 30,
            ..ClipSpec::default()
        },
    )
    .expect("clip");
    let (ok, grew, secs) = measured(|| ex.extract_path(&honest, &CancelFlag::new()));
    ok.expect("the honest clip gives features");
    println!(
        "{:<48} {grew:>7.1} MB {secs:>6.2} s  features",
        "honest 640×480, 30 frames"
    );
    let mut failures = Vec::new();
    for c in &cases {
        let size = std::fs::metadata(&c.file).expect("made").len();
        assert!(size < 2_000_000, "{}: {size} bytes", c.what);
        let (r, grew, secs) = measured(|| ex.extract_path(&c.file, &CancelFlag::new()));
        let code = r.as_ref().err().map(tabr_core::Error::code);
        println!(
            "{:<48} {grew:>7.1} MB {secs:>6.2} s  {code:?} ({} KB upload)",
            c.what,
            size / 1024
        );
        if code != Some(c.code) {
            failures.push(format!("{}: {r:?}, expected {:?}", c.what, c.code));
        }
        if grew > MAX_GROWTH_MB {
            failures.push(format!("{}: the peak RSS grew {grew:.0} MB", c.what));
        }
        if secs > MAX_SECONDS {
            failures.push(format!("{}: {secs:.1} s", c.what));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
