"""Supervised training and inference of the active-learning study, on device-resident uint8 tensors.

The images stay on the training device as uint8 [N, C, H, W] (a quarter of float32); each batch is
gathered by index, augmented and normalised there. No DataLoader: with small images its per-batch
collation and host-to-device copies, not the model, were where the time went.

    opt = make_optimizer(model, cfg)
    train_epochs(model, opt, x, y, cfg=cfg, norm=(mean, std), device=dev, generator=g)
    probs, feats = predict(model, x_test, norm=(mean, std), device=dev, batch_size=512,
                           feature_layer="avgpool")
    mc = mc_dropout_probs(model, x_pool, T=10, norm=(mean, std), device=dev, batch_size=512, seed=0)

Randomness (shuffling, crops, flips) is drawn from the ``generator`` the caller passes, so a run is
reproducible from its seeds alone; MC dropout is seeded in a forked RNG so the global state is untouched.
"""
from __future__ import annotations

import contextlib
import math
import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from superlens.active.data import normalize_batch
from superlens.active.models import FeatureHook
from superlens.config import ActiveConfig
from superlens.errors import ConfigError

Norm = tuple[tuple[float, ...], tuple[float, ...]] | None


def make_optimizer(model: nn.Module, cfg: ActiveConfig) -> torch.optim.Optimizer:
    """Adam (lr, weight_decay) or SGD (lr, momentum, weight_decay) over all of ``model``'s parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    raise ConfigError(f"optimizer = {cfg.optimizer!r}: unknown (known: adam, sgd)")


def scheduled_lr(cfg: ActiveConfig, step: int, total: int) -> float:
    """The learning rate of optimizer step ``step`` (0-based) of a training of ``total`` steps:
    cfg.lr, or under lr_schedule = "cosine" cfg.lr * (1 + cos(pi * step / total)) / 2 (cosine
    annealing, Loshchilov & Hutter 2017, arXiv 1608.03983, one cycle per training): the last steps
    run at a small rate, so the model a training ends with does not hang on its last batches."""
    if cfg.lr_schedule == "constant":
        return float(cfg.lr)
    return float(cfg.lr) * (1.0 + math.cos(math.pi * step / max(total, 1))) / 2.0


def set_lr(optimizer: torch.optim.Optimizer, cfg: ActiveConfig, step: int, total: int) -> None:
    """Give every parameter group scheduled_lr(cfg, step, total); a constant schedule leaves the
    optimizer as it is (a continued optimizer keeps the rate it was given)."""
    if cfg.lr_schedule != "constant":
        lr = scheduled_lr(cfg, step, total)
        for group in optimizer.param_groups:
            group["lr"] = lr


def amp_enabled(device: torch.device, wanted: bool) -> bool:
    """Whether mixed precision acts: asked for (wanted) and on CUDA."""
    # float16 autocast + GradScaler pays off on CUDA only; on the CPU it would be bfloat16 and slower
    return bool(wanted) and device.type == "cuda"


def _autocast(device: torch.device, enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.float16)


def make_scaler(device: torch.device | str, cfg: ActiveConfig) -> torch.amp.GradScaler:
    """The GradScaler of one optimizer: enabled on CUDA when cfg.amp, a no-op elsewhere. Keep it with
    its optimizer (and in its checkpoint) for as long as the optimizer is continued."""
    device = torch.device(device)
    return torch.amp.GradScaler(device.type, enabled=amp_enabled(device, cfg.amp))


def scaler_state(scaler: torch.amp.GradScaler | None) -> dict:
    """The scaler's state_dict ({} for a disabled one)."""
    return scaler.state_dict() if scaler is not None else {}


def load_scaler_state(scaler: torch.amp.GradScaler, state: dict | None) -> None:
    """Restore a saved scale; an empty state (saved disabled, e.g. on the CPU) leaves a fresh scale."""
    if state and scaler.is_enabled():
        scaler.load_state_dict(state)


