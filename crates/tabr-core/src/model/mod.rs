//! TabR models from a `tabr-model/1` directory: load, preprocess, ONNX inference.
//!
//! [`Model::load`] validates the manifest (format, feature spec, sizes, labels), confines every
//! path to the directory, parses `preprocess.json`, builds the model's own extractor (its
//! spec parameters and face cascade), opens `model.onnx` with ONNX Runtime and, when the
//! directory has `golden.json`, checks the outputs against it. One loaded model serves
//! concurrent calls from a pool of ONNX sessions (`sessions`; 1 is a plain mutex). A model
//! exported with evidence outputs also says which training rows each prediction drew on and
//! how novel the row is ([`evidence`]).

pub mod evidence;
pub mod manifest;
pub mod preprocess;
pub mod runtime;
mod sessions;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ort::value::Tensor;
use serde::Serialize;

use crate::error::{Error, ErrorCode, Result};
use crate::extract::{CancelFlag, Extractor, FaceAssets, Features};
use crate::flow::FlowMethod;
use crate::spec::Limits;
use crate::video::VideoSource;
pub use evidence::{Candidates, Evidence, Neighbour};
pub use manifest::{FeatureSpec, Manifest, Task};
pub use preprocess::Preprocess;
pub use runtime::Provider;
use sessions::Sessions;

/// How to load a model.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The ONNX Runtime shared library (else `ORT_DYLIB_PATH`).
    pub ort_dylib_path: Option<PathBuf>,
    /// Execution provider.
    pub provider: Provider,
    /// Intra-op threads per session (default 1: requests run in parallel instead).
    pub intra_threads: usize,
    /// Sessions kept for concurrent calls (default: number of cores; 1 = one shared session).
    pub sessions: usize,
    /// Check `golden.json` at load.
    pub verify_golden: bool,
    /// The service's limits over the manifest's length, frame size and decoding work.
    pub limits: Limits,
    /// The flow implementation of the model's extractor (both give the spec's numbers).
    pub flow: FlowMethod,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            ort_dylib_path: None,
            provider: Provider::Cpu,
            intra_threads: 1,
            sessions: std::thread::available_parallelism().map_or(2, |n| n.get()),
            verify_golden: true,
            limits: Limits::default(),
            flow: FlowMethod::default(),
        }
    }
}

/// Public facts about a model (never a filesystem path).
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Task.
    pub task: Task,
    /// Class labels.
    pub labels: Vec<String>,
    /// Input width.
    pub n_features: usize,
    /// Feature spec.
    pub features: FeatureSpec,
    /// Execution provider in use (`cpu` or `cuda`).
    pub provider: String,
    /// Neighbours each prediction's [`Evidence`] lists; 0 for a model exported without
    /// evidence outputs.
    pub evidence_k: usize,
}

/// One prediction.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Prediction {
    /// Classification: the most probable label and every class's probability.
    Class {
        /// Most probable label (first on ties).
        label: String,
        /// Probabilities in label order.
        probabilities: Vec<f64>,
    },
    /// Regression.
    Value {
        /// The predicted value.
        value: f64,
    },
}

/// [`Model::predict_video`]'s answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VideoPrediction {
    /// The prediction.
    pub prediction: Prediction,
    /// The features and what the extraction saw.
    pub features: Features,
    /// Milliseconds spent in preprocessing and the model.
    pub predict_ms: f64,
    /// The training rows the prediction drew on, when the model has evidence outputs.
    pub evidence: Option<Evidence>,
}

/// A prediction with its evidence (when the model has evidence outputs and it was asked for).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explained {
    /// The prediction.
    pub prediction: Prediction,
    /// What it drew on.
    pub evidence: Option<Evidence>,
}

/// The raw evidence tensors of one run, row-major `[n, k]`.
struct EvidenceRun {
    k: usize,
    index: Vec<i64>,
    distance: Vec<f32>,
    weight: Vec<f32>,
    label: Vec<f32>,
    /// `[n]`: each row's squared distance to the nearest candidate in input space.
    nearest_input: Vec<f32>,
}

/// A loaded model.
pub struct Model {
    info: ModelInfo,
    manifest: Manifest,
    preprocess: Preprocess,
    extractor: Extractor,
    sessions: Sessions,
    golden: Option<PathBuf>,
    candidates: Option<Candidates>,
    warnings: Vec<String>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("info", &self.info).finish()
    }
}

