"""Exporter round trips: a small random TabR → checkpoint → export → ONNX, against PyTorch.

Run (needs torch; outside `make test`): make test-python
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

# The round trips need the pinned tooling (torch from PyPI, a few GB): without it the module is
# skipped with this reason, shown by `pytest -rs`; the exporter's torch-free parts are tested in
# test_spec.py.
torch = pytest.importorskip("torch", reason="torch is not installed: the exporter's round trips need the pinned tooling (make test-python)")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (make test-python)")
joblib = pytest.importorskip("joblib", reason="joblib is not installed (make test-python)")

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
            "--preprocess", str(tmp / "pre.joblib"), "--name", "t", "--out", str(tmp / "out"), "--force"]
    if labels:
        argv += ["--labels", labels]
    for k, v in extra.items():
        argv += [f"--{k.replace('_', '-')}", v]
    return export_tabr.export(export_tabr_args(argv))


def export_tabr_args(argv):

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


def cli(argv: list[str], capsys) -> tuple[int, str]:
    """export_tabr's main as a user runs it: the exit status and stderr."""
    code = export_tabr.main(argv)
    return code, capsys.readouterr().err


def base_argv(tmp: Path, ckpt: Path, **over) -> list[str]:
    args = {"checkpoint": str(ckpt), "hparams": str(tmp / "hp.json"), "train-x": str(tmp / "x.npy"), "train-y": str(tmp / "y.npy"),
            "preprocess": str(tmp / "pre.joblib"), "labels": "a,b", "name": "t", "out": str(tmp / "out")}
    args.update(over)
    argv = []
    for k, v in args.items():
        if v is not None:
            argv += [f"--{k}", v]
    return argv


def write_table(path: Path, x: np.ndarray, labels: list[str], errors: dict[int, str] | None = None, order: list[int] | None = None) -> None:
    """x as tabr-features CSV (with a label column), columns in `order`."""
    names = export_tabr.poc_abs_v1_names()
    order = order or list(range(len(names)))
    lines = [",".join(["file", "error", *[names[j] for j in order], "label"])]
    for i, row in enumerate(x):
        err = (errors or {}).get(i, "")
        vals = ["" if err or np.isnan(row[j]) else repr(float(row[j])) for j in order]
        lines.append(",".join([f"clips/c{i}.mkv", err, *vals, labels[i]]))
    path.write_text("\n".join(lines) + "\n")


def test_takes_tabr_features_csv_with_columns_by_name_and_a_label_column(tmp_path, capsys):
    ckpt = write_case(tmp_path, 2)
    x, y = np.load(tmp_path / "x.npy"), np.load(tmp_path / "y.npy")
    names = ["a", "b"]
    write_table(tmp_path / "f.csv", x, [names[int(v)] for v in y])
    code, err = cli(base_argv(tmp_path, ckpt, **{"train-x": str(tmp_path / "f.csv"), "train-y": "label"}), capsys)
    assert code == 0, err
    from_npy = tmp_path / "npy"
    assert cli(base_argv(tmp_path, ckpt, out=str(from_npy)), capsys)[0] == 0
    # The same candidates give the same model: golden rows and outputs alike.
    assert json.loads((tmp_path / "out/golden.json").read_text()) == json.loads((from_npy / "golden.json").read_text())
    # Columns shuffled: matched by name, same result.
    rng = np.random.default_rng(1)
    write_table(tmp_path / "g.csv", x, [names[int(v)] for v in y], order=list(rng.permutation(N_FEATURES)))
    assert cli(base_argv(tmp_path, ckpt, **{"train-x": str(tmp_path / "g.csv"), "train-y": "label", "out": str(tmp_path / "g")}), capsys)[0] == 0
    assert json.loads((tmp_path / "g/golden.json").read_text()) == json.loads((from_npy / "golden.json").read_text())
    readme = (tmp_path / "out/README.md").read_text()
    assert "MODEL_REGISTRY=t:tabr:" in readme and "f.csv (tabr-features, 60 clips)" in readme


