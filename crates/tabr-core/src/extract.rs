//! The streaming POC-ABS v1 extractor (spec §1–§7).
//!
//! One thread (the caller's) decodes, converts to gray, runs the face-box schedule and cuts
//! the canonical crops. Every frame pair then becomes a job on one process-wide pool (see
//! [`pool`]), which runs Farnebäck, the POCs and the 18 channels. Only the previous gray
//! frame, the previous crop and a bounded number of in-flight pairs are ever held, so memory
//! does not grow with clip length. Concurrent extractions share the pool and so never run
//! more pair work than there are cores.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use crossbeam_channel::Receiver;
use opencv::core::{Mat, MatTraitConst, MatTraitConstManual, Size, Vec2f};
use opencv::{imgproc, video};
use serde::Serialize;

use crate::error::{Error, ErrorCode, Result};
use crate::face::{self, DetectScratch, FaceBox, FaceDetector};
use crate::poc::{with_thread_engine, Patch};
use crate::spec::{self, PixelRect, SpecParams, N_CHANNELS, N_FEATURES, REGIONS};
use crate::stats::{summarize, N_STATS};
use crate::video::Decoder;

/// A change of the face box: from frame `frame` on, the box is (`x`, `y`, `side`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BoxChange {
    /// First frame the box applies to.
    pub frame: u64,
    /// The box.
    #[serde(flatten)]
    pub face: FaceBox,
}

/// Wall time per stage, in milliseconds. `decode` and `face` (detection and crops) run on the
/// decoding thread; `flow` and `poc` are summed over the pool's workers (CPU time).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize)]
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
    /// Times the box was replaced after the first detection.
    pub box_changes: u64,
    /// Every box in force, with the frame it starts at.
    pub boxes: Vec<BoxChange>,
    /// Per-stage milliseconds.
    pub timings_ms: StageTimings,
}

/// The feature vector of one video and its metadata.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Features {
    /// [`N_FEATURES`] values, channel-major, named by [`spec::feature_names`].
    pub values: Vec<f32>,
    /// What the extraction saw.
    pub meta: Meta,
}

