"""Figures of the toy model of superposition (Elhage et al. 2022): W^T W with feature norms, the
polygons of W's columns for m = 2, feature dimensionality against sparsity, and a categorical phase
diagram that the sweep code reuses. Every function takes arrays (torch or numpy), writes one PNG and
returns its file name.
"""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

import torch

from superlens.measures.dimensionality import GEOMETRIES, superposition
from superlens.report.plotting import plt, save

# categorical colours for phase diagrams (tab10 without the grey), then tab20 for more classes
_PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#bcbd22",
            "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2"]


def _np(a) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=float)


def _instances(W) -> np.ndarray:
    """W [m, n] or [I, m, n] -> [I, m, n] numpy."""
    W = _np(W)
    if W.ndim == 2:
        W = W[None]
    if W.ndim != 3:
        raise ValueError(f"W: shape {W.shape}, expected [m, n] or [I, m, n]")
    return W


def _titles(titles, k: int) -> list[str]:
    if titles is None:
        return [f"instance {i}" for i in range(k)]
    titles = list(titles)
    if len(titles) < k:
        raise ValueError(f"titles: {len(titles)} given for {k} instances")
    return [str(t) for t in titles[:k]]


def plot_gram_and_norms(W, path: str | Path, *, titles: Sequence[str] | None = None,
                        title: str | None = None, max_instances: int = 8) -> str:
    """Per instance: the heatmap of W^T W [n, n] (top) and bars of ||W_i|| (bottom), each bar coloured
    by its superposition sum_{j != i} (Ŵ_i . W_j)^2 (0: the feature has its own direction).
    W: [m, n] or [I, m, n]; the first max_instances instances are drawn."""
    Ws = _instances(W)[:max_instances]
    k, _, n = Ws.shape
    names = _titles(titles, k)
    fig, axes = plt.subplots(2, k, figsize=(2.6 * k + 1.0, 5.6), squeeze=False,
                             gridspec_kw={"height_ratios": [1, 1]})
    cmap = plt.get_cmap("viridis")
    for i, Wi in enumerate(Ws):
        G = Wi.T @ Wi
        v = float(np.abs(G).max()) or 1.0
        im = axes[0, i].imshow(G, cmap="RdBu_r", vmin=-v, vmax=v, interpolation="nearest")
        axes[0, i].set_title(names[i], fontsize=9)
        axes[0, i].set_xticks([])
        axes[0, i].set_yticks([])
        norms = np.linalg.norm(Wi, axis=0)
        sup = superposition(torch.from_numpy(Wi)).numpy()
        ax = axes[1, i]
        ax.barh(np.arange(n), norms, color=cmap(np.clip(sup, 0, 1)), height=0.85)
        ax.set_ylim(n - 0.5, -0.5)
        ax.set_xlim(0, max(1.05, float(norms.max()) * 1.05))
        ax.set_xlabel("||W_i||", fontsize=8)
        ax.tick_params(labelsize=7)
        if i == 0:
            axes[0, i].set_ylabel("W^T W")
            ax.set_ylabel("feature")
    fig.colorbar(im, ax=axes[0, :].tolist(), fraction=0.02, pad=0.02)
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, 1))
    fig.colorbar(sm, ax=axes[1, :].tolist(), fraction=0.02, pad=0.02,
                 label="superposition  sum_j≠i (Ŵ_i·W_j)²")
    if title:
        fig.suptitle(title)
    return save(fig, Path(path))