def test_refuses_failed_rows_by_file_and_unknown_labels(tmp_path, capsys):
    ckpt = write_case(tmp_path, 2)
    x, y = np.load(tmp_path / "x.npy"), np.load(tmp_path / "y.npy")
    write_table(tmp_path / "f.csv", x, ["a" if v == 0 else "b" for v in y], errors={3: "no_face", 17: "invalid_video"})
    code, err = cli(base_argv(tmp_path, ckpt, **{"train-x": str(tmp_path / "f.csv"), "train-y": "label"}), capsys)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("export_tabr: f.csv: 2 row(s) have an extraction error") and "clips/c3.mkv, clips/c17.mkv" in err
    write_table(tmp_path / "f.csv", x, ["a" if v == 0 else "maybe" for v in y])
    code, err = cli(base_argv(tmp_path, ckpt, **{"train-x": str(tmp_path / "f.csv"), "train-y": "label"}), capsys)
    assert code == 2 and "label 'maybe' is not one of a, b" in err
    code, err = cli(base_argv(tmp_path, ckpt, **{"train-x": str(tmp_path / "f.csv"), "train-y": "nope"}), capsys)
    assert code == 2 and "--train-y nope: neither a file nor a column of --train-x" in err


@pytest.mark.parametrize("kind", ["robust", "quantile_uniform", "not_joblib"])
def test_unsupported_preprocessing_is_one_line_and_exit_2(tmp_path, capsys, kind):
    from sklearn.preprocessing import QuantileTransformer, RobustScaler

    ckpt = write_case(tmp_path, 2)
    x = np.nan_to_num(np.load(tmp_path / "x.npy"))
    if kind == "not_joblib":
        (tmp_path / "pre.joblib").write_text("not a pickle")
    else:
        joblib.dump((RobustScaler() if kind == "robust" else QuantileTransformer(n_quantiles=10)).fit(x), tmp_path / "pre.joblib")
    code, err = cli(base_argv(tmp_path, ckpt), capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("export_tabr: --preprocess"), err
    assert "Traceback" not in err
    assert {"robust": "RobustScaler is not supported", "quantile_uniform": "output_distribution='normal'", "not_joblib": "not a joblib file"}[kind] in err


def test_states_defaults_and_refuses_a_forgotten_scaler(tmp_path, capsys):
    ckpt = write_case(tmp_path, 2)
    hp = json.loads((tmp_path / "hp.json").read_text())
    del hp["context_size"]
    (tmp_path / "hp.json").write_text(json.dumps(hp))
    x = np.load(tmp_path / "x.npy")
    np.save(tmp_path / "x.npy", np.nan_to_num(x) * 40 + 100)  # far from standardised
    # No context_size: the default is stated; 60 candidates cannot fill it: refused.
    code, err = cli(base_argv(tmp_path, ckpt, preprocess=None, **{"raw-inputs": None}), capsys)
    assert code == 2 and "using TabR's default, 96" in err and "context_size 96 is larger than the 60 candidates" in err
    hp["context_size"] = 8
    (tmp_path / "hp.json").write_text(json.dumps(hp))
    # No --preprocess while the candidates are far from standardised: a forgotten scaler.
    code, err = cli(base_argv(tmp_path, ckpt, preprocess=None), capsys)
    assert code == 2 and "far from standardised" in err and "--raw-inputs" in err
    code, err = cli(base_argv(tmp_path, ckpt, preprocess=None) + ["--raw-inputs"], capsys)
    assert code == 0 and "requests reach the network as raw feature values" in err, err


def test_out_must_be_fresh_unless_forced_and_help_explains_every_flag(tmp_path, capsys):
    ckpt = write_case(tmp_path, 2)
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("from an earlier export")
    code, err = cli(base_argv(tmp_path, ckpt), capsys)
    assert code == 2 and "not empty (pass --force" in err
    assert cli(base_argv(tmp_path, ckpt) + ["--force"], capsys)[0] == 0
    assert not (out / "old.txt").exists() and (out / "README.md").is_file()
    with pytest.raises(SystemExit):
        export_tabr.main(["--help"])
    text = capsys.readouterr().out
    for flag in ["--checkpoint", "--hparams", "--train-x", "--train-y", "--preprocess", "--raw-inputs", "--labels", "--name", "--version", "--out", "--force", "--cascade", "--seed"]:
        line = next(line for line in text.splitlines() if line.strip().startswith(flag))
        rest = text[text.index(line) + len(line.split(flag, 1)[0]) :].split("\n  --")[0]
        assert len(rest.split()) > 3, f"{flag} has no help"


def test_a_model_that_breaks_in_onnxruntime_is_refused(tmp_path, capsys, monkeypatch):
    ckpt = write_case(tmp_path, 2)

    def tampered(out, golden, tolerance=1e-4):
        golden = {**golden, "logits": [[v + 1.0 for v in r] for r in golden["logits"]]}
        return real(out, golden, tolerance)

    real = export_tabr.verify_onnx
    monkeypatch.setattr(export_tabr, "verify_onnx", tampered)
    code, err = cli(base_argv(tmp_path, ckpt), capsys)
    assert code == 2 and "away from PyTorch's" in err


def test_dependencies_are_pinned_to_what_runs_here():
    import importlib.metadata as md
    import re

    root = Path(__file__).resolve().parents[1]
    pins = dict(line.split("==") for line in (root / "requirements.txt").read_text().splitlines() if line and not line.startswith("#"))
    for name, version in pins.items():
        assert md.version(name).split("+")[0] == version, f"{name} {md.version(name)} is installed, requirements.txt pins {version}"
    for script in ["export_tabr.py", "make_demo_model.py", "train_tabr_example.py"]:
        header = (root / script).read_text().split("# ///")[1]
        for dep in re.findall(r'"([A-Za-z0-9_.-]+)==([^"]+)"', header):
            assert pins.get(dep[0]) == dep[1], f"{script} pins {dep[0]}=={dep[1]}, requirements.txt {pins.get(dep[0])}"
        quoted = re.findall(r'"([^"]+)"', header)
        assert quoted and all("==" in q for q in quoted if q[0].isalpha()), f"{script}: every dependency pinned ({quoted})"


def test_takes_tabr_features_jsonl_with_labels_from_a_file_label_csv(tmp_path, capsys):
    ckpt = write_case(tmp_path, 2)
    x, y = np.load(tmp_path / "x.npy"), np.load(tmp_path / "y.npy")
    names = export_tabr.poc_abs_v1_names()
    lines = [json.dumps({"spec": "poc-abs", "version": 1, "names": names})]
    lines += [json.dumps({"file": f"clips/c{i}.mkv", "error": None, "values": [None if np.isnan(v) else float(v) for v in row]}) for i, row in enumerate(x)]
    (tmp_path / "f.jsonl").write_text("\n".join(lines) + "\n")
    # Labels by file, in another order than the features.
    (tmp_path / "labels.csv").write_text("file,label\n" + "".join(f"clips/c{i}.mkv,{'ab'[int(y[i])]}\n" for i in reversed(range(len(y)))))
    code, err = cli(base_argv(tmp_path, ckpt, **{"train-x": str(tmp_path / "f.jsonl"), "train-y": str(tmp_path / "labels.csv")}), capsys)
    assert code == 0, err
    assert cli(base_argv(tmp_path, ckpt, out=str(tmp_path / "npy")), capsys)[0] == 0
    assert json.loads((tmp_path / "out/golden.json").read_text()) == json.loads((tmp_path / "npy/golden.json").read_text())
    (tmp_path / "labels.csv").write_text("file,label\nclips/c0.mkv,a\n")
    code, err = cli(base_argv(tmp_path, ckpt, **{"train-x": str(tmp_path / "f.jsonl"), "train-y": str(tmp_path / "labels.csv")}), capsys)
    assert code == 2 and "no label for 59 file(s): clips/c1.mkv" in err


def test_the_recorded_feature_spec_is_exported_and_a_contradiction_refused(tmp_path, capsys):
    ckpt = write_case(tmp_path, 2)
    # The checkpoint records poc-abs/2 (as train_tabr_example.py saves it): exported as v2, no cascade.
    state = torch.load(ckpt, weights_only=False)
    state["hyper_parameters"]["feature_spec"] = {"name": "poc-abs", "version": 2}
    torch.save(state, ckpt)
    code, err = cli(base_argv(tmp_path, ckpt, hparams=None), capsys)
    assert code == 0, err
    manifest = json.loads((tmp_path / "out/manifest.json").read_text())
    assert manifest["features"] == {"name": "poc-abs", "version": 2, "params": {}}
    assert "face_cascade" not in manifest["files"] and not (tmp_path / "out/face_cascade.xml").exists()
    assert "feature spec" not in err, "a recorded spec is not a default to state"
    # --feature-spec that contradicts it: one line, status 2, nothing written.
    code, err = cli(base_argv(tmp_path, ckpt, hparams=None, out=str(tmp_path / "v1"), **{"feature-spec": "poc-abs/1"}), capsys)
    assert code == 2 and err.count("\n") == 1 and not (tmp_path / "v1").exists()
    assert err.startswith("export_tabr: --feature-spec says poc-abs/1 but the checkpoint's hyper-parameters records poc-abs/2"), err
    # A candidates table of the other spec: refused.
    x, y = np.load(tmp_path / "x.npy"), np.load(tmp_path / "y.npy")
    write_table(tmp_path / "f.csv", x, ["ab"[int(v)] for v in y])
    text = (tmp_path / "f.csv").read_text().splitlines()
    text = [text[0].replace("file,error,", "file,spec,error,", 1)] + [line.replace(",", ",poc-abs/1,", 1) for line in text[1:]]
    (tmp_path / "f.csv").write_text("\n".join(text) + "\n")
    code, err = cli(base_argv(tmp_path, ckpt, hparams=None, out=str(tmp_path / "t"), **{"train-x": str(tmp_path / "f.csv"), "train-y": "label"}), capsys)
    assert code == 2 and "but --train-x f.csv records poc-abs/1" in err


def test_the_spec_of_the_candidates_table_is_exported_and_nothing_recorded_is_stated(tmp_path, capsys):
    ckpt = write_case(tmp_path, 2)
    x, y = np.load(tmp_path / "x.npy"), np.load(tmp_path / "y.npy")
    write_table(tmp_path / "f.csv", x, ["ab"[int(v)] for v in y])
    # No spec anywhere (a CSV before the spec column, hp.json without one): v1, said on stderr.
    code, err = cli(base_argv(tmp_path, ckpt, **{"train-x": str(tmp_path / "f.csv"), "train-y": "label"}), capsys)
    assert code == 0 and "no feature spec recorded" in err and "poc-abs/1 assumed" in err
    assert (tmp_path / "out/face_cascade.xml").is_file()
    # The table names poc-abs/2: the model is v2 without --feature-spec.
    text = (tmp_path / "f.csv").read_text().splitlines()
    text = [text[0].replace("file,error,", "file,spec,error,", 1)] + [line.replace(",", ",poc-abs/2,", 1) for line in text[1:]]
    (tmp_path / "f.csv").write_text("\n".join(text) + "\n")
    code, err = cli(base_argv(tmp_path, ckpt, **{"train-x": str(tmp_path / "f.csv"), "train-y": "label", "out": str(tmp_path / "v2")}), capsys)
    assert code == 0 and "assumed" not in err, err
    assert json.loads((tmp_path / "v2/manifest.json").read_text())["features"]["version"] == 2
    assert not (tmp_path / "v2/face_cascade.xml").exists()


@pytest.mark.parametrize("n_classes,labels", [(2, "a,b"), (3, "a,b,c"), (None, None)])
def test_evidence_equals_a_direct_pytorch_retrieval(tmp_path, n_classes, labels):
    """The graph's evidence outputs against TabR's retrieval computed here from the model's
    own modules on the same candidates: the nearest candidates, their squared key distances,
    their softmax weights over the context, their labels, the input-space nearest distance,
    and candidates.json's leave-one-out distribution (≤ 1e-5)."""
    ckpt = write_case(tmp_path, n_classes)
    out = run_export(tmp_path, ckpt, labels)
    manifest = json.loads((out / "manifest.json").read_text())
    ev = manifest["onnx"]["evidence"]
    assert ev["k"] == 5 and manifest["files"]["candidates"] == "candidates.json"
    hp = json.loads((tmp_path / "hp.json").read_text())
    model = Model(**hp["model"])
    model.load_state_dict({k.removeprefix("model."): v for k, v in torch.load(ckpt)["state_dict"].items()})
    model.eval()
    pipe = joblib.load(tmp_path / "pre.joblib")
    x_train = pipe.transform(np.load(tmp_path / "x.npy"))
    y = np.load(tmp_path / "y.npy")
    golden = json.loads((out / "golden.json").read_text())
    xq = np.array(golden["preprocessed"], dtype=np.float32)
    with torch.no_grad():
        ck = model.encode(torch.tensor(x_train, dtype=torch.float32))[1].double()
        k = model.encode(torch.tensor(xq))[1].double()
        d = torch.cdist(k, ck).square()
        order = d.argsort(-1)
        context = order[:, : hp["context_size"]]
        weights = torch.softmax(-d.gather(1, context), -1)[:, :5].numpy()
        idx = order[:, :5].numpy()
        dist = d.gather(1, order[:, :5]).numpy()
        xt = torch.tensor(x_train, dtype=torch.float64)
        d_in = torch.cdist(torch.tensor(xq, dtype=torch.float64), xt).square()
        nearest_in = d_in.min(-1).values.numpy()
        loo = torch.cdist(xt, xt).square()
        loo.fill_diagonal_(torch.inf)
        loo = np.sort(loo.min(-1).values.numpy())
    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [ev[n] for n in ("index", "distance", "weight", "label", "novelty")]
    g_idx, g_dist, g_w, g_label, g_near = sess.run(names, {"x": xq})
    np.testing.assert_array_equal(g_idx, idx)
    np.testing.assert_allclose(g_dist, dist, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(dist).max())))
    np.testing.assert_allclose(g_w, weights, atol=1e-5)
    np.testing.assert_allclose(g_label, y[idx], atol=1e-6)
    np.testing.assert_allclose(g_near[:, 0], nearest_in, rtol=1e-5, atol=1e-3)
    cands = json.loads((out / "candidates.json").read_text())
    assert cands["ids"] == [f"row {i}" for i in range(len(x_train))]
    np.testing.assert_allclose(cands["nearest_distance"], loo, rtol=1e-5)
    if n_classes:
        assert cands["labels"] == [labels.split(",")[int(v)] for v in y]


def test_candidate_ids_come_from_a_table_column_or_a_file_and_k_is_checked(tmp_path, capsys):
    ckpt = write_case(tmp_path, 2)
    (tmp_path / "ids.txt").write_text("".join(f"clip_{i:02d}.mp4\n" for i in range(60)))
    out = run_export(tmp_path, ckpt, "a,b", candidate_ids=str(tmp_path / "ids.txt"), evidence_k="3")
    assert json.loads((out / "candidates.json").read_text())["ids"][:2] == ["clip_00.mp4", "clip_01.mp4"]
    assert json.loads((out / "manifest.json").read_text())["onnx"]["evidence"]["k"] == 3
    (tmp_path / "short.txt").write_text("a\nb\n")
    rc, err = cli(base_argv(tmp_path, ckpt, **{"candidate-ids": str(tmp_path / "short.txt")}), capsys)
    assert rc == 2 and "2 ids for 60 candidates" in err
    rc, err = cli(base_argv(tmp_path, ckpt, **{"evidence-k": "0"}), capsys)
    assert rc == 2 and "--evidence-k 0" in err
