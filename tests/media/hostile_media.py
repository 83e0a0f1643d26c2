#!/usr/bin/env python3
"""Hostile media for the hardening tests: small uploads whose headers claim far more than their
bytes hold. Standard library only, so the Rust and the service's test suites both run it with
the system's python3 (ffmpeg makes the honest clips these start from).

Why rewrite real files instead of writing boxes from nothing: the demuxer must accept every
other box as it would a camera's file, so the only lie is the one under test.

    hostile_media.py sample-table IN.mp4 OUT.mp4 --samples N   (stsz: N samples of 1 byte, one chunk)
    hostile_media.py ctts-claim IN.mp4 OUT.mp4 --entries N      (ctts: N entries claimed, none present)
    hostile_media.py trun IN_FRAGMENTED.mp4 OUT.mp4 --samples N (a fragment claiming N defaulted samples)
    hostile_media.py cost-set DIR [--tracks 16,100] [--samples N] [--fast mp4,mkv,h264]

`cost-set` makes, with ffmpeg, the whole set of small uploads that cost gigabytes or seconds
before the hardening, and prints it as JSON (what each is, its file, the code it must get).
The core's test (hostile_cost.rs), the service's (hostile.test.ts) and `make bench --hostile`
all take their media from it, so the three measure the same files.
"""
import argparse
import json
import os
import struct
import subprocess

CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"moof", b"traf", b"edts", b"mvex"}


def parse(buf):
    """The boxes of `buf` as [type, payload-or-children] (children for container boxes)."""
    out, at = [], 0
    while at + 8 <= len(buf):
        size, kind = struct.unpack(">I4s", buf[at:at + 8])
        head = 8
        if size == 1:
            size = struct.unpack(">Q", buf[at + 8:at + 16])[0]
            head = 16
        elif size == 0:
            size = len(buf) - at
        body = buf[at + head:at + size]
        out.append([kind, parse(body) if kind in CONTAINERS else body])
        at += size
    return out


def write(boxes):
    out = b""
    for kind, body in boxes:
        data = write(body) if isinstance(body, list) else body
        out += struct.pack(">I4s", len(data) + 8, kind) + data
    return out


def find(boxes, kind):
    for b in boxes:
        if b[0] == kind:
            yield b
        if isinstance(b[1], list):
            yield from find(b[1], kind)


def video_stbl(boxes):
    for trak in find(boxes, b"trak"):
        hdlr = next(find(trak[1], b"hdlr"))
        if hdlr[1][8:12] == b"vide":
            return next(find(trak[1], b"stbl"))
    raise SystemExit("no video track")


def first_chunk_offset(stbl):
    stco = next(find(stbl[1], b"stco"))
    return struct.unpack(">I", stco[1][8:12])[0]


def sample_table(boxes, n):
    """The video track claims `n` samples of one byte each, all in one chunk: 20-byte tables."""
    stbl = video_stbl(boxes)
    offset = first_chunk_offset(stbl)
    fresh = {
        b"stts": struct.pack(">IIII", 0, 1, n, 512),
        b"stsc": struct.pack(">IIIII", 0, 1, 1, n, 1),
        b"stsz": struct.pack(">III", 0, 1, n),
        b"stco": struct.pack(">III", 0, 1, offset),
    }
    stbl[1] = [[k, fresh.get(k, v)] for k, v in stbl[1] if k not in (b"ctts", b"stss")]


def ctts_claim(boxes, n):
    """The video track's ctts claims `n` entries and holds one."""
    stbl = video_stbl(boxes)
    stbl[1] = [b for b in stbl[1] if b[0] != b"ctts"]
    stbl[1].append([b"ctts", struct.pack(">IIII", 0, n, 1, 0)])


def trun(boxes, n):
    """The first fragment's run claims `n` samples whose size, duration and flags all come from
    the defaults: no bytes per sample."""
    box = next(find(boxes, b"trun"))
    body = box[1]
    flags = struct.unpack(">I", body[:4])[0] & 0xFFFFFF
    data_offset = body[8:12] if flags & 1 else struct.pack(">i", 0)
    box[1] = struct.pack(">II", 1, n) + data_offset
    tfhd = next(find(boxes, b"tfhd"))
    tf = struct.unpack(">I", tfhd[1][:4])[0] & 0xFFFFFF
    if not tf & 0x10:  # a default sample size of one byte
        track = tfhd[1][4:8]
        rest = tfhd[1][8:]
        # Fields after track_ID in order: base offset (8), description (4), duration (4), size (4), flags (4).
        lengths = [(0x1, 8), (0x2, 4), (0x8, 4), (0x10, 4), (0x20, 4)]
        fields, at = {}, 0
        for bit, ln in lengths:
            if tf & bit:
                fields[bit] = rest[at:at + ln]
                at += ln
        fields[0x10] = struct.pack(">I", 1)
        fields.setdefault(0x8, struct.pack(">I", 512))
        tf |= 0x10 | 0x8
        tfhd[1] = struct.pack(">I", tf) + track + b"".join(fields[b] for b, _ in lengths if b in fields)


