//! How good the recording was, measured on the way (issue "Every answer says how far to trust
//! it"): the extractor already has every detection try's face geometry and cuts the face's
//! crop of every frame, so these cost a mean and a Laplacian of one small crop per try.
//!
//! - `face_px`: the face box's side, median over the tries that found a face (v1 the Haar
//!   box, v2 the box around the aligned crop).
//! - `face_rate`: the share of tries that found a face.
//! - `brightness`: the crops' mean gray level (0–255), `sharpness`: the mean ratio of the
//!   variance of their Laplacian to their own variance, on the canonical crop: neither the
//!   face's size in pixels nor the light's level changes it, only how much of the face's
//!   contrast is fine detail (a dark but sharp face is dark, not blurred).
//! - v2 only (its face method reads them off FaceMesh): the head's yaw, pitch and roll range
//!   over the tries, and FaceMesh's face flag (as a probability, median over the tries).
//!
//! Each measure past its threshold is a warning with a stable code and a sentence. The
//! thresholds are defaults a model's manifest may change (`quality.thresholds`), and a
//! manifest may refuse chosen warnings (`quality.refuse`: 422 `poor_recording`), so a quiz can
//! ask the person to record again. Nothing here changes the features.

use opencv::core::{self, Mat, MatTraitConst};
use opencv::imgproc;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::face::method::Geometry;

/// Where the warnings start. Defaults measured on the shared fixtures and on their darkened,
/// shrunk, blurred and turned versions (`tests/quality.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct QualityThresholds {
    /// `face_small` below this median face side, pixels.
    pub face_small_px: f64,
    /// `too_dark` below this mean gray level of the face (0–255).
    pub too_dark: f64,
    /// `blurred` below this sharpness (the Laplacian's variance over the crop's).
    pub blurred: f64,
    /// `head_turned` when the head's largest angle (|yaw|, |pitch| or |roll|) passes this on
    /// the median try, degrees (v2).
    pub head_turned_deg: f64,
    /// `face_lost_often` below this share of tries with a face.
    pub face_lost_rate: f64,
}

impl Default for QualityThresholds {
    fn default() -> Self {
        Self {
            face_small_px: 80.0,
            too_dark: 40.0,
            blurred: 0.04,
            head_turned_deg: 30.0,
            face_lost_rate: 0.8,
        }
    }
}

impl QualityThresholds {
    /// Refuses thresholds that are not finite or not positive.
    pub fn validate(&self) -> Result<()> {
        let all = [
            self.face_small_px,
            self.too_dark,
            self.blurred,
            self.head_turned_deg,
            self.face_lost_rate,
        ];
        if all.iter().any(|v| !v.is_finite() || *v < 0.0) || self.face_lost_rate > 1.0 {
            return Err(Error::new(
                crate::ErrorCode::ModelError,
                "quality.thresholds must be finite, not negative, face_lost_rate at most 1",
            ));
        }
        Ok(())
    }
}

/// A warning's stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum QualityCode {
    /// The face is small in the frame.
    FaceSmall,
    /// The face is dark.
    TooDark,
    /// The face is blurred.
    Blurred,
    /// The head is turned away (v2).
    HeadTurned,
    /// The face was lost on many tries.
    FaceLostOften,
}

impl QualityCode {
    /// Every code.
    pub const ALL: [QualityCode; 5] = [
        QualityCode::FaceSmall,
        QualityCode::TooDark,
        QualityCode::Blurred,
        QualityCode::HeadTurned,
        QualityCode::FaceLostOften,
    ];

    /// The stable string form, e.g. `"too_dark"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            QualityCode::FaceSmall => "face_small",
            QualityCode::TooDark => "too_dark",
            QualityCode::Blurred => "blurred",
            QualityCode::HeadTurned => "head_turned",
            QualityCode::FaceLostOften => "face_lost_often",
        }
    }
}

/// One warning: its code and a sentence for a person.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct QualityWarning {
    /// The stable code.
    pub code: QualityCode,
    /// What to do about it, in a sentence.
    pub message: String,
}

/// A range over the tries, `[min, max]`.
pub type Range = [f64; 2];

/// How good the recording was (see the module's text). Measures without a try that found a
/// face are 0.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Quality {
    /// The face box's side, median over the tries with a face, pixels.
    pub face_px: f64,
    /// The share of tries that found a face.
    pub face_rate: f64,
    /// The face crops' mean gray level, 0–255.
    pub brightness: f64,
    /// The face crops' Laplacian variance over their own variance, mean over the tries
    /// (higher is sharper; light level and face size do not change it).
    pub sharpness: f64,
    /// v2: the head's left–right turn over the tries, degrees.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub yaw_deg: Option<Range>,
    /// v2: the head's up–down nod over the tries, degrees.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pitch_deg: Option<Range>,
    /// v2: the head's tilt in the image over the tries, degrees.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roll_deg: Option<Range>,
    /// v2: FaceMesh's face flag as a probability, median over the tries with a face.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub face_flag: Option<f64>,
    /// The measures past their thresholds.
    pub warnings: Vec<QualityWarning>,
}

