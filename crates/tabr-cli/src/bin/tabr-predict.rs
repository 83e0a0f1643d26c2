//! `tabr-predict`: a model directory's answers offline, the same answers the service gives.
//!
//! One JSON line per clip: the prediction, the model's evidence (the training clips it drew
//! on, nearest first, and the clip's novelty; models exported with evidence outputs) and the
//! recording's quality with its warnings; or the clip's stable error code and message. The
//! exit status is 1 if any clip failed, 2 on usage errors or a model that does not load.
//! Clips run one after another (each extraction uses every core).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use serde_json::json;
use tabr_core::model::{LoadOptions, Model};
use tabr_core::{CancelFlag, VideoSource};

#[derive(Parser, Debug)]
#[command(
    name = "tabr-predict",
    version,
    about = "Predict clips with a tabr-model/1 directory: prediction, evidence and recording quality as JSON lines"
)]
struct Args {
    /// The model directory (manifest.json, model.onnx, …).
    #[arg(long)]
    model: PathBuf,
    /// ONNX Runtime's shared library (else ORT_DYLIB_PATH, else the onnxruntime-node package
    /// found from the current folder or this source tree).
    #[arg(long)]
    ort_dylib: Option<PathBuf>,
    /// Video files.
    #[arg(required = true)]
    clips: Vec<PathBuf>,
}

fn ort_dylib(flag: Option<&Path>) -> Option<PathBuf> {
    let here = std::env::current_dir().unwrap_or_default();
    let tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packages/tabr-native");
    ort_node_locate::locate(flag, &[&here, &tree])
}

fn main() -> ExitCode {
    let args = Args::parse();
    let opts = LoadOptions {
        ort_dylib_path: ort_dylib(args.ort_dylib.as_deref()),
        ..LoadOptions::default()
    };
    let model = match Model::load(&args.model, &opts) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("tabr-predict: {}: {}", e.code(), e.message());
            return ExitCode::from(2);
        }
    };
    let mut out = std::io::stdout().lock();
    let mut failed = false;
    for clip in &args.clips {
        let line = match model.predict_video(VideoSource::Path(clip), &CancelFlag::new()) {
            Ok(p) => json!({
                "file": clip.display().to_string(),
                "prediction": p.prediction,
                "evidence": p.evidence,
                "quality": p.features.meta.quality,
            }),
            Err(e) => {
                failed = true;
                json!({"file": clip.display().to_string(), "error": {"code": e.code().as_str(), "message": e.message()}})
            }
        };
        if writeln!(out, "{line}").is_err() {
            return ExitCode::from(2);
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
