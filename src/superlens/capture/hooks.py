"""A model's layers read by module path during ordinary forward passes, as rows of features.

A layer is a module path of ``model.named_modules()`` ("layer4", "features.3.0"), read by a forward
hook, or the model's own return value: "output" (a tensor), "output.KEY" (a dict of tensors) or
"output.I" (a tuple or list). torch refuses Python forward hooks on a ScriptModule ("not supported
on ScriptModules"), and every submodule of a scripted or traced module is one too: of a TorchScript
model only the outputs can be read (script a wrapper that returns the layers you want, e.g. a dict;
a traced module still in memory takes a hook on a submodule but never runs it, so it is refused too);
in a Python model holding a scripted submodule, that submodule and all inside it cannot be read.

A layer's output per sample becomes rows of features:

    [B, N]        dense   1 row per sample,            N features
    [B, C, H, W]  conv    H*W rows per sample (one per spatial position), C features (channels)
    [B, T, D]     tokens  T rows per sample (one per token),              D features (last axis)

and its pooled feature per sample is the mean over the rows of that sample ([B, N]).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from superlens.errors import ConfigError

OUTPUT = "output"


@dataclass(frozen=True)
class LayerShape:
    """One layer's output for one sample: shape (no batch axis), kind, rows per sample, width N."""

    name: str
    shape: tuple[int, ...]
    kind: str
    rows_per_sample: int
    width: int


def row_layout(name: str, out) -> LayerShape:
    """The LayerShape of a batched output ``out``; a non-tensor or a tensor of another rank is one
    ConfigError line naming the layer."""
    if not isinstance(out, Tensor):
        raise ConfigError(f"layer {name!r}: its output is a {type(out).__name__}, not a tensor; "
                          "choose a module whose output is a tensor (--list-layers shows them)")
    s = tuple(int(v) for v in out.shape[1:])
    if len(s) == 1:
        return LayerShape(name, s, "dense", 1, s[0])
    if len(s) == 3:
        return LayerShape(name, s, "conv", s[1] * s[2], s[0])
    if len(s) == 2:
        return LayerShape(name, s, "tokens", s[0], s[1])
    raise ConfigError(f"layer {name!r}: output of shape {list(out.shape)} (batch first); measure "
                      "reads [B, N], [B, C, H, W] or [B, T, D]")


def to_rows(out: Tensor) -> Tensor:
    """A batched layer output -> rows [B * rows_per_sample, N], sample-major (sample b's rows are
    b * P .. b * P + P - 1; a conv map's positions in row-major order over H, W)."""
    if out.ndim == 2:
        return out
    if out.ndim == 4:  # [B, C, H, W] -> [B, H, W, C] -> [B*H*W, C]
        return out.permute(0, 2, 3, 1).reshape(-1, out.shape[1])
    if out.ndim == 3:
        return out.reshape(-1, out.shape[2])
    raise ValueError(f"output of shape {tuple(out.shape)}: expected 2, 3 or 4 axes")


def pool(out: Tensor) -> Tensor:
    """Mean over each sample's rows: [B, ...] -> [B, N] (a conv map: global average pooling)."""
    if out.ndim == 2:
        return out
    if out.ndim == 4:
        return out.mean(dim=(2, 3))
    return out.mean(dim=1)


def is_scripted(model: nn.Module) -> bool:
    return isinstance(model, torch.jit.ScriptModule)


def module_paths(model: nn.Module) -> list[str]:
    return [n for n, _ in model.named_modules() if n]


def resolve_layers(model: nn.Module, names: list[str]) -> None:
    """Refuse unknown layer names before anything runs: one ConfigError line naming the nearest
    module paths (difflib). Output names ("output", "output.KEY") are checked on the first batch."""
    paths = module_paths(model)
    known = set(paths)
    for name in names:
        if name == OUTPUT or name.startswith(OUTPUT + "."):
            continue
        if name not in known:
            near = difflib.get_close_matches(name, paths, n=4, cutoff=0.5)
            near = near or difflib.get_close_matches(name, paths, n=4, cutoff=0.0)
            hint = f"nearest module paths: {', '.join(near)}" if near else "the model has no submodules"
            raise ConfigError(f"layer {name!r}: no such module in {type(model).__name__} ({hint}; "
                              "--list-layers prints them all)")
        if is_scripted(model):
            raise ConfigError(f"layer {name!r}: {type(model).__name__} is a TorchScript module, which "
                              "runs no Python hooks, so only its outputs can be read ('output', or "
                              "'output.KEY' when it returns a dict); script a wrapper that returns the "
                              "layers, or pass the architecture and --weights")
        if is_scripted(model.get_submodule(name)):
            raise ConfigError(f"layer {name!r}: a TorchScript submodule of {type(model).__name__}, which "
                              "runs no Python hooks (nor does anything inside it); choose a Python "
                              "module around it, or build the model without scripting it")


