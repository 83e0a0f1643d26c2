# /// script
# requires-python = ">=3.10"
# dependencies = [
#   "torch==2.15.0", "numpy==2.4.6", "scikit-learn==1.9.1", "joblib==1.6.0", "onnx==1.23.2",
#   "onnxruntime==1.32.0", "pandas==3.1.1", "pyarrow==26.0.1",
# ]
# ///
"""Export a trained TabR checkpoint into a portable ``tabr-model/1`` directory.

    uv run scripts/export_tabr.py --checkpoint run/best.ckpt --train-x features.csv \
        --train-y labels.csv --preprocess preprocess.joblib --labels none,micro_movement \
        --name my-model --version 1.0.0 --out models/my-model

Inputs: a Lightning ``.ckpt`` (its ``state_dict``; the module prefix is found automatically)
or a plain state dict; the model hyper-parameters (a Lightning checkpoint's
``hyper_parameters``, or ``--hparams``: the official ``Model`` arguments under ``"model"`` plus
``context_size``); the TabR candidates, i.e. the **raw, un-preprocessed** training split in
feature order (``tabr-features`` CSV or JSONL as it is, columns matched by name; or
``.npy``/``.npz``/``.parquet``); their labels; the fitted scikit-learn preprocessing; names
and labels. The feature spec is the one recorded where the features came from (a checkpoint's
``hyper_parameters["feature_spec"]``, as ``train_tabr_example.py`` saves it, or the spec of a
``tabr-features`` table given as ``--train-x``); ``--feature-spec`` gives it when nothing
records it, and is refused when it contradicts what is recorded. Output: ``model.onnx``
(candidate keys and labels baked in, top-k retrieval in the graph), ``preprocess.json``,
``manifest.json``, ``golden.json``, ``candidates.json`` (each candidate's id and label, and
the distance from each to its nearest other candidate in the model's input space: the
yardstick of an answer's novelty),
for poc-abs/1 the face cascade, and a ``README.md``. The graph also outputs each row's
``--evidence-k`` nearest candidates, their distances, weights and labels (``evidence`` in an
answer). The ONNX file is run with onnxruntime against ``golden.json`` before success is
reported. Every refusal is one ``export_tabr: …`` line and exit status 2.
See docs/own-model.md for the whole path from clips to a served model.
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

from tabr.specs import describe, feature_names, takes_cascade  # noqa: E402
from tabr.table import TableError, feature_matrix, is_feature_table, load_table, parse_spec, read_labels, spec_label  # noqa: E402

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


#: TabR's context size when the hyper-parameters give none (the official default).
DEFAULT_CONTEXT_SIZE = 96
# Nearest candidates an answer's evidence lists by default.
DEFAULT_EVIDENCE_K = 5
EVIDENCE_OUTPUTS = ["neighbour_index", "neighbour_distance", "neighbour_weight", "neighbour_label", "nearest_input_distance"]
#: Candidates whose features reach this far from 0 (in mean or spread) were not standardised.
RAW_SCALE = 10.0
#: The feature spec when neither the inputs nor --feature-spec say which (stated on stderr).
DEFAULT_SPEC = {"name": "poc-abs", "version": 1, "params": {}}


def feature_spec(value: Any, source: str) -> dict[str, Any]:
    """A feature spec as a dict ``{"name", "version", "params"?}`` from JSON text, ``name/version``
    text (``poc-abs/2``) or an already parsed object (a checkpoint's ``feature_spec``)."""
    if isinstance(value, str):
        text = value.strip()
        if not text.startswith("{"):
            try:
                return parse_spec(text, source)
            except TableError:
                raise ExportError(f"{source} is neither JSON nor name/version (e.g. poc-abs/2)") from None
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            raise ExportError(f"{source} is not valid JSON") from None
    version = value.get("version") if isinstance(value, dict) else None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str) or not isinstance(version, int) or isinstance(version, bool):
        raise ExportError(f'{source} must name a feature spec: {{"name": "poc-abs", "version": 2}} or poc-abs/2')
    return value


