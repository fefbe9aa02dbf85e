"""The instance-axis TMS engine (toy/models, toy/data, toy/train): data statistics, hand gradients against autograd, training against
torch.optim.Adam, instance independence, and two results of Elhage et al. (2022) reproduced."""
import math
import time

import pytest
import torch
from scipy import stats

from superlens.device import generator, run_threaded
from superlens.measures.dimensionality import feature_dimensionality, feature_geometry, geometry_classes
from superlens.toy.data import _uniform24, fill_tms_batch, sample_tms
from superlens.toy.models import TMSParams, importance_decay, init_tms, tms_forward, tms_loss
from superlens.toy.train import iter_tms_batches, tms_grads, train_tms

torch.set_num_threads(1)


def test_forward_is_relu_wtw_x_plus_b():
    g = torch.Generator().manual_seed(0)
    W, b = torch.randn(2, 3, 5, generator=g), torch.randn(2, 5, generator=g)
    x = torch.rand(2, 4, 5, generator=g)
    out = tms_forward(TMSParams(W, b), x)
    for i in range(2):
        torch.testing.assert_close(out[i], torch.relu(x[i] @ W[i].T @ W[i] + b[i]))


def test_init_is_per_instance_xavier_normal():
    params = init_tms(60, 20, [generator(1), generator(2)])
    lone = init_tms(60, 20, [generator(2)])
    assert torch.equal(params.W[1], lone.W[0]) and not torch.equal(params.W[0], params.W[1])
    assert torch.equal(params.b, torch.zeros(2, 60))
    # std sqrt(2 / (m + n)) = 0.158; sd of a 1,200-sample std is ~2 %, so 10 % is ~5 sd
    assert float(params.W[0].std()) == pytest.approx(math.sqrt(2 / 80), rel=0.1)


def test_importance_decay_closed_form():
    torch.testing.assert_close(importance_decay(4, 0.5), torch.tensor([1.0, 0.5, 0.25, 0.125]))


@pytest.mark.parametrize("p", [[0.6, 0.6, 0.6, 0.6, 0.6, 0.6],        # dense draw
                               [0.05] * 6,                            # geometric gaps
                               [0.0, 0.01, 0.05, 0.1, 0.2, 0.2],      # dense at p_max = DENSE_P, a p = 0 feature
                               [0.0, 0.01, 0.05, 0.1, 0.15, 0.15],    # gaps + thinning, a p = 0 feature
                               [0.0, 0.3, 0.5, 0.8, 1.0, 1.0]])       # dense with p = 0 and p = 1
def test_sampler_frequency_and_uniform_values(p):
    B = 20_000
    x = torch.empty(B, 6)
    fill_tms_batch(x, generator(5), torch.tensor(p))
    active = x > 0
    for j, pj in enumerate(p):
        k = int(active[:, j].sum())
        # binomial count: within 5 sd of B p (exactly 0 or B at p = 0 or 1)
        assert abs(k - B * pj) <= 5 * math.sqrt(B * pj * (1 - pj)) + 1e-9, (j, k, B * pj)
    vals = x[active].double().numpy()
    assert vals.min() > 0 and vals.max() <= 1
    assert stats.kstest(vals, "uniform").pvalue > 1e-3  # values U(0, 1)


def test_uniform24_bits_are_fair():
    """Each of the 24 bits of every draw (both 32-bit halves of the int64 draws) is 1 with
    probability 1/2, and the draws cover [0, 2^24)."""
    k = _uniform24(200_001, generator(7), "cpu")
    assert k.shape == (200_001,) and k.dtype == torch.int32
    assert int(k.min()) >= 0 and int(k.max()) < 2**24
    for half in (k[0::2], k[1::2]):  # low and high words of the int64 draws
        freq = torch.stack([((half >> b) & 1).double().mean() for b in range(24)])
        sd = math.sqrt(0.25 / half.numel())
        assert float((freq - 0.5).abs().max()) < 5 * sd, freq
    # U{0..2^24-1} scaled by 2^-24 against U(0, 1): Kolmogorov-Smirnov
    assert stats.kstest(k[:20_000].double().numpy() / 2**24, "uniform").pvalue > 1e-3


def test_sample_tms_matches_per_instance_streams():
    gens = [generator(3), generator(4)]
    x = sample_tms(gens, 64, 7, [0.1, 0.5])
    x1 = next(iter_tms_batches(generator(4), 0.5, 64, 7, steps=1))
    assert torch.equal(x[1], x1)


def _autograd(params: TMSParams, x, imp):
    W = params.W.detach().clone().requires_grad_(True)
    b = params.b.detach().clone().requires_grad_(True)
    L = tms_loss(TMSParams(W, b), x, imp)
    L.sum().backward()
    return {"W": W.grad, "b": b.grad}, L.detach()


