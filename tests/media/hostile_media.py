#!/usr/bin/env python3
"""Hostile media for the hardening tests: small uploads whose headers claim far more than their
bytes hold. Standard library only, so the Rust and the service's test suites both run it with
the system's python3 (ffmpeg makes the honest clips these start from).

Why rewrite real files instead of writing boxes from nothing: the demuxer must accept every
other box as it would a camera's file, so the only lie is the one under test.

    hostile_media.py sample-table IN.mp4 OUT.mp4 --samples N   (stsz: N samples of 1 byte, one chunk)
    hostile_media.py ctts-claim IN.mp4 OUT.mp4 --entries N      (ctts: N entries claimed, none present)
    hostile_media.py trun IN_FRAGMENTED.mp4 OUT.mp4 --samples N (a fragment claiming N defaulted samples)
"""
import argparse
import struct

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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["sample-table", "ctts-claim", "trun"])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--samples", type=int, default=80_000_000)
    ap.add_argument("--entries", type=int, default=80_000_000)
    a = ap.parse_args()
    with open(a.src, "rb") as f:
        boxes = parse(f.read())
    if a.kind == "sample-table":
        sample_table(boxes, a.samples)
    elif a.kind == "ctts-claim":
        ctts_claim(boxes, a.entries)
    else:
        trun(boxes, a.samples)
    with open(a.dst, "wb") as f:
        f.write(write(boxes))


if __name__ == "__main__":
    main()
