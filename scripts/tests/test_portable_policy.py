"""scripts/portable/policy.py, the release's library check, on tarballs made here.

It must pass what keeps to manylinux_2_28 and fail what does not: Debian 12's own libavcodec
(GLIBC_2.35, and libraries that are neither glibc's nor bundled) is the kind of file the
development build links and the release must never carry.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

POLICY = Path(__file__).resolve().parents[1] / "portable" / "policy.py"
NODE = Path("/usr/bin/node")
SYSTEM_AVCODEC = Path("/usr/lib/x86_64-linux-gnu/libavcodec.so.59")


def tarball(tmp: Path, name: str, files: dict[str, Path]) -> Path:
    out = tmp / name
    with tarfile.open(out, "w:gz") as t:
        t.addfile(tarfile.TarInfo("package/package.json"), io.BytesIO(b""))
        for arc, src in files.items():
            t.add(src.resolve(), arcname=f"package/{arc}")
    return out


def run(*tarballs: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(POLICY), *map(str, tarballs)], capture_output=True, text=True)


def test_a_file_on_the_manylinux_2_28_line_passes(tmp_path: Path) -> None:
    if not NODE.is_file():
        pytest.fail(f"{NODE} is missing (Node 20 is part of the machine)")
    r = run(tarball(tmp_path, "ok.tgz", {"bin/node": NODE}))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "every ELF file keeps to manylinux_2_28" in r.stdout
    assert "GLIBC_2.28" in r.stdout


def test_the_system_ffmpeg_breaks_it_twice(tmp_path: Path) -> None:
    if not SYSTEM_AVCODEC.is_file():
        pytest.fail(f"{SYSTEM_AVCODEC} is missing (make deps installs libavcodec-dev)")
    r = run(tarball(tmp_path, "bad.tgz", {"libavcodec.so.59": SYSTEM_AVCODEC}))
    assert r.returncode == 1, r.stdout
    problems = [line for line in r.stdout.splitlines() if line.startswith("POLICY:")]
    assert any("needs libswresample.so.4, which is neither system nor bundled" in p for p in problems), problems
    assert any("asks for GLIBC_2.3" in p and "newer than the manylinux_2_28 line" in p for p in problems), problems
    assert r.stdout.rstrip().endswith("policy: broken")


def test_a_library_bundled_beside_its_user_is_fine(tmp_path: Path) -> None:
    # libavcodec needs libswresample; with it in the package, that NEEDED is bundled (its
    # own symbol versions still break the line, so only the NEEDED complaint goes away).
    swr = SYSTEM_AVCODEC.with_name("libswresample.so.4")
    if not swr.is_file():
        pytest.fail(f"{swr} is missing (make deps installs the FFmpeg -dev packages)")
    r = run(tarball(tmp_path, "bundled.tgz", {"libavcodec.so.59": SYSTEM_AVCODEC, "libswresample.so.4": swr}))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "libavcodec.so.59" in r.stdout and "libswresample.so.4" in r.stdout, r.stdout
    assert "needs libswresample.so.4" not in r.stdout
    assert r.stdout.rstrip().endswith("policy: broken")


def test_the_cuda_exception_is_the_list_the_core_loads() -> None:
    # One list of CUDA 12 / cuDNN 9 libraries: the core's CUDA_LIBRARIES (what it checks and
    # preloads) must be the policy's allowed exception for the CUDA provider.
    import importlib.util

    spec = importlib.util.spec_from_file_location("policy", POLICY)
    assert spec and spec.loader
    policy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(policy)
    runtime = (POLICY.parents[2] / "crates/tabr-core/src/model/runtime.rs").read_text()
    block = runtime.split("pub const CUDA_LIBRARIES", 1)[1].split("];", 1)[0]
    core = set(re.findall(r'"(lib[^"]+)"', block))
    assert core and core == policy.CUDA
