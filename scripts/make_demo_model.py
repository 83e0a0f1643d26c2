# /// script
# requires-python = ">=3.10"
# dependencies = [
#   "torch==2.15.0", "numpy==2.4.6", "scikit-learn==1.9.1", "joblib==1.6.0", "onnx==1.23.2",
#   "onnxruntime==1.32.0", "pandas==3.1.1", "pyarrow==26.0.1", "opencv-python-headless==4.10.0.84",
# ]
# ///
"""Build the demo models from start to finish, deterministically.

``models/tabr-demo`` (poc-abs v1, ``--spec 1``):

1. Draw synthetic face clips with the project's generator (``tabr-synth --demo-seed``):
   half with a short micro-movement of the mouth, brows or eyes, half still apart from noise
   and slow head drift.
2. Extract their POC-ABS v1 features with ``tabr-features`` (the serving extractor).
3. Train a small TabR (binclass: ``none``, ``micro_movement``) with a median imputer and a
   standard scaler.
4. Export with ``export_tabr.py`` and write the model's README.

``models/tabr-demo-v2`` (poc-abs v2, ``--spec 2``): the same task and steps, but the clips are
real face frames of ``../shared/fixtures/faces`` with movements made on them
(``tabr/face_clips.py``), their features are v2's, and the accuracy is also measured on clips
of frames the model never saw.

    make build && uv run scripts/make_demo_model.py            # → models/tabr-demo
    make build && uv run scripts/make_demo_model.py --spec 2   # → models/tabr-demo-v2
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

REPO = Path(__file__).resolve().parent.parent
LABELS = ["none", "micro_movement"]
TRAIN_SEED_BASE = {"none": 10_000, "micro_movement": 20_000}
HPARAMS = {
    "model": {
        "n_num_features": 90, "n_classes": 2, "num_embeddings": None, "d_main": 64, "d_multiplier": 2.0,
        "encoder_n_blocks": 1, "predictor_n_blocks": 1, "mixer_normalization": "auto", "context_dropout": 0.2,
        "dropout0": 0.2, "dropout1": 0.0, "normalization": "LayerNorm", "activation": "ReLU",
    },
    "context_size": 32,
}


def bin_dir() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/tabr-serve/target"))
    return Path(os.environ.get("TABR_BIN_DIR", target / "release"))


def make_clips(out: Path, per_class: int) -> list[tuple[Path, int]]:
    synth = bin_dir() / "tabr-synth"
    jobs = [(out / f"{label}_{i:04d}.mkv", label, TRAIN_SEED_BASE[label] + i) for label in LABELS for i in range(per_class)]

    def run(job):
        path, label, seed = job
        subprocess.run([str(synth), str(path), "--demo-seed", str(seed), "--demo-class", label], check=True)
        return path, LABELS.index(label)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
        return list(ex.map(run, jobs))


def make_face_clips(out: Path, fixtures: Path, at: tuple[float, ...], per_face: int, seed: int) -> list[tuple[Path, int]]:
    """v2's clips: `per_face` clips per class of every still frame at fractions `at` of the face
    fixtures (see tabr/face_clips.py)."""
    from tabr import face_clips

    stills = face_clips.faces(fixtures, at)
    jobs = [(out / f"{label}_{i:02d}_{k:02d}.mkv", face, label, seed * 1_000_003 + 1000 * i + 10 * k + j)
            for i, face in enumerate(stills) for k in range(per_face) for j, label in enumerate(LABELS)]

    def run(job):
        path, face, label, s = job
        face_clips.write_clip(path, face, label == "micro_movement", np.random.default_rng(s))
        return path, LABELS.index(label)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
        return list(ex.map(run, jobs))


def extract(clips_dir: Path, spec: int = 1) -> dict[str, list[float] | None]:
    # Run from the repository, where tabr-features finds ONNX Runtime for v2 by itself.
    proc = subprocess.run([str(bin_dir() / "tabr-features"), str(clips_dir), "--format", "jsonl", "--spec", f"poc-abs/{spec}"],
                          capture_output=True, text=True, cwd=REPO)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return {Path(r["file"]).name: r.get("values") for r in lines[1:]}


def train(x: np.ndarray, y: np.ndarray, seed: int):
    import torch
    import torch.nn.functional as F

    from tabr.model import Model

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    n_val = len(x) // 5
    val, tr = order[:n_val], order[n_val:]
    xt = torch.tensor(x, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.long)
    model = Model(**HPARAMS["model"])
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=1e-5)
    ctx = HPARAMS["context_size"]
    cand_x, cand_y = xt[tr], yt[tr]
    best, best_state, patience = -1.0, None, 0
    for epoch in range(300):  # noqa: B007 (the epoch count is returned after the loop)
        model.train()
        perm = torch.tensor(rng.permutation(len(tr)))
        for b in perm.split(32):
            logits = model(cand_x[b], cand_x, cand_y, ctx, batch_idx=b).squeeze(-1)
            loss = F.binary_cross_entropy_with_logits(logits, cand_y[b].float())
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            pred = (model(xt[val], cand_x, cand_y, ctx).squeeze(-1) > 0).long()
        acc = (pred == yt[val]).float().mean().item()
        if acc > best:
            best, best_state, patience = acc, {k: v.clone() for k, v in model.state_dict().items()}, 0
        else:
            patience += 1
            if patience >= 60:
                break
    model.load_state_dict(best_state)
    return model, tr, val, best, epoch + 1


def main() -> int:
    ap = argparse.ArgumentParser(prog="make_demo_model", description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", type=int, choices=[1, 2], default=1, help="the feature spec: 1 (tabr-demo, synthetic clips) or 2 (tabr-demo-v2, clips made from the face fixtures)")
    ap.add_argument("--per-class", type=int, default=200, help="v1: synthetic clips drawn per class (default 200)")
    ap.add_argument("--per-face", type=int, default=8, help="v2: training clips per class and still frame (default 8)")
    ap.add_argument("--fixtures", default=os.environ.get("TABR_SHARED", str(REPO.parent / "shared")) + "/fixtures/faces",
                    help="v2: the face fixtures (default ../shared/fixtures/faces, or $TABR_SHARED/fixtures/faces)")
    ap.add_argument("--keep-features", help="also save the extracted features and labels here (.npz)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the clips, the split, the initialisation and the batches (default 0)")
    ap.add_argument("--out", help="the model directory to (re)write (default models/tabr-demo or models/tabr-demo-v2; its contents are replaced)")
    args = ap.parse_args()
    name = "tabr-demo" if args.spec == 1 else "tabr-demo-v2"
    out = Path(args.out or REPO / "models" / name)

    import joblib
    import torch
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import StandardScaler

    import export_tabr

    with tempfile.TemporaryDirectory(prefix="tabr-demo-") as tmp:
        tmp = Path(tmp)
        clips_dir, test_dir = tmp / "clips", tmp / "test"
        clips_dir.mkdir()
        test_dir.mkdir()
        if args.spec == 1:
            clips, tests = make_clips(clips_dir, args.per_class), []
        else:
            from tabr import face_clips

            fixtures = Path(args.fixtures)
            clips = make_face_clips(clips_dir, fixtures, face_clips.TRAIN_AT, args.per_face, args.seed)
            tests = make_face_clips(test_dir, fixtures, face_clips.TEST_AT, 2 * args.per_face, args.seed + 1)
        feats = extract(clips_dir, args.spec)
        keep = [(p, lab) for p, lab in clips if feats.get(p.name) is not None]
        dropped = len(clips) - len(keep)
        x_raw = np.array([feats[p.name] for p, _ in keep], dtype=np.float64)
        y = np.array([lab for _, lab in keep])
        if args.keep_features:
            np.savez(args.keep_features, x=x_raw, y=y)

        imputer = SimpleImputer(strategy="median", keep_empty_features=True).fit(x_raw)
        scaler = StandardScaler().fit(imputer.transform(x_raw))
        xp = scaler.transform(imputer.transform(x_raw))
        model, tr, val, val_acc, epochs = train(xp, y, args.seed)
        test = None
        if tests:
            tf = extract(test_dir, args.spec)
            kept = [(p, lab) for p, lab in tests if tf.get(p.name) is not None]
            xt = scaler.transform(imputer.transform(np.array([tf[p.name] for p, _ in kept], dtype=np.float64)))
            yt = np.array([lab for _, lab in kept])
            model.eval()
            with torch.no_grad():
                cand_x = torch.tensor(xp[tr], dtype=torch.float32)
                cand_y = torch.tensor(y[tr], dtype=torch.long)
                logits = model(torch.tensor(xt, dtype=torch.float32), cand_x, cand_y, HPARAMS["context_size"]).squeeze(-1)
            test = {"clips": len(kept), "dropped": len(tests) - len(kept), "accuracy": float(((logits > 0).long().numpy() == yt).mean())}

        np.save(tmp / "x_train.npy", x_raw[tr])
        np.save(tmp / "y_train.npy", y[tr])
        # The candidates' names in an answer's evidence: their clips' file names.
        (tmp / "ids.txt").write_text("".join(f"{keep[i][0].name}\n" for i in tr))
        joblib.dump(imputer, tmp / "imputer.joblib")
        joblib.dump(scaler, tmp / "scaler.joblib")
        torch.save(model.state_dict(), tmp / "model.pt")
        (tmp / "hparams.json").write_text(json.dumps(HPARAMS))
        rc = export_tabr.main([
            "--checkpoint", str(tmp / "model.pt"), "--hparams", str(tmp / "hparams.json"),
            "--train-x", str(tmp / "x_train.npy"), "--train-y", str(tmp / "y_train.npy"), "--candidate-ids", str(tmp / "ids.txt"),
            "--preprocess", str(tmp / "imputer.joblib"), str(tmp / "scaler.joblib"),
            "--feature-spec", json.dumps({"name": "poc-abs", "version": args.spec, "params": {}}),
            "--labels", ",".join(LABELS), "--name", name, "--version", "1.0.0", "--out", str(out), "--force",
        ])
        if rc:
            return rc
    if args.spec == 1:
        write_readme(out, len(keep), dropped, len(tr), len(val), val_acc, epochs, args)
    else:
        write_readme_v2(out, len(keep), dropped, len(tr), len(val), val_acc, epochs, test, args)
    print(f"{name}: {len(keep)} clips ({dropped} dropped), validation accuracy {val_acc:.3f} after {epochs} epochs"
          + (f"; unseen frames: accuracy {test['accuracy']:.3f} on {test['clips']} clips" if test else ""))
    return 0


def write_readme(out: Path, n: int, dropped: int, n_tr: int, n_val: int, acc: float, epochs: int, args) -> None:
    (out / "README.md").write_text(f"""# tabr-demo

