//! Synthetic face clips drawn with OpenCV, for tests, benchmarks and the demo model.
//!
//! A face is a skin-tone head ellipse with dark eyes, brows, a nose and a mouth, on a
//! textured background: OpenCV's frontal Haar cascade detects such a drawing. Shapes are
//! drawn with 1/16-pixel precision (`shift = 4`, anti-aliased), so a movement of a fraction
//! of a pixel really changes the frames. A clip is still apart from what [`ClipSpec`] asks:
//! one part moving in a frame window, sensor noise, and a slow head drift.

use std::path::Path;

use opencv::core::{self, Mat, Point, Scalar, Size, CV_8UC3};
use opencv::imgproc::{self, LINE_AA};
use opencv::prelude::*;
use opencv::videoio::{VideoWriter, VideoWriterTrait};

use crate::error::{Error, Result};

/// The face part that moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The mouth moves down (opens).
    Mouth,
    /// Both brows move up (raise).
    Brows,
    /// Both eyes narrow (the lids close a little).
    Eyes,
}

/// A short movement of one part.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Movement {
    /// Which part.
    pub part: Part,
    /// First frame of the movement.
    pub start: u32,
    /// Frames the movement lasts; the part goes out and back in this window.
    pub len: u32,
    /// Peak displacement in pixels (sub-pixel values are meaningful).
    pub amplitude: f64,
}

/// What to draw.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipSpec {
    /// Frame width.
    pub width: i32,
    /// Frame height.
    pub height: i32,
    /// Frames per second written to the container.
    pub fps: f64,
    /// Number of frames.
    pub frames: u32,
    /// Seed of the noise and texture.
    pub seed: u64,
    /// Face height as a fraction of the frame height.
    pub face_scale: f64,
    /// Optional micro-movement.
    pub movement: Option<Movement>,
    /// Standard deviation of per-pixel Gaussian noise, in gray levels (0 = none).
    pub noise: f64,
    /// Head drift in pixels per second along x and y.
    pub drift: (f64, f64),
}

impl Default for ClipSpec {
    fn default() -> Self {
        Self {
            width: 640,
            height: 480,
            fps: 30.0,
            frames: 90,
            seed: 1,
            face_scale: 0.6,
            movement: None,
            noise: 0.0,
            drift: (0.0, 0.0),
        }
    }
}

const SHIFT: i32 = 4;
const ONE: f64 = (1 << SHIFT) as f64;

fn pt(x: f64, y: f64) -> Point {
    Point::new((x * ONE).round() as i32, (y * ONE).round() as i32)
}

fn sz(w: f64, h: f64) -> Size {
    Size::new((w * ONE).round() as i32, (h * ONE).round() as i32)
}

fn gray(v: f64) -> Scalar {
    Scalar::new(v, v, v, 0.0)
}

/// Displacement of the moving part at frame `t`: a raised-cosine bump over the window.
fn bump(m: &Movement, t: u32) -> f64 {
    if t < m.start || t >= m.start + m.len || m.len == 0 {
        return 0.0;
    }
    let phase = f64::from(t - m.start + 1) / f64::from(m.len + 1);
    m.amplitude * 0.5 * (1.0 - (2.0 * std::f64::consts::PI * phase).cos())
}

