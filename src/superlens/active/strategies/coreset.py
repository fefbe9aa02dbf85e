"""Core-set selection by greedy k-center (Sener & Savarese 2018, ICLR, Algorithm 1).

Greedy k-center repeatedly takes the pool point farthest from every centre so far (the labelled set,
then the points it has taken). Peers build the N x N distance matrix (10 GB at N = 50k); here memory
is O(N d): one [N] vector of squared distances to the nearest centre, plus [N, B] GEMM blocks.

Speed comes from applying centres to all points in blocks of B at once. Between two blocks, the
[N] vector is stale: it ignores the up-to-B "pending" centres, so it is an upper bound on the true
min-distance. The next centre is argmax_x min(stale(x), min_{c pending} d(x, c)); candidates are
checked in descending stale order (torch.topk in doubling blocks) against the pending centres only,
and the search stops once the best exact value is >= the largest stale value not yet checked, which
bounds every unchecked point. This picks exactly what the one-pass-per-centre greedy picks (up to
ties and float rounding) while reading the [N, d] pool once per B centres instead of once per centre.
"""
from __future__ import annotations

import math
from contextlib import contextmanager

import torch
from torch import Tensor

from superlens.active.strategies.base import FunctionStrategy, register

_GEMM_ELEMENTS = 1 << 24  # largest [N, chunk] temporary: 64 MB in float32


def _sq_norms(x: Tensor) -> Tensor:
    """[N, d] -> [N] squared Euclidean norms."""
    return torch.einsum("nd,nd->n", x, x)


