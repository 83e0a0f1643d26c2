//! The streaming POC-ABS v1 extractor (spec §1–§7).
//!
//! The caller's thread decodes and converts to gray. Until the first face it also tries every
//! frame for a face, in order (where the schedule starts depends on each answer). From then
//! on the scheduled re-detections run on one process-wide pool (see [`pool`]) while decoding
//! goes on; frames wait in order for their box, then their crops are cut and each frame pair
//! becomes a pool job that runs Farnebäck, the POCs and the 18 channels. At most one
//! re-detection period of frames and a few pairs per core are in flight, so memory does not
//! grow with clip length. Concurrent extractions share the pool and so never run more work
//! than there are cores.
//!
//! A video with no face yet stops being searched once even a face on every later try could
//! not reach `min_face_rate` within the length limit; decoding still runs to the end, so
//! `video_too_long` keeps precedence over `no_face` as in the spec.

use std::collections::{HashMap, VecDeque};
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
use crate::spec::{PixelRect, SpecParams, N_CHANNELS, N_FEATURES, REGIONS};
use crate::stats::{summarize, N_STATS};
use crate::video::{Decoder, VideoSource};

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
    /// Packets the decoder could not use and skipped (spec §1: reading goes on).
    pub decode_errors: u64,
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
        self.values
            .chunks_exact(N_STATS)
            .map(|c| [c[0], c[1], c[2], c[3], c[4]])
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

    /// Extracts the features of a video, read from a file or from memory (never through a
    /// temporary file: the decoder reads the bytes through its own I/O).
    pub fn extract(&self, source: VideoSource<'_>, cancel: &CancelFlag) -> Result<Features> {
        if cancel.is_cancelled() {
            return Err(Error::aborted());
        }
        let t0 = Instant::now();
        let mut decoder = Decoder::open(source, &self.params)?;
        let mut cc = self.detector.checkout()?;
        let out = self.run(&mut decoder, &mut cc, cancel, t0);
        self.detector.put_back(cc);
        out
    }

    /// Extracts the features of a video file.
    pub fn extract_path(&self, path: &Path, cancel: &CancelFlag) -> Result<Features> {
        self.extract(VideoSource::Path(path), cancel)
    }

    /// Extracts the features of an in-memory video.
    pub fn extract_bytes(&self, bytes: &[u8], cancel: &CancelFlag) -> Result<Features> {
        self.extract(VideoSource::Bytes(bytes), cancel)
    }

    fn run(
        &self,
        decoder: &mut Decoder<'_>,
        cc: &mut opencv::objdetect::CascadeClassifier,
        cancel: &CancelFlag,
        t0: Instant,
    ) -> Result<Features> {
        let p = &self.params;
        let fps = decoder.fps();
        let mut pl = Pipeline::new(self, Schedule::new(p, fps, p.max_frames(fps)));
        let mut scratch = DetectScratch::default();
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
            pl.on_frame(idx, Arc::new(gray), cc, &mut scratch)?;
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
        let st = pl.schedule;
        Ok(Features {
            values,
            meta: Meta {
                frames,
                pairs: pl.series.len() as u64,
                fps,
                width,
                height,
                duration_s: frames as f64 / fps,
                detect_tries: st.tries,
                detect_hits: st.hits,
                box_changes: st.boxes.len().saturating_sub(1) as u64,
                decode_errors: decoder.decode_errors(),
                boxes: st.boxes,
                timings_ms: timings,
            },
        })
    }
}

/// The face-box schedule of spec §2, fed detection answers in frame order.
struct Schedule {
    redetect: u64,
    min_rate: f64,
    iou_keep: f64,
    /// Most frames a video may have (the length limit), for the early no-face stop.
    budget: u64,
    first_face: Option<u64>,
    current: Option<FaceBox>,
    tries: u64,
    hits: u64,
    boxes: Vec<BoxChange>,
    /// No first face yet, and even a face on every try from the next frame on could not
    /// reach `min_face_rate` within the length limit: detection stops (decoding goes on, so
    /// the length limit still decides first, as in the spec).
    hopeless: bool,
}

