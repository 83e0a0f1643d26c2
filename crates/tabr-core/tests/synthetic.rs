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

#[test]
fn mouth_micro_movement_spikes_only_the_mouth() {
    let dir = tempfile::tempdir().expect("tempdir");
    let still = ClipSpec {
        frames: 90,
        seed: 3,
        noise: 0.5,
        ..ClipSpec::default()
    };
    let moving = ClipSpec {
        movement: Some(Movement {
            part: Part::Mouth,
            start: 40,
            len: 6,
            amplitude: 0.6,
        }),
        ..still.clone()
    };
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
