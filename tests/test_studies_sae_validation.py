"""A small version of the SAE measure's validation on toy models whose answer is known
(superlens.studies.sae_validation; the full grids run from its CLI)."""
import json

import numpy as np
import pytest
import torch

from superlens.measures.sae_agreement import correlations, pearson, spearman
from superlens.studies.sae_validation import GRIDS, main, run_validation


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
    # a model fitted with fewer AE seeds (ae_seeds set per cell): the seeds all models have
    ms[1]["F"] = [10.1]
    assert correlations(ms)["pooled"]["rho"] == [1.0]


@pytest.fixture(scope="module")
def small_table():
    # the pipeline, not the calibration: the frozen recipe at a quarter of its steps (the sweep
    # below sets the same sae_steps)
    from superlens.measures.sae import SAERecipe

    torch.set_num_threads(1)
    return run_validation("small", SAERecipe(steps=2000), progress=False)


@pytest.fixture(scope="module")
def small_table_l1():
    # the pipeline on the ReLU + L1 recipe (sparsity "l1", its former defaults), whose toy-model
    # counts are known to track the represented features; the frozen BatchTopK recipe's own figures
    # come from the held-out calibration (examples/sae_calibration.toml)
    from superlens.measures.sae import SAERecipe

    torch.set_num_threads(1)
    return run_validation("small", SAERecipe(sparsity="l1", lr=1e-2, lr_width=20, warmup=0.2,
                                             steps=3000, batch_size=256, max_gflop=1200.0),
                          progress=False)


@pytest.mark.slow
def test_small_validation_counts_tms_features(small_table_l1):
    """On the classic toy model (dense: ~5-6 features, sparse: ~20) F must follow the represented
    count: a recipe that read the dictionary size, the width, or noise would fail these bounds."""
    t = small_table_l1
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


@pytest.mark.slow
def test_cli_writes_table_figure_and_report(tmp_path, small_table, monkeypatch):
    import superlens.studies.sae_validation as sv

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


SMALL_SPEC = """
name = "small"
study = "sae-validation"
[base]
rows = 4000
ae_seeds = 3
sae_steps = 2000
[axes]
cells = [
  { family = "tms", n_hidden = 5, p = [1.0, 0.1, 0.02], importance_decay = [1.0, 0.8], model_seed = [7], steps = 2000 },
  { family = "cc", n_hidden = [5, 10], p = [0.05], loss_power = [2.0, 4.0], model_seed = [7], steps = 600, batch_size = 1024 },
]
"""


def _key(e):
    return e["family"], e["p"], e["importance"], e["width"], e["loss_power"], e["model_seed"]


@pytest.mark.slow
def test_validation_sweep_equals_the_module_and_reports_rho(tmp_path, small_table, capsys):
    """The validation shipped as a sweep (study sae-validation, the `cells` axis joining the two
    families' grids) trains and measures the very models of run_validation('small'): the same
    known counts and the same F per AE seed; its report states the pooled rho and r."""
    from superlens.cli import main as cli

    spec = tmp_path / "small.toml"
    spec.write_text(SMALL_SPEC)
    assert cli(["sweep", str(spec), "--out", str(tmp_path / "sw")]) == 0, capsys.readouterr().err
    rows = json.loads((tmp_path / "sw" / "table.json").read_text())
    rows = rows["rows"] if isinstance(rows, dict) else rows
    assert len(rows) == len(small_table["models"]) == 10
    by_key = {_key(r): r for r in rows}
    for e in small_table["models"]:
        r = by_key[_key(e)]
        assert r["represented"] == e["represented"] and r["F"] == pytest.approx(e["F"], rel=1e-6)
    c = correlations(rows)["pooled"]
    assert c["rho_mean"] == pytest.approx(small_table["correlations"]["pooled"]["rho_mean"])
    html = (tmp_path / "sw" / "report.html").read_text()
    assert "Toy models: does F count the represented features?" in html
    assert f"{c['rho_mean']:.3f} ± {c['rho_std']:.3f}" in html and "data:image/png" in html


def test_example_validation_spec_is_the_heldout_grid():
    """examples/sae_validation.toml expands to exactly the held-out grid's 48 models."""
    from pathlib import Path

    from superlens.studies.sae_validation import GRIDS, resolved
    from superlens.sweep.grid import expand, group_points, load_spec

    spec = load_spec(str(Path(__file__).resolve().parents[1] / "examples" / "sae_validation.toml"))
    points = expand(spec)
    g = GRIDS["heldout"]
    want = {("tms", p, d, g.tms_m, 2.0, s) for d in g.tms_decay for p in g.tms_p for s in g.model_seeds}
    want |= {("cc", p, 1.0, h, q, s) for h in g.cc_widths for p in g.cc_p for q in g.cc_q
             for s in g.model_seeds[: g.cc_seeds]}
    got = {(c.family, c.p, c.importance_decay, c.n_hidden, c.loss_power, c.model_seed)
           for c in (pt.config for pt in points)}
    assert got == want and len(points) == 48
    for pt in points:
        t, c = resolved(pt.config), pt.config
        fam = (g.tms_n, g.tms_steps, g.tms_batch, g.tms_lr) if c.family == "tms" else \
            (g.cc_n, g.cc_steps, g.cc_batch, g.cc_lr)
        assert (t["n_features"], t["steps"], t["batch_size"], t["lr"]) == fam
        assert c.rows == g.rows and c.ae_seeds == 3
    assert len(group_points("sae-validation", points)) == 4  # TMS, and one per CC width


