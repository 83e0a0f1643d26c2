"""The feature spec travels with the features: tabr/table.py reads it from a tabr-features
table (the CSV's spec column, the JSONL header), the example trainer keeps it and refuses a
contradiction, and export_tabr.py's choice of spec (recorded, given, or the stated default)
refuses a --feature-spec that contradicts what is recorded.

No torch: numpy only (the exporter and the trainer import torch after these decisions).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import export_tabr  # noqa: E402
import train_tabr_example  # noqa: E402
from tabr.table import TableError, is_feature_table, load_table, parse_spec, read_table, spec_label  # noqa: E402

NAMES = export_tabr.poc_abs_v1_names()
V1 = {"name": "poc-abs", "version": 1}
V2 = {"name": "poc-abs", "version": 2}


def write_csv(path: Path, specs: list[str] | None, n: int = 4, errors: dict[int, str] | None = None, label: bool = True) -> np.ndarray:
    """A tabr-features CSV of `n` clips: `file,spec,error,<names>` with specs[i] on row i, or
    the layout before the spec column (`file,error,<names>`) when `specs` is None."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, len(NAMES)))
    lead = ["file", "error"] if specs is None else ["file", "spec", "error"]
    lines = [",".join([*lead, *NAMES, *(["label"] if label else [])])]
    for i, row in enumerate(x):
        err = (errors or {}).get(i, "")
        vals = ["" if err else repr(float(v)) for v in row]
        cells = [f"clips/c{i}.mkv"] + ([] if specs is None else [specs[i]]) + [err] + vals + (["ab"[i % 2]] if label else [])
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return x


def write_jsonl(path: Path, header: dict, n: int = 3) -> np.ndarray:
    x = np.random.default_rng(1).normal(size=(n, len(NAMES)))
    lines = [json.dumps({**header, "names": NAMES})]
    lines += [json.dumps({"file": f"clips/c{i}.mkv", "error": None, "values": [float(v) for v in row]}) for i, row in enumerate(x)]
    path.write_text("\n".join(lines) + "\n")
    return x


# tabr/table.py


@pytest.mark.parametrize("spec,expected", [("poc-abs/1", V1), ("poc-abs/2", V2)])
def test_csv_with_the_spec_column(tmp_path, spec, expected):
    x = write_csv(tmp_path / "f.csv", [spec] * 4)
    assert is_feature_table(tmp_path / "f.csv")
    table = load_table(tmp_path / "f.csv")
    assert table.spec == expected and table.names == NAMES
    assert table.rows[2]["label"] == "a" and table.rows[2]["spec"] == spec
    np.testing.assert_array_equal(np.array([[r[n] for n in NAMES] for r in table.rows]), x)
    # read_table keeps its two results for existing callers.
    rows, names = read_table(tmp_path / "f.csv")
    assert names == NAMES and len(rows) == 4


def test_csv_without_the_spec_column_has_no_spec(tmp_path):
    write_csv(tmp_path / "f.csv", None)
    assert is_feature_table(tmp_path / "f.csv")
    table = load_table(tmp_path / "f.csv")
    assert table.spec is None and table.names == NAMES and "spec" not in table.rows[0]


def test_csv_failed_rows_carry_the_spec_too(tmp_path):
    write_csv(tmp_path / "f.csv", ["poc-abs/2"] * 4, errors={1: "no_face"})
    table = load_table(tmp_path / "f.csv")
    assert table.spec == V2 and table.rows[1]["error"] == "no_face"


def test_a_csv_mixing_specs_is_refused_naming_them(tmp_path):
    write_csv(tmp_path / "f.csv", ["poc-abs/1", "poc-abs/2", "poc-abs/1", "poc-abs/2"])
    with pytest.raises(TableError) as e:
        load_table(tmp_path / "f.csv")
    msg = str(e.value)
    assert msg.startswith("f.csv: rows of more than one feature spec") and "\n" not in msg
    assert "poc-abs/1: 2 row(s), e.g. clips/c0.mkv" in msg and "poc-abs/2: 2 row(s), e.g. clips/c1.mkv" in msg
    assert "--spec" in msg