fn model_error(msg: impl Into<String>) -> Error {
    Error::new(ErrorCode::ModelError, msg)
}

impl Model {
    /// Loads and validates a model directory.
    pub fn load(dir: &Path, opts: &LoadOptions) -> Result<Model> {
        let m = Manifest::load(dir)?;
        let onnx = manifest::confined(dir, &m.files.onnx, "onnx")?;
        let pre = manifest::confined(dir, &m.files.preprocessing, "preprocessing")?;
        let cascade = m
            .files
            .face_cascade
            .as_deref()
            .map(|c| manifest::confined(dir, c, "face cascade"))
            .transpose()?;
        let golden = m
            .files
            .golden
            .as_deref()
            .map(|g| manifest::confined(dir, g, "golden"))
            .transpose()?;
        // Manifest::validate made files.candidates go with onnx.evidence.
        let candidates = match (&m.onnx.evidence, m.files.candidates.as_deref()) {
            (Some(_), Some(c)) => Some(Candidates::load(&manifest::confined(
                dir,
                c,
                "candidates",
            )?)?),
            _ => None,
        };
        let pre_text = std::fs::read_to_string(&pre)
            .map_err(|_| model_error("preprocess.json cannot be read"))?;
        let preprocess = Preprocess::from_json(&pre_text, m.n_features)?;
        let params = m.features.params.capped(&opts.limits);
        params.validate()?;
        runtime::init(opts.ort_dylib_path.as_deref())?;
        // Manifest::load has refused specs this build does not implement.
        let spec = m
            .features
            .spec()
            .ok_or_else(|| model_error("the manifest's feature spec is not implemented"))?;
        let assets = FaceAssets {
            cascade: cascade.as_deref(),
            ort_dylib: opts.ort_dylib_path.as_deref(),
            provider: opts.provider,
        };
        let extractor = Extractor::for_spec(spec, params, assets)?
            .with_flow_method(opts.flow)
            .with_quality_thresholds(m.quality.thresholds);

        let bytes: Arc<[u8]> = std::fs::read(&onnx)
            .map_err(|_| model_error("model.onnx cannot be read"))?
            .into();
        let (sessions, warnings) = Sessions::start(bytes, opts, &m)?;
        let info = ModelInfo {
            name: m.name.clone(),
            version: m.version.clone(),
            task: m.task,
            labels: m.labels.clone(),
            n_features: m.n_features,
            features: m.features.clone(),
            provider: if sessions.cuda() { "cuda" } else { "cpu" }.into(),
            // Manifest::validate made onnx.evidence bring its candidates.json, loaded above.
            evidence_k: m.onnx.evidence.as_ref().map_or(0, |e| e.k),
        };
        let model = Model {
            info,
            manifest: m,
            preprocess,
            extractor,
            sessions,
            golden,
            candidates,
            warnings,
        };
        if opts.verify_golden && model.golden.is_some() {
            let dev = model.verify_golden()?;
            if dev > 1e-4 {
                return Err(model_error(format!(
                    "golden.json check failed: outputs differ by up to {dev:.2e}"
                )));
            }
        }
        Ok(model)
    }

    /// Public facts about the model.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// What loading had to settle for (e.g. `auto` falling back to the CPU): the library
    /// prints nothing, its caller logs these its own way.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Raw feature rows (NaN = missing) → model inputs, after validation.
    fn inputs(&self, rows: &[&[f64]]) -> Result<Vec<f32>> {
        let n = self.manifest.n_features;
        let mut out = Vec::with_capacity(rows.len() * n);
        for (r, row) in rows.iter().enumerate() {
            // A batch's refusal names the row; a single row's reads as before.
            let at = if rows.len() > 1 {
                format!("row {r}: ")
            } else {
                String::new()
            };
            if row.len() != n {
                return Err(Error::new(
                    ErrorCode::InvalidFeatures,
                    format!("{at}expected {n} feature values, got {}", row.len()),
                ));
            }
            if let Some(i) = row.iter().position(|v| v.is_infinite()) {
                return Err(Error::new(
                    ErrorCode::InvalidFeatures,
                    format!("{at}feature {i} is infinite (use NaN or null for missing)"),
                ));
            }
            let x = self.preprocess.apply(row);
            // The network takes 32-bit floats: every preprocessed value must be one, finite.
            // NaN is a missing value no imputer filled; anything else is a value so far out
            // that scaling overflowed (1e21 through a standard scaler, FLT_MAX in a minmax):
            // either would come back as NaN probabilities. Refuse it by name instead.
            if let Some(i) = x.iter().position(|&v| !(v as f32).is_finite()) {
                let name = self
                    .manifest
                    .feature_names
                    .get(i)
                    .map_or("?", String::as_str);
                let why = if row[i].is_nan() {
                    "is missing and this model has no imputer to fill it"
                } else {
                    "is too far out of range for this model (its preprocessed value overflows)"
                };
                return Err(Error::new(
                    ErrorCode::InvalidFeatures,
                    format!("{at}feature {i} ({name}) {why}"),
                ));
            }
            out.extend(x.into_iter().map(|v| v as f32));
        }
        Ok(out)
    }

