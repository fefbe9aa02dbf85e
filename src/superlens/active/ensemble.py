"""K small CNNs trained at once as one grouped network, each as if it were trained alone.

The K models (same architecture: superlens' small-cnn or narrow-cnn) become one network whose
convolutions have groups = K: model k owns channel block k of every layer. Convolution, BatchNorm,
ReLU, max- and average-pooling act per channel, so block k computes exactly what model k would; the
classifier is a batched matrix product. Every parameter of the grouped network is the K models'
parameters concatenated along dim 0, so an elementwise optimizer (Adam, SGD with momentum and weight
decay) over the grouped parameters makes the K per-model updates; its state is concatenated and
sliced the same way. The loss is the sum of the K models' mean cross-entropies: model k's gradient
is that of its own loss.

Each model keeps its own data: model k's batches come from its own images, labels and generator
(the same draws train_epochs makes: module seed, then per epoch the order and augmentation), and
its dropout mask is drawn from a generator seeded as train_epochs seeds the global RNG, so each
model's training equals train_epochs on it alone up to float rounding (tests/test_active_ensemble.py).
Why: on a CPU a 16-channel convolution leaves the core idle between small kernels; K of them in one
grouped call do more work per call (bench/active.py, ensemble_vs_plain).

    nets = stack([m1, m2, m3]); opt = stack_optimizer(nets, [o1, o2, o3], cfg)
    fits = train_together(nets, opt, xs, ys, cfg=cfg, norm=norm, device=dev, generators=gs)
    unstack(nets, [m1, m2, m3]); unstack_optimizer(nets, opt, [o1, o2, o3])
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from superlens.active.data import normalize_batch
from superlens.active.models import SmallCNN, NarrowCNN
from superlens.config import ActiveConfig

GROUPABLE = (SmallCNN, NarrowCNN)


def can_group(model: nn.Module) -> bool:
    """Whether ``model`` is of a kind this module can train K at a time."""
    return isinstance(model, GROUPABLE)


class GroupedCNN(nn.Module):
    """K _PooledCNN models of one architecture as one network.

    forward(x [K, B, C, H, W] float, dropout_generators: K generators or None) -> logits
    [K, B, n_classes]; ``features`` (pooled, [K, B, d]) is kept from the last forward pass.
    """

    def __init__(self, models: list[nn.Module]):
        super().__init__()
        k = len(models)
        first = models[0]
        if not all(type(m) is type(first) and can_group(m) for m in models):
            raise ValueError("GroupedCNN: every model must be the same small CNN kind "
                             f"({', '.join(c.__name__ for c in GROUPABLE)})")
        self.k = k
        layers = []
        for i, mod in enumerate(first.features):
            if isinstance(mod, nn.MaxPool2d):
                layers.append(nn.MaxPool2d(mod.kernel_size, mod.stride, mod.padding, mod.dilation,
                                           ceil_mode=mod.ceil_mode))
                continue
            conv, bn = mod[0], mod[1]
            g_conv = nn.Conv2d(conv.in_channels * k, conv.out_channels * k, conv.kernel_size,
                               conv.stride, conv.padding, bias=conv.bias is not None, groups=k)
            g_bn = nn.BatchNorm2d(bn.num_features * k, eps=bn.eps, momentum=bn.momentum)
            layers.append(nn.Sequential(g_conv, g_bn, nn.ReLU(inplace=True)))
        self.features = nn.Sequential(*layers)
        drop, lin = first.fc[0], first.fc[1]
        self.p = float(drop.p)
        self.d, self.n_classes = lin.in_features, lin.out_features
        self.fc_weight = nn.Parameter(torch.empty(k * lin.out_features, lin.in_features))
        self.fc_bias = nn.Parameter(torch.empty(k * lin.out_features))
        self.features_out: Tensor | None = None
        self.load_from(models)

    # the grouped parameter of each single-model parameter name, in the model's own order
    def pairs(self, model: nn.Module) -> list[tuple[str, Tensor, Tensor]]:
        """[(name, single tensor, grouped tensor)] for every parameter and buffer of ``model``."""
        out = []
        mine = dict(self.named_parameters()) | dict(self.named_buffers())
        for name, t in list(model.named_parameters()) + list(model.named_buffers()):
            gname = {"fc.1.weight": "fc_weight", "fc.1.bias": "fc_bias"}.get(name, name)
            out.append((name, t, mine[gname]))
        return out

    @torch.no_grad()
    def load_from(self, models: list[nn.Module]) -> None:
        """Copy the K models' weights and BatchNorm statistics into the grouped network."""
        for name, t0, g in self.pairs(models[0]):
            ts = [dict(list(m.named_parameters()) + list(m.named_buffers()))[name] for m in models]
            if t0.dim() == 0:  # num_batches_tracked: the same for all
                g.copy_(ts[0])
            else:
                g.copy_(torch.cat([t.detach() for t in ts]).to(g.device))

    @torch.no_grad()
    def write_to(self, models: list[nn.Module]) -> None:
        """Copy block k of every grouped tensor back into model k."""
        for name, _, g in self.pairs(models[0]):
            for k, m in enumerate(models):
                t = dict(list(m.named_parameters()) + list(m.named_buffers()))[name]
                t.copy_(g if g.dim() == 0 else g.chunk(self.k)[k])

    def forward(self, x: Tensor, dropout_generators: list[torch.Generator] | None = None) -> Tensor:
        k, b = x.shape[0], x.shape[1]
        # channels-last: the grouped convolutions, BatchNorm and pooling run ~1.2x faster on a CPU
        # than on the default layout (the module is converted in stack())
        x = x.transpose(0, 1).reshape(b, -1, *x.shape[3:]).contiguous(memory_format=torch.channels_last)
        h = self.features(x)  # [B, K*C, H, W]
        f = h.mean(dim=(2, 3)).view(b, k, self.d).transpose(0, 1)            # [K, B, d]
        self.features_out = f
        if self.training and self.p > 0:
            if dropout_generators is None:
                raise ValueError("GroupedCNN: training with dropout needs one generator per model")
            # one mask per model from its own generator: what F.dropout draws from a global RNG
            # seeded alike (bernoulli_(1 - p) over [B, d], then scaled by 1 / (1 - p))
            masks = torch.stack([torch.empty(b, self.d, device=x.device).bernoulli_(
                1 - self.p, generator=g) for g in dropout_generators])
            f = f * masks / (1 - self.p)
        w = self.fc_weight.view(k, self.n_classes, self.d)
        return torch.baddbmm(self.fc_bias.view(k, 1, self.n_classes), f, w.transpose(1, 2))


