//! Opening an upload with libavformat, safely: the bytes come through our own I/O callbacks
//! (from memory or an open file), never through a URL, and only demuxers of self-contained
//! container formats are allowed.
//!
//! Why this shape: a playlist or manifest (HLS, DASH, concat, an image sequence) makes a
//! demuxer open further files or URLs named inside the upload, so a hostile body could make
//! the server decode its own files. Here the demuxer is chosen by libavformat's probe of the
//! bytes alone (no file name is given, so no extension or Content-Type can steer it) and must be
//! on [`ALLOWED_DEMUXERS`]; nested opens have an empty protocol whitelist, so they fail even if a
//! demuxer tried. Every refusal is the same `invalid_video` sentence, so no answer tells whether
//! some server path exists.
//!
//! Opening is also where a hostile header costs most, so it is bounded here (see
//! ARCHITECTURE.md, "Opening costs what the request allows"): the first video stream alone is
//! probed, within the request's `max_pixels`; at most [`MAX_STREAMS`] streams; an MP4's claims
//! checked first ([`super::isobmff`]); every FFmpeg allocation capped ([`MAX_ALLOC`]).
//!
//! libavformat's custom I/O needs raw callbacks and a context the safe `ffmpeg-next` API does
//! not build, hence the `unsafe` blocks; each says why it is sound.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_void, CStr, CString};
use std::fs::File;
use std::io::{Cursor, Read, Seek, SeekFrom};
use std::path::Path;
use std::ptr;

use ff::ffi;
use ffmpeg_next as ff;

use super::isobmff;
use crate::error::{Error, Result};

/// Demuxers of container formats that carry their media inside the file. Everything that can
/// refer to other files or URLs (hls, dash, concat, image2, mov's external data references stay
/// off by default, sdp, rtsp, tee, …) is absent. Names as libavformat's probe reports them.
pub const ALLOWED_DEMUXERS: &str =
    "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpegts,flv,ogg,asf,mpeg,h264,hevc";

/// What the linked FFmpeg can demux and decode, by FFmpeg's names, sorted: the release build's
/// own FFmpeg holds only the allow-listed demuxers and the chosen decoders
/// (scripts/portable/ffmpeg.sh), a system FFmpeg everything it was built with.
pub fn ffmpeg_capabilities() -> (Vec<String>, Vec<String>) {
    let name = |p: *const std::os::raw::c_char| {
        // SAFETY: FFmpeg's format and codec names are static NUL-terminated strings.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    };
    let mut demuxers = Vec::new();
    let mut opaque = std::ptr::null_mut();
    loop {
        // SAFETY: av_demuxer_iterate walks FFmpeg's static list with our opaque cursor.
        let f = unsafe { ffi::av_demuxer_iterate(&mut opaque) };
        if f.is_null() {
            break;
        }
        // SAFETY: `f` is a static AVInputFormat of that list.
        demuxers.push(name(unsafe { (*f).name }));
    }
    let mut decoders = Vec::new();
    let mut opaque = std::ptr::null_mut();
    loop {
        // SAFETY: as above, over the codec list.
        let c = unsafe { ffi::av_codec_iterate(&mut opaque) };
        if c.is_null() {
            break;
        }
        // SAFETY: `c` is a static AVCodec of that list.
        if unsafe { ffi::av_codec_is_decoder(c) } != 0
            && unsafe { (*c).type_ } == ffi::AVMediaType::AVMEDIA_TYPE_VIDEO
        {
            decoders.push(name(unsafe { (*c).name }));
        }
    }
    demuxers.sort();
    decoders.sort();
    (demuxers, decoders)
}

/// Streams a file may hold (libavformat's `max_streams`; a demuxer fails to open a file with
/// more). Every stream's decoder is opened while the stream information is read, at about a
/// megabyte each whether discarded or not, so a file of hundreds of tracks would cost hundreds
/// of megabytes. Phones write up to seven (video, audio and metadata tracks).
pub const MAX_STREAMS: usize = 16;

/// Size of the buffer libavformat reads through.
const IO_BUFFER: usize = 64 * 1024;

/// Where the bytes of a video come from.
#[derive(Debug, Clone, Copy)]
pub enum VideoSource<'a> {
    /// A file on disk (an upload already written by the caller, or the CLI's input).
    Path(&'a Path),
    /// The video's bytes in memory.
    Bytes(&'a [u8]),
}

/// The reader behind the callbacks: memory or an open file.
enum Reader<'a> {
    Bytes(Cursor<&'a [u8]>),
    File(File),
}

impl Reader<'_> {
    fn inner(&mut self) -> &mut dyn ReadSeek {
        match self {
            Reader::Bytes(c) => c,
            Reader::File(f) => f,
        }
    }
}

trait ReadSeek: Read + Seek {}
impl<T: Read + Seek> ReadSeek for T {}

/// The sentence of every refusal at open: the same whatever the cause.
pub(crate) fn unreadable() -> Error {
    Error::invalid_video("the upload is not a readable video")
}

/// An opened upload: the demuxer context, then the I/O context it reads through (fields drop
/// in this order: the demuxer must be closed before its I/O goes away).
pub struct OpenInput<'a> {
    /// The demuxer, with stream information read.
    pub ctx: ff::format::context::Input,
    /// The index of the stream decoded: the first video stream (all others are discarded).
    pub video: usize,
    /// Its frame size as the stream information gives it (the container's when the probe
    /// could not decode a frame within `max_pixels`); `(0, 0)` when nothing says.
    pub declared: (u32, u32),
    _io: Io<'a>,
}

