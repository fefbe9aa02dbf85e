"""Instance-axis toy models: every weight carries a leading [instances] axis.

The compressed-computation MLP of the report: y = W_out · ReLU(W_in · x) (+ optional biases), and the
classic toy model of superposition (Elhage et al. 2022, arXiv:2209.10652): x̂ = ReLU(W^T W x + b), trained
with a per-feature importance: L_i = mean_b sum_j imp[i, j] (x_bj - x̂_bj)^2.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import Tensor


class InstanceParams:
    """What both toy models' weights share: every field a tensor with a leading instance axis [I, ...]
    (or None for an absent bias), the first one [I, h, n] (h hidden units, n features)."""

    def _names(self) -> list[str]:
        return [f.name for f in fields(self)]

    @property
    def instances(self) -> int:
        return getattr(self, self._names()[0]).shape[0]

    @property
    def n_hidden(self) -> int:
        return getattr(self, self._names()[0]).shape[1]

    @property
    def n_features(self) -> int:
        return getattr(self, self._names()[0]).shape[2]

    def tensors(self) -> dict[str, Tensor]:
        """The present tensors by field name, in field order (the optimiser's order)."""
        return {k: v for k in self._names() if (v := getattr(self, k)) is not None}

    @classmethod
    def from_tensors(cls, d: dict[str, Tensor]):
        return cls(**{f.name: d.get(f.name) for f in fields(cls)})

    def _map(self, f):
        return type(self)(**{k: None if (v := getattr(self, k)) is None else f(v) for k in self._names()})

    def select(self, i: int | slice | list[int]):
        """A sub-batch of instances (keeps the instance axis; a slice gives views)."""
        if isinstance(i, int):
            i = [i]
        return self._map(lambda t: t[i])

    def to(self, *args, **kwargs):
        return self._map(lambda t: t.to(*args, **kwargs))

    def detach(self):
        return self._map(lambda t: t.detach().clone())


@dataclass
class MLPParams(InstanceParams):
    """Weights of I independent compressed-computation models.

    W_in:  [I, h, n]   feature -> neuron
    W_out: [I, n, h]   neuron -> feature
    b_in:  [I, h] or None
    b_out: [I, n] or None
    """

    W_in: Tensor
    W_out: Tensor
    b_in: Tensor | None = None
    b_out: Tensor | None = None


@dataclass
class TMSParams(InstanceParams):
    """Weights of I independent TMS models.

    W: [I, m, n]   column j is feature j's direction in the m-dimensional hidden space
    b: [I, n]      output bias
    """

    W: Tensor
    b: Tensor


def init_mlp(n_features: int, n_hidden: int, generators: list[torch.Generator], bias: bool = False,
             device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> MLPParams:
    """nn.Linear's default init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), one generator per instance.

    Instance i depends only on generators[i], so instance i of a batch equals a lone run seeded alike.
    """
    I = len(generators)
    W_in = torch.empty(I, n_hidden, n_features, device=device, dtype=dtype)
    W_out = torch.empty(I, n_features, n_hidden, device=device, dtype=dtype)
    b_in = torch.empty(I, n_hidden, device=device, dtype=dtype) if bias else None
    b_out = torch.empty(I, n_features, device=device, dtype=dtype) if bias else None
    a_in, a_out = 1 / math.sqrt(n_features), 1 / math.sqrt(n_hidden)
    for i, g in enumerate(generators):
        W_in[i].uniform_(-a_in, a_in, generator=g)
        W_out[i].uniform_(-a_out, a_out, generator=g)
        if bias:
            b_in[i].uniform_(-a_in, a_in, generator=g)
            b_out[i].uniform_(-a_out, a_out, generator=g)
    return MLPParams(W_in, W_out, b_in, b_out)


def hidden(params: MLPParams, x: Tensor) -> Tensor:
    """ReLU(W_in x + b_in): x [I, B, n] -> [I, B, h]."""
    pre = torch.bmm(x, params.W_in.transpose(1, 2))
    if params.b_in is not None:
        pre = pre + params.b_in[:, None, :]
    return torch.relu(pre)


def forward(params: MLPParams, x: Tensor) -> Tensor:
    """y = W_out ReLU(W_in x + b_in) + b_out: x [I, B, n] -> y [I, B, n]."""
    y = torch.bmm(hidden(params, x), params.W_out.transpose(1, 2))
    if params.b_out is not None:
        y = y + params.b_out[:, None, :]
    return y


def naive_params(n_features: int, n_hidden: int, instances: int = 1,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> MLPParams:
    """The report's hand-coded naive solution: neuron k computes ReLU(x_k) for the first
    min(h, n) features exactly, the rest are output as 0."""
    k = min(n_features, n_hidden)
    W_in = torch.zeros(instances, n_hidden, n_features, device=device, dtype=dtype)
    W_in[:, torch.arange(k), torch.arange(k)] = 1.0
    return MLPParams(W_in, W_in.transpose(1, 2).clone())


def init_tms(n: int, m: int, generators: list[torch.Generator], device: torch.device | str = "cpu",
             dtype: torch.dtype = torch.float32) -> TMSParams:
    """W[i] ~ N(0, 2 / (m + n)) (Xavier-normal for an m x n matrix) from generators[i] alone; b = 0."""
    I = len(generators)
    W = torch.empty(I, m, n, device=device, dtype=dtype)
    std = math.sqrt(2.0 / (m + n))
    for i, g in enumerate(generators):
        W[i].normal_(0.0, std, generator=g)
    return TMSParams(W, torch.zeros(I, n, device=device, dtype=dtype))


def tms_forward(params: TMSParams, x: Tensor) -> Tensor:
    """x̂ = ReLU(W^T W x + b): x [I, B, n] -> [I, B, n]."""
    h = torch.bmm(x, params.W.transpose(1, 2))  # [I, B, m]
    return torch.relu(torch.baddbmm(params.b[:, None, :], h, params.W))


def tms_loss(params: TMSParams, x: Tensor, importance: Tensor) -> Tensor:
    """L_i = mean_b sum_j imp[i, j] (x - x̂)^2: x [I, B, n], importance [I, n] -> [I]."""
    return (importance[:, None, :] * (x - tms_forward(params, x)) ** 2).sum(2).mean(1)


def importance_decay(n: int, decay: float) -> Tensor:
    """imp_j = decay ** j, j = 0..n-1 (Elhage et al.'s geometric importance): [n]."""
    return decay ** torch.arange(n, dtype=torch.float64).to(torch.float32)
