"""Every toy figure is written as a valid PNG, from a fresh analysis and from one read back from JSON."""
import json

import torch

from superlens.device import generator
from superlens.report.toy_figures import FIGURES, make_toy_figures
from superlens.toy.analysis import ToyAnalysis, analyze
from superlens.toy.models import init_mlp

torch.set_num_threads(1)
PNG = b"\x89PNG\r\n\x1a\n"


def _analysis(l2: bool) -> ToyAnalysis:
    P = init_mlp(12, 4, [generator(0), generator(1)])
    L2 = init_mlp(12, 4, [generator(2), generator(3)]) if l2 else None
    return analyze(P, p=0.1, loss_power=4, eval_samples=2000, seed=0, l2_params=L2,
                   sweep_ps=[0.01, 1.0], sweep_samples=1200, response_points=201)


def _check(figs, outdir):
    assert len(figs) == len(FIGURES)
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
    _check(make_toy_figures(a, out), out)
