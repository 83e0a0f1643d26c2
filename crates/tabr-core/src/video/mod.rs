//! Decoding with FFmpeg's libraries, with the spec's limits (spec §1).
//!
//! Why not OpenCV's `VideoCapture`: it hides what a service facing hostile uploads must see.
//! It demuxes whatever the probe picks (playlists that open server files included), writes
//! FFmpeg's diagnostics to stderr, reports the first frame's size while later frames grow, and
//! ends the stream at the first packet it cannot use. Here [`input`] opens the bytes through
//! our own I/O with an allow-list of self-contained containers, FFmpeg's log is silenced,
//! every decoded frame's real size is checked, failed reads are retried as the spec's §1 says
//! (16 in a row end the stream), and per-request bounds on decoded frames and pixels cap the
//! work a tiny upload can ask for (from the header where it says, confirmed by a seek). What
//! opening itself may cost is bounded in [`input`] and [`isobmff`]. Frames are converted to gray exactly as OpenCV's FFmpeg backend
//! does (bicubic swscale to BGR24, then OpenCV's BGR→GRAY), then shown the way players show
//! them (the display matrix applied as FFmpeg's autorotate does, [`orient`]).

pub mod input;
pub mod isobmff;
pub mod orient;

use ffmpeg_next as ff;
use opencv::core::{Mat, MatTraitConst, MatTraitConstManual, MatTraitManual, Scalar, CV_8UC3};
use opencv::imgproc;

use crate::error::{Error, ErrorCode, Result};
use crate::spec::{SpecParams, MAX_PIXELS};
use input::Converter;
pub use input::VideoSource;
pub use orient::Orientation;

/// The spec counts decoded frames, and headers can overstate them (a truncated file keeps
/// its full-length index). A header over the budget is therefore confirmed by seeking this
/// fraction past the budget and reading a packet there: only data that really exists refuses
/// the video early. Otherwise decoding counts, and stops at the budget.
const PROBE_MARGIN: f64 = 0.1;

/// Packets read after the seek of the length probe before it gives up.
const PROBE_PACKETS: usize = 4096;

/// Failed reads in a row that end the stream (spec §1).
pub const MAX_FAILED_READS: u32 = 16;

/// fps used when the container reports none (spec §1).
pub const DEFAULT_FPS: f64 = 30.0;

/// Below this a frame rate counts as absent (OpenCV's `eps_zero`).
const FPS_EPS: f64 = 0.000025;

/// The limits a video can pass while decoding, in the order they are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    /// More frames than `ceil(fps × max_seconds)` (spec §1): `video_too_long`.
    Length,
    /// More frames than `ceil(max_frame_rate × max_seconds)`: `video_too_large`.
    Frames,
    /// More pixels than `max_decoded_pixels`: `video_too_large`.
    Work,
}

impl Limit {
    /// Every limit on the number of frames, in the order their refusals take precedence. The
    /// header pre-check and the per-frame check both walk this list.
    const ALL: [Limit; 3] = [Limit::Length, Limit::Frames, Limit::Work];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Feeding,
    Draining,
    Done,
}

/// An open video with its limits.
pub struct Decoder<'a> {
    dec: ff::decoder::Video,
    input: input::OpenInput<'a>,
    stream: usize,
    fps: f64,
    orientation: Orientation,
    max_frames: u64,
    max_work_frames: u64,
    max_frame_rate: f64,
    max_pixels: u64,
    max_seconds: f64,
    max_decoded_pixels: u64,
    frames: u64,
    size: Option<(u32, u32)>,
    failures_in_a_row: u32,
    decode_errors: u64,
    state: State,
    frame: ff::frame::Video,
    conv: Option<(ff::format::Pixel, Converter)>,
    bgr: Mat,
    unrotated: Mat,
    scratch: Mat,
}