def stack(models: list[nn.Module]) -> GroupedCNN:
    """The K models as one GroupedCNN on their device (the models are not changed)."""
    dev = next(models[0].parameters()).device
    return GroupedCNN(models).to(dev, memory_format=torch.channels_last)


def unstack(net: GroupedCNN, models: list[nn.Module]) -> None:
    """Write the grouped network's weights back into the K models (in place)."""
    net.write_to(models)


def _opt_pairs(net: GroupedCNN, model: nn.Module):
    """(single parameter index, grouped parameter) in the single model's parameter order."""
    names = [n for n, _ in model.named_parameters()]
    by = {n: g for n, _, g in net.pairs(model)}
    return [(i, by[n]) for i, n in enumerate(names)]


def stack_optimizer(net: GroupedCNN, models: list[nn.Module], optimizers: list[torch.optim.Optimizer],
                    cfg: ActiveConfig) -> torch.optim.Optimizer:
    """One optimizer over the grouped parameters whose state is the K optimizers' state
    concatenated (fresh optimizers give a fresh one)."""
    from superlens.active.train import make_optimizer

    opt = make_optimizer(_ParamsOf(net, models[0]), cfg)
    pairs = _opt_pairs(net, models[0])
    per_model = [[p for p in m.parameters()] for m in models]
    for i, g in pairs:
        states = [o.state.get(ps[i]) for o, ps in zip(optimizers, per_model)]
        if not any(states):
            continue
        st = {}
        for key, v in states[0].items():
            if torch.is_tensor(v) and v.dim() > 0:
                st[key] = torch.cat([s[key] for s in states]).to(g.device)
            else:
                st[key] = v.clone() if torch.is_tensor(v) else v
        opt.state[g] = st
    return opt


def unstack_optimizer(net: GroupedCNN, opt: torch.optim.Optimizer, models: list[nn.Module],
                      optimizers: list[torch.optim.Optimizer]) -> None:
    """Write block k of the grouped optimizer's state into optimizers[k] (over models[k])."""
    pairs = _opt_pairs(net, models[0])
    for k, (m, o) in enumerate(zip(models, optimizers)):
        ps = list(m.parameters())
        for i, g in pairs:
            st = opt.state.get(g)
            if not st:
                continue
            o.state[ps[i]] = {key: (v.chunk(net.k)[k].clone() if torch.is_tensor(v) and v.dim() > 0
                                    else (v.clone() if torch.is_tensor(v) else v))
                              for key, v in st.items()}


class _ParamsOf(nn.Module):
    """A module whose parameters() are the grouped parameters in the single model's order (so the
    grouped optimizer's param list lines up with every per-model optimizer's)."""

    def __init__(self, net: GroupedCNN, model: nn.Module):
        super().__init__()
        self._list = [g for _, g in _opt_pairs(net, model)]

    def parameters(self, recurse: bool = True):
        return iter(self._list)


