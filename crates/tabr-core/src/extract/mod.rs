//! The streaming POC-ABS extractor (v1 §1–§7; v2 changes only the face method and the
//! regions, see [`Spec`]).
//!
//! The caller's thread decodes and converts to gray. Until the first face it also tries every
//! frame for a face, in order (where the schedule starts depends on each answer). From then
//! on the scheduled re-detections run on one process-wide pool (see [`pool`]) while decoding
//! goes on, each given the most recent hit (v2 looks there first), so each starts once the one
//! before it is applied (they are a re-detection period apart: no parallelism is lost);
//! frames wait in order for their box, then their crops are cut and each frame pair
//! becomes a pool job that runs Farnebäck, the POCs and the 18 channels. At most one
//! re-detection period of frames and a few pairs per core are in flight, so memory does not
//! grow with clip length. Concurrent extractions share the pool and so never run more work
//! than there are cores.
//!
//! A video with no face yet stops being searched once even a face on every later try could
//! not reach `min_face_rate` within the length limit; decoding still runs to the end, so
//! `video_too_long` keeps precedence over `no_face` as in the spec.
//!
//! Layout: this module holds the public types and [`Extractor::extract`] (decode loop and the
//! final statistics); `schedule` the face-box rules of §2, `pipeline` the in-flight frames and
//! pool jobs, `channels` the per-pair maths of §4 behind the [`Flow`] seam (our Farnebäck by
//! default, OpenCV's on request, see [`crate::flow`]; another implementation plugs in with
//! [`Extractor::with_flow`]).

mod channels;
pub mod overlay;
mod pipeline;
pub mod quality;
mod schedule;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use opencv::core::{Mat, MatTraitConst};
use schemars::JsonSchema;
use serde::Serialize;

use crate::error::{Error, ErrorCode, Result};
pub use crate::face::method::{
    AlignedFit, FaceMethod, Geometry, HaarBox, LandmarkAligned, ALIGN_KEEP_PX, TEMPLATE,
};
use crate::face::{FaceBox, FaceDetector, FaceMesh};
pub use crate::flow::{Flow, FlowMethod, OpenCvFarneback};
use crate::spec::{FaceKind, Spec, SpecParams, N_CHANNELS, N_FEATURES};
use crate::stats::summarize;
use crate::video::{Decoder, VideoSource};
use pipeline::{ms, Pipeline};
pub use quality::{measure_crop, Quality, QualityCode, QualityThresholds, QualityWarning};
use schedule::Schedule;

/// A change of the face box: from frame `frame` on, the box is (`x`, `y`, `side`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub struct BoxChange {
    /// First frame the box applies to.
    pub frame: u64,
    /// The box.
    #[serde(flatten)]
    pub face: FaceBox,
}

/// Wall time per stage, in milliseconds. `decode` and `face` (detection and crops) run on the
/// decoding thread; `flow` and `poc` are summed over the pool's workers (CPU time).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, JsonSchema)]
pub struct StageTimings {
    /// Reading and gray conversion.
    pub decode: f64,
    /// Face detection and cropping.
    pub face: f64,
    /// Farnebäck flow, summed over pairs.
    pub flow: f64,
    /// POC and channel maths, summed over pairs.
    pub poc: f64,
    /// Wall time of the whole extraction.
    pub total: f64,
}

/// What the extractor reports beside the features (spec §7).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Meta {
    /// Frames decoded.
    pub frames: u64,
    /// Frame pairs used (from the first face on).
    pub pairs: u64,
    /// Frames per second used by the schedule and limits.
    pub fps: f64,
    /// Frame width after rotation.
    pub width: u32,
    /// Frame height after rotation.
    pub height: u32,
    /// `frames / fps`, seconds.
    pub duration_s: f64,
    /// Face detection tries.
    pub detect_tries: u64,
    /// Tries that found a face.
    pub detect_hits: u64,
    /// `detect_hits / detect_tries` (0 without tries): how steadily the face was found.
    pub face_detect_rate: f64,
    /// Times the box was replaced after the first detection.
    pub box_changes: u64,
    /// Packets the decoder could not use and skipped (spec §1: reading goes on).
    pub decode_errors: u64,
    /// Every box in force, with the frame it starts at.
    pub boxes: Vec<BoxChange>,
    /// Per-stage milliseconds.
    pub timings_ms: StageTimings,
    /// How good the recording was, and warnings where it falls short.
    pub quality: Quality,
}

/// The part of [`Meta`] a service answer carries about the video (its `video` object): what
/// a person needs to judge the recording, without the extractor's internals.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct VideoSummary {
    /// Frames decoded.
    pub frames: u64,
    /// Frames per second used by the schedule and limits.
    pub fps: f64,
    /// `frames / fps`, seconds.
    pub duration_s: f64,
    /// Frame width after rotation.
    pub width: u32,
    /// Frame height after rotation.
    pub height: u32,
    /// Tries that found a face over all tries (0 without tries): how steadily the face was found.
    pub face_detect_rate: f64,
    /// How good the recording was, and warnings where it falls short.
    pub quality: Quality,
}

