"""K small CNNs trained at once (superlens.active.ensemble) equal each trained alone."""
from __future__ import annotations

import copy

import pytest
import torch

from superlens.active.ensemble import (stack, stack_optimizer, train_together, unstack,
                                       unstack_optimizer)
from superlens.active.models import build_model
from superlens.active.train import make_optimizer, train_epochs
from superlens.config import ActiveConfig
from superlens.device import generator


def _data(seed: int, n: int = 40):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 256, (n, 3, 16, 16), dtype=torch.uint8, generator=g),
            torch.randint(0, 10, (n,), generator=g))


def _close(a: torch.Tensor, b: torch.Tensor, start: torch.Tensor, rel: float) -> bool:
    """a and b differ by at most ``rel`` of how far training moved a from ``start`` (plus 1e-7):
    Adam divides by sqrt(v), so rounding differences in near-zero gradients grow into a visible
    fraction of a step; SGD keeps them at rounding level."""
    a, b, start = a.double(), b.double(), start.double()
    return float((a - b).abs().max()) <= rel * float((a - start).abs().max()) + 1e-7


@pytest.mark.parametrize("augment,model,optimizer,rel,schedule", [
    (False, "narrow-cnn", "sgd", 1e-4, "constant"), (True, "small-cnn", "sgd", 1e-4, "constant"),
    (False, "narrow-cnn", "adam", 0.05, "constant"), (True, "narrow-cnn", "sgd", 1e-4, "cosine")])
def test_together_equals_alone(augment, model, optimizer, rel, schedule):
    cfg = ActiveConfig.build(dict(model=model, epochs=2, batch_size=16, dropout=0.3,
                                  lr=2e-3 if optimizer == "adam" else 0.05,
                                  augment=augment, progress=False, optimizer=optimizer,
                                  momentum=0.9, lr_schedule=schedule), source="test")
    norm = ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    k = 3
    models = []
    for s in range(k):
        torch.manual_seed(100 + s)
        models.append(build_model(model, 10, 3, dropout=cfg.dropout))
    data = [_data(s) for s in range(k)]
    alone = [copy.deepcopy(m) for m in models]
    start = [[t.clone() for t in m.state_dict().values()] for m in models]
    alone_opts = []
    for s, m in enumerate(alone):
        o = make_optimizer(m, cfg)
        train_epochs(m, o, *data[s], cfg=cfg, norm=norm, device="cpu", generator=generator(7 + s))
        alone_opts.append(o)

    together = [copy.deepcopy(m) for m in models]
    opts = [make_optimizer(m, cfg) for m in together]
    net = stack(together)
    opt = stack_optimizer(net, together, opts, cfg)
    fits = train_together(net, opt, [d[0] for d in data], [d[1] for d in data], cfg=cfg, norm=norm,
                          device="cpu", generators=[generator(7 + s) for s in range(k)],
                          shuffle=True)
    unstack(net, together)
    unstack_optimizer(net, opt, together, opts)
    assert len(fits) == k and all(len(f["epoch_losses"]) == 2 for f in fits)
    for a, b in zip(alone, together):
        sa, sb = a.state_dict(), b.state_dict()
        s0 = dict(zip(sa, start[alone.index(a)]))
        for name in sa:
            assert _close(sa[name], sb[name], s0[name], rel), (
                name, (sa[name].float() - sb[name].float()).abs().max())
    # the optimizer's state comes back per model too (Adam's moments of the first conv)
    pa, pb = next(alone[1].parameters()), next(together[1].parameters())
    key = "exp_avg_sq" if optimizer == "adam" else "momentum_buffer"
    assert torch.allclose(alone_opts[1].state[pa][key], opts[1].state[pb][key], rtol=1e-3,
                          atol=1e-7)
    # and the models did move: not equal to where they started
    assert not torch.allclose(next(models[0].parameters()), next(together[0].parameters()))


