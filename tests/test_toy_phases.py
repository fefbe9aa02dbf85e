"""The one strategy/phase rule (superlens.toy.phases), pinned on hand-made models: the single-run
report and the sweep name each model by it."""
import numpy as np
import pytest
import torch

from superlens.toy.analysis import evaluate, response_curves, response_grid, response_stats
from superlens.toy.models import MLPParams, naive_params
from superlens.toy.phases import (GAIN_IGNORED, cc_phase, cc_phases, majority, strategy_stats,
                                  tms_phase)

torch.set_num_threads(1)
N, H = 20, 5


def _diag(gains) -> MLPParams:
    """y_i = g_i ReLU(x_i): one neuron per feature (W_in = I, W_out = diag(g)), so feature i's gain is
    exactly g_i and its active error (1 - g_i)^2 / 6, with no interference."""
    g = torch.as_tensor(gains, dtype=torch.float32)
    n = g.shape[0]
    return MLPParams(torch.eye(n)[None], torch.diag(g)[None])


def _measured(params: MLPParams) -> tuple[np.ndarray, np.ndarray]:
    """The per-feature gain and active-conditioned MSE as the analyses measure them: [n], [n]."""
    t = response_grid(401)
    gains = response_stats(t, response_curves(params, t))["gain"][0].double().numpy()
    mse = evaluate(params, p=0.05, samples=20_000, seed=0)["mse_active"][0].numpy()
    return gains, mse


def _phase(params: MLPParams, h: int = H) -> str:
    return cc_phase(*_measured(params), h)


def test_hand_made_models_get_their_names():
    # the naive model: h features computed exactly, the rest ignored
    assert _phase(naive_params(N, H, 1)) == "naive"
    # uniform attenuation: every feature at one gain 0.4, errors equal
    assert _phase(_diag(np.full(N, 0.4))) == "attenuate-all"
    # every feature at full gain (enough neurons): nothing compressed
    assert _phase(_diag(np.ones(N)), h=N) == "all-dedicated"
    # ignores some: 6 of 20 features dropped, the rest at gain 0.5, so the dropped ones' error (1/6)
    # is 4x the others' ((1 - 0.5)^2 / 6)
    assert _phase(_diag(np.r_[np.zeros(6), np.full(N - 6, 0.5)])) == "ignore-some"
    # more features kept at full gain than there are neurons: not naive, but ignoring some
    assert _phase(_diag(np.r_[np.ones(10), np.zeros(N - 10)])) == "ignore-some"
    # an L2-trained-like spread: a third of the features dropped, the rest at low, uneven gains
    # (0.06 - 0.4): their errors are not split from the dropped ones'
    l2_like = np.r_[np.zeros(7), np.linspace(0.06, 0.4, N - 7)]
    assert _phase(_diag(l2_like)) == "mixed"
    # none dropped but gains far from uniform
    assert _phase(_diag(np.linspace(0.1, 0.9, N))) == "mixed"


def test_rule_on_gain_and_error_arrays():
    flat = np.full(N, 0.5)
    assert cc_phase(np.full(N, 0.95), np.full(N, 1e-4), H) == "all-dedicated"
    assert cc_phase(flat, np.full(N, 0.02), H) == "attenuate-all"
    uneven = np.where(np.arange(N) % 2 == 0, 0.01, 0.05)  # cv of the errors 0.67
    assert cc_phase(flat, uneven, H) == "mixed"  # uniform gains alone are not enough
    gains = np.where(np.arange(N) < 5, 0.0, 1.0)  # 15 kept at full gain
    assert cc_phase(gains, np.where(np.arange(N) < 5, 0.3, 0.01), H) == "ignore-some"
    assert cc_phase(gains, np.where(np.arange(N) < 5, 0.3, 0.01), 15) == "naive"
    # 'ignored' gains whose error is no worse than the rest's: not a clean drop
    assert cc_phase(gains, np.full(N, 0.02), H) == "mixed"
    # a single ignored feature (< 10 %) among uniform ones: mixed; all ignored: ignore-some
    assert cc_phase(np.r_[0.0, np.full(N - 1, 0.5)], np.full(N, 0.02), H) == "mixed"
    assert cc_phase(np.zeros(N), np.full(N, 1 / 6), H) == "ignore-some"
    # the threshold is the one the metrics use
    st = strategy_stats(np.r_[np.full(3, GAIN_IGNORED / 2), np.full(N - 3, 0.5)][None])
    assert st["ignored"][0] == 3 and st["kept_mean"][0] == pytest.approx(0.5)


def test_tms_phase_and_majority():
    assert tms_phase(np.array([1.0, 1.0, 0.9, 0.8, 1.0]), 2) == "superposition"
    assert tms_phase(np.array([1.0, 1.0]), 2) == "all-dedicated"
    assert tms_phase(np.array([1.0, 0.1]), 2) == "ignore-some"
    assert majority(["mixed", "naive", "naive"]) == "naive"
    assert majority(["naive", "mixed"]) == "mixed"  # a tie: the first name in sorted order
    assert cc_phases(np.full((2, N), 0.4), np.full((2, N), 0.06), H) == ["attenuate-all"] * 2


def test_single_run_report_names_the_model_by_the_same_rule():
    from superlens.report.toy_report import l2_strategy_sentence
    from superlens.toy.analysis import analyze

    l2 = _diag(np.r_[np.zeros(6), np.full(N - 6, 0.5)])
    a = analyze(_diag(np.full(N, 0.4)), p=0.05, loss_power=4, eval_samples=4000, seed=0, l2_params=l2,
                sweep_ps=[0.05], sweep_samples=400, response_points=201)
    s = l2_strategy_sentence(a.metrics(), a)
    assert "[ignore-some]" in s and s.endswith("[attenuate-all].")
