# /// script
# requires-python = ">=3.10"
# dependencies = [
#   "torch==2.15.0", "numpy==2.4.6", "scikit-learn==1.9.1", "joblib==1.6.0", "onnx==1.23.2",
#   "onnxruntime==1.32.0", "pandas==3.1.1", "pyarrow==26.0.1",
# ]
# ///
"""Build ``models/tabr-demo`` from start to finish, deterministically.

1. Draw synthetic face clips with the project's generator (``tabr-synth --demo-seed``):
   half with a short micro-movement of the mouth, brows or eyes, half still apart from noise
   and slow head drift.
2. Extract their POC-ABS v1 features with ``tabr-features`` (the serving extractor).
3. Train a small TabR (binclass: ``none``, ``micro_movement``) with a median imputer and a
   standard scaler.
4. Export with ``export_tabr.py`` and write the model's README.

    make build && uv run scripts/make_demo_model.py            # → models/tabr-demo
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


def extract(clips_dir: Path) -> dict[str, list[float] | None]:
    proc = subprocess.run([str(bin_dir() / "tabr-features"), str(clips_dir), "--format", "jsonl"], capture_output=True, text=True)
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
    for epoch in range(300):
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
    ap.add_argument("--per-class", type=int, default=200, help="synthetic clips drawn per class (default 200)")
    ap.add_argument("--keep-features", help="also save the extracted features and labels here (.npz)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the split, the initialisation and the batches (default 0)")
    ap.add_argument("--out", default=str(REPO / "models/tabr-demo"), help="the model directory to (re)write (default models/tabr-demo; its contents are replaced)")
    args = ap.parse_args()

    import joblib
    import torch
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import StandardScaler

    import export_tabr

    with tempfile.TemporaryDirectory(prefix="tabr-demo-") as tmp:
        tmp = Path(tmp)
        clips_dir = tmp / "clips"
        clips_dir.mkdir()
        clips = make_clips(clips_dir, args.per_class)
        feats = extract(clips_dir)
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

        np.save(tmp / "x_train.npy", x_raw[tr])
        np.save(tmp / "y_train.npy", y[tr])
        joblib.dump(imputer, tmp / "imputer.joblib")
        joblib.dump(scaler, tmp / "scaler.joblib")
        torch.save(model.state_dict(), tmp / "model.pt")
        (tmp / "hparams.json").write_text(json.dumps(HPARAMS))
        rc = export_tabr.main([
            "--checkpoint", str(tmp / "model.pt"), "--hparams", str(tmp / "hparams.json"),
            "--train-x", str(tmp / "x_train.npy"), "--train-y", str(tmp / "y_train.npy"),
            "--preprocess", str(tmp / "imputer.joblib"), str(tmp / "scaler.joblib"),
            "--labels", ",".join(LABELS), "--name", "tabr-demo", "--version", "1.0.0", "--out", args.out, "--force",
        ])
        if rc:
            return rc
    write_readme(Path(args.out), len(keep), dropped, len(tr), len(val), val_acc, epochs, args)
    print(f"tabr-demo: {len(keep)} clips ({dropped} dropped), validation accuracy {val_acc:.3f} after {epochs} epochs")
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


if __name__ == "__main__":
    raise SystemExit(main())
