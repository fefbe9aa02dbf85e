"""The pieces every sparse-autoencoder fit of the SAE measure shares (the ReLU + L1 fits of
superlens.measures.sae and the TopK / BatchTopK fits of superlens.measures.sae_topk): the fitted
weights, their initialisation, the Adam step and the progress line. A module of its own so that the
two fitting modules need not import each other."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from superlens.device import generator


@dataclass
class SAEFit:
    """I = M * S fitted SAEs: instance m * S + s fits activation matrix m with AE seed seeds[s].

    W_enc: [I, N, D]; b_enc: [I, D]; W_dec: [I, D, N] (unit rows for decoder "unit");
    model: [I] which activation matrix each instance fits; scale: the activation divisor(s).
    """

    W_enc: Tensor
    b_enc: Tensor
    W_dec: Tensor
    scale: float
    steps: int
    batch: int
    seconds: float
    model: Tensor | None = None
    b_dec: Tensor | None = None  # [I, N] decoder bias (None: none)
    k: int | None = None  # TopK: at most k active latents per row (None: ReLU code)
    threshold: Tensor | None = None  # [I] BatchTopK: of the k candidates, those with pre > threshold

    def encode(self, x: Tensor) -> Tensor:
        """Latents z [I, B, D] of scaled rows x: [B, N] (every instance) or [I, B, N]."""
        if x.ndim == 2:
            x = x.expand(self.W_enc.shape[0], -1, -1)
        if self.b_dec is not None:
            x = x - self.b_dec[:, None, :]
        pre = torch.baddbmm(self.b_enc[:, None, :], x, self.W_enc)
        if self.k is None:
            return torch.relu(pre)
        val, ind = pre.topk(min(self.k, pre.shape[2]), dim=2)
        val = val.clamp_min(0)
        if self.threshold is not None:  # BatchTopK: of a row's k candidates, those above threshold
            val = val * (val > self.threshold[:, None, None])
        return torch.zeros_like(pre).scatter_(2, ind, val)

    def decode(self, z: Tensor) -> Tensor:
        """x̂ [I, B, N] of latents z [I, B, D]."""
        out = torch.bmm(z, self.W_dec)
        return out if self.b_dec is None else out + self.b_dec[:, None, :]


def init_weights(seeds: Sequence[int], n: int, d: int, device, dtype):
    """Decoder rows uniform on the sphere from generator(seed) alone, encoder = decoder^T, b = 0."""
    I = len(seeds)
    W_dec = torch.empty(I, d, n, device=device, dtype=dtype)
    for i, s in enumerate(seeds):
        W_dec[i].normal_(generator=generator(s, device))
    W_dec /= W_dec.norm(dim=2, keepdim=True).clamp_min(1e-12)
    return W_dec.transpose(1, 2).contiguous(), torch.zeros(I, d, device=device, dtype=dtype), W_dec


# Adam as torch.optim.Adam(fused=True) runs it, when this torch has the kernel (CPU and CUDA)
FUSED_ADAM = hasattr(torch, "_fused_adam_")

# Row indices are drawn for a block of steps at once (one generator call per instance and block):
# at toy sizes the per-step calls would cost as much as the step.
BLOCK_ELEMS = 1 << 16


def nonzero_rows(x3: Tensor) -> tuple[Tensor, Tensor]:
    """Per matrix of x3 [M, n_rows, N]: the indices of its rows that are not all zero, in order,
    padded to one length ([M, max count], int64), and the counts [M]. A matrix with no non-zero row
    keeps all its rows (there is nothing else to train on). Minibatches drawn as
    rows[m, draw % counts[m]] depend only on a matrix's own non-zero rows, so a fit on the instance
    axis equals a lone fit, and zero rows appended to a layer change nothing."""
    live = (x3 != 0).any(2)  # [M, n_rows]
    live[live.sum(1) == 0] = True
    counts = live.sum(1)
    order = torch.argsort((~live).to(torch.int8), dim=1, stable=True)  # live rows first, in order
    return order[:, :int(counts.max())].contiguous(), counts


def draw_rows(idx: Tensor, gens, n_rows: int, live_rows: Tensor | None, n_live: Tensor | None,
              model: Tensor, offset: Tensor) -> Tensor:
    """The next block of minibatch rows, [I, T, B] indices into the flattened [M * n_rows, N] rows:
    instance i draws from its own generator, uniformly among all n_rows rows of its matrix, or, given
    nonzero_rows' (live_rows, n_live), among that matrix's non-zero rows. Fills idx in place and
    returns the indices (a new tensor when drawing among non-zero rows)."""
    for i, g in enumerate(gens):
        idx[i].random_(0, n_rows if live_rows is None else 1 << 40, generator=g)
    if live_rows is not None:  # a uniform draw among the matrix's non-zero rows
        idx = live_rows[model[:, None, None], idx % n_live[model][:, None, None]]
    return idx + offset


# Every TINY_EVERY steps the Adam moments below TINY in size are set to zero. Why: the moments of a
# latent that stops firing decay geometrically (m by 0.9 a step) into the denormal range, where every
# arithmetic operation on a CPU costs ~100x: on a real 256-wide ReLU layer with most latents dead a
# fit took 139 s instead of 55 s (bench/measure.py's layer3). A moment of 1e-30 moves its weight by
# at most lr * 1e-22 (Adam divides by sqrt(v) + 1e-8), far under float32's resolution of a weight,
# and needs ~170 steps of decay to turn denormal, so the fits are unchanged (tests/test_measures_sae.py).
# (torch.set_flush_denormal would do it for the calling thread only, not for a thread pool that
# already exists.)
TINY, TINY_EVERY = 1e-30, 100


def zero_tiny_(tensors) -> None:
    """Set every entry of size below TINY to zero, in place."""
    for x in tensors:
        x.masked_fill_(x.abs() < TINY, 0.0)


def adam_step(params, grads, m, v, t_state, t, lr, b1, b2, eps) -> None:
    """One Adam step in place (torch.optim.Adam's fused kernel when this torch has it); every
    TINY_EVERY steps the moments below TINY are set to zero (see TINY)."""
    if FUSED_ADAM:
        torch._foreach_add_(t_state, 1.0)
        torch._fused_adam_(params, grads, m, v, [], t_state, lr=lr, beta1=b1, beta2=b2,
                           weight_decay=0.0, eps=eps, amsgrad=False, maximize=False)
    else:
        c1, c2 = 1 - b1 ** (t + 1), 1 - b2 ** (t + 1)
        for p, g_, m_, v_ in zip(params, grads, m, v):
            m_.mul_(b1).add_(g_, alpha=1 - b1)
            v_.mul_(b2).addcmul_(g_, g_, value=1 - b2)
            p.addcdiv_(m_, v_.div(c2).sqrt_().add_(eps), value=-lr / c1)
    if (t + 1) % TINY_EVERY == 0:
        zero_tiny_(m + v)


def fit_progress(recipe, I: int, steps: int, B: int, n: int, d: int):
    """A callable t -> None that prints one line per fit (instances, shape, rate) to stderr when
    the fit is long enough for a person to wait on it: at the start, then every ~10 s."""
    if not recipe.progress:
        return lambda t: None
    t0 = time.perf_counter()
    state = {"next": t0 + 10.0, "started": False}

    def say(t: int) -> None:
        now = time.perf_counter()
        if now < state["next"] and t + 1 < steps:
            return
        done = t + 1
        rate = done / max(now - t0, 1e-9)
        eta = (steps - done) / rate
        print(f"  SAE fit: {I} autoencoder(s), width {n}, D {d}, step {done}/{steps} x {B} rows, "
              f"{rate:.0f} steps/s, {now - t0:.0f} s elapsed, ~{eta:.0f} s left",
              file=sys.stderr, flush=True)
        state["next"] = now + 10.0

    return say


