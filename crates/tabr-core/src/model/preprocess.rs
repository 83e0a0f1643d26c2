//! `preprocess.json` (format `tabr-preprocess/1`): scikit-learn's imputer and scalers in Rust.
//!
//! The same maths as scikit-learn, in f64: `SimpleImputer` (NaN → the fitted statistic),
//! `StandardScaler`, `MinMaxScaler` (with `clip`), and `QuantileTransformer` with normal output,
//! including its two-sided interpolation (repeated quantiles), the 1e-7 bounds rule and the
//! clipping of the normal quantile function. The exporter writes the file from fitted objects
//! (`scripts/tabr/preprocess.py`); `golden.json` checks both sides agree.

use std::cmp::Ordering;

use serde::Deserialize;

use crate::error::{Error, ErrorCode, Result};

const FORMAT: &str = "tabr-preprocess/1";
/// scikit-learn's `BOUNDS_THRESHOLD` of `QuantileTransformer`.
const BOUNDS_THRESHOLD: f64 = 1e-7;

/// One fitted step.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Step {
    /// Missing values (NaN) become the per-feature statistic.
    Imputer {
        /// mean, median, most_frequent or constant (informational: statistics are fitted).
        strategy: String,
        /// Per-feature replacement values.
        statistics: Vec<f64>,
    },
    /// `(x − mean) / scale`.
    Standard {
        /// Per-feature means.
        mean: Vec<f64>,
        /// Per-feature scales (zeros already replaced by 1, as scikit-learn does).
        scale: Vec<f64>,
    },
    /// `x · scale + min`, clipped to `range` when `clip`.
    Minmax {
        /// Per-feature scales.
        scale: Vec<f64>,
        /// Per-feature offsets.
        min: Vec<f64>,
        /// Clip to the feature range.
        #[serde(default)]
        clip: bool,
        /// The feature range.
        range: [f64; 2],
    },
    /// `QuantileTransformer(output_distribution="normal")`.
    QuantileNormal {
        /// The uniform references (`references_`).
        references: Vec<f64>,
        /// Per-feature quantiles (`quantiles_[:, j]`).
        quantiles: Vec<Vec<f64>>,
    },
}

#[derive(Debug, Deserialize)]
struct File {
    format: String,
    n_features: usize,
    steps: Vec<Step>,
}

/// A validated preprocessing pipeline.
#[derive(Debug, Clone)]
pub struct Preprocess {
    steps: Vec<Step>,
    n_features: usize,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::new(
        ErrorCode::ModelError,
        format!("preprocess.json: {}", msg.into()),
    )
}

impl Preprocess {
    /// Parses and validates `preprocess.json` text for `n_features` inputs.
    pub fn from_json(text: &str, n_features: usize) -> Result<Preprocess> {
        let f: File = serde_json::from_str(text).map_err(|e| bad(format!("not valid ({e})")))?;
        if f.format != FORMAT {
            return Err(bad(format!(
                "unknown format {:?} (this build reads {FORMAT})",
                f.format
            )));
        }
        if f.n_features != n_features {
            return Err(bad(format!(
                "{} features, the model has {n_features}",
                f.n_features
            )));
        }
        let finite = |name: &str, v: &[f64]| -> Result<()> {
            if v.len() != n_features {
                return Err(bad(format!(
                    "{name} has {} values, expected {n_features}",
                    v.len()
                )));
            }
            if v.iter().any(|x| !x.is_finite()) {
                return Err(bad(format!("{name} has non-finite values")));
            }
            Ok(())
        };
        for s in &f.steps {
            match s {
                Step::Imputer { statistics, .. } => finite("imputer statistics", statistics)?,
                Step::Standard { mean, scale } => {
                    finite("standard mean", mean)?;
                    finite("standard scale", scale)?;
                }
                Step::Minmax {
                    scale, min, range, ..
                } => {
                    finite("minmax scale", scale)?;
                    finite("minmax min", min)?;
                    // `clamp` needs an ordered, finite range (a reversed one panics).
                    if !(range[0].is_finite() && range[1].is_finite() && range[0] <= range[1]) {
                        return Err(bad("minmax range must be two finite values, low first"));
                    }
                }
                Step::QuantileNormal {
                    references,
                    quantiles,
                } => {
                    if references.len() < 2 || references.windows(2).any(|w| w[0] > w[1]) {
                        return Err(bad("quantile references must be sorted, at least 2"));
                    }
                    if quantiles.len() != n_features {
                        return Err(bad(format!(
                            "quantiles for {} features, expected {n_features}",
                            quantiles.len()
                        )));
                    }
                    for q in quantiles {
                        if q.len() != references.len()
                            || q.windows(2).any(|w| {
                                !matches!(
                                    w[0].partial_cmp(&w[1]),
                                    Some(Ordering::Less | Ordering::Equal)
                                )
                            })
                        {
                            return Err(bad(
                                "each feature's quantiles must be sorted and match the references",
                            ));
                        }
                    }
                }
            }
        }
        Ok(Preprocess {
            steps: f.steps,
            n_features,
        })
    }