impl Schedule {
    fn new(p: &SpecParams, fps: f64, budget: u64) -> Self {
        Schedule {
            redetect: p.redetect_every(fps),
            min_rate: p.min_face_rate,
            iou_keep: p.iou_keep,
            budget,
            first_face: None,
            current: None,
            tries: 0,
            hits: 0,
            boxes: Vec::new(),
            hopeless: false,
        }
    }

    /// Whether frame `idx` is a detection try (once the first face is known).
    fn is_try(&self, idx: u64) -> bool {
        self.first_face
            .is_some_and(|f0| (idx - f0).is_multiple_of(self.redetect))
    }

    /// Applies the answer of the try at `idx`; true when an existing box was replaced.
    fn apply(&mut self, idx: u64, found: Option<FaceBox>) -> bool {
        self.tries += 1;
        let mut changed = false;
        if let Some(b) = found {
            self.hits += 1;
            if self.current.is_none_or(|old| old.iou(&b) < self.iou_keep) {
                if self.current.is_none() {
                    self.first_face = Some(idx);
                } else {
                    changed = true;
                }
                self.current = Some(b);
                self.boxes.push(BoxChange {
                    frame: idx,
                    face: b,
                });
            }
        } else if self.first_face.is_none() {
            // Best case: the first face at the next frame k and on every try after it.
            let k = idx + 1;
            let later = self.budget.saturating_sub(k + 1) / self.redetect;
            let best_hits = 1 + later;
            let best_tries = k + best_hits;
            self.hopeless =
                k >= self.budget || (best_hits as f64) < self.min_rate * best_tries as f64;
        }
        changed
    }
}

enum Msg {
    Pair(PairOut),
    Detection(u64, Result<Option<FaceBox>>),
}

/// The in-flight state of one extraction (see the module docs).
struct Pipeline<'a> {
    ex: &'a Extractor,
    schedule: Schedule,
    n: usize,
    rects: Arc<[PixelRect; 8]>,
    pool: &'static rayon::ThreadPool,
    max_in_flight: usize,
    tx: crossbeam_channel::Sender<Msg>,
    rx: Receiver<Msg>,
    /// Frames after the first face, waiting for their box: a frame on the re-detection
    /// schedule waits for its detection (run on the pool), and every later frame waits
    /// behind it, so boxes apply in frame order exactly as in a serial run.
    pending: VecDeque<(u64, Arc<Mat>)>,
    detections: HashMap<u64, Result<Option<FaceBox>>>,
    prev_gray: Option<Arc<Mat>>,
    prev_crop: Option<Arc<Crop>>,
    series: Vec<[f64; N_CHANNELS]>,
    timings: StageTimings,
    submitted: usize,
    received: usize,
}

impl<'a> Pipeline<'a> {
    fn new(ex: &'a Extractor, schedule: Schedule) -> Self {
        let pool = pool();
        let n = ex.params.roi_size;
        let (tx, rx) = crossbeam_channel::unbounded();
        Pipeline {
            ex,
            schedule,
            n,
            rects: Arc::new(REGIONS.map(|r| r.pixel_rect(n))),
            pool,
            max_in_flight: pool.current_num_threads() * 4,
            tx,
            rx,
            pending: VecDeque::new(),
            detections: HashMap::new(),
            prev_gray: None,
            prev_crop: None,
            series: Vec::new(),
            timings: StageTimings::default(),
            submitted: 0,
            received: 0,
        }
    }

    /// Takes a decoded frame: tries it for the first face here, or queues it (and its
    /// re-detection on the pool) once the schedule runs.
    fn on_frame(
        &mut self,
        idx: u64,
        gray: Arc<Mat>,
        cc: &mut opencv::objdetect::CascadeClassifier,
        scratch: &mut DetectScratch,
    ) -> Result<()> {
        if self.schedule.first_face.is_none() {
            // Where the schedule starts depends on each answer: tried in order, right here.
            if !self.schedule.hopeless {
                let found = face::detect(cc, &gray, &self.ex.params, scratch)
                    .map_err(|_| Error::internal("face detection failed"))?;
                self.schedule.apply(idx, found);
                if let Some(b) = self.schedule.current {
                    self.prev_crop = Some(Arc::new(crop(&gray, b, self.n)?));
                    self.prev_gray = Some(gray);
                }
            }
            return Ok(());
        }
        if self.schedule.is_try(idx) {
            let (det, g, tx, params) = (
                self.ex.detector.clone(),
                gray.clone(),
                self.tx.clone(),
                self.ex.params.clone(),
            );
            self.pool.spawn(move || {
                let _ = tx.send(Msg::Detection(idx, detect_pooled(&det, &g, &params)));
            });
        }
        self.pending.push_back((idx, gray));
        Ok(())
    }