/// Owns the AVIOContext (and the buffer libavformat may have replaced) and the boxed reader
/// its `opaque` pointer points at.
struct Io<'a> {
    avio: *mut ffi::AVIOContext,
    /// From Box::into_raw; only the callbacks touch it until Drop takes it back.
    reader: *mut Reader<'a>,
}

impl Drop for Io<'_> {
    fn drop(&mut self) {
        // SAFETY: `avio` came from avio_alloc_context and is freed once, here, after the
        // demuxer that used it was closed (field order of OpenInput). Its buffer is the one
        // libavformat holds now (it may have reallocated the one we gave).
        unsafe {
            if !self.avio.is_null() {
                ffi::av_freep(ptr::addr_of_mut!((*self.avio).buffer).cast());
                ffi::avio_context_free(&mut self.avio);
            }
            drop(Box::from_raw(self.reader));
        }
    }
}

unsafe extern "C" fn read_cb(opaque: *mut c_void, buf: *mut u8, size: c_int) -> c_int {
    // SAFETY: `opaque` is the Reader owned (Box::into_raw) by the Io that outlives the demuxer; `buf`
    // has room for `size` bytes (libavformat's contract). Only one thread uses a context.
    let reader = unsafe { &mut *opaque.cast::<Reader<'_>>() };
    let Ok(len) = usize::try_from(size) else {
        return ffi::AVERROR(ffi::EINVAL);
    };
    let out = unsafe { std::slice::from_raw_parts_mut(buf, len) };
    match reader.inner().read(out) {
        Ok(0) => ffi::AVERROR_EOF,
        Ok(n) => n as c_int,
        Err(_) => ffi::AVERROR(ffi::EIO),
    }
}

unsafe extern "C" fn seek_cb(opaque: *mut c_void, offset: i64, whence: c_int) -> i64 {
    // SAFETY: as in read_cb.
    let reader = unsafe { &mut *opaque.cast::<Reader<'_>>() };
    let r = reader.inner();
    if whence & ffi::AVSEEK_SIZE != 0 {
        let Ok(here) = r.stream_position() else {
            return -1;
        };
        let end = r.seek(SeekFrom::End(0));
        let _ = r.seek(SeekFrom::Start(here));
        return end.map_or(-1, |n| n as i64);
    }
    let to = match whence & !ffi::AVSEEK_FORCE {
        0 => u64::try_from(offset).ok().map(SeekFrom::Start),
        1 => Some(SeekFrom::Current(offset)),
        2 => Some(SeekFrom::End(offset)),
        _ => None,
    };
    match to.map(|to| r.seek(to)) {
        Some(Ok(pos)) => pos as i64,
        _ => i64::from(ffi::AVERROR(ffi::EINVAL)),
    }
}

/// FFmpeg's own log goes nowhere: callers get stable codes, and the service's log stream
/// stays JSON (a hostile file could otherwise write lines into it). Set at every open, since
/// OpenCV's FFmpeg backend, when something in the process uses it, raises the level again.
pub(crate) fn silence_ffmpeg() {
    ff::util::log::set_level(ff::util::log::Level::Quiet);
}

/// The largest single allocation FFmpeg's libraries may make in this process
/// (`av_max_alloc`; FFmpeg's default is 2 GB). A demuxer that believes a header allocates what
/// it claims: this bounds each such allocation whatever the container says, as a backstop;
/// what comes in numbers is bounded where it is claimed (streams by [`MAX_STREAMS`], index
/// entries by [`isobmff`]). The largest honest allocations are a converted BGR24 frame of
/// `max_pixels` (3 × 4096 × 4096 bytes, which is why `max_pixels` stops there) and the FFV1
/// encoder's packet for the test clips (`synth`, 640 × 480: 45 MB).
pub const MAX_ALLOC: usize = 64 << 20;

/// Sets [`MAX_ALLOC`] once per process, before the first file is opened.
fn cap_allocations() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: av_max_alloc stores one size_t that av_malloc and av_realloc read; it is set
    // once, before any allocation this process makes through the libraries depends on it.
    ONCE.call_once(|| unsafe { ffi::av_max_alloc(MAX_ALLOC) });
}

/// Opens `source`, probes its bytes, refuses demuxers off the allow-list, and reads the
/// stream information of its first video stream only: every other stream is discarded before
/// the probe, whose decoder is bounded by `max_pixels` (the request's own limit), so neither
/// the number of tracks nor their claimed frame size decides what opening costs.
pub fn open(source: VideoSource<'_>, max_pixels: u64) -> Result<OpenInput<'_>> {
    silence_ffmpeg();
    cap_allocations();
    let mut reader = match source {
        VideoSource::Bytes(b) => Reader::Bytes(Cursor::new(b)),
        VideoSource::Path(p) => Reader::File(File::open(p).map_err(|_| unreadable())?),
    };
    isobmff::check(reader.inner()).map_err(|_| unreadable())?;
    let reader = Box::into_raw(Box::new(reader));
    let mut io = Io {
        avio: ptr::null_mut(),
        reader,
    };
    let fail = |_| Error::internal("the video reader cannot be set up");
    let whitelist = CString::new(ALLOWED_DEMUXERS).map_err(fail)?;
    let none = CString::new("none").map_err(fail)?;
    let empty = CString::new("").map_err(fail)?;
    // SAFETY: plain libav* allocation and open calls with valid arguments. The reader box
    // has a stable address for as long as `io` lives, which outlives the demuxer. On every
    // failure path the objects allocated so far are freed exactly once: `io` by its Drop,
    // the format context by avformat_open_input itself (it frees it on failure) or by
    // avformat_close_input below.
    unsafe {
        let buf = ffi::av_malloc(IO_BUFFER).cast::<u8>();
        if buf.is_null() {
            return Err(Error::internal("out of memory"));
        }
        let opaque = io.reader.cast::<c_void>();
        io.avio = ffi::avio_alloc_context(
            buf,
            IO_BUFFER as c_int,
            0,
            opaque,
            Some(read_cb),
            None,
            Some(seek_cb),
        );
        if io.avio.is_null() {
            ffi::av_free(buf.cast());
            return Err(Error::internal("out of memory"));
        }
        let mut ctx = ffi::avformat_alloc_context();
        if ctx.is_null() {
            return Err(Error::internal("out of memory"));
        }
        (*ctx).pb = io.avio;
        (*ctx).flags |= ffi::AVFMT_FLAG_CUSTOM_IO as c_int;
        let mut opts: *mut ffi::AVDictionary = ptr::null_mut();
        ffi::av_dict_set(
            &mut opts,
            c"format_whitelist".as_ptr(),
            whitelist.as_ptr(),
            0,
        );
        ffi::av_dict_set(&mut opts, c"protocol_whitelist".as_ptr(), none.as_ptr(), 0);
        ffi::av_dict_set_int(&mut opts, c"max_streams".as_ptr(), MAX_STREAMS as i64, 0);
        let ret = ffi::avformat_open_input(&mut ctx, empty.as_ptr(), ptr::null(), &mut opts);
        ffi::av_dict_free(&mut opts);
        if ret < 0 {
            return Err(unreadable());
        }
        let input = ff::format::context::Input::wrap(ctx);
        // Only the first video stream is read: the others' packets are dropped by the demuxer,
        // so the probe opens no decoder for them and decodes none of their frames. (Streams a
        // demuxer only finds while probing, as in MPEG-TS, are discarded right after it.)
        let video = keep_first_video_only(ctx);
        // The container's frame size, before the probe: a decoder refusing frames over
        // `max_pixels` clears the size the probe then writes back, and the header check
        // still needs it to say `frame_too_large`.
        let header_size = video.map(|v| codecpar_size(*(*ctx).streams.add(v)));
        // The probe decodes a few frames: bound their size like every later frame.
        let n = (*ctx).nb_streams as usize;
        let limit = CString::new(max_pixels.to_string()).map_err(fail)?;
        let mut per_stream: Vec<*mut ffi::AVDictionary> = vec![ptr::null_mut(); n];
        for d in &mut per_stream {
            ffi::av_dict_set(d, c"max_pixels".as_ptr(), limit.as_ptr(), 0);
        }
        let ret = ffi::avformat_find_stream_info(ctx, per_stream.as_mut_ptr());
        for d in &mut per_stream {
            ffi::av_dict_free(d);
        }
        if ret < 0 {
            return Err(unreadable());
        }
        let video = match video {
            Some(v) => v,
            None => keep_first_video_only(ctx)
                .ok_or_else(|| Error::invalid_video("the upload has no video stream"))?,
        };
        let probed = codecpar_size(*(*ctx).streams.add(video));
        let declared = match (probed, header_size) {
            ((0, _) | (_, 0), Some(h)) => h,
            _ => probed,
        };
        Ok(OpenInput {
            ctx: input,
            video,
            declared,
            _io: io,
        })
    }
}

/// The first video stream's index, every other stream marked `AVDISCARD_ALL`; `None` (and
/// nothing marked) when no stream is known to be video yet.
///
/// # Safety
/// `ctx` is an open format context.
unsafe fn keep_first_video_only(ctx: *mut ffi::AVFormatContext) -> Option<usize> {
    // SAFETY: the caller's context holds `nb_streams` valid stream pointers, each with its
    // codec parameters.
    unsafe {
        let n = (*ctx).nb_streams as usize;
        if n == 0 || (*ctx).streams.is_null() {
            return None;
        }
        let streams = std::slice::from_raw_parts((*ctx).streams, n);
        let video = streams
            .iter()
            .position(|&s| (*(*s).codecpar).codec_type == ffi::AVMediaType::AVMEDIA_TYPE_VIDEO)?;
        for (i, &s) in streams.iter().enumerate() {
            if i != video {
                (*s).discard = ffi::AVDiscard::AVDISCARD_ALL;
            }
        }
        Some(video)
    }
}

/// The frame size a stream's codec parameters declare.
///
/// # Safety
/// `st` is a live stream of an open format context.
unsafe fn codecpar_size(st: *const ffi::AVStream) -> (u32, u32) {
    // SAFETY: the caller's stream has codec parameters; two ints are read.
    unsafe {
        let c = (*st).codecpar;
        ((*c).width.max(0) as u32, (*c).height.max(0) as u32)
    }
}

/// The decoder's current frame size: a decoder updates it from a new sequence header before
/// it refuses a frame over its pixel bound, so after a failure it tells why.
pub fn current_size(dec: &ff::decoder::Video) -> (u32, u32) {
    // SAFETY: reading two ints of a live, opened codec context.
    unsafe {
        let c = dec.as_ptr();
        ((*c).width.max(0) as u32, (*c).height.max(0) as u32)
    }
}

/// Sets the decoder's thread count and its per-frame pixel bound before it is opened.
pub fn configure_decoder(ctx: &mut ff::codec::Context, threads: usize, max_pixels: u64) {
    // SAFETY: writing two plain fields of a codec context that is not opened yet.
    unsafe {
        let c = ctx.as_mut_ptr();
        (*c).thread_count = threads.min(16) as c_int;
        (*c).max_pixels = max_pixels.min(i64::MAX as u64) as i64;
    }
}

/// The nine 32-bit values of a display matrix (side data in native byte order), or `None` when
/// the side data is too short to hold them.
pub fn display_matrix(side_data: &[u8]) -> Option<[i32; 9]> {
    let mut m = [0i32; 9];
    if side_data.len() < 36 {
        return None;
    }
    for (v, c) in m.iter_mut().zip(side_data.chunks_exact(4)) {
        *v = i32::from_ne_bytes([c[0], c[1], c[2], c[3]]);
    }
    Some(m)
}

/// The counter-clockwise rotation in degrees a display matrix applies (libavutil's
/// `av_display_rotation_get`), or `None` for a degenerate matrix.
pub fn display_rotation(m: &[i32; 9]) -> Option<f64> {
    // SAFETY: `m` holds the nine 32-bit values av_display_rotation_get reads.
    let r = unsafe { ffi::av_display_rotation_get(m.as_ptr()) };
    r.is_finite().then_some(r)
}

/// BGR24 conversion as OpenCV's FFmpeg backend does it: a bicubic swscale context (an
/// unscaled conversion) into a frame allocated with 32-byte alignment. OpenCV runs it over the
/// codec's coded size (e.g. 1088 rows for 1080p H.264); here it runs over the frame's own
/// size, so no plane is ever read past what the decoder guarantees, even when a hostile
/// stream changes its headers between frames. The visible pixels are the same bytes (the
/// decode tests compare every fixture frame with OpenCV's).
pub struct Converter {
    sws: ff::software::scaling::Context,
    /// The BGR24 output.
    pub bgr: ff::frame::Video,
}

impl Converter {
    /// A converter for frames of `format` at `w × h`.
    pub fn new(format: ff::format::Pixel, w: u32, h: u32) -> Result<Converter> {
        let sws = ff::software::scaling::Context::get(
            format,
            w,
            h,
            ff::format::Pixel::BGR24,
            w,
            h,
            ff::software::scaling::Flags::BICUBIC,
        )
        .map_err(|_| Error::invalid_video("a video frame has an unsupported pixel format"))?;
        Ok(Converter {
            sws,
            bgr: ff::frame::Video::new(ff::format::Pixel::BGR24, w, h),
        })
    }

    /// Converts `frame` into `self.bgr`; fails when its format or size is not this
    /// converter's.
    pub fn run(&mut self, frame: &ff::frame::Video) -> Result<()> {
        self.sws
            .run(frame, &mut self.bgr)
            .map_err(|_| Error::invalid_video("a video frame cannot be converted"))
    }
}