The default model of tabr-serve: does a short face clip show a **micro-movement** (a brief
movement of the mouth, brows or eyes lasting a few frames) or **none**?

## How it was made

`uv run scripts/make_demo_model.py` (seed {args.seed}, {args.per_class} clips per class), from
start to finish:

1. {2 * args.per_class} synthetic 320×240, 30 fps clips of 2–4 s drawn with OpenCV by `tabr-synth --demo-seed`
   (a cartoon face: head ellipse, eyes, brows, nose, mouth), with sensor noise (σ 0.15–0.5) and a
   slow head drift (≤ 4 px/s). Half have one part (mouth, brows or eyes) move 0.8–1.6 px for
   4–8 frames; half do not.
2. POC-ABS v1 features from `tabr-features`, the same extractor the service runs
   ({dropped} clips dropped for extraction errors).
3. TabR (d_main 64, one encoder and one predictor block, context size 32) on {n_tr} clips,
   median imputer and standard scaler; {n_val} clips held out for early stopping:
   validation accuracy {acc:.3f} after {epochs} epochs.
4. Exported with `scripts/export_tabr.py`; `golden.json` holds PyTorch + scikit-learn outputs
   that every load can check.

## What it can and cannot tell

- It separates clips with a brief, localised facial movement from still ones **on this
  synthetic distribution**. The service's tests check it on 20 fresh clips (seeds never used
  in training).