def plot_polygons(W, path: str | Path, *, titles: Sequence[str] | None = None,
                  title: str | None = None, max_instances: int = 16, ncols: int = 4) -> str:
    """The columns of W [I, 2, n] (or [2, n]) as arrows in the plane, one panel per instance, coloured
    by feature index (importance order when importance decays)."""
    Ws = _instances(W)[:max_instances]
    k, m, n = Ws.shape
    if m != 2:
        raise ValueError(f"W: {m} hidden dimensions, the polygon plot needs m = 2")
    names = _titles(titles, k)
    ncols = min(ncols, k)
    nrows = (k + ncols - 1) // ncols
    # constrained layout and titles wrapped to the panel's width: neighbouring titles never touch
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.8 * ncols, 2.9 * nrows), squeeze=False,
                             layout="constrained")
    colors = plt.get_cmap("viridis")(np.linspace(0, 0.9, n))
    lim = max(1.2, float(np.abs(Ws).max()) * 1.15)
    for idx, ax in enumerate(axes.flat):
        if idx >= k:
            ax.axis("off")
            continue
        for j in range(n):
            x, y = Ws[idx, :, j]
            ax.plot([0, x], [0, y], color=colors[j], lw=1.5)
            ax.scatter([x], [y], color=colors[j], s=18, zorder=3)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.axhline(0, color="#ccc", lw=0.5, zorder=0)
        ax.axvline(0, color="#ccc", lw=0.5, zorder=0)
        ax.set_title("\n".join(textwrap.wrap(names[idx], 24)) or names[idx], fontsize=8.5)
        ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title)
    return save(fig, Path(path))


# S is the sparsity of Elhage et al.: the probability that a feature is absent, so p = 1 - S
SPARSITY_XLABEL = "1 / (1 − S) = 1 / p    (S: sparsity, the probability a feature is zero)"


def plot_feature_dimensionality(D, x, path: str | Path, *, xlabel: str = SPARSITY_XLABEL,
                                logx: bool = True, dstar=None, title: str | None = None) -> str:
    """Feature dimensionalities D [I, n] against a per-instance x [I] (e.g. 1 / (1 - S), or the
    sparsity), with the fractional levels 1, 3/4, 2/3, 1/2, 2/5, 3/8 as horizontal lines and, if
    given, the dimensions per feature D* [I] as a line."""
    D = _np(D)
    x = _np(x).reshape(-1)
    if D.ndim == 1:
        D = D[:, None]
    if D.shape[0] != x.shape[0]:
        raise ValueError(f"D has {D.shape[0]} instances but x has {x.shape[0]} values")
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for v, name in GEOMETRIES:
        if v > 0:
            ax.axhline(v, color="#999", lw=0.7, ls="--", zorder=0)
            # 2/5 and 3/8 are 0.025 apart: label one above its line, the other below
            va = {0.4: "bottom", 0.375: "top"}.get(round(v, 3), "center")
            ax.text(1.01, v, name, transform=ax.get_yaxis_transform(), fontsize=7, va=va)
    xs = np.repeat(x[:, None], D.shape[1], axis=1)
    ax.scatter(xs.ravel(), D.ravel(), s=10, alpha=0.6, color="#1f77b4", label="features D_i")
    if dstar is not None:
        order = np.argsort(x)
        ax.plot(x[order], np.clip(_np(dstar).reshape(-1)[order], 0, 1.05), color="k", lw=1.2,
                label="D* = m / ||W||_F²")
    if logx and (x > 0).all():
        ax.set_xscale("log")
    ax.set_ylim(-0.03, 1.08)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("feature dimensionality")
    # below the axes: the dense points sit in the upper left, where a legend inside would cover them
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=8, frameon=False)
    if title:
        ax.set_title(title)
    return save(fig, Path(path))


def cell_edges(v: np.ndarray, log: bool) -> np.ndarray:
    """Cell edges [k + 1] around sorted cell centres v [k] of a phase diagram (geometric midpoints on a
    log axis; the outer edges mirror the nearest inner ones)."""
    if v.size == 1:
        return np.array([v[0] / 2, v[0] * 2]) if log else np.array([v[0] - 0.5, v[0] + 0.5])
    t = np.log(v) if log else v
    mid = (t[1:] + t[:-1]) / 2
    e = np.concatenate([[t[0] - (mid[0] - t[0])], mid, [t[-1] + (t[-1] - mid[-1])]])
    return np.exp(e) if log else e