def resolve_spec(flag: dict[str, Any] | None, recorded: list[tuple[str, dict[str, Any] | None]]) -> tuple[dict[str, Any], str | None]:
    """The feature spec to export with, and where it came from (``None``: the default).

    ``recorded`` lists what the inputs say, as (where, spec or None): the checkpoint's
    hyper-parameters, the candidates' table. They must agree with each other, and
    ``--feature-spec`` (``flag``) must agree with them; without any, poc-abs/1."""
    known = [(where, spec) for where, spec in recorded if spec]

    def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
        return (a.get("name"), a.get("version")) == (b.get("name"), b.get("version"))

    if known:
        first_where, first = known[0]
        for where, spec in known[1:]:
            if not same(first, spec):
                raise ExportError(
                    f"{first_where} records feature spec {spec_label(first)} but {where} records {spec_label(spec)}: "
                    "the candidates must be features of the spec the model was trained on"
                )
        if flag and not same(flag, first):
            raise ExportError(
                f"--feature-spec says {spec_label(flag)} but {first_where} records {spec_label(first)}: "
                "leave --feature-spec out (the recorded spec is used) or export the model that was trained on it"
            )
    if flag:
        return {"params": {}, **flag}, "--feature-spec"
    if known:
        return {"params": {}, **known[0][1]}, known[0][0]
    return json.loads(json.dumps(DEFAULT_SPEC)), None


def poc_abs_v1_names() -> list[str]:
    """poc-abs/1's feature names as the core describes them (every spec shares them)."""
    return feature_names("poc-abs/1")


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

    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise ExportError(f"--checkpoint {path}: no such file") from None
    except Exception as e:  # a file torch cannot read: say what it is, not where it failed
        raise ExportError(f"--checkpoint {path.name}: not a PyTorch checkpoint ({type(e).__name__})") from None
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


def note(message: str) -> None:
    """A default or a choice that changes numbers, stated on stderr."""
    print(f"export_tabr: note: {message}", file=sys.stderr)


