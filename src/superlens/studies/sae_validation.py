"""Does the SAE measure count features where the answer is known? (issue 8, section 2)

Two toy families whose represented features can be read off the weights:
- the classic toy model (Elhage et al. 2022): x̂ = ReLU(W^T W x + b), n = 20 features -> m = 5 neurons,
  feature probability p from 1 down to 0.01, uniform or decaying importance; the layer is h = W x;
- the compressed-computation model: y = W_out ReLU(W_in x), L2 or L4 loss, several widths; the layer is
  ReLU(W_in x).
The known answer is the number of represented features, the count of feature columns with
||W_i|| > 0.5 (||W||_F^2 = sum_i ||W_i||^2 beside it); in the compressed-computation model
||W_i|| = sqrt(||W_in[:, i]|| ||W_out[i, :]||), because W_in a, W_out / a is the same model.
It is not sum_i D_i, the number of dimensions used, which sits at m in every regime.

For every model the SAE measure (superlens.measures.sae, one recipe, several AE seeds) is fitted on
fresh activations, and Spearman's rho and Pearson's r between F and the known count are computed per
AE seed, then reported as mean +- std over AE seeds, per family and pooled.

    python -m superlens.studies.sae_validation --out runs/sae-validation            # the held-out grid
    python -m superlens.studies.sae_validation --grid dev --out runs/sae-dev        # the development grid

writes table.json (every model, the recipe, the correlations), sae_validation.png and report.html /
report.md. The development grid (model seeds 0, 1) is the one the recipe may be tuned on; the held-out
grid uses other model seeds (100, 101, 102) and is run once with the frozen recipe.

How the recipe was fixed (issue 8). Before any validation grid was run, on synthetic sanity data
(k orthogonal or random sparse directions): no decoder bias, unit-norm decoder rows, lr 1e-2 (2e-3
left oblique half-aligned latents), pooling of parallel latents (3 orthogonal features in 8 dims read
6.1 without it, 3.0 with it), dictionary 8 x width, L1 0.1 on unit-RMS rows, 3000 steps. The batch
(1024 -> 256) was cut for speed after one look at the small test grid (similar numbers). On the
development grid (36 models, 3 AE seeds; pooled / TMS / compressed-computation Spearman rho):
    a priori            0.650 +- 0.033   0.858 +- 0.037   0.394 +- 0.030
    L1 0.03             0.635 +- 0.053   0.774            0.281
    L1 0.3              0.663 +- 0.012   0.877            0.483
    dictionary 16 x     0.701 +- 0.031   0.833            0.381
    6000 steps          0.607 +- 0.030   0.840            0.402
    tied decoder        0.647 +- 0.009   0.704            0.363
No variant came near the target or beat the a-priori recipe by much more than the spread over AE
seeds, so the a-priori recipe was frozen and run once on the held-out grid: pooled rho 0.718 +- 0.036,
r 0.612 +- 0.009; TMS rho 0.872 +- 0.017, r 0.906 +- 0.010; compressed computation rho 0.466 +- 0.040,
r 0.484 +- 0.011 (48 models, 3 AE seeds). The target (pooled rho >= 0.9) is not met.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from superlens.config import SAEValidationConfig
from superlens.measures.planted import feature_recovery
from superlens.measures.sae import SAERecipe, activation_scale, fit_measure
from superlens.measures.sae_agreement import correlation_tables
from superlens.studies.base import SweepStudy, rows_base, threads_for
from superlens.toy.known_features import cc_models, tms_models
from superlens.report.sae_validation_report import (PLANTED_CAPTION, plot_planted, plot_validation,
                                                   report_html, report_markdown, validation_sections)
from superlens.toy.phases import NORM_REPRESENTED

@dataclass(frozen=True)
class ValidationGrid:
    """The toy models of the validation. Model seeds differ between the dev and held-out grids."""

    model_seeds: tuple[int, ...] = (100, 101, 102)
    rows: int = 20_000  # activation rows per model for the SAE
    # classic toy model
    tms_n: int = 20
    tms_m: int = 5
    tms_p: tuple[float, ...] = (1.0, 0.4, 0.16, 0.063, 0.025, 0.01)
    tms_decay: tuple[float, ...] = (1.0, 0.8)  # importance decay ** j; 1.0 = uniform
    tms_steps: int = 4000
    tms_batch: int = 1024
    tms_lr: float = 1e-2
    # compressed computation
    cc_n: int = 40
    cc_widths: tuple[int, ...] = (5, 10, 20)
    cc_p: tuple[float, ...] = (0.02, 0.1)
    cc_q: tuple[float, ...] = (2.0, 4.0)
    cc_steps: int = 1000
    cc_batch: int = 2048
    cc_lr: float = 3e-3
    cc_seeds: int = 1  # the first cc_seeds of model_seeds (the family has 12 cells per seed)


GRIDS = {
    "heldout": ValidationGrid(),
    "dev": ValidationGrid(model_seeds=(0, 1)),
    # the test's grid: a few cells per family, short training, and few rows
    "small": ValidationGrid(model_seeds=(7,), rows=4000, tms_p=(1.0, 0.1, 0.02), tms_decay=(1.0, 0.8),
                            tms_steps=2000, cc_widths=(5, 10), cc_p=(0.05,), cc_steps=600,
                            cc_batch=1024),
}


# ------------------------------------------------------------------------------------------ models

def train_tms_models(grid: ValidationGrid, device="cpu") -> list[dict]:
    """Every TMS cell x model seed of the grid, on one instance axis."""
    cells = [(p, dec, s) for dec in grid.tms_decay for p in grid.tms_p for s in grid.model_seeds]
    return tms_models(cells, grid.tms_n, grid.tms_m, steps=grid.tms_steps, batch_size=grid.tms_batch,
                      lr=grid.tms_lr, rows=grid.rows, device=device)


def train_cc_models(grid: ValidationGrid, device="cpu") -> list[dict]:
    """Every compressed-computation cell x model seed of the grid (one instance axis per width)."""
    seeds = grid.model_seeds[: grid.cc_seeds]
    out = []
    for h in grid.cc_widths:
        cells = [(p, q, s) for q in grid.cc_q for p in grid.cc_p for s in seeds]
        out += cc_models(cells, grid.cc_n, h, steps=grid.cc_steps, batch_size=grid.cc_batch,
                         lr=grid.cc_lr, rows=grid.rows, device=device)
    return out


# ----------------------------------------------------------------------------------------- measure

def measure_models(models: list[dict], recipe: SAERecipe, ae_seeds: Sequence[int]) -> None:
    """Fit the SAE measure on every model's activations (models of one width share an instance
    axis); adds F, F_raw, fvu, l0, dead_fraction (lists over AE seeds), their summary F_mean, F_std
    (ddof = 1) and F_over_dict, dict_size and k_used (the BatchTopK k the statistics come from, see
    fit_measure) to each entry; a planted entry (its directions under "dirs") also gets mcc and
    recovered (lists over AE seeds, superlens.measures.planted.feature_recovery) and their means."""
    by_width: dict[int, list[dict]] = {}
    for e in models:
        by_width.setdefault(e["acts"].shape[1], []).append(e)
    for width, group in sorted(by_width.items()):
        x = torch.stack([e["acts"].to(torch.float32) for e in group])  # [M, rows, N]
        scales = [activation_scale(xm, recipe.scale) for xm in x]
        x /= torch.tensor(scales)[:, None, None]
        fit, st = fit_measure(x, recipe, ae_seeds)
        S = len(ae_seeds)
        for k, e in enumerate(group):
            sl = slice(k * S, (k + 1) * S)
            e["F"] = st["features"][sl].tolist()
            e["F_raw"] = st["features_raw"][sl].tolist()
            for key in ("fvu", "l0", "dead_fraction"):
                e[key] = st[key][sl].tolist()
            e["k_used"] = float(st["k"][sl].mean())  # the fewest-latents rule's k (fit_measure)
            e["dict_size"] = recipe.dict_size(width)
            e["scale"] = scales[k]
            e["sae_steps"], e["sae_batch"] = fit.steps, fit.batch
            e["F_mean"] = float(np.mean(e["F"]))
            e["F_std"] = float(np.std(e["F"], ddof=1)) if len(e["F"]) > 1 else 0.0
            e["F_over_dict"] = e["F_mean"] / e["dict_size"]
            if "dirs" in e:  # planted: are the latents the features?
                rec = [feature_recovery(st["decoder"][i], st["mass"][i], e["dirs"])
                       for i in range(sl.start, sl.stop)]
                for key in ("mcc", "recovered"):
                    e[key] = [r[key] for r in rec]
                    e[key + "_mean"] = float(np.mean(e[key]))


def run_validation(grid: ValidationGrid | str = "heldout", recipe: SAERecipe | None = None,
                   ae_seeds: Sequence[int] = (0, 1, 2), device="cpu", progress: bool = True) -> dict:
    """Train the grid's toy models, fit the measure, correlate. Returns the table (JSON-ready)."""
    grid_name = grid if isinstance(grid, str) else "custom"
    grid = GRIDS[grid] if isinstance(grid, str) else grid
    recipe = recipe or SAERecipe()
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if progress else (lambda *a: None)
    t0 = time.perf_counter()
    models = train_tms_models(grid, device) + train_cc_models(grid, device)
    t_train = time.perf_counter() - t0
    say(f"trained {len(models)} toy models in {t_train:.1f} s")
    measure_models(models, recipe, ae_seeds)
    t_sae = time.perf_counter() - t0 - t_train
    say(f"fitted {len(models) * len(ae_seeds)} SAEs in {t_sae:.1f} s")
    for e in models:
        del e["acts"]
    return {"grid_name": grid_name, "grid": asdict(grid), "recipe": recipe.as_dict(),
            "ae_seeds": list(ae_seeds), "represented_norm": NORM_REPRESENTED, "models": models,
            **correlation_tables(models), "train_seconds": t_train, "sae_seconds": t_sae}


