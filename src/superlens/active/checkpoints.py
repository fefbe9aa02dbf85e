"""Saved models of the active-learning study: writing, reading and checking them, and where they lie.

The loop saves a checkpoint per trained model (model, optimizer, GradScaler state and the config
fingerprint that made it); the study's measures read them back. Every read that fails (missing,
truncated, foreign, made by other settings) is one CheckpointError line naming the file.

    save_checkpoint(path, model, opt, fp, scaler)          # the loop, after each training
    load_checkpoint(path, model, opt, fp, scaler)          # resume: the fingerprint must match
    model = load_model_checkpoint(cfg, ds, path)           # a measure: cfg's model, on the CPU
    model_dirs(run, "coreset", 0)                          # [run/al/coreset/seed0/round_00, ...]
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from superlens.active.models import build_model
from superlens.active.train import load_scaler_state, scaler_state
from superlens.errors import CheckpointError, one_line
from superlens.runs import atomic_save_torch


def check_fingerprint(stored: Any, expected: dict, path: Path) -> None:
    """Every key of ``expected`` is in ``stored`` with the same value (the settings that made a saved
    file are the ones asked for now); otherwise one CheckpointError line naming the first field."""
    if not isinstance(stored, dict):
        raise CheckpointError(f"checkpoint {path}: holds no config fingerprint; delete it to retrain")
    for k in expected:
        if k not in stored or stored[k] != expected[k]:
            got = stored.get(k, "<missing>")
            raise CheckpointError(f"{path}: made with {k} = {got!r} but the config has "
                                  f"{expected[k]!r}; use the original settings or a new run directory")


def read_checkpoint(path: Path, what: str = "checkpoint") -> Any:
    """torch.load of a superlens file; missing or unreadable -> CheckpointError naming it."""
    if not path.is_file():
        raise CheckpointError(f"{what} {path}: not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated, foreign or corrupt files alike
        raise CheckpointError(f"{what} {path}: unreadable ({one_line(e)[:200]}); delete it to "
                              "redo that step") from None


def save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, fp: dict,
                    scaler: torch.amp.GradScaler | None = None) -> None:
    """Model, optimizer and the optimizer's GradScaler state ({} when disabled), with ``fp``."""
    atomic_save_torch(path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "scaler": scaler_state(scaler), "fingerprint": fp})


def load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None,
                    fp: dict, scaler: torch.amp.GradScaler | None = None) -> None:
    """Load model (and optimizer, and its GradScaler) state from ``path`` after checking its
    fingerprint against ``fp``. A checkpoint without scaler state leaves ``scaler`` fresh."""
    ck = read_checkpoint(path)
    if not isinstance(ck, dict) or "model" not in ck or "optimizer" not in ck:
        raise CheckpointError(f"checkpoint {path}: not a superlens checkpoint (expected model, optimizer "
                              "and fingerprint entries)")
    check_fingerprint(ck.get("fingerprint"), fp, path)
    try:
        model.load_state_dict(ck["model"])
        if optimizer is not None:
            optimizer.load_state_dict(ck["optimizer"])
        if scaler is not None:
            load_scaler_state(scaler, ck.get("scaler"))
    except (RuntimeError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(f"checkpoint {path}: does not fit the model ({one_line(e)[:200]})") from None


def load_model_checkpoint(cfg: Any, ds, checkpoint: Path) -> nn.Module:
    """cfg's model (an ActiveConfig) with the weights of a saved checkpoint, on the CPU; a missing,
    truncated or foreign file is one CheckpointError line."""
    model = build_model(cfg.model, len(ds.class_names), ds.in_channels, dropout=cfg.dropout)
    ck = read_checkpoint(Path(checkpoint))
    if not isinstance(ck, dict) or not isinstance(ck.get("model"), dict):
        raise CheckpointError(f"checkpoint {checkpoint}: not a superlens checkpoint (no model entry)")
    try:
        model.load_state_dict(ck["model"])
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint {checkpoint}: does not fit the model "
                              f"({one_line(e)[:200]})") from None
    return model


def model_dirs(out: Path, name: str, seed: int) -> list[Path]:
    """Folders of one run's saved models under the study's run directory ``out``: the baseline's,
    or a strategy loop's rounds in order."""
    if name == "baseline":
        return [out / "baseline" / f"seed{seed}"]
    return sorted((out / "al" / name / f"seed{seed}").glob("round_*"))
