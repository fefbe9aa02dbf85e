"""The toy study's analyses on models whose answers are known by hand or by a closed form."""
import json

import numpy as np
import pytest
import torch
from sklearn.metrics.pairwise import cosine_similarity

from superlens.device import generator
from superlens.toy import theory
from superlens.report.toy_report import summary_rows
from superlens.toy.analysis import (ToyAnalysis, analyze, cross_gain, evaluate, feature_cosines,
                                    interp_curves, isolated_mse, random_direction_cosines,
                                    response_curves, response_grid, response_stats, sparsity_sweep)
from superlens.toy.definitions import METRIC_DEFINITIONS, metric_definition
from superlens.toy.data import eval_chunks, single_feature_batch
from superlens.toy.models import MLPParams, forward, init_mlp, naive_params

torch.set_num_threads(1)
F64 = torch.float64
FAST = dict(sweep_ps=[0.05, 1.0], sweep_samples=2000)


def _scaled_identity(n: int, g: float, instances: int = 1) -> MLPParams:
    """n = h, W_in = I, W_out = g I: y = g ReLU(x), no interference."""
    eye = torch.eye(n, dtype=F64).expand(instances, n, n).clone()
    return MLPParams(eye, g * eye)


def _leaky(n: int, g: float, s: float) -> MLPParams:
    """h = 2n: neurons ReLU(x_i) and ReLU(-x_i); y_i = g ReLU(x_i) - s ReLU(-x_i), i.e. slope g on x > 0
    and slope s on x < 0 (a hand-built negative residual), no interference."""
    eye = torch.eye(n, dtype=F64)
    W_in = torch.cat([eye, -eye])[None]  # [1, 2n, n]
    W_out = torch.cat([g * eye, -s * eye], 1)[None]  # [1, n, 2n]
    return MLPParams(W_in, W_out)


def _random(n=12, h=4, seeds=(0, 1), bias=False) -> MLPParams:
    return init_mlp(n, h, [generator(s) for s in seeds], bias=bias, dtype=F64)


# ----------------------------------------------------------------------------- naive and exact models


def test_naive_model_per_feature_mse():
    n, h, p = 20, 5, 0.1
    ev = evaluate(naive_params(n, h, dtype=F64), p=p, samples=20_000, seed=0)
    mse = ev["mse_active"][0].numpy()
    assert np.all(mse[:h] == 0)  # the kept features are computed exactly
    # ignored: E[ReLU(x)^2] = 1/6; ~2,000 active samples per feature, sd of the estimate ~0.006
    assert np.allclose(mse[h:], 1 / 6, atol=0.03)
    assert mse[h:].mean() == pytest.approx(1 / 6, abs=0.008)
    assert ev["active_count"].sum().item() == pytest.approx(20_000 * n * p, rel=0.03)
    # Lq losses against the closed form
    for j, q in enumerate((2.0, 4.0)):
        assert ev["lq"][0, j].item() == pytest.approx(theory.naive_lq_loss(n, h, p, q), rel=0.05)


def test_identity_model_is_exact():
    a = analyze(_scaled_identity(10, 1.0), p=0.1, loss_power=4, eval_samples=3000, seed=0, **FAST)
    m = a.metrics()
    assert m["mse_active_mean"] == 0 and m["mse_all_mean"] == 0 and m["isolated_mse_mean"] < 1e-15
    assert np.allclose(a.gain, 1.0) and np.allclose(a.self_gain, 1.0)
    assert np.all(a.cross_gain0 - np.diag(np.diag(a.cross_gain0)) == 0)
    assert m["cross_gain_abs_mean"] == 0 and m["negative_residual_mean"] == 0
    assert m["naive_mse_active_mean"] == 0  # h = n: the naive model is the identity too
    assert m["optimal_gain"] == 1.0 and m["gain_ratio_K_mean"] == 0


