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

fn ffmpeg(args: &[&str]) -> bool {
    Command::new("ffmpeg")
        .args(["-y", "-loglevel", "error"])
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

fn hostile_media(args: &[&str]) -> bool {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/media/hostile_media.py");
    Command::new("python3")
        .arg(script)
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

/// The media, made in `dir`; `None` when ffmpeg or python3 is missing.
fn media(dir: &Path, honest: &Path) -> Option<Vec<(String, PathBuf)>> {
    let p = |n: &str| dir.join(n);
    let s = |q: &Path| q.to_str().unwrap_or("").to_string();
    let big = s(&p("big.mp4"));
    let ok = ffmpeg(&[
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
        &big,
    ]);
    let mut args: Vec<String> = Vec::new();
    for _ in 0..8 {
        args.extend(["-i".into(), big.clone()]);
    }
    for i in 0..8 {
        args.extend(["-map".into(), format!("{i}:v")]);
    }
    args.extend(["-c".into(), "copy".into(), s(&p("tracks8.mkv"))]);
    let ok = ok && ffmpeg(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let x264 = ["-c:v", "libx264", "-preset", "ultrafast"];
    let five = s(&p("five.mp4"));
    let frag = s(&p("frag.mp4"));
    let ok =
        ok && ffmpeg(
            &[
                &[
                    "-f",
                    "lavfi",
                    "-i",
                    "testsrc=s=64x64:r=25",
                    "-frames:v",
                    "5",
                ][..],
                &x264,
                &[five.as_str()],
            ]
            .concat(),
        ) && ffmpeg(
            &[
                &[
                    "-f",
                    "lavfi",
                    "-i",
                    "testsrc=s=64x64:r=25",
                    "-frames:v",
                    "5",
                ][..],
                &x264,
                &["-movflags", "frag_keyframe+empty_moov", frag.as_str()],
            ]
            .concat(),
        ) && hostile_media(&[
            "sample-table",
            &five,
            &s(&p("stsz.mp4")),
            "--samples",
            "8000000",
        ]) && hostile_media(&["trun", &frag, &s(&p("trun.mp4")), "--samples", "8000000"])
            && ffmpeg(
                &[
                    &[
                        "-f",
                        "lavfi",
                        "-i",
                        "testsrc2=s=128x128:r=1000",
                        "-frames:v",
                        "10000",
                    ][..],
                    &x264,
                    &["-crf", "40", &s(&p("fast.mp4"))],
                ]
                .concat(),
            );
    ok.then(|| {
        vec![
            ("honest: d18 (control)".to_string(), honest.to_path_buf()),
            (
                "8 video tracks of one 8192² frame".to_string(),
                p("tracks8.mkv"),
            ),
            ("MP4 stsz claiming 8M samples".to_string(), p("stsz.mp4")),
            ("MP4 trun claiming 8M samples".to_string(), p("trun.mp4")),
            (
                "10,000 frames of 128² at 1000 fps".to_string(),
                p("fast.mp4"),
            ),
        ]
    })
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
