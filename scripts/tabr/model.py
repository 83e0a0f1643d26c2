"""TabR (Gorishniy et al., "TabR: Tabular Deep Learning Meets Nearest Neighbors"), written for
tabr-serve after the paper's official code (yandex-research/tabular-dl-tabr, ``bin/tabr.py``).

Parameter names follow the official ``Model`` so its state dicts load unchanged:
``linear``, ``blocks0.*``, ``normalization``, ``label_encoder`` (``Linear(1, d)`` for
regression, ``Sequential(Embedding)`` for classes, so ``label_encoder.0.weight``), ``K``,
``T.0``/``T.3``, ``blocks1.*``, ``head.0``/``head.2`` and the optional ``num_embeddings``.

Only numeric features are supported (POC-ABS vectors are all numeric): models with binary or
categorical inputs are refused with a clear message.

``TabRForExport`` wraps a trained model with its candidate set encoded once (exactly as the
eval-mode forward would) and does the top-k retrieval with ``torch.topk``, so the whole
inference is one ONNX graph: ``x [N, n_features] -> logits [N, d_out]``. With
``evidence_k > 0`` the same graph also gives the retrieval's own evidence for each row: its
``evidence_k`` nearest candidates (indices into the candidate set), their squared distances in
the model's key space, their weight in the prediction (the retrieval softmax over the context)
and their labels. These are the tensors the prediction was computed from, not a second search.
It also gives each row's squared distance to its nearest candidate in the model's *input*
space (after preprocessing): the measure of novelty. Not the key space, because TabR's keys
are layer-normalised before ``K``: an input far outside the training data still lands among
the training keys (the demo model put real faces at the 45th–83rd percentile of its key-space
distances, and at the 100th of its input-space ones).
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def get_d_out(n_classes: int | None) -> int:
    """Output width: 1 for regression and binary classification, else the class count."""
    return 1 if n_classes is None or n_classes == 2 else n_classes


class LinearEmbeddings(nn.Module):
    """Per-feature linear embeddings: x_i * w_i + b_i."""

    def __init__(self, n_features: int, d_embedding: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_features, d_embedding))
        self.bias = nn.Parameter(torch.empty(n_features, d_embedding))
        bound = 1 / math.sqrt(d_embedding)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return x[..., None] * self.weight[None] + self.bias[None]


class PeriodicEmbeddings(nn.Module):
    """cos/sin of learned frequencies per feature."""

    def __init__(self, n_features: int, n_frequencies: int, frequency_scale: float) -> None:
        super().__init__()
        self.frequencies = nn.Parameter(torch.normal(0.0, frequency_scale, (n_features, n_frequencies)))

    def forward(self, x: Tensor) -> Tensor:
        x = 2 * math.pi * self.frequencies[None] * x[..., None]
        return torch.cat([torch.cos(x), torch.sin(x)], -1)


class NLinear(nn.Module):
    """One linear layer per feature: weight [n, d_in, d_out], bias [n, d_out]."""

    def __init__(self, n_features: int, d_in: int, d_out: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_features, d_in, d_out))
        self.bias = nn.Parameter(torch.empty(n_features, d_out)) if bias else None
        bound = 1 / math.sqrt(d_in)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        x = (x[..., None] * self.weight[None]).sum(-2)
        return x + self.bias[None] if self.bias is not None else x


def make_num_embeddings(spec: dict[str, Any], n_features: int) -> nn.Module:
    """The official ``lib.make_module`` choices for numeric embeddings."""
    kind = spec.get("type")
    if kind == "LinearEmbeddings":
        return LinearEmbeddings(n_features, spec["d_embedding"])
    if kind == "LREmbeddings":
        return nn.Sequential(LinearEmbeddings(n_features, spec["d_embedding"]), nn.ReLU())
    if kind == "PLREmbeddings":
        nf, d = spec["n_frequencies"], spec["d_embedding"]
        linear = nn.Linear(2 * nf, d) if spec.get("lite", False) else NLinear(n_features, 2 * nf, d)
        return nn.Sequential(PeriodicEmbeddings(n_features, nf, spec["frequency_scale"]), linear, nn.ReLU())
    raise ValueError(f"num_embeddings type {kind!r} is not supported (LinearEmbeddings, LREmbeddings, PLREmbeddings)")


class Model(nn.Module):
    """The TabR model with the official constructor arguments (numeric features only)."""

    def __init__(
        self,
        *,
        n_num_features: int,
        n_bin_features: int = 0,
        cat_cardinalities: list[int] | None = None,
        n_classes: int | None,
        num_embeddings: dict[str, Any] | None = None,
        d_main: int,
        d_multiplier: float,
        encoder_n_blocks: int,
        predictor_n_blocks: int,
        mixer_normalization: bool | str = "auto",
        context_dropout: float = 0.0,
        dropout0: float = 0.0,
        dropout1: float | str = 0.0,
        normalization: str = "LayerNorm",
        activation: str = "ReLU",
        memory_efficient: bool = False,
        candidate_encoding_batch_size: int | None = None,
    ) -> None:
        if n_bin_features or cat_cardinalities:
            raise ValueError("only numeric features are supported: n_bin_features must be 0 and cat_cardinalities empty")
        if mixer_normalization == "auto":
            mixer_normalization = encoder_n_blocks > 0
        if encoder_n_blocks == 0 and mixer_normalization:
            raise ValueError("mixer_normalization needs encoder_n_blocks > 0")
        if dropout1 == "dropout0":
            dropout1 = dropout0
        super().__init__()
        del memory_efficient, candidate_encoding_batch_size  # training-time options only
        self.n_num_features = n_num_features
        self.n_classes = n_classes
        self.num_embeddings = None if num_embeddings is None else make_num_embeddings(num_embeddings, n_num_features)
        d_in = n_num_features * (1 if num_embeddings is None else num_embeddings["d_embedding"])
        d_block = int(d_main * d_multiplier)
        Normalization = getattr(nn, normalization)
        Activation = getattr(nn, activation)

        def make_block(prenorm: bool) -> nn.Sequential:
            return nn.Sequential(
                *([Normalization(d_main)] if prenorm else []),
                nn.Linear(d_main, d_block),
                Activation(),
                nn.Dropout(dropout0),
                nn.Linear(d_block, d_main),
                nn.Dropout(float(dropout1)),
            )

        self.linear = nn.Linear(d_in, d_main)
        self.blocks0 = nn.ModuleList([make_block(i > 0) for i in range(encoder_n_blocks)])
        self.normalization = Normalization(d_main) if mixer_normalization else None
        self.label_encoder = (
            nn.Linear(1, d_main) if n_classes is None else nn.Sequential(nn.Embedding(n_classes, d_main))
        )
        self.K = nn.Linear(d_main, d_main)
        self.T = nn.Sequential(
            nn.Linear(d_main, d_block), Activation(), nn.Dropout(dropout0), nn.Linear(d_block, d_main, bias=False)
        )
        self.dropout = nn.Dropout(context_dropout)
        self.blocks1 = nn.ModuleList([make_block(True) for _ in range(predictor_n_blocks)])
        self.head = nn.Sequential(Normalization(d_main), Activation(), nn.Linear(d_main, get_d_out(n_classes)))
        if isinstance(self.label_encoder, nn.Linear):
            bound = 1 / math.sqrt(2.0)
            nn.init.uniform_(self.label_encoder.weight, -bound, bound)
            nn.init.uniform_(self.label_encoder.bias, -bound, bound)
        else:
            nn.init.uniform_(self.label_encoder[0].weight, -1.0, 1.0)

    def encode(self, x_num: Tensor) -> tuple[Tensor, Tensor]:
        """(x, k): the encoder output and the retrieval key."""
        x = x_num if self.num_embeddings is None else self.num_embeddings(x_num).flatten(1)
        x = self.linear(x)
        for block in self.blocks0:
            x = x + block(x)
        k = self.K(x if self.normalization is None else self.normalization(x))
        return x, k

    def embed_labels(self, y: Tensor) -> Tensor:
        """Label embeddings of context labels y [N, C] → [N, C, d_main]."""
        if self.n_classes is None:
            return self.label_encoder(y[..., None].float())
        return self.label_encoder(y.long())

    def mix(self, x: Tensor, k: Tensor, context_k: Tensor, context_y: Tensor, with_weights: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """The retrieval module and predictor, given the chosen context (and, with
        ``with_weights``, each context row's weight: the softmax the values are mixed by)."""
        similarities = (
            -k.square().sum(-1, keepdim=True)
            + (2 * (k[..., None, :] @ context_k.transpose(-1, -2))).squeeze(-2)
            - context_k.square().sum(-1)
        )
        probs = self.dropout(F.softmax(similarities, dim=-1))
        values = self.embed_labels(context_y) + self.T(k[:, None] - context_k)
        x = x + (probs[:, None] @ values).squeeze(1)
        for block in self.blocks1:
            x = x + block(x)
        return (self.head(x), probs) if with_weights else self.head(x)

    def forward(
        self,
        x_num: Tensor,
        candidate_x: Tensor,
        candidate_y: Tensor,
        context_size: int,
        y: Tensor | None = None,
        batch_idx: Tensor | None = None,
    ) -> Tensor:
        """Training (``batch_idx`` given: the rows' own indices are removed from their
        context) or evaluation forward, with exact L2 search over the candidates."""
        with torch.no_grad() if not self.training else torch.enable_grad():
            candidate_k = self.encode(candidate_x)[1]
        x, k = self.encode(x_num)
        with torch.no_grad():
            d = torch.cdist(k, candidate_k).square()
            if batch_idx is not None:
                d[torch.arange(len(k)), batch_idx] = torch.inf
            context_idx = d.topk(context_size, largest=False).indices
        return self.mix(x, k, candidate_k[context_idx], candidate_y[context_idx])


class TabRForExport(nn.Module):
    """Eval-mode TabR with the candidates' keys and labels baked in as buffers."""

    def __init__(self, model: Model, candidate_x: Tensor, candidate_y: Tensor, context_size: int, evidence_k: int = 0) -> None:
        super().__init__()
        model = model.eval()
        self.model = model
        with torch.no_grad():
            candidate_k = model.encode(candidate_x)[1]
        self.register_buffer("candidate_k", candidate_k.detach().clone())
        self.register_buffer("candidate_k_sq", candidate_k.square().sum(-1).detach().clone())
        y = candidate_y.float() if model.n_classes is None else candidate_y.long()
        self.register_buffer("candidate_y", y.detach().clone())
        # Centred on the candidates' mean, so the expanded distance below does not cancel large
        # norms in float32 (a model on raw, unscaled features would lose most of its digits).
        cx = candidate_x.double()
        mean = cx.mean(0)
        self.register_buffer("candidate_mean", mean.float().detach().clone())
        self.register_buffer("candidate_x", (cx - mean).float().detach().clone())
        self.register_buffer("candidate_x_sq", (cx - mean).square().sum(-1).float().detach().clone())
        self.context_size = min(context_size, len(candidate_x))
        self.evidence_k = min(evidence_k, self.context_size)

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, ...]:
        x_in = x - self.candidate_mean
        x, k = self.model.encode(x)
        # Squared L2 distance to every candidate; the smallest context_size are the context,
        # nearest first (topk sorts).
        d = k.square().sum(-1, keepdim=True) - 2 * k @ self.candidate_k.T + self.candidate_k_sq[None]
        neg_d, context_idx = torch.topk(-d, self.context_size, dim=-1)
        context_y = self.candidate_y[context_idx]
        if not self.evidence_k:
            return self.model.mix(x, k, self.candidate_k[context_idx], context_y)
        logits, weights = self.model.mix(x, k, self.candidate_k[context_idx], context_y, with_weights=True)
        e = self.evidence_k
        d_in = x_in.square().sum(-1, keepdim=True) - 2 * x_in @ self.candidate_x.T + self.candidate_x_sq[None]
        nearest_in = d_in.min(-1, keepdim=True).values.clamp_min(0.0)
        # The expanded distance can round a hair below zero for a candidate equal to the row.
        return logits, context_idx[:, :e], (-neg_d[:, :e]).clamp_min(0.0), weights[:, :e], context_y[:, :e].float(), nearest_in

    def nearest_other_distances(self, chunk: int = 1024) -> Tensor:
        """Each candidate's squared distance to its nearest other candidate in input space (the
        yardstick of novelty: where a new row's nearest distance falls among these)."""
        ck = self.candidate_x.double()
        out = []
        for start in range(0, len(ck), chunk):
            d = torch.cdist(ck[start : start + chunk], ck).square()
            rows = torch.arange(start, min(start + chunk, len(ck)))
            d[rows - start, rows] = torch.inf
            out.append(d.min(-1).values)
        return torch.cat(out)