def test_orthogonal_embedding_has_no_interference():
    # n = 3 features in h = 6 neurons along orthonormal columns with disjoint non-negative supports
    # (then ReLU(t w_i) = t w_i for t > 0, so W_out = W_in^T returns t e_i exactly); shuffled neurons.
    # (Orthonormal columns with mixed signs would not do: the hidden ReLU clips their negative part.)
    W = torch.zeros(6, 3, dtype=F64)
    W[[0, 1], 0] = 1 / np.sqrt(2)
    W[[2, 3, 4], 1] = 1 / np.sqrt(3)
    W[5, 2] = 1.0
    W = W[torch.randperm(6, generator=generator(0))]
    assert torch.allclose(W.T @ W, torch.eye(3, dtype=F64))
    P = MLPParams(W[None], W.T[None].clone())
    G = cross_gain(P)[0]
    assert torch.allclose(G, torch.eye(3, dtype=F64), atol=1e-15)
    t = response_grid(dtype=F64)
    assert isolated_mse(t, response_curves(P, t))["total"].abs().max() < 1e-15
    a = analyze(P, p=0.3, loss_power=4, eval_samples=3000, seed=1, **FAST)
    assert a.metrics()["mse_active_mean"] < 1e-25
    assert np.allclose(a.sweep_mse, 0, atol=1e-25)


def test_hand_built_gain():
    g, n = 0.6, 6
    a = analyze(_scaled_identity(n, g), p=0.1, loss_power=4, eval_samples=5000, seed=2, **FAST)
    m = a.metrics()
    assert np.allclose(a.gain, g) and np.allclose(a.weff_diag, g)
    assert np.allclose(a.negative_residual, 0) and np.allclose(a.gain_intercept, 0, atol=1e-12)
    # isolated MSE (1 - g)^2 / 6 = 0.02667, exact by Simpson's rule (the error is piecewise quadratic)
    assert np.allclose(a.isolated_mse, (1 - g) ** 2 / 6, rtol=1e-12)
    assert m["attenuation_mse_pure_gain"] == pytest.approx((1 - g) ** 2 / 6)
    # no interference: training MSE is the isolated MSE up to sampling noise, at every p
    assert m["mse_active_mean"] == pytest.approx((1 - g) ** 2 / 6, rel=0.05)
    assert np.allclose(a.sweep_mse, (1 - g) ** 2 / 6, rtol=0.1)
    # K = 0 -> gamma* = 1; the line search finds c = 1/g (then c g = 1 removes all error)
    assert m["gain_ratio_K_mean"] == 0 and m["optimal_gain"] == 1.0
    assert m["line_search_best_scale"] == pytest.approx(1 / g, abs=0.003)
    assert m["optimal_gain_line_search"] == pytest.approx(1.0, abs=0.002)


def test_hand_built_negative_residual_and_ablation():
    g, s, n = 0.5, 0.2, 5
    P = _leaky(n, g, s)
    a = analyze(P, p=0.2, loss_power=4, eval_samples=4000, seed=3, **FAST)
    m = a.metrics()
    # W_eff = g I + s I: its diagonal is not the slope, and the pure-gain error at it differs
    assert np.allclose(a.weff_diag, g + s)
    assert m["attenuation_mse_pure_gain_weff"] == pytest.approx((1 - g - s) ** 2 / 6)
    assert m["attenuation_mse_pure_gain"] == pytest.approx((1 - g) ** 2 / 6)
    # single feature, x > 0: no leak (K = 0), so the best scale makes the gain 1; adding x < 0 (where
    # y = s x) the loss is (1 - γ)^4 + (s/g)^4 γ^4 per |x|^4: γ* = 1 / (1 + (s/g)^(4/3))
    assert m["optimal_gain_line_search_single"] == pytest.approx(1.0, abs=0.002)
    assert m["optimal_gain_line_search_isolated"] == pytest.approx(
        theory.optimal_gain((s / g) ** 4, 4.0), abs=0.002)
    t = response_grid(dtype=F64)
    # response on t < 0 is s t: the residual is s times the grid's mean negative t (-0.5005)
    assert np.allclose(a.negative_residual, s * t[t < 0].mean().item())
    assert np.allclose(a.value_at_minus1, -s)
    assert np.allclose(a.gain, g)
    assert np.allclose(a.isolated_mse, theory.attenuated_isolated_mse(g, s), rtol=1e-12)
    assert np.allclose(a.isolated_mse_negative, s**2 / 6, rtol=1e-12)
    # removing the residual leaves the positive-side error only, in isolation and on the data
    assert np.allclose(a.ablated_isolated_mse, (1 - g) ** 2 / 6, rtol=1e-12)
    assert m["residual_ablation_training_mse_ablated"] == pytest.approx((1 - g) ** 2 / 6, rel=0.05)
    # there is no interference to reduce: the part stays ~0 (sampling noise), so the residual's
    # isolated cost is not paid back
    assert abs(m["residual_ablation_interference_increase"]) < 1e-3
    assert m["negative_residual_pays_for_itself"] is False
    assert m["negative_residual_reduces_interference"] == (m["residual_ablation_interference_increase"] > 0)


