//! `tabr-features` as a user runs it: the binary on a clip the project draws itself.

use std::process::Command;

use tabr_core::synth::{write_clip, ClipSpec};

fn features() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tabr-features"))
}

#[test]
fn series_adds_each_clips_per_pair_channels_to_jsonl_and_is_refused_with_csv() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clip = dir.path().join("face.mkv");
    write_clip(&clip, &ClipSpec::default()).expect("clip");
    let out = features()
        .args(["--format", "jsonl", "--series"])
        .arg(&clip)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let mut lines = text.lines();
    let header: serde_json::Value =
        serde_json::from_str(lines.next().expect("header")).expect("json");
    assert_eq!(header["names"].as_array().expect("names").len(), 90);
    let row: serde_json::Value = serde_json::from_str(lines.next().expect("row")).expect("json");
    let series = &row["series"];
    let channels = series["channels"].as_array().expect("channels");
    assert_eq!(channels.len(), 18);
    assert_eq!(channels[14], "mouth.abs");
    let (t, values) = (
        series["t_s"].as_array().expect("t_s"),
        series["values"].as_array().expect("values"),
    );
    assert_eq!(t.len(), 89, "90 frames, face from the first: 89 pairs");
    assert_eq!(values.len(), 89);
    assert!(values
        .iter()
        .all(|v| v.as_array().map(Vec::len) == Some(18)));
    assert!(lines.next().is_none(), "one object per clip");

    let csv = features()
        .arg("--series")
        .arg(&clip)
        .output()
        .expect("runs");
    assert_eq!(csv.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&csv.stderr).contains("--series needs --format jsonl"));
}

/// Every table names the spec of its features: JSONL in its header, CSV on every row (a
/// `spec` column after `file`), so a model is never trained on one spec and served with another.
#[test]
fn every_table_names_its_spec() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clip = dir.path().join("face.mkv");
    write_clip(&clip, &ClipSpec::default()).expect("clip");
    let csv = features().arg(&clip).output().expect("runs");
    assert!(
        csv.status.success(),
        "{}",
        String::from_utf8_lossy(&csv.stderr)
    );
    let text = String::from_utf8(csv.stdout).expect("utf-8");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    assert_eq!(&header[..3], ["file", "spec", "error"]);
    assert_eq!(header.len(), 3 + 90);
    let row: Vec<&str> = lines.next().expect("row").split(',').collect();
    assert_eq!((row[1], row[2]), ("poc-abs/1", ""), "{row:?}");
    assert_eq!(row.len(), header.len());
    // A clip that fails keeps the spec too.
    let bad = dir.path().join("bad.mp4");
    std::fs::write(&bad, b"not a video").expect("write");
    let out = features().arg(&bad).output().expect("runs");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let row: Vec<&str> = text.lines().nth(1).expect("row").split(',').collect();
    assert_eq!((row[1], row[2]), ("poc-abs/1", "invalid_video"));
    assert_eq!(row.len(), 3 + 90);

    let jsonl = features()
        .args(["--format", "jsonl"])
        .arg(&clip)
        .output()
        .expect("runs");
    let header: serde_json::Value = serde_json::from_str(
        String::from_utf8(jsonl.stdout)
            .expect("utf-8")
            .lines()
            .next()
            .expect("header"),
    )
    .expect("json");
    assert_eq!(
        (header["spec"].as_str(), header["version"].as_u64()),
        (Some("poc-abs"), Some(1))
    );
}

/// `--describe` prints every spec as the core defines it, and the error codes.
#[test]
fn describe_prints_every_spec_and_the_error_codes() {
    let out = features().arg("--describe").output().expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let specs = d["specs"].as_array().expect("specs");
    let ids: Vec<&str> = specs.iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(ids, tabr_core::FEATURE_SPECS);
    for s in specs {
        assert_eq!(
            s["names"].as_array().map(Vec::len),
            s["n_features"].as_u64().map(|n| n as usize)
        );
        assert_eq!(s["regions"].as_array().map(Vec::len), Some(8));
    }
    assert_eq!(specs[1]["face_method"], "landmark-aligned");
    assert_eq!(specs[1]["needs"][0], "onnxruntime");
    let codes = d["error_codes"].as_array().expect("codes");
    assert!(codes.iter().any(|c| c == "video_too_large"));
}

/// The test-only spec (v2's face method with grown regions, registered only in the core's
/// spec table) flows through the CLI like the real ones, and only when `TABR_TEST_SPECS=1`.
#[test]
fn a_spec_registered_in_the_core_alone_is_served_by_the_cli() {
    let d18 = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/faces/face_lp_d18_man_neutral_480_liveportrait.mp4");
    assert!(
        d18.is_file(),
        "{} is missing: the shared fixtures are this test's input",
        d18.display()
    );
    let run = |spec: &str, test_specs: bool| {
        let mut c = features();
        if test_specs {
            c.env("TABR_TEST_SPECS", "1");
        } else {
            c.env_remove("TABR_TEST_SPECS");
        }
        c.args(["--format", "jsonl", "--spec", spec])
            .arg(&d18)
            .output()
            .expect("runs")
    };
    let values = |out: &std::process::Output| -> Vec<f64> {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let row: serde_json::Value =
            serde_json::from_str(text.lines().nth(1).expect("row")).expect("json");
        row["values"]
            .as_array()
            .expect("values")
            .iter()
            .filter_map(serde_json::Value::as_f64)
            .collect()
    };
    let v2 = values(&run("poc-abs/2", true));
    let out = run("poc-abs/99", true);
    let header: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .expect("header"),
    )
    .expect("json");
    assert_eq!(header["version"], 99);
    let v99 = values(&out);
    assert_eq!(v99.len(), v2.len());
    assert_ne!(v99, v2, "other regions, other numbers");
    let described = features()
        .env("TABR_TEST_SPECS", "1")
        .arg("--describe")
        .output()
        .expect("runs");
    let d: serde_json::Value = serde_json::from_slice(&described.stdout).expect("json");
    assert_eq!(d["specs"][2]["id"], "poc-abs/99");
    // Hidden otherwise.
    let hidden = run("poc-abs/99", false);
    assert_eq!(hidden.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&hidden.stderr).contains("unknown feature spec"));
}

/// `tabr-predict` on the demo model: one JSON line per clip with the prediction, the
/// evidence and the recording's quality; a clip that fails gets its code, and exit status 1.
#[test]
fn predict_prints_prediction_evidence_and_quality_per_clip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clip = dir.path().join("face.mkv");
    write_clip(&clip, &ClipSpec::default()).expect("clip");
    let junk = dir.path().join("junk.mp4");
    std::fs::write(&junk, b"not a video").expect("write");
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/tabr-demo");
    let out = Command::new(env!("CARGO_BIN_EXE_tabr-predict"))
        .arg("--model")
        .arg(&model)
        .arg(&clip)
        .arg(&junk)
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines.len(), 2);
    let ok = &lines[0];
    assert!(ok["prediction"]["label"].is_string(), "{ok}");
    assert_eq!(
        ok["evidence"]["neighbours"]
            .as_array()
            .expect("neighbours")
            .len(),
        5
    );
    assert!(ok["evidence"]["novelty"].is_number());
    assert!(ok["quality"]["warnings"].is_array());
    assert_eq!(lines[1]["error"]["code"], "invalid_video");
}
