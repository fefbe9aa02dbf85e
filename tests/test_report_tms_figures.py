"""The classic toy model figures (superlens.report.tms_figures) are written as PNGs and refuse bad input."""
import pytest
import torch

from superlens.measures.dimensionality import feature_dimensionality

torch.set_num_threads(1)


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