def test_ablation_removes_exactly_the_negative_self_response():
    P = _random(seeds=(4,))
    t = response_grid(dtype=F64)
    curves = response_curves(P, t)
    s = (curves - curves[..., 1000:1001]) * (t < 0)
    # at grid values interpolation returns the curve itself; half-way it averages the two nodes
    cols = torch.tensor([0, 3, 7, 7])
    vals = torch.tensor([-1.0, -0.25, -0.001, -0.0005], dtype=F64)
    got = interp_curves(s, cols, vals)[0]
    assert torch.allclose(got[:3], s[0, cols[:3], torch.tensor([0, 750, 999])], atol=1e-12)
    assert got[3].item() == pytest.approx(0.5 * (s[0, 7, 999] + s[0, 7, 1000]).item())
    # the evaluator's ablated score equals a direct computation of y - s(x) on x < 0
    ev = evaluate(P, p=0.5, samples=300, seed=0, negative_correction=s, chunk=100)
    num = torch.zeros(12, dtype=F64)
    cnt = torch.zeros(12, dtype=F64)
    for x in eval_chunks(12, 0.5, 300, 0, chunk=100, dtype=F64):
        y = forward(P, x)[0]
        x0 = x[0]
        for k in range(12):  # piecewise-linear s: np.interp on the grid is the reference
            y[:, k] -= torch.from_numpy(np.interp(x0[:, k].numpy(), t.numpy(), s[0, k].numpy()))
        num += ((y - torch.relu(x0)) ** 2 * (x0 != 0)).sum(0)
        cnt += (x0 != 0).sum(0)
    assert torch.allclose(ev["mse_active"][0], num / cnt, atol=1e-12)


# ----------------------------------------------------------------------------- building blocks


def test_response_curves_match_forward_with_bias():
    P = _random(n=7, h=3, seeds=(5, 6), bias=True)
    t = response_grid(9, dtype=F64)
    x = single_feature_batch(7, t)  # [n V, n]
    y = forward(P, x.expand(2, -1, -1))  # [I, n V, n]
    self_ = y.reshape(2, 7, 9, 7).diagonal(dim1=1, dim2=3).permute(0, 2, 1)  # [I, n, V]
    assert torch.allclose(response_curves(P, t), self_, atol=1e-12)


def test_cross_gain_is_the_single_feature_output_minus_baseline():
    P = _random(n=6, h=3, seeds=(7,), bias=True)
    eye = torch.eye(6, dtype=F64)
    y0 = forward(P, torch.zeros(1, 1, 6, dtype=F64))[0, 0]
    for sign in (1.0, -1.0):
        ref = (forward(P, sign * eye[None])[0] - y0).T  # row j: output j; column i: input i
        assert torch.allclose(cross_gain(P, sign)[0], ref, atol=1e-12)


def test_gain_is_least_squares_slope():
    # an affine positive side with intercept: y = 0.3 + 0.7 t on t > 0 -> slope 0.7, intercept 0.3
    t = response_grid(101, dtype=F64)
    curves = torch.where(t > 0, 0.3 + 0.7 * t, -0.1 * t)[None, None]
    st = response_stats(t, curves)
    assert st["gain"].item() == pytest.approx(0.7) and st["intercept"].item() == pytest.approx(0.3)
    assert st["negative_residual"].item() == pytest.approx(-0.1 * t[t < 0].mean().item())
    assert st["value_at_minus1"].item() == pytest.approx(0.1)


