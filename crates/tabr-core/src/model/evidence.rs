//! What a prediction drew on, read from the model itself (issue "Every answer says how far to
//! trust it"). TabR predicts by retrieving its nearest training rows (the candidates baked
//! into `model.onnx`) and mixing their labels by a softmax over distances; the exporter makes
//! the graph output, per row, the `k` nearest of them with their squared distances, weights
//! and labels. These are the tensors the prediction was computed from, not a second search.
//!
//! `candidates.json` names each candidate (an id the exporter chose, e.g. its clip's file
//! name, and its label) and holds, sorted, each training row's squared distance to its
//! nearest *other* candidate in the model's input space (the features after the model's own
//! preprocessing). A new row's **novelty** is where its own nearest input-space distance
//! (another graph output) falls in that distribution: the fraction of training rows that are
//! closer to their nearest neighbour than this row is to its nearest. A row like the training
//! data lands anywhere in 0–1 (about uniformly); 0.99 says it is farther from the training
//! set than 99 % of the training rows are from each other. It says "unlike what this model
//! has seen", not "wrong".
//!
//! Why input space and not the retrieval's key space: TabR layer-normalises before its keys,
//! so an input far outside the training data still lands among the training keys. Measured on
//! `tabr-demo` (synthetic drawings): three real faces sat at the 45th–83rd percentile of the
//! key-space distances, and at the 100th of the input-space ones.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorCode, Result};

/// A training row a prediction drew on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Neighbour {
    /// The candidate's id (from the exporter's `--candidate-ids`, else `row N`).
    pub id: String,
    /// Its label (classifiers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Its target value (regression).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Its weight in the prediction (the retrieval softmax over the model's context).
    pub weight: f64,
    /// Squared L2 distance in the model's key space.
    pub distance: f64,
}

/// The evidence of one prediction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    /// The nearest candidates, nearest first.
    pub neighbours: Vec<Neighbour>,
    /// The fraction of training rows nearer to their own nearest neighbour than this row is
    /// to its nearest (0–1; see the module's text).
    pub novelty: f64,
}

#[derive(Deserialize)]
struct CandidatesFile {
    ids: Vec<String>,
    nearest_distance: Vec<f64>,
}

/// `candidates.json`, validated.
#[derive(Debug)]
pub struct Candidates {
    ids: Vec<String>,
    /// Ascending.
    nearest: Vec<f64>,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::new(ErrorCode::ModelError, msg.into())
}

/// Most candidates a model directory may name (its file is read whole).
const MAX_CANDIDATES: usize = 1 << 20;

impl Candidates {
    /// Reads `candidates.json`.
    pub fn load(path: &Path) -> Result<Candidates> {
        let len = std::fs::metadata(path)
            .map_err(|_| bad("candidates.json cannot be read"))?
            .len();
        if len > 256 << 20 {
            return Err(bad("candidates.json is larger than 256 MB"));
        }
        let text =
            std::fs::read_to_string(path).map_err(|_| bad("candidates.json cannot be read"))?;
        let f: CandidatesFile =
            serde_json::from_str(&text).map_err(|e| bad(format!("candidates.json: {e}")))?;
        let n = f.ids.len();
        if n == 0 || n > MAX_CANDIDATES || f.nearest_distance.len() != n {
            return Err(bad(
                "candidates.json needs one id and one nearest distance per candidate",
            ));
        }
        let mut nearest = f.nearest_distance;
        if nearest.iter().any(|d| !d.is_finite() || *d < 0.0) {
            return Err(bad(
                "candidates.json: a nearest distance is negative or not finite",
            ));
        }
        nearest.sort_by(f64::total_cmp);
        Ok(Candidates {
            ids: f.ids,
            nearest,
        })
    }

    /// The id of candidate `i`.
    pub fn id(&self, i: usize) -> Option<&str> {
        self.ids.get(i).map(String::as_str)
    }

    /// The median of the training rows' nearest distances (at least 1): the scale on which a
    /// nearest distance is compared (a row equal to a candidate is 0 only up to float32
    /// rounding of its norm).
    pub fn scale(&self) -> f64 {
        self.nearest[self.nearest.len() / 2].max(1.0)
    }

    /// The novelty of a row whose nearest candidate is `d` away (squared).
    pub fn novelty(&self, d: f64) -> f64 {
        let below = self.nearest.partition_point(|&x| x < d);
        below as f64 / self.nearest.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn novelty_is_the_share_of_training_rows_nearer_to_their_neighbour() {
        let c = Candidates {
            ids: (0..4).map(|i| format!("row {i}")).collect(),
            nearest: vec![1.0, 2.0, 3.0, 4.0],
        };
        assert_eq!(c.novelty(0.0), 0.0);
        assert_eq!(c.novelty(1.0), 0.0);
        assert_eq!(c.novelty(2.5), 0.5);
        assert_eq!(c.novelty(9.0), 1.0);
    }

    #[test]
    fn a_malformed_file_is_a_model_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("candidates.json");
        for text in [
            "{}",
            r#"{"ids": ["a"], "nearest_distance": []}"#,
            r#"{"ids": ["a"], "nearest_distance": [-1]}"#,
            r#"{"ids": [], "nearest_distance": []}"#,
        ] {
            std::fs::write(&p, text).expect("write");
            let e = Candidates::load(&p).expect_err(text);
            assert_eq!(e.code(), ErrorCode::ModelError, "{text}");
        }
    }
}
