"""Small numeric helpers shared by every study: JSON-safe numbers, the mean ± std over seeds, and
unit-norm vectors."""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor


def json_float(v) -> float | None:
    """A finite float, or None (JSON null) for NaN / inf."""
    v = float(v)
    return v if math.isfinite(v) else None


def json_clean(x):
    """Nested lists for JSON: NaN -> None, +-inf -> "inf" / "-inf" (numpy parses both back)."""
    if isinstance(x, list):
        return [json_clean(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


def mean_std(values) -> tuple[float, float]:
    """(mean, sample standard deviation with ddof = 1) of a 1-D sequence of numbers: how every study
    summarises its seeds ("mean ± std over seeds"). The std of a single value is 0.0 (no spread to
    estimate). A floating array keeps its precision (float32 sums in float32); anything else is
    read as float64."""
    a = np.asarray(values)
    if not np.issubdtype(a.dtype, np.floating):
        a = a.astype(float)
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


def as_numpy(t: Tensor) -> np.ndarray:
    """A tensor as a numpy array on the CPU: floating tensors as float64, others (bool, integer) as
    they are. How the analyses store their per-instance results."""
    return t.detach().to("cpu", torch.float64).numpy() if t.dtype.is_floating_point else t.cpu().numpy()


def unit_vectors(x: Tensor, dim: int, tol: Tensor | float = 0.0) -> tuple[Tensor, Tensor]:
    """x scaled to unit norm along `dim`, and the mask of vectors whose norm is <= tol (no direction;
    they come back as zero vectors, so their cosine with anything, themselves included, is 0 rather
    than NaN). E.g. x [N, d], dim=1: rows -> (u [N, d], zero [N]); W [..., h, n], dim=-2: columns ->
    (U [..., h, n], zero [..., n])."""
    norm = x.norm(dim=dim, keepdim=True)
    zero = norm <= tol
    u = x / torch.where(zero, torch.ones_like(norm), norm) * (~zero)
    return u, zero.squeeze(dim)