@pytest.mark.parametrize("cells, needle", [
    ('[{ family = "tms", colour = 1 }]', "'colour' is not an axis"),
    ('[{ family = "tms", p = [0.1, 0.1] }]', "appears more than once"),
    ('[]', "non-empty list of tables"),
    ('[{ family = "cc", importance_decay = 0.5 }]', "importance_decay applies to family tms only"),
    ('[{ family = "tms", p = [] }]', "empty list"),
])
def test_cells_axis_errors_are_one_line(tmp_path, capsys, cells, needle):
    from superlens.cli import main as cli

    spec = tmp_path / "s.toml"
    spec.write_text(f'study = "sae-validation"\n[axes]\ncells = {cells}\n')
    assert cli(["sweep", str(spec), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err
    assert not (tmp_path / "o").exists()


def test_cells_axis_and_another_axis_may_not_set_one_field(tmp_path, capsys):
    from superlens.cli import main as cli

    spec = tmp_path / "s.toml"
    spec.write_text('study = "sae-validation"\n[axes]\nmodel_seed = [1, 2]\n'
                    'cells = [{ family = "tms", model_seed = 3 }]\n')
    assert cli(["sweep", str(spec), "--out", str(tmp_path / "o")]) == 2
    assert "model_seed" in capsys.readouterr().err


def test_command_words_name_the_spec_without_this_machines_paths(tmp_path):
    """The calibration table's command is the one a reader types: the spec as given (an absolute
    path shortened to its name), the sweep folder's name; SPEC where no meta.json records it."""
    import json as _json

    from superlens.studies.sae_validation import SAEValidationSweep

    run = tmp_path / "runs" / "cal"
    (run / "figures").mkdir(parents=True)
    words = SAEValidationSweep.command_words
    assert words(run / "figures") == "superlens sweep SPEC --out cal"
    (run / "meta.json").write_text(_json.dumps(
        {"argv": ["/x/bin/superlens", "sweep", "examples/sae_calibration.toml", "--out", str(run)]}))
    assert words(run / "figures") == "superlens sweep examples/sae_calibration.toml --out cal"
    (run / "meta.json").write_text(_json.dumps(
        {"argv": ["superlens", "sweep", str(tmp_path / "my.toml"), "--out", str(run)]}))
    assert words(run / "figures") == "superlens sweep my.toml --out cal"


def test_example_specs_expand_and_development_specs_avoid_heldout_seeds():
    """Every sweep spec in examples/ (the files with an [axes] table) loads and expands; the SAE
    calibration's development specs use no model seed of the held-out grid
    (examples/sae_calibration.toml), so no held-out model is looked at."""
    from pathlib import Path

    from superlens.sweep.grid import expand, load_spec

    ex = Path(__file__).resolve().parents[1] / "examples"
    specs = [p for p in sorted(ex.glob("*.toml")) if "[axes]" in p.read_text()]
    assert len(specs) >= 8
    points = {p.name: expand(load_spec(str(p))) for p in specs}
    assert all(points.values())
    held = {pt.config.model_seed for pt in points["sae_calibration.toml"]}
    dev = [n for n in points if n.startswith("sae_calibration_dev")]
    assert len(dev) >= 2 and held
    for n in dev:
        assert held.isdisjoint(pt.config.model_seed for pt in points[n]), n


def test_recipe_groups_put_the_frozen_recipe_first():
    from superlens.measures.sae import SAERecipe
    from superlens.studies.sae_validation import recipe_groups

    other, frozen = SAERecipe(steps=10).as_dict(), SAERecipe().as_dict()
    rows = [{"recipe": other, "i": 0}, {"recipe": frozen, "i": 1}, {"recipe": other, "i": 2}]
    assert [[r["i"] for r in g] for g in recipe_groups(rows)] == [[1], [0, 2]]
    assert [[r["i"] for r in g] for g in recipe_groups(rows[::2])] == [[0, 2]]


def test_a_sweep_over_recipes_compares_them_and_calibrates_one(tmp_path, capsys):
    """A spec with an sae_* axis fits several recipes: the page compares them, each from its own
    points, and the run's sae_calibration.json is one recipe's (here the first), not a pool of both."""
    from superlens.cli import main as cli
    from superlens.measures.sae_agreement import calibration_table
    from superlens.measures.sae_calibration import TARGETS

    spec = tmp_path / "s.toml"
    spec.write_text('study = "sae-validation"\n[base]\nfamily = "planted"\nrows = 2000\nae_seeds = 2\n'
                    '[axes]\nsae_steps = [30, 300]\nk_features = [16, 32]\nn_hidden = [16]\n')
    assert cli(["sweep", str(spec), "--out", str(tmp_path / "o"), "--quiet"]) == 0, capsys.readouterr().err
    rows = json.loads((tmp_path / "o" / "table.json").read_text())
    by = {s: [r for r in rows if r["recipe"]["steps"] == s] for s in (30, 300)}
    assert all(len(g) == 2 for g in by.values())
    for r in rows:  # each planted point says whether its latents are the features, per AE seed
        assert len(r["mcc"]) == 2 and all(0.0 <= v <= 1.0 for v in r["mcc"] + r["recovered"])
        assert r["mcc_mean"] == pytest.approx(sum(r["mcc"]) / 2)
    cals = {s: calibration_table(g, TARGETS, "", g[0]["recipe"]) for s, g in by.items()}
    assert cals[30]["widths"]["16"]["median_abs_error"] != cals[300]["widths"]["16"]["median_abs_error"]
    html = (tmp_path / "o" / "report.html").read_text()
    assert "Recipes compared" in html and "differ in: steps" in html
    assert "median MCC / recovered" in html and "Hungarian" in html
    for s in (30, 300):
        assert f"16: {cals[s]['widths']['16']['median_abs_error']:.3f}" in html
    written = json.loads((tmp_path / "o" / "sae_calibration.json").read_text())
    assert written["recipe"]["steps"] == 30 and written["widths"] == cals[30]["widths"]


def test_wide_planted_points_run_alone_and_the_costliest_group_starts_first(tmp_path, monkeypatch):
    """A planted layer >= WIDE_ALONE wide is a group of its own (one SAE fills a core: workers share
    such points); the narrow ones share an instance axis. The sweep hands the backend its groups
    costliest first, and each wide point's F is the same as when it shared a group (a fit on the
    instance axis equals a lone fit)."""
    from superlens.studies.sae_validation import WIDE_ALONE, SAEValidationSweep
    from superlens.sweep import backends
    from superlens.sweep.engine import run_sweep
    from superlens.sweep.grid import expand, group_points, load_spec

    spec = tmp_path / "s.toml"
    spec.write_text('study = "sae-validation"\n[base]\nfamily = "planted"\nrows = 600\nae_seeds = 1\n'
                    f'sae_steps = 20\n[axes]\ncells = [{{ n_hidden = 8, k_features = [4, 8] }}, '
                    f'{{ n_hidden = {WIDE_ALONE}, k_features = 64 }}, '
                    f'{{ n_hidden = {2 * WIDE_ALONE}, k_features = 32 }}]\n')
    groups = group_points("sae-validation", expand(load_spec(str(spec))))
    sizes = sorted((g.points[0].config.n_hidden, len(g.points)) for g in groups)
    assert sizes == [(8, 2), (WIDE_ALONE, 1), (2 * WIDE_ALONE, 1)]
    cost = {g.points[0].config.n_hidden: SAEValidationSweep().group_cost(g) for g in groups}
    assert cost[2 * WIDE_ALONE] > cost[WIDE_ALONE] > cost[8]

    seen = []
    real = backends.run_local

    def record(study, gs, *a, **kw):
        seen.extend(g.points[0].config.k_features for g in gs)
        return real(study, gs, *a, **kw)

    monkeypatch.setattr(backends, "run_local", record)
    rows = run_sweep(load_spec(str(spec)), tmp_path / "o", workers=1, progress=False)
    assert seen == [32, 64, 4]  # the costliest first (the narrow group's first point: K = 4)
    monkeypatch.setattr("superlens.studies.sae_validation.WIDE_ALONE", 10_000)
    together = run_sweep(load_spec(str(spec)), tmp_path / "t", workers=1, progress=False)
    for a, b in zip(rows, together):
        assert a["F"] == pytest.approx(b["F"], rel=1e-5), (a["k_features"], a["F"], b["F"])


def test_the_page_names_settings_counted_right_by_other_latents():
    """recovery_findings: a sparse planted setting whose F is within the target but whose planted
    directions mostly lack a latent is named; one counted right by its own latents is not; a dense
    setting is left out; a table without MCC says nothing."""
    from superlens.report.sae_validation_report import recovery_findings

    def e(width, k, f, rec, active=3.0):
        return {"family": "planted", "width": width, "k_features": k, "active": active,
                "represented": float(k), "F_mean": f, "recovered_mean": rec, "mcc_mean": rec}

    models = [e(64, 160, 161.0, 1.0), e(512, 1280, 1400.0, 0.75), e(512, 2816, 3400.0, 0.2),
              e(128, 320, 330.0, 0.1, active=32.0)]
    (text,) = recovery_findings({"models": models})
    assert "Of the 3 sparse planted settings, 2 read F within 0.15" in text
    assert "in 1 of them" in text and "widths 64)" in text
    assert "width 512 K = 1280 (F / F_true 1.09, 75 % recovered" in text and "K = 2816" not in text
    assert recovery_findings({"models": [{k: v for k, v in m.items() if k != "recovered_mean"}
                                         for m in models]}) == []
