//! What the trust figures cost a request (issue "Every answer says how far to trust it"):
//! `evidence` is the difference between a prediction with the evidence outputs read and one
//! without, on d18's own feature vector; `quality` is the per-try crop measurement times the
//! number of tries d18 has, plus nothing else (the pose comes with the landmarks FaceMesh
//! already computes). Both against d18's whole answer (`predict_video`), measured in the same
//! run; the goal is < 2 %.

use std::path::Path;
use std::time::Instant;

use tabr_core::extract::measure_crop;
use tabr_core::model::{LoadOptions, Model};
use tabr_core::{CancelFlag, VideoSource};

use crate::median;

const REPS: usize = 200;

/// Prints the table, for tabr-demo (v1) and tabr-demo-v2.
pub fn trust_bench(d18: &Path, dylib: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    println!("\n## What evidence and quality cost per request (d18; medians: answer of 5 runs, the rest of {REPS})\n");
    println!(
        "| model | d18 answer ms | evidence ms | evidence % | tries | quality ms | quality % |"
    );
    println!("|---|---|---|---|---|---|---|");
    for name in ["tabr-demo", "tabr-demo-v2"] {
        let opts = LoadOptions {
            ort_dylib_path: Some(dylib.to_path_buf()),
            sessions: 1,
            ..LoadOptions::default()
        };
        let Ok(m) = Model::load(&root.join("models").join(name), &opts) else {
            eprintln!("SKIPPED {name}: it does not load");
            continue;
        };
        let mut answers = Vec::new();
        let mut last = None;
        for _ in 0..5 {
            let t = Instant::now();
            let out = m
                .predict_video(VideoSource::Path(d18), &CancelFlag::new())
                .expect("d18 is answered");
            answers.push(t.elapsed().as_secs_f64() * 1e3);
            last = Some(out);
        }
        let Some(out) = last else { return };
        let row: Vec<f64> = out.features.values.iter().map(|&v| f64::from(v)).collect();
        let time = |f: &dyn Fn()| {
            median(
                (0..REPS)
                    .map(|_| {
                        let t = Instant::now();
                        f();
                        t.elapsed().as_secs_f64() * 1e3
                    })
                    .collect(),
            )
        };
        let plain = time(&|| {
            m.predict(&row).expect("predicts");
        });
        let explained = time(&|| {
            m.explain(&row).expect("explains");
        });
        // One try's crop measurement, on a crop of the size the extractor measures.
        let n = 128;
        let crop = opencv::core::Mat::new_rows_cols_with_default(
            n,
            n,
            opencv::core::CV_8UC1,
            opencv::core::Scalar::all(100.0),
        )
        .expect("crop");
        let per_try = time(&|| {
            measure_crop(&crop).expect("measures");
        });
        let tries = out.features.meta.detect_tries as f64;
        let answer = median(answers);
        let evidence = (explained - plain).max(0.0);
        let quality = per_try * tries;
        println!(
            "| {name} | {answer:.1} | {evidence:.3} | {:.2} % | {tries:.0} | {quality:.3} | {:.2} % |",
            100.0 * evidence / answer,
            100.0 * quality / answer
        );
    }
}
