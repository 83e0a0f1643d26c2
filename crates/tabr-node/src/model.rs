//! `loadModel` and the `Model` class: TabR inference from a `tabr-model/1` directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use tabr_core::flow::FlowMethod;
use tabr_core::model::{
    Evidence as CoreEvidence, Explained, LoadOptions, Model as CoreModel,
    Prediction as CorePrediction, Provider, VideoPrediction as CoreVideoPrediction,
};

use crate::{cancel_flag, meta_js, series_js, ExtractMeta, Input, Job, PairSeries};

/// Options of `loadModel`.
#[napi(object)]
#[derive(Default)]
pub struct LoadModelOptions {
    /// The ONNX Runtime library; default `ORT_DYLIB_PATH`, else the one in `onnxruntime-node`.
    pub ort_dylib_path: Option<String>,
    /// `cpu`, `cuda` or `auto`; default `ORT_PROVIDER`, else `cpu`. `cuda` rejects with
    /// `model_error` when the loaded runtime cannot start CUDA; `auto` then uses the CPU and
    /// says so in `model.warnings`.
    pub provider: Option<String>,
    /// Intra-op threads per ONNX session (default 1).
    pub intra_threads: Option<u32>,
    /// ONNX sessions kept for concurrent calls (default: cores; 1 shares one session).
    pub sessions: Option<u32>,
    /// Check `golden.json` while loading (default true).
    pub verify_golden: Option<bool>,
    /// Cap on the manifest's longest video, seconds (the service's `MAX_VIDEO_SECONDS`).
    pub max_seconds: Option<f64>,
    /// Cap on the manifest's largest frame, pixels (the service's `MAX_FRAME_PIXELS`).
    pub max_pixels: Option<f64>,
    /// Cap on the pixels decoded for one video, frames × pixels per frame (the service's
    /// `MAX_DECODED_MEGAPIXELS` × 10⁶).
    pub max_decoded_pixels: Option<f64>,
    /// Cap on the frames per second of `maxSeconds` one video may hold (the service's
    /// `MAX_FRAME_RATE`): more frames are `video_too_large`.
    pub max_frame_rate: Option<f64>,
    /// Optical flow implementation: `rust` (default, ours) or `opencv` (the reference); both
    /// give the spec's numbers.
    #[napi(ts_type = "'rust' | 'opencv'")]
    pub flow: Option<String>,
}

/// The feature spec a model was trained on.
#[napi(object)]
pub struct FeatureSpecInfo {
    /// Spec name (`poc-abs`).
    pub name: String,
    /// Spec version.
    pub version: u32,
}

/// Public facts about a model (never a filesystem path).
#[napi(object)]
pub struct ModelInfo {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// `binclass`, `multiclass` or `regression`.
    pub task: String,
    /// Class labels in class-index order.
    pub labels: Vec<String>,
    /// Input width.
    pub n_features: u32,
    /// Feature spec.
    pub features: FeatureSpecInfo,
    /// Execution provider in use.
    pub provider: String,
    /// Neighbours each prediction's `evidence` lists; 0 for a model exported without
    /// evidence outputs (its predictions carry none).
    pub evidence_k: u32,
}

/// A training row a prediction drew on.
#[napi(object)]
pub struct Neighbour {
    /// The candidate's id (the exporter's `--candidate-ids`, else `row N`).
    pub id: String,
    /// Its label (classifiers).
    pub label: Option<String>,
    /// Its target value (regression).
    pub value: Option<f64>,
    /// Its weight in the prediction (the retrieval softmax).
    pub weight: f64,
    /// Squared L2 distance in the model's key space.
    pub distance: f64,
}

/// What a prediction drew on: the nearest training rows, and how unlike the training set the
/// row is (`novelty`: the share of training rows nearer to their own nearest neighbour than
/// this row is to its nearest, 0–1).
#[napi(object)]
pub struct Evidence {
    /// The nearest candidates, nearest first.
    pub neighbours: Vec<Neighbour>,
    /// 0–1; near 1: unlike the clips the model was trained on.
    pub novelty: f64,
}

fn evidence_js(e: CoreEvidence) -> Evidence {
    Evidence {
        neighbours: e
            .neighbours
            .into_iter()
            .map(|n| Neighbour {
                id: n.id,
                label: n.label,
                value: n.value,
                weight: n.weight,
                distance: n.distance,
            })
            .collect(),
        novelty: e.novelty,
    }
}

/// Options of `predictBatch`.
#[napi(object)]
#[derive(Default)]
pub struct PredictBatchOptions {
    /// Also return each row's evidence (models with evidence outputs; default false).
    pub evidence: Option<bool>,
}

