//! A check of ISO base media files (MP4, MOV, 3GP) before libavformat opens them: the index
//! entries their tables would make libavformat write, summed over every track and fragment,
//! must stay under [`MAX_INDEX_ENTRIES`].
//!
//! Why: while it opens a file, libavformat's mov demuxer writes an index entry (24 bytes, and 8
//! more for a fragment's composition offsets) for every sample a track claims, before any frame
//! is decoded, so no decoding limit applies. Most claims cost the file bytes (one table entry per
//! sample), but three cost nothing: `stsz` with a constant sample size (a count), a fragment's
//! `trun` whose samples take size and duration from defaults (a count), and the samples per chunk
//! of uncompressed sound (`stsc`). An 84-byte table of the first kind claiming 80 million samples
//! cost 1.9 GB and 5 s at open; the second kind, 5 GB. Here those claims are read from a few box
//! headers (microseconds), and no honest clip comes near the bound: 10.5 s at 120 fps is 1260
//! video samples; an hour at 60 fps with its audio is under 400,000.
//!
//! Only what the index costs is counted; everything else about the file is libavformat's to
//! judge. A file that is not an ISO box structure passes untouched.

use std::io::{Read, Seek, SeekFrom};

/// Index entries the whole file may claim: 2²⁰ entries cost at most ~32 MB while opening.
pub const MAX_INDEX_ENTRIES: u64 = 1 << 20;

/// Boxes read before the check refuses: an honest clip has a few hundred (a fragmented one a
/// few per frame); a file of millions of empty boxes would make the check itself the cost.
const MAX_BOXES: usize = 100_000;

/// Nesting followed: the sample tables sit at depth 5 (`moov/trak/mdia/minf/stbl`).
const MAX_DEPTH: usize = 6;

/// `stsc` entries read for uncompressed sound (honest files have one or two).
const MAX_STSC_ENTRIES: u32 = 65_536;

/// The fewest sound samples one index entry of uncompressed sound covers in libavformat's
/// chunk index (GSM's 160-sample frames; PCM gets one entry per 1024 samples).
const MIN_SAMPLES_PER_ENTRY: u64 = 160;

/// Why the file is refused (the caller turns it into its one `invalid_video` sentence).
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The tables claim more than [`MAX_INDEX_ENTRIES`] index entries.
    TooManySamples(u64),
    /// More than [`MAX_BOXES`] boxes, a compressed movie header (`cmov`, whose tables cannot be
    /// read before inflating it), or an `stsc` too long to read.
    Unchecked,
}

/// What one track's tables claim.
#[derive(Default)]
struct Track {
    sound: bool,
    /// `stts` is one run of samples lasting one tick each: uncompressed sound's chunk index.
    one_tick: bool,
    samples: u64,
    chunks: u64,
    max_samples_per_chunk: u64,
}

impl Track {
    /// Index entries libavformat writes for this track.
    fn entries(&self) -> u64 {
        if self.sound && self.one_tick {
            self.chunks
                .saturating_mul(self.max_samples_per_chunk.div_ceil(MIN_SAMPLES_PER_ENTRY))
        } else {
            self.samples
        }
    }
}

struct Walk<'r, R: ?Sized> {
    r: &'r mut R,
    boxes: usize,
    entries: u64,
    track: Track,
}

/// Checks the box structure at the start of `r` (then rewound to its start). `Ok` for a file that
/// is not an ISO box structure, or one that ends early (libavformat judges those).
pub fn check<R: Read + Seek + ?Sized>(r: &mut R) -> Result<(), Refusal> {
    let end = r.seek(SeekFrom::End(0)).unwrap_or(0);
    let mut w = Walk {
        r,
        boxes: 0,
        entries: 0,
        track: Track::default(),
    };
    let result = w.walk(0, end, 0);
    let _ = w.r.seek(SeekFrom::Start(0));
    result?;
    if w.entries > MAX_INDEX_ENTRIES {
        return Err(Refusal::TooManySamples(w.entries));
    }
    Ok(())
}

