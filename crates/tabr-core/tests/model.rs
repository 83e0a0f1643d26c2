//! The model module against the committed demo model (`models/tabr-demo`): golden parity,
//! clear refusals of malformed directories, provider choice, and accuracy on fresh clips.
//!
//! ONNX Runtime comes from `ORT_DYLIB_PATH`, or from the `onnxruntime-node` package that
//! `make build` installs under packages/tabr-native.

use std::path::{Path, PathBuf};

use tabr_core::model::{LoadOptions, Model, Prediction, Provider};
use tabr_core::synth::{demo_clip_spec, write_clip, DEMO_LABELS};
use tabr_core::{CancelFlag, ErrorCode, VideoSource};

mod common;
use common::{ort_dylib, repo};

fn demo_dir() -> PathBuf {
    repo().join("models/tabr-demo")
}

fn opts() -> LoadOptions {
    LoadOptions {
        ort_dylib_path: Some(ort_dylib()),
        ..LoadOptions::default()
    }
}

/// A copy of the demo model in a temp dir, changed by `edit`.
fn broken(edit: impl FnOnce(&Path)) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("m");
    std::fs::create_dir(&dir).expect("mkdir");
    for e in std::fs::read_dir(demo_dir()).expect("demo model") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), dir.join(e.file_name())).expect("copy");
    }
    edit(&dir);
    (tmp, dir)
}

fn edit_manifest(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("manifest.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).expect("read")).expect("json");
    f(&mut v);
    std::fs::write(p, v.to_string()).expect("write");
}

fn load_err(dir: &Path) -> tabr_core::Error {
    Model::load(dir, &opts()).expect_err("a malformed model is refused")
}

#[test]
fn demo_model_loads_and_matches_golden() {
    let m = Model::load(
        &demo_dir(),
        &LoadOptions {
            verify_golden: false,
            ..opts()
        },
    )
    .expect("demo model loads");
    let info = m.info();
    assert_eq!(info.name, "tabr-demo");
    assert_eq!(info.labels, DEMO_LABELS);
    assert_eq!(info.n_features, 90);
    assert_eq!(info.provider, "cpu");
    let dev = m.verify_golden().expect("golden runs");
    println!("golden: worst |Δ| = {dev:.2e}");
    assert!(dev <= 1e-5, "golden parity {dev:.2e} > 1e-5");
}

#[test]
fn predictions_validate_their_input() {
    let m = Model::load(&demo_dir(), &opts()).expect("loads");
    let row = vec![f64::NAN; 90];
    match m.predict(&row).expect("all missing is imputed") {
        Prediction::Class { probabilities, .. } => {
            assert!((probabilities.iter().sum::<f64>() - 1.0).abs() < 1e-9)
        }
        p => panic!("binclass gives classes: {p:?}"),
    }
    assert_eq!(
        m.predict(&[0.0; 89]).expect_err("short").code(),
        ErrorCode::InvalidFeatures
    );
    let mut inf = vec![0.0; 90];
    inf[3] = f64::INFINITY;
    assert_eq!(
        m.predict(&inf).expect_err("inf").code(),
        ErrorCode::InvalidFeatures
    );
}

#[test]
fn a_batch_predicts_each_row_as_it_would_alone() {
    let m = Model::load(&demo_dir(), &opts()).expect("loads");
    // 64 distinct rows: a spread of values, some missing (the imputer fills them).
    let rows: Vec<Vec<f64>> = (0..64)
        .map(|r| {
            (0..90)
                .map(|i| {
                    if (r + i) % 17 == 0 {
                        f64::NAN
                    } else {
                        ((r * 31 + i * 7) % 23) as f64 * 0.05 - 0.3
                    }
                })
                .collect()
        })
        .collect();
    let refs: Vec<&[f64]> = rows.iter().map(Vec::as_slice).collect();
    let batch = m.predict_batch(&refs).expect("batch");
    assert_eq!(batch.len(), 64);
    let mut worst = 0.0f64;
    for (row, got) in rows.iter().zip(&batch) {
        match (m.predict(row).expect("alone"), got) {
            (
                Prediction::Class {
                    label: la,
                    probabilities: pa,
                },
                Prediction::Class {
                    label: lb,
                    probabilities: pb,
                },
            ) => {
                assert_eq!(&la, lb);
                for (a, b) in pa.iter().zip(pb) {
                    worst = worst.max((a - b).abs());
                }
            }
            other => panic!("binclass gives classes: {other:?}"),
        }
    }
    assert!(worst <= 1e-6, "batch vs alone: {worst:.2e}");
    // A bad row refuses the batch and is named.
    let mut bad = rows.clone();
    bad[5][2] = f64::INFINITY;
    let refs: Vec<&[f64]> = bad.iter().map(Vec::as_slice).collect();
    let e = m.predict_batch(&refs).expect_err("an infinite value");
    assert_eq!(e.code(), ErrorCode::InvalidFeatures);
    assert!(
        e.message().starts_with("row 5: feature 2"),
        "{}",
        e.message()
    );
    assert!(m.predict_batch(&[]).expect("empty").is_empty());
}

#[test]
fn a_missing_value_without_an_imputer_is_invalid_features() {
    // The demo model without its imputer step (and without golden.json, whose rows have
    // missing values this model can no longer fill).
    let (_tmp, dir) = broken(|d: &Path| {
        let p = d.join("preprocess.json");
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).expect("read")).expect("json");
        let steps = v["steps"].as_array_mut().expect("steps");
        steps.retain(|s| s["type"] != "imputer");
        std::fs::write(&p, v.to_string()).expect("write");
        std::fs::remove_file(d.join("golden.json")).expect("rm golden");
        edit_manifest(d, |v| {
            v["files"].as_object_mut().expect("files").remove("golden");
        });
    });
    let m = Model::load(&dir, &opts()).expect("loads without an imputer");
    let mut row = vec![0.1; 90];
    assert!(m.predict(&row).is_ok(), "a full row still predicts");
    row[73] = f64::NAN;
    let e = m
        .predict(&row)
        .expect_err("a missing value cannot be filled");
    assert_eq!(e.code(), ErrorCode::InvalidFeatures);
    assert!(e.message().contains("mouth.abs.p95"), "{}", e.message());
}

