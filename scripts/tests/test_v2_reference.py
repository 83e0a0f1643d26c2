"""poc-abs v2: the core (`tabr-features --spec poc-abs/2`) against the independent route
(`poc_abs_v2_reference.py`, written from the spec texts) on every face fixture: the same
outcome, and every one of the 90 values within the spec's tolerance (1e-3 absolute or 1e-2
relative).

The fixtures are the face clips whose v1 outcome (../shared/spec/reference/EXPECTED.md) is a
feature vector, plus the office clip that v1 misses and v2 finds. The reference runs through
`uv run`, its PEP 723 header bringing numpy, onnxruntime and OpenCV, so this module needs only
pytest and `make test` runs it without the tooling's torch (`make test-reference`). Both
sides run once for all clips (module fixture), then each clip is its own test. Needs
`make build` (tabr-features, ONNX Runtime) and ../shared (env TABR_SHARED), its input: without
../shared the tests fail, in every mode.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("TABR_SHARED", ROOT.parent / "shared"))
BIN = Path(os.environ.get("TABR_BIN_DIR", Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/tabr-serve/target")) / "release"))
REFERENCE = ROOT / "scripts/poc_abs_v2_reference.py"
#: v1 misses this face (`no_face`); v2 finds it, so it is compared too.
EXTRA = ["faces/face_asl_book_woman_office_640x480_intel.mkv"]
ABS_TOL, REL_TOL = 1e-3, 1e-2

if not SHARED.is_dir():
    raise FileNotFoundError(f"the shared fixtures are not at {SHARED}: put ../shared beside the checkout or set TABR_SHARED")


def face_fixtures() -> list[str]:
    """faces/ and derived/ clips whose v1 outcome is features, then EXTRA (paths under fixtures/)."""
    expected = (SHARED / "spec/reference/EXPECTED.md").read_text()
    found = re.findall(r"^\| ((?:faces|derived)/\S+) \| features:", expected, re.MULTILINE)
    return found + [f for f in EXTRA if f not in found]


FIXTURES = face_fixtures()


def rows(stdout: str) -> dict[str, dict]:
    """JSON lines with a "file" key, by file name."""
    return {Path(r["file"]).name: r for r in map(json.loads, stdout.splitlines()) if "file" in r}


def run(cmd: list[str | Path]) -> str:
    p = subprocess.run([str(c) for c in cmd], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert p.returncode == 0, f"{Path(cmd[0]).name} failed:\n{p.stderr[-3000:]}"
    return p.stdout


@dataclass
class Outcomes:
    """Each clip's row from both routes, and the feature names (the core's header line)."""

    names: list[str]
    core: dict[str, dict]
    reference: dict[str, dict]


@pytest.fixture(scope="module")
def outcomes() -> Outcomes:
    cli = BIN / "tabr-features"
    assert cli.is_file(), f"{cli} is missing: run make build (or set TABR_BIN_DIR)"
    uv = shutil.which("uv")
    assert uv, "uv is not on PATH (make uv)"
    clips = [SHARED / "fixtures" / f for f in FIXTURES]
    core = run([cli, "--spec", "poc-abs/2", "--format", "jsonl", *clips])
    reference = run([uv, "run", "--quiet", REFERENCE, "--spec", "poc-abs/2", *clips])
    return Outcomes(json.loads(core.splitlines()[0])["names"], rows(core), rows(reference))


@pytest.mark.parametrize("fixture", FIXTURES)
def test_core_matches_the_independent_reference(fixture: str, outcomes: Outcomes) -> None:
    core, reference = outcomes.core[Path(fixture).name], outcomes.reference[Path(fixture).name]
    assert core["error"] == reference["error"], f"outcome: core {core['error']}, reference {reference['error']}"
    if core["error"]:
        return
    assert len(core["values"]) == len(reference["values"]) == len(outcomes.names) == 90
    off = [
        f"{name}: core {c:.6g}, reference {r:.6g}"
        for name, c, r in zip(outcomes.names, core["values"], reference["values"], strict=False)
        if abs(c - r) > ABS_TOL and abs(c - r) > REL_TOL * abs(r)
    ]
    assert not off, f"{len(off)} of 90 values beyond 1e-3 abs and 1e-2 rel, first: " + "; ".join(off[:8])


def test_a_large_face_shrunk_by_whole_blocks_matches_the_reference(tmp_path: Path) -> None:
    """v2 §4.5's shrink, which no fixture reaches: d18's face scaled to ~450 px inside a
    1280×720 frame (f = ⌊|T| / 128⌋ = 3, and 3 divides neither 1280 nor 720's block grid
    exactly as a resize ratio would), made here, through both routes."""
    d18 = SHARED / "fixtures/faces/face_lp_d18_man_neutral_480_liveportrait.mp4"
    if not d18.is_file():
        pytest.fail(f"{d18} is missing")
    clip = tmp_path / "large_face_1280x720.mp4"
    run(["ffmpeg", "-v", "error", "-y", "-i", d18, "-t", "2", "-an", "-vf", "scale=720:720,pad=1280:720:281:0",
         "-c:v", "libx264", "-crf", "18", clip])
    cli = BIN / "tabr-features"
    core = rows(run([cli, "--spec", "poc-abs/2", "--format", "jsonl", clip]))[clip.name]
    uv = shutil.which("uv")
    assert uv, "uv is not on PATH (make uv)"
    reference = rows(run([uv, "run", "--quiet", REFERENCE, "--spec", "poc-abs/2", "--meta", clip]))[clip.name]
    fits = [f["fit"] for f in reference["meta"]["fits"]]
    shrink = [int(math.hypot(t[0][0], t[1][0]) // 128) for t in fits]
    assert min(shrink) >= 2, f"the face is not large enough to be shrunk: f = {shrink}"
    assert core["error"] is None and reference["error"] is None, (core["error"], reference["error"])
    off = [(i, c, r) for i, (c, r) in enumerate(zip(core["values"], reference["values"], strict=False)) if abs(c - r) > ABS_TOL and abs(c - r) > REL_TOL * abs(r)]
    assert not off, f"{len(off)} of 90 values beyond the tolerance, first: {off[:5]}"
