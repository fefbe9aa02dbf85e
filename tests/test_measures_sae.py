"""The SAE measure (superlens.measures.sae): closed forms, shapes, and known feature counts."""
import math

import numpy as np
import pytest
import torch

from superlens.measures.sae import (SAEFit, SAERecipe, activation_scale, conv_rows, effective_features,
                                    merge_parallel, sae_measure, sae_stats)

torch.set_num_threads(1)


# ---- F = exp(H(p)) on masses whose p is known
def test_effective_features_closed_forms():
    # uniform over k -> exactly k; one-hot -> 1; all zero -> 0 (no features)
    assert float(effective_features(torch.ones(7))) == pytest.approx(7.0)
    assert float(effective_features(torch.tensor([0.0, 3.0, 0.0]))) == pytest.approx(1.0)
    assert float(effective_features(torch.zeros(4))) == 0.0
    # p = (1/2, 1/4, 1/4): H = 1.5 log 2, F = 2^1.5
    assert float(effective_features(torch.tensor([2.0, 1.0, 1.0]))) == pytest.approx(2 ** 1.5)
    # batched over leading axes, scale-free
    m = torch.tensor([[1.0, 1.0, 0.0], [5.0, 5.0, 5.0]])
    np.testing.assert_allclose(effective_features(m).numpy(), [2.0, 3.0])


def test_sae_stats_on_a_hand_made_identity_sae():
    """W_enc = W_dec = I, b = 0: z = ReLU(x) = x for x >= 0, so p = mean(x) / sum, FVU = 0, L0 is the
    mean count of non-zero entries, and a column that is never positive is a dead latent."""
    x = torch.tensor([[1.0, 0.0, 0.0, 0.0],
                      [0.0, 1.0, 0.0, 0.0],
                      [1.0, 1.0, 0.0, 0.0],
                      [2.0, 0.0, 2.0, 0.0]])
    eye = torch.eye(4)[None]
    fit = SAEFit(eye.clone(), torch.zeros(1, 4), eye.clone(), 1.0, 0, 0, 0.0)
    st = sae_stats(fit, x, chunk=3)  # chunking must not change anything
    # mean z = (1, 0.5, 0.5, 0) -> p = (1/2, 1/4, 1/4, 0) -> F = 2^1.5
    assert float(st["features"][0]) == pytest.approx(2 ** 1.5)
    assert float(st["fvu"][0]) == pytest.approx(0.0, abs=1e-12)
    assert float(st["l0"][0]) == pytest.approx(6 / 4)
    assert float(st["dead_fraction"][0]) == pytest.approx(1 / 4)


def test_merge_parallel_pools_copies_of_one_direction():
    e = torch.eye(3, dtype=torch.float64)
    c = torch.tensor([0.6, 0.8, 0.0], dtype=torch.float64)  # cos with e1 0.6, e2 0.8
    dirs = torch.stack([e[0], e[0], e[1], c, e[2]])
    mass = torch.tensor([1.0, 0.5, 1.0, 0.25, 0.0], dtype=torch.float64)
    pooled = merge_parallel(mass, dirs, 0.95)
    np.testing.assert_allclose(pooled.numpy(), [1.5, 0.0, 1.0, 0.25, 0.0])
    assert float(pooled.sum()) == pytest.approx(float(mass.sum()))
    np.testing.assert_allclose(merge_parallel(mass, dirs, 0.75).numpy(), [1.5, 0.0, 1.25, 0.0, 0.0])
    np.testing.assert_allclose(merge_parallel(mass, dirs, 2.0).numpy(), mass.numpy())
    # two copies of one feature plus one other, equal mass -> F = 2 after pooling, 3 before
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    W_dec = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])[None]
    W_enc = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])[None]
    fit = SAEFit(W_enc, torch.zeros(1, 3), W_dec, 1.0, 0, 0, 0.0)
    st = sae_stats(fit, x, cos_min=0.95)
    assert float(st["features"][0]) == pytest.approx(2.0)
    assert float(st["features_raw"][0]) == pytest.approx(2 ** 1.5)
    assert float(st["fvu"][0]) == pytest.approx(0.0, abs=1e-12)


