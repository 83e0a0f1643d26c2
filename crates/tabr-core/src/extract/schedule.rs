//! The face schedule of spec §2 as a state machine fed detection answers in frame order:
//! which frames are tries, when a new geometry replaces the old one (the face method's rule;
//! IoU for the Haar box), the face rate, and when a video without a face yet can stop being
//! searched. Kept apart from the pipeline so its rules are tested without video.

use super::BoxChange;
use crate::face::method::Geometry;
use crate::spec::SpecParams;

/// The face-box schedule of spec §2, fed detection answers in frame order.
pub(super) struct Schedule {
    pub(super) redetect: u64,
    pub(super) min_rate: f64,
    /// Most frames a video may have (the length limit), for the early no-face stop.
    pub(super) budget: u64,
    pub(super) first_face: Option<u64>,
    pub(super) current: Option<Geometry>,
    /// The answer of the most recent try that found a face (what the next try is given).
    pub(super) last_hit: Option<Geometry>,
    /// The frame of the most recent try applied.
    pub(super) last_try: Option<u64>,
    pub(super) tries: u64,
    pub(super) hits: u64,
    pub(super) boxes: Vec<BoxChange>,
    /// No first face yet, and even a face on every try from the next frame on could not
    /// reach `min_face_rate` within the length limit: detection stops (decoding goes on, so
    /// the length limit still decides first, as in the spec).
    pub(super) hopeless: bool,
}

impl Schedule {
    pub(super) fn new(p: &SpecParams, fps: f64, budget: u64) -> Self {
        Schedule {
            redetect: p.redetect_every(fps),
            min_rate: p.min_face_rate,
            budget,
            first_face: None,
            current: None,
            last_hit: None,
            last_try: None,
            tries: 0,
            hits: 0,
            boxes: Vec::new(),
            hopeless: false,
        }
    }

    /// Whether every try before the try at `idx` has been applied, so that it may start with
    /// the most recent hit (tries run in frame order, each knowing the one before).
    pub(super) fn ready_for(&self, idx: u64) -> bool {
        self.last_try.is_some_and(|t| t + self.redetect >= idx)
    }

    /// Whether frame `idx` is a detection try (once the first face is known).
    pub(super) fn is_try(&self, idx: u64) -> bool {
        self.first_face
            .is_some_and(|f0| (idx - f0).is_multiple_of(self.redetect))
    }

    /// Applies the answer of the try at `idx`; true when an existing geometry was replaced.
    /// `replaces(old, new)` is the face method's rule.
    pub(super) fn apply(
        &mut self,
        idx: u64,
        found: Option<Geometry>,
        replaces: impl Fn(&Geometry, &Geometry) -> bool,
    ) -> bool {
        self.tries += 1;
        self.last_try = Some(idx);
        let mut changed = false;
        if let Some(b) = found {
            self.hits += 1;
            self.last_hit = Some(b);
            if self.current.is_none_or(|old| replaces(&old, &b)) {
                if self.current.is_none() {
                    self.first_face = Some(idx);
                } else {
                    changed = true;
                }
                self.current = Some(b);
                self.boxes.push(BoxChange {
                    frame: idx,
                    face: b.bounding_box(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::face::FaceBox;

    fn sched(fps: f64) -> Schedule {
        let p = SpecParams::default();
        Schedule::new(&p, fps, p.max_frames(fps))
    }

    const B: FaceBox = FaceBox {
        x: 10,
        y: 10,
        side: 100,
    };

    /// The Haar box's rule: IoU below the spec's 0.85 replaces.
    fn iou_rule(old: &Geometry, new: &Geometry) -> bool {
        old.bounding_box().iou(&new.bounding_box()) < SpecParams::default().iou_keep
    }

    fn at(b: FaceBox) -> Option<Geometry> {
        Some(Geometry::Box(b))
    }

    #[test]
    fn tries_follow_the_first_face() {
        let mut s = sched(30.0);
        assert!(!s.apply(0, None, iou_rule));
        assert!(!s.apply(1, None, iou_rule));
        assert!(!s.apply(2, at(B), iou_rule), "the first box is no change");
        assert_eq!((s.first_face, s.tries, s.hits), (Some(2), 3, 1));
        assert!(s.is_try(17) && s.is_try(32) && !s.is_try(3) && !s.is_try(16));
        // Jitter (IoU ≥ 0.85) keeps the box; a real move replaces it.
        assert!(!s.apply(17, at(FaceBox { x: 12, ..B }), iou_rule));
        assert!(s.apply(32, at(FaceBox { x: 40, ..B }), iou_rule));
        assert!(!s.apply(47, None, iou_rule), "a failed try keeps the box");
        assert_eq!(s.current, at(FaceBox { x: 40, ..B }));
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
            s.apply(i, None, iou_rule);
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
            s.apply(i, None, iou_rule);
        });
        assert!(!s.hopeless);
    }
}
