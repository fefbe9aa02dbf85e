"""Sparse feature batches of both toy models, generated on the training device, one generator per instance.

Compressed computation: each of n features is active with probability p (per instance), and then takes a
value U(-1, 1). TMS (the Elhage et al. convention): feature j of instance i is present with probability
p[i, j], and then takes a value U(0, 1].

Both draw active positions from geometric gaps between successes of a Bernoulli process over the
flattened B*n grid (exactly i.i.d. Bernoulli per entry, at a cost proportional to the number of active
entries), with the same draw count (_draws). Their uniforms differ (float draws for CC; 24-bit integer
draws for TMS, which also thins per feature and goes dense above DENSE_P), and each stream is what the
seeded results are pinned to, so the two fill functions stay separate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import Tensor

from superlens.device import generator

# Above this feature probability a dense draw (one uniform per entry) beats the geometric-gap draw
# (two uniforms per active entry plus a dozen small ops): they cross near p = 0.21 for 1024 x 100
# (measured, one thread).
DENSE_P = 0.2

# Uniforms come from 64-bit integer draws: torch's CPU generator fills an int64 tensor at ~1.4 ns per
# 32 bits against ~2.3 ns per float32 from uniform_ (measured), and the low 24 bits of each 32-bit half
# are the same U{0, ..., 2^24 - 1} that uniform_ scales by 2^-24.
_MASK24 = (1 << 24) - 1
_TWO_M24 = 2.0**-24


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


# ----------------------------------------------------------------------------- TMS batches

def per_instance(v, I: int, n: int | None, name: str, vector: str = "instance") -> Tensor:
    """A value given per run, per instance or per (instance, feature), as a float64 CPU tensor.

    n None: float or [I] -> [I]. Otherwise float, [1, n] or [I, n] -> [I, n], and a 1-D value is
    read as [I] (vector="instance") or as [n] (vector="feature"), never guessed from its length.
    """
    t = torch.as_tensor(v, dtype=torch.float64).detach().cpu()
    if n is None:
        if t.dim() == 0:
            t = t.expand(I)
        if t.shape != (I,):
            raise ValueError(f"{name}: shape {tuple(t.shape)}, expected a float or [{I}]")
        return t.clone()
    if t.dim() == 0:
        t = t.expand(I, n)
    elif t.dim() == 1:
        t = t[:, None].expand(-1, n) if vector == "instance" else t[None, :]
    if t.dim() == 2 and t.shape[0] == 1:
        t = t.expand(I, -1)
    if t.shape != (I, n):
        one = f"[{I}]" if vector == "instance" else f"[{n}]"
        raise ValueError(f"{name}: shape {tuple(v.shape) if hasattr(v, 'shape') else len(v)}, "
                         f"expected a float, {one}, [1, {n}] or [{I}, {n}]")
    return t.clone()


@dataclass
class _Draw:
    """How one instance's batch is drawn; precomputed once so that the step loop does no host sync."""

    dense: bool
    p_max: float
    neg_inv_p: Tensor | None = None  # [n] -2^-24 / p (dense: scales the integer draw)
    live: Tensor | None = None  # [n] 1.0 where p > 0, only when some p is 0 (dense)
    r: Tensor | None = None  # [n] p / p_max (sparse; None when all p are equal)


def draw_plan(p_row: Tensor, device, dtype) -> _Draw:
    p_row = p_row.to(torch.float64).cpu()
    p_max = float(p_row.max()) if p_row.numel() else 0.0
    if p_max >= DENSE_P:
        live = (p_row > 0).to(device=device, dtype=dtype) if bool((p_row <= 0).any()) else None
        neg = -_TWO_M24 / p_row.clamp_min(1e-30)
        return _Draw(True, p_max, neg.to(device=device, dtype=dtype), live)
    uniform = bool((p_row == p_max).all())
    r = None if uniform else (p_row / p_max).to(device=device, dtype=dtype)
    return _Draw(False, p_max, r=r)


