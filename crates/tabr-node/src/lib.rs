//! Node binding of `tabr-core` (`@org/tabr-native`): type conversion and async glue only.
//!
//! Every heavy call is a napi [`Task`] run on libuv's thread pool, never on the event loop.
//! An `AbortSignal` cancels a queued task outright and stops a running one at its next frame
//! through the core's [`CancelFlag`]. Failures reject with an `Error` whose `code` is the
//! core's stable code (`invalid_video`, `no_face`, …); see [`reject_with_code`].
#![deny(missing_docs)]

pub mod model;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use tabr_core::{CancelFlag, Extractor, FaceAssets, Features, Spec, SpecParams, VideoSource};

/// Options of `extractFeatures`.
#[napi(object)]
#[derive(Default)]
pub struct ExtractOptions {
    /// Path of a Haar cascade XML to use instead of the built-in frontal face cascade
    /// (a model's own face assets).
    pub cascade: Option<String>,
    /// Longest accepted video in seconds of decoded frames (spec default 10.5).
    pub max_seconds: Option<f64>,
    /// Largest accepted frame in pixels, width × height (spec default 1920 × 1080).
    pub max_pixels: Option<f64>,
    /// Most pixels decoded for the video, frames × pixels per frame (default
    /// 1920 × 1080 × 60 × 10.5); more is `video_too_large`.
    pub max_decoded_pixels: Option<f64>,
    /// Frames per second of `maxSeconds` the video may hold (default 120): more frames are
    /// `video_too_large`.
    pub max_frame_rate: Option<f64>,
    /// Optical flow implementation: `rust` (default, ours) or `opencv` (the reference); both
    /// give the spec's numbers.
    #[napi(ts_type = "'rust' | 'opencv'")]
    pub flow: Option<String>,
    /// Also return the 18 channels of every frame pair (default false).
    pub series: Option<bool>,
    /// The feature spec, `poc-abs/1` (default) or `poc-abs/2` (`FEATURE_SPECS`); v2 runs its
    /// face networks with ONNX Runtime, found as `loadModel` finds it.
    #[napi(ts_type = "'poc-abs/1' | 'poc-abs/2'")]
    pub spec: Option<String>,
    /// ONNX Runtime's shared library for `poc-abs/2` (default: `ORT_DYLIB_PATH`, else the
    /// one bundled beside the addon, else the `onnxruntime-node` package's).
    pub ort_dylib_path: Option<String>,
    /// Where `poc-abs/2` runs its face networks: `cpu`, `cuda` or `auto` (default: the
    /// `ORT_PROVIDER` variable, else `cpu`). `cuda` needs the `@org/tabr-native-linux-x64-gpu`
    /// package and CUDA 12 with cuDNN 9; `auto` takes the CPU when CUDA cannot run.
    pub provider: Option<String>,
}

/// The 18 channels of every frame pair, from which the statistics are computed: when and
/// where the face moved.
#[napi(object)]
pub struct PairSeries {
    /// The channel names, e.g. `mouth.abs` (`channelNames()`).
    pub channels: Vec<String>,
    /// Each pair's time in seconds: that of its later frame.
    pub t_s: Float64Array,
    /// Row-major, `tS.length × channels.length`.
    pub values: Float32Array,
}

pub(crate) fn series_js(s: &tabr_core::Series, fps: f64) -> PairSeries {
    PairSeries {
        channels: tabr_core::spec::channel_names(),
        t_s: Float64Array::new(s.times(fps)),
        values: Float32Array::new(s.values.iter().flatten().copied().collect()),
    }
}

/// Per-stage wall time in milliseconds (`flow` and `poc` are summed over pool workers).
#[napi(object)]
pub struct StageTimings {
    /// Reading and gray conversion.
    pub decode: f64,
    /// Face detection and crops.
    pub face: f64,
    /// Farnebäck flow.
    pub flow: f64,
    /// POC and channel maths.
    pub poc: f64,
    /// Whole extraction.
    pub total: f64,
}

/// A face box in force from `frame` on.
#[napi(object)]
pub struct FaceBoxChange {
    /// First frame the box applies to.
    pub frame: u32,
    /// Left edge, full-resolution pixels.
    pub x: i32,
    /// Top edge.
    pub y: i32,
    /// Side length.
    pub side: i32,
}

