"""Training and inference on device-resident uint8 tensors (superlens.active.train)."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from superlens.active.data import load_dataset, normalize_batch
from superlens.active.models import FeatureHook, build_model
from superlens.active.train import (accuracy, augment_batch, crop_padding, make_optimizer,
                                    mc_dropout_probs, predict, scheduled_lr, train_epochs)
from superlens.config import ActiveConfig
from superlens.device import generator
from superlens.errors import ConfigError

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def ds():
    return load_dataset("synthetic", seed=0)  # 320 train / 80 test, 1 x 12 x 12, 4 classes


def _cfg(**kw):
    base = dict(dataset="synthetic", epochs=1, batch_size=32, progress=False, device="cpu", dropout=0.2)
    base.update(kw)
    return ActiveConfig.build(base)


def _model(ds, seed=0, dropout=0.2):
    torch.manual_seed(seed)
    return build_model("small-cnn", ds.n_classes, ds.in_channels, dropout=dropout)


def _norm(ds):
    return ds.mean, ds.std


def test_make_optimizer_kinds():
    m = nn.Linear(3, 2)
    adam = make_optimizer(m, _cfg(optimizer="adam", lr=0.01, weight_decay=0.1))
    sgd = make_optimizer(m, _cfg(optimizer="sgd", lr=0.05, momentum=0.5, weight_decay=0.2))
    assert isinstance(adam, torch.optim.Adam) and isinstance(sgd, torch.optim.SGD)
    assert adam.param_groups[0]["lr"] == 0.01 and adam.param_groups[0]["weight_decay"] == 0.1
    g = sgd.param_groups[0]
    assert (g["lr"], g["momentum"], g["weight_decay"]) == (0.05, 0.5, 0.2)
    assert len(g["params"]) == 2


def test_crop_padding():
    assert crop_padding(32) == 4 and crop_padding(64) == 4
    assert crop_padding(8) == 1 and crop_padding(12) == 1


def test_augment_batch_hand_worked():
    # a 3x3 image 1..9, zero padded by 1 to 5x5; offset (0, 0) takes the top-left 3x3 window
    x = torch.arange(1, 10, dtype=torch.uint8).view(1, 1, 3, 3)
    z = torch.zeros(1, dtype=torch.int64)
    out = augment_batch(x, z, z, torch.tensor([False]), pad=1)
    assert out.tolist() == [[[[0, 0, 0], [0, 1, 2], [0, 4, 5]]]]
    # the same window, then mirrored left-right (torchvision: RandomCrop, then RandomHorizontalFlip)
    out = augment_batch(x, z, z, torch.tensor([True]), pad=1)
    assert out.tolist() == [[[[0, 0, 0], [2, 1, 0], [5, 4, 0]]]]
    # offset (1, 1) is the identity
    one = torch.ones(1, dtype=torch.int64)
    assert torch.equal(augment_batch(x, one, one, torch.tensor([False]), pad=1), x)


def test_augment_batch_matches_per_image_reference():
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 256, (6, 3, 7, 5), generator=g, dtype=torch.uint8)
    pad = 2
    dy = torch.randint(0, 2 * pad + 1, (6,), generator=g)
    dx = torch.randint(0, 2 * pad + 1, (6,), generator=g)
    flip = torch.rand(6, generator=g) < 0.5
    out = augment_batch(x, dy, dx, flip, pad)
    xp = F.pad(x, (pad,) * 4)
    for b in range(6):
        ref = xp[b, :, dy[b]:dy[b] + 7, dx[b]:dx[b] + 5]
        ref = ref.flip(-1) if flip[b] else ref
        assert torch.equal(out[b], ref)


def test_train_epochs_learns_and_is_reproducible(ds):
    cfg = _cfg(epochs=3, augment=True, lr=3e-3)
    states, results = [], []
    for _ in range(2):
        m = _model(ds)
        res = train_epochs(m, make_optimizer(m, cfg), ds.train_x, ds.train_y, cfg=cfg, norm=_norm(ds),
                           device="cpu", generator=generator(7))
        states.append(m.state_dict())
        results.append(res)
    assert set(results[0]) >= {"loss", "epoch_losses", "seconds"}
    assert len(results[0]["epoch_losses"]) == 3
    # 4 classes: a model that learned nothing sits at ln 4 = 1.386
    assert results[0]["epoch_losses"][-1] < results[0]["epoch_losses"][0]
    assert results[0]["loss"] < 1.0
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k
    assert results[0]["epoch_losses"] == results[1]["epoch_losses"]
    # another generator draws other batches, crops and dropout masks
    m = _model(ds)
    train_epochs(m, make_optimizer(m, cfg), ds.train_x, ds.train_y, cfg=cfg, norm=_norm(ds),
                 device="cpu", generator=generator(8))
    assert not torch.equal(m.state_dict()["fc.1.weight"], states[0]["fc.1.weight"])


def test_train_epochs_leaves_global_rng_alone(ds):
    cfg = _cfg()
    m = _model(ds)
    before = torch.get_rng_state()
    train_epochs(m, make_optimizer(m, cfg), ds.train_x[:64], ds.train_y[:64], cfg=cfg, norm=_norm(ds),
                 device="cpu", generator=generator(0))
    assert torch.equal(torch.get_rng_state(), before)


def test_train_epochs_equals_plain_loop_without_shuffle(ds):
    # no shuffle, no augmentation, no dropout: the batches are x[0:32], x[32:64], ... in order, and
    # the result must equal a plain PyTorch loop with the same Adam (the last batch holds 6)
    cfg = _cfg(epochs=2, shuffle=False, dropout=0.0, batch_size=32)
    x, y = ds.train_x[:70], ds.train_y[:70]  # 32 + 32 + 6
    m1, m2 = _model(ds, dropout=0.0), _model(ds, dropout=0.0)
    o1, o2 = make_optimizer(m1, cfg), make_optimizer(m2, cfg)
    res = train_epochs(m1, o1, x, y, cfg=cfg, norm=_norm(ds), device="cpu", generator=generator(1))
    m2.train()
    ref_losses = []
    for _ in range(2):
        tot = 0.0
        for s in range(0, 70, 32):
            xb = normalize_batch(x[s:s + 32], ds.mean, ds.std)
            loss = F.cross_entropy(m2(xb), y[s:s + 32])
            o2.zero_grad()
            loss.backward()
            o2.step()
            tot += float(loss.detach()) * len(xb)
        ref_losses.append(tot / 70)
    for k, v in m1.state_dict().items():
        torch.testing.assert_close(v, m2.state_dict()[k], rtol=1e-5, atol=1e-6)
    assert res["epoch_losses"] == pytest.approx(ref_losses, rel=1e-5)


def test_cosine_schedule_closed_form():
    cfg = _cfg(lr=0.01, lr_schedule="cosine")
    assert scheduled_lr(cfg, 0, 100) == pytest.approx(0.01)
    assert scheduled_lr(cfg, 50, 100) == pytest.approx(0.005)
    assert scheduled_lr(cfg, 25, 100) == pytest.approx(0.01 * (1 + 2 ** -0.5) / 2)
    assert scheduled_lr(cfg, 99, 100) == pytest.approx(0.01 * (1 - math.cos(math.pi / 100)) / 2)
    assert scheduled_lr(_cfg(lr=0.01), 99, 100) == 0.01  # constant


def test_train_epochs_with_cosine_equals_a_plain_loop_stepping_the_rate(ds):
    # as the plain-loop test above, with the rate of step t set to the cosine closed form before
    # the optimizer steps: 2 epochs x 3 batches = 6 steps
    cfg = _cfg(epochs=2, shuffle=False, dropout=0.0, batch_size=32, lr=3e-3, lr_schedule="cosine")
    x, y = ds.train_x[:70], ds.train_y[:70]
    m1, m2 = _model(ds, dropout=0.0), _model(ds, dropout=0.0)
    o1, o2 = make_optimizer(m1, cfg), make_optimizer(m2, cfg)
    train_epochs(m1, o1, x, y, cfg=cfg, norm=_norm(ds), device="cpu", generator=generator(1))
    m2.train()
    t = 0
    for _ in range(2):
        for s in range(0, 70, 32):
            loss = F.cross_entropy(m2(normalize_batch(x[s:s + 32], ds.mean, ds.std)), y[s:s + 32])
            o2.zero_grad()
            loss.backward()
            for g in o2.param_groups:
                g["lr"] = 3e-3 * (1 + math.cos(math.pi * t / 6)) / 2
            o2.step()
            t += 1
    for k, v in m1.state_dict().items():
        torch.testing.assert_close(v, m2.state_dict()[k], rtol=1e-5, atol=1e-6)
    assert o1.param_groups[0]["lr"] == pytest.approx(3e-3 * (1 + math.cos(math.pi * 5 / 6)) / 2)
    # and the schedule changes the result: a constant rate ends elsewhere
    m3 = _model(ds, dropout=0.0)
    train_epochs(m3, make_optimizer(m3, cfg), x, y, cfg=_cfg(epochs=2, shuffle=False, dropout=0.0,
                 batch_size=32, lr=3e-3), norm=_norm(ds), device="cpu", generator=generator(1))
    assert not torch.allclose(next(m1.parameters()), next(m3.parameters()))


def test_train_epochs_skips_single_sample_tail(ds):
    # 33 = 32 + 1: BatchNorm cannot train on one sample, so the tail batch is skipped
    cfg = _cfg(batch_size=32, shuffle=False)
    m = _model(ds)
    res = train_epochs(m, make_optimizer(m, cfg), ds.train_x[:33], ds.train_y[:33], cfg=cfg,
                       norm=_norm(ds), device="cpu", generator=generator(0))
    assert res["loss"] == res["loss"]  # not NaN
    with pytest.raises(ValueError):
        train_epochs(m, make_optimizer(m, cfg), ds.train_x[:0], ds.train_y[:0], cfg=cfg,
                     norm=_norm(ds), device="cpu", generator=generator(0))


def test_predict_matches_manual_forward(ds):
    m = _model(ds)
    m.train()
    x = ds.test_x
    probs, feats = predict(m, x, norm=_norm(ds), device="cpu", batch_size=17, feature_layer="avgpool")
    assert m.training  # mode restored
    m.eval()
    with torch.no_grad(), FeatureHook(m, "avgpool") as h:
        ref = m(normalize_batch(x, ds.mean, ds.std)).softmax(-1)
    torch.testing.assert_close(probs, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(feats, h.features, rtol=1e-5, atol=1e-6)
    assert probs.shape == (80, 4) and feats.shape == (80, 128)
    assert probs.dtype == torch.float32 and probs.device.type == "cpu"
    torch.testing.assert_close(probs.sum(1), torch.ones(80))
    p2, f2 = predict(m, x, norm=_norm(ds), device="cpu", batch_size=80, feature_layer=None)
    assert f2 is None
    torch.testing.assert_close(p2, probs, rtol=1e-5, atol=1e-6)


def test_mc_dropout_probs_seeded_and_unbiased_in_logits(ds):
    m = _model(ds, dropout=0.5)
    x = ds.test_x[:5]
    before = torch.get_rng_state()
    a = mc_dropout_probs(m, x, T=400, norm=_norm(ds), device="cpu", batch_size=3, seed=11)
    assert torch.equal(torch.get_rng_state(), before)
    b = mc_dropout_probs(m, x, T=400, norm=_norm(ds), device="cpu", batch_size=3, seed=11)
    c = mc_dropout_probs(m, x, T=400, norm=_norm(ds), device="cpu", batch_size=3, seed=12)
    assert a.shape == (400, 5, 4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.testing.assert_close(a.sum(-1), torch.ones(400, 5))
    assert (a.std(0) > 0).all()  # the passes differ
    # Inverted dropout keeps the logits unbiased: E_mask[z] = z_eval, and log p_c - log p_0 = z_c - z_0
    # exactly, so the MC mean of log-ratios must match the eval-mode log-ratios within a few
    # standard errors (BatchNorm in eval mode, dropout only at the head).
    p_eval, _ = predict(m, x, norm=_norm(ds), device="cpu", batch_size=5, feature_layer=None)
    d_mc = a.double().log() - a.double().log()[..., :1]           # [T, 5, 4]
    d_eval = p_eval.double().log() - p_eval.double().log()[:, :1]  # [5, 4]
    se = d_mc.std(0) / 400 ** 0.5 + 1e-9
    assert ((d_mc.mean(0) - d_eval).abs() <= 5 * se + 1e-4).all()


def test_mc_dropout_probs_many_dropouts_falls_back_to_full_passes():
    net = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(4, 6), nn.Dropout(0.3), nn.Linear(6, 3))
    x = torch.randint(0, 256, (7, 1, 2, 2), dtype=torch.uint8)
    a = mc_dropout_probs(net, x, T=5, norm=None, device="cpu", batch_size=4, seed=0)
    b = mc_dropout_probs(net, x, T=5, norm=None, device="cpu", batch_size=4, seed=0)
    assert a.shape == (5, 7, 3) and torch.equal(a, b)
    assert not torch.equal(a[0], a[1])


def test_mc_dropout_without_dropout_is_config_error(ds):
    m = _model(ds, dropout=0.0)
    with pytest.raises(ConfigError, match="bald needs dropout > 0"):
        mc_dropout_probs(m, ds.test_x[:4], T=3, norm=_norm(ds), device="cpu", batch_size=4, seed=0)


def test_accuracy_hand_worked():
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    y = torch.tensor([0, 1, 1, 1])  # argmax 0, 1, 0, 1 -> 3 of 4 right
    assert accuracy(probs, y) == 0.75
    with pytest.raises(ValueError):
        accuracy(probs, y[:3])


def test_scaler_state_round_trips_through_a_checkpoint(ds, tmp_path):
    from superlens.active.checkpoints import load_checkpoint, save_checkpoint
    from superlens.active.train import make_scaler

    assert not make_scaler("cpu", _cfg(amp=True)).is_enabled()  # mixed precision is CUDA-only
    model = _model(ds)
    opt = make_optimizer(model, _cfg())
    s1 = torch.amp.GradScaler("cpu", init_scale=512.0, growth_interval=7, enabled=True)
    save_checkpoint(tmp_path / "ck.pt", model, opt, {"a": 1}, s1)
    s2 = torch.amp.GradScaler("cpu", enabled=True)
    assert s2.get_scale() != 512.0
    load_checkpoint(tmp_path / "ck.pt", _model(ds, seed=1), None, {"a": 1}, s2)
    assert s2.get_scale() == 512.0 and s2.get_growth_interval() == 7
    # a disabled scaler saves {}: loading it (e.g. a CPU checkpoint resumed on CUDA) keeps a fresh scale
    save_checkpoint(tmp_path / "cpu.pt", model, opt, {"a": 1}, make_scaler("cpu", _cfg()))
    assert torch.load(tmp_path / "cpu.pt", weights_only=True)["scaler"] == {}
    s3 = torch.amp.GradScaler("cpu", enabled=True)
    load_checkpoint(tmp_path / "cpu.pt", _model(ds), None, {"a": 1}, s3)
    assert s3.get_scale() == 65536.0


def test_train_epochs_uses_the_given_scaler_and_shuffle(ds):
    cfg = _cfg(shuffle=True)
    s = torch.amp.GradScaler("cpu", init_scale=4.0, enabled=True)
    a, b = _model(ds), _model(ds)
    train_epochs(a, make_optimizer(a, cfg), ds.train_x[:64], ds.train_y[:64], cfg=cfg, norm=_norm(ds),
                 device="cpu", generator=generator(0), shuffle=False, scaler=s)
    assert s._scale is not None  # this scaler stepped the optimizer
    cfg0 = _cfg(shuffle=False)
    train_epochs(b, make_optimizer(b, cfg0), ds.train_x[:64], ds.train_y[:64], cfg=cfg0, norm=_norm(ds),
                 device="cpu", generator=generator(0))
    # shuffle=False overrides cfg.shuffle: the same updates as an unshuffled config (scale 4 is exact)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(pa, pb, atol=1e-5)
