//! Synthetic faces made by the project's own generator: a face with light sensor noise whose
//! mouth moves by a fraction of a pixel in frames 40–45, against a still control clip with the
//! same seed (same noise). The mouth channels must spike; the brow channels must not change.

use std::path::Path;

use tabr_core::synth::{write_clip, ClipSpec, Movement, Part};
use tabr_core::{feature_names, CancelFlag, Extractor, Features};

fn extract(dir: &Path, name: &str, spec: &ClipSpec) -> Features {
    let path = dir.join(name);
    write_clip(&path, spec).expect("write clip");
    Extractor::new()
        .expect("extractor")
        .extract_path(&path, &CancelFlag::new())
        .expect("features")
}

/// 90 frames of the drawn face with light sensor noise.
fn still() -> ClipSpec {
    ClipSpec {
        frames: 90,
        seed: 3,
        noise: 0.5,
        ..ClipSpec::default()
    }
}

/// The same clip (same noise) with the mouth moving 0.6 px in frames 40–45.
fn mouth() -> ClipSpec {
    ClipSpec {
        movement: Some(Movement {
            part: Part::Mouth,
            start: 40,
            len: 6,
            amplitude: 0.6,
        }),
        ..still()
    }
}

#[test]
fn mouth_micro_movement_spikes_only_the_mouth() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (still, moving) = (still(), mouth());
    let (s, m) = (
        extract(dir.path(), "still.mkv", &still),
        extract(dir.path(), "mouth.mkv", &moving),
    );
    let names = feature_names();
    let idx = |n: &str| names.iter().position(|x| x == n).expect(n);
    let get = |f: &Features, n: &str| f.values[idx(n)];
    for n in [
        "mouth.abs.max",
        "mouth.abs.spike",
        "mouth.poc.max",
        "brow_l.abs.max",
        "brow_l.abs.spike",
        "brow_r.abs.spike",
        "brow_l.poc.spike",
    ] {
        eprintln!("{n:>18}: still {:.4}  moving {:.4}", get(&s, n), get(&m, n));
    }
    assert_eq!(
        m.meta.detect_hits, m.meta.detect_tries,
        "the drawn face is found on every try"
    );
    assert_eq!(m.meta.pairs, 89);
    let one_pair = 1.0 / 89.0;
    // The mouth: a clear peak and at least three more spiking pairs than the still clip.
    assert!(get(&m, "mouth.abs.max") > 3.0 * get(&s, "mouth.abs.max"));
    assert!(get(&m, "mouth.abs.spike") >= get(&s, "mouth.abs.spike") + 3.0 * one_pair - 1e-6);
    // The brows: at most one pair more than the still clip, and no peak.
    for n in [
        "brow_l.abs.spike",
        "brow_r.abs.spike",
        "brow_l.poc.spike",
        "brow_r.poc.spike",
    ] {
        assert!(get(&m, n) <= get(&s, n) + one_pair + 1e-6, "{n} spikes");
    }
    for n in ["brow_l.abs.max", "brow_r.abs.max"] {
        assert!(get(&m, n) < 1.5 * get(&s, n), "{n} peaks");
    }
}

#[test]
fn the_series_holds_each_pairs_channels_and_the_statistics_come_from_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = extract(dir.path(), "mouth.mkv", &mouth());
    let s = &f.series;
    assert_eq!(s.values.len() as u64, f.meta.pairs);
    assert_eq!(
        s.first_frame, 0,
        "the drawn face is found on the first frame"
    );
    let t = s.times(f.meta.fps);
    assert!(
        (t[0] - 1.0 / 30.0).abs() < 1e-12,
        "pair 0 is at its later frame"
    );
    assert!(t
        .windows(2)
        .all(|w| (w[1] - w[0] - 1.0 / 30.0).abs() < 1e-9));
    // Each channel's mean and max over the series are its `mean` and `max` features.
    let channels = tabr_core::spec::channel_names();
    let names = feature_names();
    for (c, name) in channels.iter().enumerate() {
        let col: Vec<f64> = s.values.iter().map(|row| f64::from(row[c])).collect();
        let mean = col.iter().sum::<f64>() / col.len() as f64;
        let max = col.iter().cloned().fold(f64::MIN, f64::max);
        let at = |stat: &str| {
            let i = names
                .iter()
                .position(|n| *n == format!("{name}.{stat}"))
                .expect("named");
            f64::from(f.values[i])
        };
        assert!(
            (mean - at("mean")).abs() <= 1e-5 * (1.0 + mean.abs()),
            "{name}.mean"
        );
        assert!(
            (max - at("max")).abs() <= 1e-6 * (1.0 + max.abs()),
            "{name}.max"
        );
    }
    // The mouth's strongest pair lies in the movement (frames 40–45 → pairs 39–45).
    let mouth = channels
        .iter()
        .position(|c| c == "mouth.abs")
        .expect("mouth.abs");
    let peak = (0..s.values.len())
        .max_by(|&a, &b| s.values[a][mouth].total_cmp(&s.values[b][mouth]))
        .expect("pairs");
    assert!((39..=45).contains(&peak), "mouth peak at pair {peak}");
}
