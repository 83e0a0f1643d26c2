//! `make bench`: extraction benchmarks, printed as tables of medians and ratios.
//!
//! Per clip: wall time (median of ≥ 5 runs), CPU seconds per clip, frames/s, the floor
//! measured in the same run — (single-thread decode to gray + single-thread Farnebäck over
//! every consecutive crop pair) / cores, taken in a child pinned to one core with `taskset` —
//! the ratio wall / floor, peak RSS of one extraction in a fresh child process, and the
//! throughput with 4 clips at once against one at a time; decoding against OpenCV's reader
//! (`decode.rs`); what hostile uploads cost against OpenCV's reader (`hostile.rs`); what an
//! answer's evidence and recording quality cost (`trust.rs`). Nothing
//! here fails a build.

mod decode;
mod flow;
mod hostile;
mod trust;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use tabr_core::flow::FlowMethod;
use tabr_core::synth::{write_clip, ClipSpec, Movement, Part};
use tabr_core::{CancelFlag, Extractor, Spec};

pub(crate) const RUNS: usize = 7;

pub(crate) fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// User + system CPU seconds of this process so far, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = after
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // Fields after the command: state(skipped, not numeric) ppid pgrp session tty tpgid flags
    // minflt cminflt majflt cmajflt utime stime → utime, stime are the 11th and 12th numbers.
    let ticks = 100.0; // USER_HZ on Linux
    (f.get(10).copied().unwrap_or(0.0) + f.get(11).copied().unwrap_or(0.0)) / ticks
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Child mode: single-thread decode + our Farnebäck over the extraction's own crop pairs,
/// printed as "decode_s flow_s".
fn floor_child(clip: &Path) {
    let _ = opencv::core::set_num_threads(1);
    let (frames, decode_s) = flow::crop_sequence_timed(clip);
    let flow_s = flow::run_sequence(&frames, FlowMethod::Rust.build().as_ref());
    println!("{decode_s} {flow_s}");
}

/// Child mode: one extraction, then the peak RSS in MB.
fn rss_child(clip: &Path) {
    let ex = Extractor::new().expect("extractor");
    ex.extract_path(clip, &CancelFlag::new()).expect("features");
    println!("{}", peak_rss_mb());
}

fn run_child(pin: bool, mode: &str, clip: &Path) -> Vec<f64> {
    let exe = std::env::current_exe().expect("exe");
    let mut cmd = if pin {
        let mut c = Command::new("taskset");
        c.args(["-c", "0"]).arg(&exe);
        c
    } else {
        Command::new(&exe)
    };
    let out = cmd.arg(mode).arg(clip).output().expect("child runs");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect()
}

struct Row {
    name: String,
    frames: u64,
    wall: f64,
    cpu: f64,
    floor: f64,
    rss: f64,
    seq_cps: f64,
    conc_cps: f64,
}

fn bench_clip(name: &str, clip: &Path, cores: usize) -> Row {
    let ex = Extractor::new().expect("extractor");
    let warm = ex.extract_path(clip, &CancelFlag::new()).expect("features");
    let (mut walls, mut cpus) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let (c0, t0) = (cpu_seconds(), Instant::now());
        ex.extract_path(clip, &CancelFlag::new()).expect("features");
        walls.push(t0.elapsed().as_secs_f64());
        cpus.push(cpu_seconds() - c0);
    }
    let floors: Vec<f64> = (0..3)
        .map(|_| run_child(true, "--floor", clip).iter().sum::<f64>() / cores as f64)
        .collect();
    let rss = run_child(false, "--rss", clip)
        .first()
        .copied()
        .unwrap_or(f64::NAN);
    // Throughput: 8 clips, one at a time vs 4 at once (sharing the one pair pool).
    let t = Instant::now();
    for _ in 0..8 {
        ex.extract_path(clip, &CancelFlag::new()).expect("features");
    }
    let seq_cps = 8.0 / t.elapsed().as_secs_f64();
    let conc_cps = four_at_once(&ex, clip);
    Row {
        name: name.into(),
        frames: warm.meta.frames,
        wall: median(walls),
        cpu: median(cpus),
        floor: median(floors),
        rss,
        seq_cps,
        conc_cps,
    }
}

