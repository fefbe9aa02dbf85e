"""Sweep engine: grid expansion and validation, grouping on the instance axis, resume, backends."""
import json

import numpy as np
import pytest

from superlens.cli import main
from superlens.config import SweepSpec
from superlens.errors import ConfigError
from superlens.sweep.engine import run_sweep
from superlens.sweep.grid import axis_values, expand, group_points
from superlens.toy.train import train_mlp

TOY_BASE = {"n_features": 8, "steps": 40, "batch_size": 64}


def toy_spec(**axes):
    return SweepSpec.build({"study": "toy", "base": TOY_BASE,
                            "axes": axes or {"n_hidden": [2, 8], "p": [0.05, 0.3]},
                            "options": {"eval_samples": 2000}})


def test_axis_values():
    assert axis_values("p", [0.1, 0.2]) == [0.1, 0.2]
    np.testing.assert_allclose(axis_values("p", {"log": [0.01, 1.0], "num": 3}), [0.01, 0.1, 1.0])
    assert axis_values("n", {"linear": [2, 10], "num": 5, "int": True}) == [2, 4, 6, 8, 10]
    with pytest.raises(ConfigError, match="empty"):
        axis_values("p", [])
    with pytest.raises(ConfigError, match="axis p"):
        axis_values("p", {"log": [0, 1], "num": 3})


def test_expand_and_group():
    pts = expand(toy_spec(n_hidden=[2, 8], p=[0.05, 0.3], loss_power=[2.0, 4.0]))
    assert len(pts) == 8
    groups = group_points("toy", pts)
    # n_hidden changes shapes; p and q ride on the instance axis
    assert len(groups) == 2 and sorted(len(g.points) for g in groups) == [4, 4]


@pytest.mark.parametrize("axes,needle", [
    ({"n_hiden": [2]}, "n_hiden"),
    ({"p": []}, "empty"),
    ({"p": [0.1, 1.5]}, "sweep point 1"),
    ({"n_hidden": [4, 0]}, "n_hidden"),
])
def test_bad_spec(tmp_path, axes, needle, capsys):
    spec = tmp_path / "s.toml"
    lines = ["study = 'toy'", "[base]", "n_features = 8", "[axes]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in axes.items()]
    spec.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_unknown_study(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text("study = 'nope'\n[axes]\np = [0.1]\n")
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o")]) == 2
    assert "study" in capsys.readouterr().err


def test_toy_sweep_end_to_end_and_resume(tmp_path):
    out = tmp_path / "sw"
    rows = run_sweep(toy_spec(), out, progress=False)
    assert [r["point"] for r in rows] == [0, 1, 2, 3]
    for f in ("table.csv", "table.json", "report.html", "config.json", "meta.json"):
        assert (out / f).is_file()
    assert all(r["phase"] in {"all-dedicated", "ignore-some", "attenuate-all", "mixed"} for r in rows)
    wide = [r for r in rows if r["n_hidden"] == 8]
    assert all(r["gain_mean"] > 0 for r in wide)
    # the instance-axis grid equals training a point alone with its seed
    r0 = rows[0]
    alone = train_mlp(8, r0["n_hidden"], seeds=[0], p=r0["p"], steps=40, batch_size=64).params
    from superlens.toy.sweep_metrics import point_metrics

    m = point_metrics(alone, p=r0["p"], loss_power=4.0, eval_samples=2000, seed=10_000)
    assert m["gain_mean"] == pytest.approx(r0["gain_mean"], rel=1e-4)
    # resume: remove one finished group, rerun: only that group trains again, same table
    groups = sorted((out / "groups").glob("*.json"))
    kept_mtime = groups[1].stat().st_mtime_ns
    groups[0].unlink()
    rows2 = run_sweep(toy_spec(), out, progress=False)
    assert groups[1].stat().st_mtime_ns == kept_mtime
    assert [r["gain_mean"] for r in rows2] == pytest.approx([r["gain_mean"] for r in rows], rel=1e-6)
    # a different spec into the same directory is refused
    from superlens.errors import RunDirError

    with pytest.raises(RunDirError):
        run_sweep(toy_spec(n_hidden=[3], p=[0.1]), out, progress=False)


def test_unreachable_ray_address(tmp_path, capsys):
    pytest.importorskip("ray")
    spec = tmp_path / "s.toml"
    spec.write_text("study = 'toy'\n[base]\nn_features = 8\nsteps = 5\nbatch_size = 16\n"
                    "[axes]\np = [0.1]\n")
    code = main(["sweep", str(spec), "--out", str(tmp_path / "o"), "--backend", "ray",
                 "--address", "127.0.0.1:9", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "127.0.0.1:9" in err and len(err.splitlines()) == 1


def test_ray_backend_matches_local(tmp_path):
    """A real local Ray instance (started for the run) gives the same table as the local backend."""
    pytest.importorskip("ray")
    spec = toy_spec(n_hidden=[2, 4], p=[0.1])
    local = run_sweep(spec, tmp_path / "local", progress=False)
    ray_rows = run_sweep(spec, tmp_path / "ray", backend="ray", workers=2, progress=False)
    assert len(ray_rows) == len(local) == 2
    for a, b in zip(local, ray_rows):
        for k in ("point", "n_hidden", "p", "phase"):
            assert a[k] == b[k]
        for k in ("gain_mean", "mse_active_mean", "isolated_mse_mean"):
            assert a[k] == pytest.approx(b[k], rel=1e-5), k
    meta = json.loads((tmp_path / "ray" / "meta.json").read_text())
    assert meta["backend"] == "ray"