def test_feature_cosines_match_sklearn_and_guard_zero_columns():
    W = torch.randn(2, 5, 8, generator=generator(8), dtype=F64)
    W[1, :, 3] = 0.0
    cos, zero = feature_cosines(W)
    ref = cosine_similarity(W[0].T.numpy())
    assert np.allclose(cos[0].numpy(), ref)
    assert zero.tolist() == [[False] * 8, [False, False, False, True, False, False, False, False]]
    assert torch.isfinite(cos).all() and (cos[1, 3] == 0).all() and (cos[1, :, 3] == 0).all()
    P = MLPParams(W, W.transpose(1, 2).clone())
    a = analyze(P, p=0.2, loss_power=4, eval_samples=1000, seed=0, **FAST)
    m = a.metrics()
    assert m["zero_norm_features"] == 0.5  # one dead column in one of two instances
    assert m["abs_cos_mean"] is not None
    # the dead feature has zero self-gain, so K = inf; it survives the JSON round trip
    assert np.isinf(a.gain_ratio_K[1, 3]) and m["gain_ratio_K_mean"] is None
    b = ToyAnalysis.from_dict(json.loads(json.dumps(a.to_dict(), allow_nan=False)))
    assert np.array_equal(b.gain_ratio_K, a.gain_ratio_K)


def test_random_direction_cosines_match_closed_form():
    c = random_direction_cosines(100, 10, 20, seed=0)
    assert c.shape == (20 * 4950,)
    assert c.abs().mean().item() == pytest.approx(theory.random_abs_cos_mean(10), abs=4e-3)


@pytest.mark.parametrize("q", [2.0, 4.0])
def test_single_feature_line_search_matches_the_closed_form(q):
    # n = h = 8, W_in = I, W_out circulant (self-gain 0.5, leaks 0.3 and -0.2 into two other outputs):
    # every feature has the same self-gain and the same K, so the single-active-feature loss summed
    # over features is n [(1 - γ)^q + K γ^q] with γ = c g, minimised exactly at
    # γ* = 1/(1 + K^(1/(q-1)))
    n, g, e1, e2 = 8, 0.5, 0.3, -0.2
    eye = torch.eye(n, dtype=F64)
    W_out = g * eye + e1 * torch.roll(eye, 1, 0) + e2 * torch.roll(eye, 3, 0)
    P = MLPParams(eye[None].clone(), W_out[None])
    a = analyze(P, p=0.3, loss_power=q, eval_samples=2000, seed=0, **FAST)
    m = a.metrics()
    K = (abs(e1) ** q + abs(e2) ** q) / g**q
    assert m["gain_ratio_K_mean"] == pytest.approx(K) and m["gain_mean"] == pytest.approx(g)
    gamma = theory.optimal_gain(K, q)
    assert 0.6 < gamma < 0.7 and m["optimal_gain"] == pytest.approx(gamma)
    # the fine grid's step in c is 0.0025, i.e. 0.00125 in γ
    assert m["optimal_gain_line_search_single"] == pytest.approx(gamma, abs=0.0015)
    assert m["line_search_single_at_edge"] == 0
    # W_in = I: negative inputs give exactly 0 output, a constant loss, so U(-1, 1) has the same optimum
    assert m["optimal_gain_line_search_isolated"] == pytest.approx(gamma, abs=0.0015)
    # the training distribution has co-active features: its optimum is a different number
    assert abs(m["optimal_gain_line_search"] - gamma) > 0.005


def test_sparsity_sweep_agrees_with_the_evaluator_at_the_training_p():
    P = _random(n=12, h=4, seeds=(12,))
    ev = evaluate(P, p=0.1, samples=30_000, seed=0)
    sw = sparsity_sweep(P, [0.1], samples=30_000, seed=1)
    # both estimate the active-conditioned MSE at p = 0.1 (independent samples, ~1 % noise)
    assert sw[0, 0].item() == pytest.approx(ev["mse_active"][0].mean().item(), rel=0.05)
    naive = sparsity_sweep(naive_params(12, 4, dtype=F64), [0.001, 1.0], samples=12_000, seed=2)
    assert np.allclose(naive.numpy(), 8 / 12 / 6, rtol=0.08)  # p-independent (n - h)/n/6


