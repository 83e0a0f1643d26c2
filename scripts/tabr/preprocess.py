"""scikit-learn preprocessing → ``preprocess.json`` (format ``tabr-preprocess/1``).

Supported: ``SimpleImputer`` (mean, median, most_frequent, constant; NaN as the missing value),
``StandardScaler``, ``MinMaxScaler`` (with ``clip``), ``QuantileTransformer`` with normal
output, and a ``Pipeline`` of these. The Rust core applies the same maths
(``crates/tabr-core/src/model/preprocess.rs``); anything else is refused with its name.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

FORMAT = "tabr-preprocess/1"


def _floats(a: Any) -> list[float]:
    return [float(v) for v in np.asarray(a, dtype=np.float64).ravel()]


def step_to_json(step: Any, n_features: int) -> list[dict[str, Any]]:
    """One fitted estimator (or a Pipeline) as a list of step dicts."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MinMaxScaler, QuantileTransformer, StandardScaler

    if isinstance(step, Pipeline):
        return [s for _, est in step.steps if est not in (None, "passthrough") for s in step_to_json(est, n_features)]
    n_in = getattr(step, "n_features_in_", n_features)
    if n_in != n_features:
        raise ValueError(f"{type(step).__name__} was fitted on {n_in} features, the model has {n_features}")
    if isinstance(step, SimpleImputer):
        mv = step.missing_values
        if not (isinstance(mv, float) and math.isnan(mv)):
            raise ValueError(f"SimpleImputer(missing_values={mv!r}) is not supported: use NaN as the missing value")
        stats = np.asarray(step.statistics_, dtype=np.float64)
        if len(stats) != n_features or np.isnan(stats).any():
            raise ValueError("SimpleImputer has features without a statistic (all-missing in training): refit with keep_empty_features=True")
        return [{"type": "imputer", "strategy": step.strategy, "statistics": _floats(stats)}]
    if isinstance(step, StandardScaler):
        mean = step.mean_ if step.with_mean else np.zeros(n_features)
        scale = step.scale_ if step.with_std else np.ones(n_features)
        return [{"type": "standard", "mean": _floats(mean), "scale": _floats(scale)}]
    if isinstance(step, MinMaxScaler):
        lo, hi = step.feature_range
        return [{"type": "minmax", "scale": _floats(step.scale_), "min": _floats(step.min_), "clip": bool(step.clip), "range": [float(lo), float(hi)]}]
    if isinstance(step, QuantileTransformer):
        if step.output_distribution != "normal":
            raise ValueError("QuantileTransformer must use output_distribution='normal'")
        q = np.asarray(step.quantiles_, dtype=np.float64)  # [n_quantiles, n_features]
        return [{"type": "quantile_normal", "references": _floats(step.references_), "quantiles": [_floats(q[:, j]) for j in range(q.shape[1])]}]
    raise ValueError(f"preprocessing step {type(step).__name__} is not supported (SimpleImputer, StandardScaler, MinMaxScaler, QuantileTransformer, Pipeline)")


def to_json(preprocessors: list[Any], n_features: int) -> dict[str, Any]:
    steps = [s for p in preprocessors for s in step_to_json(p, n_features)]
    return {"format": FORMAT, "n_features": n_features, "steps": steps}


def apply(preprocessors: list[Any], x: np.ndarray) -> np.ndarray:
    """The reference: scikit-learn's own transforms, in order."""
    out = np.asarray(x, dtype=np.float64)
    for p in preprocessors:
        out = p.transform(out)
    return out