impl<'a> Decoder<'a> {
    /// Opens `source` and applies the header checks: the frame size, and every limit the
    /// header says the video would pass (length, frames, decoding work), confirmed by reading
    /// a packet past that point so that refusals take milliseconds and a header that overstates
    /// its file (a truncated one) refuses nothing.
    pub fn open(source: VideoSource<'a>, params: &SpecParams) -> Result<Decoder<'a>> {
        let input = input::open(source, params.max_pixels)?;
        let stream = input.video;
        let (fps, orientation, params_av, header_frames, tb, start) = {
            let s = input
                .ctx
                .stream(stream)
                .ok_or_else(|| Error::invalid_video("the upload has no video stream"))?;
            let tb = f64::from(s.time_base());
            let mut fps = f64::from(s.avg_frame_rate());
            if (fps.is_nan() || fps < FPS_EPS) && tb > 0.0 {
                fps = 1.0 / tb;
            }
            if !(fps.is_finite() && fps > 0.0) {
                fps = DEFAULT_FPS;
            }
            let mut dur = input.ctx.duration() as f64 / f64::from(ff::ffi::AV_TIME_BASE);
            if dur.is_nan() || dur < FPS_EPS {
                dur = s.duration() as f64 * tb;
            }
            let n = if s.frames() > 0 {
                s.frames() as f64
            } else {
                (dur * fps + 0.5).floor()
            };
            let start = if s.start_time() == ff::ffi::AV_NOPTS_VALUE {
                0
            } else {
                s.start_time()
            };
            (fps, orientation(&s), s.parameters(), n, tb, start)
        };
        // The header's size first: a decoder refuses to open over its pixel bound.
        let (w, h) = input.declared;
        let (w, h) = (u64::from(w), u64::from(h));
        if w * h > params.max_pixels {
            return Err(frame_too_large(w, h, params.max_pixels));
        }
        let mut ctx = ff::codec::Context::from_parameters(params_av)
            .map_err(|_| Error::invalid_video("the video stream cannot be decoded"))?;
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        input::configure_decoder(&mut ctx, threads, params.max_pixels);
        let dec = ctx
            .decoder()
            .video()
            .map_err(|_| Error::invalid_video("the video codec is not supported"))?;
        let max_frames = params.max_frames(fps);
        let max_work_frames = params.max_work_frames();
        let mut decoder = Decoder {
            dec,
            input,
            stream,
            fps,
            orientation,
            max_frames,
            max_work_frames,
            max_frame_rate: params.max_frame_rate,
            max_pixels: params.max_pixels,
            max_seconds: params.max_seconds,
            max_decoded_pixels: params.max_decoded_pixels,
            frames: 0,
            size: None,
            failures_in_a_row: 0,
            decode_errors: 0,
            state: State::Feeding,
            frame: ff::frame::Video::empty(),
            conv: None,
            bgr: Mat::default(),
            unrotated: Mat::default(),
            scratch: Mat::default(),
        };
        // The first limit the header's frames would pass, and the refusal it gives.
        let px = w * h;
        let (limit, first) = Limit::ALL
            .into_iter()
            .map(|l| (l, decoder.frames_allowed(l, px)))
            .min_by_key(|t| t.1)
            .unwrap_or((Limit::Length, max_frames));
        let probe_at = (first as f64 * (1.0 + PROBE_MARGIN)).ceil();
        if header_frames.is_finite() && header_frames > probe_at && tb > 0.0 {
            let at_s = probe_at / fps;
            if decoder.data_exists_at(at_s, start, tb) {
                return Err(decoder.refusal(limit));
            }
            // The header overstates the stream: start again from the first frame.
            decoder.input = input::open(source, params.max_pixels)?;
        }
        Ok(decoder)
    }

    /// How many frames of `px` pixels each a limit allows.
    fn frames_allowed(&self, limit: Limit, px: u64) -> u64 {
        match limit {
            Limit::Length => self.max_frames,
            Limit::Frames => self.max_work_frames,
            Limit::Work => self.max_decoded_pixels.checked_div(px).unwrap_or(u64::MAX),
        }
    }

    /// The refusal of a limit passed.
    fn refusal(&self, limit: Limit) -> Error {
        match limit {
            Limit::Length => too_long(self.max_seconds),
            Limit::Frames => Error::new(
                ErrorCode::VideoTooLarge,
                format!(
                    "the video has more frames than the limit of {} ({} fps × {:.1} s)",
                    self.max_work_frames, self.max_frame_rate, self.max_seconds
                ),
            ),
            Limit::Work => Error::new(
                ErrorCode::VideoTooLarge,
                format!(
                    "the video needs more decoding than the limit of {} megapixels (frames × pixels per frame)",
                    self.max_decoded_pixels / 1_000_000
                ),
            ),
        }
    }

    /// Whether a packet of the video stream really exists at `at_s` seconds from the start.
    fn data_exists_at(&mut self, at_s: f64, start: i64, tb: f64) -> bool {
        let ts = (at_s * 1e6) as i64;
        if self.input.ctx.seek(ts, ..ts).is_err() {
            return false;
        }
        let target = start as f64 * tb + at_s - 0.5 / self.fps;
        let mut pkt = ff::Packet::empty();
        for _ in 0..PROBE_PACKETS {
            match pkt.read(&mut self.input.ctx) {
                Ok(()) if pkt.stream() == self.stream => {
                    let t = pkt.pts().or(pkt.dts()).map(|t| t as f64 * tb);
                    if t.is_some_and(|t| t >= target) && !pkt.is_corrupt() && pkt.size() > 0 {
                        return true;
                    }
                }
                Ok(()) => {}
                // The end of the data, or data that cannot be read: nothing exists there.
                Err(_) => return false,
            }
        }
        false
    }

    /// Frames per second (the container's, or 30 when it reports none).
    pub fn fps(&self) -> f64 {
        self.fps
    }

    /// The frame size the stream information declares (before any turn for display);
    /// `(0, 0)` when nothing declares one.
    pub fn declared_size(&self) -> (u32, u32) {
        self.input.declared
    }

    /// How the frames are turned or mirrored for display (the stream's display matrix).
    pub fn orientation(&self) -> Orientation {
        self.orientation
    }

    /// Frames decoded so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Packets the decoder refused (and skipped) so far.
    pub fn decode_errors(&self) -> u64 {
        self.decode_errors
    }

    /// Decodes the next frame into `gray` (8-bit, as a viewer sees it: [`orient`]).
    /// `Ok(false)` at the end of the stream: the end of the data, or [`MAX_FAILED_READS`]
    /// failed reads in a row, once the decoder's held frames are drained.
    pub fn next_gray(&mut self, gray: &mut Mat) -> Result<bool> {
        if !self.next_frame()? {
            return Ok(false);
        }
        self.accept(gray)?;
        Ok(true)
    }

    /// Receives the next decoded frame into `self.frame`, feeding packets as the decoder asks.
    fn next_frame(&mut self) -> Result<bool> {
        loop {
            if self.state == State::Done {
                return Ok(false);
            }
            match self.dec.receive_frame(&mut self.frame) {
                Ok(()) => {
                    self.failures_in_a_row = 0;
                    return Ok(true);
                }
                Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => {
                    self.feed()?;
                }
                Err(ff::Error::Eof) => self.state = State::Done,
                Err(_) => self.failed()?,
            }
        }
    }

    /// Sends the next packet of the video stream (or the end of the stream) to the decoder.
    fn feed(&mut self) -> Result<()> {
        if self.state == State::Draining {
            // Nothing more will come: a decoder asking for input after the end is done.
            self.state = State::Done;
            return Ok(());
        }
        let mut pkt = ff::Packet::empty();
        while self.state == State::Feeding {
            match pkt.read(&mut self.input.ctx) {
                Ok(()) if pkt.stream() != self.stream => {}
                Ok(()) => match self.dec.send_packet(&pkt) {
                    Ok(()) => return Ok(()),
                    Err(_) => self.failed()?,
                },
                Err(ff::Error::Eof) => self.end_of_reading(),
                Err(_) => self.failed()?,
            }
        }
        Ok(())
    }

    /// A failed read: counted; a frame size over the limit is the reason when the decoder's
    /// new header says so; [`MAX_FAILED_READS`] in a row end the stream.
    fn failed(&mut self) -> Result<()> {
        self.decode_errors += 1;
        self.failures_in_a_row += 1;
        let (w, h) = input::current_size(&self.dec);
        if u64::from(w) * u64::from(h) > self.max_pixels {
            return Err(frame_too_large(w.into(), h.into(), self.max_pixels));
        }
        if self.failures_in_a_row >= MAX_FAILED_READS {
            self.end_of_reading();
        }
        Ok(())
    }

    /// Reading has ended (the end of the data, or [`MAX_FAILED_READS`] failures in a row): the
    /// frames the decoder still holds are frames of the video (spec §1), so it is drained;
    /// a decoder already draining is done.
    fn end_of_reading(&mut self) {
        self.failures_in_a_row = 0;
        self.state = match self.state {
            State::Feeding => match self.dec.send_eof() {
                Ok(()) => State::Draining,
                Err(ff::Error::Eof) => State::Done,
                // The end of input is taken even when the call reports an earlier packet's
                // failure (a cut file's last, partial packet): that failure is counted, and the
                // frames still held are drained all the same.
                Err(_) => {
                    self.decode_errors += 1;
                    State::Draining
                }
            },
            _ => State::Done,
        };
    }

    /// Checks the limits on the frame just decoded and converts it to gray.
    fn accept(&mut self, gray: &mut Mat) -> Result<()> {
        let (w, h) = (self.frame.width(), self.frame.height());
        self.frames += 1;
        let px = u64::from(w) * u64::from(h);
        if px > self.max_pixels {
            return Err(frame_too_large(w.into(), h.into(), self.max_pixels));
        }
        match self.size {
            None => self.size = Some((w, h)),
            Some(s) if s != (w, h) => {
                return Err(Error::invalid_video(
                    "the frame size changes within the video",
                ))
            }
            Some(_) => {}
        }
        // The size is the same on every frame, so frames × px is the pixels decoded so far.
        if let Some(l) = Limit::ALL
            .into_iter()
            .find(|&l| self.frames > self.frames_allowed(l, px))
        {
            return Err(self.refusal(l));
        }
        self.convert_gray(w, h, gray)
            .map_err(|_| Error::invalid_video("a video frame cannot be converted"))
    }

    fn convert_gray(&mut self, w: u32, h: u32, gray: &mut Mat) -> Result<(), ConvertError> {
        let format = self.frame.format();
        if !matches!(&self.conv, Some((f, _)) if *f == format) {
            self.conv = Some((format, Converter::new(format, w, h)?));
        }
        let Some((_, conv)) = self.conv.as_mut() else {
            return Err(ConvertError);
        };
        conv.run(&self.frame)?;
        let (rows, cols) = (h as i32, w as i32);
        if self.bgr.rows() != rows || self.bgr.cols() != cols {
            self.bgr = Mat::new_rows_cols_with_default(rows, cols, CV_8UC3, Scalar::all(0.0))?;
        }
        let row_bytes = w as usize * 3;
        let stride = conv.bgr.stride(0);
        let src = conv.bgr.data(0);
        let dst = self.bgr.data_bytes_mut()?;
        for (y, out) in dst.chunks_exact_mut(row_bytes).enumerate() {
            out.copy_from_slice(&src[y * stride..y * stride + row_bytes]);
        }
        if self.orientation == Orientation::Upright {
            imgproc::cvt_color_def(&self.bgr, gray, imgproc::COLOR_BGR2GRAY)?;
        } else {
            imgproc::cvt_color_def(&self.bgr, &mut self.unrotated, imgproc::COLOR_BGR2GRAY)?;
            self.orientation
                .apply(&self.unrotated, gray, &mut self.scratch)?;
        }
        Ok(())
    }
}

/// Any failure of the gray conversion (reported as one `invalid_video` sentence).
struct ConvertError;

impl From<Error> for ConvertError {
    fn from(_: Error) -> Self {
        ConvertError
    }
}

impl From<opencv::Error> for ConvertError {
    fn from(_: opencv::Error) -> Self {
        ConvertError
    }
}

/// What the stream's display matrix asks a player to show (spec §1; [`orient`]).
fn orientation(s: &ff::format::stream::Stream<'_>) -> Orientation {
    s.side_data()
        .find(|d| d.kind() == ff::codec::packet::side_data::Type::DisplayMatrix)
        .and_then(|d| input::display_matrix(d.data()))
        .map_or(Orientation::Upright, |m| Orientation::from_matrix(&m))
}

/// Opens `source` and counts its decodable frames under the spec's read rule, without the
/// length, size and work limits (the count `ffprobe -count_frames` gives; for tests and
/// tools). Frames are not converted.
pub fn count_frames(source: VideoSource<'_>) -> Result<u64> {
    let params = SpecParams {
        max_seconds: 600.0,
        max_pixels: MAX_PIXELS,
        max_decoded_pixels: u64::MAX,
        max_frame_rate: f64::INFINITY,
        ..SpecParams::default()
    };
    let mut d = Decoder::open(source, &params)?;
    while d.next_frame()? {
        d.frames += 1;
    }
    Ok(d.frames)
}

/// The frames of `source` as the pipeline sees them (gray, upright), reduced to a count and
/// a 64-bit FNV-1a digest of their sizes and bytes, in order, under `params`' limits. Two
/// builds that decode a file to the same bytes give the same digest: the release tests hold
/// the portable build (its own FFmpeg and OpenCV) to the development build with it.
pub fn frame_digest(source: VideoSource<'_>, params: &SpecParams) -> Result<(u64, u64)> {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            hash = (hash ^ u64::from(*b)).wrapping_mul(PRIME);
        }
    };
    let mut d = Decoder::open(source, params)?;
    let mut gray = Mat::default();
    let mut n = 0;
    while d.next_gray(&mut gray)? {
        n += 1;
        let size = gray
            .size()
            .map_err(|_| Error::internal("a frame has no size"))?;
        eat(&size.width.to_le_bytes());
        eat(&size.height.to_le_bytes());
        // A converted frame is one continuous block (OpenCV allocates it so).
        eat(gray
            .data_bytes()
            .map_err(|_| Error::internal("a frame is not continuous"))?);
    }
    Ok((n, hash))
}

fn too_long(max_seconds: f64) -> Error {
    Error::new(
        ErrorCode::VideoTooLong,
        format!("the video is longer than the limit of {max_seconds:.1} s"),
    )
}

fn frame_too_large(w: u64, h: u64, max_pixels: u64) -> Error {
    Error::new(
        ErrorCode::FrameTooLarge,
        format!("frames of {w}×{h} pixels exceed the limit of {max_pixels} pixels"),
    )
}