def crop_padding(image_size: int) -> int:
    """Padding of the random crop: 4 px for images of 32 px and up (the CIFAR recipe), else 1 px."""
    return 4 if image_size >= 32 else 1


def augment_batch(x: Tensor, dy: Tensor, dx: Tensor, flip: Tensor, pad: int) -> Tensor:
    """Random crop with zero padding and horizontal flip, as one gather on the device.

    x: [B, C, H, W] (any dtype); dy, dx: [B] int64 offsets in 0..2*pad into the padded image;
    flip: [B] bool. Returns [B, C, H, W]: out[b, :, i, j] = padded[b, :, dy+i, dx+j'] with
    j' = W-1-j when flipped. Zero padding on the uint8 image equals torchvision's
    RandomCrop(padding=pad) applied before ToTensor/Normalize.
    """
    B, _, H, W = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))                                  # [B, C, H+2p, W+2p]
    i = torch.arange(H, device=x.device)
    j = torch.arange(W, device=x.device)
    rows = dy.view(B, 1) + i.view(1, H)                                  # [B, H]
    cols = dx.view(B, 1) + torch.where(flip.view(B, 1), (W - 1 - j).view(1, W), j.view(1, W))  # [B, W]
    b = torch.arange(B, device=x.device).view(B, 1, 1)
    # advanced indices split by the channel slice put their dims first: [B, H, W, C]
    out = xp[b, :, rows.view(B, H, 1), cols.view(B, 1, W)]
    return out.permute(0, 3, 1, 2).contiguous()


def epoch_draws(n: int, g: torch.Generator, shuffle: bool, augment: bool, pad: int,
                 device: torch.device) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor] | None]:
    """One epoch's draws from ``g``, made up front on g's device (one transfer; the same draws
    whatever the training device): the batch order [n] and, when augmenting, (dy, dx, flip) [n]."""
    order = torch.randperm(n, generator=g, device=g.device) if shuffle else torch.arange(n)
    if not augment:
        return order.to(device), None
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=g, device=g.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=g, device=g.device)
    flip = torch.rand(n, generator=g, device=g.device) < 0.5
    return order.to(device), (dy.to(device), dx.to(device), flip.to(device))


