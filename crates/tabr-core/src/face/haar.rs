//! Face box: Haar detection on a shrunk, equalised frame, the box rule and IoU (spec §2).
//!
//! [`FaceDetector`] owns a loaded cascade and hands out classifiers from a small pool, since
//! OpenCV's `CascadeClassifier::detectMultiScale` mutates internal state and must not be
//! shared between threads. The default frontal-face cascade (from OpenCV's data, license
//! header kept) is compiled into the crate, so the CLI and the Node package need no data path.

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use opencv::core::{FileStorage, FileStorageTraitConst, Mat, MatTraitConst, Rect, Size, Vector};
use opencv::imgproc;
use opencv::objdetect::{CascadeClassifier, CascadeClassifierTrait, CascadeClassifierTraitConst};

use crate::error::{Error, ErrorCode, Result};
use crate::spec::{round_half_up, SpecParams, HAAR};

/// OpenCV's `haarcascade_frontalface_default.xml`, as shipped by Debian's `opencv-data`.
pub const DEFAULT_CASCADE_XML: &str =
    include_str!("../../assets/haarcascade_frontalface_default.xml");

/// A square face box in full-resolution pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct FaceBox {
    /// Left edge.
    pub x: i32,
    /// Top edge.
    pub y: i32,
    /// Side length.
    pub side: i32,
}

impl FaceBox {
    /// Intersection over union of two boxes.
    pub fn iou(&self, other: &FaceBox) -> f64 {
        let ix = (self.x + self.side).min(other.x + other.side) - self.x.max(other.x);
        let iy = (self.y + self.side).min(other.y + other.side) - self.y.max(other.y);
        if ix <= 0 || iy <= 0 {
            return 0.0;
        }
        let inter = f64::from(ix) * f64::from(iy);
        let union = f64::from(self.side).powi(2) + f64::from(other.side).powi(2) - inter;
        inter / union
    }

    /// The OpenCV rectangle of the box.
    pub fn rect(&self) -> Rect {
        Rect::new(self.x, self.y, self.side, self.side)
    }
}

/// The full-resolution box for a detection `det` in a frame shrunk by `s = W / w_shrunk`.
pub fn box_from_detection(det: Rect, s: f64, frame_w: i32, frame_h: i32) -> FaceBox {
    let longest = f64::from(det.width.max(det.height)) * s;
    let side = round_half_up(longest.min(f64::from(frame_w)).min(f64::from(frame_h))) as i32;
    let cx = (f64::from(det.x) + f64::from(det.width) / 2.0) * s;
    let cy = (f64::from(det.y) + f64::from(det.height) / 2.0) * s;
    let half = f64::from(side) / 2.0;
    let x = (round_half_up(cx - half) as i32).clamp(0, frame_w - side);
    let y = (round_half_up(cy - half) as i32).clamp(0, frame_h - side);
    FaceBox { x, y, side }
}

/// Of several detections: the largest area; ties go to smaller y, then smaller x.
pub fn pick_largest(dets: &[Rect]) -> Option<Rect> {
    dets.iter().copied().min_by_key(|r| {
        (
            std::cmp::Reverse(i64::from(r.width) * i64::from(r.height)),
            r.y,
            r.x,
        )
    })
}

/// A loaded Haar cascade with a pool of classifiers for concurrent extractions.
pub struct FaceDetector {
    xml: Arc<str>,
    pool: Mutex<Vec<CascadeClassifier>>,
}

impl std::fmt::Debug for FaceDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaceDetector")
            .field("xml_bytes", &self.xml.len())
            .finish()
    }
}

impl FaceDetector {
    /// The built-in frontal face cascade, loaded once per process.
    pub fn builtin() -> Result<Arc<FaceDetector>> {
        static BUILTIN: OnceLock<Arc<FaceDetector>> = OnceLock::new();
        if let Some(d) = BUILTIN.get() {
            return Ok(d.clone());
        }
        let d = Arc::new(FaceDetector::from_xml(DEFAULT_CASCADE_XML)?);
        Ok(BUILTIN.get_or_init(|| d).clone())
    }

    /// A cascade read from an XML file (a model's own face assets).
    /// A cascade file when one is named (a model's face assets, `--cascade`, the `cascade`
    /// option), else the built-in one: the one place that choice is made.
    pub fn from_option(path: Option<&Path>) -> Result<Arc<FaceDetector>> {
        match path {
            Some(p) => Self::from_file(p).map(Arc::new),
            None => Self::builtin(),
        }
    }

    /// A detector from a cascade XML file.
    pub fn from_file(path: &Path) -> Result<FaceDetector> {
        let xml = std::fs::read_to_string(path).map_err(|_| {
            Error::new(
                ErrorCode::ModelError,
                "the face cascade file cannot be read",
            )
        })?;
        FaceDetector::from_xml(&xml)
    }

    /// A cascade from XML text. Fails unless OpenCV accepts it as a cascade.
    pub fn from_xml(xml: &str) -> Result<FaceDetector> {
        let det = FaceDetector {
            xml: Arc::from(xml),
            pool: Mutex::new(Vec::new()),
        };
        let first = det.load()?;
        det.put_back(first);
        Ok(det)
    }

