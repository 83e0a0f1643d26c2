//! Bytes input is decoded from memory: no file is written, in any outcome, and the numbers
//! equal those of the same clip read from its path. An abort that lands mid-run (the flow
//! has really computed a pair) stops the run early and leaves nothing behind either.
//! Runs in its own process (its own test binary) because it points TMPDIR at a fresh folder.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tabr_core::flow::{Flow, FlowFrame, FlowMethod};
use tabr_core::synth::{write_clip, ClipSpec};
use tabr_core::{CancelFlag, ErrorCode, Extractor};

/// The default flow, which also pulls the abort cord once it has computed its first pair:
/// the abort then reaches a run that is decoding and computing, not one that never began.
#[derive(Debug)]
struct AbortAfterFirstPair {
    inner: Arc<dyn Flow>,
    cancel: CancelFlag,
    pairs: AtomicUsize,
}

impl Flow for AbortAfterFirstPair {
    fn compute(&self, a: &FlowFrame, b: &FlowFrame, out: &mut [[f32; 2]]) -> tabr_core::Result<()> {
        self.inner.compute(a, b, out)?;
        self.pairs.fetch_add(1, Ordering::SeqCst);
        self.cancel.cancel();
        Ok(())
    }
}

#[test]
fn bytes_input_writes_no_file_and_equals_path_input() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::env::set_var("TMPDIR", tmp.path());
    let clip_dir = tempfile::tempdir_in(std::env::current_dir().expect("cwd")).expect("clip dir");
    let clip = clip_dir.path().join("face.mkv");
    write_clip(
        &clip,
        &ClipSpec {
            frames: 20,
            ..ClipSpec::default()
        },
    )
    .expect("clip");
    let bytes = std::fs::read(&clip).expect("read clip");
    let ex = Extractor::new().expect("extractor");
    let left = || std::fs::read_dir(tmp.path()).expect("read tmp").count();

    let ok = ex
        .extract_bytes(&bytes, &CancelFlag::new())
        .expect("features from bytes");
    let from_path = ex
        .extract_path(&clip, &CancelFlag::new())
        .expect("features from path");
    assert_eq!(
        ok.values, from_path.values,
        "bytes and path give the same numbers"
    );
    assert_eq!(left(), 0, "no file written on success");

    let err = ex
        .extract_bytes(b"definitely not a video", &CancelFlag::new())
        .expect_err("garbage");
    assert_eq!(err.code(), ErrorCode::InvalidVideo);
    assert!(
        !err.message().contains('/'),
        "messages name no path: {}",
        err.message()
    );
    assert_eq!(left(), 0, "no file written on failure");

    let cancel = CancelFlag::new();
    cancel.cancel();
    let err = ex.extract_bytes(&bytes, &cancel).expect_err("aborted");
    assert_eq!(err.code(), ErrorCode::Aborted);
    assert_eq!(left(), 0, "no file written on an abort before the start");

    let cancel = CancelFlag::new();
    let flow = Arc::new(AbortAfterFirstPair {
        inner: FlowMethod::default().build(),
        cancel: cancel.clone(),
        pairs: AtomicUsize::new(0),
    });
    let ex = Extractor::new().expect("extractor").with_flow(flow.clone());
    let err = ex
        .extract_bytes(&bytes, &cancel)
        .expect_err("aborted mid-run");
    assert_eq!(err.code(), ErrorCode::Aborted);
    let pairs = flow.pairs.load(Ordering::SeqCst);
    assert!(pairs >= 1, "the run really started: {pairs} pairs computed");
    assert!(
        pairs < 19,
        "the run stopped early: {pairs} of 19 pairs computed"
    );
    assert_eq!(left(), 0, "no file written on an abort mid-run");
}
