"""Exporter round trips: a small random TabR → checkpoint → export → ONNX, against PyTorch.

Run (needs torch; outside `make test`):
    uv run --with torch --with numpy --with scikit-learn --with joblib --with onnx \
        --with onnxruntime --with pandas --with pytest pytest scripts/tests -q
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import export_tabr  # noqa: E402
from tabr.model import Model  # noqa: E402

N_FEATURES = 90


def hparams(n_classes, num_embeddings=None):
    return {
        "model": {
            "n_num_features": N_FEATURES, "n_classes": n_classes, "num_embeddings": num_embeddings, "d_main": 24,
            "d_multiplier": 2.0, "encoder_n_blocks": 1, "predictor_n_blocks": 1, "mixer_normalization": "auto",
            "context_dropout": 0.1, "dropout0": 0.1, "dropout1": 0.0, "normalization": "LayerNorm", "activation": "ReLU",
        },
        "context_size": 8,
    }


def write_case(tmp: Path, n_classes, num_embeddings=None, lightning=True, preprocess="standard"):
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MinMaxScaler, QuantileTransformer, StandardScaler

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    hp = hparams(n_classes, num_embeddings)
    model = Model(**hp["model"])
    state = {("model." if lightning else "") + k: v for k, v in model.state_dict().items()}
    ckpt = tmp / ("m.ckpt" if lightning else "m.pt")
    torch.save({"state_dict": state, "hyper_parameters": hp} if lightning else state, ckpt)
    (tmp / "hp.json").write_text(json.dumps(hp))
    x = rng.normal(size=(60, N_FEATURES)) * rng.uniform(0.1, 5, N_FEATURES) + rng.uniform(-3, 3, N_FEATURES)
    x[rng.random(x.shape) < 0.05] = np.nan
    y = rng.integers(0, n_classes, 60) if n_classes else rng.normal(size=60)
    np.save(tmp / "x.npy", x)
    np.save(tmp / "y.npy", y)
    scaler = {"standard": StandardScaler(), "minmax": MinMaxScaler(clip=True), "quantile": QuantileTransformer(n_quantiles=20, output_distribution="normal")}[preprocess]
    pipe = Pipeline([("imp", SimpleImputer(strategy="median")), ("sc", scaler)]).fit(x)
    joblib.dump(pipe, tmp / "pre.joblib")
    return ckpt


def run_export(tmp: Path, ckpt: Path, labels: str | None, **extra) -> Path:
    argv = ["--checkpoint", str(ckpt), "--hparams", str(tmp / "hp.json"), "--train-x", str(tmp / "x.npy"), "--train-y", str(tmp / "y.npy"),
            "--preprocess", str(tmp / "pre.joblib"), "--name", "t", "--out", str(tmp / "out")]
    if labels:
        argv += ["--labels", labels]
    for k, v in extra.items():
        argv += [f"--{k.replace('_', '-')}", v]
    return export_tabr.export(export_tabr_args(argv))


def export_tabr_args(argv):
    import argparse

    captured = {}

    def fake_export(a):
        captured["a"] = a
        return Path(a.out)

    real = export_tabr.export
    export_tabr.export = fake_export
    try:
        export_tabr.main(argv)
    finally:
        export_tabr.export = real
    return captured["a"]


def onnx_logits(out: Path, xp: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    return sess.run(["logits"], {"x": xp.astype(np.float32)})[0]


@pytest.mark.parametrize(
    "n_classes,labels,emb,pre",
    [
        (2, "a,b", None, "standard"),
        (3, "a,b,c", {"type": "PLREmbeddings", "n_frequencies": 8, "frequency_scale": 0.1, "d_embedding": 4, "lite": True}, "quantile"),
        (None, None, {"type": "PLREmbeddings", "n_frequencies": 4, "frequency_scale": 0.1, "d_embedding": 4, "lite": False}, "minmax"),
        (2, "a,b", {"type": "LREmbeddings", "d_embedding": 3}, "standard"),
    ],
)
def test_round_trip_matches_pytorch(tmp_path, n_classes, labels, emb, pre):
    ckpt = write_case(tmp_path, n_classes, emb, preprocess=pre)
    out = run_export(tmp_path, ckpt, labels)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "tabr-model/1" and manifest["n_features"] == N_FEATURES
    golden = json.loads((out / "golden.json").read_text())
    assert len(golden["rows"]) >= 16
    assert any(v is None for r in golden["rows"] for v in r), "golden rows include missing values"
    got = onnx_logits(out, np.array(golden["preprocessed"]))
    np.testing.assert_allclose(got, np.array(golden["logits"]), atol=1e-5, rtol=1e-5)


def test_official_key_layout_loads(tmp_path):
    # The key names of the official bin/tabr.py Model for encoder_n_blocks=2,
    # predictor_n_blocks=1, mixer normalization, classes, PLR(lite) embeddings.
    official = {
        "num_embeddings.0.frequencies", "num_embeddings.1.weight", "num_embeddings.1.bias",
        "linear.weight", "linear.bias",
        "blocks0.0.0.weight", "blocks0.0.0.bias", "blocks0.0.3.weight", "blocks0.0.3.bias",
        "blocks0.1.0.weight", "blocks0.1.0.bias", "blocks0.1.1.weight", "blocks0.1.1.bias", "blocks0.1.4.weight", "blocks0.1.4.bias",
        "normalization.weight", "normalization.bias", "label_encoder.0.weight", "K.weight", "K.bias",
        "T.0.weight", "T.0.bias", "T.3.weight",
        "blocks1.0.0.weight", "blocks1.0.0.bias", "blocks1.0.1.weight", "blocks1.0.1.bias", "blocks1.0.4.weight", "blocks1.0.4.bias",
        "head.0.weight", "head.0.bias", "head.2.weight", "head.2.bias",
    }
    hp = hparams(3, {"type": "PLREmbeddings", "n_frequencies": 8, "frequency_scale": 0.1, "d_embedding": 4, "lite": True})
    hp["model"]["encoder_n_blocks"] = 2
    m = Model(**hp["model"])
    assert set(m.state_dict()) == official


def test_plain_state_dict_and_lightning_prefix(tmp_path):
    ckpt = write_case(tmp_path, 2, lightning=False)
    out = run_export(tmp_path, ckpt, "a,b")
    assert (out / "model.onnx").is_file()


def test_refusals_explain(tmp_path):
    ckpt = write_case(tmp_path, 2)
    with pytest.raises(export_tabr.ExportError, match="2 classes but 3 labels"):
        run_export(tmp_path, ckpt, "a,b,c")
    names = tmp_path / "names.json"
    names.write_text(json.dumps([f"f{i}" for i in range(80)]))
    with pytest.raises(export_tabr.ExportError, match="90 features"):
        run_export(tmp_path, ckpt, "a,b", feature_names=str(names))
    state = torch.load(ckpt, weights_only=False)
    del state["state_dict"]["model.K.weight"]
    state["state_dict"]["model.extra.weight"] = torch.zeros(1)
    torch.save(state, ckpt)
    with pytest.raises(export_tabr.ExportError, match=r"missing keys \(1\): K.weight(.|\n)*unexpected keys \(1\): extra.weight"):
        run_export(tmp_path, ckpt, "a,b")


def test_warns_when_there_is_no_imputer(tmp_path, capsys):
    from sklearn.preprocessing import StandardScaler

    ckpt = write_case(tmp_path, 2)
    run_export(tmp_path, ckpt, "a,b")
    assert "no imputer" not in capsys.readouterr().err
    # The same model with a scaler only (on a candidate set without missing values).
    x = np.nan_to_num(np.load(tmp_path / "x.npy"))
    np.save(tmp_path / "x.npy", x)
    joblib.dump(StandardScaler().fit(x), tmp_path / "pre.joblib")
    out = run_export(tmp_path, ckpt, "a,b")
    warnings = [line for line in capsys.readouterr().err.splitlines() if "no imputer" in line]
    assert len(warnings) == 1 and "invalid_features" in warnings[0]
    steps = json.loads((out / "preprocess.json").read_text())["steps"]
    assert [s["type"] for s in steps] == ["standard"]