def _value_ticks(axis, values: np.ndarray, most: int = 8) -> None:
    """Ticks at the grid's own values (at most `most`, evenly thinned), labelled plainly, no minor
    labels: a log axis's default minor labels (3×10⁻¹ 4×10⁻¹ ...) run into each other."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    v = np.unique(values)
    v = v[:: max(1, int(np.ceil(v.size / most)))]
    axis.set_major_locator(FixedLocator(v))
    axis.set_ticklabels([f"{t:.3g}" for t in v])
    axis.set_minor_locator(NullLocator())
    axis.set_minor_formatter(NullFormatter())


def plot_phase_diagram(x_values, y_values, classes, *, xlabel: str, ylabel: str, title: str,
                       path: str | Path, boundary=None, logx: bool = True, logy: bool = True,
                       colors: dict[str, str] | None = None, annotations=None, marks=None,
                       mark_label: str | None = None) -> str:
    """A 2-D grid of categorical outcomes: classes [ny, nx] (str), cell (r, c) at (x_values[c],
    y_values[r]). Log axes where asked and every value is > 0; one colour per distinct class, in a
    legend. boundary: an optional curve (xs, ys), or a list of them, drawn dashed on top (e.g. a
    theoretical phase boundary). annotations: optional [(x, y, text)] written at cell centres (e.g.
    a theory value); marks: optional [(x, y)] cell centres drawn as white-edged black dots, named
    mark_label in the legend (e.g. "learned gain matches theory")."""
    x = _np(x_values).reshape(-1)
    y = _np(y_values).reshape(-1)
    C = np.asarray(classes, dtype=object)
    if C.shape != (y.size, x.size):
        raise ValueError(f"classes: shape {C.shape}, expected [ny, nx] = ({y.size}, {x.size})")
    if x.size == 0 or y.size == 0:
        raise ValueError("phase diagram: empty x_values or y_values")
    logx = logx and bool((x > 0).all())
    logy = logy and bool((y > 0).all())
    ox, oy = np.argsort(x), np.argsort(y)
    x, y, C = x[ox], y[oy], C[np.ix_(oy, ox)]
    names = list(dict.fromkeys(sorted(str(c) for c in C.ravel())))
    colors = dict(colors or {})
    free = [c for c in _PALETTE if c not in colors.values()]
    for name in names:
        if name not in colors:
            colors[name] = free.pop(0) if free else "#7f7f7f"
    code = {name: i for i, name in enumerate(names)}
    Z = np.vectorize(lambda c: code[str(c)])(C).astype(float)
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    ax.pcolormesh(cell_edges(x, logx), cell_edges(y, logy), Z,
                  cmap=ListedColormap([colors[n] for n in names]), vmin=-0.5, vmax=len(names) - 0.5, shading="flat")
    if boundary is not None:
        curves = boundary if isinstance(boundary, list) else [boundary]
        for bx, by in curves:
            ax.plot(_np(bx), _np(by), color="k", ls="--", lw=1.3)
    for ax_, ay_, text in annotations or []:
        # a few points below the cell centre, where a mark (if any) sits: they never overlap
        ax.annotate(str(text), (float(ax_), float(ay_)), xytext=(0, -5), textcoords="offset points",
                    ha="center", va="top", fontsize=6.5, color="k",
                    bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.6))
    handles = [Patch(color=colors[n], label=n) for n in names]
    if marks:
        mx, my = zip(*marks)
        h = ax.scatter(_np(mx), _np(my), s=28, c="k", edgecolors="white", linewidths=0.8, zorder=3,
                       label=mark_label or "marked")
        handles.append(h)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlim(cell_edges(x, logx)[[0, -1]])
    ax.set_ylim(cell_edges(y, logy)[[0, -1]])
    _value_ticks(ax.xaxis, x)
    _value_ticks(ax.yaxis, y)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(handles=handles, loc="upper left",
              bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return save(fig, Path(path))


__all__ = ["plot_feature_dimensionality", "plot_gram_and_norms", "plot_phase_diagram",
           "plot_polygons"]