/// What the extractor saw.
#[napi(object)]
pub struct ExtractMeta {
    /// Frames decoded.
    pub frames: u32,
    /// Frame pairs used (from the first face on).
    pub pairs: u32,
    /// Frames per second.
    pub fps: f64,
    /// Frame width after rotation.
    pub width: u32,
    /// Frame height after rotation.
    pub height: u32,
    /// Duration in seconds (`frames / fps`).
    pub duration_s: f64,
    /// Face detection tries.
    pub detect_tries: u32,
    /// Tries that found a face.
    pub detect_hits: u32,
    /// `detectHits / detectTries` (0 without tries).
    pub face_detect_rate: f64,
    /// Times the face box was replaced.
    pub box_changes: u32,
    /// Packets the decoder could not use and skipped (reading goes on, spec §1).
    pub decode_errors: u32,
    /// Every face box in force.
    pub boxes: Vec<FaceBoxChange>,
    /// Per-stage milliseconds.
    pub timings_ms: StageTimings,
    /// How good the recording was, with warnings where it falls short.
    pub quality: RecordingQuality,
}

/// A recording-quality warning: a stable code and a sentence for a person.
#[napi(object)]
pub struct QualityWarning {
    /// `face_small`, `too_dark`, `blurred`, `head_turned` or `face_lost_often`.
    pub code: String,
    /// What to do about it.
    pub message: String,
}

/// How good the recording was (`tabr_core::Quality`). Its fields keep the core's snake_case
/// names, the names an HTTP answer gives them, so it crosses to the service as it is.
#[napi(object)]
pub struct RecordingQuality {
    /// The face box's side, median over the tries with a face, pixels.
    #[napi(js_name = "face_px")]
    pub face_px: f64,
    /// The share of tries that found a face.
    #[napi(js_name = "face_rate")]
    pub face_rate: f64,
    /// The face crops' mean gray level, 0–255.
    pub brightness: f64,
    /// The crops' Laplacian variance over their own variance (higher is sharper).
    pub sharpness: f64,
    /// v2: the head's left–right turn over the tries, degrees `[min, max]`.
    #[napi(js_name = "yaw_deg")]
    pub yaw_deg: Option<Vec<f64>>,
    /// v2: the head's up–down nod over the tries, degrees `[min, max]`.
    #[napi(js_name = "pitch_deg")]
    pub pitch_deg: Option<Vec<f64>>,
    /// v2: the head's tilt over the tries, degrees `[min, max]`.
    #[napi(js_name = "roll_deg")]
    pub roll_deg: Option<Vec<f64>>,
    /// v2: FaceMesh's face flag as a probability, median over the tries with a face.
    #[napi(js_name = "face_flag")]
    pub face_flag: Option<f64>,
    /// The measures past their thresholds.
    pub warnings: Vec<QualityWarning>,
}

pub(crate) fn quality_js(q: tabr_core::extract::Quality) -> RecordingQuality {
    RecordingQuality {
        face_px: q.face_px,
        face_rate: q.face_rate,
        brightness: q.brightness,
        sharpness: q.sharpness,
        yaw_deg: q.yaw_deg.map(Vec::from),
        pitch_deg: q.pitch_deg.map(Vec::from),
        roll_deg: q.roll_deg.map(Vec::from),
        face_flag: q.face_flag,
        warnings: q
            .warnings
            .into_iter()
            .map(|w| QualityWarning {
                code: w.code.as_str().into(),
                message: w.message,
            })
            .collect(),
    }
}

/// The feature vector of one video, in the spec the call asked for (`FEATURE_SPECS`).
#[napi(object)]
pub struct ExtractResult {
    /// 90 values, channel-major (`names[i]` names `values[i]`).
    pub values: Float32Array,
    /// Feature names, e.g. `mouth.abs.p95`.
    pub names: Vec<String>,
    /// What the extractor saw.
    pub meta: ExtractMeta,
    /// The per-pair channels, when `options.series` asked for them.
    pub series: Option<PairSeries>,
}

pub(crate) enum Input {
    Path(String),
    Bytes(Vec<u8>),
}

impl From<Either<String, Buffer>> for Input {
    fn from(v: Either<String, Buffer>) -> Self {
        match v {
            Either::A(path) => Input::Path(path),
            Either::B(buf) => Input::Bytes(buf.to_vec()),
        }
    }
}

impl Input {
    /// The core's view of this input.
    pub(crate) fn source(&self) -> VideoSource<'_> {
        match self {
            Input::Path(p) => VideoSource::Path(std::path::Path::new(p)),
            Input::Bytes(b) => VideoSource::Bytes(b),
        }
    }
}

/// Every heavy call: a closure run off the event loop, its result converted for JS on the
/// JS thread, and core errors rejected with their stable `code` (panics become `internal`).
pub struct Job<T: Send + 'static, J> {
    run: Option<Box<dyn FnOnce() -> tabr_core::Result<T> + Send>>,
    to_js: fn(T) -> J,
    error: Option<tabr_core::Error>,
}

