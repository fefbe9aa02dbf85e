"""Sweep input validation (ranges, [options], active points), per-point files, thread budgets,
failed groups, phase classification and the TMS geometry columns."""
import json
import os

import numpy as np
import pytest

from superlens.cli import main
from superlens.config import SweepSpec
from superlens.errors import ConfigError
from superlens.sweep.engine import run_sweep
from superlens.studies.active import shared_config as shared_active_config
from superlens.sweep.grid import expand, group_points


def _run_cli(tmp_path, text, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text(text)
    out = tmp_path / "out"
    code = main(["sweep", str(spec), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip()
    return code, err, out


TOY_HEAD = "study = 'toy'\n[base]\nn_features = 8\nsteps = 5\nbatch_size = 16\n"


@pytest.mark.parametrize("axis,needle", [
    ('p = { log = [0.01, 0.1], num = "x" }', "num"),
    ('p = { log = [0.1, "a"], num = 3 }', "'a'"),
    ("p = { linear = [0.1, 0.5], num = 2.5 }", "2.5"),
    ("p = { log = [0.1, 0.5], linear = [0.1, 0.5], num = 2 }", "axis p"),
    ("p = { linear = [0.1, 0.5], num = 2, int = 'yes' }", "int"),
])
def test_malformed_range(tmp_path, capsys, axis, needle):
    code, err, out = _run_cli(tmp_path, TOY_HEAD + "[axes]\n" + axis + "\n", capsys)
    assert code == 2 and "axis p" in err and needle in err and len(err.splitlines()) == 1, err
    assert not out.exists()


@pytest.mark.parametrize("extra,needle", [
    ("[options]\neval_sampels = 2000\n", "eval_sampels"),
    ("[options]\neval_samples = 10\n", "eval_samples"),
])
def test_bad_options(tmp_path, capsys, extra, needle):
    code, err, out = _run_cli(tmp_path, TOY_HEAD + "[axes]\np = [0.1]\n" + extra, capsys)
    assert code == 2 and needle in err and "[options]" in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_eval_samples_options_conflicts():
    with pytest.raises(ConfigError, match="toy study only"):
        expand(SweepSpec.build({"study": "tms", "axes": {"p": [0.1]},
                                "options": {"eval_samples": 2000}}))
    with pytest.raises(ConfigError, match="give it once"):
        expand(SweepSpec.build({"study": "toy", "base": {"eval_samples": 2000},
                                "axes": {"p": [0.1]}, "options": {"eval_samples": 2000}}))
    # default: unset, resolved per point from its p (point_eval_samples); options, base and axis all
    # reach the point config and are used as given
    from superlens.studies.toy import MIN_EVAL_SAMPLES, point_eval_samples
    from superlens.toy.theory import eval_samples_for

    dense, sparse = expand(SweepSpec.build({"study": "toy", "axes": {"p": [0.1, 0.003]}}))
    assert dense.config.eval_samples is None and sparse.config.eval_samples is None
    assert point_eval_samples(dense.config) == MIN_EVAL_SAMPLES  # 2,000 active needs far fewer
    # at p = 0.003 the examples' old fixed 40,000 gave ~120 active samples per feature
    assert point_eval_samples(sparse.config) == eval_samples_for(0.003, 100) > 15 * 40_000
    assert point_eval_samples(sparse.config.replace(eval_samples=3000)) == 3000
    assert expand(SweepSpec.build({"study": "toy", "axes": {"p": [0.1]},
                                   "options": {"eval_samples": 3000}}))[0].config.eval_samples == 3000
    pts = expand(SweepSpec.build({"study": "toy", "axes": {"eval_samples": [1000, 4000]}}))
    assert [p.config.eval_samples for p in pts] == [1000, 4000]


def test_base_and_axis_eval_samples_take_effect_and_point_files(tmp_path):
    spec = SweepSpec.build({"study": "toy", "base": {"n_features": 8, "n_hidden": 4, "steps": 20,
                                                     "batch_size": 32},
                            "axes": {"eval_samples": [1000, 3000], "p": [0.2]}})
    out = tmp_path / "sw"
    rows = run_sweep(spec, out, progress=False, workers=1)
    assert [r["eval_samples"] for r in rows] == [1000, 3000]
    # same model (same seed, shapes), different evaluation sets: the measured error differs
    assert rows[0]["mse_active_mean"] != rows[1]["mse_active_mean"]
    m = json.loads((out / "points" / "point0001" / "metrics.json").read_text())
    assert len(m["gain"]) == 8 and len(m["mse_active"]) == 8 and m["eval_samples"] == 3000
    assert m["phase"] == rows[1]["phase"]
    # one worker in this process: its budget is every core, and the group records its threads
    g = json.loads(next((out / "groups").glob("*.json")).read_text())
    assert g["thread_budget"] == (os.cpu_count() or 1) and 1 <= g["threads"] <= g["thread_budget"]
    assert all(r["threads"] == g["threads"] for r in rows)


ACTIVE_HEAD = ("study = 'active'\n[base]\npreset = 'synthetic'\nepochs = 1\n")


@pytest.mark.parametrize("axes,needle,point", [
    ('strategy = ["bogus"]', "bogus", "sweep point 0"),
    ('strategy = ["random", "bogus"]', "bogus", "sweep point 1"),
    ('query_size = [20, 100000]', "query_size", "sweep point 1"),
    ('feature_layer = ["fc", "no.such.layer"]', "no.such.layer", "sweep point 1"),
    ('weights_path = ["/nonexistent/resnet18.pth"]', "/nonexistent/resnet18.pth", "sweep point 0"),
])
def test_active_points_validated_before_training(tmp_path, capsys, axes, needle, point):
    code, err, out = _run_cli(tmp_path, ACTIVE_HEAD + "[axes]\n" + axes + "\n", capsys)
    assert code == 2 and needle in err and point in err and len(err.splitlines()) == 1, err
    assert not out.exists()  # nothing written, nothing trained


def test_active_strategies_share_one_run_per_seed(capsys, tmp_path):
    spec = SweepSpec.build({"study": "active", "base": {"preset": "synthetic"},
                            "axes": {"strategy": ["random", "least-confidence"], "seed": [0, 1]}})
    pts = expand(spec)
    groups = group_points("active", pts)
    assert len(pts) == 4 and len(groups) == 2  # one run (one baseline) per seed
    for g in groups:
        cfg = shared_active_config(g)
        assert sorted(cfg.strategies) == ["least-confidence", "random"]
        assert len({p.config.seed for p in g.points}) == 1
    # a strategy listed twice would run twice in one run: refused before training, naming the value
    code, err, out = _run_cli(tmp_path, ACTIVE_HEAD + "[axes]\nstrategy = ['random', 'random']\n",
                              capsys)
    assert code == 2 and "axis strategy" in err and "'random' appears more than once" in err
    assert not out.exists()


def test_failed_group_keeps_the_others(tmp_path, monkeypatch, capsys):
    from superlens.studies.toy import ToySweep

    real = ToySweep.run_group

    def flaky(self, group, options):
        if group.points[0].config.n_hidden == 2:
            raise RuntimeError("boom\nsecond line")
        return real(self, group, options)

    monkeypatch.setattr(ToySweep, "run_group", flaky)
    spec = tmp_path / "s.toml"
    spec.write_text(TOY_HEAD + "[axes]\nn_hidden = [2, 4]\np = [0.1, 0.2]\n")
    out = tmp_path / "out"
    code = main(["sweep", str(spec), "--out", str(out), "--quiet", "--workers", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "boom" in err
    assert "point(s) 0, 1" in err  # n_hidden = 2: points 0 and 1
    saved = list((out / "groups").glob("*.json"))
    assert len(saved) == 1  # the n_hidden = 4 group is saved
    assert (out / "points" / "point0002" / "metrics.json").is_file()
    assert json.loads((out / "meta.json").read_text())["status"] == "incomplete"
    mtime = saved[0].stat().st_mtime_ns
    monkeypatch.setattr(ToySweep, "run_group", real)
    assert main(["sweep", str(spec), "--out", str(out), "--quiet", "--workers", "1"]) == 0
    assert saved[0].stat().st_mtime_ns == mtime  # the finished group was not retrained
    assert len(json.loads((out / "table.json").read_text())) == 4


def test_local_pool_default_and_budget(tmp_path):
    from superlens.sweep.backends import local_workers

    cores = os.cpu_count() or 1
    assert local_workers(1, None) == 1
    assert local_workers(100, None) == cores
    assert local_workers(3, 8) == 3 and local_workers(10, 2) == 2


def test_tms_geometry_counts_and_report(tmp_path):
    spec = SweepSpec.build({"study": "tms", "base": {"n_features": 5, "n_hidden": 2, "steps": 60,
                                                     "lr": 1e-2},
                            "axes": {"p": [1.0, 0.05]}})
    out = tmp_path / "tms"
    rows = run_sweep(spec, out, progress=False, workers=1)
    keys = ["n_dedicated", "n_tetrahedron", "n_triangle", "n_antipodal", "n_pentagon",
            "n_square_antiprism", "n_not_represented", "n_other"]
    for r in rows:
        assert sum(r[k] for k in keys) == 5
        m = json.loads((out / "points" / f"point{r['point']:04d}" / "metrics.json").read_text())
        assert len(m["geometry_classes"]) == 5 and len(m["feature_dimensionality"]) == 5
        assert len(m["feature_norms"]) == 5
    html = (out / "report.html").read_text()
    # the table shows the classes some feature falls in (empty ones are left out)
    from superlens.report.sweep_report import GEOMETRY_COLS

    present = [h for k, h in GEOMETRY_COLS if any(r[k] for r in rows)]
    assert "Feature geometry per point" in html and present
    assert all(f"<th>{h}</th>" in html for h in present)
    assert "n_pentagon" in (out / "table.csv").read_text().splitlines()[0]


def test_theory_overlay_on_phase_diagram(tmp_path):
    from superlens.report.sweep_report import theory_overlay
    from superlens.report.tms_figures import plot_phase_diagram

    r = lambda phase, g, gs: {"phase": phase, "gain_mean": g, "optimal_gain": gs, "frac_ignored": 0.0}
    cells = {(0, 0): [r("attenuate-all", 0.50, 0.52)], (0, 1): [r("attenuate-all", 0.2, 0.5)],
             (1, 0): [r("ignore-some", 0.1, 0.5)]}
    grid = np.array([["attenuate-all", "attenuate-all"], ["ignore-some", ""]], dtype=object)
    notes, marks = theory_overlay(cells, [0.1, 0.2], [0.01, 0.1], grid)
    assert [(x, y) for x, y, _ in notes] == [(0.1, 0.01), (0.2, 0.01)]  # not the ignoring cell
    assert marks == [(0.1, 0.01)]  # only the cell within tolerance of γ*
    grid[1, 1] = "mixed"
    name = plot_phase_diagram([0.1, 0.2], [0.01, 0.1], grid, xlabel="x", ylabel="y", title="t",
                              path=tmp_path / "ph.png", annotations=notes, marks=marks,
                              mark_label="match")
    assert (tmp_path / name).stat().st_size > 0


def test_unknown_study_is_one_line_and_writes_nothing(tmp_path, capsys):
    code, err, out = _run_cli(tmp_path, "study = 'nope'\n[axes]\np = [0.1]\n", capsys)
    assert code == 2 and "study = 'nope'" in err and "toy, tms, active" in err
    assert len(err.splitlines()) == 1 and not out.exists()


def test_every_registered_study_has_an_adapter():
    from superlens.studies import STUDIES, sweep_study

    for name in STUDIES:
        s = sweep_study(name)
        assert s.name == name and s.instance_fields <= set(s.config.model_fields)
        assert s.table_columns[0] == "point" and "seeds" not in s.axes()
