//! `tabr-synth`: writes a synthetic face clip (lossless FFV1 in Matroska) drawn with OpenCV.
//!
//! Used by the Node tests, the benchmarks and the demo-model build: a face that the Haar
//! cascade finds, still apart from an optional micro-movement, noise and head drift.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use tabr_core::synth::{write_clip, ClipSpec, Movement, Part};

#[derive(Copy, Clone, Debug, ValueEnum)]
enum PartArg {
    Mouth,
    Brows,
    Eyes,
}

/// Write a synthetic face clip.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Output file (.mkv).
    out: PathBuf,
    #[arg(long, default_value_t = 640)]
    width: i32,
    #[arg(long, default_value_t = 480)]
    height: i32,
    #[arg(long, default_value_t = 30.0)]
    fps: f64,
    #[arg(long, default_value_t = 90)]
    frames: u32,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Per-pixel Gaussian noise (gray levels).
    #[arg(long, default_value_t = 0.0)]
    noise: f64,
    /// Face height as a fraction of the frame height; 0 draws no face at all.
    #[arg(long, default_value_t = 0.6)]
    face_scale: f64,
    /// Head drift in px/s, x then y.
    #[arg(long, num_args = 2, value_names = ["DX", "DY"], allow_negative_numbers = true)]
    drift: Option<Vec<f64>>,
    /// Part that makes a micro-movement.
    #[arg(long, value_enum)]
    part: Option<PartArg>,
    /// First frame of the movement.
    #[arg(long, default_value_t = 40)]
    start: u32,
    /// Frames the movement lasts.
    #[arg(long, default_value_t = 6)]
    len: u32,
    /// Peak displacement in pixels.
    #[arg(long, default_value_t = 0.6)]
    amplitude: f64,
    /// Draw the demo data set's clip for this seed instead (all other shape options ignored).
    #[arg(long)]
    demo_seed: Option<u64>,
    /// With --demo-seed: the class, `none` or `micro_movement`.
    #[arg(long, default_value = "none", value_parser = ["none", "micro_movement"])]
    demo_class: String,
    /// Print the clip's full description to stderr.
    #[arg(long)]
    print_spec: bool,
}

fn main() -> ExitCode {
    let a = Args::parse();
    let drift = a.drift.as_deref().map_or((0.0, 0.0), |d| (d[0], d[1]));
    let movement = a.part.map(|p| Movement {
        part: match p {
            PartArg::Mouth => Part::Mouth,
            PartArg::Brows => Part::Brows,
            PartArg::Eyes => Part::Eyes,
        },
        start: a.start,
        len: a.len,
        amplitude: a.amplitude,
    });
    let spec = if let Some(seed) = a.demo_seed {
        tabr_core::synth::demo_clip_spec(seed, a.demo_class == "micro_movement")
    } else {
        ClipSpec {
            width: a.width,
            height: a.height,
            fps: a.fps,
            frames: a.frames,
            seed: a.seed,
            face_scale: a.face_scale,
            movement,
            noise: a.noise,
            drift,
        }
    };
    if a.print_spec {
        eprintln!("{spec:?}");
    }
    match write_clip(&a.out, &spec) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tabr-synth: {}", e.message());
            ExitCode::FAILURE
        }
    }
}
