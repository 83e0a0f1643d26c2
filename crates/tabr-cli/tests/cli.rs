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