def test_grads_match_autograd():
    gens = [generator(s) for s in (1, 2, 3)]
    params = init_tms(9, 4, gens, dtype=torch.float64)
    params.b.normal_(0, 0.3, generator=gens[0])  # both signs of pre-activation in play
    x = sample_tms(gens, 128, 9, [0.05, 0.3, 1.0], dtype=torch.float64)
    imp = torch.stack([importance_decay(9, 0.8), torch.ones(9), torch.linspace(0.1, 1, 9)]).double()
    ref, ref_loss = _autograd(params, x, imp)
    grads, loss = tms_grads(params, x, imp, want_loss=True)
    for k in ref:
        torch.testing.assert_close(grads[k], ref[k], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(loss, ref_loss)


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_training_matches_torch_adam(schedule):
    """Same init and batches through autograd, torch.optim.Adam (+ CosineAnnealingLR), one instance at
    a time, with per-instance lr, importance and (per-feature) probability."""
    n, m, B, steps = 6, 2, 64, 25
    seeds, lrs = [11, 12], [1e-2, 3e-3]
    imp = torch.stack([importance_decay(n, 0.7), torch.ones(n)])
    P = torch.tensor([[0.1] * n, [0.02, 0.05, 0.1, 0.2, 0.3, 0.5]])
    params, log = train_tms(n, m, importance=imp, feature_probability=P, steps=steps, batch_size=B,
                            lr=lrs, seeds=seeds, schedule=schedule, log_every=10)
    assert log["steps"] == [0, 10, 20, 24] and len(log["loss"][0]) == 2
    for i, s in enumerate(seeds):
        g = generator(s)
        ref = init_tms(n, m, [g])
        W = ref.W.clone().requires_grad_(True)
        b = ref.b.clone().requires_grad_(True)
        opt = torch.optim.Adam([W, b], lr=lrs[i])
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps) if schedule == "cosine" else None
        for t, x in enumerate(iter_tms_batches(g, P[i], B, n, steps)):
            L = tms_loss(TMSParams(W, b), x[None], imp[i:i + 1])
            if t in log["steps"]:
                assert log["loss"][log["steps"].index(t)][i] == pytest.approx(float(L.detach()), rel=1e-5)
            opt.zero_grad()
            L.sum().backward()
            opt.step()
            if sched is not None:
                sched.step()
        torch.testing.assert_close(params.W[i], W.detach()[0], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(params.b[i], b.detach()[0], rtol=1e-4, atol=1e-5)


def test_instance_equals_lone_run_whatever_the_chunking():
    kw = dict(importance=torch.ones(3, 8), feature_probability=torch.tensor([0.5, 0.05, 0.01]), steps=12,
              batch_size=32, lr=[1e-2, 2e-2, 5e-3])
    seeds = [4, 5, 6]
    a, _ = train_tms(8, 3, seeds=seeds, chunk=3, **kw)
    b, _ = train_tms(8, 3, seeds=seeds, chunk=1, **kw)
    lone, _ = train_tms(8, 3, seeds=[5], importance=torch.ones(1, 8), feature_probability=[0.05], steps=12,
                        batch_size=32, lr=[2e-2])
    torch.testing.assert_close(a.W, b.W, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(a.W[1], lone.W[0], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(a.b[1], lone.b[0], rtol=1e-6, atol=1e-7)


def test_worker_threads_give_the_serial_result_and_restore_the_thread_count():
    """With 2 torch threads, chunks train on 2 worker threads (each single-threaded); the weights
    must equal a 1-thread run with the same chunking bit for bit, and the thread count come back."""
    kw = dict(feature_probability=torch.tensor([0.5, 0.05, 0.01, 1.0]), steps=15, batch_size=32,
              lr=1e-2, seeds=[1, 2, 3, 4], chunk=1, log_every=5)
    serial, log1 = train_tms(10, 3, **kw)
    torch.set_num_threads(2)
    try:
        threaded, log2 = train_tms(10, 3, **kw)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
    assert torch.equal(serial.W, threaded.W) and torch.equal(serial.b, threaded.b)
    assert log1["loss"] == log2["loss"]


def test_worker_error_reaches_the_caller():
    done = []

    def fn(i):
        time.sleep(0.005)  # long enough that the other worker cannot run through the queue meanwhile
        if i == 3:
            raise ValueError("chunk 3 failed")
        done.append(i)

    torch.set_num_threads(2)
    try:
        with pytest.raises(ValueError, match="chunk 3"):
            run_threaded(fn, list(range(50)), workers=2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
    assert 3 not in done and len(done) < 50  # the others stop taking chunks


def test_one_dimensional_probability_is_per_instance_even_when_I_equals_n():
    # 3 instances of 3 features, p = [1, 0, 0] per instance: instances 1 and 2 see x = 0, and with
    # b = 0 their step-0 loss is exactly 0; read per feature, every instance would see feature 0
    _, log = train_tms(3, 2, feature_probability=[1.0, 0.0, 0.0], steps=1, batch_size=16, seeds=[0, 1, 2])
    first = log["loss"][0]
    assert first[0] > 0 and first[1] == 0.0 and first[2] == 0.0


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="feature_probability"):
        train_tms(4, 2, feature_probability=1.5, steps=1, seeds=[0])
    with pytest.raises(ValueError, match="lr"):
        train_tms(4, 2, lr=[1e-3, 1e-3], steps=1, seeds=[0])
    with pytest.raises(ValueError, match="importance"):
        train_tms(4, 2, importance=torch.ones(3), steps=1, seeds=[0])
    with pytest.raises(ValueError, match="schedule"):
        train_tms(4, 2, schedule="linear", steps=1, seeds=[0])


def test_five_features_in_two_dimensions_form_a_pentagon():
    """Elhage et al. Fig. 2 / ARENA: at high sparsity and equal importance, 5 features in 2-D sit on a
    regular pentagon: norms ~1, neighbouring angles 72 degrees, D_i = 2/5."""
    I = 6
    params, log = train_tms(5, 2, feature_probability=0.03, steps=1000, batch_size=1024, lr=1e-2,
                            schedule="cosine", seeds=list(range(I)))
    W = params.W  # [I, 2, 5]
    ang = torch.atan2(W[:, 1], W[:, 0]).sort(1).values
    gaps = torch.diff(torch.cat([ang, ang[:, :1] + 2 * math.pi], 1), dim=1) * 180 / math.pi
    norms = W.norm(dim=1)
    D = feature_dimensionality(W)
    ok = [bool(((norms[i] > 0.85) & (norms[i] < 1.3)).all() and (gaps[i] - 72).abs().max() < 5
               and geometry_classes(D[i], tol=0.02) == ["2/5: pentagon"] * 5
               and feature_geometry(W[i]) == ["2/5: pentagon"] * 5) for i in range(I)]
    assert sum(ok) >= I - 1, (norms, gaps, D)
    assert log["loss"][-1][0] < log["loss"][0][0]


def test_two_features_one_neuron_phase_change():
    """Elhage et al.'s 2 -> 1 model, feature 2 at importance 0.2: dense data store only feature 1
    (W_2 ~ 0); sparse data store both, antipodally (W_2 ~ -W_1, |W| ~ 1). At p = 0.03 a minority
    of seeds stop in the local minimum that drops feature 2 (5 and 6 in 60 seeds at this lr, measured
    with the uniform_ sampler and with the 64-bit-draw one), so "most": at least 4 of 6 (at a 10 %
    rate, 3 or more of 6 fail with probability ~1.6 %)."""
    k = 6
    P = torch.tensor([1.0] * k + [0.03] * k)
    params, _ = train_tms(2, 1, importance=torch.tensor([1.0, 0.2]), feature_probability=P, steps=1500,
                          batch_size=1024, lr=3e-2, schedule="cosine", seeds=list(range(2 * k)))
    w = params.W[:, 0, :]  # [I, 2]
    dense = [abs(abs(float(w[i, 0])) - 1) < 0.1 and abs(float(w[i, 1])) < 0.1 for i in range(k)]
    sparse = [abs(abs(float(w[i, 0])) - 1) < 0.1 and abs(float(w[i, 0] + w[i, 1])) < 0.1
              and float(w[i, 0] * w[i, 1]) < 0 for i in range(k, 2 * k)]
    assert sum(dense) >= k - 1, w[:k]
    assert sum(sparse) >= k - 2, w[k:]
    D = feature_dimensionality(params.W)
    assert geometry_classes(D[k + sparse.index(True)]) == ["1/2: antipodal pair"] * 2
    assert geometry_classes(D[dense.index(True)]) == ["1: dedicated", "0: not represented"]
    assert feature_geometry(params.W[k + sparse.index(True)]) == ["1/2: antipodal pair"] * 2
    assert feature_geometry(params.W[dense.index(True)]) == ["1: dedicated", "0: not represented"]


def test_figures_are_written(tmp_path):
    from superlens.report.tms_figures import (
        plot_feature_dimensionality,
        plot_gram_and_norms,
        plot_phase_diagram,
        plot_polygons,
    )

    W = torch.randn(3, 2, 5, generator=torch.Generator().manual_seed(0))
    W[0, :, 4] = 0  # a dead feature must not break the colouring
    names = [plot_gram_and_norms(W, tmp_path / "gram.png", title="t"),
             plot_polygons(W, tmp_path / "poly.png", titles=["a", "b", "c"]),
             plot_feature_dimensionality(feature_dimensionality(W), [1.0, 10.0, 100.0], tmp_path / "dim.png",
                                         dstar=[0.4, 0.5, 0.9]),
             plot_phase_diagram([0.01, 0.1, 1.0], [0.1, 1.0], [["a", "b", "b"], ["a", "a", "c"]],
                                xlabel="1 - S", ylabel="importance", title="phase",
                                path=tmp_path / "phase.png", boundary=([0.01, 1.0], [0.1, 1.0]))]
    assert names == ["gram.png", "poly.png", "dim.png", "phase.png"]
    for name in names:
        assert (tmp_path / name).stat().st_size > 1000
    with pytest.raises(ValueError, match="classes"):
        plot_phase_diagram([1, 2], [1], [["a"]], xlabel="x", ylabel="y", title="t", path=tmp_path / "bad.png")
    with pytest.raises(ValueError, match="m = 2"):
        plot_polygons(torch.zeros(1, 3, 4), tmp_path / "bad.png")