# ----------------------------------------------------------------------------- the record


def test_batched_instances_equal_each_alone():
    P = _random(n=12, h=4, seeds=(13, 14))
    kw = dict(p=0.05, loss_power=4, eval_samples=3000, seed=5, **FAST)
    both = analyze(P, **kw)
    for i in range(2):
        one = analyze(P.select(i), **kw)
        for name in ("mse_active", "gain", "negative_residual", "isolated_mse", "weff_diag",
                     "interference_rms", "gain_ratio_K", "line_search_best_scale", "sweep_mse",
                     "ablated_mse_active", "lq_trained", "abs_cos_mean"):
            assert np.allclose(getattr(both, name)[i], getattr(one, name)[0], rtol=1e-9, atol=1e-14), name
    assert np.allclose(both.naive_mse_active, one.naive_mse_active)


def test_metrics_keys_definitions_and_round_trip():
    P, L2 = _random(seeds=(15, 16)), _random(seeds=(17, 18))
    a = analyze(P, p=0.1, loss_power=4, eval_samples=2000, seed=0, l2_params=L2, **FAST)
    m = a.metrics()
    required = ["mse_active_mean", "mse_active_min", "mse_active_max", "mse_all_mean",
                "naive_mse_active_mean", "naive_mse_active_theory", "gain_mean", "gain_std",
                "negative_residual_mean", "weff_diag_mean", "weff_diag_std", "abs_cos_mean",
                "isolated_mse_mean", "interference_share", "optimal_gain", "l2_trained_gain_mean",
                "l2_trained_mse_active_mean", "sparsity_sweep", "optimal_gain_line_search",
                "abs_cos_random_theory", "welch_bound", "attenuation_share_measured",
                "attenuation_share_pure_gain", "l4_naive_over_learned", "l2_naive_over_learned",
                "mse_improvement_over_naive", "negative_residual_reduces_interference",
                "gain_mean_std", "weff_diag_mean_std"]
    assert not [k for k in required if k not in m]
    assert not [k for k in m if not metric_definition(k)]
    assert all(k in METRIC_DEFINITIONS for k in m)
    assert m["interference_share"] == pytest.approx(1 - m["attenuation_share_measured"])
    assert m["gain_std"] == pytest.approx(a.gain.std(1).mean())  # over features, not instances
    assert m["gain_mean_std"] == pytest.approx(a.gain.mean(1).std())
    assert [d["p"] for d in m["sparsity_sweep"]] == [0.05, 0.1, 1.0]  # training p added
    text = json.dumps(a.to_dict())  # must be JSON-serialisable
    b = ToyAnalysis.from_dict(json.loads(text))
    assert b.metrics() == m
    assert [r["superlens"] for r in summary_rows(b)] == [r["superlens"] for r in summary_rows(a)]
    assert {"quantity", "superlens", "report", "definition"} <= set(summary_rows(a)[0])
    assert m["l2_trained_from_main_model"] is False
    # without L2 models the l2_* keys are null ...
    m4 = analyze(P, p=0.1, loss_power=4, eval_samples=2000, seed=0, **FAST).metrics()
    assert m4["l2_trained_gain_mean"] is None and m4["l2_trained_mse_active_mean"] is None
    assert m4["l2_trained_from_main_model"] is None
    # ... unless the models are L2-trained themselves: then the l2_* keys are theirs, flagged
    m0 = analyze(P, p=0.1, loss_power=2, eval_samples=2000, seed=0, **FAST).metrics()
    assert m0["l2_trained_from_main_model"] is True
    assert m0["l2_trained_gain_mean"] == m0["gain_mean"]
    assert m0["l2_trained_mse_active_mean"] == m0["mse_active_mean"]
    assert m0["l2_trained_l2_loss"] == m0["l2_loss_learned"]
    assert m0["lq_naive_over_learned"] == pytest.approx(m0["l2_naive_over_learned"])


def test_bad_arguments():
    with pytest.raises(ValueError, match="p = 0"):
        analyze(_random(), p=0.0, loss_power=4, eval_samples=100, seed=0)
    with pytest.raises(ValueError, match="1 mod 4"):
        response_grid(2000)
