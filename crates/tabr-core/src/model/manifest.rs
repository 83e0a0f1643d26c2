//! `manifest.json` of a `tabr-model/1` directory: parsing, validation and path confinement.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorCode, Result};
use crate::extract::{QualityCode, QualityThresholds};
use crate::spec::{self, Spec, SpecParams};

/// The directory format this build reads.
pub const FORMAT: &str = "tabr-model/1";
/// The model directory formats this build reads (a manifest's `format`); the crate root and
/// the Node package re-export it.
pub const MODEL_FORMATS: [&str; 1] = [FORMAT];

/// What the model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Two classes; the ONNX output is one logit (class 1).
    Binclass,
    /// Three or more classes; one logit per class.
    Multiclass,
    /// One value.
    Regression,
}

impl Task {
    /// The stable string form.
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Binclass => "binclass",
            Task::Multiclass => "multiclass",
            Task::Regression => "regression",
        }
    }
}

/// The feature spec a model was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    /// Spec name (`poc-abs`).
    pub name: String,
    /// Spec version (1 or 2).
    pub version: u32,
    /// Spec parameters (defaults when empty).
    #[serde(default)]
    pub params: SpecParams,
}

impl FeatureSpec {
    /// The spec this build implements under that name and version, if any.
    pub fn spec(&self) -> Option<Spec> {
        Spec::from_manifest(&self.name, self.version)
    }
}

/// Files of the directory, relative to it.
#[derive(Debug, Clone, Deserialize)]
pub struct Files {
    /// The ONNX graph.
    pub onnx: String,
    /// `preprocess.json`.
    pub preprocessing: String,
    /// Haar cascade XML (optional: the built-in cascade otherwise).
    #[serde(default)]
    pub face_cascade: Option<String>,
    /// `golden.json` (optional).
    #[serde(default)]
    pub golden: Option<String>,
    /// `candidates.json`: each candidate's id and label and the nearest-neighbour distances
    /// of the training set (with `onnx.evidence`; models exported before it have neither).
    #[serde(default)]
    pub candidates: Option<String>,
}

/// ONNX I/O description.
#[derive(Debug, Clone, Deserialize)]
pub struct OnnxIo {
    /// Input name (`x`).
    pub input: String,
    /// Output name (`logits`).
    pub output: String,
    /// Output width.
    pub d_out: usize,
    /// The graph's evidence outputs (optional: models exported before them answer without).
    #[serde(default)]
    pub evidence: Option<EvidenceIo>,
}

/// The outputs through which the graph shows the training rows a prediction drew on, each
/// `[n, k]`: the nearest candidates' indices (int64), squared distances in the model's key
/// space, weights in the prediction (the retrieval softmax) and labels (class index or value);
/// and `[n, 1]`, the squared distance to the nearest candidate in the model's input space
/// (what novelty is measured on).
#[derive(Debug, Clone, Deserialize)]
pub struct EvidenceIo {
    /// Neighbours per row.
    pub k: usize,
    /// Output of the candidates' indices.
    pub index: String,
    /// Output of their squared distances.
    pub distance: String,
    /// Output of their weights.
    pub weight: String,
    /// Output of their labels.
    pub label: String,
    /// Output of the nearest input-space distance.
    pub novelty: String,
}

/// A parsed, validated manifest.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    /// Must be [`FORMAT`].
    pub format: String,
    /// Model name.
    pub name: String,
    /// Model version.
    pub version: String,
    /// Task.
    pub task: Task,
    /// Class labels in class-index order (empty for regression).
    #[serde(default)]
    pub labels: Vec<String>,
    /// Feature spec.
    pub features: FeatureSpec,
    /// Input width.
    pub n_features: usize,
    /// Input names.
    pub feature_names: Vec<String>,
    /// Files.
    pub files: Files,
    /// ONNX I/O.
    pub onnx: OnnxIo,
    /// Recording-quality thresholds and the warnings that refuse a video (optional).
    #[serde(default)]
    pub quality: QualityPolicy,
}

