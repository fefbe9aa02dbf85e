"""One training engine for the compressed-computation model, on an instance axis.

All I models train in one tensor program: weights are [I, ...], each instance has its own generator
(data and init), its own p, loss power q and learning rate. The step is hand-differentiated and runs
in blocks of instances whose dense tensors stay in cache:

    x   = scatter of the K active entries into a zeroed [c, B, n] buffer (x is ~98 % zeros)
    pre = W_in x           one bmm, produced transposed [c, h, B]
    y   = W_out ReLU(pre)  one bmm into a reused [c, B, n] buffer
    r   = y - ReLU(x)      in place, touching only the K active entries
    L   = mean |r|^q       dL/dy = q sign(r)|r|^(q-1) / (B n), in place on r (r^3 for q = 4)
    gW_out = g^T a,  ga = g W_out,  gpre = ga * [pre > 0],  gW_in = gpre^T x

Adam and the cosine schedule are written out to match torch.optim.Adam + CosineAnnealingLR exactly
(tests check the weights against that autograd reference).
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from superlens.device import generator, run_chunks
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


CACHE_ELEMENTS = 1 << 20  # a dense [c, B, n] block of ~4 MiB float32: measured best on a 2-core EPYC


def _block_step(p: MLPParams, x: Tensor, r: Tensor, flat: Tensor, val: Tensor, q: Tensor,
                q_scalar: float | None, scale: Tensor, want_loss: bool):
    """Loss and gradients for a block of c instances, every dense tensor in cache.

    p: the block's weights; x, r: [c, B, n] buffers (x all zeros on entry and on exit); flat, val:
    the block's K_c active entries as flat indices into [c, B, n] and their values.
    Returns the grads keyed like p.tensors() and the loss [c] (or None).
    """
    xf = x.view(-1)
    xf.index_copy_(0, flat, val)  # the block's dense input, for two dense bmms (cheaper than spmm)
    # Layouts matter ~3x here (CPU, measured): contract over B as [h, B] @ [B, n], and produce
    # pre and dL/dpre transposed, as [h, n] @ [n, B]; the [B, n] @ [n, h] forms are the slow ones.
    aT = torch.bmm(p.W_in, x.transpose(1, 2))  # pre^T [c, h, B]
    if p.b_in is not None:
        aT += p.b_in[:, :, None]
    aT.relu_()
    torch.bmm(aT.transpose(1, 2), p.W_out.transpose(1, 2), out=r)  # y, then the residual in place
    if p.b_out is not None:
        r += p.b_out[:, None, :]
    r.view(-1).index_add_(0, flat, val.clamp(max=0) - val)  # r = y - ReLU(x)
    loss = (r.abs() ** q).mean(dim=(1, 2)) if want_loss else None
    # g = dL/dy up to the factor q / (B n), in place on r
    if q_scalar == 4.0:
        g = r.pow_(3)
    elif q_scalar == 2.0:
        g = r
    else:
        g = r.sign().mul_(r.abs().pow_(q - 1))
    grads = {"W_out": torch.bmm(aT, g).mul_(scale).transpose(1, 2)}  # [c, n, h]
    gpreT = torch.bmm(p.W_out.transpose(1, 2), g.transpose(1, 2)).mul_(scale).mul_(aT > 0)
    grads["W_in"] = torch.bmm(gpreT, x)  # [c, h, n]; ReLU'(pre) = [a > 0] above
    if p.b_in is not None:
        grads["b_in"] = gpreT.sum(2)
    if p.b_out is not None:
        grads["b_out"] = g.sum(1).mul_(scale[:, :, 0])
    xf.index_fill_(0, flat, 0.0)
    return grads, loss


def loss_and_grads(params: MLPParams, batch: SparseBatch, q: Tensor, q_scalar: float | None,
                   want_loss: bool = False, block: int | None = None,
                   buffers: tuple[Tensor, Tensor] | None = None
                   ) -> tuple[dict[str, Tensor], Tensor | None]:
    """Gradients of L_i = mean_{b,k} |y - ReLU(x)|^q_i for every instance i.

    q: [I, 1, 1]; q_scalar: the common q when all instances share it (enables the r^3 / r fast paths).
    Returns grads keyed like params.tensors() and, if want_loss, the loss per instance [I].
    Instances run in blocks of `block`: on a CPU, blocks small enough that their dense input and
    output stay in cache (two [c, B, n] buffers reused) beat passes over [I, B, n] tensors that
    stream through memory, and dense bmms on the scattered input beat CSR spmm over the K entries
    (~2x for the whole step, measured, 64 x 2048 x 100); on CUDA one block holds all.
    buffers: (x, r), two [>= block, B, n] tensors to reuse across calls, x all zeros (and left so).
    """
    I, B, n = batch.shape
    dev, dtype = batch.val.device, batch.val.dtype
    flat = (batch.inst * B + batch.row) * n + batch.col  # [K] into the flattened [I, B, n], sorted
    if block is None:
        block = I if dev.type != "cpu" else max(1, CACHE_ELEMENTS // (B * n))
    block = min(block, I)
    scale = q / (B * n)  # [I, 1, 1]
    grads = {k: torch.empty_like(v) for k, v in params.tensors().items()}
    loss = torch.empty(I, device=dev, dtype=dtype) if want_loss else None
    # first entry of each instance (entries are sorted by instance); one block needs none
    first = None if block == I else [0] + torch.cumsum(torch.bincount(batch.inst, minlength=I), 0).tolist()
    x, r = buffers or (torch.zeros(block, B, n, device=dev, dtype=dtype),
                       torch.empty(block, B, n, device=dev, dtype=dtype))
    for s in range(0, I, block):
        e = min(I, s + block)
        k0, k1 = (0, flat.shape[0]) if first is None else (first[s], first[e])
        g, l = _block_step(params.select(slice(s, e)), x[:e - s], r[:e - s], flat[k0:k1] - s * B * n,
                           batch.val[k0:k1], q[s:e], q_scalar, scale[s:e], want_loss)
        for k, v in g.items():
            grads[k][s:e] = v
        if want_loss:
            loss[s:e] = l
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
              log_every: int = 50, desc: str = "train", chunk: int | None = None) -> TrainResult:
    """Train len(seeds) models at once; instance i is reproducible from seeds[i] alone.

    Instances train in chunks of `chunk` (default: a cache-sized block on a CPU, all on CUDA), each
    chunk through all its steps before the next: its weights, optimiser state and buffers stay in
    cache. On a CPU with torch.get_num_threads() = k > 1, chunks train on k worker threads, each
    running torch single-threaded; a lone chunk (one small model) keeps the intra-op threads.
    """
    I = len(seeds)
    ps = _per_instance(p, I, "p")
    qs = _per_instance(loss_power, I, "loss_power")
    lrs = _per_instance(lr, I, "lr")
    device = torch.device(device)
    n, B = n_features, batch_size
    gens = [generator(s, device) for s in seeds]
    params = init_mlp(n, n_hidden, gens, bias=bias, device=device)
    q = torch.tensor(qs, device=device).view(I, 1, 1)
    q_scalar = qs[0] if len(set(qs)) == 1 else None
    lr_t = torch.tensor(lrs, device=device)
    if chunk is None:
        chunk = I if device.type != "cpu" else max(1, CACHE_ELEMENTS // (B * n))
    c = max(1, min(I, chunk))
    logged = [t for t in range(steps) if t % log_every == 0 or t == steps - 1]
    loss = torch.empty(len(logged), I, device=device)
    starts = list(range(0, I, c))
    bar = tqdm(total=steps * len(starts), desc=desc, disable=not progress, leave=False,
               mininterval=0.5)
    bar_lock = threading.Lock()
    stop = threading.Event()  # set by run_threaded on an error or Ctrl-C elsewhere

    def train_chunk(s: int) -> None:
        e = min(I, s + c)
        part = params.select(slice(s, e))  # views: updates land in params
        tensors = part.tensors()
        opt = Adam(tensors, lr_t[s:e])
        buffers = (torch.zeros(e - s, B, n, device=device), torch.empty(e - s, B, n, device=device))
        k = 0  # index into logged
        for t in range(steps):
            if stop.is_set():
                return
            batch = sample_sparse(gens[s:e], B, n, ps[s:e], device=device)
            want = k < len(logged) and logged[k] == t
            grads, lt = loss_and_grads(part, batch, q[s:e], q_scalar, want_loss=want, block=e - s,
                                       buffers=buffers)
            opt.step(tensors, grads, cosine_factor(t, steps))
            if want:
                loss[k, s:e] = lt
                k += 1
            with bar_lock:
                bar.update(1)

    t0 = time.perf_counter()
    run_chunks(train_chunk, starts, device, stop)
    bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return TrainResult(params, logged, loss.tolist(), time.perf_counter() - t0)
