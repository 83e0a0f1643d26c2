//! The `poc-abs` feature contracts, v1 (`spec/poc-abs-v1.md`) and v2
//! (`docs/spec/poc-abs-v2.md`): parameters, regions, channels and feature names.
//!
//! Everything here is data from the specs; the maths lives in [`crate::poc`], [`crate::stats`],
//! [`crate::face`] and [`crate::extract`]. A model's manifest names its
//! spec as `{"name": "poc-abs", "version": 1 | 2, "params": {...}}` ([`Spec`]), and
//! [`SpecParams`] is that `params` object: every field is optional and defaults to the spec's
//! value. The two versions share the channels, statistics and the 90 names; they differ in how
//! the face is found and cut (v1 a Haar box, v2 a landmark-aligned square) and so in where
//! the eight regions sit in the crop ([`REGIONS`], [`REGIONS_V2`]).

use crate::error::{Error, ErrorCode, Result};
use crate::stats::{N_STATS, STAT_NAMES};

mod params;
pub use params::{Limits, SpecParams, DEFAULT_MAX_DECODED_PIXELS, MAX_PIXELS};

/// The specs' name as written in manifests.
pub const SPEC_NAME: &str = "poc-abs";

/// How a spec finds the face and cuts its canonical crop (the extractor's face method).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaceKind {
    /// The Haar cascade's box (v1 §2), squared and clamped: needs a cascade.
    HaarBox,
    /// BlazeFace and FaceMesh, the face aligned by a similarity (v2 §2–§4): needs ONNX Runtime.
    LandmarkAligned,
}

/// Everything that makes one feature spec, as data: its name in manifests, its face method and
/// its eight regions. A new spec is a new entry of [`SPECS`] (and, when its face method is new,
/// a new [`FaceKind`]); every front end (the CLI, the binding, the service, the exporter through
/// `tabr-features --describe`) asks the [`Spec`] handle, never compares versions itself.
#[derive(Debug)]
pub struct SpecDef {
    /// `name/version`, the form `--spec` and `extractFeatures`' `spec` option take.
    pub id: &'static str,
    /// A manifest's `features.version` (`features.name` is [`SPEC_NAME`]).
    pub version: u32,
    /// How the face is found and cut.
    pub face: FaceKind,
    /// The eight regions in the canonical crop, in vector order.
    pub regions: [Region; 8],
    /// Only for the project's tests: visible when `TABR_TEST_SPECS=1` (see [`SPECS`]).
    pub test_only: bool,
}

/// The specs of this build, oldest first. The last one exists to prove the seam: v2's face
/// method with another region set (each of v2's regions grown by 2 % of the crop on every
/// side), registered here alone and carried through the CLI, the binding and the service by
/// their tests. It is invisible unless `TABR_TEST_SPECS=1`.
pub static SPECS: [SpecDef; 3] = [
    SpecDef {
        id: "poc-abs/1",
        version: 1,
        face: FaceKind::HaarBox,
        regions: REGIONS,
        test_only: false,
    },
    SpecDef {
        id: "poc-abs/2",
        version: 2,
        face: FaceKind::LandmarkAligned,
        regions: REGIONS_V2,
        test_only: false,
    },
    SpecDef {
        id: "poc-abs/99",
        version: 99,
        face: FaceKind::LandmarkAligned,
        regions: grown(REGIONS_V2, 0.02),
        test_only: true,
    },
];

/// `regions` each grown by `by` on every side (within the crop).
const fn grown(mut regions: [Region; 8], by: f64) -> [Region; 8] {
    let mut i = 0;
    while i < regions.len() {
        let r = &mut regions[i];
        r.x0 = if r.x0 > by { r.x0 - by } else { 0.0 };
        r.y0 = if r.y0 > by { r.y0 - by } else { 0.0 };
        r.x1 = if r.x1 + by < 1.0 { r.x1 + by } else { 1.0 };
        r.y1 = if r.y1 + by < 1.0 { r.y1 + by } else { 1.0 };
        i += 1;
    }
    regions
}

/// A feature spec this build implements: a handle onto its [`SpecDef`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Spec(usize);

impl Default for Spec {
    fn default() -> Self {
        Spec::V1
    }
}

impl Spec {
    /// poc-abs v1: the Haar cascade's box.
    pub const V1: Spec = Spec(0);
    /// poc-abs v2: BlazeFace + FaceMesh, the face aligned by a similarity.
    pub const V2: Spec = Spec(1);
    /// The public specs, oldest first (the test-only spec is never among them).
    pub const ALL: [Spec; 2] = [Spec::V1, Spec::V2];