# ------------------------------------------------------------------------------ the sweep adapter

# training defaults per family (the validation grids' settings)
FAMILY_DEFAULTS = {"tms": {"n_features": 20, "steps": 4000, "batch_size": 1024, "lr": 1e-2},
                   "cc": {"n_features": 40, "steps": 1000, "batch_size": 2048, "lr": 3e-3}}


def resolved(cfg) -> dict:
    """A point's training settings with the family's defaults filled in."""
    if cfg.family == "planted":  # nothing trains: the directions [K, N] are the model
        return {"n_features": cfg.k_features, "steps": 0, "batch_size": 0, "lr": 0.0}
    d = FAMILY_DEFAULTS[cfg.family]
    return {k: getattr(cfg, k) if getattr(cfg, k) is not None else v for k, v in d.items()}


def point_recipe(cfg) -> SAERecipe:
    """SAERecipe() with the point's sae_* overrides."""
    keys = ("l1", "dict_multiple", "steps", "k", "fvu_fewer", "fvu_more", "k_max", "sparsity",
            "merge_cos", "train_rows")
    over = {k: getattr(cfg, "sae_" + k) for k in keys if getattr(cfg, "sae_" + k) is not None}
    return SAERecipe(**over)


def planted_spec(cfg):
    """The PlantedSpec of a planted point (its model_seed seeds the directions and the draws)."""
    from superlens.measures.planted import PlantedSpec

    return PlantedSpec(n=cfg.n_hidden, k=cfg.k_features, active=cfg.active, frequency=cfg.frequency,
                       alpha=cfg.alpha, magnitude=cfg.magnitude, directions=cfg.directions,
                       overlap=cfg.overlap, cooccur=cfg.cooccur, seed=cfg.model_seed)


