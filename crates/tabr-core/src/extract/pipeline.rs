//! The in-flight state of one extraction: frames wait in order for their box, crops are cut,
//! and each frame pair becomes a job on the process-wide pool; scheduled re-detections run on
//! the pool too, while decoding goes on (see the module docs of [`super`]).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Receiver;
use opencv::core::Mat;

use super::channels::{pair_job, PairOut};
use super::quality::QualityAcc;
use super::schedule::Schedule;
use super::{pool, Extractor, StageTimings};
use crate::error::{Error, Result};
use crate::face::method::Geometry;
use crate::flow::FlowFrame;
use crate::spec::{PixelRect, N_CHANNELS};

enum Msg {
    Pair(PairOut),
    Detection(u64, Result<Option<Geometry>>),
}

/// The in-flight state of one extraction (see the module docs).
pub(super) struct Pipeline<'a> {
    ex: &'a Extractor,
    pub(super) schedule: Schedule,
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
    detections: HashMap<u64, Result<Option<Geometry>>>,
    /// Tries whose frames have arrived but whose previous try is not applied yet, in order:
    /// each starts, given the most recent hit, as soon as the one before it is applied (at
    /// most one waits unless a try falls on every frame).
    waiting_tries: VecDeque<(u64, Arc<Mat>)>,
    pub(super) prev_gray: Option<Arc<Mat>>,
    prev_crop: Option<Arc<FlowFrame>>,
    pub(super) series: Vec<[f64; N_CHANNELS]>,
    pub(super) timings: StageTimings,
    /// What the tries show of the recording's quality.
    pub(super) quality: QualityAcc,
    submitted: usize,
    received: usize,
}

impl<'a> Pipeline<'a> {
    pub(super) fn new(ex: &'a Extractor, schedule: Schedule) -> Self {
        let pool = pool();
        let n = ex.params.roi_size;
        let (tx, rx) = crossbeam_channel::unbounded();
        Pipeline {
            ex,
            schedule,
            n,
            rects: Arc::new(ex.spec.regions().map(|r| r.pixel_rect(n))),
            pool,
            max_in_flight: pool.current_num_threads() * 4,
            tx,
            rx,
            pending: VecDeque::new(),
            detections: HashMap::new(),
            waiting_tries: VecDeque::new(),
            prev_gray: None,
            prev_crop: None,
            series: Vec::new(),
            timings: StageTimings::default(),
            quality: QualityAcc::default(),
            submitted: 0,
            received: 0,
        }
    }

    /// Takes a decoded frame: tries it for the first face here, or queues it (and its
    /// re-detection on the pool) once the schedule runs.
    pub(super) fn on_frame(&mut self, idx: u64, gray: Arc<Mat>) -> Result<()> {
        let (face, params) = (&self.ex.face, &self.ex.params);
        if self.schedule.first_face.is_none() {
            // Where the schedule starts depends on each answer: tried in order, right here.
            if !self.schedule.hopeless {
                let found = face.detect(&gray, params, self.schedule.last_hit.as_ref())?;
                if let Some(g) = &found {
                    self.quality.hit(g);
                }
                self.schedule
                    .apply(idx, found, |a, b| face.replaces(a, b, params));
                if let Some(g) = self.schedule.current {
                    let crop = face.crop(&gray, &g, self.n)?;
                    self.quality.crop(&crop)?;
                    self.prev_crop = Some(Arc::new(FlowFrame::new(crop)?));
                    self.prev_gray = Some(gray);
                }
            }
            return Ok(());
        }
        if self.schedule.is_try(idx) {
            self.waiting_tries.push_back((idx, gray.clone()));
            self.start_try();
        }
        self.pending.push_back((idx, gray));
        Ok(())
    }

    /// Starts the next waiting try on the pool once the try before it is applied, with the
    /// most recent hit. Tries are a re-detection period apart, so the previous one has nearly
    /// always finished by then: the wait costs no parallelism.
    fn start_try(&mut self) {
        let Some(&(idx, _)) = self.waiting_tries.front() else {
            return;
        };
        if !self.schedule.ready_for(idx) {
            return;
        }
        let Some((idx, g)) = self.waiting_tries.pop_front() else {
            return;
        };
        let (face, tx, params) = (
            self.ex.face.clone(),
            self.tx.clone(),
            self.ex.params.clone(),
        );
        let last = self.schedule.last_hit;
        self.pool.spawn(move || {
            let _ = tx.send(Msg::Detection(idx, face.detect(&g, &params, last.as_ref())));
        });
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
            let tried = self.schedule.is_try(i);
            if tried {
                let Some(found) = self.detections.remove(&i) else {
                    break;
                };
                let found = found?;
                if let Some(g) = &found {
                    self.quality.hit(g);
                }
                let (face, params) = (&self.ex.face, &self.ex.params);
                changed = self
                    .schedule
                    .apply(i, found, |a, b| face.replaces(a, b, params));
                self.start_try();
            }
            let Some((i, g)) = self.pending.pop_front() else {
                break;
            };
            let geo = self
                .schedule
                .current
                .ok_or_else(|| Error::internal("a frame after the first face has no box"))?;
            let crop = |frame: &Mat| {
                self.ex
                    .face
                    .crop(frame, &geo, self.n)
                    .and_then(FlowFrame::new)
            };
            let cur_crop = self.ex.face.crop(&g, &geo, self.n)?;
            if tried {
                self.quality.crop(&cur_crop)?;
            }
            let cur = Arc::new(FlowFrame::new(cur_crop)?);
            let prev = match (&self.prev_crop, changed, &self.prev_gray) {
                (Some(pc), false, _) => pc.clone(),
                (_, _, Some(pg)) => Arc::new(crop(pg)?),
                _ => return Err(Error::internal("a pair has no previous frame")),
            };
            let index = (i - self.schedule.first_face.unwrap_or(0) - 1) as usize;
            let (a, bb, rects, tx) = (prev, cur.clone(), self.rects.clone(), self.tx.clone());
            let flow = self.ex.flow.clone();
            self.pool.spawn(move || {
                let _ = tx.send(Msg::Pair(pair_job(index, flow.as_ref(), &a, &bb, &rects)));
            });
            self.submitted += 1;
            self.prev_crop = Some(cur);
            self.prev_gray = Some(g);
        }
        self.timings.face += ms(t, Instant::now());
        Ok(())
    }

    pub(super) fn done(&self) -> bool {
        self.pending.is_empty() && self.received == self.submitted
    }

    /// Applies what came back and releases frames; blocks for more while memory bounds are
    /// reached, or (at the end of the stream) until one more message arrives.
    pub(super) fn pump(&mut self, end_of_stream: bool) -> Result<()> {
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

pub(super) fn ms(a: Instant, b: Instant) -> f64 {
    (b - a).as_secs_f64() * 1e3
}