    fn load(&self) -> Result<CascadeClassifier> {
        let bad = || {
            Error::new(
                ErrorCode::ModelError,
                "the face cascade is not a valid OpenCV cascade",
            )
        };
        let mode = opencv::core::FileStorage_Mode::READ as i32
            | opencv::core::FileStorage_Mode::MEMORY as i32;
        let fs = FileStorage::new(&*self.xml, mode, "").map_err(|_| bad())?;
        let mut cc = CascadeClassifier::default().map_err(|_| bad())?;
        let root = fs.get_first_top_level_node().map_err(|_| bad())?;
        if !cc.read(&root).map_err(|_| bad())? || cc.empty().map_err(|_| bad())? {
            return Err(bad());
        }
        Ok(cc)
    }

    /// Takes a classifier from the pool, loading a new one when all are in use.
    pub fn checkout(&self) -> Result<CascadeClassifier> {
        let pooled = self.pool.lock().ok().and_then(|mut p| p.pop());
        match pooled {
            Some(c) => Ok(c),
            None => self.load(),
        }
    }

    /// Returns a classifier to the pool.
    pub fn put_back(&self, c: CascadeClassifier) {
        if let Ok(mut p) = self.pool.lock() {
            if p.len() < 64 {
                p.push(c);
            }
        }
    }
}

/// Scratch buffers for one extraction's detections.
#[derive(Default)]
pub struct DetectScratch {
    small: Mat,
    eq: Mat,
    found: Vector<Rect>,
}

/// Runs the spec's detection on one gray frame; `None` when no face is found.
pub fn detect(
    cc: &mut CascadeClassifier,
    gray: &Mat,
    params: &SpecParams,
    scratch: &mut DetectScratch,
) -> opencv::Result<Option<FaceBox>> {
    let (fw, fh) = (gray.cols(), gray.rows());
    let dw = params.detect_width as i32;
    let src: &Mat = if fw > dw {
        let dh = round_half_up(f64::from(fh) * f64::from(dw) / f64::from(fw)) as i32;
        imgproc::resize(
            gray,
            &mut scratch.small,
            Size::new(dw, dh.max(1)),
            0.0,
            0.0,
            imgproc::INTER_AREA,
        )?;
        &scratch.small
    } else {
        gray
    };
    let (sw, sh) = (src.cols(), src.rows());
    imgproc::equalize_hist(src, &mut scratch.eq)?;
    let min_side = round_half_up(HAAR.min_size_fraction * f64::from(sh)) as i32;
    scratch.found.clear();
    cc.detect_multi_scale(
        &scratch.eq,
        &mut scratch.found,
        HAAR.scale_factor,
        HAAR.min_neighbors,
        0,
        Size::new(min_side, min_side),
        Size::new(0, 0),
    )?;
    let dets: Vec<Rect> = scratch.found.iter().collect();
    Ok(pick_largest(&dets).map(|d| box_from_detection(d, f64::from(fw) / f64::from(sw), fw, fh)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_rule() {
        let a = FaceBox {
            x: 0,
            y: 0,
            side: 10,
        };
        assert_eq!(a.iou(&a), 1.0);
        assert_eq!(
            a.iou(&FaceBox {
                x: 10,
                y: 0,
                side: 10
            }),
            0.0
        );
        // Shift by 1 px of a 10 px box: 90 / 110.
        let b = FaceBox {
            x: 1,
            y: 0,
            side: 10,
        };
        assert!((a.iou(&b) - 90.0 / 110.0).abs() < 1e-12);
        assert!(a.iou(&b) < 0.85, "a 1 px shift of a small box is a change");
        // 100 px box, 2 px shift: 9800 / 10200 = 0.96 → kept.
        let c = FaceBox {
            x: 0,
            y: 0,
            side: 100,
        };
        assert!(
            c.iou(&FaceBox {
                x: 2,
                y: 0,
                side: 100
            }) >= 0.85
        );
    }

    #[test]
    fn box_rule_scales_rounds_and_clamps() {
        // 640-wide frame shrunk to 320: s = 2.
        let b = box_from_detection(Rect::new(100, 50, 40, 40), 2.0, 640, 480);
        assert_eq!(
            b,
            FaceBox {
                x: 200,
                y: 100,
                side: 80
            }
        );
        // Near the edge: shifted back inside.
        let b = box_from_detection(Rect::new(300, 220, 40, 40), 2.0, 640, 480);
        assert_eq!(
            b,
            FaceBox {
                x: 560,
                y: 400,
                side: 80
            }
        );
        // Larger than the frame: side capped by the frame's smaller side.
        let b = box_from_detection(Rect::new(0, 0, 200, 200), 2.0, 640, 300);
        assert_eq!(b.side, 300);
        assert_eq!(b.y, 0);
        // Half-up rounding of the side: 33 × 1.5 = 49.5 → 50.
        let b = box_from_detection(Rect::new(10, 10, 33, 33), 1.5, 640, 480);
        assert_eq!(b.side, 50);
    }

    #[test]
    fn largest_then_top_then_left() {
        let d = [
            Rect::new(5, 5, 10, 10),
            Rect::new(1, 9, 20, 20),
            Rect::new(0, 9, 20, 20),
            Rect::new(7, 3, 20, 20),
        ];
        assert_eq!(pick_largest(&d), Some(Rect::new(7, 3, 20, 20)));
        assert_eq!(pick_largest(&d[..3]), Some(Rect::new(0, 9, 20, 20)));
        assert_eq!(pick_largest(&[]), None);
    }

    #[test]
    fn builtin_cascade_loads() {
        let d = FaceDetector::builtin().expect("built-in cascade");
        let c = d.checkout().expect("checkout");
        d.put_back(c);
        assert!(FaceDetector::from_xml("<opencv_storage></opencv_storage>").is_err());
    }
}
