//! What a hostile upload costs: the core's extraction (its bounds on opening and on work)
//! against OpenCV's `VideoCapture` reading the same file (libavformat as it opens any file,
//! which is what the core used before), each in a fresh child process, in the same run. Peak
//! RSS over the child's idle size after start-up, and wall time; medians of 3.
//!
//! The claims are scaled down from the tests' (8 tracks, 8 million samples) so that the
//! unbounded side finishes in seconds; the tests hold the full-size ones to ≤ 64 MB.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use opencv::core::Mat;
use opencv::videoio::{self, VideoCapture, VideoCaptureTrait, VideoCaptureTraitConst};
use tabr_core::{CancelFlag, Extractor};

use crate::median;

const RUNS: usize = 3;

fn status_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Child mode: `ours` or `opencv` on `clip`; prints "growth_mb seconds outcome".
pub fn child(which: &str, clip: &Path) {
    let ex = (which == "ours").then(|| Extractor::new().expect("extractor"));
    let before = status_mb("VmRSS:");
    let t = Instant::now();
    let outcome = match &ex {
        Some(ex) => match ex.extract_path(clip, &CancelFlag::new()) {
            Ok(_) => "features".to_string(),
            Err(e) => e.code().as_str().to_string(),
        },
        None => {
            let mut frames = 0u64;
            if let Ok(mut cap) =
                VideoCapture::from_file(clip.to_str().unwrap_or(""), videoio::CAP_FFMPEG)
            {
                let mut m = Mat::default();
                while cap.is_opened().unwrap_or(false) && cap.read(&mut m).unwrap_or(false) {
                    frames += 1;
                }
            }
            format!("{frames}-frames")
        }
    };
    let secs = t.elapsed().as_secs_f64();
    println!("{} {secs} {outcome}", status_mb("VmHWM:") - before);
}

fn run(which: &str, clip: &Path) -> (f64, f64, String) {
    let exe = std::env::current_exe().expect("exe");
    let mut growth = Vec::new();
    let mut secs = Vec::new();
    let mut outcome = String::new();
    for _ in 0..RUNS {
        let out = Command::new(&exe)
            .args(["--hostile-child", which])
            .arg(clip)
            .output()
            .expect("child runs");
        let text = String::from_utf8_lossy(&out.stdout);
        let f: Vec<&str> = text.split_whitespace().collect();
        growth.push(f.first().and_then(|x| x.parse().ok()).unwrap_or(f64::NAN));
        secs.push(f.get(1).and_then(|x| x.parse().ok()).unwrap_or(f64::NAN));
        outcome = f.get(2).map_or("crashed", |s| s).to_string();
    }
    (median(growth), median(secs), outcome)
}

/// The media, made in `dir` by `hostile_media.py cost-set` (the tests' set, scaled down); `None`
/// when ffmpeg (libx264) or python3 is missing.
fn media(dir: &Path, honest: &Path) -> Option<Vec<(String, PathBuf)>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/media/hostile_media.py");
    let out = Command::new("python3")
        .arg(&script)
        .args([
            "cost-set",
            dir.to_str()?,
            "--tracks",
            "8",
            "--samples",
            "8000000",
            "--fast",
            "mp4",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).ok()?;
    let mut cases = vec![("honest: d18 (control)".to_string(), honest.to_path_buf())];
    for c in &list {
        cases.push((
            c["what"].as_str()?.to_string(),
            PathBuf::from(c["file"].as_str()?),
        ));
    }
    Some(cases)
}

/// Prints the table.
pub fn hostile_bench(honest: &Path) {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(cases) = media(dir.path(), honest) else {
        eprintln!("SKIPPED the hostile-upload table: ffmpeg (libx264) or python3 is missing");
        return;
    };
    println!("\n## What a hostile upload costs: ours vs OpenCV's reader on the same file (fresh process each, {RUNS} runs, medians)\n");
    println!("| upload | KB | ours: outcome | ours: peak +MB | ours: s | OpenCV's reader: outcome | OpenCV: peak +MB | OpenCV: s | peak ratio | time ratio |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (name, clip) in &cases {
        let kb = std::fs::metadata(clip).map_or(0, |m| m.len() / 1024);
        let (og, os, oo) = run("ours", clip);
        let (cg, cs, co) = run("opencv", clip);
        println!(
            "| {name} | {kb} | {oo} | {og:.1} | {os:.3} | {co} | {cg:.1} | {cs:.3} | {:.1}× | {:.1}× |",
            cg / og.max(1.0),
            cs / os.max(1e-3)
        );
    }
    println!("\n(peak +MB: the process's peak RSS over its size before the call; a ratio over a growth under 1 MB uses 1 MB.)");
}
