//! Conformance with the independent reference (spec/reference in ../shared).
//!
//! Every fixture listed in `EXPECTED.md` must give its outcome: the error code, or features
//! within the spec's tolerance (1e-3 absolute or 1e-2 relative per value), with face boxes
//! compared first since box rounding is the usual cause of larger gaps. The worst deviation
//! per clip is printed (`cargo test -- --nocapture`).
//!
//! The shared folder is found at `../shared` beside the repository, or at `TABR_SHARED`;
//! its absence fails the test (it is the test's input).
//! More reference sets (real clips outside ../shared, laid out the same way: `EXPECTED.md`
//! naming media paths relative to a media root, and the JSON files beside it) are checked
//! too when `TABR_EXTRA_REFERENCE=expected_md_dir:media_root[,...]` names them.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tabr_core::flow::FlowMethod;
use tabr_core::{feature_names, CancelFlag, Extractor};

mod common;

const ABS_TOL: f64 = 1e-3;
const REL_TOL: f64 = 1e-2;

enum Outcome {
    Error(String),
    Features(PathBuf),
}

fn parse_expected(md: &Path) -> Vec<(String, Outcome)> {
    let text = std::fs::read_to_string(md).expect("EXPECTED.md");
    let dir = md.parent().expect("parent");
    text.lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            if cells.len() < 4 || !cells[1].contains('/') {
                return None;
            }
            let outcome = if let Some(code) = cells[2].strip_prefix("error ") {
                Outcome::Error(code.trim().to_string())
            } else {
                let rel = cells[2].strip_prefix("features:")?.trim();
                let file = Path::new(rel).file_name()?;
                Outcome::Features(dir.join(file))
            };
            Some((cells[1].to_string(), outcome))
        })
        .collect()
}

/// Checks one reference set; returns the failures as lines.
fn check_set(expected_md: &Path, media_root: &Path, flow: FlowMethod) -> (usize, Vec<String>) {
    let extractor = Extractor::new().expect("extractor").with_flow_method(flow);
    println!("flow: {}", flow.name());
    let names = feature_names();
    let mut failures = Vec::new();
    let cases = parse_expected(expected_md);
    assert!(
        !cases.is_empty(),
        "no cases parsed from {}",
        expected_md.display()
    );
    for (media, outcome) in &cases {
        let got = extractor.extract_path(&media_root.join(media), &CancelFlag::new());
        match (outcome, got) {
            (Outcome::Error(code), Err(e)) if e.code().as_str() == code => {
                println!("ok    {media}: {code}");
            }
            (Outcome::Error(code), Err(e)) => failures.push(format!(
                "[{}] {media}: want {code}, got {}",
                flow.name(),
                e.code()
            )),
            (Outcome::Error(code), Ok(_)) => {
                failures.push(format!("{media}: want {code}, got features"))
            }
            (Outcome::Features(_), Err(e)) => {
                failures.push(format!("{media}: want features, got {e}"))
            }
            (Outcome::Features(json), Ok(f)) => {
                let r: Value =
                    serde_json::from_str(&std::fs::read_to_string(json).expect("reference json"))
                        .expect("reference json parses");
                let ref_names: Vec<&str> = r["names"]
                    .as_array()
                    .expect("names")
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                assert_eq!(ref_names, names, "feature names differ from the reference");
                if let Some(boxes) = r["meta"]["boxes"].as_array() {
                    let want: Vec<Vec<i64>> = boxes
                        .iter()
                        .map(|b| {
                            b.as_array()
                                .expect("box")
                                .iter()
                                .filter_map(Value::as_i64)
                                .collect()
                        })
                        .collect();
                    let got: Vec<Vec<i64>> = f
                        .meta
                        .boxes
                        .iter()
                        .map(|b| {
                            vec![
                                b.frame as i64,
                                b.face.x.into(),
                                b.face.y.into(),
                                b.face.side.into(),
                            ]
                        })
                        .collect();
                    if want != got {
                        failures.push(format!("{media}: boxes {got:?}, reference {want:?}"));
                        continue;
                    }
                }
                let mut worst = (0.0f64, "", 0.0f64, 0.0f64);
                let mut bad = Vec::new();
                for ((name, &v), rv) in names
                    .iter()
                    .zip(&f.values)
                    .zip(r["features"].as_array().expect("features"))
                {
                    let rv = rv.as_f64().expect("number");
                    let d = (f64::from(v) - rv).abs();
                    if d > worst.0 {
                        worst = (d, name, f64::from(v), rv);
                    }
                    if d > ABS_TOL && d > REL_TOL * rv.abs() {
                        bad.push(format!("{name}: {v} vs {rv}"));
                    }
                }
                println!(
                    "{}  {media}: worst |Δ| {:.2e} at {} ({:.6} vs {:.6}), {} pairs",
                    if bad.is_empty() { "ok  " } else { "FAIL" },
                    worst.0,
                    worst.1,
                    worst.2,
                    worst.3,
                    f.meta.pairs
                );
                if !bad.is_empty() {
                    failures.push(format!(
                        "{media}: {} values out of tolerance: {}",
                        bad.len(),
                        bad.join("; ")
                    ));
                }
            }
        }
    }
    (cases.len(), failures)
}

#[test]
fn shared_fixtures_match_the_reference() {
    let shared = common::shared_root();
    // Both flows: ours (the default) and OpenCV's (the reference implementation).
    for flow in [FlowMethod::Rust, FlowMethod::OpenCv] {
        let (n, failures) = check_set(
            &shared.join("spec/reference/EXPECTED.md"),
            &shared.join("fixtures"),
            flow,
        );
        assert!(
            failures.is_empty(),
            "flow {}: {} of {n} fixtures differ:\n{}",
            flow.name(),
            failures.len(),
            failures.join("\n")
        );
    }
}

#[test]
fn extra_reference_sets_match() {
    let Ok(sets) = std::env::var("TABR_EXTRA_REFERENCE") else {
        eprintln!("no TABR_EXTRA_REFERENCE given: only the shared fixtures are checked");
        return;
    };
    for set in sets.split(',').filter(|s| !s.is_empty()) {
        let (md_dir, root) = set
            .split_once(':')
            .expect("TABR_EXTRA_REFERENCE entries are dir:media_root");
        let (n, failures) = check_set(
            &Path::new(md_dir).join("EXPECTED.md"),
            Path::new(root),
            FlowMethod::default(),
        );
        assert!(
            failures.is_empty(),
            "{set}: {} of {n} differ:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}
