//! Hostile media against the extractor, made with ffmpeg at test time (apt package `ffmpeg`):
//! playlists and manifests that name a file on this machine, a resolution change mid-stream,
//! and a high-frame-rate clip that asks for far more decoding than its size suggests.
//!
//! Each case failed before the decoder moved off OpenCV's `VideoCapture`: the HLS playlist was
//! followed (features of the server's own file), the resolution change was decoded at the
//! first size, and the 1000-fps clip was decoded to its last frame.

use std::path::{Path, PathBuf};
use std::time::Instant;

use tabr_core::synth::{write_clip, ClipSpec};
use tabr_core::{CancelFlag, ErrorCode, Extractor, SpecParams};

mod common;
use common::ffmpeg;

fn with_params(params: SpecParams) -> Extractor {
    Extractor::with(
        tabr_core::face::FaceDetector::builtin().expect("cascade"),
        params,
    )
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A synthetic face clip re-encoded as an MPEG-TS segment: what a followed playlist would
/// decode into features.
fn face_segment(dir: &Path) -> PathBuf {
    let mkv = dir.join("face.mkv");
    write_clip(
        &mkv,
        &ClipSpec {
            frames: 30,
            ..ClipSpec::default()
        },
    )
    .expect("clip");
    let ts = dir.join("secret-segment.ts");
    ffmpeg(&["-i", s(&mkv), "-c:v", "mpeg2video", "-q:v", "2", s(&ts)]);
    // The segment itself is a valid upload: the playlists below are refused for what they
    // are, not because their target would fail.
    let f = Extractor::new()
        .expect("extractor")
        .extract_path(&ts, &CancelFlag::new());
    assert!(f.is_ok(), "the segment alone gives features: {f:?}");
    ts
}

fn playlists(target: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "hls",
            format!("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXTINF:1.0,\n{target}\n#EXT-X-ENDLIST\n"),
        ),
        (
            "hls-file-url",
            format!("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:1.0,\nfile://{target}\n#EXT-X-ENDLIST\n"),
        ),
        (
            "dash",
            format!(
                r#"<?xml version="1.0"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT1S" minBufferTime="PT1S" profiles="urn:mpeg:dash:profile:isoff-main:2011">
 <Period><AdaptationSet mimeType="video/mp2t"><Representation id="v" bandwidth="100000" width="640" height="480">
  <SegmentList duration="1"><SegmentURL media="{target}"/></SegmentList>
 </Representation></AdaptationSet></Period></MPD>
"#
            ),
        ),
        ("ffconcat", format!("ffconcat version 1.0\nfile '{target}'\n")),
        (
            "ffconcat-subfile",
            format!("ffconcat version 1.0\nfile 'subfile,,start,0,end,0,,:{target}'\n"),
        ),
    ]
}

#[test]
fn playlists_and_manifests_are_never_followed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let segment = face_segment(dir.path());
    let missing = dir.path().join("no-such-segment.ts");
    let ex = Extractor::new().expect("extractor");
    for target in [&segment, &missing] {
        for (kind, body) in playlists(s(target)) {
            let e = ex
                .extract_bytes(body.as_bytes(), &CancelFlag::new())
                .expect_err(kind);
            assert_eq!(e.code(), ErrorCode::InvalidVideo, "{kind}: {e}");
            // The same sentence whether the named file exists or not, and no path in it.
            assert_eq!(e.message(), "the upload is not a readable video", "{kind}");
            // From a file named like a playlist too: the name steers nothing.
            let p = dir.path().join(format!("list-{kind}.m3u8"));
            std::fs::write(&p, &body).expect("write playlist");
            let e = ex.extract_path(&p, &CancelFlag::new()).expect_err(kind);
            assert_eq!(e.message(), "the upload is not a readable video", "{kind}");
        }
    }
}

/// Two MPEG-TS segments of different sizes, concatenated byte for byte.
fn resolution_change(dir: &Path, first: &str, second: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (i, size) in [first, second].iter().enumerate() {
        let p = dir.join(format!("part{i}.ts"));
        let src = format!("testsrc=size={size}:rate=25");
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            &src,
            "-frames:v",
            "25",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            s(&p),
        ]);
        bytes.extend(std::fs::read(&p).expect("segment"));
    }
    bytes
}

#[test]
fn a_resolution_change_is_checked_on_every_frame() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = resolution_change(dir.path(), "320x240", "640x480");
    // Over the frame limit after the change: frame_too_large, although the header (and the
    // first 25 frames) are within it. Over it from the first frame: refused from the header,
    // before decoding.
    for max_pixels in [320 * 240 * 2, 320 * 240 - 1] {
        let e = with_params(SpecParams {
            max_pixels,
            ..SpecParams::default()
        })
        .extract_bytes(&bytes, &CancelFlag::new())
        .expect_err("too large");
        assert_eq!(e.code(), ErrorCode::FrameTooLarge, "{max_pixels}: {e}");
    }
    // Within the limit, a size change is still refused rather than decoded as garbage.
    let e = Extractor::new()
        .expect("extractor")
        .extract_bytes(&bytes, &CancelFlag::new())
        .expect_err("size change");
    assert_eq!(e.code(), ErrorCode::InvalidVideo, "{e}");
    assert_eq!(e.message(), "the frame size changes within the video");
}

#[test]
fn decoding_work_is_capped_before_a_tiny_clip_can_hold_a_slot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clip = dir.path().join("black-1000fps.mp4");
    // 3000 black 640×480 frames at 1000 fps: a few kB, 3 s of video (within the length
    // limit), 922 megapixels to decode.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=black:size=640x480:rate=1000",
        "-frames:v",
        "3000",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        s(&clip),
    ]);
    assert!(std::fs::metadata(&clip).expect("clip").len() < 200_000);
    let params = SpecParams {
        max_decoded_pixels: 640 * 480 * 200,
        ..SpecParams::default()
    };
    let ex = with_params(params);
    let t = Instant::now();
    let e = ex
        .extract_path(&clip, &CancelFlag::new())
        .expect_err("capped");
    assert_eq!(e.code(), ErrorCode::VideoTooLarge, "{e}");
    println!("refused after {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
    // The default cap admits every video within the other limits up to 60 fps at 1080p.
    let d = SpecParams::default();
    assert!(d.max_decoded_pixels >= d.max_pixels * d.max_frames(60.0));
}
