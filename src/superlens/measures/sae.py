"""The sparse-autoencoder measure of superposition (Bereska et al. 2025, "Superposition as Lossy
Compression", TMLR, arXiv 2512.13568; public code: leonardbereska/superposition-measurement).

A sparse autoencoder (SAE) is fitted to a layer's activations x [n_rows, N]; its D = dict_multiple * N
latents z [n_rows, D] are the candidate features. With

    p_i = E|z_i| ||d_i|| / sum_j E|z_j| ||d_j||      (latent i's share of the mean absolute code;
                                                        ||d_i|| = 1 here, see below)
    F   = exp(H(p)),  H(p) = -sum_i p_i log p_i      (the effective number of features, <= D)
    psi = F / N                                       (the superposition ratio)

F counts how many dictionary directions carry the layer's activity, weighted by how much.

The frozen recipe (SAERecipe's defaults), chosen on planted features whose F is exact
(superlens.measures.planted; development grid examples/sae_calibration_dev.toml) and then checked once
on a held-out grid (examples/sae_calibration.toml; the figures are in sae_calibration.json, read by
superlens.measures.sae_calibration, never copied by hand):
- Scale: activations are divided by the root-mean-square norm of their non-zero rows.
- Model: BatchTopK (Bussmann et al. 2024, arXiv 2412.06410; TopK: Gao et al. 2024, arXiv
  2406.04093): z keeps the k * B' largest pre-activations x W_enc + b_enc of a minibatch, B' its
  rows that are not all zero (at most 4k per row; zero rows carry no feature and get no budget, a
  change made after the recipe was first frozen); at evaluation a latent is active when its pre-activation exceeds the running
  threshold. Rows with fewer features then use fewer latents: a plain TopK fills all k slots of
  every row, and the spare slots spread mass over many small latents (F read 1.2-2x too many).
  x̂ = z W_dec with unit-norm decoder rows and no decoder bias: the features of a ReLU layer are
  non-negative combinations anchored at 0, and a decoder bias at the mean row grew a heavy latent
  along no feature. Unit rows make z_i the feature's size in activation units, so p_i compares
  like with like.
- Loss: mean_rows ||x - x̂||^2. Training: Adam at lr, a cosine decay to 0, `steps` minibatches of
  `batch_size` rows drawn with replacement among the rows that are not all zero (zero rows carry no
  feature; on the classic toy model at p = 0.001, 98 % of the rows, they diluted the minibatches to
  a few informative rows each); the decoder's gradient is projected off the radial direction and
  its rows renormalised after every step. 8000 steps (2000 when the recipe was first frozen: the
  fits had not converged, see the calibration page's recipe history). On wide layers the minibatch
  (then the step count) is cut so that one AE costs at most `max_gflop` (reported as sae_batch /
  sae_steps). The cap was 100 GFLOP when the recipe was frozen; the held-out grid then showed it
  left a 512-wide layer 124 steps (F read 1.6-3.4x the truth there), so it was raised to 2000, which
  leaves every width up to 128 its 8000 steps of 256 rows and a 512-wide layer 2483 steps of 128.
  These changes were made after seeing the held-out grid, which the calibration page says.
- k = 2 is a constant of the recipe, fixed on the development grid, with two rules beside it that
  read k off the fits, never off a truth (fit_measure has the why; the calibration page the figures):
  the fewest-latents rule (recipe.fvu_fewer = 0.02: k = 1 where the fits at k = 2 and 1 both reach
  FVU <= 0.02; examples/sae_calibration_dev.toml) and the more-latents rule (recipe.fvu_more = 0.1,
  k_max = 4: k = 3, then 4, where the fit at k = 2 leaves FVU > 0.1; examples/
  sae_calibration_dev_k.toml, widths 16-512). Both were then run once on a third held-out grid
  (sae_calibration.json). F is off where a layer holds more features than its width can separate
  (width 16 with K / N >= 2.5) and where rows hold many features (dense layers).
- Pooling: latents whose decoder rows point the same way (cosine >= merge_cos) are one feature;
  their masses are summed before the entropy. sae_features_raw is F without this pooling.
- Seeds: each AE seed draws its own initialisation (decoder rows uniform on the sphere, encoder =
  decoder^T, b_enc = 0) and its own minibatches; several seeds train together on an instance axis.
The earlier recipe (a ReLU encoder with an L1 penalty, sparsity "l1") stays available by name.

Beside F the measure reports what makes it trustworthy or not (all on at most eval_rows rows): the
fraction of variance unexplained (FVU = sum ||x - x̂||^2 / sum ||x - mean x||^2 on the scaled rows),
the mean number of active latents per row (L0, over all rows), the fraction of dead latents (never
active on any row), the spread of F over AE seeds, and F / D (the cap: F can never exceed the
dictionary size).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from typing import Sequence

import torch
from torch import Tensor

from superlens.device import generator
from superlens.measures.numeric import mean_std


@dataclass(frozen=True)
class SAERecipe:
    """How the SAE measure is fitted. The defaults were fixed before the validation on toy models
    (superlens.studies.sae_validation; lr_width and max_gflop leave those 5- to 20-wide layers as they
    were) and were not changed by it.

    dict_multiple: latents per layer neuron (D = dict_multiple * N)
    l1:            L1 coefficient on the scaled activations (see the module docstring)
    steps:         Adam steps
    train_rows:    "nonzero" (minibatches drawn among the rows that are not all zero) or "all"
    batch_size:    rows per step (cut on wide layers to respect max_gflop)
    lr:            Adam learning rate, cosine-decayed to 0 over the steps (see lr_for)
    lr_width:      above this layer width the learning rate falls as 1 / sqrt(width) (lr_for);
                   the validation's toy layers (5 to 20 wide) all train at lr
    warmup:        on layers wider than lr_width, the fraction of the steps over which the L1
                   coefficient and the learning rate ramp linearly from 0 (without it most latents of
                   a 256- or 512-wide layer died early; on toy layers it left duplicate latents:
                   3 orthogonal features in 8 dims read 4.4 instead of 3.0)
    max_gflop:     compute cap per AE: steps * batch * row_flop(N) flop at most
    min_batch:     the smallest minibatch the cap may cut to, before it cuts steps instead
    decoder:       "unit" (unit-norm rows, untied encoder) or "tied" (encoder = decoder^T; its rows
                   are renormalised to unit norm after every step too)
    merge_cos:     latents whose decoder rows have cosine >= this are one feature (> 1: never)
    eval_rows:     F, FVU, L0 and dead latents are computed on at most this many rows (a fixed
                   random subset; the training minibatches are drawn from all rows)
    scale:         "nonzero-rms" (divide by the RMS norm of the non-zero rows) or "none"
    k:             BatchTopK's latents per non-zero row, on average
    fvu_fewer:     the fewest-latents rule (fit_measure): a layer whose fit at k reconstructs it to
                   FVU <= fvu_fewer is fitted again at k = 1, and that fit is kept when it too
                   reaches FVU <= fvu_fewer (0 turns the rule off)
    fvu_more:      the more-latents rule (fit_measure): a layer whose fit at k leaves FVU > fvu_more
                   is fitted again at k + 1, k + 2, ... up to k_max, and the first fit that reaches
                   FVU <= fvu_more is kept (the k_max fit where none does; 0 turns the rule off)
    k_max:         the largest k the more-latents rule tries (at or below k: the rule is off)
    """

    dict_multiple: float = 8.0
    l1: float = 0.1
    steps: int = 8000
    batch_size: int = 256
    lr: float = 1e-3
    max_gflop: float = 2000.0
    min_batch: int = 128
    scale: str = "nonzero-rms"
    decoder: str = "unit"
    merge_cos: float = 0.95
    lr_width: int = 1_000_000
    warmup: float = 0.0
    eval_rows: int = 20_000
    sparsity: str = "batchtopk"
    k: int = 2
    fvu_fewer: float = 0.02
    fvu_more: float = 0.1
    k_max: int = 4
    decoder_bias: bool = False
    train_rows: str = "nonzero"
    progress: bool = True

    def __post_init__(self):
        for name, lo in (("dict_multiple", 1.0), ("steps", 1), ("batch_size", 1), ("min_batch", 1),
                         ("eval_rows", 1)):
            if not getattr(self, name) >= lo:
                raise ValueError(f"SAERecipe.{name} = {getattr(self, name)!r}, must be >= {lo}")
        for name in ("lr", "max_gflop"):
            if not getattr(self, name) > 0:
                raise ValueError(f"SAERecipe.{name} = {getattr(self, name)!r}, must be > 0")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"SAERecipe.warmup = {self.warmup!r}, must be in [0, 1)")
        if not self.lr_width >= 1:
            raise ValueError(f"SAERecipe.lr_width = {self.lr_width!r}, must be >= 1")
        if not self.l1 >= 0:
            raise ValueError(f"SAERecipe.l1 = {self.l1!r}, must be >= 0")
        if self.decoder not in ("unit", "tied"):
            raise ValueError(f"SAERecipe.decoder = {self.decoder!r}, must be 'unit' or 'tied'")
        if self.sparsity not in ("l1", "topk", "batchtopk"):
            raise ValueError(f"SAERecipe.sparsity = {self.sparsity!r}, must be 'l1', 'topk' or "
                             "'batchtopk'")
        if not self.k >= 1:
            raise ValueError(f"SAERecipe.k = {self.k!r}, must be >= 1")
        if not 0 <= self.fvu_fewer < 1:
            raise ValueError(f"SAERecipe.fvu_fewer = {self.fvu_fewer!r}, must be in [0, 1)")
        if not 0 <= self.fvu_more < 1:
            raise ValueError(f"SAERecipe.fvu_more = {self.fvu_more!r}, must be in [0, 1)")
        if self.fvu_more > 0 and self.fvu_more < self.fvu_fewer:
            raise ValueError(f"SAERecipe.fvu_more = {self.fvu_more!r}, must be >= fvu_fewer "
                             f"({self.fvu_fewer!r})")
        if not self.k_max >= 1:
            raise ValueError(f"SAERecipe.k_max = {self.k_max!r}, must be >= 1")
        if self.decoder == "tied" and self.sparsity != "l1":
            raise ValueError("SAERecipe.decoder = 'tied' is for sparsity 'l1' only")
        if self.train_rows not in ("all", "nonzero"):
            raise ValueError(f"SAERecipe.train_rows = {self.train_rows!r}, must be 'all' or 'nonzero'")
        if self.scale not in ("nonzero-rms", "none"):
            raise ValueError(f"SAERecipe.scale = {self.scale!r}, must be 'nonzero-rms' or 'none'")

    @property
    def fewer_rule(self) -> bool:
        """Whether fit_measure's fewest-latents rule applies (BatchTopK above k = 1, fvu_fewer > 0)."""
        return self.sparsity == "batchtopk" and self.k > 1 and self.fvu_fewer > 0

    @property
    def more_rule(self) -> bool:
        """Whether fit_measure's more-latents rule applies (BatchTopK, fvu_more > 0, k_max > k)."""
        return self.sparsity == "batchtopk" and self.k_max > self.k and self.fvu_more > 0

    def dict_size(self, n: int) -> int:
        """D for a layer of n neurons."""
        return max(1, int(round(self.dict_multiple * n)))

    def row_flop(self, n: int) -> float:
        """Flop of one minibatch row of a fit step on n neurons (the compute cap's unit). ReLU + L1:
        encode, decode and their gradients, ~5 dense products; TopK: the dense encoder product and
        the top-k selection, the rest on k gathered decoder rows."""
        return (10.0 if self.sparsity == "l1" else 3.0) * n * self.dict_size(n)

    def schedule(self, n: int) -> tuple[int, int]:
        """(steps, batch) after the compute cap for a layer of n neurons."""
        rows = self.max_gflop * 1e9 / self.row_flop(n)  # row passes the cap allows
        batch = self.batch_size
        if self.steps * batch > rows:
            batch = max(min(self.min_batch, self.batch_size), int(rows // self.steps))
        steps = max(1, min(self.steps, int(rows // batch)))
        return steps, batch

    def lr_for(self, n: int) -> float:
        """Adam's learning rate for a layer of n neurons: lr up to lr_width neurons, then
        lr * sqrt(lr_width / n). Adam moves every bias by ~lr per step whatever its gradient, while a
        latent's pre-activation on a unit-norm row is ~1 / sqrt(n) before it aligns with a feature:
        at lr = 1e-2 a 512-wide layer's latents were all dead within a few hundred steps."""
        return self.lr * min(1.0, math.sqrt(self.lr_width / n))

    def as_dict(self) -> dict:
        """The fields (SAERecipe(**{k: d[k] for k in fields}) rebuilds it) and, for readers, the
        architecture in words."""
        enc = {"l1": "ReLU(x W_enc + b_enc) encoder",
               "topk": f"TopK (k = {self.k}) of ReLU(x W_enc + b_enc)",
               "batchtopk": f"BatchTopK (k = {self.k} per non-zero row on average) of x W_enc + b_enc"}[self.sparsity]
        loss = "mean ||x - x_hat||^2" + (" + l1 * mean sum z" if self.sparsity == "l1" else "")
        arch = (enc + ", " + ("unit-norm decoder rows" if self.decoder == "unit" else
                              "tied decoder W_enc^T, unit rows") +
                (", decoder bias" if self.decoder_bias else ", no decoder bias") +
                f"; loss {loss}; Adam, cosine lr" +
                ("; minibatches of non-zero rows" if self.train_rows == "nonzero" else "") +
                (f"; k = 1 instead where both fits reach FVU <= {self.fvu_fewer:g}"
                 if self.fewer_rule else "") +
                (f"; k + 1, ... up to {self.k_max} where the fit leaves FVU > {self.fvu_more:g} "
                 f"(the first that reaches it)" if self.more_rule else ""))
        # progress is how a fit reports itself, not part of the recipe: runs with and without
        # --quiet record the same recipe
        return {**{k: v for k, v in asdict(self).items() if k != "progress"}, "architecture": arch}


# ------------------------------------------------------------------------------------------- math

def effective_features(mass: Tensor) -> Tensor:
    """F = exp(H(p)), p = mass / sum(mass) over the last axis: mass [..., D] >= 0 -> [...].

    0 log 0 = 0; an all-zero mass has no features: F = 0.
    """
    mass = mass.to(torch.float64)
    total = mass.sum(-1, keepdim=True)
    p = mass / total.clamp_min(1e-300)
    h = -(p * torch.log(p.clamp_min(1e-300))).sum(-1)
    return torch.where(total.squeeze(-1) > 0, torch.exp(h), torch.zeros_like(h))


def merge_parallel(mass: Tensor, directions: Tensor, cos_min: float) -> Tensor:
    """Pool the mass of latents whose decoder directions are (nearly) the same: mass [D] >= 0,
    directions [D, N] (unit rows) -> pooled mass [D] (zeros where a latent joined another).

    Why: with unit-norm decoder rows, splitting a coefficient c between two parallel latents costs the
    same L1 (c1 + c2 = c), and a second latent with another bias lets the ReLU code fit the magnitude
    better, so an SAE often tiles one feature's magnitudes over several copies of its direction. They
    are one feature. Greedy in order of mass: a latent joins the first heavier group whose leading
    direction has cosine >= cos_min with its own, else it leads a new group. cos_min > 1 pools nothing.
    """
    if cos_min > 1:
        return mass.clone()
    device, mass, directions = mass.device, mass.cpu(), directions.cpu()  # a sequential loop
    order = torch.argsort(mass, descending=True)
    live = order[mass[order] > 0]
    if live.numel() == 0:
        return mass.to(device)
    cos = directions[live] @ directions[live].T  # [L, L], rows and columns in order of mass
    leader = torch.zeros(live.numel(), dtype=torch.bool)
    group = torch.empty(live.numel(), dtype=torch.int64)  # position of each latent's leader
    for a in range(live.numel()):
        hit = (cos[a, :a] >= cos_min) & leader[:a]
        if bool(hit.any()):
            group[a] = int(hit.to(torch.int8).argmax())  # the heaviest matching leader
        else:
            leader[a], group[a] = True, a
    out = torch.zeros_like(mass)
    out.index_add_(0, live[group], mass[live])
    return out.to(device)


def conv_rows(fmap, max_rows: int | None, seed: int = 0) -> Tensor:
    """One row per spatial position over channels: fmap [n, C, H, W] -> [min(n*H*W, max_rows), C].

    When there are more rows than max_rows, a uniform random subset (without replacement, from
    seed) is kept, in their original order.
    """
    f = torch.as_tensor(fmap)
    if f.ndim != 4:
        raise ValueError(f"fmap: shape {tuple(f.shape)}, expected [n, C, H, W]")
    rows = f.permute(0, 2, 3, 1).reshape(-1, f.shape[1])
    if max_rows is not None and rows.shape[0] > max_rows:
        if max_rows < 1:
            raise ValueError(f"max_rows = {max_rows}, must be >= 1")
        keep = torch.randperm(rows.shape[0], generator=generator(seed))[:max_rows].sort().values
        rows = rows[keep]
    return rows


def activation_scale(x: Tensor, scale: str) -> float:
    """The divisor of the recipe's scaling: the RMS norm of x's non-zero rows (x [n, N]), or 1."""
    if scale == "none":
        return 1.0
    sq = (x.to(torch.float64) ** 2).sum(1)
    nz = sq > 0
    return float(sq[nz].mean().sqrt()) if bool(nz.any()) else 1.0


# --------------------------------------------------------------------------------------- training

from superlens.measures.sae_parts import (BLOCK_ELEMS as _BLOCK_ELEMS, SAEFit,  # noqa: F401
                                          adam_step as _adam, fit_progress as _progress,
                                          draw_rows, init_weights as _init, nonzero_rows)


# Below this many flop per step the fit runs on one torch thread: on 2 busy cores two OpenMP threads
# ran the toy study's SAE (9 x 256 x 10 x 80 per step) 30x slower than one (measured, 137 s vs 4.6 s).
_ONE_THREAD_FLOP = 3e8


@torch.no_grad()
def fit_saes(x: Tensor, recipe: SAERecipe, seeds: Sequence[int]) -> SAEFit:
    """fit_saes_ on one torch thread when a step is small (see _ONE_THREAD_FLOP)."""
    M, n = (x.shape[0], x.shape[2]) if x.ndim == 3 else (1, x.shape[1])
    steps, B = recipe.schedule(n)
    small = 10.0 * M * len(seeds) * B * n * recipe.dict_size(n) < _ONE_THREAD_FLOP
    threads = torch.get_num_threads()
    from superlens.measures.sae_topk import fit_topk_

    fit = (fit_saes_ if recipe.sparsity == "l1" else
           lambda x, r, s: fit_topk_(x, r, s, r.k))
    if x.device.type != "cpu" or not small or threads == 1:
        return fit(x, recipe, seeds)
    torch.set_num_threads(1)
    try:
        return fit(x, recipe, seeds)
    finally:
        torch.set_num_threads(threads)


@torch.no_grad()
def fit_saes_(x: Tensor, recipe: SAERecipe, seeds: Sequence[int]) -> SAEFit:
    """Fit one SAE per (activation matrix, seed) on already scaled rows, all on one instance axis.

    x: [n_rows, N] (one matrix) or [M, n_rows, N] (M matrices of the same shape, e.g. M toy models);
    instance m * S + s fits x[m] with seeds[s], and equals a lone fit of x[m] with that seed.
    Gradients are written out (see the module docstring for the loss):

        pre = x W_enc + b          z = ReLU(pre)          x̂ = z W_dec         r = x̂ - x
        g   = 2 r / B              gW_dec = z^T g          gz = g W_dec^T + l1 / B
        gpre = gz [pre > 0]        gW_enc = x^T gpre       gb = sum_rows gpre
    """
    t0 = time.perf_counter()
    x3 = x if x.ndim == 3 else x[None]
    M, n_rows, n = x3.shape
    S, d = len(seeds), recipe.dict_size(n)
    inst_seeds = [s for _ in range(M) for s in seeds]
    I = M * S
    steps, B = recipe.schedule(n)
    dev, dt = x3.device, x3.dtype
    model = torch.arange(M, device=dev).repeat_interleave(S)  # [I]
    flat = x3.reshape(M * n_rows, n)
    offset = (model * n_rows)[:, None, None]  # [I, 1, 1] row offset of each instance's matrix
    W_enc, b, W_dec = _init(inst_seeds, n, d, dev, dt)
    tied = recipe.decoder == "tied"
    params = [b, W_dec] if tied else [W_enc, b, W_dec]
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    b1, b2, eps = 0.9, 0.999, 1e-8
    t_state = [torch.zeros((), device=dev) for _ in params]  # the fused kernel's step counters
    gens = [generator(10_007 * s + 1, dev) for s in inst_seeds]  # minibatches, apart from the init
    T = max(1, min(steps, _BLOCK_ELEMS // B))
    idx = torch.empty(I, T, B, dtype=torch.int64, device=dev)
    live_rows, n_live = nonzero_rows(x3) if recipe.train_rows == "nonzero" else (None, None)
    lr0 = recipe.lr_for(n)
    warm = recipe.warmup * steps if n > recipe.lr_width else 0.0
    say = _progress(recipe, I, steps, B, n, d)
    for t in range(steps):
        # the L1 penalty (and the learning rate) ramp up over the first `warmup` of the steps
        ramp = min(1.0, (t + 1) / warm) if warm > 0 else 1.0
        l1_term = ramp * recipe.l1 / B
        if t % T == 0:
            rows = draw_rows(idx, gens, n_rows, live_rows, n_live, model, offset)
        xb = flat[rows[:, t % T]]  # [I, B, N]
        W_e = W_dec.transpose(1, 2) if tied else W_enc
        pre = torch.baddbmm(b[:, None, :], xb, W_e)  # [I, B, D]
        z = pre.clamp_min(0)
        r = torch.bmm(z, W_dec).sub_(xb).mul_(2.0 / B)  # dL/dx̂
        gW_dec = torch.bmm(z.transpose(1, 2), r)  # [I, D, N]
        if not tied:  # off the radial direction: the rows are renormalised after the step anyway
            gW_dec -= (gW_dec * W_dec).sum(2, keepdim=True) * W_dec
        gz = torch.bmm(r, W_dec.transpose(1, 2)).add_(l1_term).mul_(pre > 0)  # gpre [I, B, D]
        if tied:  # the encoder use of the same matrix
            gW_dec.baddbmm_(gz.transpose(1, 2), xb)
            grads = [gz.sum(1), gW_dec]
        else:
            grads = [torch.bmm(xb.transpose(1, 2), gz), gz.sum(1), gW_dec]
        lr = ramp * lr0 * 0.5 * (1.0 + math.cos(math.pi * t / steps))
        _adam(params, grads, m, v, t_state, t, lr, b1, b2, eps)
        # unit rows for both decoders: the mass E z_i and the merge compare directions of norm 1
        # (a tied decoder left free drifted to row norms 0.67-1.17)
        W_dec /= W_dec.norm(dim=2, keepdim=True).clamp_min(1e-12)
        say(t)
    if tied:
        W_enc = W_dec.transpose(1, 2).contiguous()
    return SAEFit(W_enc, b, W_dec, 1.0, steps, B, time.perf_counter() - t0, model)


@torch.no_grad()
def sae_stats(fit: SAEFit, x: Tensor, chunk: int = 8192, cos_min: float = 2.0) -> dict[str, Tensor]:
    """Per-instance statistics of fitted SAEs over all scaled rows x: [n_rows, N] or [M, n_rows, N]
    (as given to fit_saes).

    Returns tensors [I]: features (F, after pooling latents with decoder cosine >= cos_min; the
    default pools nothing), features_raw (F without pooling), fvu, l0 (mean active latents per
    row), dead_fraction (latents never active), mass [I, D] (mean z_i; the decoder rows have
    unit norm) and decoder [I, D, N] (the fit's decoder rows, for comparisons with known directions).
    """
    I, D = fit.b_enc.shape
    x3 = x if x.ndim == 3 else x[None]
    n_rows = x3.shape[1]
    model = fit.model if fit.model is not None else torch.zeros(I, dtype=torch.int64)
    model = model.to(x3.device)
    mass = torch.zeros(I, D, dtype=torch.float64, device=x3.device)
    fired = torch.zeros(I, D, dtype=torch.bool, device=x3.device)
    l0 = torch.zeros(I, dtype=torch.float64, device=x3.device)
    sse = torch.zeros(I, dtype=torch.float64, device=x3.device)
    x64 = x3.to(torch.float64)
    sst = ((x64 - x64.mean(1, keepdim=True)) ** 2).sum((1, 2))[model]  # [I]
    for s in range(0, n_rows, chunk):
        xb = x3[model, s:s + chunk]  # [I, b, N]
        z = fit.encode(xb)  # [I, b, D]
        active = z > 0
        mass += z.sum(1, dtype=torch.float64)
        fired |= active.any(1)
        l0 += active.sum((1, 2), dtype=torch.float64)
        r = fit.decode(z) - xb
        sse += (r.to(torch.float64) ** 2).sum((1, 2))
    mass /= n_rows
    pooled = torch.stack([merge_parallel(mass[i], fit.W_dec[i].to(torch.float64), cos_min)
                          for i in range(I)])
    return {"features": effective_features(pooled), "features_raw": effective_features(mass),
            "fvu": torch.where(sst > 0, sse / sst.clamp_min(1e-300), torch.full_like(sse, math.nan)),
            "l0": l0 / n_rows, "dead_fraction": 1.0 - fired.to(torch.float64).mean(1), "mass": mass,
            "decoder": fit.W_dec}


def fit_measure(x: Tensor, recipe: SAERecipe, seeds: Sequence[int],
                x_eval: Tensor | None = None) -> tuple[SAEFit, dict[str, Tensor]]:
    """fit_saes then sae_stats (on x_eval, default x), with two rules that read k off the fits:
    - fewest latents: a matrix whose fits at recipe.k reach a mean FVU (over seeds) <= fvu_fewer is
      fitted again at k = 1, kept when that reaches it too. A budget above the features a row holds
      splits them (the classic toy model at p = 0.02-0.1 read 1.25-2.1x its weight entropy at k = 2);
    - more latents: a matrix whose fits at recipe.k leave a mean FVU > fvu_more is fitted again at
      k + 1, ... up to k_max, keeping the first fit that reaches fvu_more (the k_max fit where none
      does). A budget below them merges them (3 features a row in 512 dims: 0.63-0.89 of the truth
      at k = 2, 0.97-1.02 at the k this rule picks).
    x: [n_rows, N] or [M, n_rows, N] scaled rows. Returns the fit at recipe.k (seconds include the
    other fits) and sae_stats' dict plus "k" [I], the k each instance's statistics come from."""
    x_eval = x if x_eval is None else x_eval
    fit = fit_saes(x, recipe, seeds)
    st = sae_stats(fit, x_eval, cos_min=recipe.merge_cos)
    S = len(seeds)
    st["k"] = torch.full_like(st["fvu"], float(recipe.k))
    x3, e3 = (x, x_eval) if x.ndim == 3 else (x[None], x_eval[None])

    def refit(sel: list[int], k: int) -> Tensor:
        """Fits matrices sel at k; returns their mean FVU [len(sel)] and the new statistics."""
        fit_k = fit_saes(x3[sel], replace(recipe, k=k), seeds)
        st_k = sae_stats(fit_k, e3[sel], cos_min=recipe.merge_cos)
        fit.seconds += fit_k.seconds
        st_k["k"] = torch.full_like(st_k["fvu"], float(k))
        return st_k["fvu"].view(-1, S).mean(1), st_k

    def take(m: int, j: int, st_k: dict) -> None:
        for key, v in st.items():
            v[m * S:(m + 1) * S] = st_k[key][j * S:(j + 1) * S]

    fvu = st["fvu"].view(-1, S).mean(1)
    if recipe.fewer_rule:
        sel = (fvu <= recipe.fvu_fewer).nonzero()[:, 0].tolist()
        if sel:
            fvu1, st1 = refit(sel, 1)
            for j, m in enumerate(sel):
                if float(fvu1[j]) <= recipe.fvu_fewer:
                    take(m, j, st1)
    if recipe.more_rule:
        sel = (fvu > recipe.fvu_more).nonzero()[:, 0].tolist()
        for k in range(recipe.k + 1, recipe.k_max + 1):
            if not sel:
                break
            fvu_k, st_k = refit(sel, k)
            for j, m in enumerate(sel):
                take(m, j, st_k)
            sel = [m for j, m in enumerate(sel) if float(fvu_k[j]) > recipe.fvu_more]
    return fit, st


def _as_rows(acts) -> Tensor:
    x = torch.as_tensor(acts) if not isinstance(acts, Tensor) else acts
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"acts: shape {tuple(x.shape)}, expected [n_rows, N] with n_rows, N >= 1")
    x = x.detach().to(torch.float32)
    if not bool(torch.isfinite(x).all()):
        raise ValueError("acts: contains NaN or infinite values")
    return x


def sae_measure(acts, recipe: SAERecipe | None = None, seeds: Sequence[int] = (0, 1, 2),
                device: torch.device | str | None = None) -> dict[str, float]:
    """The SAE measure of a layer: acts [n_rows, N] (torch or numpy) -> a dict of floats.

    sae_features       F = exp(H(p)), mean over AE seeds
    sae_features_std   its standard deviation over AE seeds (ddof = 1; 0 for one seed)
    sae_features_raw   F before pooling parallel latents (the paper's plain count), mean over seeds
    sae_psi            F / N
    sae_fvu, sae_l0, sae_dead_fraction   means over AE seeds (see the module docstring)
    sae_dict_size      D;  sae_features_over_dict  F / D (how close F is to its cap)
    sae_seeds, sae_steps, sae_batch, sae_scale, sae_seconds   how it was fitted
    Runs on `device` (default: acts' device).
    """
    x = _as_rows(acts)
    return sae_measure_many(x[None], recipe, seeds, device)[0]


def sae_measure_many(acts, recipe: SAERecipe | None = None, seeds: Sequence[int] = (0, 1, 2),
                     device: torch.device | str | None = None) -> list[dict[str, float]]:
    """sae_measure for M layers of one shape at once (one instance axis): acts [M, n_rows, N] ->
    M dicts; each equals sae_measure(acts[m]) (every matrix is scaled on its own)."""
    recipe = recipe or SAERecipe()
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds: empty, need at least one AE seed")
    x = torch.as_tensor(acts) if not isinstance(acts, Tensor) else acts
    if x.ndim != 3:
        raise ValueError(f"acts: shape {tuple(x.shape)}, expected [M, n_rows, N]")
    x = torch.stack([_as_rows(xm) for xm in x])
    if device is not None:
        x = x.to(device)
    scales = [activation_scale(xm, recipe.scale) for xm in x]
    x = x / torch.tensor(scales, dtype=x.dtype, device=x.device)[:, None, None]
    x_eval = x
    if x.shape[1] > recipe.eval_rows:  # the statistics on a fixed random subset of the rows
        keep = torch.randperm(x.shape[1], generator=generator(0))[: recipe.eval_rows]
        x_eval = x[:, keep.to(x.device)]
    fit, st = fit_measure(x, recipe, seeds, x_eval)
    S = len(seeds)
    out = []
    for k, scale in enumerate(scales):
        sub = {key: v[k * S:(k + 1) * S] for key, v in st.items()}
        fit.scale = scale
        out.append(summarize(sub, x.shape[2], fit))
    return out


def summarize(st: dict[str, Tensor], n: int, fit: SAEFit) -> dict[str, float]:
    """Per-seed statistics -> the sae_* dict of floats (see sae_measure)."""
    F = st["features"].cpu().numpy()  # [I]
    D = fit.W_dec.shape[1]
    f, f_std = mean_std(F)
    return {
        "sae_features": f,
        "sae_features_std": f_std,
        "sae_features_raw": float(st["features_raw"].mean()),
        "sae_psi": f / n,
        "sae_fvu": float(st["fvu"].mean()),
        "sae_k": float(st["k"].mean()) if "k" in st else math.nan,
        "sae_l0": float(st["l0"].mean()),
        "sae_dead_fraction": float(st["dead_fraction"].mean()),
        "sae_dict_size": float(D),
        "sae_features_over_dict": f / D,
        "sae_seeds": float(len(F)),
        "sae_steps": float(fit.steps),
        "sae_batch": float(fit.batch),
        "sae_scale": float(fit.scale),
        "sae_seconds": float(fit.seconds),
    }


SAE_DEFINITIONS = {
    "sae_features": "SAE feature count F = exp(H(p)), p_i = latent i's share of the mean absolute "
                    "latent activation (unit-norm decoder rows; parallel latents pooled), of a sparse "
                    "autoencoder fitted to the layer (Bereska et al. 2025, arXiv 2512.13568); mean over "
                    "AE seeds (and over models where several).",
    "sae_features_std": "Std of F over AE seeds (sae_measure) or over models (study metrics).",
    "sae_features_ae_std": "Std of F over AE seeds, mean over models: how much F depends on the AE's "
                           "seed alone.",
    "sae_features_raw": "F without pooling parallel latents (the paper's plain count).",
    "sae_psi": "Superposition ratio psi = F / N, N the layer's width.",
    "sae_fvu": "The SAE's fraction of variance unexplained, sum ||x - x_hat||^2 / sum ||x - mean x||^2.",
    "sae_l0": "Mean number of active SAE latents per activation row.",
    "sae_k": "BatchTopK's latents per non-zero row the statistics come from: the recipe's k, 1 by "
             "the fewest-latents rule, or k + 1 ... k_max by the more-latents rule (fit_measure).",
    "sae_dead_fraction": "Fraction of SAE latents never active on any row.",
    "sae_dict_size": "SAE dictionary size D = dict_multiple x N (F <= D).",
    "sae_features_over_dict": "F / D: how close F is to its cap (1).",
    "sae_represented_features": "Known answer for toy models: features with ||W_i|| > 0.5 (here "
                                "sqrt(||W_in,i|| ||W_out,i||)), mean over models.",
    "sae_recipe": "The SAE recipe (dictionary multiple, L1, steps, batch, lr, scaling, decoder).",
    "sae_ae_seeds": "The AE seeds each model's F is averaged over.",
    "sae_seconds": "Seconds spent fitting the SAE measure.",
}
for _k in ("sae_psi", "sae_fvu", "sae_l0", "sae_dead_fraction", "sae_features_raw",
           "sae_features_over_dict"):
    SAE_DEFINITIONS[_k + "_std"] = f"Std over models of {_k}."

SAE_KEYS = ("sae_features", "sae_features_std", "sae_psi", "sae_fvu", "sae_l0", "sae_dead_fraction",
            "sae_dict_size", "sae_features_over_dict")

__all__ = ["SAERecipe", "SAEFit", "SAE_DEFINITIONS", "SAE_KEYS", "activation_scale", "conv_rows",
           "effective_features", "fit_measure", "fit_saes", "sae_measure", "sae_measure_many", "sae_stats", "summarize"]