/// A prediction: `{label, probabilities}` for classifiers, `{value}` for regression.
#[napi(object)]
pub struct Prediction {
    /// Most probable label.
    pub label: Option<String>,
    /// Probabilities in label order.
    pub probabilities: Option<Vec<f64>>,
    /// Regression value.
    pub value: Option<f64>,
    /// The training rows it drew on and the row's novelty (models with evidence outputs).
    pub evidence: Option<Evidence>,
}

/// Options of `predictVideo`.
#[napi(object)]
#[derive(Default)]
pub struct PredictVideoOptions {
    /// Also return the 90 feature values (default false: only the prediction and the meta
    /// cross into JS; `featureNames()` names the values).
    pub features: Option<bool>,
    /// Also return the 18 channels of every frame pair (default false).
    pub series: Option<bool>,
}

/// `predictVideo`'s answer.
#[napi(object)]
pub struct VideoPrediction {
    /// The prediction.
    pub prediction: Prediction,
    /// What the extractor saw.
    pub meta: ExtractMeta,
    /// The feature values, in `featureNames()` order, when `options.features` asked for them.
    pub features: Option<Float32Array>,
    /// The per-pair channels, when `options.series` asked for them.
    pub series: Option<PairSeries>,
    /// Milliseconds spent in preprocessing and the model.
    pub predict_ms: f64,
    /// The training rows the prediction drew on (models with evidence outputs).
    pub evidence: Option<Evidence>,
}

/// `predictBatch`'s answer: one entry per row, in row order, as flat arrays.
#[napi(object)]
pub struct BatchPrediction {
    /// Rows predicted.
    pub rows: u32,
    /// Most probable label of each row (classifiers).
    pub labels: Option<Vec<String>>,
    /// Probabilities, row-major: `rows × labels.length` (classifiers).
    pub probabilities: Option<Float64Array>,
    /// The value of each row (regression).
    pub values: Option<Float64Array>,
    /// Each row's evidence, when `options.evidence` asked for it.
    pub evidence: Option<Vec<Evidence>>,
    /// Milliseconds spent in preprocessing and the model.
    pub predict_ms: f64,
}

fn batch_js((predictions, ms): (Vec<Explained>, f64)) -> BatchPrediction {
    let rows = predictions.len() as u32;
    let (mut labels, mut probabilities, mut values) = (Vec::new(), Vec::new(), Vec::new());
    let mut evidence = Vec::new();
    for Explained {
        prediction: p,
        evidence: e,
    } in predictions
    {
        evidence.extend(e.map(evidence_js));
        match p {
            CorePrediction::Class {
                label,
                probabilities: ps,
            } => {
                labels.push(label);
                probabilities.extend(ps);
            }
            CorePrediction::Value { value } => values.push(value),
        }
    }
    let class = !labels.is_empty() || values.is_empty();
    BatchPrediction {
        rows,
        labels: class.then_some(labels),
        probabilities: class.then(|| Float64Array::new(probabilities)),
        values: (!class).then(|| Float64Array::new(values)),
        evidence: (!evidence.is_empty()).then_some(evidence),
        predict_ms: ms,
    }
}

fn prediction_js(p: CorePrediction, evidence: Option<CoreEvidence>) -> Prediction {
    let evidence = evidence.map(evidence_js);
    match p {
        CorePrediction::Class {
            label,
            probabilities,
        } => Prediction {
            label: Some(label),
            probabilities: Some(probabilities),
            value: None,
            evidence,
        },
        CorePrediction::Value { value } => Prediction {
            label: None,
            probabilities: None,
            value: Some(value),
            evidence,
        },
    }
}

fn explained_js(e: Explained) -> Prediction {
    prediction_js(e.prediction, e.evidence)
}

fn video_js((out, opts): (CoreVideoPrediction, PredictVideoOptions)) -> VideoPrediction {
    let f = out.features;
    VideoPrediction {
        prediction: prediction_js(out.prediction, None),
        evidence: out.evidence.map(evidence_js),
        series: opts
            .series
            .unwrap_or(false)
            .then(|| series_js(&f.series, f.meta.fps)),
        meta: meta_js(f.meta),
        features: opts
            .features
            .unwrap_or(false)
            .then(|| Float32Array::new(f.values)),
        predict_ms: out.predict_ms,
    }
}

/// A loaded TabR model.
#[napi]
pub struct Model {
    inner: Arc<CoreModel>,
}

/// The async task of `predictBatch`: the rows' predictions and the predict milliseconds.
type BatchTask = AsyncTask<Job<(Vec<Explained>, f64), BatchPrediction>>;