impl<R: Read + Seek + ?Sized> Walk<'_, R> {
    fn read_at(&mut self, at: u64, buf: &mut [u8]) -> bool {
        self.r.seek(SeekFrom::Start(at)).is_ok() && self.r.read_exact(buf).is_ok()
    }

    fn u32_at(&mut self, at: u64) -> Option<u32> {
        let mut b = [0u8; 4];
        self.read_at(at, &mut b).then(|| u32::from_be_bytes(b))
    }

    fn walk(&mut self, mut at: u64, end: u64, depth: usize) -> Result<(), Refusal> {
        while at + 8 <= end {
            let mut head = [0u8; 8];
            if !self.read_at(at, &mut head) {
                return Ok(());
            }
            let kind: [u8; 4] = [head[4], head[5], head[6], head[7]];
            // A structure that is not boxes (the first one at least must be printable).
            if depth == 0 && at == 0 && !kind.iter().all(|c| c.is_ascii_graphic() || *c == b' ') {
                return Ok(());
            }
            let (size, header) = match u32::from_be_bytes([head[0], head[1], head[2], head[3]]) {
                0 => (end - at, 8),
                1 => {
                    let mut large = [0u8; 8];
                    if !self.read_at(at + 8, &mut large) {
                        return Ok(());
                    }
                    (u64::from_be_bytes(large), 16)
                }
                n => (u64::from(n), 8),
            };
            if size < header {
                return Ok(());
            }
            self.boxes += 1;
            if self.boxes > MAX_BOXES {
                return Err(Refusal::Unchecked);
            }
            let body = at + header;
            let box_end = at.saturating_add(size).min(end);
            self.leaf_or_container(&kind, body, box_end, depth)?;
            at = at.saturating_add(size);
        }
        Ok(())
    }

    fn leaf_or_container(
        &mut self,
        kind: &[u8; 4],
        body: u64,
        end: u64,
        depth: usize,
    ) -> Result<(), Refusal> {
        match kind {
            b"cmov" => return Err(Refusal::Unchecked),
            b"trak" => {
                self.track = Track::default();
                if depth < MAX_DEPTH {
                    self.walk(body, end, depth + 1)?;
                }
                self.entries = self.entries.saturating_add(self.track.entries());
            }
            b"moov" | b"mdia" | b"minf" | b"stbl" | b"moof" | b"traf" if depth < MAX_DEPTH => {
                self.walk(body, end, depth + 1)?;
            }
            // Full boxes: version and flags first.
            b"hdlr" => {
                let mut b = [0u8; 4];
                self.track.sound = self.read_at(body + 8, &mut b) && &b == b"soun";
            }
            b"stts" => {
                let one_run = self.u32_at(body + 4) == Some(1);
                self.track.one_tick = one_run && self.u32_at(body + 12) == Some(1);
            }
            b"stsz" | b"stz2" => {
                self.track.samples = self.u32_at(body + 8).map_or(0, u64::from);
            }
            b"stco" | b"co64" => {
                self.track.chunks = self.u32_at(body + 4).map_or(0, u64::from);
            }
            b"stsc" => {
                let n = self.u32_at(body + 4).unwrap_or(0);
                if n > MAX_STSC_ENTRIES {
                    return Err(Refusal::Unchecked);
                }
                let mut most = 0u64;
                for i in 0..u64::from(n) {
                    // first chunk, samples per chunk, description: 12 bytes each.
                    match self.u32_at(body + 8 + i * 12 + 4) {
                        Some(c) => most = most.max(u64::from(c)),
                        None => break,
                    }
                }
                self.track.max_samples_per_chunk = most;
            }
            b"trun" => {
                let n = self.u32_at(body + 4).map_or(0, u64::from);
                self.entries = self.entries.saturating_add(n);
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(body);
        v
    }

    fn words(w: &[u32]) -> Vec<u8> {
        w.iter().flat_map(|x| x.to_be_bytes()).collect()
    }

    fn movie(handler: &[u8; 4], stts: &[u32], stsz_count: u32, chunks: u32, spc: u32) -> Vec<u8> {
        let mut hdlr = words(&[0, 0]);
        hdlr.extend_from_slice(handler);
        hdlr.extend_from_slice(&[0; 12]);
        let stbl = [
            bx(b"stts", &words(stts)),
            bx(b"stsc", &words(&[0, 1, 1, spc, 1])),
            bx(b"stsz", &words(&[0, 1, stsz_count])),
            bx(b"stco", &words(&[0, chunks])),
        ]
        .concat();
        let minf = bx(b"minf", &bx(b"stbl", &stbl));
        let mdia = bx(b"mdia", &[bx(b"hdlr", &hdlr), minf].concat());
        [
            bx(b"ftyp", b"isom\0\0\0\0"),
            bx(b"moov", &bx(b"trak", &mdia)),
        ]
        .concat()
    }

    fn run(bytes: Vec<u8>) -> Result<(), Refusal> {
        let mut c = Cursor::new(bytes);
        let r = check(&mut c);
        assert_eq!(c.position(), 0, "rewound");
        r
    }

    #[test]
    fn counts_constant_size_samples() {
        assert_eq!(run(movie(b"vide", &[0, 1, 300, 512], 300, 1, 300)), Ok(()));
        assert_eq!(
            run(movie(
                b"vide",
                &[0, 1, 80_000_000, 512],
                80_000_000,
                1,
                80_000_000
            )),
            Err(Refusal::TooManySamples(80_000_000))
        );
    }

    #[test]
    fn uncompressed_sound_counts_chunks_by_their_samples() {
        // 48 kHz for 10 s in 10 chunks: a handful of entries, though 480,000 samples.
        assert_eq!(
            run(movie(b"soun", &[0, 1, 480_000, 1], 480_000, 10, 48_000)),
            Ok(())
        );
        // One chunk claiming 4 × 10⁹ samples: millions of entries from a 12-byte stsc entry.
        assert!(matches!(
            run(movie(b"soun", &[0, 1, 1, 1], 1, 1, 4_000_000_000)),
            Err(Refusal::TooManySamples(_))
        ));
        // The same counts on video follow the sample count.
        assert_eq!(
            run(movie(b"vide", &[0, 1, 480_000, 1], 480_000, 10, 48_000)),
            Ok(())
        );
    }

    #[test]
    fn fragments_add_up() {
        let trun = |n: u32| bx(b"moof", &bx(b"traf", &bx(b"trun", &words(&[1, n, 0]))));
        let mut f = movie(b"vide", &[0, 0], 0, 0, 0);
        for _ in 0..3 {
            f.extend(trun(400_000));
        }
        assert_eq!(run(f.clone()), Err(Refusal::TooManySamples(1_200_000)));
        let mut g = movie(b"vide", &[0, 0], 0, 0, 0);
        g.extend(trun(1000));
        assert_eq!(run(g), Ok(()));
    }

    #[test]
    fn other_structures_pass_and_compressed_headers_do_not() {
        assert_eq!(run(b"\x1aE\xdf\xa3 matroska".to_vec()), Ok(()));
        assert_eq!(run(Vec::new()), Ok(()));
        assert_eq!(
            run(bx(b"moov", &bx(b"cmov", &[0; 8]))),
            Err(Refusal::Unchecked)
        );
        let many: Vec<u8> = (0..=MAX_BOXES).flat_map(|_| bx(b"free", &[])).collect();
        assert_eq!(run(many), Err(Refusal::Unchecked));
    }
}