/// Draws frame `t` of `spec` (BGR, 8-bit).
pub fn render_frame(spec: &ClipSpec, t: u32, background: &Mat) -> opencv::Result<Mat> {
    let mut img = background.try_clone()?;
    let secs = f64::from(t) / spec.fps;
    let cx = f64::from(spec.width) / 2.0 + spec.drift.0 * secs;
    let cy = f64::from(spec.height) / 2.0 + spec.drift.1 * secs;
    let fh = f64::from(spec.height) * spec.face_scale; // face height
    let u = fh / 260.0; // drawing unit: the face was designed 260 px tall
    if spec.face_scale <= 0.0 {
        return Ok(img);
    }
    let mv = |p: Part| {
        spec.movement
            .filter(|m| m.part == p)
            .map_or(0.0, |m| bump(&m, t))
    };
    let ell = |img: &mut Mat, x: f64, y: f64, a: f64, b: f64, c: f64| {
        imgproc::ellipse(
            img,
            pt(x, y),
            sz(a, b),
            0.0,
            0.0,
            360.0,
            gray(c),
            -1,
            LINE_AA,
            SHIFT,
        )
    };
    // Head and hair line. (A clip with face_scale 0 is the bare background.)
    ell(&mut img, cx, cy, 100.0 * u, 130.0 * u, 185.0)?;
    ell(&mut img, cx, cy - 118.0 * u, 80.0 * u, 22.0 * u, 70.0)?;
    // Skin texture: fixed spots that move with the head. Flat skin would leave Farnebäck
    // ill-conditioned, and noise alone would then show as flow.
    let mut rnd = unit_rng(spec.seed ^ 0xA5A5_5A5A);
    for _ in 0..220 {
        let (a, r) = (rnd() * std::f64::consts::TAU, rnd().sqrt());
        let (x, y) = (cx + r * a.cos() * 92.0 * u, cy + r * a.sin() * 120.0 * u);
        let size = (1.0 + 2.5 * rnd()) * u;
        ell(
            &mut img,
            x,
            y,
            size,
            size * (0.6 + 0.8 * rnd()),
            150.0 + 70.0 * rnd(),
        )?;
    }
    // Brows (raise = move up), eyes (narrow = flatter ellipse), nose, mouth (open = move down).
    let brow = mv(Part::Brows);
    let lid = mv(Part::Eyes);
    for side in [-1.0, 1.0] {
        ell(
            &mut img,
            cx + side * 42.0 * u,
            cy - 52.0 * u - brow,
            26.0 * u,
            6.0 * u,
            55.0,
        )?;
        ell(
            &mut img,
            cx + side * 42.0 * u,
            cy - 25.0 * u,
            20.0 * u,
            11.0 * u,
            235.0,
        )?;
        ell(
            &mut img,
            cx + side * 42.0 * u,
            cy - 25.0 * u,
            9.0 * u,
            (9.0 * u - lid).max(1.0),
            30.0,
        )?;
    }
    ell(&mut img, cx, cy + 12.0 * u, 9.0 * u, 26.0 * u, 150.0)?;
    ell(&mut img, cx, cy + 30.0 * u, 16.0 * u, 7.0 * u, 110.0)?;
    ell(
        &mut img,
        cx,
        cy + 68.0 * u + mv(Part::Mouth),
        38.0 * u,
        11.0 * u,
        70.0,
    )?;
    ell(
        &mut img,
        cx,
        cy + 66.0 * u + mv(Part::Mouth),
        30.0 * u,
        4.0 * u,
        140.0,
    )?;
    if spec.noise > 0.0 {
        let mut noise = Mat::new_size_with_default(img.size()?, CV_8UC3, Scalar::all(0.0))?;
        let mut rng = core::RNG::new(
            spec.seed
                .wrapping_mul(0x9E37_79B9)
                .wrapping_add(u64::from(t)),
        )?;
        let mut n16 = Mat::default();
        img.convert_to(&mut n16, core::CV_16SC3, 1.0, 0.0)?;
        let mut gauss = Mat::new_size_with_default(img.size()?, core::CV_16SC3, Scalar::all(0.0))?;
        rng.fill(
            &mut gauss,
            core::RNG_NORMAL,
            &Scalar::all(0.0),
            &Scalar::all(spec.noise),
            false,
        )?;
        let mut sum = Mat::default();
        core::add(&n16, &gauss, &mut sum, &core::no_array(), -1)?;
        sum.convert_to(&mut noise, CV_8UC3, 1.0, 0.0)?;
        img = noise;
    }
    Ok(img)
}

