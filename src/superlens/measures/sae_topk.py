"""TopK and BatchTopK sparse autoencoders for the SAE measure (superlens.measures.sae), fitted on an
instance axis like the ReLU + L1 ones there (fit_saes dispatches here for sparsity "topk" and
"batchtopk")."""
from __future__ import annotations

import math
import time
from typing import Sequence

import torch
from torch import Tensor

from superlens.device import generator
from superlens.measures.sae_parts import (BLOCK_ELEMS, SAEFit, adam_step, draw_rows, fit_progress,
                                          init_weights, nonzero_rows)

# Gradient buffers larger than this (elements) are re-zeroed only on the latent rows a step touched;
# smaller ones are zeroed whole, which is cheaper there (measured at widths 16 and 512).
SPARSE_ZERO_ELEMS = 1 << 20


@torch.no_grad()
def fit_topk_(x: Tensor, recipe, seeds: Sequence[int], k: int) -> SAEFit:
    """TopK sparse autoencoders (Gao et al. 2024, arXiv 2406.04093) on already scaled rows, one per
    (activation matrix, seed) on an instance axis, as fit_saes_ (x: [n_rows, N] or [M, n_rows, N]).

        pre = (x - b_dec) W_enc + b_enc     z = ReLU(TopK_k(pre))     x̂ = z W_dec + b_dec

    BatchTopK (recipe.sparsity "batchtopk"; Bussmann et al. 2024, arXiv 2412.06410): the k * B'
    largest pre-activations of the minibatch are kept (at most 4k in one row), B' the minibatch's
    rows that are not all zero, so rows with fewer features use fewer latents (with B' = B, as in
    the paper, a layer whose rows are mostly zero handed each non-zero row up to 4k latents). At
    evaluation a row's 4k largest are kept where pre > theta, theta the running mean (decay 0.99)
    of the smallest kept value over the minibatches with a non-zero row (the training rule, row by
    row). b_dec is used only with recipe.decoder_bias.

    loss mean_rows ||x - x̂||^2; unit-norm decoder rows (gradient projected off the radial
    direction, rows renormalised after each step); b_dec starts at the mean row. Only the k chosen
    latents of a row carry gradient, so everything but the encoder's forward product is done on the
    k gathered decoder rows (cost ~ 2 B N D + O(B k N) per step instead of ~10 B N D).
    """
    t0 = time.perf_counter()
    x3 = x if x.ndim == 3 else x[None]
    M, n_rows, n = x3.shape
    S, d = len(seeds), recipe.dict_size(n)
    k = max(1, min(int(k), d))
    batch = recipe.sparsity == "batchtopk"
    kr = min(d, 4 * k) if batch else k  # candidates per row
    theta = None
    inst_seeds = [s for _ in range(M) for s in seeds]
    I = M * S
    steps, B = recipe.schedule(n)
    dev, dt = x3.device, x3.dtype
    model = torch.arange(M, device=dev).repeat_interleave(S)
    flat = x3.reshape(M * n_rows, n)
    offset = (model * n_rows)[:, None, None]
    W_enc, b, W_dec = init_weights(inst_seeds, n, d, dev, dt)
    b_dec = x3.mean(1)[model].clone() if recipe.decoder_bias else torch.zeros(I, n, device=dev, dtype=dt)
    W_encT = W_enc.transpose(1, 2).contiguous()  # [I, D, N]: gradients are scattered by latent row
    # without a decoder bias b_dec stays 0 (and is not trained): the model is then x̂ = z W_dec
    params = [W_encT, b, W_dec] + ([b_dec] if recipe.decoder_bias else [])
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    b1, b2, eps = 0.9, 0.999, 1e-8
    t_state = [torch.zeros((), device=dev) for _ in params]
    gens = [generator(10_007 * s + 1, dev) for s in inst_seeds]
    # gradient buffers: only the latent rows a step touches are non-zero (zeroed after each step)
    gW_dec, gW_encT, gb = torch.zeros_like(W_dec), torch.zeros_like(W_encT), torch.zeros_like(b)
    sparse_zero = I * d * n > SPARSE_ZERO_ELEMS
    T = max(1, min(steps, BLOCK_ELEMS // B))
    idx = torch.empty(I, T, B, dtype=torch.int64, device=dev)
    live_rows, n_live = nonzero_rows(x3) if recipe.train_rows == "nonzero" else (None, None)
    # drawing only non-zero rows, a minibatch's non-zero rows are all B of them (none for a matrix
    # that is all zero)
    all_live = (None if live_rows is None else
                (x3 != 0).flatten(1).any(1)[model].to(torch.int64) * B)
    base = (torch.arange(I, device=dev) * d)[:, None, None]  # [I, 1, 1] latent offset per instance
    lr0 = recipe.lr_for(n)
    warm = recipe.warmup * steps if n > recipe.lr_width else 0.0
    say = fit_progress(recipe, I, steps, B, n, d)
    for t in range(steps):
        ramp = min(1.0, (t + 1) / warm) if warm > 0 else 1.0
        if t % T == 0:
            rows = draw_rows(idx, gens, n_rows, live_rows, n_live, model, offset)
        raw = flat[rows[:, t % T]]  # [I, B, N]
        xb = raw - b_dec[:, None, :] if recipe.decoder_bias else raw  # centred on b_dec
        pre = torch.baddbmm(b[:, None, :], xb, W_encT.transpose(1, 2))  # [I, B, D]
        val, ind = pre.topk(kr, dim=2)  # [I, B, kr]
        val = val.clamp_min_(0)
        if batch:  # keep the k * live largest of the batch (at most kr per row)
            live = (raw != 0).any(2).sum(1) if all_live is None else all_live  # [I] non-zero rows
            top = val.reshape(I, -1).topk(k * B, dim=1).values  # [I, k B], descending
            seen = live > 0  # a batch of zero rows keeps nothing and leaves theta as it was
            thr = top.gather(1, (k * live - 1).clamp_min(0)[:, None])[:, 0]
            thr = torch.where(seen, thr, torch.full_like(thr, math.inf))
            val = val * (val >= thr[:, None, None])
            prev = torch.zeros_like(thr) if theta is None else theta
            theta = torch.where(seen, thr if theta is None else 0.99 * theta + 0.01 * thr, prev)
        # only the kept entries (val > 0; about k of a row's kr candidates) carry anything: they
        # are gathered into one list e of (instance, row, latent) and everything below runs on it
        keep = val.reshape(-1) > 0
        e_row = keep.nonzero()[:, 0]  # flat index into [I, B, kr]
        gi = (ind + base).reshape(-1)[e_row]  # global latent row of each entry
        ib = e_row // kr  # its minibatch row, flat over [I, B]
        ve = val.reshape(-1)[e_row]
        rows_dec = W_dec.reshape(I * d, n)[gi]  # [E, N]
        xh = torch.zeros(I * B, n, device=dev, dtype=dt).index_add_(0, ib, ve[:, None] * rows_dec)
        xbf = xb.reshape(I * B, n)
        r = (xh - xbf).mul_(2.0 / B)  # dL/dx̂, [I B, N]
        re = r[ib]  # [E, N]
        gz = (rows_dec * re).sum(1)  # [E]
        # each contribution to a decoder row is projected off that row's (unit) direction before
        # it is summed: the projection is linear, so this equals projecting the summed gradient,
        # and the gradients stay zero outside the rows this step touched (zeroed again below)
        c_dec = ve[:, None] * re
        c_dec -= (c_dec * rows_dec).sum(1, keepdim=True) * rows_dec
        gW_dec.view(I * d, n).index_add_(0, gi, c_dec)
        gW_encT.view(I * d, n).index_add_(0, gi, gz[:, None] * xbf[ib])
        gb.view(-1).index_add_(0, gi, gz)
        r = r.view(I, B, n)
        # b_dec enters x̂ directly and the encoder through x - b_dec
        gb_dec = r.sum(1) - torch.bmm(gb[:, None, :], W_encT)[:, 0] if recipe.decoder_bias else None
        grads = [gW_encT, gb, gW_dec] + ([gb_dec] if recipe.decoder_bias else [])
        lr = ramp * lr0 * 0.5 * (1.0 + math.cos(math.pi * t / steps))
        adam_step(params, grads, m, v, t_state, t, lr, b1, b2, eps)
        for g_ in (gW_dec.view(I * d, n), gW_encT.view(I * d, n), gb.view(-1)):
            g_.index_fill_(0, gi, 0.0) if sparse_zero else g_.zero_()
        W_dec /= W_dec.norm(dim=2, keepdim=True).clamp_min(1e-12)
        say(t)
    return SAEFit(W_encT.transpose(1, 2).contiguous(), b, W_dec, 1.0, steps, B,
                  time.perf_counter() - t0, model, b_dec if recipe.decoder_bias else None,
                  kr, theta)


__all__ = ["SPARSE_ZERO_ELEMS", "fit_topk_"]