/// A model's say on recording quality: the thresholds of the warnings, and which warnings
/// refuse a video with `poor_recording` (none by default: warnings are only reported).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualityPolicy {
    /// Where the warnings start (defaults for those not given).
    #[serde(default)]
    pub thresholds: QualityThresholds,
    /// Warnings that refuse the video (422 `poor_recording`).
    #[serde(default)]
    pub refuse: Vec<QualityCode>,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::new(ErrorCode::ModelError, msg.into())
}

impl Manifest {
    /// Reads and validates `dir/manifest.json`.
    pub fn load(dir: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(dir.join("manifest.json"))
            .map_err(|_| bad("the model directory has no readable manifest.json"))?;
        let probe: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| bad(format!("manifest.json is not valid JSON ({e})")))?;
        let formats = MODEL_FORMATS.join(", ");
        match probe.get("format").and_then(|f| f.as_str()) {
            Some(f) if MODEL_FORMATS.contains(&f) => {}
            Some(other) => {
                return Err(bad(format!(
                    "unknown model format {other:?} (this build reads {formats})"
                )))
            }
            None => {
                return Err(bad(format!(
                    "manifest.json has no format (expected {formats})"
                )))
            }
        }
        let m: Manifest =
            serde_json::from_value(probe).map_err(|e| bad(format!("manifest.json: {e}")))?;
        m.validate()?;
        Ok(m)
    }

    fn validate(&self) -> Result<()> {
        let f = &self.features;
        let Some(spec) = f.spec() else {
            return Err(bad(format!(
                "feature spec {}/{} is not implemented by this build (it implements {})",
                f.name,
                f.version,
                crate::FEATURE_SPECS.join(", ")
            )));
        };
        f.params.validate()?;
        if self.n_features != spec::N_FEATURES {
            return Err(bad(format!(
                "n_features is {}, but {} v{} produces {}",
                self.n_features,
                f.name,
                f.version,
                spec::N_FEATURES
            )));
        }
        // Validated against its own spec's names.
        if self.feature_names != spec::feature_names_of(spec) {
            return Err(bad(
                "feature_names differ from the feature spec's names or order",
            ));
        }
        let (want_labels, want_out) = match self.task {
            Task::Binclass => (Some(2), 1),
            Task::Multiclass => (None, self.labels.len()),
            Task::Regression => (Some(0), 1),
        };
        if want_labels.is_some_and(|n| n != self.labels.len())
            || (self.task == Task::Multiclass && self.labels.len() < 3)
        {
            return Err(bad(format!(
                "a {} model cannot have {} labels",
                self.task.as_str(),
                self.labels.len()
            )));
        }
        self.quality.thresholds.validate()?;
        if let Some(e) = &self.onnx.evidence {
            if e.k == 0 || e.k > 1024 {
                return Err(bad(format!("onnx.evidence.k is {}: 1 to 1024", e.k)));
            }
            if self.files.candidates.is_none() {
                return Err(bad(
                    "onnx.evidence needs files.candidates (the candidates' ids and distances)",
                ));
            }
        }
        if self.onnx.d_out != want_out {
            return Err(bad(format!(
                "onnx.d_out is {}, a {} model with these labels needs {want_out}",
                self.onnx.d_out,
                self.task.as_str()
            )));
        }
        Ok(())
    }
}

/// `rel` inside `dir`, refusing absolute paths, `..` and links that lead outside.
pub fn confined(dir: &Path, rel: &str, what: &str) -> Result<PathBuf> {
    let p = Path::new(rel);
    if rel.is_empty()
        || p.components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(bad(format!(
            "the {what} path must stay inside the model directory"
        )));
    }
    let root = dir
        .canonicalize()
        .map_err(|_| bad("the model directory cannot be read"))?;
    let full = root
        .join(p)
        .canonicalize()
        .map_err(|_| bad(format!("the {what} file is missing")))?;
    if !full.starts_with(&root) {
        return Err(bad(format!(
            "the {what} path must stay inside the model directory"
        )));
    }
    Ok(full)
}