    /// Logits for a batch of raw rows.
    pub fn logits(&self, rows: &[&[f64]]) -> Result<Vec<Vec<f32>>> {
        Ok(self.run(rows, false)?.0)
    }

    /// Runs the network on raw rows: the logits, and the evidence tensors when asked for and
    /// the model has them.
    fn run(&self, rows: &[&[f64]], evidence: bool) -> Result<(Vec<Vec<f32>>, Option<EvidenceRun>)> {
        if rows.is_empty() {
            return Ok((Vec::new(), None));
        }
        let x = self.inputs(rows)?;
        let (n, f, d) = (
            rows.len(),
            self.manifest.n_features,
            self.manifest.onnx.d_out,
        );
        let io = self.manifest.onnx.evidence.as_ref().filter(|_| evidence);
        let fail = |_| Error::new(ErrorCode::ModelError, "the model failed to run");
        let (flat, ev) = self.sessions.with(|s| {
            let input = Tensor::from_array(([n, f], x.into_boxed_slice())).map_err(fail)?;
            let outputs = s
                .run(ort::inputs![self.manifest.onnx.input.as_str() => input])
                .map_err(fail)?;
            let (shape, data) = outputs[self.manifest.onnx.output.as_str()]
                .try_extract_tensor::<f32>()
                .map_err(fail)?;
            if shape.len() != 2 || shape[0] as usize != n || shape[1] as usize != d {
                return Err(model_error("the model's output has an unexpected shape"));
            }
            let ev = match io {
                None => None,
                Some(io) => {
                    let k = io.k;
                    let shaped = |name: &str, shape: &[i64]| {
                        if shape.len() != 2 || shape[0] as usize != n || shape[1] as usize != k {
                            Err(model_error(format!(
                                "the model's output {name:?} has an unexpected shape"
                            )))
                        } else {
                            Ok(())
                        }
                    };
                    let floats = |name: &str| -> Result<Vec<f32>> {
                        let (shape, data) =
                            outputs[name].try_extract_tensor::<f32>().map_err(fail)?;
                        shaped(name, shape)?;
                        Ok(data.to_vec())
                    };
                    let (shape, nearest) = outputs[io.novelty.as_str()]
                        .try_extract_tensor::<f32>()
                        .map_err(fail)?;
                    if shape.len() != 2 || shape[0] as usize != n || shape[1] != 1 {
                        return Err(model_error(format!(
                            "the model's output {:?} has an unexpected shape",
                            io.novelty
                        )));
                    }
                    let (shape, index) = outputs[io.index.as_str()]
                        .try_extract_tensor::<i64>()
                        .map_err(fail)?;
                    shaped(&io.index, shape)?;
                    Some(EvidenceRun {
                        k,
                        index: index.to_vec(),
                        distance: floats(&io.distance)?,
                        weight: floats(&io.weight)?,
                        label: floats(&io.label)?,
                        nearest_input: nearest.to_vec(),
                    })
                }
            };
            Ok((data.to_vec(), ev))
        })?;
        // Finite inputs can still overflow inside the network (values far outside the
        // training range): such a row has no answer, so it is refused by its index.
        if let Some(bad) = flat.iter().position(|v| !v.is_finite()) {
            let r = bad / d.max(1);
            let at = if n > 1 {
                format!("row {r}: ")
            } else {
                String::new()
            };
            return Err(Error::new(
                ErrorCode::InvalidFeatures,
                format!("{at}the model's output overflows for these feature values (far outside its training range)"),
            ));
        }
        Ok((flat.chunks(d).map(<[f32]>::to_vec).collect(), ev))
    }