/// The demo model: load time, one-vector latency, vectors/s, a session pool against one
/// mutexed session under 4 callers, and extract + predict on each clip.
fn model_bench(clips: &[(String, PathBuf)]) {
    use tabr_core::model::{LoadOptions, Model, Prediction};
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dylib = ort_dylib().unwrap_or_default();
    let dir = root.join("models/tabr-demo");
    if !dylib.is_file() || !dir.is_dir() {
        eprintln!(
            "SKIPPED model benchmarks: no ONNX Runtime (run make build) or no models/tabr-demo"
        );
        return;
    }
    let opts = |sessions: usize| LoadOptions {
        ort_dylib_path: Some(dylib.clone()),
        sessions,
        ..LoadOptions::default()
    };
    let loads: Vec<f64> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            Model::load(
                &dir,
                &LoadOptions {
                    verify_golden: false,
                    ..opts(2)
                },
            )
            .expect("demo model loads");
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let model = Model::load(&dir, &opts(2)).expect("demo model");
    let row: Vec<f64> = (0..90).map(|i| (i as f64 * 0.37).sin().abs()).collect();
    for _ in 0..200 {
        model.predict(&row).expect("predict");
    }
    let lat: Vec<f64> = (0..2000)
        .map(|_| {
            let t = Instant::now();
            let p = model.predict(&row).expect("predict");
            let us = t.elapsed().as_secs_f64() * 1e6;
            assert!(matches!(p, Prediction::Class { .. }));
            us
        })
        .collect();
    let mut sorted = lat.clone();
    sorted.sort_by(f64::total_cmp);
    let p99 = sorted[(sorted.len() * 99) / 100];
    let t = Instant::now();
    let rows: Vec<&[f64]> = (0..256).map(|_| row.as_slice()).collect();
    for _ in 0..20 {
        model.logits(&rows).expect("batch");
    }
    let batch_vps = 20.0 * 256.0 / t.elapsed().as_secs_f64();
    let concurrent = |m: &Model| {
        let t = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..2000 {
                        m.predict(&row).expect("predict");
                    }
                });
            }
        });
        8000.0 / t.elapsed().as_secs_f64()
    };
    let pooled = concurrent(&model);
    let single = Model::load(&dir, &opts(1)).expect("model");
    let mutexed = concurrent(&single);
    println!("\n## TabR demo model (one thread per ONNX session)\n");
    println!("| load ms | predict p50 µs | p99 µs | vectors/s (1 thread) | vectors/s (batches of 256) | 4 callers: pool of 2 | 4 callers: 1 session (mutex) | pool / mutex |");
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {:.1} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0}/s | {:.0}/s | {:.2} |",
        median(loads),
        median(lat.clone()),
        p99,
        1e6 / median(lat),
        batch_vps,
        pooled,
        mutexed,
        pooled / mutexed
    );
    println!("\n| clip | predictVideo wall s (median) | of which predict ms |\n|---|---|---|");
    for (name, clip) in clips {
        let mut walls = Vec::new();
        let mut pred = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let ms = model
                .predict_video(tabr_core::VideoSource::Path(clip), &CancelFlag::new())
                .expect("predict video")
                .predict_ms;
            walls.push(t.elapsed().as_secs_f64());
            pred.push(ms);
        }
        println!("| {name} | {:.3} | {:.3} |", median(walls), median(pred));
    }
}

/// Clips/s with 8 extractions of `clip`, 4 at once (sharing the one pair pool).
fn four_at_once(ex: &Extractor, clip: &Path) -> f64 {
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..2 {
                    ex.extract_path(clip, &CancelFlag::new()).expect("features");
                }
            });
        }
    });
    8.0 / t.elapsed().as_secs_f64()
}

/// ONNX Runtime for v2 and the models: `ORT_DYLIB_PATH`, else the one `make build` installs.
fn ort_dylib() -> Option<PathBuf> {
    let tabr_native = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packages/tabr-native");
    ort_node_locate::locate(None, &[&tabr_native])
}

