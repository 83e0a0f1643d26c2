"""The feature specs as the native core describes them (``tabr-features --describe``), read from
``specs.json`` beside this module: written by ``make contracts`` from the built addon, checked by
``packages/server/test/contracts.test.ts``. The Python tooling reads names, lengths and what each
spec's face method takes from here instead of restating them (the independent v2 reference,
``scripts/poc_abs_v2_reference.py``, keeps its own copy on purpose: it checks the core).
"""
from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SPECS_JSON = Path(__file__).with_name("specs.json")


@cache
def specs() -> dict[str, dict[str, Any]]:
    """Every public spec by id (``poc-abs/2``): version, face_method, n_features, names, needs."""
    return {s["id"]: s for s in json.loads(SPECS_JSON.read_text())["specs"]}


def describe(spec: dict[str, Any]) -> dict[str, Any] | None:
    """The core's description of a manifest-style spec ``{"name", "version"}``, or None when this
    build has no such spec."""
    return specs().get(f"{spec.get('name')}/{spec.get('version')}")


def feature_names(spec_id: str = "poc-abs/1") -> list[str]:
    """A spec's feature names, channel-major."""
    return list(specs()[spec_id]["names"])


def takes_cascade(spec: dict[str, Any]) -> bool:
    """Whether a model of this spec carries a Haar cascade (its face method is the Haar box)."""
    d = describe(spec)
    return d is None or d["face_method"] == "haar-box"
