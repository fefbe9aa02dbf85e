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


def _mm_each(a: Tensor, b: Tensor) -> Tensor:
    """Batched a @ b. On the CPU a loop of mm beats bmm ~2x for these skinny shapes (measured in
    bench/toy_train.py's setting: [2048, 10] @ [10, 100])."""
    if a.device.type != "cpu":
        return torch.bmm(a, b)
    out = torch.empty(a.shape[0], a.shape[1], b.shape[2], device=a.device, dtype=a.dtype)
    for i in range(a.shape[0]):
        torch.mm(a[i], b[i], out=out[i])
    return out


def loss_and_grads(params: MLPParams, batch: SparseBatch, q: Tensor, q_scalar: float | None,
                   want_loss: bool = False) -> tuple[dict[str, Tensor], Tensor | None]:
    """Gradients of L_i = mean_{b,k} |y - ReLU(x)|^q_i for every instance i.

    q: [I, 1, 1]; q_scalar: the common q when all instances share it (enables the r^3 / r fast paths).
    Returns grads keyed like params.tensors() and, if want_loss, the loss per instance [I].
    The sparse input is one block-diagonal CSR matrix X [I*B, I*n], so both x-products are spmm.
    """
    I, B, n = batch.shape
    h = params.n_hidden
    rows = batch.inst * B + batch.row  # [K] sorted: row in the flattened [I*B] axis
    cols = batch.inst * n + batch.col  # [K] row in the flattened [I*n] axis
    X = _csr(rows, I * B, cols, batch.val, I * n)

    Wt_in = params.W_in.transpose(1, 2).reshape(I * n, h)  # [I*n, h] (a copy: small)
    pre = (X @ Wt_in).view(I, B, h)
    if params.b_in is not None:
        pre += params.b_in[:, None, :]
    a = torch.relu(pre)  # [I, B, h]

    r = _mm_each(a, params.W_out.transpose(1, 2))  # y [I, B, n]; becomes the residual in place
    if params.b_out is not None:
        r += params.b_out[:, None, :]
    r.view(-1).index_add_(0, rows * n + batch.col, batch.val.clamp(max=0) - batch.val)  # r = y - ReLU(x)

    loss = None
    if want_loss:
        loss = (r.abs() ** q).mean(dim=(1, 2))
    # g = dL/dy up to the factor q / (B n), in place on r
    if q_scalar == 4.0:
        g = r.pow_(3)
    elif q_scalar == 2.0:
        g = r
    else:
        g = r.sign().mul_(r.abs().pow_(q - 1))
    scale = q / (B * n)  # [I, 1, 1]

    grads: dict[str, Tensor] = {}
    aT = a.transpose(1, 2).contiguous()  # [I, h, B]
    grads["W_out"] = torch.bmm(aT, g).mul_(scale).transpose(1, 2).contiguous()  # [I, n, h]
    gaT = torch.bmm(params.W_out.transpose(1, 2), g.transpose(1, 2))  # [I, h, B]
    gpreT = gaT.mul_(aT > 0).mul_(scale)  # ReLU'(pre) = [a > 0]
    gpre = gpreT.transpose(1, 2).reshape(I * B, h)
    # X^T as CSR: entries re-sorted by feature (a stable O(K) sort, cheaper than a scatter)
    order = torch.argsort(cols, stable=True)
    XT = _csr(cols[order], I * n, rows[order], batch.val[order], I * B)
    grads["W_in"] = (XT @ gpre).view(I, n, h).transpose(1, 2).contiguous()  # [I, h, n]
    if params.b_in is not None:
        grads["b_in"] = gpreT.sum(2)
    if params.b_out is not None:
        grads["b_out"] = g.sum(1).mul_(scale[:, :, 0])
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