impl From<&Meta> for VideoSummary {
    fn from(m: &Meta) -> Self {
        Self {
            frames: m.frames,
            fps: m.fps,
            duration_s: m.duration_s,
            width: m.width,
            height: m.height,
            face_detect_rate: m.face_detect_rate,
            quality: m.quality.clone(),
        }
    }
}

/// The feature vector of one video and its metadata.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Features {
    /// [`N_FEATURES`] values, channel-major, named by [`spec::feature_names`].
    pub values: Vec<f32>,
    /// What the extraction saw.
    pub meta: Meta,
    /// The per-pair channels the statistics were computed from.
    pub series: Series,
}

/// The [`N_CHANNELS`] channels of every frame pair (spec §4), named by
/// [`spec::channel_names`]: the values the statistics summarise, kept so a person can see
/// when and where the face moved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    /// The first frame with a face: pair `k` joins frames `first_frame + k` and
    /// `first_frame + k + 1`.
    pub first_frame: u64,
    /// Per pair, in order, the channel values.
    pub values: Vec<[f32; N_CHANNELS]>,
}

impl Series {
    /// The time of each pair, seconds: that of its later frame, `(first_frame + k + 1) / fps`.
    pub fn times(&self, fps: f64) -> Vec<f64> {
        (0..self.values.len() as u64)
            .map(|k| (self.first_frame + k + 1) as f64 / fps)
            .collect()
    }
}

/// A flag the caller sets to stop an extraction early (it then fails with `aborted`).
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    /// A new, unset flag.
    pub fn new() -> Self {
        Self::default()
    }
    /// Asks the extraction to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    /// Whether [`CancelFlag::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The process-wide pool for pair work: one thread per core (or `TABR_THREADS`).
pub fn pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        // OpenCV's own threading would oversubscribe the cores this pool already uses.
        let _ = opencv::core::set_num_threads(1);
        let n = std::env::var("TABR_THREADS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("tabr-pair-{i}"))
            .build()
            .expect("the pair pool's threads can be started")
    })
}

/// What building an extractor for a spec may use: v1's face cascade (a model's own, else the
/// built-in one) and, for v2's face networks, the ONNX Runtime library (else `ORT_DYLIB_PATH`)
/// and the execution provider they run on.
#[derive(Debug, Clone, Copy, Default)]
pub struct FaceAssets<'a> {
    /// A Haar cascade XML for v1 instead of the built-in frontal face cascade.
    pub cascade: Option<&'a Path>,
    /// ONNX Runtime's shared library, for v2.
    pub ort_dylib: Option<&'a Path>,
    /// The execution provider of v2's face networks (CPU by default).
    pub provider: crate::model::Provider,
}

/// The POC-ABS extractor: a spec's face method and regions, its parameters and a flow.
#[derive(Debug, Clone)]
pub struct Extractor {
    spec: Spec,
    face: Arc<dyn FaceMethod>,
    flow: Arc<dyn Flow>,
    params: SpecParams,
    quality: QualityThresholds,
}

impl Extractor {
    /// A v1 extractor with the built-in cascade and the spec's default parameters.
    pub fn new() -> Result<Extractor> {
        Ok(Self::with(FaceDetector::builtin()?, SpecParams::default()))
    }

    /// A v1 extractor with a given detector and parameters, and the default flow
    /// ([`FlowMethod::Rust`], our Farnebäck; [`Extractor::with_flow_method`] picks OpenCV's).
    pub fn with(detector: Arc<FaceDetector>, params: SpecParams) -> Extractor {
        Extractor {
            spec: Spec::V1,
            face: Arc::new(HaarBox::new(detector)),
            flow: FlowMethod::default().build(),
            params,
            quality: QualityThresholds::default(),
        }
    }

    /// An extractor for `spec`. v2's face networks are loaded once per process and shared; a
    /// cascade is a v1 asset and is refused for v2 (`model_error`).
    pub fn for_spec(spec: Spec, params: SpecParams, assets: FaceAssets<'_>) -> Result<Extractor> {
        if assets.cascade.is_some() && !spec.takes_cascade() {
            return Err(Error::new(
                ErrorCode::ModelError,
                format!(
                    "a face cascade belongs to poc-abs/1; {} finds faces with its own networks",
                    spec.id()
                ),
            ));
        }
        let face: Arc<dyn FaceMethod> = match spec.face() {
            FaceKind::HaarBox => Arc::new(HaarBox::new(FaceDetector::from_option(assets.cascade)?)),
            FaceKind::LandmarkAligned => Arc::new(LandmarkAligned::new(FaceMesh::shared(
                assets.ort_dylib,
                assets.provider,
            )?)),
        };
        Ok(Extractor {
            spec,
            face,
            flow: FlowMethod::default().build(),
            params,
            quality: QualityThresholds::default(),
        })
    }

    /// The spec this extractor computes.
    pub fn spec(&self) -> Spec {
        self.spec
    }