def read_json(path: str, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ExportError(f"{what} {path}: no such file") from None
    except json.JSONDecodeError as e:
        raise ExportError(f"{what} {Path(path).name}: not valid JSON ({e.msg}, line {e.lineno})") from None


def load_preprocessors(paths: list[str], n_features: int) -> tuple[list[Any], dict[str, Any]]:
    import joblib

    from tabr import preprocess as pp

    preprocessors = []
    for p in paths:
        try:
            preprocessors.append(joblib.load(p))
        except FileNotFoundError:
            raise ExportError(f"--preprocess {p}: no such file") from None
        except Exception as e:
            raise ExportError(f"--preprocess {Path(p).name}: not a joblib file of a fitted scikit-learn object ({type(e).__name__})") from None
    try:
        return preprocessors, pp.to_json(preprocessors, n_features)
    except (ValueError, AttributeError) as e:
        # An unsupported step (RobustScaler, a uniform QuantileTransformer, …) or an unfitted one.
        raise ExportError(f"--preprocess: {e}") from None


def load_candidates(args: argparse.Namespace, names: list[str], task: str, labels: list[str]) -> tuple[np.ndarray, np.ndarray, str, dict[str, Any] | None, list[str]]:
    """The raw candidates in feature order and their targets; where they came from, the
    feature spec their table records (``None`` when it records none), and each candidate's id
    (``--candidate-ids``' column, else its row number in --train-x)."""
    path = Path(args.train_x)
    if not path.is_file():
        raise ExportError(f"--train-x {args.train_x}: no such file")
    try:
        rows, spec = None, None
        if is_feature_table(path):
            table = load_table(path)
            rows, spec = table.rows, table.spec
            x_raw = feature_matrix(rows, table.names, names, path.name)
            source = f"{path.name} (tabr-features, {len(rows)} clips)"
        else:
            x_raw = load_array(path, "X_train").astype(np.float64)
            source = path.name
        y = read_labels(args.train_y, rows, task == "regression", labels)
        if args.candidate_ids and rows is not None and all(args.candidate_ids in r for r in rows):
            ids = [str(r[args.candidate_ids]) for r in rows]
        elif args.candidate_ids and Path(args.candidate_ids).is_file():
            ids = [line.strip() for line in Path(args.candidate_ids).read_text().splitlines() if line.strip()]
            if len(ids) != len(x_raw):
                raise ExportError(f"--candidate-ids {Path(args.candidate_ids).name}: {len(ids)} ids for {len(x_raw)} candidates")
        elif args.candidate_ids:
            raise ExportError(f"--candidate-ids {args.candidate_ids}: neither a column of {path.name} nor a file of ids")
        else:
            ids = [f"row {i}" for i in range(len(x_raw))]
    except TableError as e:
        raise ExportError(str(e)) from None
    except ValueError as e:
        raise ExportError(f"--train-x {path.name}: {e}") from None
    if x_raw.ndim != 2 or x_raw.shape[1] != len(names):
        raise ExportError(f"--train-x has shape {x_raw.shape}, expected [n, {len(names)}] (the raw features in feature order)")
    if len(y) != len(x_raw):
        raise ExportError(f"--train-x has {len(x_raw)} rows but --train-y has {len(y)}")
    return x_raw, y, source, spec, ids


def fresh_out(out: Path, force: bool) -> None:
    """An empty output directory: a non-empty one is refused unless --force, which empties it."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise ExportError(f"--out {out}: not empty (pass --force to replace its contents)")
        for entry in out.iterdir():
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    out.mkdir(parents=True, exist_ok=True)


def verify_onnx(out: Path, golden: dict[str, Any], tolerance: float = 1e-4) -> float:
    """Runs the written ONNX file with onnxruntime on golden.json's preprocessed rows."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
        got, _, dist, weight, _, nearest = session.run(["logits", *EVIDENCE_OUTPUTS], {"x": np.array(golden["preprocessed"], dtype=np.float32)})
    except Exception as e:
        raise ExportError(f"the written model.onnx does not run in onnxruntime ({type(e).__name__})") from None
    worst = 0.0
    if len(got):
        worst = float(np.max(np.abs(got - np.array(golden["logits"]))))
        if not worst <= tolerance:
            raise ExportError(f"the written model.onnx gives logits {worst:.2e} away from PyTorch's (tolerance {tolerance:g})")
        want = golden["evidence"]
        ev = float(np.max(np.abs(weight - np.array([e["weight"] for e in want]))))
        # Distances are compared relative to their size.
        d_want = np.array([e["distance"] for e in want])
        ev = max(ev, float(np.max(np.abs(dist - d_want) / np.maximum(1.0, np.abs(d_want)))))
        # The input-space distance of a row that is a candidate is 0 up to float32 rounding of
        # the rows' norms: compared on the scale of the training set's own nearest distances.
        scale = max(1.0, float(np.median(json.loads((out / "candidates.json").read_text())["nearest_distance"])))
        n_want = np.array([e["nearest_input_distance"] for e in want])
        ev = max(ev, float(np.max(np.abs(nearest[:, 0] - n_want) / np.maximum(scale, np.abs(n_want)))))
        if not ev <= tolerance:
            raise ExportError(f"the written model.onnx gives evidence {ev:.2e} away from PyTorch's (tolerance {tolerance:g})")
        worst = max(worst, ev)
    return worst


def export(args: argparse.Namespace) -> Path:
    import torch

    from tabr import preprocess as pp
    from tabr.model import Model, TabRForExport

    state, ckpt_hparams = load_state_dict(Path(args.checkpoint))
    if args.hparams:
        hp = read_json(args.hparams, "--hparams")
    elif ckpt_hparams:
        hp = dict(ckpt_hparams)
    else:
        raise ExportError("no hyper-parameters: pass --hparams (the checkpoint has none)")
    if not isinstance(hp, dict):
        raise ExportError("the hyper-parameters must be a JSON object: {\"model\": {…Model arguments}, \"context_size\": …}")
    # The feature spec the model was trained on, where the training saved it (train_tabr_example.py does).
    recorded: list[tuple[str, dict[str, Any] | None]] = []
    for where, source in [("--hparams", hp if args.hparams else None), ("the checkpoint's hyper-parameters", ckpt_hparams)]:
        if isinstance(source, dict) and source.get("feature_spec") is not None:
            recorded.append((where, feature_spec(source["feature_spec"], f"{where}: feature_spec")))
    flag = feature_spec(args.feature_spec, "--feature-spec") if args.feature_spec else None
    # A contradiction between --feature-spec and the checkpoint is refused before any work; the
    # candidates' table is checked against both once it is read.
    spec, _ = resolve_spec(flag, recorded)
    hp = {**(hp.get("model") or {}), **{k: v for k, v in hp.items() if k not in ("model", "feature_spec")}}
    if "context_size" in hp:
        context_size = int(hp.pop("context_size"))
    else:
        context_size = DEFAULT_CONTEXT_SIZE
        note(f"the hyper-parameters have no context_size: using TabR's default, {DEFAULT_CONTEXT_SIZE} (the model must have been trained with it)")
    unknown = sorted(k for k in hp if k not in MODEL_ARGS)
    if unknown:
        note(f"ignoring hyper-parameters that are not Model arguments: {', '.join(unknown)}")
    model_kwargs = {k: v for k, v in hp.items() if k in MODEL_ARGS}

    described = describe(spec)
    names = read_json(args.feature_names, "--feature-names") if args.feature_names else feature_names(described["id"] if described else "poc-abs/1")
    n_features = len(names)
    if described and n_features != described["n_features"]:
        raise ExportError(f"{described['id']} produces {described['n_features']} features, but {n_features} feature names were given")
    n_num = model_kwargs.setdefault("n_num_features", n_features)
    if n_num != n_features:
        raise ExportError(f"the model takes {n_num} features, the feature spec produces {n_features}")

    labels = [s for s in args.labels.split(",") if s] if args.labels else []
    n_classes = model_kwargs.get("n_classes")
    task = "regression" if n_classes is None else ("binclass" if n_classes == 2 else "multiclass")
    if task != "regression" and len(labels) != n_classes:
        raise ExportError(f"the model has {n_classes} classes but {len(labels)} labels were given (--labels, in class-index order)")
    if task == "regression" and labels:
        raise ExportError("a regression model takes no labels")

    try:
        model = Model(**model_kwargs)
    except (TypeError, ValueError, KeyError) as e:
        raise ExportError(f"the hyper-parameters do not build a TabR Model: {e}") from None
    state = strip_prefix(state, set(model.state_dict()))
    check_keys(state, model)
    model.load_state_dict(state)
    model.eval()

    preprocessors, pre_json = load_preprocessors(args.preprocess or [], n_features)
    if not any(step["type"] == "imputer" for step in pre_json["steps"]):
        # Without an imputer a missing value (NaN / null) cannot be filled, so the service
        # refuses such a request instead of guessing; say so now, not at the first refusal.
        print(
            "export_tabr: warning: no imputer in --preprocess: a request with a missing feature "
            "will be refused with invalid_features (add a SimpleImputer to impute instead)",
            file=sys.stderr,
        )

    x_raw, y, source, table_spec, ids = load_candidates(args, names, task, labels)
    spec, spec_from = resolve_spec(flag, [*recorded, (f"--train-x {Path(args.train_x).name}", table_spec)])
    if spec_from is None:
        note(
            f"no feature spec recorded in the checkpoint or --train-x, and no --feature-spec: {spec_label(spec)} assumed "
            "(pass --feature-spec poc-abs/2 for features from tabr-features --spec poc-abs/2)"
        )
    if task != "regression":
        if not np.all(np.equal(np.mod(y, 1), 0)) or y.min() < 0 or y.max() >= n_classes:
            raise ExportError(f"--train-y must hold class indices 0..{n_classes - 1} (or the --labels themselves)")
    if args.evidence_k < 1:
        raise ExportError(f"--evidence-k {args.evidence_k}: at least 1 (an answer's evidence lists that many nearest candidates)")
    if context_size > len(x_raw):
        raise ExportError(f"context_size {context_size} is larger than the {len(x_raw)} candidates")
    if not args.preprocess and not args.train_x_preprocessed:
        # The candidates go to the network as they are: right only for a model trained on raw
        # values. Features far from standardised almost certainly mean a forgotten scaler.
        with np.errstate(all="ignore"):
            mean, std = np.nanmean(x_raw, 0), np.nanstd(x_raw, 0)
        far = int(np.sum((np.abs(mean) > RAW_SCALE) | (std > RAW_SCALE)))
        if far and not args.raw_inputs:
            raise ExportError(
                f"no --preprocess, and {far} of {n_features} candidate features are far from standardised "
                f"(|mean| or spread > {RAW_SCALE:g}): pass the fitted scaler with --preprocess, or --raw-inputs "
                "if the model really was trained on raw values"
            )
        note("no --preprocess: requests reach the network as raw feature values")
    x_train = x_raw if args.train_x_preprocessed else pp.apply(preprocessors, x_raw)
    if not np.isfinite(x_train).all():
        raise ExportError("the preprocessed candidate set has NaN or infinite values (is an imputer missing?)")

    wrapper = TabRForExport(
        model,
        torch.tensor(x_train, dtype=torch.float32),
        torch.tensor(y, dtype=torch.float32 if task == "regression" else torch.long),
        context_size,
        evidence_k=args.evidence_k,
    ).eval()

    out = Path(args.out)
    fresh_out(out, args.force)
    dummy = torch.tensor(x_train[:2], dtype=torch.float32)
    # The TorchScript-based exporter (dynamo=False): TabR's retrieval (top-k over the baked-in
    # candidates) exports to plain opset-17 operators with it; torch is pinned to a version
    # whose exporter the tests ran with (scripts/requirements.txt).
    import warnings

    with warnings.catch_warnings():
        # Its deprecation notice and tracer warnings are about the exporter, not the user's model.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper, (dummy,), out / "model.onnx", input_names=["x"], output_names=["logits", *EVIDENCE_OUTPUTS],
            dynamic_axes={name: {0: "n"} for name in ["x", "logits", *EVIDENCE_OUTPUTS]}, opset_version=17, dynamo=False,
        )
    with torch.no_grad():
        nearest = sorted(float(v) for v in wrapper.nearest_other_distances())
    candidate_labels: list[Any] = [float(v) for v in y] if task == "regression" else [labels[int(v)] for v in y]
    (out / "candidates.json").write_text(json.dumps({"ids": ids, "labels": candidate_labels, "nearest_distance": nearest}))
    (out / "preprocess.json").write_text(json.dumps(pre_json))
    files = {"onnx": "model.onnx", "preprocessing": "preprocess.json", "golden": "golden.json", "candidates": "candidates.json"}
    if not takes_cascade(spec):
        # A landmark-aligned spec finds faces with the networks built into the service: a
        # cascade is a Haar-box spec's asset.
        if args.cascade:
            raise ExportError("--cascade is a poc-abs v1 asset; a poc-abs v2 model finds faces with the service's own networks")
    else:
        cascade = Path(args.cascade) if args.cascade else DEFAULT_CASCADE
        if not cascade.is_file():
            raise ExportError(f"--cascade {cascade}: no such file")
        shutil.copyfile(cascade, out / "face_cascade.xml")
        files["face_cascade"] = "face_cascade.xml"

    golden = make_golden(wrapper, preprocessors, x_raw, task, labels, seed=args.seed)
    (out / "golden.json").write_text(json.dumps(golden))
    worst = verify_onnx(out, golden)
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
        "files": files,
        "onnx": {
            "input": "x", "output": "logits", "d_out": d_out, "opset": 17,
            "evidence": {"k": wrapper.evidence_k, **dict(zip(["index", "distance", "weight", "label", "novelty"], EVIDENCE_OUTPUTS, strict=True))},
        },
        "tabr": {"context_size": wrapper.context_size, "n_candidates": int(len(x_train)), "d_main": model_kwargs.get("d_main")},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (out / "README.md").write_text(model_readme(manifest, source, y, pre_json, worst, len(golden["rows"])))
    return out


