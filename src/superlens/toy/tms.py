"""The classic toy model of superposition (Elhage et al. 2022, "Toy Models of Superposition"), on an
instance axis: x̂ = ReLU(W^T W x + b), with I independent models trained in one tensor program.

Data (the TMS convention): feature j of instance i is present with probability p[i, j] and then
takes a value U(0, 1). Loss per instance: L_i = mean_b sum_j imp[i, j] (x_bj - x̂_bj)^2.

The step is hand-differentiated (tests check it against autograd and torch.optim.Adam):

    h   = W x                    [B, m]   (kept transposed, [m, B])
    pre = W^T h + b              [B, n]
    g   = [pre > 0] (pre - x)    = dL/dpre up to the factor 2 imp / B
    gb  = 2/B imp * sum_b g
    gW  = 2/B ((h^T g) diag(imp) + (g diag(imp) W^T)^T x)     (W is used twice: encoder and decoder)

Instances train in chunks, each chunk through all its steps before the next (instances are
independent): on the CPU a chunk is sized so that its [c, B, n] intermediates stay near the L2 cache
(the whole-batch bmm pipeline measured ~2x slower for 256 x 1024 x 100), and with torch threads > 1
the chunks go to that many worker threads, one chunk per core at a time; on CUDA one chunk holds every
instance. Each instance's data come from its own generator only, drawn for a block of steps at a
time, so instance i of a run equals a lone run with seeds[i], whatever the chunking.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from superlens.device import generator, run_chunks
from superlens.toy.train import Adam, cosine_factor

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
class TMSParams:
    """Weights of I independent TMS models.

    W: [I, m, n]   column j is feature j's direction in the m-dimensional hidden space
    b: [I, n]      output bias
    """

    W: Tensor
    b: Tensor

    @property
    def instances(self) -> int:
        return self.W.shape[0]

    @property
    def n_hidden(self) -> int:
        return self.W.shape[1]

    @property
    def n_features(self) -> int:
        return self.W.shape[2]

    def tensors(self) -> dict[str, Tensor]:
        return {"W": self.W, "b": self.b}

    @classmethod
    def from_tensors(cls, d: dict[str, Tensor]) -> "TMSParams":
        return cls(d["W"], d["b"])

    def select(self, i: int | slice | list[int]) -> "TMSParams":
        """A sub-batch of instances (keeps the instance axis)."""
        if isinstance(i, int):
            i = [i]
        return TMSParams(self.W[i], self.b[i])

    def to(self, *args, **kwargs) -> "TMSParams":
        return TMSParams(self.W.to(*args, **kwargs), self.b.to(*args, **kwargs))

    def detach(self) -> "TMSParams":
        return TMSParams(self.W.detach().clone(), self.b.detach().clone())


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


# ---------------------------------------------------------------------------------------------- data

def _per_instance(v, I: int, n: int | None, name: str, vector: str = "instance") -> Tensor:
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


def _draw_plan(p_row: Tensor, device, dtype) -> _Draw:
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


def _fill(out: Tensor, g: torch.Generator, plan: _Draw) -> None:
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
    mean = total * p_max
    k = min(int(mean + 6 * math.sqrt(mean + 1) + 16), total + 16)
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
    _fill(out, g, _draw_plan(p_row, out.device, out.dtype))


def sample_tms(generators: list[torch.Generator], batch: int, n_features: int, p,
               device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> Tensor:
    """One batch x [I, B, n] for I instances, instance i from generators[i] by fill_tms_batch;
    p: float, [I], [1, n] or [I, n] probabilities."""
    I = len(generators)
    P = _per_instance(p, I, n_features, "feature_probability")
    x = torch.empty(I, batch, n_features, device=device, dtype=dtype)
    for i, g in enumerate(generators):
        fill_tms_batch(x[i], g, P[i])
    return x


# ------------------------------------------------------------------------------------------ training

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
    plan = _draw_plan(_per_instance(p_row, 1, n, "feature_probability", vector="feature")[0], device,
                      torch.float32)
    T = _block_steps(batch, n, steps)
    for t0 in range(0, steps, T):
        block = torch.empty(min(T, steps - t0), batch, n, device=device)
        _fill(block, g, plan)
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
    imp = _per_instance(1.0 if importance is None else importance, I, n, "importance", vector="feature")
    P = _per_instance(feature_probability, I, n, "feature_probability")
    if not bool(((P >= 0) & (P <= 1)).all()):
        raise ValueError("feature_probability: values must lie in [0, 1]")
    lrs = _per_instance(lr, I, None, "lr")
    if not bool((lrs > 0).all()):
        raise ValueError("lr: values must be > 0")

    t_start = time.perf_counter()
    gens = [generator(s, device) for s in seeds]
    params = init_tms(n, n_hidden, gens, device=device)
    imp = imp.to(device=device, dtype=torch.float32)
    lrs = lrs.to(device=device, dtype=torch.float32)
    plans = [_draw_plan(P[i], device, torch.float32) for i in range(I)]
    T = _block_steps(B, n, steps)
    c = max(1, min(I, chunk or _auto_chunk(device, B, n, T, I)))
    logged = [t for t in range(steps) if t % log_every == 0 or t == steps - 1]
    loss = torch.empty(len(logged), I, device=device)
    factors = [cosine_factor(t, steps) if schedule == "cosine" else 1.0 for t in range(steps)]
    bar = tqdm(total=steps * ((I + c - 1) // c), desc=desc, disable=not progress, leave=False,
               mininterval=0.5)
    bar_lock = threading.Lock()
    buffers = threading.local()  # one [c, T, B, n] data buffer per worker, reused across its chunks
    stop = threading.Event()  # set by run_threaded on an error or Ctrl-C elsewhere

    def train_chunk(s: int) -> None:
        """Instances s .. s + c - 1 through all their steps (chunk-outer, step-inner: a chunk's weights,
        optimiser state and batch stay in cache throughout)."""
        e = min(I, s + c)
        x = getattr(buffers, "x", None)
        if x is None:
            x = buffers.x = torch.empty(c, T, B, n, device=device)
        part = TMSParams(params.W[s:e], params.b[s:e])  # views: updates land in params
        opt = Adam(part.tensors(), lrs[s:e])
        k = 0  # index into logged
        for t0 in range(0, steps, T):
            if stop.is_set():
                return
            Tb = min(T, steps - t0)
            for j in range(s, e):  # the only per-instance loop: each instance's own generator
                _fill(x[j - s, :Tb], gens[j], plans[j])
            for t in range(t0, t0 + Tb):
                want = k < len(logged) and logged[k] == t
                grads, lt = tms_grads(part, x[: e - s, t - t0], imp[s:e], want)
                if want:
                    loss[k, s:e] = lt
                    k += 1
                opt.step(part.tensors(), grads, factors[t])
            with bar_lock:
                bar.update(Tb)

    starts = list(range(0, I, c))
    run_chunks(train_chunk, starts, device, stop)
    bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return params, {"steps": logged, "loss": loss.tolist(), "seconds": time.perf_counter() - t_start}