    /// The same extractor with one of the built-in flow implementations.
    pub fn with_flow_method(self, method: FlowMethod) -> Extractor {
        self.with_flow(method.build())
    }

    /// The same extractor (spec, regions, parameters) with another face method: the seam a
    /// test uses to perturb a method's answers.
    pub fn with_face_method(self, face: Arc<dyn FaceMethod>) -> Extractor {
        Extractor { face, ..self }
    }

    /// The same extractor with other thresholds for the recording-quality warnings.
    pub fn with_quality_thresholds(self, quality: QualityThresholds) -> Extractor {
        Extractor { quality, ..self }
    }

    /// The same extractor with another flow implementation.
    pub fn with_flow(self, flow: Arc<dyn Flow>) -> Extractor {
        Extractor { flow, ..self }
    }

    /// Extracts the features of a video, read from a file or from memory (never through a
    /// temporary file: the decoder reads the bytes through its own I/O).
    pub fn extract(&self, source: VideoSource<'_>, cancel: &CancelFlag) -> Result<Features> {
        if cancel.is_cancelled() {
            return Err(Error::aborted());
        }
        let t0 = Instant::now();
        let mut decoder = Decoder::open(source, &self.params)?;
        self.run(&mut decoder, cancel, t0)
    }

    /// Extracts the features of a video file.
    pub fn extract_path(&self, path: &Path, cancel: &CancelFlag) -> Result<Features> {
        self.extract(VideoSource::Path(path), cancel)
    }

    /// Extracts the features of an in-memory video.
    pub fn extract_bytes(&self, bytes: &[u8], cancel: &CancelFlag) -> Result<Features> {
        self.extract(VideoSource::Bytes(bytes), cancel)
    }

    fn run(&self, decoder: &mut Decoder<'_>, cancel: &CancelFlag, t0: Instant) -> Result<Features> {
        let p = &self.params;
        let fps = decoder.fps();
        let mut pl = Pipeline::new(self, Schedule::new(p, fps, p.max_frames(fps)));
        let (mut width, mut height) = (0u32, 0u32);
        loop {
            if cancel.is_cancelled() {
                return Err(Error::aborted());
            }
            let td = Instant::now();
            let mut gray = Mat::default();
            if !decoder.next_gray(&mut gray)? {
                break;
            }
            let idx = decoder.frames() - 1;
            if idx == 0 {
                (width, height) = (gray.cols() as u32, gray.rows() as u32);
            }
            let tf = Instant::now();
            pl.timings.decode += ms(td, tf);
            pl.on_frame(idx, Arc::new(gray))?;
            pl.timings.face += ms(tf, Instant::now());
            pl.pump(false)?;
        }
        let frames = decoder.frames();
        if frames == 0 {
            return Err(Error::invalid_video("the video has no decodable frames"));
        }
        if frames < 2 {
            return Err(Error::new(
                ErrorCode::VideoTooShort,
                "the video has fewer than 2 frames",
            ));
        }
        while !pl.done() {
            if cancel.is_cancelled() {
                return Err(Error::aborted());
            }
            pl.pump(true)?;
        }
        let st = &pl.schedule;
        if st.hits == 0 || (st.hits as f64) < p.min_face_rate * st.tries as f64 {
            return Err(Error::new(
                ErrorCode::NoFace,
                format!(
                    "no face was found steadily: {} of {} detection tries found one",
                    st.hits, st.tries
                ),
            ));
        }
        if pl.series.is_empty() {
            return Err(Error::new(
                ErrorCode::VideoTooShort,
                "the face appears only in the last frame",
            ));
        }
        let mut values = Vec::with_capacity(N_FEATURES);
        let mut column = vec![0.0; pl.series.len()];
        for c in 0..N_CHANNELS {
            for (dst, row) in column.iter_mut().zip(&pl.series) {
                *dst = row[c];
            }
            values.extend(summarize(&column).iter().map(|&v| v as f32));
        }
        let mut timings = pl.timings;
        timings.total = ms(t0, Instant::now());
        let series = Series {
            first_frame: pl.schedule.first_face.unwrap_or(0),
            values: pl.series.iter().map(|row| row.map(|v| v as f32)).collect(),
        };
        let st = pl.schedule;
        Ok(Features {
            values,
            series,
            meta: Meta {
                frames,
                pairs: pl.series.len() as u64,
                fps,
                width,
                height,
                duration_s: frames as f64 / fps,
                detect_tries: st.tries,
                detect_hits: st.hits,
                face_detect_rate: if st.tries == 0 {
                    0.0
                } else {
                    st.hits as f64 / st.tries as f64
                },
                box_changes: st.boxes.len().saturating_sub(1) as u64,
                decode_errors: decoder.decode_errors(),
                boxes: st.boxes,
                timings_ms: timings,
                quality: pl.quality.finish(
                    if st.tries == 0 {
                        0.0
                    } else {
                        st.hits as f64 / st.tries as f64
                    },
                    &self.quality,
                ),
            },
        })
    }
}