#[test]
fn malformed_directories_are_refused_clearly() {
    type Edit = Box<dyn FnOnce(&Path)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "missing file",
            Box::new(|d: &Path| std::fs::remove_file(d.join("preprocess.json")).expect("rm")),
            "preprocessing file is missing",
        ),
        (
            "n_features",
            Box::new(|d: &Path| edit_manifest(d, |v| v["n_features"] = 80.into())),
            "n_features is 80",
        ),
        (
            "escaping path",
            Box::new(|d: &Path| edit_manifest(d, |v| v["files"]["onnx"] = "../model.onnx".into())),
            "inside the model directory",
        ),
        (
            "absolute path",
            Box::new(|d: &Path| edit_manifest(d, |v| v["files"]["onnx"] = "/etc/passwd".into())),
            "inside the model directory",
        ),
        (
            "corrupt onnx",
            Box::new(|d: &Path| {
                std::fs::write(d.join("model.onnx"), b"not an onnx graph").expect("write")
            }),
            "cannot be loaded by ONNX Runtime",
        ),
        (
            "format version",
            Box::new(|d: &Path| edit_manifest(d, |v| v["format"] = "tabr-model/9".into())),
            "unknown model format",
        ),
        (
            "feature spec",
            Box::new(|d: &Path| edit_manifest(d, |v| v["features"]["version"] = 3.into())),
            "not implemented by this build",
        ),
        (
            "a v1 face cascade on a v2 model",
            Box::new(|d: &Path| edit_manifest(d, |v| v["features"]["version"] = 2.into())),
            "a face cascade belongs to poc-abs/1",
        ),
        (
            "labels",
            Box::new(|d: &Path| {
                edit_manifest(d, |v| v["labels"] = serde_json::json!(["a", "b", "c"]))
            }),
            "cannot have 3 labels",
        ),
        (
            "no manifest",
            Box::new(|d: &Path| std::fs::remove_file(d.join("manifest.json")).expect("rm")),
            "no readable manifest.json",
        ),
    ];
    for (name, edit, want) in cases {
        let (_tmp, dir) = broken(edit);
        let e = load_err(&dir);
        assert_eq!(e.code(), ErrorCode::ModelError, "{name}: {e}");
        assert!(
            e.message().contains(want),
            "{name}: {:?} lacks {want:?}",
            e.message()
        );
        assert!(
            !e.message().contains(&*dir.to_string_lossy()),
            "{name}: message names a path"
        );
    }
    #[cfg(unix)]
    {
        let (_tmp, dir) = broken(|d| {
            std::fs::remove_file(d.join("model.onnx")).expect("rm");
            std::os::unix::fs::symlink("/etc/hostname", d.join("model.onnx")).expect("symlink");
        });
        assert!(
            load_err(&dir)
                .message()
                .contains("inside the model directory"),
            "a link out of the directory is refused"
        );
    }
}

