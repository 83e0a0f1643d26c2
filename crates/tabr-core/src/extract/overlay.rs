//! A picture for the person checking v2's placement: the first landmark-aligned crop of a
//! clip, enlarged, with the landmarks, the seven fit points and the eight regions drawn on it.
//! It is cut by the extractor's own face method and crop (nothing re-implemented), so what
//! the picture shows is what the features are computed from. The caller encodes it (the CLI
//! writes PNG).

use opencv::core::{Mat, MatTraitConst, MatTraitConstManual, Point, Rect, Scalar, Size};
use opencv::imgproc;

use crate::error::{Error, Result};
use crate::face::method::{FaceMethod, LandmarkAligned};
use crate::face::{FaceMesh, FIT_POINTS};
use crate::spec::{Spec, SpecParams};
use crate::video::{Decoder, VideoSource};

/// How many times the crop is enlarged.
pub const OVERLAY_SCALE: usize = 4;

/// An 8-bit RGB picture, row-major.
#[derive(Debug, Clone)]
pub struct Picture {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width × height × 3` bytes.
    pub rgb: Vec<u8>,
    /// The frame the crop comes from.
    pub frame: u64,
}

/// One colour per region, in vector order (RGB): brows, eyes, nose, cheeks, mouth.
const COLOURS: [(f64, f64, f64); 8] = [
    (255.0, 190.0, 0.0),
    (255.0, 190.0, 0.0),
    (0.0, 200.0, 255.0),
    (0.0, 200.0, 255.0),
    (255.0, 90.0, 255.0),
    (120.0, 255.0, 120.0),
    (120.0, 255.0, 120.0),
    (255.0, 120.0, 60.0),
];

/// The first frame of `source` (within the spec's limits) where v2 finds a face, as a
/// picture; `None` when no frame has one.
pub fn first_aligned_face(
    source: VideoSource<'_>,
    spec: Spec,
    params: &SpecParams,
    mesh: std::sync::Arc<FaceMesh>,
) -> Result<Option<Picture>> {
    let method = LandmarkAligned::new(mesh);
    let mut decoder = Decoder::open(source, params)?;
    let mut gray = Mat::default();
    while decoder.next_gray(&mut gray)? {
        let Some(fit) = method.fit(&gray)? else {
            continue;
        };
        let n = params.roi_size;
        let crop = method.crop(&gray, &fit.geometry, n)?;
        return draw(spec, &crop, &fit.canonical(), n, decoder.frames() - 1).map(Some);
    }
    Ok(None)
}

fn draw(spec: Spec, crop: &Mat, canonical: &[[f64; 2]], n: usize, frame: u64) -> Result<Picture> {
    let fail = |_| Error::internal("drawing the overlay failed");
    let k = OVERLAY_SCALE as i32;
    let side = n as i32 * k;
    // v2's crop is float: shown as 8-bit gray levels.
    let mut crop8 = Mat::default();
    crop.convert_to(&mut crop8, opencv::core::CV_8U, 1.0, 0.0)
        .map_err(fail)?;
    let mut big = Mat::default();
    imgproc::resize(
        &crop8,
        &mut big,
        Size::new(side, side),
        0.0,
        0.0,
        imgproc::INTER_NEAREST,
    )
    .map_err(fail)?;
    let mut rgb = Mat::default();
    imgproc::cvt_color_def(&big, &mut rgb, imgproc::COLOR_GRAY2RGB).map_err(fail)?;
    let colour = |c: (f64, f64, f64)| Scalar::new(c.0, c.1, c.2, 0.0);
    for (r, &c) in spec.regions().iter().zip(&COLOURS) {
        let p = r.pixel_rect(n);
        let rect = Rect::new(
            p.x as i32 * k,
            p.y as i32 * k,
            p.w as i32 * k - 1,
            p.h as i32 * k - 1,
        );
        imgproc::rectangle(&mut rgb, rect, colour(c), 2, imgproc::LINE_8, 0).map_err(fail)?;
        imgproc::put_text(
            &mut rgb,
            r.name,
            Point::new(rect.x + 4, rect.y + 14),
            imgproc::FONT_HERSHEY_SIMPLEX,
            0.4,
            colour(c),
            1,
            imgproc::LINE_AA,
            false,
        )
        .map_err(fail)?;
    }
    // A unit coordinate u lies at crop pixel u·n − ½, so at (u·n − ½)·k + (k − 1)/2 enlarged.
    let at = |p: [f64; 2]| {
        let f =
            |u: f64| ((u * n as f64 - 0.5) * f64::from(k) + f64::from(k - 1) / 2.0).round() as i32;
        Point::new(f(p[0]), f(p[1]))
    };
    for p in canonical {
        imgproc::circle(
            &mut rgb,
            at(*p),
            1,
            colour((60.0, 220.0, 60.0)),
            -1,
            imgproc::LINE_8,
            0,
        )
        .map_err(fail)?;
    }
    for &i in &FIT_POINTS {
        imgproc::circle(
            &mut rgb,
            at(canonical[i]),
            4,
            colour((255.0, 40.0, 40.0)),
            2,
            imgproc::LINE_AA,
            0,
        )
        .map_err(fail)?;
    }
    let bytes = rgb.data_bytes().map_err(fail)?.to_vec();
    Ok(Picture {
        width: side as u32,
        height: side as u32,
        rgb: bytes,
        frame,
    })
}