    fn take(&mut self, msg: Msg) -> Result<()> {
        match msg {
            Msg::Detection(idx, found) => {
                self.detections.insert(idx, found);
            }
            Msg::Pair(out) => {
                self.received += 1;
                self.timings.flow += out.flow_ns as f64 / 1e6;
                self.timings.poc += out.poc_ns as f64 / 1e6;
                let ch = out.channels?;
                if self.series.len() <= out.index {
                    self.series.resize(out.index + 1, [f64::NAN; N_CHANNELS]);
                }
                self.series[out.index] = ch;
            }
        }
        Ok(())
    }

    /// Cuts the crops of every queued frame whose box is known and sends its pair out.
    fn release(&mut self) -> Result<()> {
        let t = Instant::now();
        while let Some(&(i, _)) = self.pending.front() {
            let mut changed = false;
            if self.schedule.is_try(i) {
                let Some(found) = self.detections.remove(&i) else {
                    break;
                };
                changed = self.schedule.apply(
                    i,
                    found.map_err(|_| Error::internal("face detection failed"))?,
                );
            }
            let Some((i, g)) = self.pending.pop_front() else {
                break;
            };
            let b = self
                .schedule
                .current
                .ok_or_else(|| Error::internal("a frame after the first face has no box"))?;
            let cur = Arc::new(crop(&g, b, self.n)?);
            let prev = match (&self.prev_crop, changed, &self.prev_gray) {
                (Some(pc), false, _) => pc.clone(),
                (_, _, Some(pg)) => Arc::new(crop(pg, b, self.n)?),
                _ => return Err(Error::internal("a pair has no previous frame")),
            };
            let index = (i - self.schedule.first_face.unwrap_or(0) - 1) as usize;
            let (a, bb, rects, tx) = (prev, cur.clone(), self.rects.clone(), self.tx.clone());
            self.pool.spawn(move || {
                let _ = tx.send(Msg::Pair(pair_job(index, &a, &bb, &rects)));
            });
            self.submitted += 1;
            self.prev_crop = Some(cur);
            self.prev_gray = Some(g);
        }
        self.timings.face += ms(t, Instant::now());
        Ok(())
    }

    fn done(&self) -> bool {
        self.pending.is_empty() && self.received == self.submitted
    }

    /// Applies what came back and releases frames; blocks for more while memory bounds are
    /// reached, or (at the end of the stream) until one more message arrives.
    fn pump(&mut self, end_of_stream: bool) -> Result<()> {
        loop {
            while let Ok(msg) = self.rx.try_recv() {
                self.take(msg)?;
            }
            self.release()?;
            let blocked = self.submitted - self.received >= self.max_in_flight
                || self.pending.len() as u64 > self.schedule.redetect + 1;
            if !(blocked || (end_of_stream && !self.done())) {
                return Ok(());
            }
            let msg = self
                .rx
                .recv()
                .map_err(|_| Error::internal("a worker stopped unexpectedly"))?;
            self.take(msg)?;
            if end_of_stream {
                return Ok(());
            }
        }
    }
}