- It has never seen a real face. On real video it answers something, but that answer is not
  evidence of anything: real faces blink, talk and move their heads in ways this data lacks.
- It knows nothing about emotions, deception or identity. Train a real model on real,
  consented data with `tabr-features` and bring it in with `export_tabr.py`.
""")


def write_readme_v2(out: Path, n: int, dropped: int, n_tr: int, n_val: int, acc: float, epochs: int, test: dict, args) -> None:
    from tabr import face_clips

    (out / "README.md").write_text(f"""# tabr-demo-v2

The demo model on **poc-abs v2** (landmark-aligned faces, `docs/spec/poc-abs-v2.md`): does a
short clip of a real face show a **micro-movement** (a brief movement of the mouth, brows or
eyes lasting a few frames) or **none**?

## How it was made

`uv run scripts/make_demo_model.py --spec 2` (seed {args.seed}), from start to finish:

1. Still frames of the five face fixtures of `../shared/fixtures/faces` (licences in its
   `SOURCES.md`), at {", ".join(f"{a:.0%}" for a in face_clips.TRAIN_AT)} of each clip, read
   from there at build time. Per frame, {args.per_face} clips per class of {face_clips.FRAMES}
   frames at {face_clips.FPS} fps with fresh sensor noise (σ = {face_clips.NOISE_SIGMA:g} gray
   level) in every frame; a `micro_movement` clip also moves the mouth, the brows or the eyes
   (found by FaceMesh) by 0.5–1.2 pixels of the canonical crop for 4–8 frames
   (`scripts/tabr/face_clips.py`). The labels are known by construction.
2. POC-ABS v2 features from `tabr-features --spec poc-abs/2`, the extractor the service runs
   ({dropped} of {n + dropped} clips dropped for extraction errors).
3. TabR (d_main 64, one encoder and one predictor block, context size 32) on {n_tr} clips,
   median imputer and standard scaler; {n_val} clips held out for early stopping:
   validation accuracy {acc:.3f} after {epochs} epochs.
4. **Clips it never saw**: {test["clips"]} clips made the same way from the frames at
   {", ".join(f"{a:.0%}" for a in face_clips.TEST_AT)} of each fixture (never used in training)
   with other seeds: accuracy **{test["accuracy"]:.3f}**.
5. Exported with `scripts/export_tabr.py`; `golden.json` holds PyTorch + scikit-learn outputs
   that every load can check.

## What it can and cannot tell

- It separates still real faces from the same faces with a brief, made, sub-pixel movement of
  one part, on five people's faces. Real faces blink, talk and move their heads in ways this
  data lacks: on real video its answer is a demonstration, not evidence.
- It knows nothing about emotions, deception or identity. Train a real model on real,
  consented data with `tabr-features --spec poc-abs/2` and bring it in with `export_tabr.py`.
""")


if __name__ == "__main__":
    raise SystemExit(main())
