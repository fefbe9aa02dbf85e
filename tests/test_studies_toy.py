"""`superlens toy` (superlens.studies.toy's run_toy) end to end on a tiny config, and every bad input
refused before anything is written."""
import json
import subprocess
import sys

import pytest

from superlens.cli import main

TINY = ["--n-features", "12", "--n-hidden", "4", "--steps", "30", "--batch-size", "64",
        "--seeds", "2", "--eval-samples", "2000", "--quiet"]


@pytest.mark.slow
def test_toy_end_to_end(tmp_path):
    out = tmp_path / "run"
    assert main(["toy", "--out", str(out), *TINY]) == 0
    for f in ("config.json", "meta.json", "metrics.json", "model.safetensors", "report.html",
              "analysis.json"):
        assert (out / f).is_file(), f
    assert list((out / "figures").glob("*.png"))
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("mse_active_mean", "mse_active_min", "mse_active_max", "mse_all_mean",
                "naive_mse_active_mean", "naive_mse_active_theory", "gain_mean", "gain_std",
                "negative_residual_mean", "weff_diag_mean", "weff_diag_std", "abs_cos_mean",
                "isolated_mse_mean", "interference_share", "optimal_gain", "l2_trained_gain_mean",
                "l2_trained_mse_active_mean", "sparsity_sweep", "train_seconds"):
        assert key in metrics, key
    assert metrics["naive_mse_active_theory"] == pytest.approx((12 - 4) / 12 / 6)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["seeds"] == [0, 1]
    assert "torch" in meta["versions"] and meta["torch_threads"] >= 1
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["n_features"] == 12 and cfg["loss_power"] == 4.0
    # the stored config is resolved: the device and thread count this run used, as in meta.json
    assert cfg["device"] == meta["device"] != "auto" and cfg["threads"] == meta["torch_threads"] >= 1
    assert meta["wall_seconds"] > 0 and meta["report_seconds"] > 0
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "src=\"figures" not in html
    # the page is written before meta.json says complete, yet shows the final status
    assert "<td>status</td><td>complete</td>" in html and "running" not in html
    wall = html.split("wall seconds</td>", 1)[1].split("</td>", 1)[0]
    assert "None" not in wall and float(wall.split(">")[-1]) > 0, wall
    for text in ("L2 vs L4 (analysis 7)", "Strategy under L2", "source report claims",
                 "Why the source report says both 86 % and 73 %", "x ~ U(0, 1]",
                 "Removing the residual", "L2 vs L4, per feature"):
        assert text in html, text
    # every number in metrics.json has a definition in the report's tables
    from superlens.measures.sae import SAE_DEFINITIONS
    from superlens.toy.definitions import GEOMETRY_DEFINITIONS, metric_definition

    assert not [k for k in metrics if not (metric_definition(k) or GEOMETRY_DEFINITIONS.get(k)
                                           or SAE_DEFINITIONS.get(k))]
    for k in ("sae_features", "sae_psi", "sae_fvu", "sae_l0", "sae_dead_fraction"):
        assert isinstance(metrics[k], float) and metrics[k] >= 0, k
    assert metrics["sae_features"] <= metrics["sae_dict_size"]

    # re-render without training: the verdict rows follow the current rules, never the rows an
    # earlier version stored in metrics.json (page and metrics.json alike)
    rows = metrics["verdicts"]
    stale = [{**r, "verdict": "stale-word", "why": "by an earlier rule"} for r in rows]
    (out / "metrics.json").write_text(json.dumps({**metrics, "verdicts": stale}))
    (out / "report.html").unlink()
    assert main(["report", str(out)]) == 0
    html = (out / "report.html").read_text()
    assert len(html) > 10_000 and "stale-word" not in html and "by an earlier rule" not in html
    assert json.loads((out / "metrics.json").read_text())["verdicts"] == rows

    # existing directory refused, kept intact; --force replaces
    assert main(["toy", "--out", str(out), *TINY]) == 2
    assert (out / "metrics.json").is_file()
    assert main(["toy", "--out", str(out), *TINY, "--force"]) == 0


def test_config_file(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("n_features = 10\nn_hidden = 3\nsteps = 10\nbatch_size = 32\nseeds = 1\n"
                   "eval_samples = 1000\ncompare_l2 = false\n")
    out = tmp_path / "r"
    assert main(["toy", "--out", str(out), "--config", str(cfg), "--quiet"]) == 0
    assert json.loads((out / "config.json").read_text())["n_hidden"] == 3


@pytest.mark.parametrize("args,field", [
    (["--p", "0"], "p"), (["--p", "1.5"], "p"), (["--n-hidden", "0"], "n_hidden"),
    (["--n-features", "0"], "n_features"), (["--loss-power", "0.5"], "loss_power"),
    (["--steps", "0"], "steps"), (["--batch-size", "0"], "batch_size"), (["--lr", "0"], "lr"),
    (["--lr", "-1"], "lr"),
    (["--device", "nonsense"], "device"),
])
def test_bad_values(tmp_path, capsys, args, field):
    out = tmp_path / "run"
    assert main(["toy", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and field in err and "allowed" in err
    assert not out.exists()
    assert not any(tmp_path.iterdir())


def test_unknown_key_and_unreadable_file(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("n_feature = 10\n")
    assert main(["toy", "--out", str(tmp_path / "a"), "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'n_feature'" in err and len(err.strip().splitlines()) == 1
    junk = tmp_path / "junk.toml"
    junk.write_bytes(b"\x00\xff = = [")
    assert main(["toy", "--out", str(tmp_path / "b"), "--config", str(junk)]) == 2
    assert "unreadable" in capsys.readouterr().err
    assert main(["toy", "--out", str(tmp_path / "c"), "--config", str(tmp_path / "nope.toml")]) == 2
    assert "not found" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_console_script_exit_code(tmp_path):
    r = subprocess.run([sys.executable, "-m", "superlens", "toy", "--out", str(tmp_path / "x"),
                        "--p", "2"], capture_output=True, text=True)
    assert r.returncode == 2 and "p = 2.0" in r.stderr