/// d18 with each spec and flow, in alternated rounds: wall and CPU seconds of one extraction,
/// and clips/s with 4 extractions at once (8 clips), medians.
fn flows_table(clip: &Path) {
    let dylib = ort_dylib();
    let assets = tabr_core::FaceAssets {
        cascade: None,
        ort_dylib: dylib.as_deref(),
        ..Default::default()
    };
    let cases: Vec<(Spec, FlowMethod)> = Spec::ALL
        .into_iter()
        .flat_map(|s| [FlowMethod::Rust, FlowMethod::OpenCv].map(|f| (s, f)))
        .collect();
    let exs: Vec<Extractor> = cases
        .iter()
        .map(|&(s, f)| {
            Extractor::for_spec(s, tabr_core::SpecParams::default(), assets)
                .expect("extractor")
                .with_flow_method(f)
        })
        .collect();
    for ex in &exs {
        ex.extract_path(clip, &CancelFlag::new()).expect("features");
    }
    let mut got = vec![(Vec::new(), Vec::new(), Vec::new()); cases.len()];
    for _ in 0..3 {
        for (ex, g) in exs.iter().zip(got.iter_mut()) {
            let (c0, t0) = (cpu_seconds(), Instant::now());
            ex.extract_path(clip, &CancelFlag::new()).expect("features");
            g.0.push(t0.elapsed().as_secs_f64());
            g.1.push(cpu_seconds() - c0);
            g.2.push(four_at_once(ex, clip));
        }
    }
    let rows: Vec<(f64, f64, f64)> = got
        .into_iter()
        .map(|(w, c, r)| (median(w), median(c), median(r)))
        .collect();
    println!("\n## d18 extraction with each spec and flow (3 alternated rounds, medians)\n");
    println!("| spec | flow | wall s | CPU s | clips/s ×4 |\n|---|---|---|---|---|");
    for ((s, f), r) in cases.iter().zip(&rows) {
        println!(
            "| {} | {} | {:.3} | {:.3} | {:.2} |",
            s.id(),
            f.name(),
            r.0,
            r.1,
            r.2
        );
    }
    for (i, s) in Spec::ALL.iter().enumerate() {
        let (a, b) = (rows[2 * i], rows[2 * i + 1]);
        println!(
            "| {} | rust / opencv | {:.2} | {:.2} | {:.2}× |",
            s.id(),
            a.0 / b.0,
            a.1 / b.1,
            a.2 / b.2
        );
    }
}