    /// Applies every step to one row (NaN = missing) and returns the model input.
    pub fn apply(&self, row: &[f64]) -> Vec<f64> {
        debug_assert_eq!(row.len(), self.n_features);
        let mut x = row.to_vec();
        for s in &self.steps {
            match s {
                Step::Imputer { statistics, .. } => {
                    for (v, s) in x.iter_mut().zip(statistics) {
                        if v.is_nan() {
                            *v = *s;
                        }
                    }
                }
                Step::Standard { mean, scale } => {
                    for ((v, m), s) in x.iter_mut().zip(mean).zip(scale) {
                        *v = (*v - m) / s;
                    }
                }
                Step::Minmax {
                    scale,
                    min,
                    clip,
                    range,
                } => {
                    for ((v, s), m) in x.iter_mut().zip(scale).zip(min) {
                        *v = *v * s + m;
                        if *clip {
                            *v = v.clamp(range[0], range[1]);
                        }
                    }
                }
                Step::QuantileNormal {
                    references,
                    quantiles,
                } => {
                    for (v, q) in x.iter_mut().zip(quantiles) {
                        *v = quantile_normal(*v, q, references);
                    }
                }
            }
        }
        x
    }
}

/// numpy's `interp(x, xp, fp)` for non-decreasing `xp` (its `arr_interp`: the rightmost `j`
/// with `xp[j] <= x`, an exact hit returns `fp[j]`).
fn interp(x: f64, xp: &[f64], fp: &[f64]) -> f64 {
    interp_at(x, xp.len(), |i| xp[i], |i| fp[i])
}

/// [`interp`] over `n` points given by accessors, so a reversed, negated view needs no copy.
fn interp_at(x: f64, n: usize, xp: impl Fn(usize) -> f64, fp: impl Fn(usize) -> f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x < xp(0) {
        return fp(0);
    }
    if x >= xp(n - 1) {
        return fp(n - 1);
    }
    // Rightmost j with xp(j) <= x (xp(0) <= x < xp(n - 1) here).
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if xp(mid) <= x {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    let j = lo - 1;
    if xp(j) == x {
        return fp(j);
    }
    let slope = (fp(j + 1) - fp(j)) / (xp(j + 1) - xp(j));
    slope * (x - xp(j)) + fp(j)
}

/// scikit-learn's clipping range of the normal output: ppf(1e-7 − ε), ppf(1 − (1e-7 − ε)).
fn normal_clip() -> (f64, f64) {
    static CLIP: std::sync::LazyLock<(f64, f64)> = std::sync::LazyLock::new(|| {
        let eps = f64::EPSILON; // np.spacing(1)
        (
            norm_ppf(BOUNDS_THRESHOLD - eps),
            norm_ppf(1.0 - (BOUNDS_THRESHOLD - eps)),
        )
    });
    *CLIP
}

/// One value through scikit-learn's `QuantileTransformer._transform_col` (normal output).
fn quantile_normal(x: f64, quantiles: &[f64], references: &[f64]) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    let n = quantiles.len();
    let (lo_x, hi_x) = (quantiles[0], quantiles[n - 1]);
    let mut u = if x - BOUNDS_THRESHOLD < lo_x {
        0.0
    } else if x + BOUNDS_THRESHOLD > hi_x {
        1.0
    } else {
        // np.interp(-x, -quantiles[::-1], -references[::-1]), read in place.
        let back = interp_at(-x, n, |i| -quantiles[n - 1 - i], |i| -references[n - 1 - i]);
        0.5 * (interp(x, quantiles, references) - back)
    };
    u = u.clamp(0.0, 1.0);
    let (clip_min, clip_max) = normal_clip();
    norm_ppf(u).clamp(clip_min, clip_max)
}