def rewrite(kind, src, dst, n):
    """One rewrite of src into dst (see the module's text)."""
    with open(src, "rb") as f:
        boxes = parse(f.read())
    {"sample-table": sample_table, "ctts-claim": ctts_claim, "trun": trun}[kind](boxes, n)
    with open(dst, "wb") as f:
        f.write(write(boxes))


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True, stdin=subprocess.DEVNULL)


X264 = ["-c:v", "libx264", "-preset", "ultrafast"]


def cost_set(out, tracks, samples, fast):
    """The uploads of the hardening round (each under 2 MB), made in `out`; their list."""
    p = lambda name: os.path.join(out, name)  # noqa: E731
    made = []
    # One 8192² H.264 frame (19 KB), copied into n video tracks.
    ffmpeg("-f", "lavfi", "-i", "color=c=black:s=8192x8192:r=1", "-frames:v", "1", "-c:v", "libx264", "-qp", "51", p("big.mp4"))
    for n in tracks:
        inputs = [a for _ in range(n) for a in ("-i", p("big.mp4"))]
        maps = [a for i in range(n) for a in ("-map", f"{i}:v")]
        ffmpeg(*inputs, *maps, "-c", "copy", p(f"tracks{n}.mkv"))
        # More than 16 streams is refused before any is opened; up to 16, each frame is too large.
        code = "invalid_video" if n > 16 else "frame_too_large"
        made.append({"what": f"{n} video tracks of one 8192² frame", "file": p(f"tracks{n}.mkv"), "code": code})
    # A 5-frame MP4 (moov last) and a fragmented one, their tables rewritten to claim `samples`.
    ffmpeg("-f", "lavfi", "-i", "testsrc=s=64x64:r=25", "-frames:v", "5", *X264, p("five.mp4"))
    ffmpeg("-f", "lavfi", "-i", "testsrc=s=64x64:r=25", "-frames:v", "5", *X264, "-movflags", "frag_keyframe+empty_moov", p("frag.mp4"))
    rewrite("sample-table", p("five.mp4"), p("stsz.mp4"), samples)
    rewrite("trun", p("frag.mp4"), p("trun.mp4"), samples)
    made.append({"what": f"an MP4 whose stsz claims {samples:,} samples", "file": p("stsz.mp4"), "code": "invalid_video"})
    made.append({"what": f"a fragment whose trun claims {samples:,} samples", "file": p("trun.mp4"), "code": "invalid_video"})
    # 10,000 frames of 128² at 1000 fps (10 s), as MP4 (the header says so), as live Matroska
    # and as a raw H.264 stream (nothing says so until the frames are counted).
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=128x128:r=1000", "-frames:v", "10000", *X264, "-crf", "40", p("fast.mp4"))
    how = {"mp4": [], "mkv": ["-live", "1", "-f", "matroska"], "h264": ["-f", "h264"]}
    for ext in fast:
        if ext != "mp4":
            ffmpeg("-i", p("fast.mp4"), "-c", "copy", *how[ext], p(f"fast.{ext}"))
        made.append({"what": f"10,000 frames of 128² at 1000 fps, {ext}", "file": p(f"fast.{ext}"), "code": "video_too_large"})
    return made


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["sample-table", "ctts-claim", "trun", "cost-set"])
    ap.add_argument("src", help="the file to rewrite (cost-set: the folder to write into)")
    ap.add_argument("dst", nargs="?")
    ap.add_argument("--samples", type=int, default=80_000_000)
    ap.add_argument("--entries", type=int, default=80_000_000)
    ap.add_argument("--tracks", default="16,100", help="cost-set: track counts, comma-separated")
    ap.add_argument("--fast", default="mp4,mkv,h264", help="cost-set: containers of the 1000-fps clip")
    a = ap.parse_args()
    if a.kind == "cost-set":
        tracks = [int(t) for t in a.tracks.split(",") if t]
        print(json.dumps(cost_set(a.src, tracks, a.samples, [f for f in a.fast.split(",") if f])))
        return
    if a.dst is None:
        ap.error("a rewrite needs IN and OUT")
    rewrite(a.kind, a.src, a.dst, a.entries if a.kind == "ctts-claim" else a.samples)


if __name__ == "__main__":
    main()
