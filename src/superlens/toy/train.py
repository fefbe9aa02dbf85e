"""One training engine for both toy models, on an instance axis: train_mlp (compressed computation) and
train_tms (the classic toy model of superposition) share the chunked skeleton train_in_chunks and Adam.

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
from typing import Iterator, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from superlens.device import generator, run_chunks
from superlens.toy.data import SparseBatch, draw_plan, fill_planned, per_instance, sample_sparse
from superlens.toy.models import MLPParams, TMSParams, init_mlp, init_tms

BETAS = (0.9, 0.999)
EPS = 1e-8


@dataclass
class TrainResult:
    params: MLPParams
    loss_steps: list[int] = field(default_factory=list)
    loss: list[list[float]] = field(default_factory=list)  # [logged step][instance]
    seconds: float = 0.0


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


class ChunkRun:
    """What one chunk of instances shares with the others while it trains (see train_in_chunks):
    the logged steps, the loss table [len(logged), I] it writes its columns of, the stop event and
    the progress bar."""

    def __init__(self, I: int, steps: int, log_every: int, n_chunks: int, device: torch.device,
                 progress: bool, desc: str):
        self.logged = [t for t in range(steps) if t % log_every == 0 or t == steps - 1]
        self.loss = torch.empty(len(self.logged), I, device=device)
        self.stop = threading.Event()  # set by run_threaded on an error or Ctrl-C elsewhere
        self._bar = tqdm(total=steps * n_chunks, desc=desc, disable=not progress, leave=False,
                         mininterval=0.5)
        self._lock = threading.Lock()

    def tick(self, steps: int = 1) -> None:
        with self._lock:
            self._bar.update(steps)


def train_in_chunks(I: int, chunk: int, steps: int, log_every: int, device: torch.device, *,
                    progress: bool, desc: str, train_chunk) -> ChunkRun:
    """The skeleton both toy models train with: instances s .. e - 1 of each chunk go through all their
    steps by train_chunk(s, e, run) before the chunk is done (chunk-outer, step-inner: a chunk's weights,
    optimiser state and buffers stay in cache). On a CPU with torch.get_num_threads() = k > 1 chunks
    train on k worker threads, each running torch single-threaded (superlens.device.run_chunks).
    Returns the ChunkRun (its logged steps and loss table)."""
    starts = list(range(0, I, chunk))
    run = ChunkRun(I, steps, log_every, len(starts), device, progress, desc)
    run_chunks(lambda s: train_chunk(s, min(I, s + chunk), run), starts, device, run.stop)
    run._bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return run


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
    ps = per_instance(p, I, None, "p").tolist()
    qs = per_instance(loss_power, I, None, "loss_power").tolist()
    lrs = per_instance(lr, I, None, "lr").tolist()
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

    def train_chunk(s: int, e: int, run: ChunkRun) -> None:
        part = params.select(slice(s, e))  # views: updates land in params
        tensors = part.tensors()
        opt = Adam(tensors, lr_t[s:e])
        buffers = (torch.zeros(e - s, B, n, device=device), torch.empty(e - s, B, n, device=device))
        k = 0  # index into logged
        for t in range(steps):
            if run.stop.is_set():
                return
            batch = sample_sparse(gens[s:e], B, n, ps[s:e], device=device)
            want = k < len(run.logged) and run.logged[k] == t
            grads, lt = loss_and_grads(part, batch, q[s:e], q_scalar, want_loss=want, block=e - s,
                                       buffers=buffers)
            opt.step(tensors, grads, cosine_factor(t, steps))
            if want:
                run.loss[k, s:e] = lt
                k += 1
            run.tick()

    t0 = time.perf_counter()
    run = train_in_chunks(I, c, steps, log_every, device, progress=progress, desc=desc,
                          train_chunk=train_chunk)
    return TrainResult(params, run.logged, run.loss.tolist(), time.perf_counter() - t0)


# ----------------------------------------------------------------------------- TMS
# The classic toy model x̂ = ReLU(W^T W x + b) (superlens.toy.models.TMSParams), loss per instance
# L_i = mean_b sum_j imp[i, j] (x_bj - x̂_bj)^2. The step is hand-differentiated (tests check it against
# autograd and torch.optim.Adam):
#
#     h   = W x                    [B, m]   (kept transposed, [m, B])
#     pre = W^T h + b              [B, n]
#     g   = [pre > 0] (pre - x)    = dL/dpre up to the factor 2 imp / B
#     gb  = 2/B imp * sum_b g
#     gW  = 2/B ((h^T g) diag(imp) + (g diag(imp) W^T)^T x)     (W is used twice: encoder and decoder)
#
# On the CPU a chunk is sized so that its [c, B, n] intermediates stay near the L2 cache (the
# whole-batch bmm pipeline measured ~2x slower for 256 x 1024 x 100); on CUDA one chunk holds every
# instance. Each instance's data come from its own generator only, drawn for a block of steps at a
# time, so instance i of a run equals a lone run with seeds[i], whatever the chunking.

def tms_grads(params: TMSParams, x: Tensor, importance: Tensor, want_loss: bool = False
              ) -> tuple[dict[str, Tensor], Tensor | None]:
    """Gradients of L_i (see tms_loss) for every instance: x [I, B, n], importance [I, n].

    Returns {"W": [I, m, n], "b": [I, n]} and, if want_loss, the loss [I].
    """
    W, b = params.W, params.b
    B = x.shape[1]
    # the hidden layer and its gradient are kept as [I, m, B]: MKL ran the skinny products with
    # these layouts ~2x faster than with [I, B, m] (measured, m = 10, n = 100, B = 1024)
    hT = torch.bmm(W, x.transpose(1, 2))  # [I, m, B]
    pre = torch.baddbmm(b[:, None, :], hT.transpose(1, 2), W)  # [I, B, n]
    y = pre.clamp_min_(0)  # ReLU in place
    loss = None
    if want_loss:
        r = y - x
        loss = (r.mul_(r).sum(1) * importance).sum(1) / B
    # g = [pre > 0] (y - x) = y - x sign(y): measured ~8x faster on the CPU than torch.where / a bool mask
    g = y.addcmul_(x, torch.sign(y), value=-1)
    scale = importance * (2.0 / B)  # [I, n]
    gW = torch.bmm(hT, g).mul_(scale[:, None, :])  # decoder use of W
    ghT = torch.bmm(W * scale[:, None, :], g.transpose(1, 2))  # [I, m, B]
    gW.baddbmm_(ghT, x)  # encoder use of W
    gb = g.sum(1).mul_(scale)
    return {"W": gW, "b": gb}, loss


# Per instance, data are drawn for a block of steps at once: one generator call per block instead of
# per step is what keeps tiny models (2 -> 1, 5 -> 2) from being all Python overhead. The block length
# depends on (batch, n, steps) only, never on the number of instances, so lone runs replay the draws.
BLOCK_ELEMS = 1 << 16


def _block_steps(batch: int, n: int, steps: int) -> int:
    return max(1, min(steps, BLOCK_ELEMS // (batch * n)))


def iter_tms_batches(g: torch.Generator, p_row, batch: int, n: int, steps: int,
                     device: torch.device | str = "cpu") -> Iterator[Tensor]:
    """The training batches x [B, n] of one instance, step by step, exactly as train_tms draws them
    from g after init_tms (for references and replays). p_row: float or [n]."""
    plan = draw_plan(per_instance(p_row, 1, n, "feature_probability", vector="feature")[0], device,
                     torch.float32)
    T = _block_steps(batch, n, steps)
    for t0 in range(0, steps, T):
        block = torch.empty(min(T, steps - t0), batch, n, device=device)
        fill_planned(block, g, plan)
        yield from block


def _auto_chunk(device: torch.device, batch: int, n: int, block: int, I: int) -> int:
    """Instances trained together. CPU: ~1 MiB per [c, B, n] float32 buffer, so that a step's
    intermediates stay near a core's L2 (c = 2 for 1024 x 100: re-measured with worker threads, 3-5
    were as fast at best but swung to 25 % slower between runs at 1 thread). CUDA: all, up to
    ~512 MiB of drawn data."""
    if device.type != "cpu":
        return max(1, min(I, (1 << 27) // (block * batch * n)))
    return max(1, min(I, (1 << 18) // (batch * n)))


def train_tms(n_features: int, n_hidden: int, *, importance=None, feature_probability=0.05,
              steps: int = 1000, batch_size: int = 1024, lr: float | Sequence[float] | Tensor = 1e-3,
              seeds: Sequence[int], device: torch.device | str = "cpu", progress: bool = False,
              schedule: str = "constant", log_every: int = 50, chunk: int | None = None,
              desc: str = "tms") -> tuple[TMSParams, dict]:
    """Train len(seeds) TMS models at once; instance i equals a lone run with seeds[i] (and the same
    n, batch_size, steps and its own importance / probability / lr).

    importance: None (all 1), [n], [1, n] or [I, n]; feature_probability: float, [I], [1, n] or [I, n];
    lr: float or [I]; schedule: "constant" or "cosine" (CosineAnnealingLR to 0 over `steps`).
    Adam (betas 0.9, 0.999, eps 1e-8), as torch.optim.Adam. chunk: instances trained together
    (default: sized to the CPU cache; all on CUDA). On a CPU with torch.get_num_threads() = k > 1,
    chunks train on k worker threads, each running torch single-threaded (the results equal a
    1-thread run). Returns the trained params and
    {"steps": [t, ...], "loss": [[L_i at t for each instance], ...] (the training batch before the
    update at t), "seconds": wall time}.
    """
    I = len(seeds)
    if I < 1:
        raise ValueError("seeds: empty, need at least one seed")
    for name, v in (("n_features", n_features), ("n_hidden", n_hidden), ("steps", steps),
                    ("batch_size", batch_size), ("log_every", log_every)):
        if int(v) < 1:
            raise ValueError(f"{name} = {v}, must be >= 1")
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"schedule = {schedule!r}, must be 'constant' or 'cosine'")
    device = torch.device(device)
    n, B = n_features, batch_size
    imp = per_instance(1.0 if importance is None else importance, I, n, "importance", vector="feature")
    P = per_instance(feature_probability, I, n, "feature_probability")
    if not bool(((P >= 0) & (P <= 1)).all()):
        raise ValueError("feature_probability: values must lie in [0, 1]")
    lrs = per_instance(lr, I, None, "lr")
    if not bool((lrs > 0).all()):
        raise ValueError("lr: values must be > 0")

    t_start = time.perf_counter()
    gens = [generator(s, device) for s in seeds]
    params = init_tms(n, n_hidden, gens, device=device)
    imp = imp.to(device=device, dtype=torch.float32)
    lrs = lrs.to(device=device, dtype=torch.float32)
    plans = [draw_plan(P[i], device, torch.float32) for i in range(I)]
    T = _block_steps(B, n, steps)
    c = max(1, min(I, chunk or _auto_chunk(device, B, n, T, I)))
    factors = [cosine_factor(t, steps) if schedule == "cosine" else 1.0 for t in range(steps)]
    buffers = threading.local()  # one [c, T, B, n] data buffer per worker, reused across its chunks

    def train_chunk(s: int, e: int, run: ChunkRun) -> None:
        x = getattr(buffers, "x", None)
        if x is None:
            x = buffers.x = torch.empty(c, T, B, n, device=device)
        part = TMSParams(params.W[s:e], params.b[s:e])  # views: updates land in params
        opt = Adam(part.tensors(), lrs[s:e])
        k = 0  # index into logged
        for t0 in range(0, steps, T):
            if run.stop.is_set():
                return
            Tb = min(T, steps - t0)
            for j in range(s, e):  # the only per-instance loop: each instance's own generator
                fill_planned(x[j - s, :Tb], gens[j], plans[j])
            for t in range(t0, t0 + Tb):
                want = k < len(run.logged) and run.logged[k] == t
                grads, lt = tms_grads(part, x[: e - s, t - t0], imp[s:e], want)
                if want:
                    run.loss[k, s:e] = lt
                    k += 1
                opt.step(part.tensors(), grads, factors[t])
            run.tick(Tb)

    run = train_in_chunks(I, c, steps, log_every, device, progress=progress, desc=desc,
                          train_chunk=train_chunk)
    return params, {"steps": run.logged, "loss": run.loss.tolist(),
                    "seconds": time.perf_counter() - t_start}
