"""Sparse feature batches, generated on the training device, one generator per instance.

Each of n features is active with probability p (per instance), and then takes a value U(-1, 1).
Training never builds the dense [B, n] input: with p = 0.02 it is 98 % zeros. Active positions come
from geometric gaps between successes of the Bernoulli(p) process over the flattened B*n grid, which
is exactly i.i.d. Bernoulli(p) per entry, at a cost proportional to the number of active entries.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class SparseBatch:
    """Active entries of an [I, B, n] batch in coordinate form (K entries over all instances).

    inst, row, col: [K] int64   which instance, sample and feature
    val:            [K]         the feature value, U(-1, 1)
    """

    inst: Tensor
    row: Tensor
    col: Tensor
    val: Tensor
    shape: tuple[int, int, int]

    def to_dense(self) -> Tensor:
        x = torch.zeros(self.shape, device=self.val.device, dtype=self.val.dtype)
        x[self.inst, self.row, self.col] = self.val
        return x


def _draws(total: int, p: float) -> int:
    """Uniforms drawn per instance: enough gaps to pass the end of the grid with overwhelming
    probability (mean + 6 sd + 16); the rare shortfall is topped up by further draws."""
    mean = total * p
    return min(int(mean + 6 * math.sqrt(mean + 1) + 16), total + 16)


def _positions(u: Tensor, log1mp: Tensor) -> Tensor:
    """Success positions of Bernoulli(p) processes from uniforms u [..., m] in [0, 1):
    gap ~ Geometric(p) on {1, 2, ...} = floor(log(1 - u) / log(1 - p)) + 1 (p = 1 gives gaps of 1)."""
    gaps = torch.floor(torch.log(1 - u) / log1mp) + 1  # log(1 - u): 6x faster than log1p here
    return torch.cumsum(gaps.to(torch.int64), dim=-1) - 1


def sample_sparse(generators: list[torch.Generator], batch: int, n_features: int,
                  p: list[float] | float, device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32) -> SparseBatch:
    """One training batch for I instances; instance i uses only generators[i] (and p[i]).

    Entries come out sorted by (instance, sample, feature). Per instance the draws are: m uniforms for
    the gaps, then m uniforms for the values (m depends on p only), so a lone run with the same seed
    sees exactly the same batches.
    """
    I = len(generators)
    ps = [float(p)] * I if isinstance(p, (int, float)) else [float(v) for v in p]
    total = batch * n_features
    ms = [_draws(total, q) for q in ps]
    M = max(ms)
    u = torch.zeros(I, M, device=device, dtype=torch.float64 if dtype == torch.float64 else torch.float32)
    v = torch.zeros(I, M, device=device, dtype=dtype)
    for i, g in enumerate(generators):
        u[i, : ms[i]].uniform_(generator=g)
        v[i, : ms[i]].uniform_(generator=g)
    log1mp = torch.tensor([math.log1p(-q) if q < 1 else -math.inf for q in ps], device=device,
                          dtype=u.dtype)[:, None]
    pos = _positions(u, log1mp)  # [I, M]
    valid = torch.arange(M, device=device)[None, :] < torch.tensor(ms, device=device)[:, None]
    nz = (valid & (pos < total)).view(-1).nonzero().squeeze(1)  # one nonzero, then gathers
    inst = nz // M
    flat = pos.view(-1)[nz]
    val = v.view(-1)[nz].mul_(2).sub_(1)
    # rare: an instance whose m draws did not reach the end of its grid draws more, in order
    short = [i for i in range(I) if int(pos[i, ms[i] - 1]) < total - 1]
    if short:
        extra_i, extra_f, extra_v = [inst], [flat], [val]
        for i in short:
            last = int(pos[i, ms[i] - 1])
            while last < total - 1:
                uu = torch.rand(ms[i], device=device, generator=generators[i], dtype=u.dtype)
                vv = torch.rand(ms[i], device=device, generator=generators[i], dtype=dtype)
                pp = _positions(uu, log1mp[i]) + last + 1
                ok = pp < total
                extra_i.append(torch.full_like(pp[ok], i))
                extra_f.append(pp[ok])
                extra_v.append(vv.mul_(2).sub_(1)[ok])
                last = int(pp[-1])
        inst, flat, val = torch.cat(extra_i), torch.cat(extra_f), torch.cat(extra_v)
        order = torch.argsort(inst * total + flat, stable=True)
        inst, flat, val = inst[order], flat[order], val[order]
    # row = flat // n in float64 (exact below 2^52, and ~3x faster than int64 division on a CPU)
    row = torch.floor(flat.to(torch.float64) / n_features).to(torch.int64)
    return SparseBatch(inst, row, flat - row * n_features, val, (I, batch, n_features))


def sample_dense(generators: list[torch.Generator], batch: int, n_features: int,
                 p: list[float] | float, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32) -> Tensor:
    """The same distribution as a dense [I, B, n] tensor (for evaluation, not training)."""
    I = len(generators)
    ps = [float(p)] * I if isinstance(p, (int, float)) else [float(v) for v in p]
    x = torch.empty(I, batch, n_features, device=device, dtype=dtype)
    for i, g in enumerate(generators):
        u = torch.rand(batch, n_features, device=device, generator=g, dtype=dtype)
        v = torch.rand(batch, n_features, device=device, generator=g, dtype=dtype)
        x[i] = torch.where(u < ps[i], v * 2 - 1, torch.zeros((), dtype=dtype, device=device))
    return x


def single_feature_batch(n_features: int, values: Tensor) -> Tensor:
    """x[k*V + v] = values[v] * e_k: each feature swept alone. values [V] -> x [n*V, n]."""
    V = values.shape[0]
    x = torch.zeros(n_features, V, n_features, dtype=values.dtype, device=values.device)
    idx = torch.arange(n_features, device=values.device)
    x[idx, :, idx] = values
    return x.reshape(n_features * V, n_features)
