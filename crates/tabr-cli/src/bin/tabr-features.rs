//! `tabr-features`: the POC-ABS extractor offline (v1 by default, v2 with `--spec
//! poc-abs/2`), for building training sets.
//!
//! Files or directories of videos in, one CSV or JSONL line per file out, with a header of
//! feature names. Every table names its spec (CSV: a `spec` column, e.g. `poc-abs/2`, on every
//! row; JSONL: the header's `spec` and `version`), and the exporter takes it from there.
//! `--overlay DIR` also writes, per clip, a PNG of v2's first aligned crop with
//! its landmarks and regions, for a person to check the placement. Files that fail get their stable error code and empty values; the exit
//! status is 1 if any file failed, 2 on usage errors. Files run in parallel, and the
//! pair work of all of them shares one pool, exactly as in the service.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use tabr_core::extract::overlay;
use tabr_core::face::FaceMesh;
use tabr_core::flow::FlowMethod;
use tabr_core::spec::FaceKind;
use tabr_core::{
    feature_names, spec, CancelFlag, Extractor, FaceAssets, Features, Spec, SpecParams, VideoSource,
};

/// Video extensions picked up when walking a directory (explicit files are always taken).
const VIDEO_EXTENSIONS: [&str; 9] = [
    "mp4", "m4v", "mov", "mkv", "webm", "avi", "mpg", "mpeg", "ts",
];

#[derive(Copy, Clone, Debug, ValueEnum)]
enum Format {
    Csv,
    Jsonl,
}

/// The flow implementation (both give the spec's numbers; see tabr_core::flow).
#[derive(Copy, Clone, Debug, Default, ValueEnum)]
enum FlowArg {
    /// Our Farnebäck: OpenCV's numbers, several times faster.
    #[default]
    Rust,
    /// OpenCV's calcOpticalFlowFarneback, the reference.
    Opencv,
}

impl From<FlowArg> for FlowMethod {
    fn from(f: FlowArg) -> FlowMethod {
        match f {
            FlowArg::Rust => FlowMethod::Rust,
            FlowArg::Opencv => FlowMethod::OpenCv,
        }
    }
}

/// Extract POC-ABS features from face videos.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Video files or directories (walked recursively for video extensions).
    #[arg(required_unless_present = "describe")]
    inputs: Vec<PathBuf>,
    /// Print every feature spec this build implements (id, face method, regions, channels,
    /// statistics, names, what it needs) and the stable error codes, as JSON, and exit.
    #[arg(long)]
    describe: bool,
    /// The feature spec: poc-abs/1 (Haar box) or poc-abs/2 (landmark-aligned; needs ONNX
    /// Runtime, see --ort-dylib).
    #[arg(long, default_value = "poc-abs/1")]
    spec: String,
    /// ONNX Runtime's shared library for poc-abs/2 (else ORT_DYLIB_PATH, else the
    /// onnxruntime-node package found from the current folder or this source tree).
    #[arg(long)]
    ort_dylib: Option<PathBuf>,
    /// Write one PNG per clip into this folder: v2's first aligned crop, enlarged, with the
    /// landmarks, the seven fit points and the eight regions drawn (needs --spec poc-abs/2).
    #[arg(long)]
    overlay: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Csv)]
    format: Format,
    /// Write here instead of standard output.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Files decoded at once (default: number of cores).
    #[arg(short, long)]
    jobs: Option<usize>,
    /// A Haar cascade XML to use instead of the built-in frontal face cascade (poc-abs/1).
    #[arg(long)]
    cascade: Option<PathBuf>,
    /// Spec parameters as JSON (a manifest's `features.params`), e.g. '{"max_seconds": 20}'.
    #[arg(long)]
    params: Option<String>,
    /// Include per-file metadata (JSONL only).
    #[arg(long)]
    meta: bool,
    /// Include each clip's 18 channels per frame pair, `series: {channels, t_s, values}`:
    /// when and where the face moved (JSONL only).
    #[arg(long)]
    series: bool,
    /// Optical flow implementation.
    #[arg(long, value_enum, default_value_t = FlowArg::Rust)]
    flow: FlowArg,
}