impl Features {
    /// The values as an 18 × 5 matrix (the "before flatten" form).
    pub fn matrix(&self) -> Vec<[f32; N_STATS]> {
        self.values.chunks_exact(N_STATS).map(|c| [c[0], c[1], c[2], c[3], c[4]]).collect()
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

/// The POC-ABS v1 extractor: a face detector and the spec's parameters.
#[derive(Debug, Clone)]
pub struct Extractor {
    detector: Arc<FaceDetector>,
    params: SpecParams,
}

struct Crop(Mat);

struct PairOut {
    index: usize,
    channels: Result<[f64; N_CHANNELS]>,
    flow_ns: u64,
    poc_ns: u64,
}

impl Extractor {
    /// An extractor with the built-in cascade and the spec's default parameters.
    pub fn new() -> Result<Extractor> {
        Ok(Self::with(FaceDetector::builtin()?, SpecParams::default()))
    }

    /// An extractor with a given detector and parameters.
    pub fn with(detector: Arc<FaceDetector>, params: SpecParams) -> Extractor {
        Extractor { detector, params }
    }

    /// The parameters in use.
    pub fn params(&self) -> &SpecParams {
        &self.params
    }

    /// Extracts the features of a video file.
    pub fn extract_path(&self, path: &Path, cancel: &CancelFlag) -> Result<Features> {
        if cancel.is_cancelled() {
            return Err(Error::aborted());
        }
        let t0 = Instant::now();
        let mut decoder = Decoder::open(path, &self.params)?;
        let mut cc = self.detector.checkout()?;
        let out = self.run(&mut decoder, &mut cc, cancel, t0);
        self.detector.put_back(cc);
        out
    }

    /// Extracts the features of an in-memory video. The bytes go to a private temp file
    /// (mode 0600) that is removed in every outcome, unwinding panics included.
    pub fn extract_bytes(&self, bytes: &[u8], cancel: &CancelFlag) -> Result<Features> {
        use std::io::Write;
        if cancel.is_cancelled() {
            return Err(Error::aborted());
        }
        let mut tmp = tempfile::Builder::new()
            .prefix("tabr-upload-")
            .tempfile()
            .map_err(|_| Error::internal("a temporary file for the upload cannot be created"))?;
        tmp.write_all(bytes)
            .and_then(|()| tmp.flush())
            .map_err(|_| Error::internal("the upload cannot be written to a temporary file"))?;
        self.extract_path(tmp.path(), cancel)
        // `tmp` is dropped here, or during unwinding, and the file is removed.
    }

    fn run(
        &self,
        decoder: &mut Decoder,
        cc: &mut opencv::objdetect::CascadeClassifier,
        cancel: &CancelFlag,
        t0: Instant,
    ) -> Result<Features> {
        let p = &self.params;
        let fps = decoder.fps();
        let redetect = p.redetect_every(fps);
        let n = p.roi_size;
        let rects: Arc<[PixelRect; 8]> = Arc::new(REGIONS.map(|r| r.pixel_rect(n)));
        let pool = pool();
        let max_in_flight = pool.current_num_threads() * 4;
        let (tx, rx) = crossbeam_channel::unbounded::<PairOut>();

        let mut gray = Mat::default();
        let mut prev_gray = Mat::default();
        let mut scratch = DetectScratch::default();
        let mut current: Option<FaceBox> = None;
        let mut first_face: Option<u64> = None;
        let mut prev_crop: Option<Arc<Crop>> = None;
        let (mut tries, mut hits) = (0u64, 0u64);
        let mut boxes: Vec<BoxChange> = Vec::new();
        let mut timings = StageTimings::default();
        let mut series: Vec<[f64; N_CHANNELS]> = Vec::new();
        let (mut submitted, mut received) = (0usize, 0usize);
        let collect = |out: PairOut, series: &mut Vec<[f64; N_CHANNELS]>, timings: &mut StageTimings| -> Result<()> {
            timings.flow += out.flow_ns as f64 / 1e6;
            timings.poc += out.poc_ns as f64 / 1e6;
            let ch = out.channels?;
            if series.len() <= out.index {
                series.resize(out.index + 1, [f64::NAN; N_CHANNELS]);
            }
            series[out.index] = ch;
            Ok(())
        };
        let (mut width, mut height) = (0u32, 0u32);

        loop {
            if cancel.is_cancelled() {
                return Err(Error::aborted());
            }
            let td = Instant::now();
            std::mem::swap(&mut gray, &mut prev_gray);
            if !decoder.next_gray(&mut gray)? {
                std::mem::swap(&mut gray, &mut prev_gray);
                break;
            }
            let idx = decoder.frames() - 1;
            if idx == 0 {
                width = gray.cols() as u32;
                height = gray.rows() as u32;
            } else if gray.cols() as u32 != width || gray.rows() as u32 != height {
                return Err(Error::invalid_video("the frame size changes within the video"));
            }
            let tf = Instant::now();
            timings.decode += ms(td, tf);

            let try_now = first_face.is_none_or(|f0| (idx - f0) % redetect == 0);
            let mut changed = false;
            if try_now {
                tries += 1;
                let found = face::detect(cc, &gray, p, &mut scratch)
                    .map_err(|_| Error::internal("face detection failed"))?;
                if let Some(b) = found {
                    hits += 1;
                    let replace = current.is_none_or(|old| old.iou(&b) < p.iou_keep);
                    if replace {
                        if current.is_none() {
                            first_face = Some(idx);
                        }
                        changed = current.is_some();
                        current = Some(b);
                        boxes.push(BoxChange { frame: idx, face: b });
                    }
                }
            }
            if let Some(b) = current {
                let cur = Arc::new(crop(&gray, b, n)?);
                if first_face.is_some_and(|f0| idx > f0) {
                    let prev = match (&prev_crop, changed) {
                        (Some(pc), false) => pc.clone(),
                        _ => Arc::new(crop(&prev_gray, b, n)?),
                    };
                    let index = (idx - first_face.unwrap_or(0) - 1) as usize;
                    let (a, bb, rects, tx) = (prev, cur.clone(), rects.clone(), tx.clone());
                    pool.spawn(move || {
                        let out = pair_job(index, &a, &bb, &rects);
                        let _ = tx.send(out);
                    });
                    submitted += 1;
                }
                prev_crop = Some(cur);
            }
            timings.face += ms(tf, Instant::now());

            while let Ok(out) = rx.try_recv() {
                received += 1;
                collect(out, &mut series, &mut timings)?;
            }
            while submitted - received >= max_in_flight {
                received += 1;
                collect(recv(&rx)?, &mut series, &mut timings)?;
            }
        }
        drop(tx);
        let frames = decoder.frames();
        if frames == 0 {
            return Err(Error::invalid_video("the video has no decodable frames"));
        }
        if frames < 2 {
            return Err(Error::new(ErrorCode::VideoTooShort, "the video has fewer than 2 frames"));
        }
        if hits == 0 || (hits as f64) < p.min_face_rate * tries as f64 {
            return Err(Error::new(
                ErrorCode::NoFace,
                format!("no face was found steadily: {hits} of {tries} detection tries found one"),
            ));
        }
        while received < submitted {
            if cancel.is_cancelled() {
                return Err(Error::aborted());
            }
            received += 1;
            collect(recv(&rx)?, &mut series, &mut timings)?;
        }
        if series.is_empty() {
            return Err(Error::new(ErrorCode::VideoTooShort, "the face appears only in the last frame"));
        }

        let mut values = Vec::with_capacity(N_FEATURES);
        let mut column = vec![0.0; series.len()];
        for c in 0..N_CHANNELS {
            for (dst, row) in column.iter_mut().zip(&series) {
                *dst = row[c];
            }
            values.extend(summarize(&column).iter().map(|&v| v as f32));
        }
        timings.total = ms(t0, Instant::now());
        Ok(Features {
            values,
            meta: Meta {
                frames,
                pairs: series.len() as u64,
                fps,
                width,
                height,
                duration_s: frames as f64 / fps,
                detect_tries: tries,
                detect_hits: hits,
                box_changes: boxes.len().saturating_sub(1) as u64,
                boxes,
                timings_ms: timings,
            },
        })
    }
}

fn recv(rx: &Receiver<PairOut>) -> Result<PairOut> {
    rx.recv().map_err(|_| Error::internal("a pair worker stopped unexpectedly"))
}

fn ms(a: Instant, b: Instant) -> f64 {
    (b - a).as_secs_f64() * 1e3
}

/// The canonical crop: the box cut from the gray frame, area-resized to `n`×`n`, 8-bit.
fn crop(gray: &Mat, b: FaceBox, n: usize) -> Result<Crop> {
    let fail = |_| Error::internal("cropping the face failed");
    let roi = Mat::roi(gray, b.rect()).map_err(fail)?;
    let mut out = Mat::default();
    let side = n as i32;
    imgproc::resize(&roi, &mut out, Size::new(side, side), 0.0, 0.0, imgproc::INTER_AREA).map_err(fail)?;
    Ok(Crop(out))
}

thread_local! {
    static FLOW: std::cell::RefCell<Mat> = std::cell::RefCell::new(Mat::default());
}

fn pair_job(index: usize, a: &Crop, b: &Crop, rects: &[PixelRect; 8]) -> PairOut {
    let mut flow_ns = 0;
    let mut poc_ns = 0;
    let channels = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        FLOW.with(|f| pair_channels(a, b, rects, &mut f.borrow_mut(), &mut flow_ns, &mut poc_ns))
    }))
    .unwrap_or_else(|_| Err(Error::internal("a pair computation panicked")));
    PairOut { index, channels, flow_ns, poc_ns }
}

