"""Instance-axis toy models: every weight carries a leading [instances] axis.

The compressed-computation MLP of the report: y = W_out · ReLU(W_in · x) (+ optional biases).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class MLPParams:
    """Weights of I independent models.

    W_in:  [I, h, n]   feature -> neuron
    W_out: [I, n, h]   neuron -> feature
    b_in:  [I, h] or None
    b_out: [I, n] or None
    """

    W_in: Tensor
    W_out: Tensor
    b_in: Tensor | None = None
    b_out: Tensor | None = None

    @property
    def instances(self) -> int:
        return self.W_in.shape[0]

    @property
    def n_hidden(self) -> int:
        return self.W_in.shape[1]

    @property
    def n_features(self) -> int:
        return self.W_in.shape[2]

    def tensors(self) -> dict[str, Tensor]:
        d = {"W_in": self.W_in, "W_out": self.W_out}
        if self.b_in is not None:
            d["b_in"] = self.b_in
        if self.b_out is not None:
            d["b_out"] = self.b_out
        return d

    @classmethod
    def from_tensors(cls, d: dict[str, Tensor]) -> "MLPParams":
        return cls(d["W_in"], d["W_out"], d.get("b_in"), d.get("b_out"))

    def select(self, i: int | slice | list[int]) -> "MLPParams":
        """A sub-batch of instances (keeps the instance axis)."""
        if isinstance(i, int):
            i = [i]
        pick = lambda t: None if t is None else t[i]  # noqa: E731
        return MLPParams(pick(self.W_in), pick(self.W_out), pick(self.b_in), pick(self.b_out))

    def to(self, *args, **kwargs) -> "MLPParams":
        f = lambda t: None if t is None else t.to(*args, **kwargs)  # noqa: E731
        return MLPParams(f(self.W_in), f(self.W_out), f(self.b_in), f(self.b_out))

    def detach(self) -> "MLPParams":
        f = lambda t: None if t is None else t.detach().clone()  # noqa: E731
        return MLPParams(f(self.W_in), f(self.W_out), f(self.b_in), f(self.b_out))


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