/// poc-abs v2's face stage against v1's (`tabr-bench --face-mesh`): one thread, d18's frames,
/// medians of ms per call (the full-range detector, FaceMesh, one v1 Haar try), then the whole
/// face stage of one d18 extraction as the schedule runs it: every try and every crop, CPU
/// seconds on one thread.
fn face_mesh_bench(clip: &Path) {
    use tabr_core::face::FaceMesh;
    use tabr_core::face::{self, DetectScratch, FaceDetector};
    let _ = opencv::core::set_num_threads(1);
    let dylib = ort_dylib();
    let mesh = FaceMesh::load(dylib.as_deref(), Default::default()).expect("the face models load");
    let params = tabr_core::SpecParams::default();
    let mut dec = tabr_core::video::Decoder::open(tabr_core::VideoSource::Path(clip), &params)
        .expect("d18 opens");
    let mut frames = Vec::new();
    let mut g = opencv::core::Mat::default();
    while frames.len() < 30 && dec.next_gray(&mut g).expect("decodes") {
        frames.push(g.clone());
    }
    let haar = FaceDetector::from_option(None).expect("cascade");
    let mut cc = haar.checkout().expect("classifier");
    let mut scratch = DetectScratch::default();
    let (mut det, mut lm, mut hr) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..2 {
        for f in &frames {
            let t = Instant::now();
            let d = mesh.detect(f).expect("runs").expect("a face");
            det.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            mesh.landmarks(f, &d).expect("landmarks");
            lm.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            face::detect(&mut cc, f, &params, &mut scratch).expect("haar");
            hr.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let (d, l, h) = (median(det), median(lm), median(hr));
    println!(
        "\n## Face stage per try, d18 frames, one thread (medians of {} calls)\n",
        frames.len() * 2
    );
    println!("| v2 detector ms | v2 FaceMesh ms | v2 together | v1 Haar try ms | v1 / v2 |\n|---|---|---|---|---|");
    println!(
        "| {d:.2} | {l:.2} | {:.2} | {h:.2} | {:.1}× |",
        d + l,
        h / (d + l)
    );
    face_stage_per_clip(clip, std::sync::Arc::new(mesh), haar);
}

/// The face stage of one whole extraction of `clip`, as the schedule runs it (a try on the
/// first frame and every `redetect_every` after, each given the most recent hit, a crop of
/// every frame), on this thread: ms of
/// the tries and of the crops, for v1 and v2 (medians of 3 runs). One thread on an otherwise
/// idle machine, so wall time is its CPU time (the process's CPU clock ticks at 10 ms, too
/// coarse for a 0.3 ms crop).
fn face_stage_per_clip(
    clip: &Path,
    mesh: std::sync::Arc<tabr_core::face::FaceMesh>,
    haar: std::sync::Arc<tabr_core::face::FaceDetector>,
) {
    use tabr_core::extract::{FaceMethod, HaarBox, LandmarkAligned};
    let params = tabr_core::SpecParams::default();
    let mut dec = tabr_core::video::Decoder::open(tabr_core::VideoSource::Path(clip), &params)
        .expect("d18 opens");
    let every = params.redetect_every(dec.fps()) as usize;
    let mut frames = Vec::new();
    let mut g = opencv::core::Mat::default();
    while dec.next_gray(&mut g).expect("decodes") {
        frames.push(g.clone());
    }
    let methods: [(&str, Box<dyn FaceMethod>); 2] = [
        ("poc-abs/1", Box::new(HaarBox::new(haar))),
        ("poc-abs/2", Box::new(LandmarkAligned::new(mesh))),
    ];
    println!(
        "\n## Face stage of one d18 extraction ({} frames, a try every {every}), one thread, medians of 3\n",
        frames.len()
    );
    println!("| spec | tries | tries ms | crops ms | face stage ms |\n|---|---|---|---|---|");
    for (name, m) in &methods {
        let (mut tries_ms, mut crops_ms) = (Vec::new(), Vec::new());
        let mut n_tries = 0;
        for _ in 0..3 {
            let (mut geo, mut last, mut t_try, mut t_crop) = (None, None, 0.0, 0.0);
            n_tries = 0;
            for (i, f) in frames.iter().enumerate() {
                if i % every == 0 {
                    let t0 = Instant::now();
                    if let Some(found) = m.detect(f, &params, last.as_ref()).expect("runs") {
                        last = Some(found);
                        if geo
                            .as_ref()
                            .is_none_or(|old| m.replaces(old, &found, &params))
                        {
                            geo = Some(found);
                        }
                    }
                    t_try += t0.elapsed().as_secs_f64();
                    n_tries += 1;
                }
                let g = geo.as_ref().expect("d18 has a face on its first frame");
                let t0 = Instant::now();
                m.crop(f, g, params.roi_size).expect("crop");
                t_crop += t0.elapsed().as_secs_f64();
            }
            tries_ms.push(t_try * 1e3);
            crops_ms.push(t_crop * 1e3);
        }
        let (t, c) = (median(tries_ms), median(crops_ms));
        println!("| {name} | {n_tries} | {t:.1} | {c:.1} | {:.1} |", t + c);
    }
}

fn d18_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/faces/face_lp_d18_man_neutral_480_liveportrait.mp4")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--floor") => return floor_child(Path::new(&args[2])),
        Some("--rss") => return rss_child(Path::new(&args[2])),
        Some("--hostile-child") => return hostile::child(&args[2], Path::new(&args[3])),
        // Only the hostile-upload table.
        Some("--hostile") => return hostile::hostile_bench(&d18_path()),
        Some("--flow-solve") => return flow::solve_only(&d18_path()),
        Some("--flow-pyramid") => return flow::pyramid_only(&d18_path()),
        Some("--flow-sequence") => return flow::sequence_only(&d18_path()),
        Some("--flow-digest") => return flow::digest(&d18_path()),
        Some("--face-mesh") => return face_mesh_bench(&d18_path()),
        // Only the cost of evidence and quality.
        Some("--trust") => {
            return trust::trust_bench(&d18_path(), &ort_dylib().unwrap_or_default());
        }
        // Only d18 with each spec and flow.
        Some("--specs") => return flows_table(&d18_path()),
        // Only the per-pair flow table, for a clip given or d18.
        Some("--flow") => {
            let clip = args.get(2).map(PathBuf::from).unwrap_or_else(d18_path);
            return flow::flow_bench(&clip.display().to_string(), &clip);
        }
        _ => {}
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let tmp = tempfile::tempdir().expect("tempdir");
    // Drawn losslessly, then encoded as H.264 (what uploads are) when ffmpeg is there.
    let synth = |secs: u32| -> PathBuf {
        let p = tmp.path().join(format!("synthetic_{secs}s.mkv"));
        let spec = ClipSpec {
            frames: secs * 30,
            seed: 11,
            noise: 0.5,
            drift: (3.0, 1.0),
            movement: Some(Movement {
                part: Part::Mouth,
                start: 40,
                len: 6,
                amplitude: 0.6,
            }),
            ..ClipSpec::default()
        };
        write_clip(&p, &spec).expect("synthetic clip");
        let h264 = p.with_extension("mp4");
        let encoded = Command::new("ffmpeg")
            .args(["-y", "-loglevel", "error", "-i"])
            .arg(&p)
            .args([
                "-c:v", "libx264", "-preset", "medium", "-crf", "18", "-pix_fmt", "yuv420p",
            ])
            .arg(&h264)
            .status()
            .is_ok_and(|s| s.success());
        if encoded {
            h264
        } else {
            eprintln!("note: no ffmpeg/libx264, the synthetic clip stays FFV1");
            p
        }
    };
    let mut clips: Vec<(String, PathBuf)> = Vec::new();
    let d18 = d18_path();
    if d18.is_file() {
        flow::flow_bench("d18", &d18);
        flows_table(&d18);
        clips.push(("d18 480×480 30fps 7.2s".into(), d18));
    } else {
        eprintln!("SKIPPED d18: ../shared/fixtures not found");
    }
    clips.push(("synthetic H.264 640×480 30fps 10s".into(), synth(10)));
    let short = synth(3);

    println!("\n## Extraction (cores: {cores}, {RUNS} runs, medians)\n");
    println!("| clip | frames | wall s | CPU s | frames/s | floor s | wall/floor | peak RSS MB | clips/s seq | clips/s ×4 | ×4 / seq |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (name, clip) in &clips {
        let r = bench_clip(name, clip, cores);
        println!(
            "| {} | {} | {:.3} | {:.3} | {:.0} | {:.3} | {:.2} | {:.0} | {:.2} | {:.2} | {:.2} |",
            r.name,
            r.frames,
            r.wall,
            r.cpu,
            r.frames as f64 / r.wall,
            r.floor,
            r.wall / r.floor,
            r.rss,
            r.seq_cps,
            r.conc_cps,
            r.conc_cps / r.seq_cps
        );
    }
    let rss_short = run_child(false, "--rss", &short)
        .first()
        .copied()
        .unwrap_or(f64::NAN);
    let rss_long = run_child(false, "--rss", &clips.last().expect("clip").1)
        .first()
        .copied()
        .unwrap_or(f64::NAN);
    println!("\n## Peak RSS against clip length (synthetic 640×480)\n");
    println!(
        "| 3 s | 10 s | ratio |\n|---|---|---|\n| {rss_short:.0} MB | {rss_long:.0} MB | {:.2} |",
        rss_long / rss_short
    );
    decode::decode_bench(&clips);
    if d18_path().is_file() {
        hostile::hostile_bench(&d18_path());
    }
    model_bench(&clips);
    if let (true, Some(dylib)) = (d18_path().is_file(), ort_dylib()) {
        trust::trust_bench(&d18_path(), &dylib);
    }
    println!("\nfloor = (single-thread decode to gray + single-thread Farnebäck over the crop pairs) / cores, pinned to one core with taskset.");
}