def _uniform24(k: int, g: torch.Generator, device) -> Tensor:
    """k draws of U{0, ..., 2^24 - 1} as an int32 view [k] (k / 2 int64 draws from g)."""
    bits = torch.empty((k + 1) // 2, dtype=torch.int64, device=device).random_(generator=g)
    return bits.view(torch.int32)[:k].bitwise_and_(_MASK24)


def fill_planned(out: Tensor, g: torch.Generator, plan: _Draw) -> None:
    """One instance's batches into out [..., n] (contiguous) from generator g alone."""
    if plan.p_max <= 0:
        out.zero_()
    elif plan.dense:
        # one uniform u = k 2^-24 per entry: present iff u < p, and then 1 - u / p ~ U(0, 1] (ReLU drops
        # the rest); k 2^-24 / p is one multiply by the folded constant
        k = _uniform24(out.numel(), g, out.device).view(out.shape)
        torch.mul(k, plan.neg_inv_p, out=out)
        out.add_(1.0).clamp_min_(0.0)
        if plan.live is not None:  # u = 0 would otherwise switch a p = 0 feature on
            out.mul_(plan.live)
    else:
        out.zero_()
        _fill_sparse(out, g, plan.r, plan.p_max)


def _fill_sparse(out: Tensor, g: torch.Generator, r: Tensor | None, p_max: float) -> None:
    """Fill out [..., n] (zeroed, contiguous) by the geometric-gap method, at a cost proportional to
    p_max * out.numel().

    Candidates are the successes of a Bernoulli(p_max) process over the flattened grid (gap ~
    Geometric(p_max) = floor(log(1 - u) / log(1 - p_max)) + 1). A candidate in feature j is kept if
    w < r_j = p_j / p_max, and then w / r_j ~ U(0, 1) is its value: each entry is present with
    probability p_max r_j = p_j, valued U(0, 1), for one 64-bit draw (u and w) per candidate.
    r = None: all r_j = 1.
    """
    total = out.numel()
    k = _draws(total, p_max)
    log1mp = math.log1p(-p_max)
    flat = out.view(-1)
    start = 0  # first grid position not yet decided
    while start < total:  # once, except with negligible probability
        uw = _uniform24(2 * k, g, out.device).view(k, 2).to(out.dtype).mul_(_TWO_M24)  # [k, 2] on 2^-24
        u, w = uw[:, 0], uw[:, 1]
        # log(1 - u): 1 - u is exact for u on the 2^-24 grid, and log is ~10x faster than log1p;
        # floor(y) + 1 = floor(y + 1), and the integer-valued gaps are summed in int64
        gaps = torch.log(u.neg_().add_(1)).mul_(1.0 / log1mp).add_(1).floor_()
        pos = torch.cumsum(gaps, 0, dtype=torch.int64).add_(start - 1)  # sorted
        cut = int(torch.searchsorted(pos, total))
        start = total if cut < k else int(pos[-1]) + 1
        pos, w = pos[:cut], w[:cut]
        if r is not None:
            rj = r.index_select(0, pos % out.shape[-1])  # ~5x faster than r[...] (measured)
            ok = w < rj
            pos, w = pos[ok], w[ok].div_(rj[ok])
        flat.scatter_(0, pos, w)  # positions are distinct; ~8x faster than flat[pos] = w (measured)


def fill_tms_batch(out: Tensor, g: torch.Generator, p_row: Tensor) -> None:
    """One instance's data into out [..., n] (contiguous): every entry of feature j is present with
    probability p_row[j] [n], independently, and then valued U(0, 1].

    Draws come from g only, and their number depends on p_row only, so a lone run replays them.
    """
    fill_planned(out, g, draw_plan(p_row, out.device, out.dtype))


def sample_tms(generators: list[torch.Generator], batch: int, n_features: int, p,
               device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> Tensor:
    """One batch x [I, B, n] for I instances, instance i from generators[i] by fill_tms_batch;
    p: float, [I], [1, n] or [I, n] probabilities."""
    I = len(generators)
    P = per_instance(p, I, n_features, "feature_probability")
    x = torch.empty(I, batch, n_features, device=device, dtype=dtype)
    for i, g in enumerate(generators):
        fill_tms_batch(x[i], g, P[i])
    return x


# the seeded evaluation set of the analyses, drawn in chunks so memory stays bounded
DEFAULT_CHUNK = 20_000


def eval_chunks(n_features: int, p: float, samples: int, seed: int, *, chunk: int = DEFAULT_CHUNK,
                device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> Iterator[Tensor]:
    """The seeded evaluation set at sparsity p, chunk by chunk: x [1, b, n] (sum of b = samples).

    One generator seeded with `seed` feeds every chunk in order, so each call replays the same set.
    """
    if samples < 1:
        raise ValueError(f"samples = {samples}, must be >= 1")
    g = generator(seed, device)
    done = 0
    while done < samples:
        b = min(chunk, samples - done)
        yield sample_dense([g], b, n_features, p, device=device, dtype=dtype)
        done += b
