//! The picture a viewer sees (spec §1): the container's display matrix applied to a decoded
//! frame as players and FFmpeg's autorotate apply it.
//!
//! Why this module: a phone stores a portrait clip as landscape pixels plus a matrix saying
//! "turn this 90° clockwise", and a front camera may add a mirror. OpenCV 4.6's reader, which
//! the decoder used to copy, turned ±90° the wrong way (portrait uploads came out upside down)
//! and read a mirror as a 180° turn. The rule here is FFmpeg's autorotate (fftools'
//! `configure_input_video_filter`, the same decision in 5.1, Debian 12's, and in 7.x): the
//! clockwise angle `θ = −round(av_display_rotation_get(m))` taken into [0, 360), then
//! - θ = 90: transpose "clock", or "cclock_flip" (a plain transpose) when `m[3] > 0`;
//! - θ = 180: a horizontal flip when `m[0] < 0` and a vertical one when `m[4] < 0`;
//! - θ = 270: transpose "cclock", or "clock_flip" (the anti-transpose) when `m[3] < 0`;
//! - θ = 0: a vertical flip when `m[4] < 0`.
//!
//! Any other angle is left as decoded (FFmpeg would resample the picture through a rotate
//! filter; no camera writes one, and a non-right angle cannot be applied without inventing
//! pixels). The eight results are the symmetries of a rectangle; each is one OpenCV call or
//! two, all exact pixel moves.

use opencv::core::{self as cvcore, Mat, MatTraitConst};

use super::input;

/// One of the eight exact symmetries of a rectangular picture, as applied to a decoded frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orientation {
    /// As decoded.
    Upright,
    /// Turned 90° clockwise (FFmpeg's `transpose=clock`).
    Clockwise,
    /// Turned 180° (`hflip` then `vflip`).
    HalfTurn,
    /// Turned 90° counter-clockwise (`transpose=cclock`).
    CounterClockwise,
    /// Mirrored left to right (`hflip`).
    MirrorX,
    /// Mirrored top to bottom (`vflip`).
    MirrorY,
    /// Rows become columns: pixel (x, y) goes to (y, x) (`transpose=cclock_flip`).
    Transpose,
    /// The other diagonal: turned 90° clockwise, then mirrored top to bottom
    /// (`transpose=clock_flip`).
    AntiTranspose,
}

impl Orientation {
    /// The orientation a display matrix (nine values, 16.16 fixed point as FFmpeg stores
    /// them) asks for, by FFmpeg's autorotate rule (see the module's text).
    pub fn from_matrix(m: &[i32; 9]) -> Orientation {
        let Some(ccw) = input::display_rotation(m) else {
            return Orientation::Upright;
        };
        let mut theta = -ccw.round();
        theta -= 360.0 * (theta / 360.0 + 0.9 / 360.0).floor();
        let near = |a: f64| (theta - a).abs() < 1.0;
        if near(90.0) {
            if m[3] > 0 {
                Orientation::Transpose
            } else {
                Orientation::Clockwise
            }
        } else if near(180.0) {
            match (m[0] < 0, m[4] < 0) {
                (true, true) => Orientation::HalfTurn,
                (true, false) => Orientation::MirrorX,
                (false, true) => Orientation::MirrorY,
                (false, false) => Orientation::Upright,
            }
        } else if near(270.0) {
            if m[3] < 0 {
                Orientation::AntiTranspose
            } else {
                Orientation::CounterClockwise
            }
        } else if theta.abs() < 1.0 && m[4] < 0 {
            Orientation::MirrorY
        } else {
            Orientation::Upright
        }
    }

    /// Whether the picture's width and height trade places.
    pub fn swaps_sides(self) -> bool {
        matches!(
            self,
            Orientation::Clockwise
                | Orientation::CounterClockwise
                | Orientation::Transpose
                | Orientation::AntiTranspose
        )
    }

    /// Writes `src` as a viewer sees it into `dst` (`tmp` is scratch for the two-step
    /// anti-transpose). Not called for [`Orientation::Upright`].
    pub fn apply(self, src: &Mat, dst: &mut Mat, tmp: &mut Mat) -> opencv::Result<()> {
        use cvcore::RotateFlags as R;
        // OpenCV's flip codes: 1 mirrors left to right, 0 top to bottom, -1 both.
        match self {
            Orientation::Upright => src.copy_to(dst),
            Orientation::Clockwise => cvcore::rotate(src, dst, R::ROTATE_90_CLOCKWISE as i32),
            Orientation::HalfTurn => cvcore::rotate(src, dst, R::ROTATE_180 as i32),
            Orientation::CounterClockwise => {
                cvcore::rotate(src, dst, R::ROTATE_90_COUNTERCLOCKWISE as i32)
            }
            Orientation::MirrorX => cvcore::flip(src, dst, 1),
            Orientation::MirrorY => cvcore::flip(src, dst, 0),
            Orientation::Transpose => cvcore::transpose(src, dst),
            Orientation::AntiTranspose => {
                cvcore::rotate(src, tmp, R::ROTATE_90_CLOCKWISE as i32)?;
                cvcore::flip(tmp, dst, 0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A display matrix with the 2×2 part `[a b; c d]` (whole numbers, 16.16 fixed point).
    fn matrix(a: i32, b: i32, c: i32, d: i32) -> [i32; 9] {
        [a << 16, b << 16, 0, c << 16, d << 16, 0, 0, 0, 1 << 30]
    }

    #[test]
    fn every_right_angle_and_mirror_maps_as_ffmpeg_autorotates() {
        use Orientation::*;
        let cases = [
            (matrix(1, 0, 0, 1), Upright),
            // An iPhone's portrait clip (ffprobe: "rotation of -90.00 degrees"): turned clockwise.
            (matrix(0, 1, -1, 0), Clockwise),
            // What ffmpeg 5.1 writes for `-metadata:s:v:0 rotate=90` ("rotation of 90.00").
            (matrix(0, -1, 1, 0), CounterClockwise),
            (matrix(-1, 0, 0, -1), HalfTurn),
            // A front camera's selfie mirror: not a half turn.
            (matrix(-1, 0, 0, 1), MirrorX),
            (matrix(1, 0, 0, -1), MirrorY),
            (matrix(0, 1, 1, 0), Transpose),
            (matrix(0, -1, -1, 0), AntiTranspose),
        ];
        for (m, want) in cases {
            assert_eq!(Orientation::from_matrix(&m), want, "{m:?}");
        }
    }

    #[test]
    fn a_degenerate_or_odd_angled_matrix_is_left_as_decoded() {
        assert_eq!(Orientation::from_matrix(&[0; 9]), Orientation::Upright);
        // 15° (cos, sin in 16.16).
        let (c, s) = (63303, 16962);
        let m = [c, -s, 0, s, c, 0, 0, 0, 1 << 30];
        assert_eq!(Orientation::from_matrix(&m), Orientation::Upright);
    }
}