fn collect_inputs(inputs: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.path());
        for e in entries {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out)?;
            } else if p
                .extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| VIDEO_EXTENSIONS.contains(&x.to_ascii_lowercase().as_str()))
            {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            walk(p, &mut out)?;
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn json_number(v: f32) -> serde_json::Value {
    serde_json::Number::from_f64(f64::from(v))
        .map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// What goes into each JSONL object beside the values.
#[derive(Clone, Copy)]
struct Extras {
    meta: bool,
    series: bool,
}

fn write_row(
    out: &mut dyn Write,
    format: Format,
    spec: Spec,
    extras: Extras,
    file: &Path,
    r: &tabr_core::Result<Features>,
) -> std::io::Result<()> {
    let name = file.to_string_lossy();
    match format {
        Format::Csv => {
            // The spec on every row: a table read in parts, or joined with another, still says
            // which features it holds.
            write!(out, "{},{},", csv_field(&name), spec.id())?;
            match r {
                Ok(f) => {
                    let vals: Vec<String> = f.values.iter().map(|v| v.to_string()).collect();
                    writeln!(out, ",{}", vals.join(","))
                }
                Err(e) => writeln!(out, "{}{}", e.code(), ",".repeat(tabr_core::N_FEATURES)),
            }
        }
        Format::Jsonl => {
            let mut obj = serde_json::Map::new();
            obj.insert("file".into(), name.as_ref().into());
            match r {
                Ok(f) => {
                    obj.insert("error".into(), serde_json::Value::Null);
                    obj.insert(
                        "values".into(),
                        f.values.iter().map(|&v| json_number(v)).collect(),
                    );
                    if extras.meta {
                        obj.insert(
                            "meta".into(),
                            serde_json::to_value(&f.meta).unwrap_or_default(),
                        );
                    }
                    if extras.series {
                        let values: Vec<serde_json::Value> = f
                            .series
                            .values
                            .iter()
                            .map(|row| row.iter().map(|&v| json_number(v)).collect())
                            .collect();
                        obj.insert(
                            "series".into(),
                            serde_json::json!({
                                "channels": spec::channel_names(),
                                "t_s": f.series.times(f.meta.fps),
                                "values": values,
                            }),
                        );
                    }
                }
                Err(e) => {
                    obj.insert("error".into(), e.code().as_str().into());
                    obj.insert("message".into(), e.message().into());
                }
            }
            writeln!(out, "{}", serde_json::Value::Object(obj))
        }
    }
}

/// ONNX Runtime for v2: the flag, else `ORT_DYLIB_PATH`, else the `onnxruntime-node`
/// package nearest the current folder or, for a binary built from this source tree, the one
/// `make` installed beside the Node binding.
fn ort_dylib(flag: Option<&Path>) -> Option<PathBuf> {
    let here = std::env::current_dir().unwrap_or_default();
    let tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packages/tabr-native");
    ort_node_locate::locate(flag, &[&here, &tree])
}

/// One PNG name per input: its stem, with its input index where two inputs share a stem.
fn overlay_file_names(files: &[PathBuf]) -> Vec<String> {
    let stem = |f: &PathBuf| {
        f.file_stem()
            .map_or("clip".into(), |s| s.to_string_lossy().into_owned())
    };
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for f in files {
        *seen.entry(stem(f)).or_default() += 1;
    }
    files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let s = stem(f);
            if seen[&s] > 1 {
                format!("{s}-{i}.png")
            } else {
                format!("{s}.png")
            }
        })
        .collect()
}

