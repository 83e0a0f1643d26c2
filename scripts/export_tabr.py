# /// script
# requires-python = ">=3.10"
# dependencies = ["torch>=2.2", "numpy", "scikit-learn", "joblib", "onnx", "pandas", "pyarrow"]
# ///
"""Export a trained TabR checkpoint into a portable ``tabr-model/1`` directory.

    uv run scripts/export_tabr.py --checkpoint run/best.ckpt --hparams hparams.json \\
        --train-x X_train.npy --train-y y_train.npy --preprocess imputer.joblib scaler.joblib \\
        --labels none,micro_movement --name my-model --version 1.0.0 --out models/my-model

Inputs: a Lightning ``.ckpt`` (its ``state_dict``; the module prefix is found automatically)
or a plain state dict; the model hyper-parameters as JSON (the official ``Model`` arguments
plus ``context_size``; a Lightning checkpoint's ``hyper_parameters`` are used when no file
is given); the candidate set (raw features, preprocessed here exactly as at serving time);
joblib preprocessing; names, labels and the feature spec. Output: ``model.onnx`` (candidate
keys and labels baked in, top-k retrieval in the graph), ``preprocess.json``,
``manifest.json``, ``golden.json`` and the face cascade. Mismatches are refused with an
explanation: feature count, class count, missing or unexpected keys.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

FORMAT = "tabr-model/1"
REPO = Path(__file__).resolve().parent.parent
DEFAULT_CASCADE = REPO / "crates/tabr-core/assets/haarcascade_frontalface_default.xml"
MODEL_ARGS = {
    "n_num_features", "n_bin_features", "cat_cardinalities", "n_classes", "num_embeddings", "d_main",
    "d_multiplier", "encoder_n_blocks", "predictor_n_blocks", "mixer_normalization", "context_dropout",
    "dropout0", "dropout1", "normalization", "activation", "memory_efficient", "candidate_encoding_batch_size",
}


class ExportError(Exception):
    """A refusal with an explanation for the user."""


def poc_abs_v1_names() -> list[str]:
    regions = ["brow_l", "brow_r", "eye_l", "eye_r", "nose", "cheek_l", "cheek_r", "mouth"]
    channels = [f"{r}.{k}" for r in regions for k in ("abs", "poc")] + ["global.head", "global.poc"]
    return [f"{c}.{s}" for c in channels for s in ("mean", "std", "max", "p95", "spike")]


def load_array(path: Path, key: str | None = None) -> np.ndarray:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if suffix == ".npz":
        z = np.load(path, allow_pickle=False)
        name = key if key and key in z.files else z.files[0]
        return z[name]
    import pandas as pd

    if suffix == ".csv":
        return pd.read_csv(path).to_numpy()
    if suffix == ".parquet":
        return pd.read_parquet(path).to_numpy()
    raise ExportError(f"{path.name}: unsupported array format (use .npy, .npz, .csv or .parquet)")


def load_state_dict(path: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    import torch

    obj = torch.load(path, map_location="cpu", weights_only=False)
    hparams = None
    if isinstance(obj, dict) and "state_dict" in obj:
        hparams = obj.get("hyper_parameters")
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(hasattr(v, "shape") for v in obj.values()):
        raise ExportError(f"{path.name}: not a state dict or a Lightning checkpoint")
    return obj, hparams


def strip_prefix(state: dict[str, Any], expected: set[str]) -> dict[str, Any]:
    """Finds the module prefix (e.g. ``model.`` in Lightning) that makes the keys line up."""
    anchor = "linear.weight"
    prefixes = sorted({k[: -len(anchor)] for k in state if k.endswith(anchor) and not k.endswith("." + "0." + anchor)}, key=len)
    for prefix in prefixes:
        sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if expected <= set(sub) or prefix == prefixes[-1]:
            return sub
    return state


def check_keys(state: dict[str, Any], model: Any) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    lines = []
    if missing:
        lines.append(f"missing keys ({len(missing)}): {', '.join(missing[:12])}{' …' if len(missing) > 12 else ''}")
    if unexpected:
        lines.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:12])}{' …' if len(unexpected) > 12 else ''}")
    for k in sorted(set(expected) & set(state)):
        if tuple(expected[k].shape) != tuple(state[k].shape):
            lines.append(f"{k}: checkpoint shape {tuple(state[k].shape)}, hyper-parameters give {tuple(expected[k].shape)}")
    if lines:
        raise ExportError("the checkpoint does not match the hyper-parameters:\n  " + "\n  ".join(lines))


def export(args: argparse.Namespace) -> Path:
    import torch

    from tabr.model import Model, TabRForExport
    from tabr import preprocess as pp

    state, ckpt_hparams = load_state_dict(Path(args.checkpoint))
    if args.hparams:
        hp = json.loads(Path(args.hparams).read_text())
    elif ckpt_hparams:
        hp = dict(ckpt_hparams)
    else:
        raise ExportError("no hyper-parameters: pass --hparams (the checkpoint has none)")
    hp = {**hp.get("model", {}), **{k: v for k, v in hp.items() if k != "model"}}
    context_size = int(hp.pop("context_size", 96))
    model_kwargs = {k: v for k, v in hp.items() if k in MODEL_ARGS}

    names = json.loads(Path(args.feature_names).read_text()) if args.feature_names else poc_abs_v1_names()
    spec = json.loads(args.feature_spec) if args.feature_spec else {"name": "poc-abs", "version": 1, "params": {}}
    n_features = len(names)
    if spec.get("name") == "poc-abs" and spec.get("version") == 1 and n_features != 90:
        raise ExportError(f"poc-abs v1 produces 90 features, but {n_features} feature names were given")
    n_num = model_kwargs.setdefault("n_num_features", n_features)
    if n_num != n_features:
        raise ExportError(f"the model takes {n_num} features, the feature spec produces {n_features}")

    labels = [s for s in args.labels.split(",") if s] if args.labels else []
    n_classes = model_kwargs.get("n_classes")
    task = "regression" if n_classes is None else ("binclass" if n_classes == 2 else "multiclass")
    if task != "regression" and len(labels) != n_classes:
        raise ExportError(f"the model has {n_classes} classes but {len(labels)} labels were given")
    if task == "regression" and labels:
        raise ExportError("a regression model takes no labels")

    model = Model(**model_kwargs)
    state = strip_prefix(state, set(model.state_dict()))
    check_keys(state, model)
    model.load_state_dict(state)
    model.eval()

    preprocessors = []
    for p in args.preprocess or []:
        import joblib

        preprocessors.append(joblib.load(p))
    pre_json = pp.to_json(preprocessors, n_features)
    if not any(step["type"] == "imputer" for step in pre_json["steps"]):
        # Without an imputer a missing value (NaN / null) cannot be filled, so the service
        # refuses such a request instead of guessing; say so now, not at the first refusal.
        print(
            "export_tabr: warning: no imputer in --preprocess: a request with a missing feature "
            "will be refused with invalid_features (add a SimpleImputer to impute instead)",
            file=sys.stderr,
        )

    x_raw = load_array(Path(args.train_x), "X_train").astype(np.float64)
    y = load_array(Path(args.train_y), "y_train").reshape(-1)
    if x_raw.ndim != 2 or x_raw.shape[1] != n_features:
        raise ExportError(f"X_train has shape {x_raw.shape}, expected [n, {n_features}]")
    if len(y) != len(x_raw):
        raise ExportError(f"X_train has {len(x_raw)} rows but y_train has {len(y)}")
    if task != "regression":
        if not np.all(np.equal(np.mod(y, 1), 0)) or y.min() < 0 or y.max() >= n_classes:
            raise ExportError(f"y_train must hold class indices 0..{n_classes - 1}")
    x_train = x_raw if args.train_x_preprocessed else pp.apply(preprocessors, x_raw)
    if not np.isfinite(x_train).all():
        raise ExportError("the preprocessed candidate set has NaN or infinite values (is an imputer missing?)")

    wrapper = TabRForExport(
        model,
        torch.tensor(x_train, dtype=torch.float32),
        torch.tensor(y, dtype=torch.float32 if task == "regression" else torch.long),
        context_size,
    ).eval()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dummy = torch.tensor(x_train[:2], dtype=torch.float32)
    torch.onnx.export(
        wrapper, (dummy,), out / "model.onnx", input_names=["x"], output_names=["logits"],
        dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}}, opset_version=17, dynamo=False,
    )
    (out / "preprocess.json").write_text(json.dumps(pre_json))
    cascade = Path(args.cascade) if args.cascade else DEFAULT_CASCADE
    shutil.copyfile(cascade, out / "face_cascade.xml")

    golden = make_golden(wrapper, preprocessors, x_raw, task, labels, seed=args.seed)
    (out / "golden.json").write_text(json.dumps(golden))
    d_out = 1 if task in ("regression", "binclass") else n_classes
    manifest = {
        "format": FORMAT,
        "name": args.name,
        "version": args.version,
        "task": task,
        "labels": labels,
        "features": spec,
        "n_features": n_features,
        "feature_names": names,
        "files": {"onnx": "model.onnx", "preprocessing": "preprocess.json", "face_cascade": "face_cascade.xml", "golden": "golden.json"},
        "onnx": {"input": "x", "output": "logits", "d_out": d_out, "opset": 17},
        "tabr": {"context_size": wrapper.context_size, "n_candidates": int(len(x_train)), "d_main": model_kwargs.get("d_main")},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return out


def outputs_from_logits(logits: np.ndarray, task: str, labels: list[str]) -> list[dict[str, Any]]:
    res = []
    for row in logits.astype(np.float64):
        if task == "regression":
            res.append({"value": float(row[0])})
            continue
        if task == "binclass":
            p1 = 1.0 / (1.0 + np.exp(-row[0]))
            probs = [1.0 - p1, p1]
        else:
            e = np.exp(row - row.max())
            probs = list(e / e.sum())
        res.append({"label": labels[int(np.argmax(probs))], "probabilities": [float(p) for p in probs]})
    return res


def make_golden(wrapper: Any, preprocessors: list[Any], x_raw: np.ndarray, task: str, labels: list[str], seed: int) -> dict[str, Any]:
    """≥ 16 raw rows (typical, with NaNs, out of range) and what PyTorch + scikit-learn give."""
    import torch

    from tabr import preprocess as pp

    rng = np.random.default_rng(seed)
    n, f = x_raw.shape
    rows = [x_raw[i].copy() for i in rng.choice(n, size=min(8, n), replace=False)]
    lo, hi = np.nanmin(x_raw, 0), np.nanmax(x_raw, 0)
    span = np.where(hi > lo, hi - lo, 1.0)
    for _ in range(4):  # missing values
        r = x_raw[rng.integers(n)].copy()
        r[rng.choice(f, size=max(1, f // 10), replace=False)] = np.nan
        rows.append(r)
    rows.append(hi + 3 * span)  # far above the training range
    rows.append(lo - 3 * span)  # far below
    r = x_raw[rng.integers(n)].copy()
    r[: f // 2] = np.nan
    rows.append(r)
    rows.append(np.full(f, np.nan))  # everything missing: the imputer decides
    x = np.stack(rows)
    has_imputer = any("imputer" == s["type"] for p in preprocessors for s in pp.step_to_json(p, f))
    if not has_imputer:
        x = x[~np.isnan(x).any(1)]
    xp = pp.apply(preprocessors, x)
    with torch.no_grad():
        logits = wrapper(torch.tensor(xp, dtype=torch.float32)).numpy()
    return {
        "rows": [[None if np.isnan(v) else float(v) for v in r] for r in x],
        "preprocessed": [[float(v) for v in r] for r in xp],
        "logits": [[float(v) for v in r] for r in logits],
        "outputs": outputs_from_logits(logits, task, labels),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="Lightning .ckpt or a plain state dict (.pt/.pth)")
    ap.add_argument("--hparams", help="JSON: the official Model arguments plus context_size")
    ap.add_argument("--train-x", required=True, help="candidate features (.npy/.npz/.csv/.parquet)")
    ap.add_argument("--train-y", required=True, help="candidate labels (class indices or values)")
    ap.add_argument("--train-x-preprocessed", action="store_true", help="X_train is already preprocessed")
    ap.add_argument("--preprocess", nargs="*", help="joblib files: imputer, scaler or a Pipeline, in order")
    ap.add_argument("--feature-names", help="JSON list of feature names (default: poc-abs v1)")
    ap.add_argument("--feature-spec", help='JSON, default {"name": "poc-abs", "version": 1, "params": {}}')
    ap.add_argument("--labels", help="comma-separated class labels, in class-index order")
    ap.add_argument("--cascade", help="face cascade XML (default: OpenCV's frontal face cascade)")
    ap.add_argument("--name", required=True)
    ap.add_argument("--version", default="1.0.0")
    ap.add_argument("--seed", type=int, default=0, help="seed of the golden rows")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    try:
        out = export(args)
    except ExportError as e:
        print(f"export_tabr: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