def train_epochs(model: nn.Module, optimizer: torch.optim.Optimizer, x_uint8: Tensor, y: Tensor, *,
                 cfg: ActiveConfig, norm: Norm, device: torch.device | str, generator: torch.Generator,
                 epochs: int | None = None, desc: str = "", shuffle: bool | None = None,
                 scaler: torch.amp.GradScaler | None = None) -> dict:
    """Train ``model`` in place with cross-entropy for ``epochs`` (default cfg.epochs) epochs.

    x_uint8: [N, C, H, W] uint8, moved to ``device`` once (a no-op when it is there already);
    y: [N] int64. Per epoch: a permutation from ``generator`` when ``shuffle`` (default cfg.shuffle;
    else the given order),
    batches of cfg.batch_size (the last one partial; a trailing batch of one sample is skipped since
    BatchNorm cannot train on it), crop+flip when cfg.augment, float16 autocast + GradScaler on CUDA
    when cfg.amp. ``scaler``: the GradScaler kept with ``optimizer`` (make_scaler) when the optimizer is
    continued across calls; None makes a fresh one. Returns {"loss": mean loss of the last epoch, "epoch_losses": [...], "seconds"}.
    """
    device = torch.device(device)
    n = int(x_uint8.shape[0])
    if n == 0:
        raise ValueError("train_epochs: no training samples")
    if y.shape != (n,):
        raise ValueError(f"train_epochs: {n} images but labels of shape {tuple(y.shape)}")
    epochs = cfg.epochs if epochs is None else int(epochs)
    mean, std = norm if norm is not None else (None, None)
    x = x_uint8.to(device)
    y = y.to(device)
    bs = int(cfg.batch_size)
    n_batches = (n + bs - 1) // bs
    if n > 1 and n % bs == 1:
        n_batches -= 1
    amp = amp_enabled(device, cfg.amp)
    if scaler is None:
        scaler = make_scaler(device, cfg)
    shuffle = cfg.shuffle if shuffle is None else bool(shuffle)
    pad = crop_padding(int(x.shape[-1]))
    model.train()
    t0 = time.perf_counter()
    losses: list[float] = []
    bar = tqdm(total=epochs * n_batches, desc=desc or "train", unit="batch", leave=False,
               disable=not cfg.progress, dynamic_ncols=True)
    # nn.Dropout draws from the global RNG, which no generator can replace: seed it from ``generator``
    # inside a forked RNG state, so training depends on the generator alone and the caller's
    # global state is left as it was
    module_seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    try:
        with _forked_rng(device):
            torch.manual_seed(module_seed)
            for epoch in range(epochs):
                order, aug = epoch_draws(n, generator, shuffle, cfg.augment, pad, device)
                total = torch.zeros((), device=device)
                seen = 0
                for bi in range(n_batches):
                    idx = order[bi * bs:(bi + 1) * bs]
                    xb = x[idx]
                    if aug is not None:
                        pos = slice(bi * bs, bi * bs + len(idx))
                        xb = augment_batch(xb, *(a[pos] for a in aug), pad)
                    xb = normalize_batch(xb, mean, std, image_size=cfg.image_size)
                    with _autocast(device, amp):
                        loss = F.cross_entropy(model(xb), y[idx])
                    optimizer.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    set_lr(optimizer, cfg, epoch * n_batches + bi, epochs * n_batches)
                    scaler.step(optimizer)
                    scaler.update()
                    # accumulated on the device: one sync per epoch, not per batch
                    total += loss.detach().float() * len(idx)
                    seen += len(idx)
                    bar.update(1)
                losses.append(float(total) / max(seen, 1))
                bar.set_postfix_str(f"epoch {epoch + 1}/{epochs} loss {losses[-1]:.4f}")
    finally:
        bar.close()
    return {"loss": losses[-1] if losses else float("nan"), "epoch_losses": losses,
            "seconds": time.perf_counter() - t0}


def _forked_rng(device: torch.device):
    """torch.random.fork_rng over the CPU and, on CUDA, ``device``'s generator."""
    devices = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    return torch.random.fork_rng(devices=devices)


@contextlib.contextmanager
def _mode(model: nn.Module, train: bool):
    """Put ``model`` in train/eval mode and restore each module's own mode afterwards."""
    before = [(m, m.training) for m in model.modules()]
    model.train(train)
    try:
        yield
    finally:
        for m, was in before:
            m.training = was


@torch.no_grad()
def predict(model: nn.Module, x_uint8: Tensor, *, norm: Norm, device: torch.device | str,
            batch_size: int, feature_layer: str | None, image_size: int | None = None,
            amp: bool = True, out_device: torch.device | str = "cpu") -> tuple[Tensor, Tensor | None]:
    """Eval-mode softmax and features of ``feature_layer`` (read by models.FeatureHook).

    x_uint8: [N, C, H, W] uint8 on any device. Returns probs [N, n_classes] float32 and features
    [N, d] float32 (None when feature_layer is None), on ``out_device``. Autocast on CUDA when amp.
    """
    device = torch.device(device)
    n = int(x_uint8.shape[0])
    if n == 0:
        raise ValueError("predict: no samples")
    mean, std = norm if norm is not None else (None, None)
    use_amp = amp_enabled(device, amp)
    probs, feats = [], []
    hook = FeatureHook(model, feature_layer) if feature_layer is not None else contextlib.nullcontext()
    with _mode(model, False), hook as h:
        for s in range(0, n, batch_size):
            xb = normalize_batch(x_uint8[s:s + batch_size].to(device), mean, std, image_size=image_size)
            with _autocast(device, use_amp):
                logits = model(xb)
            probs.append(logits.float().softmax(dim=-1))
            if feature_layer is not None:
                if h.features is None:
                    raise ConfigError(f"feature_layer = {feature_layer!r}: the module is not run by "
                                      f"{type(model).__name__}'s forward pass")
                feats.append(h.features)
                h.features = None
    out_device = torch.device(out_device)
    p = torch.cat(probs).to(out_device)
    f = torch.cat(feats).to(out_device) if feature_layer is not None else None
    return p, f


