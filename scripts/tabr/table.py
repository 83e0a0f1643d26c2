"""Reading ``tabr-features`` output and labels for training and export.

``tabr-features`` writes CSV (``file,error,<feature names>``) or JSONL (a header line
``{"spec", "version", "names"}``, then ``{"file", "error", "values"}`` per clip). These
functions turn such a table into a matrix in the model's feature order, matching columns by
name (never by position), and refuse rows whose extraction failed, naming their files.
Labels come from a column of the same table, a ``file,label`` CSV joined by file, or a plain
list (``.npy``/``.npz``/``.txt``/one-column CSV) in row order; strings are mapped to class
indices through the model's label list.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np


class TableError(Exception):
    """An input that cannot be used, with an explanation for the user."""


def _float(v: str) -> float:
    return float(v) if v.strip() else float("nan")


def _listing(files: list[str], n: int = 8) -> str:
    return ", ".join(files[:n]) + (f" and {len(files) - n} more" if len(files) > n else "")


def is_feature_table(path: Path) -> bool:
    """Whether ``path`` looks like ``tabr-features`` output (CSV with ``file,error`` first, or JSONL)."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return True
    if suffix != ".csv":
        return False
    with path.open(newline="") as f:
        header = next(csv.reader(f), [])
    return header[:2] == ["file", "error"]


def read_table(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows as dicts (``file``, ``error``, feature values by name, any other columns) and the
    feature names the table declares, in its order."""
    if path.suffix.lower() == ".jsonl":
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if not lines or "names" not in lines[0]:
            raise TableError(f"{path.name}: not tabr-features JSONL (the first line must be its header with \"names\")")
        names = list(lines[0]["names"])
        rows = []
        for r in lines[1:]:
            row = {k: v for k, v in r.items() if k != "values"}
            values = r.get("values") or []
            if values and len(values) != len(names):
                raise TableError(f"{path.name}: {r.get('file')}: {len(values)} values for {len(names)} names")
            row.update({n: (float("nan") if v is None else float(v)) for n, v in zip(names, values)})
            rows.append(row)
        return rows, names
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        if header[:2] != ["file", "error"]:
            raise TableError(f"{path.name}: not tabr-features CSV (the header must start with file,error)")
        rows = list(reader)
    # Feature columns: those whose values parse as numbers in every good row; the rest (a
    # label column a user added) stay strings.
    names = [c for c in header[2:] if "." in c]
    for r in rows:
        for n in names:
            try:
                r[n] = _float(r[n] or "")
            except ValueError:
                raise TableError(f"{path.name}: {r['file']}: column {n} holds {r[n]!r}, not a number") from None
    return rows, names


def feature_matrix(rows: list[dict[str, Any]], table_names: list[str], names: list[str], source: str) -> np.ndarray:
    """The rows' values in ``names`` order; refuses failed rows (by file) and missing columns."""
    failed = [str(r.get("file")) for r in rows if r.get("error")]
    if failed:
        raise TableError(
            f"{source}: {len(failed)} row(s) have an extraction error and no values: {_listing(failed)} "
            "(drop them, or fix the clips and extract again)"
        )
    missing = [n for n in names if n not in set(table_names)]
    if missing:
        raise TableError(f"{source}: {len(missing)} feature column(s) missing: {_listing(missing)}")
    if not rows:
        raise TableError(f"{source}: no rows")
    return np.array([[r[n] for n in names] for r in rows], dtype=np.float64)


def class_indices(raw: list[Any], labels: list[str], source: str) -> np.ndarray:
    """Labels (strings from ``labels``, or class indices) → class indices."""
    out = []
    for i, v in enumerate(raw):
        s = str(v).strip()
        if s in labels:
            out.append(labels.index(s))
        elif s.lstrip("-").isdigit() and labels and 0 <= int(s) < len(labels):
            out.append(int(s))
        else:
            known = ", ".join(labels) if labels else "(no --labels given)"
            raise TableError(f"{source}: row {i + 1}: label {s!r} is not one of {known} nor a class index")
    return np.array(out, dtype=np.int64)


def read_labels(spec: str, rows: list[dict[str, Any]] | None, regression: bool, labels: list[str]) -> np.ndarray:
    """``--train-y``: a column of the feature table, a ``file,label`` CSV joined by file, or a
    list in row order (``.npy``, ``.npz``, ``.txt``, one-column ``.csv``)."""
    path = Path(spec)
    raw: list[Any]
    if not path.is_file():
        if rows is None or not rows or spec not in rows[0]:
            raise TableError(f"--train-y {spec}: neither a file nor a column of --train-x")
        raw = [r[spec] for r in rows]
        source = f"column {spec}"
    elif path.suffix.lower() in (".npy", ".npz"):
        a = np.load(path, allow_pickle=False)
        a = a[a.files[0]] if isinstance(a, np.lib.npyio.NpzFile) else a
        raw = list(a.reshape(-1))
        source = path.name
    elif path.suffix.lower() == ".csv":
        with path.open(newline="") as f:
            table = list(csv.reader(f))
        header = [h.strip() for h in table[0]] if table else []
        source = path.name
        if header[:1] == ["file"] and len(header) >= 2:
            if rows is None:
                raise TableError(f"{source}: a file,label table needs --train-x from tabr-features to join on")
            by_file = {r[0]: r[1] for r in table[1:] if len(r) >= 2}
            unlabelled = [str(r["file"]) for r in rows if str(r["file"]) not in by_file]
            if unlabelled:
                raise TableError(f"{source}: no label for {len(unlabelled)} file(s): {_listing(unlabelled)}")
            raw = [by_file[str(r["file"])] for r in rows]
        else:
            raw = [r[0] for r in table if r]
            if raw and not _number(raw[0]) and raw[0] not in labels:
                raw = raw[1:]  # a header line
    else:
        raw = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        source = path.name
    if regression:
        try:
            return np.array([float(v) for v in raw], dtype=np.float64)
        except ValueError:
            raise TableError(f"{source}: a regression target must be numbers") from None
    return class_indices(raw, labels, source)


def _number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False