def model_readme(m: dict[str, Any], source: str, y: np.ndarray, pre: dict[str, Any], worst: float, n_golden: int) -> str:
    """The exported directory's README: what it is, what it was made from, how to serve it."""
    spec = m["features"]
    if m["task"] == "regression":
        targets = f"a value (regression; candidate targets from {float(np.min(y)):.4g} to {float(np.max(y)):.4g})"
    else:
        counts = ", ".join(f"{lab} {int(np.sum(y == i))}" for i, lab in enumerate(m["labels"]))
        targets = f"one of {', '.join(m['labels'])} ({m['task']}; candidates per class: {counts})"
    steps = ", ".join(s["type"] for s in pre["steps"]) or "none (raw feature values)"
    name = m["name"]
    return f"""# {name} {m['version']}

A TabR model in the `{m['format']}` format, served by tabr-serve. It predicts {targets}
from the {m['n_features']} `{spec['name']}` v{spec['version']} features of one face video.

- Candidates (TabR's retrieval set, baked into `model.onnx`): {m['tabr']['n_candidates']} rows of
  {source}; context size {m['tabr']['context_size']}.
- Preprocessing (`preprocess.json`, applied by the service before the network): {steps}.
- Feature spec parameters: `{json.dumps(spec.get('params', {}))}` (the service extracts with them).
- Checked at export: `model.onnx` in onnxruntime against PyTorch on the {n_golden} rows of
  `golden.json`, worst logit difference {worst:.1e}; the service checks `golden.json` again at
  every load.

## Serve it

```sh
MODEL_REGISTRY={name}:tabr:/path/to/this/folder make serve     # or add it beside others, comma-separated
curl -H "Authorization: Bearer $TOKEN" -F video=@clip.mp4 http://127.0.0.1:8000/infer/{name}
```

From Node: `const model = await loadModel('/path/to/this/folder')` (`@org/tabr-native`), then
`await model.predictVideo('clip.mp4')`.
"""


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
        logits, idx, dist, weight, _, nearest = (t.numpy() for t in wrapper(torch.tensor(xp, dtype=torch.float32)))
    return {
        "rows": [[None if np.isnan(v) else float(v) for v in r] for r in x],
        "preprocessed": [[float(v) for v in r] for r in xp],
        "logits": [[float(v) for v in r] for r in logits],
        "outputs": outputs_from_logits(logits, task, labels),
        # The retrieval's evidence as PyTorch computes it: indices, squared distances, weights.
        "evidence": [
            {"index": [int(v) for v in i], "distance": [float(v) for v in d], "weight": [float(v) for v in w], "nearest_input_distance": float(n[0])}
            for i, d, w, n in zip(idx, dist, weight, nearest, strict=True)
        ],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="export_tabr", description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="the trained weights: a Lightning .ckpt or a plain state dict (.pt/.pth)")
    ap.add_argument("--hparams", help='JSON file {"model": {the official Model arguments}, "context_size": N}; default: the Lightning checkpoint\'s hyper_parameters')
    ap.add_argument("--train-x", required=True, help="the TabR candidates: the RAW (un-preprocessed) training split, in feature order; tabr-features CSV/JSONL as it is (columns matched by name; rows with an error refused), or .npy/.npz/.parquet")
    ap.add_argument("--train-y", required=True, help="their targets: a column of --train-x (e.g. label), a file,label CSV joined by file, or a list in row order (.npy/.npz/.txt/one-column .csv); class labels (mapped through --labels) or class indices 0..k-1, or numbers for regression")
    ap.add_argument("--train-x-preprocessed", action="store_true", help="--train-x is already preprocessed (it is then used as it is)")
    ap.add_argument("--preprocess", nargs="*", help="joblib files of the fitted preprocessing, applied in order: SimpleImputer, StandardScaler, MinMaxScaler, QuantileTransformer(output_distribution='normal'), or a Pipeline of them")
    ap.add_argument("--raw-inputs", action="store_true", help="the model was trained on raw feature values: export without --preprocess even when they are far from standardised")
    ap.add_argument("--feature-names", help="JSON list of the model's feature names, in its input order (default: the 90 poc-abs names, the same in v1 and v2)")
    ap.add_argument("--feature-spec", help='the feature spec the features came from, as name/version (poc-abs/1, poc-abs/2) or JSON ({"name": "poc-abs", "version": 2, "params": {...}}); default: the spec the checkpoint\'s hyper-parameters or the --train-x table record, else poc-abs/1 (stated); refused when it contradicts them')
    ap.add_argument("--labels", help="comma-separated class labels, in class-index order (classifiers); none for regression")
    ap.add_argument("--cascade", help="poc-abs v1: the face cascade XML the service detects faces with (default: OpenCV's frontal face cascade); refused for v2")
    ap.add_argument("--name", required=True, help="the model's name: the name MODEL_REGISTRY serves it under (lowercase letters, digits, - or _)")
    ap.add_argument("--version", default="1.0.0", help="the model's version, shown in every answer (default 1.0.0)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the golden rows (default 0)")
    ap.add_argument("--evidence-k", type=int, default=DEFAULT_EVIDENCE_K, help=f"nearest candidates each answer's evidence lists (default {DEFAULT_EVIDENCE_K}, at most context_size)")
    ap.add_argument("--candidate-ids", help="what names each candidate in an answer's evidence: a column of the --train-x table (e.g. file: the clip's name) or a text file of one id per line, in row order; default: its row number")
    ap.add_argument("--out", required=True, help="the model directory to write; must be empty or absent")
    ap.add_argument("--force", action="store_true", help="replace the contents of a non-empty --out")
    ap.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    args = ap.parse_args(argv)
    import re

    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", args.name):
        print("export_tabr: --name must be lowercase letters, digits, - or _ (the name MODEL_REGISTRY serves it under)", file=sys.stderr)
        return 2
    try:
        out = export(args)
    except ExportError as e:
        print(f"export_tabr: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # never a traceback for a user's input; --debug shows it
        if args.debug:
            raise
        print(f"export_tabr: unexpected error ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); rerun with --debug for details", file=sys.stderr)
        return 2
    print(f"wrote {out} (checked: model.onnx in onnxruntime matches PyTorch on golden.json)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
