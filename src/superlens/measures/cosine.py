"""Cosine similarity of features: between samples (what the paper's code measures) and between
neurons (what the paper's text describes).

The sample x sample matrix is N x N (10,000^2 = 10^8 entries for a test set); it is formed in
tiles and reduced on the fly, so memory is O(chunk^2) and never an N x N matrix.
"""
from __future__ import annotations

import numpy as np
import torch

from superlens.device import pick_device
from superlens.measures.numeric import unit_vectors

PERCENTILES = (1, 5, 25, 50, 75, 95, 99)


def histogram_percentiles(counts: np.ndarray, edges: np.ndarray,
                          qs=PERCENTILES) -> dict[int, float]:
    """Percentiles read off a histogram, interpolating linearly inside the bin where the cumulative
    count crosses q% of the total. Error at most one bin width. counts [B], edges [B+1]."""
    cum = np.cumsum(counts, dtype=np.float64)
    total = cum[-1]
    out = {}
    for q in qs:
        if total == 0:
            out[q] = float("nan")
            continue
        target = q / 100.0 * total
        b = int(np.searchsorted(cum, target, side="left"))  # first bin with cum >= target
        b = min(b, len(counts) - 1)
        before = cum[b - 1] if b > 0 else 0.0
        frac = (target - before) / counts[b] if counts[b] > 0 else 0.0
        out[q] = float(edges[b] + frac * (edges[b + 1] - edges[b]))
    return out


def sample_cosine_stats(features, *, chunk: int = 2048, bins: int = 2000,
                        include_diagonal: bool = True,
                        device: torch.device | str | None = None) -> dict:
    """Statistics of the cosine similarity between every pair of samples.

    features: [N, d]. The matrix C[i, j] = <x_i, x_j> / (|x_i| |x_j|) is [N, N]; with
    include_diagonal=True all N^2 entries count, as in the paper's code (its diagonal is 1 for
    non-zero rows); otherwise the N^2 - N off-diagonal ones. Zero rows give cosine 0.
    Everything is float64 on `device` (default cuda when present), in [chunk, chunk] tiles.

    Returns a dict: n, count (entries counted), include_diagonal, zero_rows, mean, std (population,
    ddof=0, exact float64 sums), min, max, hist_counts [bins] int64 and hist_edges [bins+1] (fixed,
    uniform over [-1, 1]; the last bin is closed), percentiles {q: value} for q in
    (1, 5, 25, 50, 75, 95, 99) read off the histogram, and percentile_resolution (= 2 / bins, the
    bin width: the percentiles are exact to within it).
    """
    if chunk < 1:
        raise ValueError(f"chunk = {chunk}, must be >= 1")
    if bins < 1:
        raise ValueError(f"bins = {bins}, must be >= 1")
    dev = pick_device("auto") if device is None else torch.device(device)
    x = torch.as_tensor(features).to(device=dev, dtype=torch.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"features: shape {tuple(x.shape)}, expected [N, d] with N >= 1")
    n = x.shape[0]
    if not include_diagonal and n < 2:
        raise ValueError("sample_cosine_stats: no off-diagonal pairs with fewer than 2 samples")
    u, zero = unit_vectors(x, dim=1)

    total = torch.zeros((), dtype=torch.float64, device=dev)
    total_sq = torch.zeros((), dtype=torch.float64, device=dev)
    counts = torch.zeros(bins + 1, dtype=torch.int64, device=dev)  # last slot: excluded diagonal
    lo, hi = torch.inf, -torch.inf
    # C is symmetric: form only tiles (I, J) with I <= J and count an off-diagonal tile twice
    for i in range(0, n, chunk):
        ie = min(i + chunk, n)
        for j in range(i, n, chunk):
            je = min(j + chunk, n)
            c = (u[i:ie] @ u[j:je].T).clamp_(-1.0, 1.0)                   # [ti, tj]
            # bin b is [-1 + b w, -1 + (b+1) w) with w = 2 / bins; 1.0 goes to the last bin
            idx = ((c + 1.0) * (bins / 2.0)).floor_().to(torch.int64).clamp_(0, bins - 1)
            if i == j and not include_diagonal:
                diag = idx.diagonal()
                diag.fill_(bins)
                cd = c.diagonal()
                cd.fill_(2.0)       # out of range: min/max see only off-diagonal entries
                lo = min(lo, float(c.min()))
                cd.fill_(-2.0)
                hi = max(hi, float(c.max()))
                cd.fill_(0.0)       # and the sums see nothing of them
            else:
                lo, hi = min(lo, float(c.min())), max(hi, float(c.max()))
            w = 1 if i == j else 2
            total += w * c.sum()
            total_sq += w * (c * c).sum()
            counts += w * torch.bincount(idx.view(-1), minlength=bins + 1)

    count = n * n if include_diagonal else n * (n - 1)
    mean = float(total) / count
    var = max(float(total_sq) / count - mean * mean, 0.0)
    hist = counts[:bins].cpu().numpy()
    edges = np.linspace(-1.0, 1.0, bins + 1)
    return {
        "n": n,
        "count": count,
        "include_diagonal": include_diagonal,
        "zero_rows": int(zero.sum()),
        "mean": mean,
        "std": var ** 0.5,
        "min": lo,
        "max": hi,
        "hist_counts": hist,
        "hist_edges": edges,
        "percentiles": histogram_percentiles(hist, edges),
        "percentile_resolution": 2.0 / bins,
    }


def neuron_cosine_stats(features, *, bins: int = 200) -> dict:
    """Cosine similarity between neurons' activation profiles (the columns of features [N, d]).

    Dead neurons (an all-zero column) have no direction: they are counted and left out. Over the
    L (L - 1) off-diagonal entries of the [L, L] matrix of the L live neurons: mean cos, mean |cos|,
    std (ddof=0), and a histogram over [-1, 1]. Uncentred, as "cosine" is: post-ReLU activations
    are >= 0, so their cosines are >= 0 too. Fewer than 2 live neurons gives NaN statistics.

    Returns: n_neurons, dead_neurons, live_neurons, mean, abs_mean, std, hist_counts [bins],
    hist_edges [bins+1].
    """
    x = torch.as_tensor(features).to(dtype=torch.float64)
    if x.ndim != 2:
        raise ValueError(f"features: shape {tuple(x.shape)}, expected [N, d]")
    d = x.shape[1]
    U, dead = unit_vectors(x, dim=0)                      # unit columns [N, d], dead [d]
    live = ~dead
    n_live = int(live.sum())
    edges = np.linspace(-1.0, 1.0, bins + 1)
    out = {"n_neurons": d, "dead_neurons": d - n_live, "live_neurons": n_live}
    if n_live < 2:
        nan = float("nan")
        return out | {"mean": nan, "abs_mean": nan, "std": nan,
                      "hist_counts": np.zeros(bins, dtype=np.int64), "hist_edges": edges}
    u = U[:, live]                                        # [N, L]
    c = (u.T @ u).clamp_(-1.0, 1.0)                       # [L, L]
    off = c[~torch.eye(n_live, dtype=torch.bool, device=c.device)]  # [L (L - 1)]
    idx = ((off + 1.0) * (bins / 2.0)).floor().to(torch.int64).clamp_(0, bins - 1)
    return out | {
        "mean": float(off.mean()),
        "abs_mean": float(off.abs().mean()),
        "std": float(off.std(correction=0)),
        "hist_counts": torch.bincount(idx, minlength=bins).cpu().numpy(),
        "hist_edges": edges,
    }