/// A scheduled re-detection on a pool worker, with a classifier from the detector's pool.
fn detect_pooled(det: &FaceDetector, gray: &Mat, params: &SpecParams) -> Result<Option<FaceBox>> {
    let mut cc = det.checkout()?;
    let mut scratch = DetectScratch::default();
    let out = face::detect(&mut cc, gray, params, &mut scratch)
        .map_err(|_| Error::internal("face detection failed"));
    det.put_back(cc);
    out
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
    imgproc::resize(
        &roi,
        &mut out,
        Size::new(side, side),
        0.0,
        0.0,
        imgproc::INTER_AREA,
    )
    .map_err(fail)?;
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
    PairOut {
        index,
        channels,
        flow_ns,
        poc_ns,
    }
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
    let (pa, pb) = (
        a.0.data_bytes().map_err(fail)?,
        b.0.data_bytes().map_err(fail)?,
    );
    let uv: &[Vec2f] = flow.data_typed::<Vec2f>().map_err(fail)?;
    let mut ch = [0.0; N_CHANNELS];
    with_thread_engine(|e| {
        let g = e.poc(
            &Patch::sub(pa, n, 0, 0, n, n),
            &Patch::sub(pb, n, 0, 0, n, n),
        );
        let (gx, gy) = (g.dx as f32, g.dy as f32);
        for (k, r) in rects.iter().enumerate() {
            let mut sum = 0.0f64;
            for y in r.y..r.y + r.h {
                let row = &uv[y * n + r.x..y * n + r.x + r.w];
                let s: f32 = row
                    .iter()
                    .map(|v| ((v[0] - gx).powi(2) + (v[1] - gy).powi(2)).sqrt())
                    .sum();
                sum += f64::from(s);
            }
            ch[2 * k] = sum / (r.w * r.h) as f64;
            let rp = e.poc(
                &Patch::sub(pa, n, r.x, r.y, r.w, r.h),
                &Patch::sub(pb, n, r.x, r.y, r.w, r.h),
            );
            ch[2 * k + 1] = 1.0 - rp.peak;
        }
        ch[2 * REGIONS.len()] = (g.dx * g.dx + g.dy * g.dy).sqrt();
        ch[2 * REGIONS.len() + 1] = 1.0 - g.peak;
    });
    *flow_ns += (t1 - t0).as_nanos() as u64;
    *poc_ns += t1.elapsed().as_nanos() as u64;
    Ok(ch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(fps: f64) -> Schedule {
        let p = SpecParams::default();
        Schedule::new(&p, fps, p.max_frames(fps))
    }

    const B: FaceBox = FaceBox {
        x: 10,
        y: 10,
        side: 100,
    };

    #[test]
    fn tries_follow_the_first_face() {
        let mut s = sched(30.0);
        assert!(!s.apply(0, None));
        assert!(!s.apply(1, None));
        assert!(!s.apply(2, Some(B)), "the first box is no change");
        assert_eq!((s.first_face, s.tries, s.hits), (Some(2), 3, 1));
        assert!(s.is_try(17) && s.is_try(32) && !s.is_try(3) && !s.is_try(16));
        // Jitter (IoU ≥ 0.85) keeps the box; a real move replaces it.
        assert!(!s.apply(17, Some(FaceBox { x: 12, ..B })));
        assert!(s.apply(32, Some(FaceBox { x: 40, ..B })));
        assert!(!s.apply(47, None), "a failed try keeps the box");
        assert_eq!(s.current, Some(FaceBox { x: 40, ..B }));
        assert_eq!(s.boxes.len(), 2);
        assert_eq!((s.tries, s.hits), (6, 3));
    }

    #[test]
    fn search_stops_only_when_the_face_rate_is_out_of_reach() {
        // 30 fps: budget 315 frames, re-detect every 15. With the first face at frame k,
        // at most 1 + (314 − k) / 15 hits of k + that many tries.
        let mut s = sched(30.0);
        let mut stopped_at = None;
        for i in 0..315 {
            s.apply(i, None);
            if s.hopeless {
                stopped_at = Some(i);
                break;
            }
        }
        let k = stopped_at.expect("stops") + 1;
        let best = |k: u64| {
            let h = 1 + (315 - k - 1) / 15;
            h as f64 / (k + h) as f64
        };
        assert!(
            best(k) < 0.3,
            "stopped while a face at {k} could still pass"
        );
        assert!(best(k - 1) >= 0.3, "searched longer than needed");
        // Never gives up when any rate passes.
        let p = SpecParams {
            min_face_rate: 0.0,
            ..SpecParams::default()
        };
        let mut s = Schedule::new(&p, 30.0, 315);
        (0..314).for_each(|i| {
            s.apply(i, None);
        });
        assert!(!s.hopeless);
    }
}
