# /// script
# requires-python = ">=3.10"
# dependencies = [
#   "torch==2.15.0", "numpy==2.4.6", "scikit-learn==1.9.1", "joblib==1.6.0", "lightning==2.6.6",
# ]
# ///
"""Train a TabR classifier on tabr-features output with Lightning: the example of docs/own-model.md.

    uv run scripts/train_tabr_example.py --features features.csv --train-y labels.csv \\
        --labels none,micro_movement --out run/

Reads the feature table exactly as ``tabr-features`` wrote it (CSV or JSONL, poc-abs/1 or
poc-abs/2; rows whose extraction failed are refused by file name) and the labels (a
``file,label`` CSV, a column of the table, or a list in row order). Splits the clips into training and validation sets
(stratified, ``--val-fraction``), fits a median imputer and a standard scaler on the training
split, and trains TabR with the training split as its retrieval candidates, keeping the epoch
with the best validation accuracy. Writes to ``--out``:

- ``best.ckpt``: the Lightning checkpoint (weights and hyper-parameters, ``context_size`` and
  ``feature_spec``, the spec the table was made with, included), which ``export_tabr.py``
  reads as it is;
- ``preprocess.joblib``: the fitted imputer + scaler pipeline;
- ``candidates.csv``: the raw training split in ``tabr-features`` CSV form (with its ``spec``
  column when the table named its spec) and a ``label`` column: TabR's candidates, for
  ``export_tabr.py --train-x candidates.csv --train-y label``.

The feature spec travels: ``export_tabr.py`` takes it from the checkpoint and the candidates,
so a poc-abs/2 model is exported as one without ``--feature-spec``. A CSV from a
``tabr-features`` build before the ``spec`` column records none: then say it at export
(``--feature-spec poc-abs/2``; without it poc-abs/1 is assumed, and said), or give it here
with ``--feature-spec``, which then records it.

It prints the export command to run next.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import export_tabr  # noqa: E402
from tabr.table import TableError, feature_matrix, load_table, parse_spec, read_labels, spec_label  # noqa: E402


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
    ap.add_argument("--feature-spec", help="the spec of --features (poc-abs/1 or poc-abs/2) when the table does not record it (a tabr-features CSV without its spec column); refused when it contradicts the table")
    ap.add_argument("--seed", type=int, default=0, help="seed of the split, the initialisation and the batches (default 0)")
    args = ap.parse_args(argv)

    labels = [s for s in args.labels.split(",") if s]
    if len(labels) < 2:
        print("train_tabr_example: --labels needs at least two classes", file=sys.stderr)
        return 2
    try:
        table = load_table(Path(args.features))
        rows, spec = table.rows, table.spec
        if args.feature_spec:
            given = parse_spec(args.feature_spec, "--feature-spec")
            if spec and given != spec:
                raise TableError(f"--feature-spec says {spec_label(given)} but {Path(args.features).name} records {spec_label(spec)}")
            spec = given
        names = export_tabr.poc_abs_v1_names()  # the same 90 names in poc-abs/1 and /2
        x_raw = feature_matrix(rows, table.names, names, Path(args.features).name)
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

        def __init__(self, model: dict, context_size: int, lr: float, feature_spec: dict | None) -> None:
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
        # Saved with the hyper-parameters: export_tabr.py exports the model for this spec.
        feature_spec=spec,
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
        # tabr-features' own CSV layout: the spec column when the spec is known.
        lead = ["spec"] if spec else []
        w.writerow(["file", *lead, "error", *names, "label"])
        for i in tr:
            values = (repr(float(v)) if np.isfinite(v) else "" for v in x_raw[i])
            w.writerow([rows[i]["file"], *([spec_label(spec)] if spec else []), "", *values, labels[y[i]]])
    print(f"best validation accuracy {float(best.best_model_score):.3f} ({len(tr)} training clips, {len(val)} validation clips)")
    if spec:
        print(f"feature spec {spec_label(spec)} (saved in best.ckpt and candidates.csv; the export takes it from there)")
    else:
        print(f"{Path(args.features).name} records no feature spec (a tabr-features CSV without its spec column): "
              "give it to export_tabr.py with --feature-spec poc-abs/1 or poc-abs/2 (or here, with --feature-spec)")
    exporter = Path(__file__).resolve().parent / "export_tabr.py"
    print("export it with:")
    print(f"  uv run {exporter} --checkpoint {out / 'best.ckpt'} --train-x {out / 'candidates.csv'} --train-y label \\")
    print(f"      --preprocess {out / 'preprocess.joblib'} --labels {','.join(labels)} --name my-model --out models/my-model"
)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