/// The standard normal quantile function: Acklam's approximation refined by one Halley step
/// on `erfc`, accurate to about 1e-15. `ppf(0) = −∞`, `ppf(1) = +∞`.
pub fn norm_ppf(p: f64) -> f64 {
    if p.is_nan() || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    // Acklam's published coefficients, kept digit for digit.
    #[allow(clippy::excessive_precision)]
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383577518672690e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    #[allow(clippy::excessive_precision)]
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    #[allow(clippy::excessive_precision)]
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    #[allow(clippy::excessive_precision)]
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let plow = 0.02425;
    let x = if p < plow {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - plow {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    // Halley refinement: e = Φ(x) − p with Φ(x) = erfc(−x/√2)/2.
    let e = 0.5 * libm::erfc(-x / std::f64::consts::SQRT_2) - p;
    let u = e * (2.0 * std::f64::consts::PI).sqrt() * (x * x / 2.0).exp();
    x - u / (1.0 + x * u / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppf_matches_scipy() {
        // scipy.stats.norm.ppf (= Python statistics.NormalDist().inv_cdf) values
        for (p, want) in [
            (0.5, 0.0),
            (0.975, 1.959963984540054),
            (0.01, -2.3263478740408408),
            (1e-7, -5.199337582192817),
            (0.3, -0.5244005127080407),
        ] {
            assert!((norm_ppf(p) - want).abs() < 1e-12, "{p}: {}", norm_ppf(p));
        }
    }

    #[test]
    fn interp_matches_numpy() {
        let xp = [0.0, 1.0, 2.0];
        let fp = [0.0, 10.0, 40.0];
        assert_eq!(interp(-1.0, &xp, &fp), 0.0);
        assert_eq!(interp(0.5, &xp, &fp), 5.0);
        assert_eq!(interp(1.5, &xp, &fp), 25.0);
        assert_eq!(interp(3.0, &xp, &fp), 40.0);
        assert_eq!(interp(1.0, &xp, &fp), 10.0);
    }

    #[test]
    fn reversed_view_equals_the_copied_arrays() {
        // Repeated quantiles are why scikit-learn interpolates both ways.
        let q = [0.0, 1.0, 1.0, 1.0, 2.5, 4.0, 4.0];
        let r = [0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0];
        let nq: Vec<f64> = q.iter().rev().map(|v| -v).collect();
        let nr: Vec<f64> = r.iter().rev().map(|v| -v).collect();
        let n = q.len();
        for k in -20..=60 {
            let x = f64::from(k) * 0.1;
            let copied = interp(-x, &nq, &nr);
            let view = interp_at(-x, n, |i| -q[n - 1 - i], |i| -r[n - 1 - i]);
            assert_eq!(copied.to_bits(), view.to_bits(), "x = {x}");
        }
    }

    #[test]
    fn steps_apply_in_order() {
        let json = r#"{"format":"tabr-preprocess/1","n_features":2,"steps":[
            {"type":"imputer","strategy":"mean","statistics":[1.0,2.0]},
            {"type":"standard","mean":[1.0,0.0],"scale":[2.0,4.0]},
            {"type":"minmax","scale":[1.0,1.0],"min":[0.0,0.0],"clip":true,"range":[-1.0,1.0]}]}"#;
        let p = Preprocess::from_json(json, 2).expect("valid");
        assert_eq!(p.apply(&[f64::NAN, 8.0]), vec![0.0, 1.0]);
        assert_eq!(p.apply(&[-3.0, f64::NAN]), vec![-1.0, 0.5]);
        assert!(Preprocess::from_json(json, 3).is_err());
        assert!(Preprocess::from_json(&json.replace("tabr-preprocess/1", "x/9"), 2).is_err());
    }

    #[test]
    fn quantile_bounds_and_clipping() {
        let refs = [0.0, 0.5, 1.0];
        let q = [0.0, 1.0, 2.0];
        assert_eq!(quantile_normal(1.0, &q, &refs), 0.0);
        let lo = quantile_normal(-5.0, &q, &refs);
        let hi = quantile_normal(9.0, &q, &refs);
        assert!(
            (lo + 5.199337582192817).abs() < 1e-9 && (hi - 5.199337582192817).abs() < 1e-9,
            "{lo} {hi}"
        );
    }
}