#[napi]
impl Model {
    /// What loading had to settle for, e.g. `ORT_PROVIDER=auto` falling back to the CPU
    /// (the addon prints nothing; log these your own way).
    #[napi(getter)]
    pub fn warnings(&self) -> Vec<String> {
        self.inner.warnings().to_vec()
    }

    /// Name, version, task, labels, n_features, feature spec and provider.
    #[napi(getter)]
    pub fn info(&self) -> ModelInfo {
        let i = self.inner.info();
        ModelInfo {
            name: i.name.clone(),
            version: i.version.clone(),
            task: i.task.as_str().into(),
            labels: i.labels.clone(),
            n_features: i.n_features as u32,
            features: FeatureSpecInfo {
                name: i.features.name.clone(),
                version: i.features.version,
            },
            provider: i.provider.clone(),
            evidence_k: i.evidence_k as u32,
        }
    }

    /// Predicts one feature vector. NaN or `null` means missing (the imputer fills it).
    /// Rejects with `invalid_features` for a wrong length or infinite values. A model with
    /// evidence outputs also says which training rows the prediction drew on (`evidence`).
    #[napi(
        ts_args_type = "features: Float32Array | Array<number | null>, signal?: AbortSignal | undefined | null",
        ts_return_type = "Promise<Prediction>"
    )]
    pub fn predict(
        &self,
        env: Env,
        features: Either<Float32Array, Vec<Option<f64>>>,
        signal: Option<Object<'_>>,
    ) -> Result<AsyncTask<Job<Explained, Prediction>>> {
        let row: Vec<f64> = match features {
            Either::A(a) => a.iter().map(|&v| f64::from(v)).collect(),
            Either::B(v) => v.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect(),
        };
        // An aborted signal cancels a queued task (napi); one aborted before the call, or before
        // the task starts, rejects with `aborted` here (a prediction is too short to stop
        // half-way).
        let (cancel, signal) = cancel_flag(&env, signal)?;
        let m = self.inner.clone();
        let run = move || {
            if cancel.is_cancelled() {
                return Err(tabr_core::Error::new(
                    tabr_core::ErrorCode::Aborted,
                    "the prediction was aborted by the caller",
                ));
            }
            m.explain(&row)
        };
        Ok(AsyncTask::with_optional_signal(
            Job::new(run, explained_js),
            signal,
        ))
    }

    /// Predicts `rows` feature vectors in one run of the network: `features` holds them
    /// row-major (`rows × nFeatures` values, NaN = missing). Each row gets the prediction
    /// `predict` gives it alone. Rejects with `invalid_features` for a length that is not
    /// `rows × nFeatures` or an infinite value (the message names the row). With
    /// `options.evidence`, a model with evidence outputs also gives each row's evidence.
    #[napi(
        ts_args_type = "features: Float32Array, rows: number, signal?: AbortSignal | undefined | null, options?: PredictBatchOptions | undefined | null",
        ts_return_type = "Promise<BatchPrediction>"
    )]
    pub fn predict_batch(
        &self,
        env: Env,
        features: Float32Array,
        rows: u32,
        signal: Option<Object<'_>>,
        options: Option<PredictBatchOptions>,
    ) -> Result<BatchTask> {
        let want_evidence = options.unwrap_or_default().evidence.unwrap_or(false);
        let n = self.inner.info().n_features;
        let rows = rows as usize;
        let flat: Vec<f64> = features.iter().map(|&v| f64::from(v)).collect();
        let (cancel, signal) = cancel_flag(&env, signal)?;
        let m = self.inner.clone();
        let run = move || {
            if rows == 0 || flat.len() != rows * n {
                return Err(tabr_core::Error::new(
                    tabr_core::ErrorCode::InvalidFeatures,
                    format!(
                        "expected {rows} rows × {n} feature values, got {} values",
                        flat.len()
                    ),
                ));
            }
            if cancel.is_cancelled() {
                return Err(tabr_core::Error::new(
                    tabr_core::ErrorCode::Aborted,
                    "the prediction was aborted by the caller",
                ));
            }
            let t = std::time::Instant::now();
            let refs: Vec<&[f64]> = flat.chunks_exact(n).collect();
            let p = if want_evidence {
                m.explain_batch(&refs)?
            } else {
                m.predict_batch(&refs)?
                    .into_iter()
                    .map(|prediction| Explained {
                        prediction,
                        evidence: None,
                    })
                    .collect()
            };
            Ok((p, t.elapsed().as_secs_f64() * 1e3))
        };
        Ok(AsyncTask::with_optional_signal(
            Job::new(run, batch_js),
            signal,
        ))
    }

    /// Extracts a video's features (with the model's spec and face cascade) and predicts, in
    /// one native task. `input` is a path or the video's bytes; the feature values cross into
    /// JS only when `options.features` asks for them.
    #[napi(
        ts_args_type = "input: string | Buffer, options?: PredictVideoOptions | undefined | null, signal?: AbortSignal | undefined | null",
        ts_return_type = "Promise<VideoPrediction>"
    )]
    pub fn predict_video(
        &self,
        env: Env,
        input: Either<String, Buffer>,
        options: Option<PredictVideoOptions>,
        signal: Option<Object<'_>>,
    ) -> Result<AsyncTask<Job<(CoreVideoPrediction, PredictVideoOptions), VideoPrediction>>> {
        let (cancel, signal) = cancel_flag(&env, signal)?;
        let input = Input::from(input);
        let m = self.inner.clone();
        let opts = options.unwrap_or_default();
        let run = move || {
            m.predict_video(input.source(), &cancel)
                .map(|out| (out, opts))
        };
        Ok(AsyncTask::with_optional_signal(
            Job::new(run, video_js),
            signal,
        ))
    }
}