def test_activation_scale():
    x = torch.tensor([[3.0, 4.0], [0.0, 0.0], [0.0, 0.0], [6.0, 8.0]])
    # non-zero rows have norms 5 and 10: RMS = sqrt((25 + 100) / 2)
    assert activation_scale(x, "nonzero-rms") == pytest.approx(math.sqrt(62.5))
    assert activation_scale(x, "none") == 1.0
    assert activation_scale(torch.zeros(3, 2), "nonzero-rms") == 1.0


# ---- conv_rows
def test_conv_rows_layout_and_subset():
    f = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)  # [n, C, H, W]
    r = conv_rows(f, None)
    assert r.shape == (2 * 4 * 5, 3)
    # row (n, h, w) holds that position's channel vector
    n, h, w = 1, 2, 3
    np.testing.assert_array_equal(r[n * 20 + h * 5 + w].numpy(), f[n, :, h, w].numpy())
    s1, s2 = conv_rows(f, 7, seed=1), conv_rows(f.numpy(), 7, seed=1)
    assert s1.shape == (7, 3)
    np.testing.assert_array_equal(s1.numpy(), s2.numpy())
    # a subset of the rows, each one intact
    rows = {tuple(v) for v in r.tolist()}
    assert all(tuple(v) in rows for v in s1.tolist())
    assert conv_rows(f, 1000).shape == (40, 3)
    with pytest.raises(ValueError, match="fmap"):
        conv_rows(torch.zeros(2, 3, 4), 5)


# ---- the recipe
def test_recipe_validation_cap_and_dict():
    with pytest.raises(ValueError, match="dict_multiple"):
        SAERecipe(dict_multiple=0.5)
    with pytest.raises(ValueError, match="l1"):
        SAERecipe(l1=-1.0)
    with pytest.raises(ValueError, match="decoder"):
        SAERecipe(decoder="free")
    with pytest.raises(ValueError, match="warmup"):
        SAERecipe(warmup=1.0)
    with pytest.raises(ValueError, match="tied"):
        SAERecipe(decoder="tied", sparsity="batchtopk")
    r = SAERecipe()
    assert r.dict_size(5) == round(r.dict_multiple * 5)
    assert r.schedule(5) == (r.steps, r.batch_size)  # tiny layers are never cut
    steps, batch = r.schedule(512)  # a wide layer is cut to the compute cap
    per_row = 3.0 if r.sparsity != "l1" else 10.0  # flop per row / (N D), as SAERecipe.schedule
    assert per_row * steps * batch * 512 * r.dict_size(512) <= r.max_gflop * 1e9 * 1.001
    l1 = SAERecipe(sparsity="l1")
    s1, b1 = l1.schedule(512)
    assert 10.0 * s1 * b1 * 512 * l1.dict_size(512) <= l1.max_gflop * 1e9 * 1.001
    assert batch >= r.min_batch
    d = r.as_dict()
    assert d["l1"] == r.l1 and d["dict_multiple"] == r.dict_multiple and "architecture" in d
    assert SAERecipe(**{k: v for k, v in d.items() if k != "architecture"}) == r  # round trip
    # the learning rate is the recipe's up to lr_width neurons, then falls as 1 / sqrt(width)
    assert r.lr_for(5) == r.lr_for(r.lr_width) == r.lr
    assert r.lr_for(4 * r.lr_width) == pytest.approx(r.lr / 2)