    /// Every spec visible to this process: [`Spec::ALL`], and the test-only one when
    /// `TABR_TEST_SPECS=1`.
    pub fn visible() -> Vec<Spec> {
        let tests = std::env::var("TABR_TEST_SPECS").as_deref() == Ok("1");
        (0..SPECS.len())
            .map(Spec)
            .filter(|s| tests || !s.def().test_only)
            .collect()
    }

    /// The spec whose id is `id` among all of [`SPECS`], test-only ones included (for tests).
    #[cfg(test)]
    fn visible_or_all(id: &str) -> Spec {
        Spec(
            (0..SPECS.len())
                .find(|&i| SPECS[i].id == id)
                .expect("a spec of SPECS"),
        )
    }

    /// Its description.
    pub const fn def(self) -> &'static SpecDef {
        &SPECS[self.0]
    }

    /// The manifest's `version`.
    pub const fn version(self) -> u32 {
        self.def().version
    }

    /// `name/version`, the form [`crate::FEATURE_SPECS`] lists and the CLI's `--spec` takes.
    pub const fn id(self) -> &'static str {
        self.def().id
    }

    /// The eight regions in the canonical crop, in vector order.
    pub const fn regions(self) -> &'static [Region; 8] {
        &self.def().regions
    }

    /// How the face is found and cut.
    pub const fn face(self) -> FaceKind {
        self.def().face
    }

    /// The face method's name: `haar-box` (v1) or `landmark-aligned` (v2).
    pub const fn face_method(self) -> &'static str {
        match self.face() {
            FaceKind::HaarBox => "haar-box",
            FaceKind::LandmarkAligned => "landmark-aligned",
        }
    }

    /// Whether extraction runs ONNX Runtime (the face networks), whose library the caller names.
    pub const fn needs_onnxruntime(self) -> bool {
        matches!(self.face(), FaceKind::LandmarkAligned)
    }

    /// Whether a face cascade (a model's `face_cascade.xml`) is one of its assets.
    pub const fn takes_cascade(self) -> bool {
        matches!(self.face(), FaceKind::HaarBox)
    }

    /// The recording-quality measures its answers carry (`meta.quality`): every spec has the
    /// face box's size, the face rate, brightness and sharpness; a landmark-aligned face also
    /// gives the head's pose and FaceMesh's face flag.
    pub const fn quality_measures(self) -> &'static [&'static str] {
        match self.face() {
            FaceKind::HaarBox => &["face_px", "face_rate", "brightness", "sharpness"],
            FaceKind::LandmarkAligned => &[
                "face_px",
                "face_rate",
                "brightness",
                "sharpness",
                "yaw_deg",
                "pitch_deg",
                "roll_deg",
                "face_flag",
            ],
        }
    }

    /// What extracting this spec needs beyond the core (`onnxruntime`).
    pub const fn needs(self) -> &'static [&'static str] {
        if self.needs_onnxruntime() {
            &["onnxruntime"]
        } else {
            &[]
        }
    }

    /// The spec as data, for every front end that must know it (`tabr-features --describe`,
    /// the binding's `specs()`, the service's generated contracts).
    pub fn describe(self) -> SpecDescription {
        SpecDescription {
            id: self.id(),
            name: SPEC_NAME,
            version: self.version(),
            face_method: self.face_method(),
            regions: self.regions().to_vec(),
            channels: channel_names_of(self),
            statistics: STAT_NAMES.to_vec(),
            names: feature_names_of(self),
            n_features: N_FEATURES,
            needs: self.needs().to_vec(),
            quality: self.quality_measures().to_vec(),
        }
    }

    /// The spec a manifest's `name` and `version` name (among the visible ones).
    pub fn from_manifest(name: &str, version: u32) -> Option<Spec> {
        Spec::visible()
            .into_iter()
            .find(|s| name == SPEC_NAME && s.version() == version)
    }

    /// The spec an id such as `poc-abs/2` names (among the visible ones); anything else is a
    /// `model_error` (the code of every bad option, as for the flow method).
    pub fn parse(id: &str) -> Result<Spec> {
        Spec::visible()
            .into_iter()
            .find(|s| s.id() == id)
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::ModelError,
                    format!(
                        "unknown feature spec (this build implements {})",
                        crate::FEATURE_SPECS.join(", ")
                    ),
                )
            })
    }
}