/// Spec §4: flow, global POC, residual |flow| and region POCs of one pair.
fn pair_channels(
    a: &Crop,
    b: &Crop,
    rects: &[PixelRect; 8],
    flow: &mut Mat,
    flow_ns: &mut u64,
    poc_ns: &mut u64,
) -> Result<[f64; N_CHANNELS]> {
    let fail = |_| Error::internal("optical flow failed");
    let t0 = Instant::now();
    video::calc_optical_flow_farneback(&a.0, &b.0, flow, 0.5, 3, 15, 3, 5, 1.2, 0).map_err(fail)?;
    let t1 = Instant::now();
    let n = a.0.cols() as usize;
    let (pa, pb) = (a.0.data_bytes().map_err(fail)?, b.0.data_bytes().map_err(fail)?);
    let uv: &[Vec2f] = flow.data_typed::<Vec2f>().map_err(fail)?;
    let mut ch = [0.0; N_CHANNELS];
    with_thread_engine(|e| {
        let g = e.poc(&Patch::sub(pa, n, 0, 0, n, n), &Patch::sub(pb, n, 0, 0, n, n));
        let (gx, gy) = (g.dx as f32, g.dy as f32);
        for (k, r) in rects.iter().enumerate() {
            let mut sum = 0.0f64;
            for y in r.y..r.y + r.h {
                let row = &uv[y * n + r.x..y * n + r.x + r.w];
                let s: f32 = row.iter().map(|v| ((v[0] - gx).powi(2) + (v[1] - gy).powi(2)).sqrt()).sum();
                sum += f64::from(s);
            }
            ch[2 * k] = sum / (r.w * r.h) as f64;
            let rp = e.poc(&Patch::sub(pa, n, r.x, r.y, r.w, r.h), &Patch::sub(pb, n, r.x, r.y, r.w, r.h));
            ch[2 * k + 1] = 1.0 - rp.peak;
        }
        ch[2 * REGIONS.len()] = (g.dx * g.dx + g.dy * g.dy).sqrt();
        ch[2 * REGIONS.len() + 1] = 1.0 - g.peak;
    });
    *flow_ns += (t1 - t0).as_nanos() as u64;
    *poc_ns += t1.elapsed().as_nanos() as u64;
    Ok(ch)
}

/// The names of the values in [`Features::values`].
pub fn feature_names() -> Vec<String> {
    spec::feature_names()
}