def _outputs(ret) -> dict[str, object]:
    """The model's return value as named pseudo-layers."""
    if isinstance(ret, dict):
        return {f"{OUTPUT}.{k}": v for k, v in ret.items()}
    if isinstance(ret, (tuple, list)):
        return {f"{OUTPUT}.{i}": v for i, v in enumerate(ret)}
    return {OUTPUT: ret}


class LayerTap:
    """Forward hooks on several module paths; ``run(x)`` returns {name: output} for one batch, in
    the order the layers ran (the model's own outputs last).

        with LayerTap(model, ["layer1", "layer4"]) as tap:
            outs = tap.run(x)     # {"layer1": [B, 64, 8, 8], "layer4": [B, 512, 1, 1]}
    """

    def __init__(self, model: nn.Module, names: list[str]):
        resolve_layers(model, names)
        self.model, self.names = model, list(names)
        self.hooked = [n for n in names if not (n == OUTPUT or n.startswith(OUTPUT + "."))]
        self._seen: dict[str, object] = {}
        self._handles: list = []

    def __enter__(self) -> "LayerTap":
        for n in self.hooked:
            mod = self.model.get_submodule(n)
            self._handles.append(mod.register_forward_hook(
                lambda m, i, o, n=n: self._seen.setdefault(n, o)))  # first call: a reused module
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def run(self, x: Tensor) -> dict[str, Tensor]:
        self._seen = {}
        ret = self.model(x)
        outs = _outputs(ret)
        got: dict[str, Tensor] = {}
        for n in self.hooked:
            if n not in self._seen:
                raise ConfigError(f"layer {n!r}: the module is not run by {type(self.model).__name__}'s "
                                  "forward pass")
        order = [n for n in self._seen if n in self.hooked] + [n for n in self.names if n not in self.hooked]
        for n in order:
            if n in self.hooked:
                v = self._seen[n]
            elif n in outs:
                v = outs[n]
            else:
                raise ConfigError(f"layer {n!r}: the model returns {', '.join(outs) or 'nothing'}; "
                                  "choose one of those or a module path")
            row_layout(n, v)  # a non-tensor is refused here
            got[n] = v
        return got


def list_layers(model: nn.Module, sample: Tensor) -> list[tuple[str, str, str]]:
    """(path, module type, output shape per sample) of every module run on ``sample`` [1, ...], in
    the order they ran, then the model's outputs. A module not run, a scripted submodule (no hooks)
    or an output that is not a tensor says so."""
    seen: dict[str, object] = {}
    every = dict(model.named_modules()) if not is_scripted(model) else {}
    mods = {n: m for n, m in every.items() if not is_scripted(m)}
    # of a scripted submodule only the outermost is listed: its insides are scripted too
    scripted = [n for n, m in every.items() if is_scripted(m)
                and not is_scripted(model.get_submodule(n.rpartition(".")[0]))]
    handles = [m.register_forward_hook(lambda m_, i, o, n=n: seen.setdefault(n, o))
               for n, m in mods.items() if n]
    try:
        with torch.no_grad():
            ret = model(sample)
    finally:
        for h in handles:
            h.remove()

    def describe(v) -> str:
        return (str(list(v.shape[1:])) if isinstance(v, Tensor)
                else f"{type(v).__name__} (not a tensor)")

    rows = [(n, type(mods[n]).__name__, describe(v)) for n, v in seen.items()]
    rows += [(n, "not run", "-") for n in mods if n and n not in seen]
    rows += [(n, "TorchScript", "- (runs no hooks: not readable)") for n in scripted]
    rows += [(n, "model output", describe(v)) for n, v in _outputs(ret).items()]
    return rows


__all__ = ["OUTPUT", "LayerShape", "LayerTap", "row_layout", "to_rows", "pool", "resolve_layers",
           "list_layers", "module_paths", "is_scripted"]
