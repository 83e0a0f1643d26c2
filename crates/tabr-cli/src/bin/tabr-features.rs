//! `tabr-features`: the POC-ABS v1 extractor offline, for building training sets.
//!
//! Files or directories of videos in, one CSV or JSONL line per file out, with a header of
//! feature names. Files that fail get their stable error code and empty values; the exit
//! status is 1 if any file failed, 2 on usage errors. Files run in parallel, and the
//! pair work of all of them shares one pool, exactly as in the service.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use tabr_core::face::FaceDetector;
use tabr_core::flow::FlowMethod;
use tabr_core::{feature_names, spec, CancelFlag, Extractor, Features, SpecParams};

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

/// Extract POC-ABS v1 features from face videos.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Video files or directories (walked recursively for video extensions).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Csv)]
    format: Format,
    /// Write here instead of standard output.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Files decoded at once (default: number of cores).
    #[arg(short, long)]
    jobs: Option<usize>,
    /// A Haar cascade XML to use instead of the built-in frontal face cascade.
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
    extras: Extras,
    file: &Path,
    r: &tabr_core::Result<Features>,
) -> std::io::Result<()> {
    let name = file.to_string_lossy();
    match format {
        Format::Csv => {
            write!(out, "{},", csv_field(&name))?;
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

fn main() -> ExitCode {
    let args = Args::parse();
    let usage = |msg: String| {
        eprintln!("tabr-features: {msg}");
        ExitCode::from(2)
    };
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
    let detector = match FaceDetector::from_option(args.cascade.as_deref()) {
        Ok(d) => d,
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
        Format::Csv => writeln!(out, "file,error,{}", names.join(",")),
        Format::Jsonl => writeln!(
            out,
            "{}",
            serde_json::json!({"spec": spec::SPEC_NAME, "version": spec::SPEC_VERSION, "names": names})
        ),
    };
    if header.is_err() {
        return ExitCode::from(2);
    }

    let extractor = Extractor::with(detector, params).with_flow_method(args.flow.into());
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
                if let Err(e) = &r {
                    failed.fetch_add(1, Ordering::Relaxed);
                    bar.set_message(format!("{}: {}", file.display(), e.code()));
                }
                bar.inc(1);
                let Ok(mut st) = state.lock() else { break };
                let (written, pending, out) = &mut *st;
                pending.insert(i, r);
                while let Some(r) = pending.remove(written) {
                    if let Err(e) = write_row(out, args.format, extras, &files[*written], &r) {
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
