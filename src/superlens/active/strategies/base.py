"""What every query strategy shares: the pool it may look at, what it returns, and the registry.

A strategy is a class with a `name`, the pool fields it `needs`, and one method
`select(pool, k, generator) -> Selection`. The loop builds a PoolView holding only what `needs`
declares and never asks which strategy it holds; a new strategy is a new file with `@register`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
from torch import Tensor

from superlens.errors import ConfigError

POOL_FIELDS = frozenset({"probs", "features", "labelled_features", "mc_probs"})


@dataclass
class PoolView:
    """What a strategy may look at, all on one device.

    probs:             [N, C]    softmax of the current model over the unlabelled pool
    features:          [N, d]    penultimate features of the unlabelled pool
    labelled_features: [L, d]    features of the labelled pool (L may be 0)
    mc_probs:          [T, N, C] softmax under T passes of MC dropout
    """

    probs: Tensor | None = None
    features: Tensor | None = None
    labelled_features: Tensor | None = None
    mc_probs: Tensor | None = None

    @property
    def size(self) -> int:
        """N, the number of unlabelled pool points (from whichever pool-indexed field is present)."""
        sizes = {name: n for name, n in (
            ("probs", None if self.probs is None else self.probs.shape[0]),
            ("features", None if self.features is None else self.features.shape[0]),
            ("mc_probs", None if self.mc_probs is None else self.mc_probs.shape[1]),
        ) if n is not None}
        if not sizes:
            raise ValueError("PoolView holds none of probs, features, mc_probs: the pool size is unknown")
        if len(set(sizes.values())) > 1:
            raise ValueError(f"PoolView fields disagree on the pool size N: {sizes}")
        return next(iter(sizes.values()))


@dataclass
class Selection:
    """indices: [k] int64, distinct positions into the pool (0..N-1), in selection order.
    scores:  [N] float32, the per-sample score the strategy ranked by (higher = wanted)."""

    indices: Tensor
    scores: Tensor


class Strategy:
    """Base of all query strategies. Subclasses set `name` and `needs` and implement `select`."""

    name: ClassVar[str]
    needs: ClassVar[frozenset[str]]  # subset of POOL_FIELDS

    def select(self, pool: PoolView, k: int, generator: torch.Generator) -> Selection:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class FunctionStrategy(Strategy):
    """A strategy that is one function of pool fields, checked the same way for each.

    A subclass sets `name` and passes, in its class line, fn(*fields, k, generator) -> (indices [k],
    scores [N]) and `args`, the PoolView fields fn takes, in order (`needs` is derived from them):
    class Badge(FunctionStrategy, fn=badge_select, args=("probs", "features")).
    """

    args: ClassVar[tuple[str, ...]]

    def __init_subclass__(cls, *, fn, args: tuple[str, ...], **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.fn, cls.args, cls.needs = staticmethod(fn), tuple(args), frozenset(args)

    def select(self, pool: PoolView, k: int, generator: torch.Generator) -> Selection:
        check_pool(pool, self.needs, k)
        tensors = {f: getattr(pool, f) for f in self.args}
        check_finite(**tensors)
        indices, scores = self.fn(*tensors.values(), int(k), generator)
        return Selection(indices=indices, scores=scores)


def highest(score: Callable[[Tensor], Tensor]) -> Callable[[Tensor, int, torch.Generator],
                                                           tuple[Tensor, Tensor]]:
    """The FunctionStrategy fn of a pure score of one pool field ([..., N, ...] -> [N] scores): the
    k highest scores (top_k), the generator unused.
    class Entropy(FunctionStrategy, fn=highest(entropy_scores), args=("probs",))."""
    def select(field: Tensor, k: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        scores = score(field)
        return top_k(scores, k), scores

    select.__name__ = f"highest_{score.__name__}"
    return select


_REGISTRY: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: make a strategy available by its `name`."""
    assert cls.needs <= POOL_FIELDS, f"{cls.__name__}.needs has unknown fields {set(cls.needs - POOL_FIELDS)}"
    assert cls.name not in _REGISTRY, f"strategy name {cls.name!r} registered twice"
    _REGISTRY[cls.name] = cls
    return cls


def available() -> list[str]:
    """Registered strategy names, sorted."""
    return sorted(_REGISTRY)


def get_strategy(name: str) -> Strategy:
    """A fresh instance of the strategy registered as `name`; unknown -> ConfigError."""
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise ConfigError(f"strategy = {name!r}: unknown; registered: {', '.join(available())}") from None


# --- helpers shared by the strategies -------------------------------------------------------------

def check_pool(pool: PoolView, needs: frozenset[str], k: int) -> int:
    """Validate `pool` holds every field in `needs` and 0 <= k <= N; return N."""
    missing = sorted(n for n in needs if getattr(pool, n) is None)
    if missing:
        raise ValueError(f"this strategy needs {sorted(needs)} in the PoolView; missing {missing}")
    n = pool.size
    k = int(k)
    if k < 0:
        raise ValueError(f"k = {k}: must be >= 0")
    if k > n:
        raise ValueError(f"k = {k}: cannot select more points than the pool holds (N = {n})")
    return n


def check_finite(**tensors: Tensor | None) -> None:
    """ValueError naming the first pool field that holds NaN or inf (a diverged model's outputs)."""
    for name, t in tensors.items():
        if t is not None and t.numel() and not torch.isfinite(t).all():
            raise ValueError(f"{name} contains NaN or inf: check the model that produced the pool view")


def top_k(scores: Tensor, k: int) -> Tensor:
    """[N] scores -> [k] int64 indices of the k highest, highest first; ties -> lower index first.

    NaN scores are an error (they would sort arbitrarily and hide a broken model output).
    """
    if torch.isnan(scores).any():
        raise ValueError("scores contain NaN: check the pool's probabilities/features")
    order = torch.sort(scores, descending=True, stable=True).indices
    return order[:k].to(torch.int64)


def rand_on(generator: torch.Generator, shape: tuple[int, ...], device: torch.device,
            dtype: torch.dtype = torch.float32) -> Tensor:
    """U[0, 1) draws made on the generator's device (a CPU generator may drive CUDA tensors)."""
    return torch.rand(shape, generator=generator, device=generator.device, dtype=dtype).to(device)