def train_together(net: GroupedCNN, optimizer: torch.optim.Optimizer, xs: list[Tensor],
                   ys: list[Tensor], *, cfg: ActiveConfig, norm, device: torch.device | str,
                   generators: list[torch.Generator], shuffle: bool, desc: str = "") -> list[dict]:
    """train_epochs for K models at once (see the module docstring). xs[k]: [N, C, H, W] uint8,
    ys[k]: [N] int64, the same N for every model; generators[k]: model k's training generator.
    Returns one {"loss", "epoch_losses", "seconds"} per model (seconds: the shared wall time)."""
    from superlens.active.train import augment_batch, crop_padding, epoch_draws, set_lr

    device = torch.device(device)
    k = len(xs)
    n = int(xs[0].shape[0])
    if any(int(x.shape[0]) != n for x in xs) or any(int(y.shape[0]) != n for y in ys):
        raise ValueError("train_together: every model needs the same number of training images")
    x_all = torch.cat([x.to(device) for x in xs])  # [K * n, C, H, W]: model j at rows j*n ...
    y_all = torch.cat([y.to(device) for y in ys])
    offsets = (torch.arange(k, device=device) * n)[:, None]
    mean, std = norm if norm is not None else (None, None)
    bs = int(cfg.batch_size)
    n_batches = (n + bs - 1) // bs
    if n > 1 and n % bs == 1:  # as train_epochs: BatchNorm cannot train on a batch of one
        n_batches -= 1
    pad = crop_padding(int(xs[0].shape[-1]))
    # as train_epochs: the first draw of each generator seeds that model's dropout
    drop = [torch.Generator(device=device).manual_seed(
        int(torch.randint(0, 2**62, (1,), generator=g, device=g.device))) for g in generators]
    net.train()
    t0 = time.perf_counter()
    losses: list[list[float]] = [[] for _ in range(k)]
    bar = tqdm(total=cfg.epochs * n_batches, desc=desc or "train", unit="batch", leave=False,
               disable=not cfg.progress, dynamic_ncols=True)
    try:
        for epoch in range(cfg.epochs):
            draws = [epoch_draws(n, g, shuffle, cfg.augment, pad, device) for g in generators]
            # the K models' draws side by side: batch bi of every model is one gather from x_all
            # (model j's images at rows j*n ...), one crop + flip and one normalisation, each
            # acting per image as the per-model loop did
            order = torch.stack([o for o, _ in draws]) + offsets            # [K, n] rows of x_all
            aug = (None if draws[0][1] is None else
                   [torch.stack([a[i] for _, a in draws]) for i in range(3)])  # dy, dx, flip [K, n]
            totals = torch.zeros(k, device=device)
            seen = 0
            for bi in range(n_batches):
                sl = slice(bi * bs, (bi + 1) * bs)
                idx = order[:, sl].reshape(-1)                              # [K * b]
                x = x_all[idx]
                if aug is not None:
                    x = augment_batch(x, *(a[:, sl].reshape(-1) for a in aug), pad)
                b = idx.shape[0] // k
                xb = normalize_batch(x, mean, std, image_size=cfg.image_size)
                y = y_all[idx].view(k, b)
                logits = net(xb.view(k, b, *xb.shape[1:]), drop)          # [K, B, classes]
                per = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                      reduction="none").view(k, -1).mean(1)   # [K]
                optimizer.zero_grad(set_to_none=True)
                per.sum().backward()
                set_lr(optimizer, cfg, epoch * n_batches + bi, cfg.epochs * n_batches)
                optimizer.step()
                totals += per.detach() * y.shape[1]
                seen += y.shape[1]
                bar.update(1)
            for j in range(k):
                losses[j].append(float(totals[j]) / max(seen, 1))
    finally:
        bar.close()
    dt = time.perf_counter() - t0
    return [{"loss": ls[-1] if ls else float("nan"), "epoch_losses": ls, "seconds": dt}
            for ls in losses]


def train_split(models: list[nn.Module], optimizers: list[torch.optim.Optimizer], xs: list[Tensor],
                ys: list[Tensor], *, cfg: ActiveConfig, norm, device: torch.device | str,
                generators: list[torch.Generator], shuffle: bool, desc: str = "") -> list[dict]:
    """train_together for the models, split into one grouped network per torch thread on a CPU,
    each trained by its own single-threaded worker (superlens.device.run_chunks); the models and
    optimizers are updated in place. Why: at 2 threads every small kernel of one grouped network
    waits for both cores at each barrier; two networks of 4 models, one per core, do not (bench/
    active.py, ensemble_vs_plain). Each model still trains as if alone. Returns one train_together
    result per model, in order."""
    from superlens.device import run_chunks

    device = torch.device(device)
    k = len(models)
    w = max(1, min(torch.get_num_threads(), k)) if device.type == "cpu" else 1
    parts = [list(range(k))[j * k // w:(j + 1) * k // w] for j in range(w)]  # contiguous blocks
    out: list[dict | None] = [None] * k

    def fit(j: int) -> None:
        idx = parts[j]
        ms, os_ = [models[i] for i in idx], [optimizers[i] for i in idx]
        net = stack(ms)
        opt = stack_optimizer(net, ms, os_, cfg)
        fits = train_together(net, opt, [xs[i] for i in idx], [ys[i] for i in idx], cfg=cfg,
                              norm=norm, device=device, generators=[generators[i] for i in idx],
                              shuffle=shuffle, desc=desc)
        unstack(net, ms)
        unstack_optimizer(net, opt, ms, os_)
        for i, f in zip(idx, fits):
            out[i] = f

    run_chunks(fit, list(range(w)), device)
    return out  # type: ignore[return-value]


__all__ = ["GROUPABLE", "can_group", "GroupedCNN", "stack", "unstack", "stack_optimizer",
           "unstack_optimizer", "train_together", "train_split"]
