#!/usr/bin/env python3
"""The release's library policy, checked on every ELF file of every npm tarball.

An auditwheel-style walk: each tarball is unpacked into a temporary folder, every ELF file in
it is read with binutils' `readelf` (the dynamic section and the version needs), and each is
held to the manylinux_2_28 line that Node 20 itself keeps to:

- NEEDED, outside the package, only glibc's libraries, libgcc_s and libstdc++; a NEEDED that
  names another ELF file of the same package is bundled and fine;
- symbol versions no newer than GLIBC_2.28, GLIBCXX_3.4.25, CXXABI_1.3.11 and GCC_8.0.0.

The GPU package's CUDA provider is the one declared exception: it needs CUDA 12 and cuDNN 9,
which come from the system or NVIDIA's wheels (TABR_CUDA_LIBS), never from the package.

usage: policy.py TARBALL...   prints a table; exits 1 when any file breaks the policy.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

SYSTEM = {
    "libc.so.6",
    "libm.so.6",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "ld-linux-x86-64.so.2",
    "libgcc_s.so.1",
    "libstdc++.so.6",
}
# The CUDA provider's libraries, allowed only to the GPU package's provider library.
CUDA = {
    "libcublasLt.so.12",
    "libcublas.so.12",
    "libcurand.so.10",
    "libcufft.so.11",
    "libcudart.so.12",
    "libcudnn.so.9",
    "libnvrtc.so.12",
}
CUDA_PROVIDER = "libonnxruntime_providers_cuda.so"
# The newest version each versioned library may be asked for (manylinux_2_28).
CEILING = {"GLIBC": (2, 28), "GLIBCXX": (3, 4, 25), "CXXABI": (1, 3, 11), "GCC": (8, 0, 0)}


def readelf(args: list[str], path: Path) -> str:
    return subprocess.run(["readelf", "-W", *args, str(path)], check=True, capture_output=True, text=True).stdout


def is_elf(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) == b"\x7fELF"


def needed(path: Path) -> tuple[list[str], str | None]:
    text = readelf(["-d"], path)
    libs = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", text)
    soname = re.search(r"\(SONAME\)\s+Library soname: \[([^\]]+)\]", text)
    return libs, soname.group(1) if soname else None


def versions(path: Path) -> set[str]:
    """The symbol versions the file asks of other libraries (its version needs)."""
    text = readelf(["-V"], path)
    needs = text.split("Version needs section", 1)
    return set(re.findall(r"Name: (\S+)\s+Flags", needs[1])) if len(needs) > 1 else set()


def too_new(version: str) -> bool:
    m = re.fullmatch(r"([A-Z]+)_([0-9.]+)", version)
    if not m or m.group(1) not in CEILING:
        return False
    return tuple(int(x) for x in m.group(2).split(".")) > CEILING[m.group(1)]


def newest(found: set[str], family: str) -> str:
    ours = [v for v in found if v.startswith(family + "_") and re.fullmatch(r"[A-Z]+_[0-9.]+", v)]
    return max(ours, key=lambda v: tuple(int(x) for x in v.split("_")[1].split(".")), default="-")


def check(tarball: Path) -> list[str]:
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(tarball) as t:
            t.extractall(tmp, filter="data")
        elves = [p for p in sorted(Path(tmp).rglob("*")) if p.is_file() and not p.is_symlink() and is_elf(p)]
        info = {p: needed(p) for p in elves}
        bundled = {p.name for p in elves} | {so for _, so in info.values() if so}
        print(f"\n{tarball.name}: {len(elves)} ELF file(s)")
        print(f"  {'file':<44} {'size MB':>8}  {'GLIBC':<11} {'GLIBCXX':<14} {'NEEDED outside':<}")
        for p in elves:
            libs, _ = info[p]
            allowed = SYSTEM | (CUDA if p.name == CUDA_PROVIDER else set())
            outside = [lib for lib in libs if lib not in bundled]
            bad_libs = [lib for lib in outside if lib not in allowed]
            vs = versions(p)
            bad_versions = sorted(v for v in vs if too_new(v))
            rel = p.relative_to(tmp)
            print(
                f"  {str(rel):<44} {p.stat().st_size / 1e6:>8.1f}  {newest(vs, 'GLIBC'):<11} "
                f"{newest(vs, 'GLIBCXX'):<14} {', '.join(outside) or '-'}"
            )
            for lib in bad_libs:
                problems.append(f"{tarball.name}: {rel} needs {lib}, which is neither system nor bundled")
            for v in bad_versions:
                problems.append(f"{tarball.name}: {rel} asks for {v}, newer than the manylinux_2_28 line")
    return problems


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    problems = [p for t in argv for p in check(Path(t))]
    print()
    for p in problems:
        print(f"POLICY: {p}")
    print("policy: " + ("broken" if problems else "every ELF file keeps to manylinux_2_28"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
