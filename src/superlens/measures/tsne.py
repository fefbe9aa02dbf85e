"""2-D t-SNE embedding of features, with openTSNE.

The paper used scikit-learn's Barnes-Hut TSNE(random_state=42); openTSNE with
FFT-interpolated gradients (Linderman et al. 2019) gives the same kind of embedding far faster at
N = 10,000 and is deterministic for a fixed seed with n_jobs=1.
"""
from __future__ import annotations

import numpy as np
import torch
from openTSNE import TSNE


def tsne_embedding(X, *, seed: int = 0, perplexity: float = 30.0, n_jobs: int = 1) -> np.ndarray:
    """X: [N, d] array or tensor -> embedding [N, 2] float64.

    Perplexity is clipped to (N - 1) / 3 when N < 3 * perplexity + 1: the affinities use the
    3 * perplexity nearest neighbours, which must exist. Gradients use FFT interpolation always
    (openTSNE's "auto" would switch to Barnes-Hut below 10,000 points); initialisation is PCA.
    """
    x = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
    x = np.ascontiguousarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"X: shape {x.shape}, expected [N, d]")
    n = x.shape[0]
    if n < 4:
        raise ValueError(f"t-SNE needs at least 4 points, got {n}")
    if perplexity <= 0:
        raise ValueError(f"perplexity = {perplexity}, must be > 0")
    perp = min(float(perplexity), (n - 1) / 3.0)
    tsne = TSNE(n_components=2, perplexity=perp, negative_gradient_method="fft",
                random_state=int(seed), n_jobs=int(n_jobs), verbose=False)
    return np.asarray(tsne.fit(x), dtype=np.float64)