/// A spec described as data ([`Spec::describe`]): what its features are and what it needs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SpecDescription {
    /// `name/version`, e.g. `poc-abs/2`.
    pub id: &'static str,
    /// The manifest's `features.name`.
    pub name: &'static str,
    /// The manifest's `features.version`.
    pub version: u32,
    /// How the face is found and cut.
    pub face_method: &'static str,
    /// The eight regions in the canonical crop, as fractions of its side.
    pub regions: Vec<Region>,
    /// The per-pair channels, in vector order.
    pub channels: Vec<String>,
    /// The statistics of each channel, in vector order.
    pub statistics: Vec<&'static str>,
    /// The feature names, channel-major.
    pub names: Vec<String>,
    /// The vector's length.
    pub n_features: usize,
    /// What extraction needs beyond the core (`onnxruntime`).
    pub needs: Vec<&'static str>,
    /// The recording-quality measures its answers carry.
    pub quality: Vec<&'static str>,
}

/// Farnebäck's arguments in spec §4 (OpenCV's `calcOpticalFlowFarneback` with these is the
/// reference). Fixed by the spec, not tunable per model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FarnebackParams {
    /// Scale between pyramid levels.
    pub pyr_scale: f64,
    /// Pyramid levels.
    pub levels: i32,
    /// Averaging window size.
    pub winsize: i32,
    /// Iterations per level.
    pub iterations: i32,
    /// Neighbourhood of the polynomial expansion.
    pub poly_n: i32,
    /// Gaussian sigma of the polynomial expansion.
    pub poly_sigma: f64,
    /// OpenCV flags (none).
    pub flags: i32,
}

/// The v1 flow parameters: pyramid scale 0.5, 3 levels, window 15, 3 iterations, poly_n 5,
/// poly_sigma 1.2, no flags.
pub const FARNEBACK: FarnebackParams = FarnebackParams {
    pyr_scale: 0.5,
    levels: 3,
    winsize: 15,
    iterations: 3,
    poly_n: 5,
    poly_sigma: 1.2,
    flags: 0,
};

/// The Haar detector's fixed arguments in spec §2 (the frame size, the shrink width and the
/// minimum size are in [`SpecParams`] and [`crate::face`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HaarParams {
    /// Scale factor between detection scales.
    pub scale_factor: f64,
    /// Minimum neighbours of a detection.
    pub min_neighbors: i32,
    /// Minimum face side as a fraction of the shrunk frame's height.
    pub min_size_fraction: f64,
}

/// The v1 detector: scale factor 1.1, 5 neighbours, minimum side 0.1 × shrunk height.
pub const HAAR: HaarParams = HaarParams {
    scale_factor: 1.1,
    min_neighbors: 5,
    min_size_fraction: 0.1,
};

/// A face region in normalised crop coordinates.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Region {
    /// Name used in feature names, e.g. `brow_l`.
    pub name: &'static str,
    /// Left edge in [0, 1].
    pub x0: f64,
    /// Top edge in [0, 1].
    pub y0: f64,
    /// Right edge in [0, 1].
    pub x1: f64,
    /// Bottom edge in [0, 1].
    pub y1: f64,
}

/// v1's eight regions, in vector order (v1 §3), in the Haar box's crop.
pub const REGIONS: [Region; 8] = [
    Region {
        name: "brow_l",
        x0: 0.12,
        y0: 0.14,
        x1: 0.46,
        y1: 0.30,
    },
    Region {
        name: "brow_r",
        x0: 0.54,
        y0: 0.14,
        x1: 0.88,
        y1: 0.30,
    },
    Region {
        name: "eye_l",
        x0: 0.12,
        y0: 0.28,
        x1: 0.46,
        y1: 0.46,
    },
    Region {
        name: "eye_r",
        x0: 0.54,
        y0: 0.28,
        x1: 0.88,
        y1: 0.46,
    },
    Region {
        name: "nose",
        x0: 0.36,
        y0: 0.44,
        x1: 0.64,
        y1: 0.66,
    },
    Region {
        name: "cheek_l",
        x0: 0.06,
        y0: 0.46,
        x1: 0.34,
        y1: 0.72,
    },
    Region {
        name: "cheek_r",
        x0: 0.66,
        y0: 0.46,
        x1: 0.94,
        y1: 0.72,
    },
    Region {
        name: "mouth",
        x0: 0.26,
        y0: 0.66,
        x1: 0.74,
        y1: 0.92,
    },
];

