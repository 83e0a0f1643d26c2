"""Reading ``tabr-features`` output and labels for training and export.

``tabr-features`` writes CSV (``file,spec,error,<feature names>``, the ``spec`` column holding
e.g. ``poc-abs/2`` on every row; older builds wrote ``file,error,<feature names>``, without the
spec) or JSONL (a header line ``{"spec", "version", "names"}``, then ``{"file", "error",
"values"}`` per clip). These functions turn such a table into a matrix in the model's feature
order, matching columns by name (never by position), refuse rows whose extraction failed,
naming their files, and say which feature spec the table was made with (``Table.spec``:
``{"name": "poc-abs", "version": 2}``, or ``None`` for a CSV without the spec column); a table
that mixes specs is refused.
Labels come from a column of the same table, a ``file,label`` CSV joined by file, or a plain
list (``.npy``/``.npz``/``.txt``/one-column CSV) in row order; strings are mapped to class
indices through the model's label list.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


class TableError(Exception):
    """An input that cannot be used, with an explanation for the user."""


def _float(v: str) -> float:
    return float(v) if v.strip() else float("nan")


def _listing(files: list[str], n: int = 8) -> str:
    return ", ".join(files[:n]) + (f" and {len(files) - n} more" if len(files) > n else "")


#: The leading columns of a ``tabr-features`` CSV, newest first: with the spec column, and as
#: builds before it wrote them.
CSV_LAYOUTS = (["file", "spec", "error"], ["file", "error"])


@dataclass
class Table:
    """A ``tabr-features`` table: its rows (dicts: ``file``, ``error``, feature values by name,
    any other columns), the feature names it declares in its order, and the feature spec it was
    made with (``{"name", "version"}``; ``None`` when the table does not say)."""

    rows: list[dict[str, Any]]
    names: list[str]
    spec: dict[str, Any] | None


def parse_spec(text: str, source: str) -> dict[str, Any]:
    """``poc-abs/2`` → ``{"name": "poc-abs", "version": 2}``."""
    name, slash, version = text.strip().rpartition("/")
    if not slash or not name or not version.isdigit():
        raise TableError(f"{source}: feature spec {text!r} is not name/version (e.g. poc-abs/2)")
    return {"name": name, "version": int(version)}


def spec_label(spec: dict[str, Any]) -> str:
    """``{"name": "poc-abs", "version": 2}`` → ``poc-abs/2``."""
    return f"{spec.get('name')}/{spec.get('version')}"


def _csv_layout(header: list[str]) -> list[str] | None:
    return next((lead for lead in CSV_LAYOUTS if header[: len(lead)] == lead), None)


def is_feature_table(path: Path) -> bool:
    """Whether ``path`` looks like ``tabr-features`` output (CSV starting ``file,spec,error`` or
    ``file,error``, or JSONL)."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return True
    if suffix != ".csv":
        return False
    with path.open(newline="") as f:
        header = next(csv.reader(f), [])
    return _csv_layout(header) is not None


def _jsonl_spec(header: dict[str, Any], source: str) -> dict[str, Any] | None:
    spec, version = header.get("spec"), header.get("version")
    if spec is None:
        return None
    if isinstance(spec, str) and "/" in spec and version is None:
        return parse_spec(spec, source)
    if not isinstance(spec, str) or not spec or isinstance(version, bool) or not isinstance(version, int):
        raise TableError(f"{source}: the header's spec {spec!r} and version {version!r} are not a feature spec")
    return {"name": spec, "version": version}


def _csv_spec(rows: list[dict[str, Any]], source: str) -> dict[str, Any] | None:
    """The one spec every row's ``spec`` cell names; a table mixing specs is refused."""
    by_spec: dict[str, list[str]] = {}
    for r in rows:
        by_spec.setdefault((r.get("spec") or "").strip(), []).append(str(r.get("file")))
    if len(by_spec) > 1:
        parts = "; ".join(f"{s or '(none)'}: {len(f)} row(s), e.g. {f[0]}" for s, f in sorted(by_spec.items()))
        raise TableError(
            f"{source}: rows of more than one feature spec ({parts}); a model takes features of one spec: "
            "extract every clip with the same --spec"
        )
    value = next(iter(by_spec), "")
    return parse_spec(value, source) if value else None


def load_table(path: Path) -> Table:
    """A ``tabr-features`` table (CSV or JSONL) with the feature spec it was made with."""
    if path.suffix.lower() == ".jsonl":
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if not lines or "names" not in lines[0]:
            raise TableError(f"{path.name}: not tabr-features JSONL (the first line must be its header with \"names\")")
        names = list(lines[0]["names"])
        spec = _jsonl_spec(lines[0], path.name)
        rows = []
        for r in lines[1:]:
            row = {k: v for k, v in r.items() if k != "values"}
            values = r.get("values") or []
            if values and len(values) != len(names):
                raise TableError(f"{path.name}: {r.get('file')}: {len(values)} values for {len(names)} names")
            row.update({n: (float("nan") if v is None else float(v)) for n, v in zip(names, values, strict=False)})
            rows.append(row)
        return Table(rows, names, spec)
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        lead = _csv_layout(header)
        if lead is None:
            raise TableError(f"{path.name}: not tabr-features CSV (the header must start with file,spec,error or file,error)")
        rows = list(reader)
    spec = _csv_spec(rows, path.name) if "spec" in lead else None
    # Feature columns: the dotted names after the leading columns; the rest (a label column a
    # user added) stay strings.
    names = [c for c in header[len(lead) :] if "." in c]
    for r in rows:
        for n in names:
            try:
                r[n] = _float(r[n] or "")
            except ValueError:
                raise TableError(f"{path.name}: {r['file']}: column {n} holds {r[n]!r}, not a number") from None
    return Table(rows, names, spec)


def read_table(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows as dicts (``file``, ``error``, feature values by name, any other columns) and the
    feature names the table declares, in its order (``load_table`` also gives its spec)."""
    table = load_table(path)
    return table.rows, table.names


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