    /// Row `r`'s evidence from a run's tensors.
    fn evidence_of(&self, ev: &EvidenceRun, r: usize) -> Result<Evidence> {
        let Some(c) = &self.candidates else {
            return Err(model_error("the model has no candidates.json"));
        };
        let at = r * ev.k..(r + 1) * ev.k;
        let mut neighbours = Vec::with_capacity(ev.k);
        for (j, &i) in ev.index[at.clone()].iter().enumerate() {
            let id = usize::try_from(i)
                .ok()
                .and_then(|i| c.id(i))
                .ok_or_else(|| {
                    model_error("the model's evidence names a candidate candidates.json lacks")
                })?;
            let y = ev.label[at.start + j];
            let (label, value) = match self.manifest.task {
                Task::Regression => (None, Some(f64::from(y))),
                _ => (
                    Some(
                        self.manifest
                            .labels
                            .get(y as usize)
                            .filter(|_| y >= 0.0 && y.fract() == 0.0)
                            .cloned()
                            .ok_or_else(|| {
                                model_error("the model's evidence has a label outside its classes")
                            })?,
                    ),
                    None,
                ),
            };
            neighbours.push(Neighbour {
                id: id.to_string(),
                label,
                value,
                weight: f64::from(ev.weight[at.start + j]),
                distance: f64::from(ev.distance[at.start + j]).max(0.0),
            });
        }
        Ok(Evidence {
            neighbours,
            novelty: c.novelty(f64::from(ev.nearest_input[r]).max(0.0)),
        })
    }

    /// Predicts raw rows with their evidence where the model has it (else `evidence: None`).
    pub fn explain_batch(&self, rows: &[&[f64]]) -> Result<Vec<Explained>> {
        let (logits, ev) = self.run(rows, true)?;
        logits
            .iter()
            .enumerate()
            .map(|(r, l)| {
                Ok(Explained {
                    prediction: self.postprocess(l),
                    evidence: ev.as_ref().map(|ev| self.evidence_of(ev, r)).transpose()?,
                })
            })
            .collect()
    }

    /// [`Model::explain_batch`] for one row.
    pub fn explain(&self, row: &[f64]) -> Result<Explained> {
        let mut out = self.explain_batch(&[row])?;
        out.pop()
            .ok_or_else(|| model_error("the model gave no answer"))
    }

    /// Predicts one raw feature row (NaN = missing; the imputer fills it).
    pub fn predict(&self, row: &[f64]) -> Result<Prediction> {
        let logits = self.logits(&[row])?;
        Ok(self.postprocess(&logits[0]))
    }

    /// Predicts a batch of raw rows in one run of the network (the rows are independent:
    /// each gets the prediction [`Model::predict`] gives it alone, up to the network's
    /// float rounding). A bad row refuses the whole batch, naming the row.
    pub fn predict_batch(&self, rows: &[&[f64]]) -> Result<Vec<Prediction>> {
        Ok(self
            .logits(rows)?
            .iter()
            .map(|l| self.postprocess(l))
            .collect())
    }

    /// Extracts a video's features (with this model's spec parameters and face cascade) and
    /// predicts, in one call.
    pub fn predict_video(
        &self,
        source: VideoSource<'_>,
        cancel: &CancelFlag,
    ) -> Result<VideoPrediction> {
        let features = self.extractor.extract(source, cancel)?;
        if cancel.is_cancelled() {
            return Err(Error::aborted());
        }
        // The warnings this model refuses: the person should record again.
        let refused: Vec<&str> = features
            .meta
            .quality
            .warnings
            .iter()
            .filter(|w| self.manifest.quality.refuse.contains(&w.code))
            .map(|w| w.message.as_str())
            .collect();
        if !refused.is_empty() {
            return Err(Error::new(
                ErrorCode::PoorRecording,
                format!("please record again: {}", refused.join(" ")),
            ));
        }
        let t = std::time::Instant::now();
        let row: Vec<f64> = features.values.iter().map(|&v| f64::from(v)).collect();
        let Explained {
            prediction,
            evidence,
        } = self.explain(&row)?;
        Ok(VideoPrediction {
            prediction,
            features,
            predict_ms: t.elapsed().as_secs_f64() * 1e3,
            evidence,
        })
    }