/// v2's eight regions, in vector order (v2 §6), in the landmark-aligned crop: each is the
/// box of its landmarks' mean canonical positions over the face fixtures, widened by about 3
/// crop pixels, rounded out to hundredths and made mirror-symmetric about x = ½. The brows
/// reach up to see them rise; the eyes hold lids and lashes; the cheeks lie between the eye's
/// lower lid and the mouth corners' height, outside the nose.
pub const REGIONS_V2: [Region; 8] = [
    Region {
        name: "brow_l",
        x0: 0.20,
        y0: 0.22,
        x1: 0.45,
        y1: 0.36,
    },
    Region {
        name: "brow_r",
        x0: 0.55,
        y0: 0.22,
        x1: 0.80,
        y1: 0.36,
    },
    Region {
        name: "eye_l",
        x0: 0.25,
        y0: 0.35,
        x1: 0.44,
        y1: 0.45,
    },
    Region {
        name: "eye_r",
        x0: 0.56,
        y0: 0.35,
        x1: 0.75,
        y1: 0.45,
    },
    Region {
        name: "nose",
        x0: 0.38,
        y0: 0.44,
        x1: 0.62,
        y1: 0.63,
    },
    Region {
        name: "cheek_l",
        x0: 0.18,
        y0: 0.47,
        x1: 0.38,
        y1: 0.65,
    },
    Region {
        name: "cheek_r",
        x0: 0.62,
        y0: 0.47,
        x1: 0.82,
        y1: 0.65,
    },
    Region {
        name: "mouth",
        x0: 0.33,
        y0: 0.65,
        x1: 0.67,
        y1: 0.83,
    },
];

/// Channels per pair: `abs` and `poc` for each region, then `global.head`, `global.poc`.
pub const N_CHANNELS: usize = REGIONS.len() * 2 + 2;
/// Length of the feature vector.
pub const N_FEATURES: usize = N_CHANNELS * N_STATS;

/// A pixel rectangle, end exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelRect {
    /// First column.
    pub x: usize,
    /// First row.
    pub y: usize,
    /// Width in pixels.
    pub w: usize,
    /// Height in pixels.
    pub h: usize,
}

impl Region {
    /// The pixel rectangle in an `n`×`n` crop: floor of the start, ceil of the end.
    pub fn pixel_rect(&self, n: usize) -> PixelRect {
        let nf = n as f64;
        let x = (self.x0 * nf).floor() as usize;
        let y = (self.y0 * nf).floor() as usize;
        let x1 = ((self.x1 * nf).ceil() as usize).min(n);
        let y1 = ((self.y1 * nf).ceil() as usize).min(n);
        PixelRect {
            x,
            y,
            w: x1 - x,
            h: y1 - y,
        }
    }
}

/// Channel names in per-pair order.
pub fn channel_names() -> Vec<String> {
    channel_names_of(Spec::V1)
}

/// A spec's channel names: `{region}.abs` and `{region}.poc` per region, then `global.head`
/// and `global.poc` (spec §4).
pub fn channel_names_of(spec: Spec) -> Vec<String> {
    let mut names = Vec::with_capacity(N_CHANNELS);
    for r in spec.regions() {
        names.push(format!("{}.abs", r.name));
        names.push(format!("{}.poc", r.name));
    }
    names.push("global.head".into());
    names.push("global.poc".into());
    names
}

/// A spec's feature names, `{channel}.{stat}`, channel-major (spec §5).
pub fn feature_names_of(spec: Spec) -> Vec<String> {
    channel_names_of(spec)
        .iter()
        .flat_map(|c| STAT_NAMES.iter().map(move |s| format!("{c}.{s}")))
        .collect()
}

/// Feature names `{channel}.{stat}`, channel-major (spec §5), built once per process. Every
/// spec of [`SPECS`] names its regions alike (a test holds them to it), so these are each
/// spec's names; [`feature_names_of`] builds one spec's.
pub fn feature_name_list() -> &'static [String] {
    static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| feature_names_of(Spec::V1))
}

/// The feature names as an owned list (see [`feature_name_list`]).
pub fn feature_names() -> Vec<String> {
    feature_name_list().to_vec()
}