def test_a_csv_with_some_rows_without_a_spec_is_refused(tmp_path):
    write_csv(tmp_path / "f.csv", ["poc-abs/2", "", "poc-abs/2", "poc-abs/2"])
    with pytest.raises(TableError, match=r"more than one feature spec \(\(none\): 1 row\(s\), e.g. clips/c1.mkv; poc-abs/2: 3"):
        load_table(tmp_path / "f.csv")


def test_a_csv_spec_that_is_not_name_slash_version_is_refused(tmp_path):
    write_csv(tmp_path / "f.csv", ["poc-abs"] * 4)
    with pytest.raises(TableError, match=r"f.csv: feature spec 'poc-abs' is not name/version"):
        load_table(tmp_path / "f.csv")


def test_other_csvs_are_not_feature_tables(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    assert not is_feature_table(tmp_path / "x.csv")
    with pytest.raises(TableError, match="header must start with file,spec,error or file,error"):
        load_table(tmp_path / "x.csv")


@pytest.mark.parametrize("header,expected", [({"spec": "poc-abs", "version": 1}, V1), ({"spec": "poc-abs", "version": 2}, V2), ({}, None)])
def test_jsonl_spec_from_its_header(tmp_path, header, expected):
    x = write_jsonl(tmp_path / "f.jsonl", header)
    table = load_table(tmp_path / "f.jsonl")
    assert table.spec == expected and table.names == NAMES
    np.testing.assert_allclose(np.array([[r[n] for n in NAMES] for r in table.rows]), x)


def test_jsonl_with_a_bad_version_is_refused(tmp_path):
    write_jsonl(tmp_path / "f.jsonl", {"spec": "poc-abs", "version": "two"})
    with pytest.raises(TableError, match="not a feature spec"):
        load_table(tmp_path / "f.jsonl")


def test_parse_spec_and_its_label():
    assert parse_spec(" poc-abs/2 ", "x") == V2 and spec_label(V2) == "poc-abs/2"
    for bad in ["poc-abs", "/2", "poc-abs/v2", ""]:
        with pytest.raises(TableError):
            parse_spec(bad, "x")


# export_tabr.py: which spec is exported


def test_the_recorded_spec_is_the_default():
    assert export_tabr.resolve_spec(None, [("the checkpoint's hyper-parameters", V2), ("--train-x c.csv", None)]) == (
        {**V2, "params": {}}, "the checkpoint's hyper-parameters")
    assert export_tabr.resolve_spec(None, [("--train-x c.csv", V2)]) == ({**V2, "params": {}}, "--train-x c.csv")


def test_nothing_recorded_and_no_flag_is_v1_said_as_a_default():
    spec, where = export_tabr.resolve_spec(None, [("--train-x x.npy", None)])
    assert spec == {**V1, "params": {}} and where is None
    spec["params"]["x"] = 1
    assert export_tabr.DEFAULT_SPEC["params"] == {}, "the default is not shared"


def test_a_flag_works_when_nothing_is_recorded_and_when_it_agrees():
    flag = {**V2, "params": {"max_seconds": 20}}
    assert export_tabr.resolve_spec(flag, []) == (flag, "--feature-spec")
    assert export_tabr.resolve_spec(flag, [("the checkpoint's hyper-parameters", V2), ("--train-x c.csv", V2)]) == (flag, "--feature-spec")


def test_a_flag_that_contradicts_the_record_is_refused_in_one_line():
    with pytest.raises(export_tabr.ExportError) as e:
        export_tabr.resolve_spec(V1, [("the checkpoint's hyper-parameters", V2)])
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("--feature-spec says poc-abs/1 but the checkpoint's hyper-parameters records poc-abs/2")


def test_a_checkpoint_and_a_table_that_disagree_are_refused():
    with pytest.raises(export_tabr.ExportError, match="the checkpoint's hyper-parameters records feature spec poc-abs/1 but --train-x c.csv records poc-abs/2"):
        export_tabr.resolve_spec(None, [("the checkpoint's hyper-parameters", V1), ("--train-x c.csv", V2)])


@pytest.mark.parametrize("text,expected", [
    ("poc-abs/2", V2),
    ('{"name": "poc-abs", "version": 2}', V2),
    ('{"name": "poc-abs", "version": 1, "params": {"max_seconds": 20}}', {**V1, "params": {"max_seconds": 20}}),
])
def test_feature_spec_flag_forms(text, expected):
    assert export_tabr.feature_spec(text, "--feature-spec") == expected
    assert export_tabr.feature_spec(expected, "x") == expected


@pytest.mark.parametrize("text", ["{nope", "poc-abs", '{"name": "poc-abs"}', '{"name": "poc-abs", "version": true}', "[1]"])
def test_bad_feature_spec_flags_are_refused(text):
    with pytest.raises(export_tabr.ExportError, match="--feature-spec"):
        export_tabr.feature_spec(text, "--feature-spec")


def candidates_args(tmp: Path, train_x: Path) -> argparse.Namespace:
    return argparse.Namespace(train_x=str(train_x), train_y="label", candidate_ids="file")


@pytest.mark.parametrize("specs,expected", [(["poc-abs/2"] * 4, V2), (None, None)])
def test_load_candidates_gives_the_tables_spec(tmp_path, specs, expected):
    x = write_csv(tmp_path / "c.csv", specs)
    x_raw, y, source, spec, ids = export_tabr.load_candidates(candidates_args(tmp_path, tmp_path / "c.csv"), NAMES, "binclass", ["a", "b"])
    assert spec == expected and source == "c.csv (tabr-features, 4 clips)"
    # --candidate-ids file: each candidate is named by its clip.
    assert ids == [f"clips/c{i}.mkv" for i in range(4)]
    np.testing.assert_array_equal(x_raw, x)
    assert list(y) == [0, 1, 0, 1]


def test_load_candidates_refuses_a_mixed_table(tmp_path):
    write_csv(tmp_path / "c.csv", ["poc-abs/1", "poc-abs/1", "poc-abs/2", "poc-abs/2"])
    with pytest.raises(export_tabr.ExportError, match="more than one feature spec"):
        export_tabr.load_candidates(candidates_args(tmp_path, tmp_path / "c.csv"), NAMES, "binclass", ["a", "b"])


def test_npy_candidates_record_no_spec(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((4, len(NAMES))))
    np.save(tmp_path / "y.npy", np.array([0, 1, 0, 1]))
    args = argparse.Namespace(train_x=str(tmp_path / "x.npy"), train_y=str(tmp_path / "y.npy"), candidate_ids=None)
    out = export_tabr.load_candidates(args, NAMES, "binclass", ["a", "b"])
    assert out[3] is None and out[4] == ["row 0", "row 1", "row 2", "row 3"]


def test_help_says_the_default_follows_the_record(capsys):
    with pytest.raises(SystemExit):
        export_tabr.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--feature-spec" in text and "record" in text and "poc-abs/2" in text


# train_tabr_example.py: the table's spec, before any training (no torch)


def train_argv(tmp: Path, features: Path, *extra: str) -> list[str]:
    return ["--features", str(features), "--train-y", "label", "--labels", "a,b", "--out", str(tmp / "run"), *extra]


def test_the_trainer_refuses_a_mixed_table(tmp_path, capsys):
    write_csv(tmp_path / "f.csv", ["poc-abs/1", "poc-abs/2", "poc-abs/2", "poc-abs/2"])
    assert train_tabr_example.main(train_argv(tmp_path, tmp_path / "f.csv")) == 2
    err = capsys.readouterr().err
    assert err.startswith("train_tabr_example: f.csv: rows of more than one feature spec") and err.count("\n") == 1


def test_the_trainer_refuses_a_feature_spec_that_contradicts_the_table(tmp_path, capsys):
    write_csv(tmp_path / "f.csv", ["poc-abs/2"] * 4)
    assert train_tabr_example.main(train_argv(tmp_path, tmp_path / "f.csv", "--feature-spec", "poc-abs/1")) == 2
    err = capsys.readouterr().err
    assert err == "train_tabr_example: --feature-spec says poc-abs/1 but f.csv records poc-abs/2\n"
    assert not (tmp_path / "run").exists()