def test_bad_acts():
    with pytest.raises(ValueError, match="acts"):
        sae_measure(torch.zeros(5))
    with pytest.raises(ValueError, match="acts"):
        sae_measure(torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(ValueError, match="seeds"):
        sae_measure(torch.ones(4, 2), seeds=())


# ---- known feature counts
def _sparse_features(k, n_dims, p, rows=6000, seed=0):
    """k orthonormal directions in n_dims, each present with probability p, value U(0, 1)."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n_dims, n_dims, generator=g))
    coef = (torch.rand(rows, k, generator=g) < p).float() * torch.rand(rows, k, generator=g)
    return coef @ q[:k]


def test_orthogonal_sparse_features_are_counted():
    """k = 3 and k = 6 orthogonal sparse features in 8 dims: F near k, and the larger set reads larger
    (a monotone count is what the validation needs)."""
    # the ReLU + L1 recipe as it was frozen before BatchTopK (kept by name, sparsity "l1")
    small = SAERecipe(steps=2000, batch_size=512, sparsity="l1", lr=1e-2, lr_width=20, warmup=0.2)
    m3 = sae_measure(_sparse_features(3, 8, 0.1), small, seeds=(0, 1))
    m6 = sae_measure(_sparse_features(6, 8, 0.1), small, seeds=(0, 1))
    assert 2.5 < m3["sae_features"] < 5.0
    assert 5.0 < m6["sae_features"] < 9.5
    assert m6["sae_features"] > m3["sae_features"] + 1.5
    for m in (m3, m6):
        assert m["sae_fvu"] < 0.2 and 0 <= m["sae_dead_fraction"] < 1
        assert m["sae_features"] <= m["sae_dict_size"]
        assert m["sae_psi"] == pytest.approx(m["sae_features"] / 8)
        assert m["sae_features_over_dict"] == pytest.approx(m["sae_features"] / m["sae_dict_size"])


def test_seeds_reproducible_and_numpy_equals_torch():
    x = _sparse_features(3, 4, 0.2, rows=1000)
    r = SAERecipe(steps=50, batch_size=128)
    a = sae_measure(x, r, seeds=(0, 1))
    b = sae_measure(x.numpy(), r, seeds=(0, 1))
    c = sae_measure(x, r, seeds=(1, 2))
    for k in ("sae_features", "sae_fvu", "sae_l0"):
        assert a[k] == pytest.approx(b[k], rel=1e-6)
    assert a["sae_features"] != c["sae_features"]
    one = sae_measure(x, r, seeds=(0,))
    assert one["sae_features_std"] == 0.0
    # instance i of a batch of seeds equals a lone fit with that seed
    assert sae_measure(x, r, seeds=(1,))["sae_features"] == pytest.approx(
        sae_measure(x, r, seeds=(0, 1))["sae_features"] * 2 - one["sae_features"], rel=1e-5)


def test_eval_rows_subset_gives_nearly_the_same_statistics():
    x = _sparse_features(4, 6, 0.1, rows=6000, seed=3)
    r = SAERecipe(steps=300, batch_size=256)
    full = sae_measure(x, r, seeds=(0,))
    sub = sae_measure(x, SAERecipe(steps=300, batch_size=256, eval_rows=2000), seeds=(0,))
    assert sub["sae_features"] == pytest.approx(full["sae_features"], rel=0.1)
    assert sub["sae_l0"] == pytest.approx(full["sae_l0"], rel=0.15)


def _reference_fit(x, recipe, seed):
    """The same SAE trained with autograd and torch.optim.Adam (same init, minibatches, schedule)."""
    from superlens.device import generator
    from superlens.measures.sae import _BLOCK_ELEMS

    n_rows, n = x.shape
    d = recipe.dict_size(n)
    steps, B = recipe.schedule(n)
    W_dec = torch.empty(d, n).normal_(generator=generator(seed))
    W_dec /= W_dec.norm(dim=1, keepdim=True)
    W_enc = W_dec.T.clone().requires_grad_()
    b = torch.zeros(d, requires_grad=True)
    V = W_dec.clone().requires_grad_()
    opt = torch.optim.Adam([W_enc, b, V], lr=recipe.lr_for(n))
    g = generator(10_007 * seed + 1)
    T = max(1, min(steps, _BLOCK_ELEMS // B))
    live_rows = (x != 0).any(1).nonzero()[:, 0]
    for t in range(steps):
        if t % T == 0:
            if recipe.train_rows == "nonzero":  # uniform among the non-zero rows
                idx = live_rows[torch.empty(T, B, dtype=torch.int64).random_(0, 1 << 40, generator=g)
                                % len(live_rows)]
            else:
                idx = torch.empty(T, B, dtype=torch.int64).random_(0, n_rows, generator=g)
        xb = x[idx[t % T]]
        z = torch.relu(xb @ W_enc + b)
        loss = ((z @ V - xb) ** 2).sum(1).mean() + recipe.l1 * z.sum(1).mean()
        opt.zero_grad()
        loss.backward()
        with torch.no_grad():  # the decoder's gradient off the radial direction, as fit_saes
            V.grad -= (V.grad * V).sum(1, keepdim=True) * V
        for grp in opt.param_groups:
            grp["lr"] = recipe.lr_for(n) * 0.5 * (1 + np.cos(np.pi * t / steps))
        opt.step()
        with torch.no_grad():
            V /= V.norm(dim=1, keepdim=True)
    return W_enc.detach(), b.detach(), V.detach()


@pytest.mark.parametrize("fused", [True, False])
def test_fit_matches_autograd_and_torch_adam(fused, monkeypatch):
    import superlens.measures.sae_parts as parts
    from superlens.measures.sae import fit_saes

    monkeypatch.setattr(parts, "FUSED_ADAM", fused and parts.FUSED_ADAM)
    x = _sparse_features(3, 5, 0.3, rows=500, seed=1)
    r = SAERecipe(steps=40, batch_size=64, dict_multiple=2, sparsity="l1")
    fit = fit_saes(x, r, [4, 5])
    for i, seed in enumerate((4, 5)):
        W_enc, b, V = _reference_fit(x, r, seed)
        torch.testing.assert_close(fit.W_dec[i], V, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(fit.W_enc[i], W_enc, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(fit.b_enc[i], b, rtol=1e-4, atol=1e-5)


def test_tied_decoder_rows_stay_unit_norm():
    """The mass E z_i and the merge assume unit decoder rows; the tied decoder is renormalised too."""
    from superlens.measures.sae import fit_saes

    x = _sparse_features(3, 8, 0.2, rows=2000)
    for decoder in ("tied", "unit"):
        fit = fit_saes(x, SAERecipe(steps=200, batch_size=128, dict_multiple=2, decoder=decoder,
                                    sparsity="l1", progress=False), [0, 1])
        norms = fit.W_dec.norm(dim=2)
        torch.testing.assert_close(norms, torch.ones_like(norms), atol=1e-5, rtol=0)
        if decoder == "tied":
            torch.testing.assert_close(fit.W_enc, fit.W_dec.transpose(1, 2))


def _reference_batchtopk(x, recipe, seed):
    """BatchTopK written with autograd and torch.optim.Adam, the same init, minibatches and
    selection as fit_topk_ (no decoder bias): loss mean ||z V - x||^2."""
    from superlens.device import generator
    from superlens.measures.sae import _BLOCK_ELEMS, _init

    n_rows, n = x.shape
    d, k = recipe.dict_size(n), recipe.k
    kr = min(d, 4 * k)
    W_enc, b, V = (t[0].clone().requires_grad_(True) for t in _init([seed], n, d, "cpu", torch.float32))
    opt = torch.optim.Adam([W_enc, b, V], lr=recipe.lr, betas=(0.9, 0.999), eps=1e-8)
    steps, B = recipe.schedule(n)
    g = generator(10_007 * seed + 1)
    T = max(1, min(steps, _BLOCK_ELEMS // B))
    theta = None
    live_rows = (x != 0).any(1).nonzero()[:, 0]
    for t in range(steps):
        if t % T == 0:
            if recipe.train_rows == "nonzero":  # uniform among the non-zero rows
                idx = live_rows[torch.empty(T, B, dtype=torch.int64).random_(0, 1 << 40, generator=g)
                                % len(live_rows)]
            else:
                idx = torch.empty(T, B, dtype=torch.int64).random_(0, n_rows, generator=g)
        xb = x[idx[t % T]]
        pre = xb @ W_enc + b
        val, ind = pre.topk(kr, dim=1)
        val = val.clamp_min(0)
        live = int((xb != 0).any(1).sum())  # the budget counts the non-zero rows only
        if live == 0:
            val = val * 0.0
        else:
            thr = val.detach().reshape(-1).topk(k * B).values[k * live - 1]
            val = val * (val.detach() >= thr)
            theta = thr if theta is None else 0.99 * theta + 0.01 * thr
        z = torch.zeros(B, d).scatter(1, ind, val)
        loss = ((z @ V - xb) ** 2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        with torch.no_grad():
            V.grad -= (V.grad * V).sum(1, keepdim=True) * V
        for grp in opt.param_groups:
            grp["lr"] = recipe.lr * 0.5 * (1 + np.cos(np.pi * t / steps))
        opt.step()
        with torch.no_grad():
            V /= V.norm(dim=1, keepdim=True)
    return W_enc.detach(), b.detach(), V.detach(), theta


@pytest.mark.parametrize("sparse_zero,train_rows", [(False, "nonzero"), (True, "nonzero"),
                                                     (False, "all")])
def test_batchtopk_fit_matches_autograd(monkeypatch, sparse_zero, train_rows):
    """The hand-written BatchTopK gradients (gathered on the chosen latents, projected per
    contribution, buffers re-zeroed whole or on the touched rows only) equal autograd's, with
    minibatches drawn from the non-zero rows (the recipe) or from all rows."""
    from superlens.measures import sae_topk
    from superlens.measures.sae import fit_saes

    monkeypatch.setattr(sae_topk, "SPARSE_ZERO_ELEMS", 0 if sparse_zero else 1 << 40)

    x = _sparse_features(3, 6, 0.4, rows=500, seed=2)
    assert 0 < int((x == 0).all(1).sum()) < len(x)  # some zero rows: the two draws differ
    r = SAERecipe(steps=30, batch_size=32, dict_multiple=2, k=2, lr=5e-3, progress=False,
                  train_rows=train_rows)
    fit = fit_saes(x, r, [4, 5])
    for i, seed in enumerate((4, 5)):
        W_enc, b, V, theta = _reference_batchtopk(x, r, seed)
        torch.testing.assert_close(fit.W_dec[i], V, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(fit.W_enc[i], W_enc, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(fit.b_enc[i], b, rtol=1e-4, atol=1e-5)
        assert float(fit.threshold[i]) == pytest.approx(float(theta), rel=1e-4)


def test_batchtopk_budget_ignores_zero_rows():
    """Zero rows carry no feature, so they give BatchTopK no latent budget: on a layer whose rows
    are 90 % zero, a non-zero row still gets about k latents (counting every row of the minibatch
    handed each non-zero row the per-row maximum, 4k), and F stays near its value without the
    zero rows."""
    from superlens.measures.sae import sae_measure

    x = _sparse_features(3, 8, 0.5, rows=4000, seed=3)
    nonzero = float((x != 0).any(1).float().mean())
    padded = torch.cat([x, torch.zeros(9 * len(x), 8)])
    r = SAERecipe(steps=1500, batch_size=256, progress=False)
    dense, sparse = sae_measure(x, r, seeds=(0, 1)), sae_measure(padded, r, seeds=(0, 1))
    per_row = sparse["sae_l0"] / (nonzero / 10)
    assert per_row <= 1.5 * r.k, per_row
    assert sparse["sae_features"] == pytest.approx(dense["sae_features"], rel=0.25)


def test_training_draws_only_non_zero_rows():
    """With train_rows "nonzero" (the recipe) the minibatches are drawn among the rows that are not
    all zero, so appending zero rows to a layer leaves every fitted weight exactly as it was; with
    "all" they dilute the minibatches and the fit changes."""
    from superlens.measures.sae import fit_saes
    from superlens.measures.sae_parts import nonzero_rows

    x = _sparse_features(3, 8, 0.3, rows=1000, seed=4)
    assert bool((x == 0).all(1).any())  # x has zero rows of its own: both fits take the same path
    padded = torch.cat([x, torch.zeros(3000, 8)])
    rows, counts = nonzero_rows(torch.stack([padded, padded.flip(0)]))
    n_live = int((x != 0).any(1).sum())
    assert counts.tolist() == [n_live, n_live]
    assert bool((padded[rows[0]] != 0).any(1).all()) and bool((padded.flip(0)[rows[1]] != 0).any(1).all())
    for train_rows, same in (("nonzero", True), ("all", False)):
        r = SAERecipe(steps=100, batch_size=64, dict_multiple=2, progress=False, train_rows=train_rows)
        a, b = fit_saes(x, r, [0]), fit_saes(padded, r, [0])
        assert torch.equal(a.W_dec, b.W_dec) is same, train_rows


def test_tiny_adam_moments_are_zeroed_and_the_fit_is_unchanged(monkeypatch):
    """Every TINY_EVERY steps the fits set Adam moments under TINY to zero, so a dead latent's
    decaying moments never reach the denormal range (where CPU arithmetic is ~100x slower); the
    fitted weights equal a fit that never does it."""
    from superlens.measures import sae_parts
    from superlens.measures.sae import fit_saes, sae_stats

    t = torch.tensor([1e-39, -1e-31, 2e-30, -0.5, 0.0])
    sae_parts.zero_tiny_([t])
    assert t.tolist() == [0.0, 0.0, pytest.approx(2e-30), -0.5, 0.0]
    # a 16x dictionary on 3 features: most latents die early and their moments decay for
    # ~1000 steps (m shrinks 0.9x a step: under TINY after ~650)
    x = _sparse_features(3, 8, 0.3, rows=2000, seed=5)
    r = SAERecipe(steps=1500, batch_size=64, dict_multiple=16, progress=False)
    seen = []
    zero = sae_parts.zero_tiny_
    monkeypatch.setattr(sae_parts, "zero_tiny_",
                        lambda ts: seen.append(sum(int((t_.abs() < sae_parts.TINY).sum()) -
                                                   int((t_ == 0).sum()) for t_ in ts)) or zero(ts))
    swept = fit_saes(x, r, [0, 1])
    assert len(seen) == 1500 // sae_parts.TINY_EVERY and max(seen) > 0  # there were tiny moments
    monkeypatch.setattr(sae_parts, "TINY_EVERY", 10 ** 9)
    plain = fit_saes(x, r, [0, 1])
    torch.testing.assert_close(swept.W_dec, plain.W_dec, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(swept.W_enc, plain.W_enc, rtol=1e-6, atol=1e-7)
    a, b = sae_stats(swept, x), sae_stats(plain, x)
    torch.testing.assert_close(effective_features(a["mass"]), effective_features(b["mass"]),
                               rtol=1e-6, atol=0)


def test_fewest_latents_rule_keeps_k1_only_where_both_fits_reconstruct():
    """fit_measure: a matrix whose fit at k = 2 reaches FVU <= fvu_fewer is fitted again at k = 1,
    and the k = 1 statistics are kept where that fit reaches it too; the others keep k = 2's. Each
    kept set equals the plain fit at that k, value for value."""
    from superlens.measures.planted import PlantedSpec, planted_activations
    from superlens.measures.sae import fit_measure

    one = planted_activations(PlantedSpec(n=8, k=6, active=1.0, seed=0), 3000)[0]  # 1 feature a row
    many = planted_activations(PlantedSpec(n=8, k=24, active=6.0, seed=0), 3000)[0]  # 6 a row
    x = torch.stack([one / activation_scale(one, "nonzero-rms"),
                     many / activation_scale(many, "nonzero-rms")])
    base = SAERecipe(steps=1500, progress=False, fvu_more=0.0, fvu_fewer=0.0)
    plain = {k: fit_measure(x, SAERecipe(steps=1500, progress=False, k=k, fvu_fewer=0.0, fvu_more=0.0), (0, 1))[1]
             for k in (1, 2)}
    assert bool((plain[2]["k"] == 2).all()) and bool((plain[1]["k"] == 1).all())
    fvu = {k: plain[k]["fvu"].view(2, 2).mean(1) for k in (1, 2)}
    # a threshold between the two matrices' k = 1 FVUs: the one-feature rows pass, the dense ones not
    assert float(fvu[1][0]) < float(fvu[1][1]) and float(fvu[2][1]) < float(fvu[1][1])
    tau = float(fvu[1][1] + max(fvu[1][0], fvu[2][1])) / 2
    tau = max(tau, float(fvu[2][0]) + 1e-6)
    assert tau < float(fvu[1][1])
    _, st = fit_measure(x, SAERecipe(steps=1500, progress=False, fvu_more=0.0, fvu_fewer=tau), (0, 1))
    assert st["k"].tolist() == [1.0, 1.0, 2.0, 2.0]
    for key in ("features", "fvu", "l0"):
        torch.testing.assert_close(st[key][:2], plain[1][key][:2])
        torch.testing.assert_close(st[key][2:], plain[2][key][2:])
    # off (fvu_fewer = 0) it is the plain fit at the recipe's k
    _, off = fit_measure(x, base, (0, 1))
    torch.testing.assert_close(off["features"], plain[2]["features"])
    # sae_measure reports the k it used
    assert sae_measure(one, SAERecipe(steps=1500, progress=False, fvu_more=0.0, fvu_fewer=0.99),
                       seeds=(0,))["sae_k"] == 1.0


def test_more_latents_rule_raises_k_only_where_the_fit_leaves_variance():
    """fit_measure: a matrix whose fit at k = 2 leaves FVU > fvu_more is fitted again at k = 3, 4, ...
    up to k_max, keeping the first fit that reaches fvu_more (the k_max fit where none does); a
    matrix whose k = 2 fit reaches it keeps k = 2. Each kept set equals the plain fit at that k."""
    from superlens.measures.planted import PlantedSpec, planted_activations
    from superlens.measures.sae import fit_measure

    one = planted_activations(PlantedSpec(n=8, k=6, active=1.0, seed=0), 3000)[0]  # 1 feature a row
    many = planted_activations(PlantedSpec(n=8, k=24, active=6.0, seed=0), 3000)[0]  # 6 a row
    x = torch.stack([one / activation_scale(one, "nonzero-rms"),
                     many / activation_scale(many, "nonzero-rms")])

    def recipe(**kw):
        return SAERecipe(**{"steps": 1500, "progress": False, "fvu_fewer": 0.0, "fvu_more": 0.0, **kw})

    plain = {k: fit_measure(x, recipe(k=k), (0, 1))[1] for k in (2, 3, 4)}
    fvu = {k: plain[k]["fvu"].view(2, 2).mean(1) for k in plain}
    assert float(fvu[2][0]) < float(fvu[2][1])  # one feature a row reconstructs better at k = 2
    tau = float(max(fvu[2][0], fvu[3][1], fvu[4][1])) + 1e-6  # the dense matrix passes at k = 3
    assert tau < float(fvu[2][1]), fvu  # ... and k = 3 and 4 reconstruct the dense one better
    _, st = fit_measure(x, recipe(fvu_more=tau, k_max=4), (0, 1))
    assert st["k"].tolist() == [2.0, 2.0, 3.0, 3.0]
    for key in ("features", "fvu", "l0"):
        torch.testing.assert_close(st[key][:2], plain[2][key][:2])
        torch.testing.assert_close(st[key][2:], plain[3][key][2:])
    # a threshold no fit reaches: the dense matrix ends at k_max, the other stays at k = 2
    low = float(fvu[2][0]) + 1e-6
    assert low < float(min(fvu[3][1], fvu[4][1])), fvu
    _, top = fit_measure(x, recipe(fvu_more=low, k_max=4), (0, 1))
    assert top["k"].tolist() == [2.0, 2.0, 4.0, 4.0]
    torch.testing.assert_close(top["features"][2:], plain[4]["features"][2:])
    # refused: a more-latents threshold under the fewest-latents one
    with pytest.raises(ValueError, match="fvu_more"):
        SAERecipe(fvu_fewer=0.2, fvu_more=0.1)