def update_min_sq_dist(x: Tensor, xn: Tensor, c: Tensor, cn: Tensor, out: Tensor) -> None:
    """out[i] <- min(out[i], min_j |x_i - c_j|^2), in place, chunked over the centres.

    x: [N, d], xn: [N] = |x|^2, c: [M, d], cn: [M] = |c|^2, out: [N].
    |x - c|^2 = |x|^2 + |c|^2 - 2 x.c: the |x|^2 term is constant per row, so it is added after the
    min over centres; one addmm gives |c|^2 - 2 x.c for a [N, chunk] block. Clamped >= 0 because
    cancellation can leave tiny negatives.
    """
    chunk = max(1, _GEMM_ELEMENTS // max(1, x.shape[0]))
    for s in range(0, c.shape[0], chunk):
        t = torch.addmm(cn[s:s + chunk].unsqueeze(0), x, c[s:s + chunk].T, beta=1.0, alpha=-2.0)
        torch.minimum(out, (t.amin(dim=1) + xn).clamp_min_(0.0), out=out)


@contextmanager
def _threads(n: int):
    """Torch intra-op threads set to n inside the block, restored after."""
    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def _prepare(features: Tensor, labelled: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """Cast to float32 (float64 kept) and centre on the pool mean.

    Distances are translation invariant; centring shrinks |x|^2 and with it the cancellation error
    of |x|^2 + |c|^2 - 2 x.c (ReLU features sit far from the origin).
    """
    dtype = torch.float64 if features.dtype == torch.float64 else torch.float32
    x = features.to(dtype)
    mu = x.mean(dim=0)
    x = x - mu  # a new [N, d] tensor: the caller's features are never modified
    lab = None if labelled is None or labelled.shape[0] == 0 else labelled.to(x.device, dtype) - mu
    return x, lab


def _init_min_sq_dist(x: Tensor, xn: Tensor, lab: Tensor | None, generator: torch.Generator
                      ) -> tuple[Tensor, list[int]]:
    """[N] squared distances to the nearest labelled point; with no labelled point, to a random
    first centre drawn with `generator`, which is then the first pick."""
    m = torch.full_like(xn, math.inf)
    if lab is not None:
        update_min_sq_dist(x, xn, lab, _sq_norms(lab), m)
        return m, []
    first = int(torch.randint(x.shape[0], (1,), generator=generator, device=generator.device))
    update_min_sq_dist(x, xn, x[first:first + 1], xn[first:first + 1], m)
    return m, [first]


def _start(features: Tensor, labelled: Tensor | None, k: int, generator: torch.Generator
           ) -> tuple[Tensor, Tensor, Tensor, list[int], Tensor] | None:
    """The start both greedy versions share; None for an empty pool (then k = 0).

    Checks 0 <= k <= N, centres the pool (_prepare) and returns (x [N, d], xn [N] = |x|^2,
    m [N] squared distance to the nearest centre with taken points at -inf, picks = the random
    first centre when there is no labelled point and k > 0, else [], scores [N] float32 = the
    Euclidean distance to the nearest labelled point or first centre, before any pick).
    """
    n = features.shape[0]
    if not 0 <= k <= n:
        raise ValueError(f"k = {k}: must be in [0, N = {n}]")
    if n == 0:
        return None
    x, lab = _prepare(features, labelled)
    xn = _sq_norms(x)
    m, picks = _init_min_sq_dist(x, xn, lab, generator)
    scores = m.sqrt().float()
    picks = picks[:k]
    for c in picks:
        m[c] = -math.inf  # taken: never a candidate again
    return x, xn, m, picks, scores


def k_center_greedy(features: Tensor, labelled: Tensor | None, k: int, generator: torch.Generator,
                    *, block: int = 128, first_candidates: int = 64,
                    max_candidates: int | None = None) -> tuple[Tensor, Tensor]:
    """Greedy k-center selection, exact, in O(N d) memory.

    features: [N, d] pool; labelled: [L, d] or None (L = 0 -> a random first centre from `generator`).
    Returns (indices [k] int64 in selection order, scores [N] float32 = Euclidean distance to the
    nearest labelled point, or to the random first centre when L = 0).
    block: pending centres applied to all points in one GEMM. max_candidates: when the exact search
    would check more stale candidates than this (tightly clustered data), the pending block is applied
    early instead (default max(1024, N // 16)), which bounds a step's cost by one block application.
    """
    start = _start(features, labelled, k, generator)
    if start is None:  # empty pool (k = 0): nothing to centre
        return (torch.empty(0, dtype=torch.int64, device=features.device),
                torch.empty(0, dtype=torch.float32, device=features.device))
    x, xn, m, picks, scores = start  # m: [N] stale squared min-distances
    n = x.shape[0]
    max_candidates = max(1024, n // 16) if max_candidates is None else max_candidates

    pend = torch.empty((block, x.shape[1]), dtype=x.dtype, device=x.device)  # pending centres
    pend_n = torch.empty(block, dtype=x.dtype, device=x.device)
    b = 0

    # On CPU the per-step search (a few dozen rows) runs on one thread: a second one only adds
    # start-up cost, and stalls whole steps when a neighbour process holds the other core. Applying
    # a block is one large GEMM and gets every thread.
    all_threads = torch.get_num_threads()

    def flush() -> None:
        nonlocal b
        if b:
            with _threads(all_threads):
                update_min_sq_dist(x, xn, pend[:b], pend_n[:b], m)
            b = 0

    with _threads(1):
        while len(picks) < k:
            c = -1
            if b:
                t, done, best = min(n, first_candidates), 0, -math.inf
                while True:
                    vals, idx = torch.topk(m, t)  # descending stale values
                    ci = idx[done:]
                    d = torch.addmm(pend_n[:b].unsqueeze(0), x[ci], pend[:b].T, beta=1.0, alpha=-2.0)
                    exact = torch.minimum(vals[done:], (d.amin(dim=1) + xn[ci]).clamp_min_(0.0))
                    j = int(torch.argmax(exact))
                    if float(exact[j]) > best:
                        best, c = float(exact[j]), int(ci[j])
                    if t == n or best >= float(vals[-1]):
                        break  # every unchecked point has exact <= stale <= vals[-1] <= best
                    done, t = t, min(n, 2 * t)
                    if t > max_candidates:
                        c = -1
                        break
            if c < 0:
                flush()
                c = int(torch.argmax(m))
            picks.append(c)
            m[c] = -math.inf
            pend[b], pend_n[b] = x[c], xn[c]
            b += 1
            if b == block and len(picks) < k:
                flush()
    return torch.tensor(picks, dtype=torch.int64, device=features.device), scores


def k_center_greedy_naive(features: Tensor, labelled: Tensor | None, k: int,
                          generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """The textbook greedy: one pass over all N points (a matrix-vector product) per centre.

    Same contract, initialisation and float handling as k_center_greedy; kept as the reference the
    tests and bench/active.py compare against. Ties -> lowest index.
    """
    start = _start(features, labelled, k, generator)
    if start is None:  # empty pool (k = 0): nothing to centre
        return (torch.empty(0, dtype=torch.int64, device=features.device),
                torch.empty(0, dtype=torch.float32, device=features.device))
    x, xn, m, picks, scores = start
    while len(picks) < k:
        c = int(torch.argmax(m))
        picks.append(c)
        torch.minimum(m, (xn + xn[c] - 2.0 * (x @ x[c])).clamp_min_(0.0), out=m)
        m[c] = -math.inf
    return torch.tensor(picks, dtype=torch.int64, device=features.device), scores


@register
class Coreset(FunctionStrategy, fn=k_center_greedy, args=("features", "labelled_features")):
    """Greedy k-center on penultimate features, starting from the labelled pool's features."""

    name = "coreset"