impl<T: Send + 'static, J> Job<T, J> {
    fn new(run: impl FnOnce() -> tabr_core::Result<T> + Send + 'static, to_js: fn(T) -> J) -> Self {
        Job {
            run: Some(Box::new(run)),
            to_js,
            error: None,
        }
    }
}

impl<T: Send + 'static, J: ToNapiValue + TypeName> Task for Job<T, J> {
    type Output = T;
    type JsValue = J;

    fn compute(&mut self) -> Result<T> {
        let run = self
            .run
            .take()
            .ok_or_else(|| Error::from_reason("the task ran twice"))?;
        let out =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).unwrap_or_else(|_| {
                Err(tabr_core::Error::new(
                    tabr_core::ErrorCode::Internal,
                    "the native task panicked",
                ))
            });
        out.map_err(|e| {
            let reason = e.message().to_string();
            self.error = Some(e);
            Error::from_reason(reason)
        })
    }

    fn resolve(&mut self, _env: Env, out: T) -> Result<J> {
        Ok((self.to_js)(out))
    }

    fn reject(&mut self, env: Env, err: Error) -> Result<J> {
        match self.error.take() {
            Some(e) => Err(reject_with_code(&env, e.code().as_str(), e.message())),
            None => Err(err),
        }
    }
}

/// A cancel flag wired to an optional JS `AbortSignal` (an already aborted one cancels at once:
/// napi's `AbortSignal` only hears future aborts).
pub(crate) fn cancel_flag(
    env: &Env,
    signal: Option<Object<'_>>,
) -> Result<(CancelFlag, Option<AbortSignal>)> {
    let cancel = CancelFlag::new();
    let signal = match signal {
        Some(s) if s.get_named_property::<bool>("aborted").unwrap_or(false) => {
            cancel.cancel();
            None
        }
        Some(s) => Some(abort_signal(env, s)?),
        None => None,
    };
    if let Some(s) = &signal {
        let c = cancel.clone();
        s.on_abort(move || c.cancel());
    }
    Ok((cancel, signal))
}

pub(crate) fn to_js((f, with_series): (Features, bool)) -> ExtractResult {
    ExtractResult {
        series: with_series.then(|| series_js(&f.series, f.meta.fps)),
        values: Float32Array::new(f.values),
        names: tabr_core::feature_names(),
        meta: meta_js(f.meta),
    }
}

pub(crate) fn meta_js(m: tabr_core::Meta) -> ExtractMeta {
    let t = m.timings_ms;
    ExtractMeta {
        frames: m.frames as u32,
        pairs: m.pairs as u32,
        fps: m.fps,
        width: m.width,
        height: m.height,
        duration_s: m.duration_s,
        detect_tries: m.detect_tries as u32,
        detect_hits: m.detect_hits as u32,
        face_detect_rate: m.face_detect_rate,
        box_changes: m.box_changes as u32,
        decode_errors: m.decode_errors as u32,
        boxes: m
            .boxes
            .iter()
            .map(|b| FaceBoxChange {
                frame: b.frame as u32,
                x: b.face.x,
                y: b.face.y,
                side: b.face.side,
            })
            .collect(),
        timings_ms: StageTimings {
            decode: t.decode,
            face: t.face,
            flow: t.flow,
            poc: t.poc,
            total: t.total,
        },
        quality: quality_js(m.quality),
    }
}

/// The one place core errors become JS errors: an `Error` with `code` set to the stable code.
pub(crate) fn reject_with_code(env: &Env, code: &str, message: &str) -> Error {
    let make = || -> Result<Error> {
        let mut obj = env.create_error(Error::from_reason(message.to_string()))?;
        obj.set_named_property("code", code)?;
        Ok(Error::from(obj.to_unknown()))
    };
    make().unwrap_or_else(|e| e)
}