#[test]
fn cuda_is_refused_without_the_provider_and_auto_falls_back() {
    // onnxruntime-node's runtime is a CPU build: `cuda` must fail at load, `auto` must not.
    let e = Model::load(
        &demo_dir(),
        &LoadOptions {
            provider: Provider::Cuda,
            ..opts()
        },
    )
    .expect_err("no CUDA here");
    assert!(
        e.message()
            .starts_with("provider cuda: the loaded ONNX Runtime is a CPU build"),
        "{e}"
    );
    let m = Model::load(
        &demo_dir(),
        &LoadOptions {
            provider: Provider::Auto,
            ..opts()
        },
    )
    .expect("auto loads");
    assert_eq!(m.info().provider, "cpu");
    assert!(
        m.warnings().iter().any(|w| w
            .starts_with("provider auto: the loaded ONNX Runtime is a CPU build")
            && w.ends_with("; running on the CPU")),
        "{:?}",
        m.warnings()
    );
    assert!(Provider::parse("gpu").is_err());
}

#[test]
fn demo_model_tells_fresh_clips_apart() {
    let m = Model::load(&demo_dir(), &opts()).expect("loads");
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut right = [0usize; 2];
    for i in 0..10u64 {
        for (class, moving) in [(0usize, false), (1usize, true)] {
            // Seeds far from the training seeds (10 000+ and 20 000+).
            let seed = 900_000 + i * 2 + class as u64;
            let path = tmp.path().join(format!("{seed}.mkv"));
            write_clip(&path, &demo_clip_spec(seed, moving)).expect("clip");
            let p = m
                .predict_video(VideoSource::Path(&path), &CancelFlag::new())
                .expect("prediction")
                .prediction;
            let Prediction::Class {
                label,
                probabilities,
            } = p
            else {
                panic!("classes")
            };
            println!(
                "seed {seed} {}: {label} {probabilities:.3?}",
                DEMO_LABELS[class]
            );
            right[class] += usize::from(label == DEMO_LABELS[class]);
        }
    }
    println!(
        "fresh clips: none {}/10, micro_movement {}/10",
        right[0], right[1]
    );
    assert!(right[0] >= 9, "still clips called none: {}/10", right[0]);
    assert!(
        right[1] >= 9,
        "micro-movement clips called micro_movement: {}/10",
        right[1]
    );
}

/// Every committed model directory (`models/*`).
fn every_model() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(repo().join("models"))
        .expect("models/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("manifest.json").is_file())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 2, "the demo models are committed: {dirs:?}");
    dirs
}