def planted_models(cfgs) -> list[dict]:
    """One validation entry per planted point: its activations and its truth F_true."""
    from superlens.measures.planted import planted_activations

    out = []
    for c in cfgs:
        x, info = planted_activations(planted_spec(c), c.rows)
        out.append({"family": "planted", "p": c.active / c.k_features, "importance": c.frequency,
                    "width": c.n_hidden, "loss_power": None, "model_seed": c.model_seed,
                    "k_features": c.k_features, "active": c.active, "magnitude": c.magnitude,
                    "directions": c.directions, "represented": info["f_true"],
                    "frobenius_sq": None, "rows_per_feature": info["rows_per_feature"], "acts": x,
                    "dirs": info["directions"]})
    return out


FROZEN = SAERecipe().as_dict()

# planted layers at least this wide are fitted one point to a group (SAEValidationSweep.group_size)
WIDE_ALONE = 256
# one pre-activation's element-wise work in a fit step, in flop of the products (measured on 2 CPU
# cores, third held-out grid: ~17 ns an element against ~100 GFLOP/s for the products; it orders
# the groups about as their measured times go: width 128 > 64 > the toys ~ one 512-wide point > 16)
ELEMENT_FLOP = 1700.0


def recipe_groups(rows: list[dict]) -> list[list[dict]]:
    """A sweep's rows grouped by the SAE recipe they were fitted with (a spec with an sae_* axis,
    such as the development grids, fits several): the frozen recipe's group first, then the others
    in the order they first appear."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(json.dumps(r["recipe"], sort_keys=True), []).append(r)
    return sorted(groups.values(), key=lambda g: g[0]["recipe"] != FROZEN)


def table_from_rows(rows: list[dict], name: str = "sweep") -> dict:
    """A validation table (as run_validation returns) from a sweep's rows (at least one)."""
    return {"grid_name": name, "models": rows, "represented_norm": NORM_REPRESENTED,
            "ae_seeds": list(range(len(rows[0]["F"]))), "recipe": rows[0]["recipe"],
            **correlation_tables(rows)}


