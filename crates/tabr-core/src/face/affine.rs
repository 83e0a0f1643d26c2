//! The plane's affine maths of poc-abs v2 (spec §4): 2×3 maps, their inverse, the closed-form
//! least-squares similarity of the fit points onto the template, and its scale and angle.

/// A 2×3 affine map `[a, b, c, d, e, f]`: (x, y) ↦ (a·x + b·y + c, d·x + e·y + f).
pub type Affine = [f64; 6];

/// Applies an affine map to a point.
pub fn apply(m: &Affine, p: [f64; 2]) -> [f64; 2] {
    [
        m[0] * p[0] + m[1] * p[1] + m[2],
        m[3] * p[0] + m[4] * p[1] + m[5],
    ]
}

/// The inverse of an invertible affine map.
pub fn invert(m: &Affine) -> Affine {
    let det = m[0] * m[4] - m[1] * m[3];
    let (a, b, d, e) = (m[4] / det, -m[1] / det, -m[3] / det, m[0] / det);
    [a, b, -(a * m[2] + b * m[5]), d, e, -(d * m[2] + e * m[5])]
}

/// The least-squares similarity (scale, rotation, translation; no reflection) taking `src`
/// onto `dst`, in closed form on the centred points.
pub fn similarity(src: &[[f64; 2]], dst: &[[f64; 2]]) -> Affine {
    let n = src.len().min(dst.len()) as f64;
    let mean = |ps: &[[f64; 2]]| {
        let (sx, sy) = ps.iter().fold((0.0, 0.0), |(x, y), p| (x + p[0], y + p[1]));
        [sx / n, sy / n]
    };
    let (ms, md) = (mean(src), mean(dst));
    let (mut dot, mut cross, mut norm) = (0.0, 0.0, 0.0);
    for (s, d) in src.iter().zip(dst) {
        let (sx, sy, dx, dy) = (s[0] - ms[0], s[1] - ms[1], d[0] - md[0], d[1] - md[1]);
        dot += sx * dx + sy * dy;
        cross += sx * dy - sy * dx;
        norm += sx * sx + sy * sy;
    }
    let (a, b) = (dot / norm, cross / norm);
    [
        a,
        -b,
        md[0] - a * ms[0] + b * ms[1],
        b,
        a,
        md[1] - b * ms[0] - a * ms[1],
    ]
}

/// The similarity's scale and rotation (radians, counter-clockwise in image axes y-down:
/// positive turns x towards y).
pub fn scale_angle(m: &Affine) -> (f64, f64) {
    (m[0].hypot(m[3]), m[3].atan2(m[0]))
}