/// The extractor `extractFeatures`' options ask for; a bad option is a core error with its
/// code, rejected like every other.
fn build_extractor(options: &ExtractOptions) -> tabr_core::Result<Extractor> {
    let spec = options.spec.as_deref().map_or(Ok(Spec::V1), Spec::parse)?;
    let mut params = SpecParams::default();
    if let Some(s) = options.max_seconds {
        params.max_seconds = s;
    }
    if let Some(p) = options.max_pixels {
        params.max_pixels = count_option(p);
    }
    if let Some(p) = options.max_decoded_pixels {
        params.max_decoded_pixels = count_option(p);
    }
    if let Some(r) = options.max_frame_rate {
        params.max_frame_rate = r;
    }
    params.validate()?;
    let flow = tabr_core::flow::FlowMethod::from_option(options.flow.as_deref())?;
    let dylib = spec
        .needs_onnxruntime()
        .then(|| model::ort_dylib(options.ort_dylib_path.clone()))
        .flatten();
    let provider = match &options.provider {
        Some(p) => tabr_core::model::Provider::parse(p)?,
        None => tabr_core::model::Provider::from_env()?,
    };
    let assets = FaceAssets {
        cascade: options.cascade.as_deref().map(std::path::Path::new),
        ort_dylib: dylib.as_deref(),
        provider,
    };
    Ok(Extractor::for_spec(spec, params, assets)?.with_flow_method(flow))
}

/// A JS number option that counts something (pixels): negative and NaN become 0, which the
/// parameter checks then refuse; fractions are dropped.
pub(crate) fn count_option(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        v as u64
    } else if v == f64::INFINITY {
        u64::MAX
    } else {
        0
    }
}

/// Extracts the POC-ABS features of one video (v1 unless `options.spec` says otherwise), off
/// the event loop.
///
/// `input` is a file path or the video's bytes (decoded from memory; nothing is written).
/// Rejects with an `Error` whose `code` is one of `invalid_video`, `video_too_long`,
/// `video_too_short`, `frame_too_large`, `video_too_large`, `no_face`, `aborted`,
/// `model_error` (a bad option, or no usable ONNX Runtime for `poc-abs/2`) or `internal`.
#[napi(
    ts_args_type = "input: string | Buffer, options?: ExtractOptions | undefined | null, signal?: AbortSignal | undefined | null",
    ts_return_type = "Promise<ExtractResult>"
)]
pub fn extract_features(
    env: Env,
    input: Either<String, Buffer>,
    options: Option<ExtractOptions>,
    signal: Option<Object<'_>>,
) -> Result<AsyncTask<Job<(Features, bool), ExtractResult>>> {
    let options = options.unwrap_or_default();
    let with_series = options.series.unwrap_or(false);
    let extractor = build_extractor(&options)
        .map_err(|e| reject_with_code(&env, e.code().as_str(), e.message()))?;
    let (cancel, signal) = cancel_flag(&env, signal)?;
    let input = Input::from(input);
    let job = Job::new(
        move || {
            extractor
                .extract(input.source(), &cancel)
                .map(|f| (f, with_series))
        },
        to_js,
    );
    Ok(AsyncTask::with_optional_signal(job, signal))
}

/// What this build of the addon can read: the demuxers and video decoders of the FFmpeg it
/// links, and the demuxers the decoder accepts at all (its allow-list). The release build's
/// own FFmpeg holds only those demuxers; a development build links the system's.
#[napi(object)]
pub struct BuildInfo {
    /// FFmpeg's demuxers, by FFmpeg's names (e.g. `mov,mp4,m4a,3gp,3g2,mj2`), sorted.
    pub demuxers: Vec<String>,
    /// FFmpeg's video decoders (e.g. `h264`, `libdav1d`), sorted.
    pub decoders: Vec<String>,
    /// The demuxer names the decoder accepts (`video/input.rs`), in its order.
    pub allowed_demuxers: Vec<String>,
}

/// This build's [`BuildInfo`].
#[napi]
pub fn build_info() -> BuildInfo {
    let (demuxers, decoders) = tabr_core::video::input::ffmpeg_capabilities();
    BuildInfo {
        demuxers,
        decoders,
        allowed_demuxers: tabr_core::video::input::ALLOWED_DEMUXERS
            .split(',')
            .map(str::to_string)
            .collect(),
    }
}

/// The frames of a video as the pipeline sees them (gray, upright), reduced to a count and a
/// digest: two builds that decode a file to the same bytes give the same `digest`. For
/// comparing builds (the release tests hold the portable addon to the development one).
#[napi(object)]
pub struct FrameDigest {
    /// Decoded frames.
    pub frames: u32,
    /// FNV-1a 64 of every frame's size and bytes, in order, as 16 hex digits.
    pub digest: String,
}

/// Decodes `input` under the default limits and returns its [`FrameDigest`] (rejects with the
/// decoder's error codes, as `extractFeatures` does).
#[napi(ts_return_type = "Promise<FrameDigest>")]
pub fn frame_digest(input: Either<String, Buffer>) -> AsyncTask<Job<(u64, u64), FrameDigest>> {
    let input = Input::from(input);
    AsyncTask::new(Job::new(
        move || tabr_core::video::frame_digest(input.source(), &SpecParams::default()),
        |(frames, digest)| FrameDigest {
            frames: u32::try_from(frames).unwrap_or(u32::MAX),
            digest: format!("{digest:016x}"),
        },
    ))
}