/// The spec's rounding: half up, `floor(x + 0.5)`.
pub fn round_half_up(x: f64) -> f64 {
    (x + 0.5).floor()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_ids_join_name_and_version() {
        for s in Spec::ALL {
            assert_eq!(s.id(), format!("{SPEC_NAME}/{}", s.version()));
            assert_eq!(Spec::parse(s.id()).expect("a listed spec parses"), s);
            assert_eq!(Spec::from_manifest(SPEC_NAME, s.version()), Some(s));
        }
        assert_eq!(crate::FEATURE_SPECS, Spec::ALL.map(Spec::id));
        assert!(Spec::parse("poc-abs/3").is_err());
        assert!(Spec::parse("poc-abs").is_err());
        assert_eq!(Spec::from_manifest("poc", 1), None);
    }

    #[test]
    fn v2_regions_are_mirror_symmetric_and_share_v1s_names() {
        for (a, b) in REGIONS.iter().zip(&REGIONS_V2) {
            assert_eq!(a.name, b.name);
            assert!(
                0.0 <= b.x0
                    && b.x0 < b.x1
                    && b.x1 <= 1.0
                    && 0.0 <= b.y0
                    && b.y0 < b.y1
                    && b.y1 <= 1.0
            );
        }
        let r = &REGIONS_V2;
        for (l, rr) in [(0, 1), (2, 3), (5, 6)] {
            assert!(
                (r[l].x0 - (1.0 - r[rr].x1)).abs() < 1e-12
                    && (r[l].x1 - (1.0 - r[rr].x0)).abs() < 1e-12
            );
            assert_eq!((r[l].y0, r[l].y1), (r[rr].y0, r[rr].y1));
        }
        for i in [4, 7] {
            assert!((r[i].x0 - (1.0 - r[i].x1)).abs() < 1e-12);
        }
    }

    #[test]
    fn region_rects_at_128() {
        let rects: Vec<_> = REGIONS.iter().map(|r| r.pixel_rect(128)).collect();
        let expect = [
            (15, 17, 59, 39),  // brow_l: 15.36, 17.92, 58.88, 38.4
            (69, 17, 113, 39), // brow_r: 69.12, .., 112.64
            (15, 35, 59, 59),  // eye_l: 35.84 .. 58.88
            (69, 35, 113, 59),
            (46, 56, 82, 85),  // nose: 46.08, 56.32, 81.92, 84.48
            (7, 58, 44, 93),   // cheek_l: 7.68, 58.88, 43.52, 92.16
            (84, 58, 121, 93), // cheek_r: 84.48, .., 120.32
            (33, 84, 95, 118), // mouth: 33.28, 84.48, 94.72, 117.76
        ];
        for (r, (x0, y0, x1, y1)) in rects.iter().zip(expect) {
            assert_eq!((r.x, r.y, r.x + r.w, r.y + r.h), (x0, y0, x1, y1));
        }
    }

    #[test]
    fn every_spec_names_its_features_alike_and_the_test_spec_stays_hidden() {
        for d in &SPECS {
            let s = Spec::visible_or_all(d.id);
            assert_eq!(feature_names_of(s), feature_names(), "{}", d.id);
        }
        assert_eq!(
            Spec::ALL.len(),
            SPECS.iter().filter(|d| !d.test_only).count()
        );
        assert!(Spec::ALL.iter().all(|s| !s.def().test_only));
        assert_eq!(
            crate::FEATURE_SPECS.to_vec(),
            Spec::ALL.map(Spec::id).to_vec()
        );
    }

    #[test]
    fn names_are_channel_major() {
        let names = feature_names();
        assert_eq!(names.len(), 90);
        assert_eq!(names[0], "brow_l.abs.mean");
        assert_eq!(names[9], "brow_l.poc.spike");
        assert_eq!(names[73], "mouth.abs.p95");
        assert_eq!(names[89], "global.poc.spike");
    }

    #[test]
    fn limits_cap_but_never_raise() {
        let p = SpecParams::default();
        let tight = Limits {
            max_seconds: Some(5.0),
            max_pixels: Some(640 * 480),
            max_decoded_pixels: Some(1_000_000),
            max_frame_rate: Some(30.0),
        };
        let c = p.capped(&tight);
        assert_eq!(
            (
                c.max_seconds,
                c.max_pixels,
                c.max_decoded_pixels,
                c.max_frame_rate
            ),
            (5.0, 640 * 480, 1_000_000, 30.0)
        );
        assert_eq!(c.max_work_frames(), 150);
        let loose = Limits {
            max_seconds: Some(100.0),
            max_pixels: Some(u64::MAX),
            max_decoded_pixels: None,
            max_frame_rate: Some(1000.0),
        };
        assert_eq!(p.capped(&loose), p);
        assert_eq!(p.capped(&Limits::default()), p);
    }

    #[test]
    fn schedule_numbers() {
        let p = SpecParams::default();
        assert_eq!(p.redetect_every(25.0), 13);
        assert_eq!(p.redetect_every(30.0), 15);
        assert_eq!(p.redetect_every(29.97), 15);
        assert_eq!(p.redetect_every(1.0), 1);
        assert_eq!(p.max_frames(30.0), 315);
        assert_eq!(p.max_frames(29.97), 315);
        assert_eq!(p.max_work_frames(), 1260);
        assert_eq!(round_half_up(2.5), 3.0);
        assert_eq!(round_half_up(-2.5), -2.0);
    }
}