def _dropouts(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]


@torch.no_grad()
def mc_dropout_probs(model: nn.Module, x_uint8: Tensor, *, T: int, norm: Norm,
                     device: torch.device | str, batch_size: int, seed: int,
                     image_size: int | None = None, amp: bool = True,
                     out_device: torch.device | str = "cpu") -> Tensor:
    """Softmax under T stochastic passes of MC dropout (Gal & Ghahramani 2016): [T, N, n_classes].

    Everything is in eval mode (BatchNorm uses its running statistics) except the nn.Dropout
    modules. When the model has exactly one active dropout (the one before its classifier, as every
    superlens model does) its input is repeated T times, so the backbone runs once per batch and only
    the classifier T times; otherwise the whole model runs T times. The masks come from
    torch.manual_seed(seed) inside a forked RNG: same seed, same result; global RNG untouched.
    """
    device = torch.device(device)
    T = int(T)
    if T < 1:
        raise ValueError(f"T = {T}: MC dropout needs T >= 1 passes")
    drops = [m for m in _dropouts(model) if getattr(m, "p", 0.0) > 0]
    if not drops:
        raise ConfigError("bald needs dropout > 0 (set dropout, e.g. 0.2): MC dropout of a model whose "
                          "dropout p is 0 gives T identical passes")
    n = int(x_uint8.shape[0])
    if n == 0:
        raise ValueError("mc_dropout_probs: no samples")
    mean, std = norm if norm is not None else (None, None)
    use_amp = amp_enabled(device, amp)
    repeat = len(drops) == 1
    handle = drops[0].register_forward_pre_hook(
        lambda m, inp: (inp[0].repeat(T, *([1] * (inp[0].dim() - 1))),)) if repeat else None
    out = []
    try:
        with _forked_rng(device), _mode(model, False):
            torch.manual_seed(int(seed))
            for m in _dropouts(model):
                m.train()
            for s in range(0, n, batch_size):
                xb = normalize_batch(x_uint8[s:s + batch_size].to(device), mean, std, image_size=image_size)
                B = xb.shape[0]
                with _autocast(device, use_amp):
                    if repeat:
                        logits = model(xb)
                        assert logits.shape[0] == T * B, (
                            f"MC dropout: expected {T * B} rows after the repeated dropout, got "
                            f"{logits.shape[0]}; the dropout must sit right before the classifier")
                        logits = logits.view(T, B, -1)
                    else:
                        logits = torch.stack([model(xb) for _ in range(T)])
                out.append(logits.float().softmax(dim=-1).to(out_device))
    finally:
        if handle is not None:
            handle.remove()
    return torch.cat(out, dim=1)


def accuracy(probs: Tensor, y: Tensor) -> float:
    """Share of rows whose argmax equals the label. probs: [N, C], y: [N]."""
    if probs.shape[0] != y.shape[0]:
        raise ValueError(f"accuracy: {probs.shape[0]} predictions for {y.shape[0]} labels")
    if y.numel() == 0:
        raise ValueError("accuracy: empty set")
    return float((probs.argmax(dim=1).cpu() == y.cpu()).double().mean())


__all__ = ["make_optimizer", "make_scaler", "scaler_state", "load_scaler_state", "train_epochs", "predict", "mc_dropout_probs", "accuracy", "augment_batch",
           "crop_padding"]