/// The napi `AbortSignal` of a JS `AbortSignal` object.
fn abort_signal(env: &Env, obj: Object<'_>) -> Result<AbortSignal> {
    // SAFETY: `obj` is a live JS value of this env, on the JS thread, as from_napi_value needs.
    #[allow(unsafe_code)]
    unsafe {
        AbortSignal::from_napi_value(env.raw(), obj.raw())
    }
}

/// Names of the 90 features, in vector order.
#[napi]
pub fn feature_names() -> Vec<String> {
    tabr_core::feature_names()
}

/// Names of the 18 per-pair channels, in series order (e.g. `mouth.abs`).
#[napi]
pub fn channel_names() -> Vec<String> {
    tabr_core::spec::channel_names()
}

/// This build's version (the npm package version).
#[napi]
pub const VERSION: &str = tabr_core::VERSION;

/// The feature specs this build implements, as `name/version` (e.g. `poc-abs/1`): a model's
/// `info.features` must be one of them.
#[napi]
pub const FEATURE_SPECS: [&str; tabr_core::FEATURE_SPECS.len()] = tabr_core::FEATURE_SPECS;

/// The model directory formats `loadModel` reads (e.g. `tabr-model/1`).
#[napi]
pub const MODEL_FORMATS: [&str; tabr_core::MODEL_FORMATS.len()] = tabr_core::MODEL_FORMATS;

/// A face region of a spec, as fractions of the canonical crop's side.
#[napi(object)]
pub struct SpecRegion {
    /// e.g. `mouth`.
    pub name: String,
    /// Left edge.
    pub x0: f64,
    /// Top edge.
    pub y0: f64,
    /// Right edge.
    pub x1: f64,
    /// Bottom edge.
    pub y1: f64,
}

/// A feature spec this build implements, as the core describes it.
#[napi(object)]
pub struct SpecDescription {
    /// `name/version`, e.g. `poc-abs/2` (what `extractFeatures`' `spec` option takes).
    pub id: String,
    /// A manifest's `features.name`.
    pub name: String,
    /// A manifest's `features.version`.
    pub version: u32,
    /// How the face is found and cut: `haar-box` or `landmark-aligned`.
    pub face_method: String,
    /// The eight regions, in vector order.
    pub regions: Vec<SpecRegion>,
    /// The per-pair channels (`options.series`), in order.
    pub channels: Vec<String>,
    /// The statistics of each channel, in order.
    pub statistics: Vec<String>,
    /// The feature names, channel-major.
    pub names: Vec<String>,
    /// The vector's length.
    pub n_features: u32,
    /// What extraction needs beyond the addon: `onnxruntime` (see `ortDylibPath`).
    pub needs: Vec<String>,
    /// The recording-quality measures its answers carry (`meta.quality`).
    pub quality: Vec<String>,
}

/// Every feature spec this build implements, oldest first: the one description the CLI,
/// the service and its contracts read.
#[napi]
pub fn specs() -> Vec<SpecDescription> {
    tabr_core::Spec::visible()
        .iter()
        .map(|s| {
            let d = s.describe();
            SpecDescription {
                id: d.id.into(),
                name: d.name.into(),
                version: d.version,
                face_method: d.face_method.into(),
                regions: d
                    .regions
                    .iter()
                    .map(|r| SpecRegion {
                        name: r.name.into(),
                        x0: r.x0,
                        y0: r.y0,
                        x1: r.x1,
                        y1: r.y1,
                    })
                    .collect(),
                channels: d.channels,
                statistics: d.statistics.iter().map(|s| (*s).into()).collect(),
                names: d.names,
                n_features: d.n_features as u32,
                needs: d.needs.iter().map(|s| (*s).into()).collect(),
                quality: d.quality.iter().map(|s| (*s).into()).collect(),
            }
        })
        .collect()
}

/// The stable error codes a rejection's `code` can take.
#[napi]
pub fn error_codes() -> Vec<&'static str> {
    tabr_core::ErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .collect()
}

/// JSON Schemas of the metadata the core reports (`Meta`, `VideoSummary`, `StageTimings`), as
/// one JSON text keyed by name: the contract `make contracts` generates the service's types
/// and OpenAPI shapes from. `ExtractMeta` is this binding's camelCase view of `Meta`.
#[napi]
pub fn metadata_schemas() -> String {
    tabr_core::contracts::schemas().to_string()
}