    /// Probabilities (or the value) from one row of logits.
    pub fn postprocess(&self, logits: &[f32]) -> Prediction {
        let labels = &self.manifest.labels;
        let probabilities: Vec<f64> = match self.manifest.task {
            Task::Regression => {
                return Prediction::Value {
                    value: f64::from(logits[0]),
                }
            }
            Task::Binclass => {
                let p1 = 1.0 / (1.0 + (-f64::from(logits[0])).exp());
                vec![1.0 - p1, p1]
            }
            Task::Multiclass => {
                let max = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                let e: Vec<f64> = logits.iter().map(|&l| f64::from(l - max).exp()).collect();
                let sum: f64 = e.iter().sum();
                e.into_iter().map(|v| v / sum).collect()
            }
        };
        let best =
            probabilities
                .iter()
                .enumerate()
                .fold(0, |b, (i, &p)| if p > probabilities[b] { i } else { b });
        Prediction::Class {
            label: labels[best].clone(),
            probabilities,
        }
    }

    /// Runs `golden.json`'s rows and returns the largest absolute difference of logits and
    /// probabilities (or values) from the exporter's PyTorch + scikit-learn outputs.
    pub fn verify_golden(&self) -> Result<f64> {
        let Some(path) = &self.golden else {
            return Err(model_error("the model directory has no golden.json"));
        };
        let g: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(path)
                .map_err(|_| model_error("golden.json cannot be read"))?,
        )
        .map_err(|_| model_error("golden.json is not valid JSON"))?;
        let rows: Vec<Vec<f64>> = g["rows"]
            .as_array()
            .ok_or_else(|| model_error("golden.json has no rows"))?
            .iter()
            .map(|r| {
                r.as_array()
                    .map(|r| r.iter().map(|v| v.as_f64().unwrap_or(f64::NAN)).collect())
                    .unwrap_or_default()
            })
            .collect();
        let refs: Vec<&[f64]> = rows.iter().map(Vec::as_slice).collect();
        let (logits, ev) = self.run(&refs, true)?;
        let mut worst = 0.0f64;
        if let Some(ev) = &ev {
            // The evidence as PyTorch computed it: weights absolute, squared distances
            // relative to their size. Indices may differ only between equally near candidates,
            // whose distances then agree.
            for (i, e) in g["evidence"]
                .as_array()
                .ok_or_else(|| {
                    model_error("golden.json has no evidence for a model with evidence outputs")
                })?
                .iter()
                .enumerate()
            {
                let n = e["nearest_input_distance"]
                    .as_f64()
                    .ok_or_else(|| model_error("golden.json evidence is incomplete"))?;
                let got = ev
                    .nearest_input
                    .get(i)
                    .ok_or_else(|| model_error("golden.json evidence is incomplete"))?;
                let scale = self.candidates.as_ref().map_or(1.0, Candidates::scale);
                worst = worst.max((f64::from(*got) - n).abs() / n.abs().max(scale));
                for j in 0..ev.k {
                    let at = i * ev.k + j;
                    let (w, d) = (&e["weight"][j], &e["distance"][j]);
                    let (Some(w), Some(d), Some(_)) = (w.as_f64(), d.as_f64(), ev.weight.get(at))
                    else {
                        return Err(model_error("golden.json evidence is incomplete"));
                    };
                    worst = worst.max((f64::from(ev.weight[at]) - w).abs());
                    worst = worst.max((f64::from(ev.distance[at]) - d).abs() / d.abs().max(1.0));
                }
            }
        }
        for (i, l) in logits.iter().enumerate() {
            for (j, v) in l.iter().enumerate() {
                let want = g["logits"][i][j]
                    .as_f64()
                    .ok_or_else(|| model_error("golden.json logits are incomplete"))?;
                worst = worst.max((f64::from(*v) - want).abs());
            }
            match (self.postprocess(l), &g["outputs"][i]) {
                (Prediction::Class { probabilities, .. }, o) => {
                    for (j, p) in probabilities.iter().enumerate() {
                        let want = o["probabilities"][j]
                            .as_f64()
                            .ok_or_else(|| model_error("golden.json outputs are incomplete"))?;
                        worst = worst.max((p - want).abs());
                    }
                }
                (Prediction::Value { value }, o) => {
                    let want = o["value"]
                        .as_f64()
                        .ok_or_else(|| model_error("golden.json outputs are incomplete"))?;
                    worst = worst.max((value - want).abs());
                }
            }
        }
        Ok(worst)
    }
}
