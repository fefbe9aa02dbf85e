"""Every toy figure is written as a valid PNG, from a fresh analysis and from one read back from JSON."""
import json

import pytest
import torch

from superlens.device import generator
from superlens.report.html import fmt
from superlens.report.toy_figures import FIGURES, make_toy_figures
from superlens.report.toy_report import (interference_definitions_sentence, l2_strategy_sentence,
                                         residual_ablation_sentence)
from superlens.toy.analysis import ToyAnalysis, analyze
from superlens.toy.models import init_mlp

torch.set_num_threads(1)
PNG = b"\x89PNG\r\n\x1a\n"


def _analysis(l2: bool, loss_power: float = 4) -> ToyAnalysis:
    P = init_mlp(12, 4, [generator(0), generator(1)])
    L2 = init_mlp(12, 4, [generator(2), generator(3)]) if l2 else None
    return analyze(P, p=0.1, loss_power=loss_power, eval_samples=2000, seed=0, l2_params=L2,
                   sweep_ps=[0.01, 1.0], sweep_samples=1200, response_points=201)


def _check(figs, outdir, l2: bool = True):
    # the L2 strategy figure is drawn only when there are L2-trained models
    assert len(figs) == len(FIGURES) - (not l2)
    assert ("toy_l2_strategy.png" in [n for n, _ in figs]) == l2
    names = [n for n, _ in figs]
    assert len(set(names)) == len(names)
    for name, cap in figs:
        data = (outdir / name).read_bytes()
        assert data[:8] == PNG and len(data) > 2000, name
        assert len(cap) > 40 and "nan" not in cap.lower(), (name, cap)


def test_figures_from_fresh_analysis(tmp_path):
    _check(make_toy_figures(_analysis(l2=True), tmp_path), tmp_path)


def test_figures_from_json_without_l2(tmp_path):
    a = ToyAnalysis.from_dict(json.loads(json.dumps(_analysis(l2=False).to_dict())))
    out = tmp_path / "figs"  # created on demand
    _check(make_toy_figures(a, out), out, l2=False)


def test_l2_figure_from_the_main_model_when_trained_with_l2(tmp_path):
    figs = dict(make_toy_figures(_analysis(l2=False, loss_power=2), tmp_path))
    assert "toy_l2_strategy.png" in figs and "the trained model itself" in figs["toy_l2_strategy.png"]


@pytest.mark.parametrize("inc,dec,says,never", [
    (3e-4, 1e-4, ["raises the interference part", "lowers the isolated error", "raises the active "
                  "training MSE", "Yes"], ["No:", "Not on balance"]),
    (1e-4, 3e-4, ["raises the interference part", "lowers the active training MSE", "Not on balance"],
     ["Yes", "No:"]),
    (-2e-4, 1e-4, ["lowers the interference part", "No:"], ["raises the interference", "Yes"]),
    (0.0, 1e-4, ["leaves the interference part unchanged", "No:"], ["raises the interference"]),
    (2e-4, -1e-4, ["raises the isolated error", "costs nothing in isolation"], ["No:"]),
])
def test_residual_sentence_follows_the_signs(inc, dec, says, never):
    text = residual_ablation_sentence(inc, dec)
    assert all(w in text for w in says), text
    assert not any(w in text for w in never), text


def test_interference_and_l2_sentences_use_the_measured_numbers():
    a = _analysis(l2=True)
    m = a.metrics()
    text = interference_definitions_sentence(m)
    assert f"{100 * m['attenuation_share_measured']:.0f} %" in text
    assert f"{100 * m['attenuation_share_pure_gain_weff']:.0f} %" in text
    assert "73 %" in text  # the source's own numbers (1 - 0.43)^2 / 6 / 0.0745 = 72.7 %, computed
    s = l2_strategy_sentence(m, a)
    assert s.startswith("Strategy under L2 (the same seeds trained with L2)")
    assert f"ignores {fmt(m['l2_trained_ignored_features'])} of 12 features" in s
    assert f"gain {fmt(m['l2_trained_kept_gain_mean'])} ±" in s
    a0 = _analysis(l2=False)
    assert l2_strategy_sentence(a0.metrics(), a0) == ""