/// A smooth, seeded background texture (so the scene is not a flat field).
pub fn background(spec: &ClipSpec) -> opencv::Result<Mat> {
    let mut small = Mat::new_rows_cols_with_default(12, 16, CV_8UC3, Scalar::all(0.0))?;
    let mut rng = core::RNG::new(spec.seed.wrapping_add(17))?;
    rng.fill(
        &mut small,
        core::RNG_UNIFORM,
        &Scalar::all(60.0),
        &Scalar::all(130.0),
        false,
    )?;
    let mut bg = Mat::default();
    imgproc::resize(
        &small,
        &mut bg,
        Size::new(spec.width, spec.height),
        0.0,
        0.0,
        imgproc::INTER_CUBIC,
    )?;
    Ok(bg)
}

/// Writes the clip as lossless FFV1 in Matroska (`.mkv`), so pixels survive exactly.
pub fn write_clip(path: &Path, spec: &ClipSpec) -> Result<()> {
    let fail = |e: opencv::Error| {
        Error::internal(format!("writing a synthetic clip failed: {}", e.message))
    };
    let fourcc = VideoWriter::fourcc('F', 'F', 'V', '1').map_err(fail)?;
    let size = Size::new(spec.width, spec.height);
    let mut w = VideoWriter::new(path.as_os_str(), fourcc, spec.fps, size, true).map_err(fail)?;
    if !w.is_opened().map_err(fail)? {
        return Err(Error::internal(
            "the FFV1 video writer is not available in this OpenCV build",
        ));
    }
    let bg = background(spec).map_err(fail)?;
    for t in 0..spec.frames {
        let f = render_frame(spec, t, &bg).map_err(fail)?;
        w.write(&f).map_err(fail)?;
    }
    w.release().map_err(fail)?;
    Ok(())
}

/// A seeded generator of uniform numbers in [0, 1) (splitmix64: small, identical everywhere).
fn unit_rng(seed: u64) -> impl FnMut() -> f64 {
    let mut state = seed;
    move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Classes of the demo data set.
pub const DEMO_LABELS: [&str; 2] = ["none", "micro_movement"];

/// A demo-set clip drawn from `seed`: 320×240, 30 fps, 60–120 frames, sensor noise 0.15–0.5,
/// head drift up to 4 px/s; with `moving`, one part (mouth, brows or eyes) moves 0.8–1.6 px
/// for 4–8 frames somewhere in the middle. The same seed always gives the same clip, so the
/// demo model's training set and the tests' fresh clips come from one definition.
pub fn demo_clip_spec(seed: u64, moving: bool) -> ClipSpec {
    let mut next = unit_rng(seed ^ 0x5DEE_CE66_D1CE_4E5B);
    let frames = 60 + (next() * 61.0) as u32;
    let noise = 0.15 + 0.35 * next();
    let drift = ((next() * 2.0 - 1.0) * 4.0, (next() * 2.0 - 1.0) * 4.0);
    let face_scale = 0.5 + 0.2 * next();
    let movement = moving.then(|| {
        let part = [Part::Mouth, Part::Brows, Part::Eyes][(next() * 3.0) as usize % 3];
        let len = 4 + (next() * 5.0) as u32;
        let start = 10 + (next() * f64::from(frames - 20 - len)) as u32;
        Movement {
            part,
            start,
            len,
            amplitude: 0.8 + 0.8 * next(),
        }
    });
    ClipSpec {
        width: 320,
        height: 240,
        fps: 30.0,
        frames,
        seed,
        face_scale,
        movement,
        noise,
        drift,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bump_goes_out_and_back() {
        let m = Movement {
            part: Part::Mouth,
            start: 40,
            len: 6,
            amplitude: 0.6,
        };
        assert_eq!(bump(&m, 39), 0.0);
        assert_eq!(bump(&m, 46), 0.0);
        let peak = (40..46).map(|t| bump(&m, t)).fold(0.0, f64::max);
        assert!(peak > 0.5 && peak <= 0.6, "{peak}");
    }
}
