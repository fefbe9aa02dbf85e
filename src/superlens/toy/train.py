"""One training engine for the compressed-computation model, on an instance axis.

All I models train in one tensor program: weights are [I, ...], each instance has its own generator
(data and init), its own p, loss power q and learning rate. The step is hand-differentiated so that
nothing dense but the output is ever built:

    pre = W_in x           gathered from the K active entries (x is ~98 % zeros): O(K h)
    y   = W_out ReLU(pre)  one bmm, the only dense [B, n] tensor
    r   = y - ReLU(x)      in place, touching only the K active entries
    L   = mean |r|^q       dL/dy = q sign(r)|r|^(q-1) / (B n), in place on r (r^3 for q = 4)
    gW_out = g^T a,  ga = g W_out,  gpre = ga * [pre > 0],  gW_in = gpre^T x  (again from the K entries)

Adam and the cosine schedule are written out to match torch.optim.Adam + CosineAnnealingLR exactly
(tests check the weights against that autograd reference).
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from superlens.device import generator
from superlens.toy.data import SparseBatch, sample_sparse
from superlens.toy.models import MLPParams, init_mlp

BETAS = (0.9, 0.999)
EPS = 1e-8


@dataclass
class TrainResult:
    params: MLPParams
    loss_steps: list[int] = field(default_factory=list)
    loss: list[list[float]] = field(default_factory=list)  # [logged step][instance]
    seconds: float = 0.0


def _per_instance(v: float | Sequence[float], I: int, name: str) -> list[float]:
    vals = [float(v)] * I if isinstance(v, (int, float)) else [float(x) for x in v]
    if len(vals) != I:
        raise ValueError(f"{name}: {len(vals)} values for {I} instances")
    return vals


def cosine_factor(t: int, steps: int) -> float:
    """CosineAnnealingLR(T_max=steps, eta_min=0) multiplier for the update at step t (0-based)."""
    return 0.5 * (1.0 + math.cos(math.pi * t / steps))


def _csr(crow_keys: Tensor, n_rows: int, col: Tensor, val: Tensor, n_cols: int) -> Tensor:
    """CSR matrix from entries already sorted by row (row ids crow_keys)."""
    crow = torch.zeros(n_rows + 1, dtype=torch.int64, device=val.device)
    crow[1:] = torch.cumsum(torch.bincount(crow_keys, minlength=n_rows), 0)
    with warnings.catch_warnings():  # "CSR support is in beta": we test it against autograd
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, val, size=(n_rows, n_cols), check_invariants=False)


CACHE_ELEMENTS = 1 << 20  # a dense [c, B, n] block of ~4 MiB float32: measured best on a 2-core EPYC


def _dense_block(a: Tensor, W_out: Tensor, b_out: Tensor | None, flat: Tensor, delta: Tensor,
                 q: Tensor, q_scalar: float | None, scale: Tensor, want_loss: bool,
                 out: Tensor | None = None):
    """The dense half of the step for a block of c instances.

    a [c, B, h], W_out [c, n, h]; flat/delta: the K_c active entries of the block as flat indices
    into [c, B, n] and the amounts that turn y into the residual (-ReLU(x)). out: an optional
    [c, B, n] buffer to reuse (so it stays in cache). Returns gW_out [c, n, h], gpre [c, B, h],
    gb_out [c, n] or None, loss [c] or None.
    """
    r = torch.bmm(a, W_out.transpose(1, 2), out=out)  # y, then the residual in place
    if b_out is not None:
        r += b_out[:, None, :]
    r.view(-1).index_add_(0, flat, delta)  # r = y - ReLU(x)
    loss = (r.abs() ** q).mean(dim=(1, 2)) if want_loss else None
    # g = dL/dy up to the factor q / (B n), in place on r
    if q_scalar == 4.0:
        g = r.pow_(3)
    elif q_scalar == 2.0:
        g = r
    else:
        g = r.sign().mul_(r.abs().pow_(q - 1))
    # Layouts matter ~3x here (CPU, measured): contract over B as [h, B] @ [B, n], and produce
    # dL/dpre transposed as [h, n] @ [n, B]; the [B, n] @ [n, h] forms are the slow ones.
    aT = a.transpose(1, 2).contiguous()  # [c, h, B]
    gW_out = torch.bmm(aT, g).mul_(scale).transpose(1, 2)  # [c, n, h]
    gpreT = torch.bmm(W_out.transpose(1, 2), g.transpose(1, 2)).mul_(scale).mul_(aT > 0)
    gpre = gpreT.transpose(1, 2)  # [c, B, h]; ReLU'(pre) = [a > 0]
    gb_out = g.sum(1).mul_(scale[:, :, 0]) if b_out is not None else None
    return gW_out, gpre, gb_out, loss


def loss_and_grads(params: MLPParams, batch: SparseBatch, q: Tensor, q_scalar: float | None,
                   want_loss: bool = False, block: int | None = None
                   ) -> tuple[dict[str, Tensor], Tensor | None]:
    """Gradients of L_i = mean_{b,k} |y - ReLU(x)|^q_i for every instance i.

    q: [I, 1, 1]; q_scalar: the common q when all instances share it (enables the r^3 / r fast paths).
    Returns grads keyed like params.tensors() and, if want_loss, the loss per instance [I].
    The sparse input is one block-diagonal CSR matrix X [I*B, I*n], so both x-products are spmm over
    all instances at once. The dense half (output, residual, its powers, two matmuls) runs in blocks
    of `block` instances: on a CPU, blocks small enough to stay in cache (one [B, n] buffer reused)
    beat one pass over a [I, B, n] tensor that streams through memory; on CUDA one block holds all.
    """
    I, B, n = batch.shape
    h = params.n_hidden
    dev = batch.val.device
    rows = batch.inst * B + batch.row  # [K] sorted: row in the flattened [I*B] axis
    cols = batch.inst * n + batch.col  # [K] row in the flattened [I*n] axis
    X = _csr(rows, I * B, cols, batch.val, I * n)

    Wt_in = params.W_in.transpose(1, 2).reshape(I * n, h)  # [I*n, h] (a copy: small)
    pre = (X @ Wt_in).view(I, B, h)
    if params.b_in is not None:
        pre += params.b_in[:, None, :]
    a = torch.relu(pre)  # [I, B, h]
    scale = q / (B * n)  # [I, 1, 1]
    flat = rows * n + batch.col  # [K] into the flattened [I, B, n]
    delta = batch.val.clamp(max=0) - batch.val  # -ReLU(x)

    if block is None:
        block = I if dev.type != "cpu" else max(1, CACHE_ELEMENTS // (B * n))
    grads: dict[str, Tensor] = {"W_out": torch.empty_like(params.W_out)}
    gpre = torch.empty(I, B, h, device=dev, dtype=a.dtype)
    gb_out = torch.empty_like(params.b_out) if params.b_out is not None else None
    loss = torch.empty(I, device=dev, dtype=a.dtype) if want_loss else None
    if block >= I:
        offsets = [0] * I + [flat.shape[0]]
        starts = [0]
    else:
        counts = torch.bincount(batch.inst, minlength=I)
        offsets = [0] + torch.cumsum(counts, 0).tolist()
        starts = list(range(0, I, block))
    buf = None
    for s in starts:
        e = min(I, s + block)
        k0, k1 = offsets[s], offsets[e]
        if buf is None or buf.shape[0] != e - s:
            buf = torch.empty(e - s, B, n, device=dev, dtype=a.dtype)
        res = _dense_block(a[s:e], params.W_out[s:e],
                           None if params.b_out is None else params.b_out[s:e],
                           flat[k0:k1] - s * B * n, delta[k0:k1], q[s:e], q_scalar, scale[s:e],
                           want_loss, out=buf)
        grads["W_out"][s:e] = res[0]
        gpre[s:e] = res[1]
        if gb_out is not None:
            gb_out[s:e] = res[2]
        if want_loss:
            loss[s:e] = res[3]
    # X^T as CSR: entries re-sorted by feature (a stable O(K) sort, cheaper than a scatter)
    order = torch.argsort(cols, stable=True)
    XT = _csr(cols[order], I * n, rows[order], batch.val[order], I * B)
    grads["W_in"] = (XT @ gpre.view(I * B, h)).view(I, n, h).transpose(1, 2).contiguous()
    if params.b_in is not None:
        grads["b_in"] = gpre.sum(1)
    if gb_out is not None:
        grads["b_out"] = gb_out
    return grads, loss


class Adam:
    """torch.optim.Adam (default betas, eps, no weight decay) over stacked per-instance tensors,
    with a per-instance learning rate."""

    def __init__(self, tensors: dict[str, Tensor], lr: Tensor):
        self.m = {k: torch.zeros_like(v) for k, v in tensors.items()}
        self.v = {k: torch.zeros_like(v) for k, v in tensors.items()}
        self.lr = lr  # [I]
        self.t = 0

    @torch.no_grad()
    def step(self, tensors: dict[str, Tensor], grads: dict[str, Tensor], factor: float = 1.0) -> None:
        self.t += 1
        b1, b2 = BETAS
        bc1, bc2 = 1 - b1**self.t, 1 - b2**self.t
        step = self.lr * (factor / bc1)  # [I]
        for k, p in tensors.items():
            g, m, v = grads[k], self.m[k], self.v[k]
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = v.sqrt().div_(math.sqrt(bc2)).add_(EPS)
            p.sub_(m.div(denom).mul_(step.view(-1, *([1] * (p.dim() - 1)))))


def train_mlp(n_features: int, n_hidden: int, *, seeds: Sequence[int],
              p: float | Sequence[float], loss_power: float | Sequence[float] = 4.0,
              lr: float | Sequence[float] = 3e-3, steps: int = 1000, batch_size: int = 2048,
              bias: bool = False, device: torch.device | str = "cpu", progress: bool = False,
              log_every: int = 50, desc: str = "train",
              callback: Callable[[int, MLPParams], None] | None = None) -> TrainResult:
    """Train len(seeds) models at once; instance i is reproducible from seeds[i] alone."""
    I = len(seeds)
    ps = _per_instance(p, I, "p")
    qs = _per_instance(loss_power, I, "loss_power")
    lrs = _per_instance(lr, I, "lr")
    device = torch.device(device)
    gens = [generator(s, device) for s in seeds]
    params = init_mlp(n_features, n_hidden, gens, bias=bias, device=device)
    tensors = params.tensors()
    q = torch.tensor(qs, device=device).view(I, 1, 1)
    q_scalar = qs[0] if len(set(qs)) == 1 else None
    opt = Adam(tensors, torch.tensor(lrs, device=device))
    result = TrainResult(params)
    t0 = time.perf_counter()
    bar = tqdm(range(steps), desc=desc, disable=not progress, leave=False, mininterval=0.5)
    for t in bar:
        batch = sample_sparse(gens, batch_size, n_features, ps, device=device)
        want = (t % log_every == 0) or t == steps - 1
        grads, loss = loss_and_grads(params, batch, q, q_scalar, want_loss=want)
        opt.step(tensors, grads, cosine_factor(t, steps))
        if want:
            result.loss_steps.append(t)
            result.loss.append(loss.tolist())
            if progress:
                bar.set_postfix(loss=f"{float(loss.mean()):.3e}")
        if callback is not None:
            callback(t, params)
    if device.type == "cuda":
        torch.cuda.synchronize()
    result.seconds = time.perf_counter() - t0
    return result
