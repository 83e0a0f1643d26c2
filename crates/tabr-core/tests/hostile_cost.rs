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
use common::{ffmpeg, repo};

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

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn hostile_media(args: &[&str]) {
    let script = repo().join("tests/media/hostile_media.py");
    let out = Command::new("python3")
        .arg(&script)
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Case {
    what: &'static str,
    file: PathBuf,
    code: ErrorCode,
}

/// The media, made at test time from ffmpeg's test sources.
fn cases(dir: &Path) -> Vec<Case> {
    let p = |n: &str| dir.join(n);
    // One 8192² H.264 frame (19 KB), copied into 16 and into 100 video tracks.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=black:s=8192x8192:r=1",
        "-frames:v",
        "1",
        "-c:v",
        "libx264",
        "-qp",
        "51",
        s(&p("big.mp4")),
    ]);
    for n in [16, 100] {
        let mut args: Vec<String> = Vec::new();
        for _ in 0..n {
            args.extend(["-i".into(), s(&p("big.mp4")).into()]);
        }
        for i in 0..n {
            args.extend(["-map".into(), format!("{i}:v")]);
        }
        args.extend([
            "-c".into(),
            "copy".into(),
            s(&p(&format!("tracks{n}.mkv"))).into(),
        ]);
        ffmpeg(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }
    // A 5-frame MP4 (moov last) and a fragmented one, their tables rewritten to claim
    // 80 million samples.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=s=64x64:r=25",
        "-frames:v",
        "5",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        s(&p("five.mp4")),
    ]);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=s=64x64:r=25",
        "-frames:v",
        "5",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-movflags",
        "frag_keyframe+empty_moov",
        s(&p("frag.mp4")),
    ]);
    hostile_media(&[
        "sample-table",
        s(&p("five.mp4")),
        s(&p("stsz.mp4")),
        "--samples",
        "80000000",
    ]);
    hostile_media(&[
        "trun",
        s(&p("frag.mp4")),
        s(&p("trun.mp4")),
        "--samples",
        "80000000",
    ]);
    // 10,000 frames of 128² at 1000 fps (10 s), as MP4 (the header says so), as live
    // Matroska and as a raw H.264 stream (nothing says so until the frames are counted).
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=128x128:r=1000",
        "-frames:v",
        "10000",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-crf",
        "40",
        s(&p("fast.mp4")),
    ]);
    ffmpeg(&[
        "-i",
        s(&p("fast.mp4")),
        "-c",
        "copy",
        "-live",
        "1",
        "-f",
        "matroska",
        s(&p("fast.mkv")),
    ]);
    ffmpeg(&[
        "-i",
        s(&p("fast.mp4")),
        "-c",
        "copy",
        "-f",
        "h264",
        s(&p("fast.h264")),
    ]);
    vec![
        Case {
            what: "16 tracks of 8192² frames",
            file: p("tracks16.mkv"),
            code: ErrorCode::FrameTooLarge,
        },
        Case {
            what: "100 tracks",
            file: p("tracks100.mkv"),
            code: ErrorCode::InvalidVideo,
        },
        Case {
            what: "stsz claiming 80M samples",
            file: p("stsz.mp4"),
            code: ErrorCode::InvalidVideo,
        },
        Case {
            what: "trun claiming 80M samples",
            file: p("trun.mp4"),
            code: ErrorCode::InvalidVideo,
        },
        Case {
            what: "128² at 1000 fps, MP4",
            file: p("fast.mp4"),
            code: ErrorCode::VideoTooLarge,
        },
        Case {
            what: "128² at 1000 fps, live MKV",
            file: p("fast.mkv"),
            code: ErrorCode::VideoTooLarge,
        },
        Case {
            what: "128² at 1000 fps, raw H.264",
            file: p("fast.h264"),
            code: ErrorCode::VideoTooLarge,
        },
    ]
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
        "{:<32} {grew:>7.1} MB {secs:>6.2} s  features",
        "honest 640×480, 30 frames"
    );
    let mut failures = Vec::new();
    for c in &cases {
        let size = std::fs::metadata(&c.file).expect("made").len();
        assert!(size < 2_000_000, "{}: {size} bytes", c.what);
        let (r, grew, secs) = measured(|| ex.extract_path(&c.file, &CancelFlag::new()));
        let code = r.as_ref().err().map(tabr_core::Error::code);
        println!(
            "{:<32} {grew:>7.1} MB {secs:>6.2} s  {code:?} ({} KB upload)",
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