class SAEValidationSweep(SweepStudy):
    """Each point one toy model with a known feature count; the points of a group (same family,
    shape, training and recipe) train together on one instance axis, then the SAE measure is fitted
    to every model's layer with `ae_seeds` AE seeds. The report correlates F with the known count
    over all points (pooled and per family), as `python -m superlens.studies.sae_validation` does."""

    name = "sae-validation"
    config = SAEValidationConfig
    instance_fields = frozenset({"p", "importance_decay", "loss_power", "model_seed", "k_features",
                                 "active", "frequency", "alpha", "magnitude", "directions", "overlap",
                                 "cooccur"})
    table_columns = ["point", "family", "n_hidden", "k_features", "active", "p", "importance",
                     "loss_power", "model_seed", "represented", "weight_entropy", "F_mean", "F_std",
                     "F_raw_mean", "F_over_dict", "fvu_mean", "l0_mean", "dead_mean", "k_used",
                     "mcc_mean", "recovered_mean"]
    point_words = ("points of one family, shape and recipe trained together on the instance axis, "
                   "then an SAE fitted to each point's layer")

    def checker(self):
        from superlens.errors import ConfigError

        def check(cfg, where: str) -> None:
            if cfg.family == "cc" and cfg.importance_decay != 1.0:
                raise ConfigError(f"{where}: importance_decay applies to family tms only")
            if cfg.family == "tms" and cfg.loss_power != 2.0:
                raise ConfigError(f"{where}: loss_power applies to family cc only")
            if cfg.family == "planted":
                if cfg.active > cfg.k_features:
                    raise ConfigError(f"{where}: active = {cfg.active} must be <= k_features = "
                                      f"{cfg.k_features}")
                return
            n = cfg.n_features or FAMILY_DEFAULTS[cfg.family]["n_features"]
            if cfg.family == "tms" and cfg.n_hidden >= n:
                raise ConfigError(f"{where}: n_hidden = {cfg.n_hidden} must be < n_features = {n}")
        return check

    def check_groups(self, groups, check) -> None:
        # the report correlates F with the known count over the points (pooled and per family):
        # a rank correlation needs at least 3 models
        n = sum(len(g.points) for g in groups)
        if n < 3:
            from superlens.errors import ConfigError

            raise ConfigError(f"sae-validation sweep: {n} point(s); the study correlates F with the "
                              "known feature count over its points and needs at least 3 (add axis "
                              "values)")

    def check_sizes(self, groups) -> None:
        """Lower bounds of a group's float32 memory, from the configs alone: training (the weight
        matrix with its gradient and two Adam moments, 4 I n m floats; a batch, I B (2n + m)), then
        the activations (I rows (n + m)) beside the autoencoders (per model and AE seed, encoder and
        decoder [m, D] with gradients and two Adam moments, 8 m D floats; a minibatch I S B D)."""
        from superlens.device import pick_device
        from superlens.errors import ConfigError
        from superlens.limits import FLOAT, check_fits

        for g in groups:
            c = g.points[0].config
            t = resolved(c)
            n, m, I = t["n_features"], c.n_hidden, len(g.points)
            try:
                recipe = point_recipe(c)
            except ValueError as e:
                raise ConfigError(f"sweep point(s) {g.points[0].index}: {e}") from None
            D = recipe.dict_size(m)
            _, B = recipe.schedule(m)
            train = (4 * I * n * m + I * t["batch_size"] * (2 * n + m)) * FLOAT
            sae = (I * c.rows * (n + m) + I * c.ae_seeds * (8 * m * D + B * D)) * FLOAT
            try:
                check_fits(max(train, sae), {"n_features": n, "n_hidden": m,
                                             "batch_size": t["batch_size"], "rows": c.rows,
                                             "sae_dict_multiple": recipe.dict_multiple,
                                             "ae_seeds": c.ae_seeds},
                           f"{I} toy model(s) and their autoencoders", pick_device(c.device))
            except ConfigError as e:
                pts = ", ".join(str(p.index) for p in g.points)
                raise ConfigError(f"sweep point(s) {pts}: {e}") from None

    def group_size(self, config) -> int | None:
        """Planted points WIDE_ALONE or more wide run one to a group: a single such SAE fills a core,
        so an instance axis saves nothing and workers can share them (each fit equals a lone fit)."""
        return 1 if config.family == "planted" and config.n_hidden >= WIDE_ALONE else None

    def group_cost(self, group) -> float:
        """Estimated work in flop-equivalents: each point's SAE fits at the recipe's k (the rules may
        add up to two more) and, for the toys, their training. A fit step costs its products
        (SAERecipe.row_flop a row) plus ELEMENT_FLOP per pre-activation (the top-k selection and the
        element-wise passes over the [rows, D] codes, which rule narrow layers)."""
        total = 0.0
        for p in group.points:
            c = p.config
            recipe = point_recipe(c)
            n, d = c.n_hidden, recipe.dict_size(c.n_hidden)
            steps, B = recipe.schedule(n)
            total += c.ae_seeds * steps * B * (recipe.row_flop(n) + ELEMENT_FLOP * d)
            t = resolved(c)
            total += 6.0 * t["steps"] * t["batch_size"] * t["n_features"] * n
        return total

    def run_group(self, group, options: dict) -> dict:
        from superlens.device import pick_device

        cfgs = [p.config for p in group.points]
        c0 = cfgs[0]
        device = pick_device(c0.device)
        t0 = time.perf_counter()
        if c0.family == "planted":
            threads = threads_for(None, len(cfgs) * c0.n_hidden * SAERecipe().dict_size(c0.n_hidden),
                                  options)
            models = planted_models(cfgs)
        elif c0.family == "tms":
            t = resolved(c0)
            threads = threads_for(None, len(cfgs) * t["batch_size"] * t["n_features"], options)
            cells = [(c.p, c.importance_decay, c.model_seed) for c in cfgs]
            models = tms_models(cells, t["n_features"], c0.n_hidden, steps=t["steps"],
                                batch_size=t["batch_size"], lr=t["lr"], rows=c0.rows, device=device)
        else:
            t = resolved(c0)
            threads = threads_for(None, len(cfgs) * t["batch_size"] * t["n_features"], options)
            cells = [(c.p, c.loss_power, c.model_seed) for c in cfgs]
            models = cc_models(cells, t["n_features"], c0.n_hidden, steps=t["steps"],
                               batch_size=t["batch_size"], lr=t["lr"], rows=c0.rows, device=device)
        t_train = time.perf_counter() - t0
        recipe = point_recipe(c0)
        for e in models:
            e["acts"] = e["acts"].cpu()
        measure_models(models, recipe, tuple(range(c0.ae_seeds)))
        t_sae = time.perf_counter() - t0 - t_train
        rows = rows_base(group)
        per_point = {}
        for row, pt, e in zip(rows, group.points, models):
            del e["acts"]
            e.pop("dirs", None)
            for k in ("fvu", "l0", "dead_fraction", "F_raw"):
                e[("dead" if k == "dead_fraction" else k) + "_mean"] = float(np.mean(e[k]))
            row.update(e, n_hidden=pt.config.n_hidden, recipe=recipe.as_dict(),
                       train_seconds=t_train / len(models), sae_seconds=t_sae / len(models))
            per_point[pt.index] = dict(row)
        return {"rows": rows, "point_metrics": per_point, "threads": threads}

    def report_sections(self, rows: list[dict], fig_dir: Path):
        """The page: the calibration and toy-model sections for one recipe (a spec with an sae_*
        axis fits several: then a table compares them first, and the sections below it, the figures
        and the run's sae_calibration.json are the frozen recipe's, or the first recipe's)."""
        if not rows:
            return [], []
        from superlens.measures.sae_agreement import calibration_table
        from superlens.measures.sae_calibration import TARGETS
        from superlens.report.sae_validation_report import recipe_comparison
        from superlens.runs import write_json

        groups = recipe_groups(rows)
        command = self.command_words(fig_dir)
        cals = [calibration_table(g, TARGETS, command, g[0]["recipe"]) for g in groups]
        compare = ([recipe_comparison(groups, cals, frozen=groups[0][0]["recipe"] == FROZEN)]
                   if len(groups) > 1 else [])
        rows = groups[0]
        table = table_from_rows(rows)
        fig_dir.mkdir(parents=True, exist_ok=True)
        figs = []
        if any(e["family"] != "planted" for e in rows):
            plot_validation(table, fig_dir / "sae_validation.png")
            figs.append(("sae_validation.png", "Toy models. Left: F (mean ± std over AE seeds) against "
                         "the represented count (dashed: F = count); colour: feature probability p. "
                         "Right: F over the dictionary size (1 = the cap)."))
        cal = None
        if any(e["family"] == "planted" for e in rows):
            cal = cals[0]
            # the run's calibration, in the format the checked-in table has (sae_calibration.json)
            write_json(fig_dir.parent / "sae_calibration.json", cal)
            figs.append((plot_planted(table, fig_dir / "sae_planted.png"), PLANTED_CAPTION))
        return compare + validation_sections(table, None, every_model=False, calibration=cal), figs

    @staticmethod
    def command_words(fig_dir: Path) -> str:
        """The sweep's command as a reader would type it: the spec as given on the command line
        (recorded in the sweep's meta.json; its file name alone where it was an absolute path), and
        the sweep folder's name, never this machine's paths."""
        spec = "SPEC"
        try:
            argv = json.loads((fig_dir.parent / "meta.json").read_text()).get("argv") or []
        except (OSError, ValueError):
            argv = []
        tomls = [a for a in argv if isinstance(a, str) and a.endswith(".toml")]
        if tomls:
            spec = tomls[0] if not Path(tomls[0]).is_absolute() else Path(tomls[0]).name
        return f"superlens sweep {spec} --out {fig_dir.parent.name}"


