"""A small version of the SAE measure's validation on toy models whose answer is known
(superlens.toy.sae_validation; the full grids run from its CLI)."""
import json

import numpy as np
import pytest
import torch

from superlens.toy.sae_validation import GRIDS, correlations, main, pearson, run_validation, spearman


def test_rank_correlations_match_closed_forms():
    # a monotone but non-linear relation: Spearman 1, Pearson < 1; ties get average ranks
    x = [1, 2, 3, 4, 5]
    assert spearman(x, [1, 4, 9, 16, 25]) == pytest.approx(1.0)
    # centred x = (-2..2), y - 11 = (-10, -7, -2, 5, 14): r = 60 / sqrt(10 * 374)
    assert pearson(x, [1, 4, 9, 16, 25]) == pytest.approx(60 / np.sqrt(3740))
    assert spearman(x, [5, 4, 3, 2, 1]) == pytest.approx(-1.0)
    # scipy.stats.spearmanr([1, 2, 2, 3], [1, 3, 2, 4]) = 0.9486832980505138
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(0.9486832980505138)
    ms = [{"family": "tms", "represented": k, "F": [k + 0.1, k - 0.1]} for k in (5, 10, 20)]
    c = correlations(ms)
    assert c["pooled"]["rho"] == [1.0, 1.0] and c["pooled"]["rho_std"] == 0.0


@pytest.fixture(scope="module")
def small_table():
    torch.set_num_threads(1)
    return run_validation("small", progress=False)


def test_small_validation_counts_tms_features(small_table):
    """On the classic toy model (dense: ~5-6 features, sparse: ~20) F must follow the represented
    count: a recipe that read the dictionary size, the width, or noise would fail these bounds."""
    t = small_table
    tms = [e for e in t["models"] if e["family"] == "tms"]
    known = np.array([e["represented"] for e in tms])
    assert known.min() <= 7 and known.max() >= 17  # the grid spans dense to sparse
    c = t["correlations"]["tms"]
    assert c["rho_mean"] >= 0.8 and c["r_mean"] >= 0.8, c
    # sparse inputs (more features represented) read well above dense ones, per importance
    for imp in {e["importance"] for e in tms}:
        F = {e["p"]: e["F_mean"] for e in tms if e["importance"] == imp}
        assert F[0.02] >= 1.5 * F[1.0], (imp, F)
    for e in t["models"]:
        assert len(e["F"]) == 3 and max(e["F"]) <= e["dict_size"]
        assert 0 <= np.mean(e["fvu"]) < 0.15 and 0 <= np.mean(e["dead_fraction"]) < 1


def test_cli_writes_table_figure_and_report(tmp_path, small_table, monkeypatch):
    import superlens.toy.sae_validation as sv

    monkeypatch.setattr(sv, "run_validation", lambda *a, **k: small_table)
    out = tmp_path / "val"
    assert main(["--grid", "small", "--out", str(out)]) == 0
    table = json.loads((out / "table.json").read_text())
    assert table["correlations"]["pooled"]["n"] == len(table["models"])
    assert (out / "sae_validation.png").stat().st_size > 10_000
    html = (out / "report.html").read_text()
    assert "Spearman" in html and "dict_multiple" in html
    assert "Spearman" in (out / "report.md").read_text()
    assert main(["--grid", "small", "--out", str(out)]) == 2  # an existing folder is refused
    assert main(["--grid", "small", "--out", str(tmp_path / "x"), "--recipe", '{"l1": -1}']) == 2
    assert not (tmp_path / "x").exists()
