# /// script
# requires-python = ">=3.10"
# dependencies = [
#   "torch==2.15.0", "numpy==2.4.6", "scikit-learn==1.9.1", "joblib==1.6.0", "lightning==2.6.6",
# ]
# ///
"""Train a TabR classifier on tabr-features output with Lightning: the example of docs/own-model.md.

    uv run scripts/train_tabr_example.py --features features.csv --train-y labels.csv \\
        --labels none,micro_movement --out run/

Reads the feature table exactly as ``tabr-features`` wrote it (CSV or JSONL; rows whose
extraction failed are refused by file name) and the labels (a ``file,label`` CSV, a column of
the table, or a list in row order). Splits the clips into training and validation sets
(stratified, ``--val-fraction``), fits a median imputer and a standard scaler on the training
split, and trains TabR with the training split as its retrieval candidates, keeping the epoch
with the best validation accuracy. Writes to ``--out``:

- ``best.ckpt``: the Lightning checkpoint (weights and hyper-parameters, ``context_size``
  included), which ``export_tabr.py`` reads as it is;
- ``preprocess.joblib``: the fitted imputer + scaler pipeline;
- ``candidates.csv``: the raw training split in ``tabr-features`` CSV form with a ``label``
  column: TabR's candidates, for ``export_tabr.py --train-x candidates.csv --train-y label``.

It prints the export command to run next.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tabr.table import TableError, feature_matrix, read_labels, read_table  # noqa: E402

import export_tabr  # noqa: E402


def split(y: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A stratified split: about `val_fraction` of each class to validation."""
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        val.extend(idx[: max(1, int(round(len(idx) * val_fraction)))])
    val = np.sort(np.array(val))
    return np.setdiff1d(np.arange(len(y)), val), val


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="train_tabr_example", description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", required=True, help="tabr-features output (CSV or JSONL), as it was written")
    ap.add_argument("--train-y", required=True, help="the labels: a file,label CSV (joined by file), a column of --features, or a list in row order")
    ap.add_argument("--labels", required=True, help="comma-separated class labels; their order is the class-index order")
    ap.add_argument("--out", required=True, help="folder for best.ckpt, preprocess.joblib and candidates.csv")
    ap.add_argument("--epochs", type=int, default=40, help="training epochs (default 40; the best validation epoch is kept)")
    ap.add_argument("--d-main", type=int, default=64, help="TabR's main width (default 64)")
    ap.add_argument("--context-size", type=int, default=16, help="candidates each prediction retrieves (default 16)")
    ap.add_argument("--lr", type=float, default=5e-4, help="AdamW learning rate (default 5e-4)")
    ap.add_argument("--val-fraction", type=float, default=0.2, help="share of each class held out for validation (default 0.2)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the split, the initialisation and the batches (default 0)")
    args = ap.parse_args(argv)

    labels = [s for s in args.labels.split(",") if s]
    if len(labels) < 2:
        print("train_tabr_example: --labels needs at least two classes", file=sys.stderr)
        return 2
    try:
        rows, table_names = read_table(Path(args.features))
        names = export_tabr.poc_abs_v1_names()
        x_raw = feature_matrix(rows, table_names, names, Path(args.features).name)
        y = read_labels(args.train_y, rows, False, labels)
    except (TableError, FileNotFoundError) as e:
        print(f"train_tabr_example: {e}", file=sys.stderr)
        return 2

    import joblib
    import lightning as L
    import torch
    import torch.nn.functional as F
    from lightning.pytorch.callbacks import ModelCheckpoint
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from torch.utils.data import DataLoader, TensorDataset

    from tabr.model import Model

    L.seed_everything(args.seed, verbose=False)
    tr, val = split(y, args.val_fraction, args.seed)
    pre = Pipeline([("imputer", SimpleImputer(strategy="median", keep_empty_features=True)), ("scaler", StandardScaler())]).fit(x_raw[tr])
    xt = torch.tensor(pre.transform(x_raw), dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.long)
    n_classes = len(labels)

    class TabRModule(L.LightningModule):
        """TabR with the training split as its candidates (kept out of the checkpoint's weights)."""

        def __init__(self, model: dict, context_size: int, lr: float) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.model = Model(**model)
            self.cand_x, self.cand_y = xt[tr], yt[tr]

        def logits(self, x: torch.Tensor, batch_idx: torch.Tensor | None = None) -> torch.Tensor:
            out = self.model(x, self.cand_x, self.cand_y, self.hparams.context_size, batch_idx=batch_idx)
            return out.squeeze(-1) if n_classes == 2 else out

        def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return F.binary_cross_entropy_with_logits(logits, target.float()) if n_classes == 2 else F.cross_entropy(logits, target)

        def training_step(self, batch, _i):
            (b,) = batch  # positions within the training split: TabR leaves a row out of its own context
            loss = self.loss(self.logits(self.cand_x[b], batch_idx=b), self.cand_y[b])
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch, _i):
            (b,) = batch
            logits = self.logits(xt[b])
            pred = (logits > 0).long() if n_classes == 2 else logits.argmax(-1)
            self.log("val_acc", (pred == yt[b]).float().mean(), prog_bar=True)

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-5)

    module = TabRModule(
        model={
            "n_num_features": len(names), "n_classes": n_classes, "num_embeddings": None, "d_main": args.d_main, "d_multiplier": 2.0,
            "encoder_n_blocks": 1, "predictor_n_blocks": 1, "mixer_normalization": "auto", "context_dropout": 0.2,
            "dropout0": 0.2, "dropout1": 0.0, "normalization": "LayerNorm", "activation": "ReLU",
        },
        context_size=min(args.context_size, len(tr) - 1),
        lr=args.lr,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    best = ModelCheckpoint(dirpath=out, filename="best", monitor="val_acc", mode="max", enable_version_counter=False)
    trainer = L.Trainer(max_epochs=args.epochs, accelerator="cpu", devices=1, callbacks=[best], logger=False, enable_progress_bar=False, enable_model_summary=False, deterministic=True)
    train_dl = DataLoader(TensorDataset(torch.arange(len(tr))), batch_size=32, shuffle=True)
    val_dl = DataLoader(TensorDataset(torch.tensor(val)), batch_size=256)
    trainer.fit(module, train_dl, val_dl)

    joblib.dump(pre, out / "preprocess.joblib")
    with (out / "candidates.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "error", *names, "label"])
        for i in tr:
            w.writerow([rows[i]["file"], "", *(repr(float(v)) if np.isfinite(v) else "" for v in x_raw[i]), labels[y[i]]])
    print(f"best validation accuracy {float(best.best_model_score):.3f} ({len(tr)} training clips, {len(val)} validation clips)")
    print("export it with:")
    print(f"  uv run scripts/export_tabr.py --checkpoint {out / 'best.ckpt'} --train-x {out / 'candidates.csv'} --train-y label \\")
    print(f"      --preprocess {out / 'preprocess.joblib'} --labels {','.join(labels)} --name my-model --out models/my-model")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