STUDY = SAEValidationSweep()


def write_outputs(table: dict, out: Path, command: str) -> None:
    from superlens.runs import atomic_write_text, write_json

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "table.json", table)
    plot_validation(table, out / "sae_validation.png")
    atomic_write_text(out / "report.md", report_markdown(table, command))
    atomic_write_text(out / "report.html", report_html(table, out / "sae_validation.png", command))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m superlens.studies.sae_validation",
                                 description="Validate the SAE superposition measure on toy models "
                                             "whose represented features are known.")
    ap.add_argument("--out", required=True, help="output folder (refused if it exists, unless --force)")
    ap.add_argument("--grid", default="heldout", choices=sorted(GRIDS))
    ap.add_argument("--ae-seeds", type=int, default=3, help="AE seeds per model (>= 1)")
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--render", action="store_true",
                    help="only redraw the figure and reports of --out from its table.json")
    ap.add_argument("--recipe", default=None, help='JSON overrides of SAERecipe, e.g. \'{"l1": 0.2}\'')
    a = ap.parse_args(argv)
    from superlens.runs import StagedRunDir, read_json

    if a.render:
        table = read_json(Path(a.out) / "table.json")
        table.update(correlation_tables(table["models"]))
        write_outputs(table, Path(a.out), table.get("command", "python -m superlens.studies.sae_validation"))
        return 0
    try:
        recipe = SAERecipe(**json.loads(a.recipe)) if a.recipe else SAERecipe()
    except (TypeError, ValueError) as e:
        print(f"error: --recipe: {e}", file=sys.stderr)
        return 2
    if a.ae_seeds < 1:
        print(f"error: --ae-seeds = {a.ae_seeds}, must be >= 1", file=sys.stderr)
        return 2
    if a.threads:
        torch.set_num_threads(a.threads)
    cmd = "python -m superlens.studies.sae_validation " + " ".join(argv if argv is not None else sys.argv[1:])
    try:
        with StagedRunDir(a.out, a.force) as tmp:
            table = run_validation(a.grid, recipe, tuple(range(a.ae_seeds)))
            table["command"] = cmd
            write_outputs(table, Path(tmp), cmd)
    except Exception as e:  # a refused output folder, most likely
        from superlens.errors import RunDirError

        if isinstance(e, RunDirError):
            print(f"error: {e}", file=sys.stderr)
            return 2
        raise
    c = table["correlations"]["pooled"]
    print(json.dumps({"rho_mean": c["rho_mean"], "rho_std": c["rho_std"], "r_mean": c["r_mean"],
                      "r_std": c["r_std"], "models": c["n"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