def test_continued_optimizer_state_is_carried_in():
    """Training alone for 1 + 1 epochs equals 1 alone, then 1 together from the saved state."""
    cfg = ActiveConfig.build(dict(model="narrow-cnn", epochs=1, batch_size=16, dropout=0.0,
                                  progress=False), source="test")
    k = 2
    models = []
    for s in range(k):
        torch.manual_seed(s)
        models.append(build_model("narrow-cnn", 10, 3))
    data = [_data(10 + s) for s in range(k)]
    opts = [make_optimizer(m, cfg) for m in models]
    for s, (m, o) in enumerate(zip(models, opts)):
        train_epochs(m, o, *data[s], cfg=cfg, norm=None, device="cpu", generator=generator(s))
    alone = [copy.deepcopy(m) for m in models]
    start = [[t.clone() for t in m.state_dict().values()] for m in models]
    alone_opts = [make_optimizer(m, cfg) for m in alone]
    for a, o, src in zip(alone_opts, opts, models):
        a.load_state_dict(copy.deepcopy(o.state_dict()))  # state_dict() shares its step tensors
    for s, (m, o) in enumerate(zip(alone, alone_opts)):
        train_epochs(m, o, *data[s], cfg=cfg, norm=None, device="cpu", generator=generator(50 + s))
    net = stack(models)
    opt = stack_optimizer(net, models, opts, cfg)
    train_together(net, opt, [d[0] for d in data], [d[1] for d in data], cfg=cfg, norm=None,
                   device="cpu", generators=[generator(50 + s) for s in range(k)], shuffle=True)
    unstack(net, models)
    for a, b, s0 in zip(alone, models, start):
        for (n, x), y, x0 in zip(a.state_dict().items(), b.state_dict().values(), s0):
            assert _close(x, y, x0, 0.05), (n, float((x - y).abs().max()), float((x - x0).abs().max()))


def test_split_over_threads_equals_alone():
    """train_split: 3 models as one grouped network per torch thread (2 here, on single-threaded
    workers side by side) each equal training alone, optimizer state included."""
    from superlens.active.ensemble import train_split

    cfg = ActiveConfig.build(dict(model="narrow-cnn", epochs=2, batch_size=16, dropout=0.3, lr=0.05,
                                  augment=True, progress=False, optimizer="sgd", momentum=0.9),
                             source="test")
    norm = ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    models = []
    for s in range(3):
        torch.manual_seed(200 + s)
        models.append(build_model("narrow-cnn", 10, 3, dropout=cfg.dropout))
    data = [_data(10 + s) for s in range(3)]
    start = [[t.clone() for t in m.state_dict().values()] for m in models]
    alone = [copy.deepcopy(m) for m in models]
    alone_opts = [make_optimizer(m, cfg) for m in alone]
    for s, (m, o) in enumerate(zip(alone, alone_opts)):
        train_epochs(m, o, *data[s], cfg=cfg, norm=norm, device="cpu", generator=generator(3 + s))
    split = [copy.deepcopy(m) for m in models]
    opts = [make_optimizer(m, cfg) for m in split]
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        fits = train_split(split, opts, [d[0] for d in data], [d[1] for d in data], cfg=cfg,
                           norm=norm, device="cpu", generators=[generator(3 + s) for s in range(3)],
                           shuffle=True)
    finally:
        torch.set_num_threads(threads)
    assert len(fits) == 3 and all(len(f["epoch_losses"]) == 2 for f in fits)
    for j, (a, b) in enumerate(zip(alone, split)):
        sa, sb = a.state_dict(), b.state_dict()
        for name, s0 in zip(sa, start[j]):
            assert _close(sa[name], sb[name], s0, 1e-4), name
        pa, pb = next(a.parameters()), next(b.parameters())
        ma, mb = alone_opts[j].state[pa]["momentum_buffer"], opts[j].state[pb]["momentum_buffer"]
        assert float((ma - mb).abs().max()) <= 1e-4 * float(ma.abs().max())