/// ONNX Runtime's library for `loadModel` and v2's `extractFeatures`: the option, else
/// `ORT_DYLIB_PATH`, else the runtime bundled beside this addon (a release platform package),
/// else the `onnxruntime-node` package nearest it (a development tree).
pub(crate) fn ort_dylib(option: Option<String>) -> Option<PathBuf> {
    // The addon's own folder is read from /proc only when neither names a library.
    ort_node_locate::locate(option.as_deref().map(Path::new), &[]).or_else(default_ort_dylib)
}

/// The runtime for this addon's own file, found through /proc/self/maps.
fn default_ort_dylib() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let addon = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.ends_with(".node") && p.contains("tabr-native"))?;
    ort_node_locate::for_addon(Path::new(addon).parent()?)
}

/// Loads a `tabr-model/1` directory off the event loop. Rejects with `code` `model_error`
/// and a message that says what is wrong (never a path). An aborted `signal` rejects with
/// `aborted`: before the load starts, it never starts; during it (ONNX Runtime's session
/// building cannot be stopped half-way), the loaded model is dropped as soon as it is built.
#[napi(
    ts_args_type = "dir: string, options?: LoadModelOptions | undefined | null, signal?: AbortSignal | undefined | null",
    ts_return_type = "Promise<Model>"
)]
pub fn load_model(
    env: Env,
    dir: String,
    options: Option<LoadModelOptions>,
    signal: Option<Object<'_>>,
) -> Result<AsyncTask<Job<Arc<CoreModel>, Model>>> {
    let (cancel, signal) = crate::cancel_flag(&env, signal)?;
    let o = options.unwrap_or_default();
    // The option wins over `ORT_PROVIDER`; a bad value rejects with `model_error` like any
    // other load failure.
    let provider = match &o.provider {
        Some(p) => Provider::parse(p),
        None => Provider::from_env(),
    };
    let dylib = ort_dylib(o.ort_dylib_path);
    let defaults = LoadOptions::default();
    let intra_threads = o
        .intra_threads
        .map_or(defaults.intra_threads, |n| n as usize);
    let sessions = o.sessions.map_or(defaults.sessions, |n| n as usize);
    let verify_golden = o.verify_golden.unwrap_or(true);
    let limits = tabr_core::Limits {
        max_seconds: o.max_seconds,
        max_pixels: o.max_pixels.map(crate::count_option),
        max_decoded_pixels: o.max_decoded_pixels.map(crate::count_option),
        max_frame_rate: o.max_frame_rate,
    };
    let flow = FlowMethod::from_option(o.flow.as_deref());
    let run = move || {
        let aborted = || {
            tabr_core::Error::new(
                tabr_core::ErrorCode::Aborted,
                "loading the model was aborted by the caller",
            )
        };
        if cancel.is_cancelled() {
            return Err(aborted());
        }
        let opts = LoadOptions {
            ort_dylib_path: dylib,
            provider: provider?,
            intra_threads,
            sessions,
            verify_golden,
            limits,
            flow: flow?,
        };
        let model = CoreModel::load(Path::new(&dir), &opts).map(Arc::new)?;
        if cancel.is_cancelled() {
            return Err(aborted());
        }
        Ok(model)
    };
    Ok(AsyncTask::with_optional_signal(
        Job::new(run, |inner| Model { inner }),
        signal,
    ))
}
