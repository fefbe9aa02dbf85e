"""A model SPEC of `superlens measure` -> an nn.Module in eval mode.

    torchvision name    "resnet18", "vgg11", ... (torchvision.models.list_models()), random weights
                        from the seed unless --weights FILE gives a state_dict
    TorchScript file    torch.jit.load (its outputs are its layers: torch registers no Python hooks
                        on it or on any of its submodules)
    superlens active    a checkpoint.pt written by `superlens active` (its model is rebuilt from the
                        checkpoint's fingerprint and weight shapes)
    "pkg.module:fn"     fn() must return an nn.Module (e.g. "torchvision.models:resnet18")

Weights that do not fit are one CheckpointError line naming the first mismatched key.
"""
from __future__ import annotations

import importlib
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from superlens.errors import CheckpointError, ConfigError, one_line
from superlens.vision import import_torchvision


@dataclass
class LoadedModel:
    """The module and what its SPEC says about the inputs it wants (None: not known)."""

    model: nn.Module
    kind: str                       # torchvision, torchscript, active-checkpoint, factory
    description: str
    normalize: str | None = None    # an active checkpoint's normalisation
    image_size: int | None = None
    in_channels: int | None = None
    extra: dict = field(default_factory=dict)


def torchvision_names() -> list[str]:
    torchvision = import_torchvision()
    return sorted(torchvision.models.list_models(module=torchvision.models))


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """A state_dict from .pt/.pth (a dict of tensors, or {"state_dict": ...} / {"model": ...}) or
    .safetensors; anything else is one CheckpointError line."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise CheckpointError(f"weights {p}: not found")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(p))
        else:
            sd = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a truncated or foreign file is one line
        raise CheckpointError(f"weights {p}: unreadable ({one_line(e)[:200]})") from None
    if isinstance(sd, dict):
        for k in ("state_dict", "model"):
            if isinstance(sd.get(k), dict):
                sd = sd[k]
                break
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, Tensor) for v in sd.values()):
        raise CheckpointError(f"weights {p}: not a state_dict (a dict of tensors)")
    return sd


def load_weights(model: nn.Module, sd: dict[str, Tensor], source: str) -> None:
    """Load ``sd`` strictly; a missing, unexpected or mis-shaped key is one CheckpointError line
    naming the first one in the model's order."""
    own = model.state_dict()
    for k, v in own.items():
        if k not in sd:
            raise CheckpointError(f"{source}: does not fit {type(model).__name__}: first mismatched key "
                                  f"{k!r} is missing from the file")
        if tuple(sd[k].shape) != tuple(v.shape):
            raise CheckpointError(f"{source}: does not fit {type(model).__name__}: first mismatched key "
                                  f"{k!r} has shape {list(sd[k].shape)} in the file, {list(v.shape)} "
                                  "in the model")
    extra = [k for k in sd if k not in own]
    if extra:
        raise CheckpointError(f"{source}: does not fit {type(model).__name__}: first mismatched key "
                              f"{extra[0]!r} is in the file but not in the model")
    model.load_state_dict(sd)


def _is_torchscript(p: Path) -> bool:
    try:
        with zipfile.ZipFile(p) as z:
            return any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _active_checkpoint(p: Path, ck: dict) -> LoadedModel:
    from superlens.active.models import KNOWN, build_model

    fp = ck.get("fingerprint") or {}
    name = fp.get("model")
    if name not in KNOWN:
        raise CheckpointError(f"checkpoint {p}: names model {name!r}, not one of {', '.join(KNOWN)}")
    sd = ck["model"]
    head = [k for k in sd if k.endswith("fc.1.weight")]
    first = next((k for k, v in sd.items() if k.endswith("weight") and v.ndim == 4), None)
    if not head or first is None:
        raise CheckpointError(f"checkpoint {p}: no classifier (fc.1.weight) or first conv weight")
    n_classes, in_ch = int(sd[head[0]].shape[0]), int(sd[first].shape[1])
    model = build_model(name, n_classes, in_ch, dropout=float(fp.get("dropout", 0.0)))
    load_weights(model, sd, f"checkpoint {p}")
    return LoadedModel(model.eval(), "active-checkpoint", f"{name} from superlens active checkpoint {p}",
                       normalize=fp.get("normalize"), image_size=fp.get("image_size"),
                       in_channels=in_ch, extra={"dataset": fp.get("dataset"), "classes": n_classes})


def load_model(spec: str, weights: str | None = None, seed: int = 0) -> LoadedModel:
    """The model a SPEC names (see the module docstring), in eval mode on the CPU."""
    p = Path(spec).expanduser()
    if p.is_file():
        if _is_torchscript(p):
            if weights is not None:
                raise ConfigError(f"--weights {weights}: a TorchScript file carries its own weights")
            try:
                with warnings.catch_warnings():  # torch's deprecation notice of jit.load, every call
                    warnings.simplefilter("ignore", FutureWarning)
                    model = torch.jit.load(str(p), map_location="cpu")
            except Exception as e:  # noqa: BLE001
                raise CheckpointError(f"model {p}: unreadable TorchScript ({one_line(e)[:200]})") from None
            return LoadedModel(model.eval(), "torchscript", f"TorchScript file {p}")
        try:
            ck = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001
            raise CheckpointError(f"model {p}: neither TorchScript nor a readable checkpoint "
                                  f"({one_line(e)[:200]})") from None
        if isinstance(ck, dict) and isinstance(ck.get("model"), dict) and "fingerprint" in ck:
            if weights is not None:
                raise ConfigError(f"--weights {weights}: a superlens checkpoint carries its own weights")
            return _active_checkpoint(p, ck)
        raise CheckpointError(f"model {p}: a state_dict or foreign checkpoint, not a model; pass the "
                              f"architecture as --model and this file as --weights {p}")
    if ":" in spec and not spec.startswith((".", "/", "~")):
        mod_name, _, fn_name = spec.partition(":")
        try:
            fn = getattr(importlib.import_module(mod_name), fn_name)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"model {spec!r}: cannot import ({one_line(e)[:200]})") from None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = fn()
        if not isinstance(model, nn.Module):
            raise ConfigError(f"model {spec!r}: {fn_name}() returned a {type(model).__name__}, not an "
                              "nn.Module")
        kind, desc = "factory", f"{spec}()"
    else:
        names = torchvision_names()
        if spec not in names:
            import difflib

            near = difflib.get_close_matches(spec, names, n=4, cutoff=0.5)
            raise ConfigError(f"model {spec!r}: not a file, a torchvision architecture"
                              f"{' (nearest: ' + ', '.join(near) + ')' if near else ''} or "
                              "package.module:function")
        torchvision = import_torchvision()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = torchvision.models.get_model(spec, weights=None)
        kind, desc = "torchvision", f"torchvision {spec}"
    if weights is not None:
        load_weights(model, read_state_dict(weights), f"weights {Path(weights).expanduser()}")
        desc += f" with weights {Path(weights).expanduser()}"
    elif kind == "torchvision":
        desc += f" with random weights (seed {seed})"
    return LoadedModel(model.eval(), kind, desc)


__all__ = ["LoadedModel", "load_model", "load_weights", "read_state_dict", "torchvision_names"]