/// What the tries have shown so far.
#[derive(Debug, Default)]
pub(crate) struct QualityAcc {
    sides: Vec<f64>,
    brightness: Vec<f64>,
    sharpness: Vec<f64>,
    yaw: Vec<f64>,
    pitch: Vec<f64>,
    roll: Vec<f64>,
    /// Per try, the largest of |yaw|, |pitch|, |roll|.
    turn: Vec<f64>,
    flags: Vec<f64>,
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn range(v: &[f64]) -> Option<Range> {
    (!v.is_empty()).then(|| {
        v.iter()
            .fold([f64::INFINITY, f64::NEG_INFINITY], |[a, b], &x| {
                [a.min(x), b.max(x)]
            })
    })
}

/// A face crop's brightness (mean gray level, 0–255) and sharpness (its Laplacian's variance
/// over its own): what every try adds to the quality measures.
pub fn measure_crop(crop: &Mat) -> Result<(f64, f64)> {
    let measured = || -> opencv::Result<(f64, f64)> {
        let mut f = Mat::default();
        crop.convert_to(&mut f, core::CV_32F, 1.0, 0.0)?;
        let mut lap = Mat::default();
        imgproc::laplacian(
            &f,
            &mut lap,
            core::CV_32F,
            1,
            1.0,
            0.0,
            core::BORDER_REPLICATE,
        )?;
        let (mut m, mut sd) = (Mat::default(), Mat::default());
        core::mean_std_dev(&lap, &mut m, &mut sd, &core::no_array())?;
        let lap_sd = *sd.at::<f64>(0)?;
        core::mean_std_dev(&f, &mut m, &mut sd, &core::no_array())?;
        let crop_sd = *sd.at::<f64>(0)?;
        let ratio = if crop_sd > 0.0 {
            (lap_sd / crop_sd).powi(2)
        } else {
            0.0
        };
        Ok((*m.at::<f64>(0)?, ratio))
    };
    measured().map_err(|_| Error::internal("measuring the face crop failed"))
}

impl QualityAcc {
    /// A try that found the face at `g`.
    pub(super) fn hit(&mut self, g: &Geometry) {
        self.sides.push(f64::from(g.bounding_box().side));
        if let Geometry::Aligned { pose, flag, .. } = g {
            self.yaw.push(pose.yaw);
            self.pitch.push(pose.pitch);
            self.roll.push(pose.roll);
            self.turn
                .push(pose.yaw.abs().max(pose.pitch.abs()).max(pose.roll.abs()));
            self.flags.push(1.0 / (1.0 + (-flag).exp()));
        }
    }

    /// The face crop of a try's frame (8-bit or float gray, 0–255).
    pub(super) fn crop(&mut self, crop: &Mat) -> Result<()> {
        let (brightness, sharpness) = measure_crop(crop)?;
        self.brightness.push(brightness);
        self.sharpness.push(sharpness);
        Ok(())
    }

    /// The measures and their warnings (`face_rate`: the tries' share with a face).
    pub(crate) fn finish(mut self, face_rate: f64, t: &QualityThresholds) -> Quality {
        let face_px = median(&mut self.sides);
        let brightness = mean(&self.brightness);
        let sharpness = mean(&self.sharpness);
        let (yaw, pitch) = (range(&self.yaw), range(&self.pitch));
        let turned = median(&mut self.turn);
        let mut warnings = Vec::new();
        let mut warn = |on: bool, code, message: String| {
            if on {
                warnings.push(QualityWarning { code, message });
            }
        };
        let seen = !self.sides.is_empty();
        warn(
            seen && face_px < t.face_small_px,
            QualityCode::FaceSmall,
            format!("The face is small in the picture ({face_px:.0} px across): move closer to the camera."),
        );
        warn(
            seen && brightness < t.too_dark,
            QualityCode::TooDark,
            "The face is too dark: add light in front of you.".into(),
        );
        warn(
            seen && sharpness < t.blurred,
            QualityCode::Blurred,
            "The face is blurred: hold the camera still and check its focus.".into(),
        );
        warn(
            turned > t.head_turned_deg,
            QualityCode::HeadTurned,
            format!("The head is turned away from the camera ({turned:.0}°): face the camera."),
        );
        warn(
            face_rate < t.face_lost_rate,
            QualityCode::FaceLostOften,
            format!(
                "The face was found on only {:.0} % of the checks: keep your face in the picture.",
                face_rate * 100.0
            ),
        );
        Quality {
            face_px,
            face_rate,
            brightness,
            sharpness,
            yaw_deg: yaw,
            pitch_deg: pitch,
            roll_deg: range(&self.roll),
            face_flag: (!self.flags.is_empty()).then(|| median(&mut self.flags)),
            warnings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_follow_their_thresholds() {
        let acc = QualityAcc {
            sides: vec![40.0, 50.0, 60.0],
            brightness: vec![20.0],
            sharpness: vec![0.01],
            ..QualityAcc::default()
        };
        let q = acc.finish(0.5, &QualityThresholds::default());
        let codes: Vec<_> = q.warnings.iter().map(|w| w.code).collect();
        assert_eq!(
            codes,
            [
                QualityCode::FaceSmall,
                QualityCode::TooDark,
                QualityCode::Blurred,
                QualityCode::FaceLostOften
            ]
        );
        assert_eq!(q.face_px, 50.0);
        let acc = QualityAcc {
            sides: vec![200.0],
            brightness: vec![120.0],
            sharpness: vec![1.0],
            turn: vec![5.0, 40.0, 45.0],
            ..QualityAcc::default()
        };
        assert_eq!(
            acc.finish(1.0, &QualityThresholds::default())
                .warnings
                .iter()
                .map(|w| w.code)
                .collect::<Vec<_>>(),
            [QualityCode::HeadTurned]
        );
    }

    #[test]
    fn codes_have_their_stable_names() {
        for c in QualityCode::ALL {
            assert_eq!(serde_json::to_value(c).expect("json"), c.as_str());
        }
    }
}