/// Draws v2's first aligned crop of `file` into `dir/name`.
fn write_overlay(
    dir: &Path,
    name: &str,
    file: &Path,
    spec: Spec,
    params: &SpecParams,
    dylib: Option<&Path>,
    provider: tabr_core::model::Provider,
) -> Result<(), String> {
    let mesh = FaceMesh::shared(dylib, provider).map_err(|e| e.message().to_string())?;
    let pic = overlay::first_aligned_face(VideoSource::Path(file), spec, params, mesh)
        .map_err(|e| e.code().to_string())?
        .ok_or("no frame has a face")?;
    let out = std::fs::File::create(dir.join(name)).map_err(|e| e.to_string())?;
    let mut enc = png::Encoder::new(BufWriter::new(out), pic.width, pic.height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()
        .and_then(|mut w| w.write_image_data(&pic.rgb))
        .map_err(|e| e.to_string())
}

/// `--describe`: the specs and error codes as the core defines them.
fn describe() -> serde_json::Value {
    let specs: Vec<_> = Spec::visible().iter().map(|s| s.describe()).collect();
    let codes: Vec<_> = tabr_core::ErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .collect();
    serde_json::json!({ "specs": specs, "error_codes": codes })
}

fn main() -> ExitCode {
    let args = Args::parse();
    let usage = |msg: String| {
        eprintln!("tabr-features: {msg}");
        ExitCode::from(2)
    };
    if args.describe {
        println!("{:#}", describe());
        return ExitCode::SUCCESS;
    }
    let params: SpecParams = match &args.params {
        Some(j) => match serde_json::from_str(j) {
            Ok(p) => p,
            Err(e) => return usage(format!("--params: {e}")),
        },
        None => SpecParams::default(),
    };
    if let Err(e) = params.validate() {
        return usage(e.message().to_string());
    }
    if args.series && matches!(args.format, Format::Csv) {
        return usage("--series needs --format jsonl (a series does not fit a CSV row)".into());
    }
    let extras = Extras {
        meta: args.meta,
        series: args.series,
    };
    let spec = match Spec::parse(&args.spec) {
        Ok(s) => s,
        Err(e) => return usage(format!("--spec: {}", e.message())),
    };
    if args.overlay.is_some() && spec.face() != FaceKind::LandmarkAligned {
        return usage("--overlay draws a landmark-aligned placement: add --spec poc-abs/2".into());
    }
    let dylib = spec
        .needs_onnxruntime()
        .then(|| ort_dylib(args.ort_dylib.as_deref()))
        .flatten();
    let provider = match tabr_core::model::Provider::from_env() {
        Ok(p) => p,
        Err(e) => return usage(e.message().to_string()),
    };
    let assets = FaceAssets {
        cascade: args.cascade.as_deref(),
        ort_dylib: dylib.as_deref(),
        provider,
    };
    let extractor = match Extractor::for_spec(spec, params.clone(), assets) {
        Ok(e) => e.with_flow_method(args.flow.into()),
        Err(e) => return usage(e.message().to_string()),
    };
    let files = match collect_inputs(&args.inputs) {
        Ok(f) if !f.is_empty() => f,
        Ok(_) => return usage("no video files found".into()),
        Err(e) => return usage(format!("cannot read the inputs: {e}")),
    };
    let sink: Box<dyn Write + Send> = match &args.output {
        Some(p) => match std::fs::File::create(p) {
            Ok(f) => Box::new(f),
            Err(e) => return usage(format!("cannot create {}: {e}", p.display())),
        },
        None => Box::new(std::io::stdout()),
    };
    let mut out = BufWriter::new(sink);
    let names = feature_names();
    let header = match args.format {
        Format::Csv => writeln!(out, "file,spec,error,{}", names.join(",")),
        Format::Jsonl => writeln!(
            out,
            "{}",
            serde_json::json!({"spec": spec::SPEC_NAME, "version": spec.version(), "names": names})
        ),
    };
    if header.is_err() {
        return ExitCode::from(2);
    }

    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    let bar = if files.len() >= 4 {
        let b = ProgressBar::new(files.len() as u64);
        b.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} files, {per_sec}, eta {eta}  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let overlay_names = overlay_file_names(&files);
    if let Some(dir) = &args.overlay {
        if let Err(e) = std::fs::create_dir_all(dir) {
            return usage(format!("cannot create {}: {e}", dir.display()));
        }
    }
    // Results are written in input order: finished files wait in `pending` for their turn.
    let next = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let state = Mutex::new((0usize, std::collections::BTreeMap::new(), out));
    std::thread::scope(|s| {
        for _ in 0..jobs.min(files.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(file) = files.get(i) else { break };
                let r = extractor.extract_path(file, &CancelFlag::new());
                if let Some(dir) = &args.overlay {
                    if let Err(msg) = write_overlay(
                        dir,
                        &overlay_names[i],
                        file,
                        spec,
                        &params,
                        dylib.as_deref(),
                        provider,
                    ) {
                        eprintln!("tabr-features: {}: overlay: {msg}", file.display());
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if let Err(e) = &r {
                    failed.fetch_add(1, Ordering::Relaxed);
                    bar.set_message(format!("{}: {}", file.display(), e.code()));
                }
                bar.inc(1);
                let Ok(mut st) = state.lock() else { break };
                let (written, pending, out) = &mut *st;
                pending.insert(i, r);
                while let Some(r) = pending.remove(written) {
                    if let Err(e) = write_row(out, args.format, spec, extras, &files[*written], &r)
                    {
                        eprintln!("tabr-features: write failed: {e}");
                        std::process::exit(2);
                    }
                    *written += 1;
                }
            });
        }
    });
    bar.finish_and_clear();
    let Ok((_, _, mut out)) = state.into_inner() else {
        return ExitCode::from(2);
    };
    if out.flush().is_err() {
        return ExitCode::from(2);
    }
    let failed = failed.load(Ordering::Relaxed);
    if failed > 0 {
        eprintln!("tabr-features: {failed} of {} files failed", files.len());
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