/// The extremes of issue "Hardening, round two", item 4: finite values whose scaling or whose
/// path through the network overflows. Before, one feature at 1e21 gave `[NaN, NaN]` and the
/// first label on every model.
const EXTREMES: [f64; 10] = [
    1e21,
    -1e21,
    f32::MAX as f64,
    -(f32::MAX as f64),
    1e300,
    -1e300,
    f64::MAX,
    1e-310,                         // an f64 subnormal
    f32::MIN_POSITIVE as f64 / 4.0, // an f32 subnormal
    -1e-40,
];

fn assert_finite_answer(p: &Prediction, what: &str) {
    match p {
        Prediction::Class { probabilities, .. } => {
            assert!(
                probabilities
                    .iter()
                    .all(|v| v.is_finite() && (0.0..=1.0).contains(v)),
                "{what}: {probabilities:?}"
            );
            let sum: f64 = probabilities.iter().sum();
            assert!((sum - 1.0).abs() < 1e-9, "{what}: sum {sum}");
        }
        Prediction::Value { value } => assert!(value.is_finite(), "{what}: {value}"),
    }
}

#[test]
fn extreme_values_give_a_finite_answer_or_invalid_features_on_every_model() {
    for dir in every_model() {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_string();
        let m = Model::load(&dir, &opts()).expect("loads");
        let n = m.info().n_features;
        let (mut answered, mut refused) = (0, 0);
        for &x in &EXTREMES {
            for i in 0..n {
                let mut row = vec![f64::NAN; n];
                row[i] = x;
                match m.predict(&row) {
                    Ok(p) => {
                        assert_finite_answer(&p, &format!("{name} feature {i} = {x:e}"));
                        answered += 1;
                    }
                    Err(e) => {
                        assert_eq!(e.code(), ErrorCode::InvalidFeatures, "{name}: {e}");
                        assert!(
                            e.message().contains(&format!("feature {i} ("))
                                || e.message().contains("output overflows"),
                            "{name}: names the feature or says the output overflowed: {}",
                            e.message()
                        );
                        refused += 1;
                    }
                }
            }
            // Every feature at once: the network's sums overflow.
            let e = m.predict(&vec![x; n]);
            if x.abs() >= 1e21 {
                let e = e.expect_err("all features far out of range have no answer");
                assert_eq!(e.code(), ErrorCode::InvalidFeatures, "{name}: {e}");
            } else if let Ok(p) = e {
                assert_finite_answer(&p, &format!("{name}: every feature = {x:e}"));
            }
        }
        println!("{name}: {answered} answered, {refused} refused");
        assert!(refused > 0 && answered > 0, "{name}: both outcomes occur");
        // In a batch, the refusal names the row.
        let good = vec![f64::NAN; n];
        let bad = vec![1e21; n];
        let e = m
            .predict_batch(&[good.as_slice(), bad.as_slice()])
            .expect_err("one bad row refuses the batch");
        assert_eq!(e.code(), ErrorCode::InvalidFeatures);
        assert!(e.message().starts_with("row 1: "), "{}", e.message());
    }
}

#[test]
fn a_reversed_minmax_range_is_refused_at_load_instead_of_panicking_at_predict() {
    // scikit-learn's MinMaxScaler(clip=True) with feature_range (1, 0) written by hand: `clamp`
    // panicked on every prediction before the range was checked at load.
    let (_tmp, dir) = broken(|d: &Path| {
        let p = d.join("preprocess.json");
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).expect("read")).expect("json");
        v["steps"]
            .as_array_mut()
            .expect("steps")
            .push(serde_json::json!({
                "type": "minmax", "scale": vec![1.0; 90], "min": vec![0.0; 90],
                "clip": true, "range": [1.0, 0.0]
            }));
        std::fs::write(&p, v.to_string()).expect("write");
    });
    let e = load_err(&dir);
    assert_eq!(e.code(), ErrorCode::ModelError);
    assert!(e.message().contains("minmax range"), "{}", e.message());
}
