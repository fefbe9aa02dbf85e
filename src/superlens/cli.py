"""Thin command line over the Python API: parse, load config, call, map errors to exit codes.

    superlens toy --out DIR [--config FILE.toml] [--p 0.02 ...]
    superlens active --preset digits --out DIR [--strategies a,b] [--seeds N] [--resume]
    superlens sweep SPEC.toml --out DIR [--backend local|ray]
    superlens measure --model SPEC --layers A,B (--data-dir DIR | --inputs F | --activations F) --out DIR
    superlens report DIR
    superlens --version
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from superlens.errors import SuperlensError, os_error_line
from superlens.runs import check_out


def _default(cls, name: str, base: dict | None = None):
    """A config field's default: from ``base`` (a preset) when it sets it, else the class's."""
    if base and name in base:
        return base[name]
    info = cls.model_fields[name]
    return info.default_factory() if info.default_factory is not None else info.default


def _fhelp(cls, name: str, text: str | None = None, base: dict | None = None,
           default_text: str | None = None) -> str:
    """Help for a flag that sets config field ``name``: what it is, its allowed values (the field's
    description, the same text a validation error quotes), and its default."""
    desc = text or cls.model_fields[name].description or ""
    if default_text is None:
        d = _default(cls, name, base)
        default_text = ("unset" if d is None else ",".join(d) if isinstance(d, list)
                        else str(d).lower() if isinstance(d, bool) else str(d))
    return f"{desc} (default: {default_text})".replace("%", "%%")


def _toy_parser(sub) -> None:
    from superlens.config import ToyConfig as T

    t = sub.add_parser("toy", help="the compressed-computation study (100 -> 10 MLP)",
                       description="Train y = W_out ReLU(W_in x) on sparse inputs (target ReLU(x)), "
                       "analyse it and write DIR/report.html. Flags override --config, which "
                       "overrides the defaults shown.")
    t.add_argument("--out", required=True, metavar="DIR", help="run directory to create (required)")
    t.add_argument("--config", metavar="FILE", help="TOML file with the fields below (snake_case, "
                   "e.g. n_features = 100; see examples/toy.toml) (default: none, the defaults below)")
    t.add_argument("--n-features", type=int, help=_fhelp(T, "n_features", "input features n, integer >= 1"))
    t.add_argument("--n-hidden", type=int, help=_fhelp(T, "n_hidden", "hidden neurons h, integer >= 1"))
    t.add_argument("--p", type=float, help=_fhelp(T, "p"))
    t.add_argument("--loss-power", type=float, help=_fhelp(T, "loss_power"))
    t.add_argument("--steps", type=int, help=_fhelp(T, "steps", "training steps, integer >= 1"))
    t.add_argument("--batch-size", type=int, help=_fhelp(T, "batch_size", "batch size, integer >= 1"))
    t.add_argument("--lr", type=float, help=_fhelp(T, "lr", "Adam learning rate > 0 (cosine-annealed)"))
    t.add_argument("--seeds", type=int, help=_fhelp(T, "seeds", "number of seeds, trained together "
                                                    "as instances, integer >= 1"))
    t.add_argument("--seed", type=int, help=_fhelp(T, "seed", "first seed, integer >= 0"))
    t.add_argument("--eval-samples", type=int, help=_fhelp(T, "eval_samples", default_text="unset"))
    t.add_argument("--bias", action="store_true", default=None,
                   help="give the model biases (default: no bias)")
    t.add_argument("--no-l2", dest="compare_l2", action="store_false", default=None,
                   help="skip training the same seeds under L2 (default: they are trained)")
    t.add_argument("--device", help=_fhelp(T, "device", "auto, cpu or cuda[:N]; auto uses CUDA "
                                          "when present"))
    t.add_argument("--threads", type=int, help=_fhelp(T, "threads", "torch threads >= 1",
                                                      default_text="1 for small runs, else all cores"))
    t.add_argument("--force", action="store_true", help="replace an existing run directory "
                   "(default: an existing one is refused)")
    t.add_argument("--quiet", action="store_true", help="no progress bars (default: shown)")


def _active_parser(sub, strategies: list[str] | None) -> None:
    from typing import get_args

    from superlens.active.presets import PRESETS
    from superlens.config import ActiveConfig as A, Dataset, ModelName

    base = PRESETS["digits"]

    def h(name, text=None, **kw):
        return _fhelp(A, name, text, base, **kw)

    a = sub.add_parser("active", help="the active-learning superposition study",
                       description="Train a baseline on all training data, then each strategy's "
                       "active-learning loop; compare superposition measures of their features and "
                       "write DIR/report.html. Settings come from the preset, then --config, then "
                       "flags; defaults shown are the digits preset's.")
    a.add_argument("--out", required=True, metavar="DIR",
                   help="run directory to create, or to continue with --resume (required)")
    a.add_argument("--preset", help="one of: " + ", ".join(PRESETS) + " (default: digits)")
    a.add_argument("--config", metavar="FILE", help="TOML file with ActiveConfig fields, applied over "
                   "the preset, e.g. epochs = 5 (default: none)")
    a.add_argument("--dataset", help=h("dataset", "one of: " + ", ".join(get_args(Dataset))))
    a.add_argument("--data-dir", metavar="DIR", help=h("data_dir", "folder holding the data set "
                   "(an image-folder tree train/<class>/*.jpg + test/ or val/, cifar10, tiny-imagenet)"))
    a.add_argument("--download", action="store_true", default=None,
                   help="download the data set where the network allows (default: no)")
    a.add_argument("--cache-dir", metavar="DIR", help="folder for decoded-image caches (default: "
                   "$XDG_CACHE_HOME/superlens or ~/.cache/superlens; never inside the data folder)")
    a.add_argument("--pool-size", type=int, help=h("pool_size", "class-balanced subset of the "
                                                   "training set used as the pool"))
    a.add_argument("--candidates", type=int, help=h("candidates", "random unlabelled candidates "
                                                    "scored per round"))
    a.add_argument("--test-size", type=int, help=h("test_size", "class-balanced subset of the test "
                                                   "set evaluated on"))
    a.add_argument("--sae", help=h("sae", "sparse-autoencoder measure: rounds, final or off"))
    a.add_argument("--sae-gflop", type=float, help=h("sae_gflop", "compute cap per sparse "
                                                     "autoencoder, GFLOP (2000: the calibrated "
                                                     "recipe's own)"))
    a.add_argument("--model", help=h("model", "one of: " + ", ".join(get_args(ModelName))))
    a.add_argument("--pretrained", action="store_true", default=None,
                   help="ImageNet weights for resnet18 (default: no)")
    a.add_argument("--weights-path", metavar="FILE", help=h("weights_path"))
    names = ", ".join(strategies) if strategies else "see superlens active --help"
    a.add_argument("--strategies", help=h("strategies", "comma-separated strategy names, from: "
                                          + names))
    a.add_argument("--seeds", type=int, help=h("seeds"))
    a.add_argument("--seed", type=int, help=h("seed"))
    a.add_argument("--epochs", type=int, help=h("epochs"))
    a.add_argument("--batch-size", type=int, help=h("batch_size", "training batch size, integer >= 1"))
    a.add_argument("--lr", type=float, help=h("lr"))
    a.add_argument("--lr-schedule", help=h("lr_schedule", "learning rate within each training: "
                                           "constant, or cosine (lr down to 0)"))
    a.add_argument("--initial-pool", type=int, help=h("initial_pool"))
    a.add_argument("--rounds", type=int, help=h("rounds"))
    a.add_argument("--query-size", type=int, help=h("query_size"))
    a.add_argument("--round-training", help=h("round_training", "scratch (a fresh model each round), "
                                              "warm (continue the last round's model) or paper"))
    a.add_argument("--optimizer", help=h("optimizer"))
    a.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help=h("augment", "random crop + flip"))
    a.add_argument("--normalize", help=h("normalize", "input normalisation: dataset, cifar-paper, "
                                         "imagenet or none"))
    a.add_argument("--image-size", type=int, help=h("image_size", default_text="the data set's own"))
    a.add_argument("--feature-layer", help=h("feature_layer", "module name whose output is the "
                                             "feature", default_text="the pooled penultimate layer"))
    a.add_argument("--dropout", type=float, help=h("dropout"))
    a.add_argument("--tsne-points", type=int, help=h("tsne_points"))
    a.add_argument("--device", help=h("device", "auto, cpu or cuda[:N]; auto uses CUDA when present"))
    a.add_argument("--threads", type=int, help=h("threads", "torch threads >= 1",
                                                 default_text="1 for small models, else all cores"))
    a.add_argument("--ensemble", type=int, help=h("ensemble"))
    a.add_argument("--force", action="store_true", help="replace an existing run directory "
                   "(default: an existing one is refused)")
    a.add_argument("--resume", action="store_true", help="continue an interrupted run in --out "
                   "(default: start a new one)")
    a.add_argument("--quiet", action="store_true", help="no progress bars (default: shown)")


MEASURE_DESCRIPTION = """\
The superposition profile of any model's layers. One pass over the data captures every --layers
output by forward hooks (eval mode, no gradients, batched, CUDA when present): a conv map [C, H, W]
gives H*W rows of C features (one per spatial position), a token sequence [T, D] T rows of D, a
dense layer [N] one row per sample. Per layer: the sparse-autoencoder feature count F and
psi = F / N (with its FVU, L0, dead latents, spread over autoencoder seeds, and whether the SAE
calibration trusts F at that width), effective rank, participation ratio, neuron |cos|, and with
class labels selectivity, class-mean cosine and silhouette of the per-sample (pooled) features.
Writes DIR/metrics.json and DIR/report.html (the profile against depth first). Activations are
cached on disk (float16, keyed by model, weights, layer, data, row cap and seed) and reused by a
later run; layers of one (rows, N) shape fit their autoencoders together.

Model SPEC (--model), one of:
  resnet18            a torchvision architecture name (any of torchvision.models.list_models()):
                      random weights drawn from --seed, or --weights FILE (a state_dict)
  runs/al/baseline/seed0/checkpoint.pt
                      a checkpoint written by `superlens active`: architecture, weights and input
                      normalisation come from the file (no --weights)
  model.ts            a TorchScript file (torch.jit.save of a scripted or traced module; no
                      --weights): only its outputs can be measured, see below
  mypkg.models:build  package.module:function; build() must return an nn.Module (called under
                      torch.manual_seed(--seed)); --weights FILE loads a state_dict into it

TorchScript: torch refuses Python forward hooks on a ScriptModule ("register_forward_hook is not
supported on ScriptModules"), and every submodule of a scripted or traced module is a ScriptModule
too (checked on torch 2.14 with torch.jit.script and torch.jit.trace, saved and loaded; a traced
module still in memory takes a hook on a submodule but never runs it, so superlens.measure refuses
it too). So of a TorchScript file only what forward returns can be measured: --layers output (a
tensor), output.KEY (a dict of tensors) or output.I (a tuple or list); a module path such as layer4
is refused with one line. To read inner layers, script a wrapper whose forward returns them as a
dict (--layers output.layer3,output.layer4), or give the Python architecture (a torchvision name or
package.module:function) with --weights. In a Python model that holds a scripted submodule, the
Python modules can be measured; the scripted submodule and everything inside it cannot
(--list-layers marks it).

  superlens measure --model resnet18 --weights r18.pth --layers layer1,layer2,layer3,layer4 \\
      --data-dir ~/data/cifar10 --out runs/r18
  superlens measure --model runs/al/baseline/seed0/checkpoint.pt --list-layers --data-dir ~/data/cifar10
  superlens measure --activations acts.safetensors --labels y.npy --out runs/acts"""


def _measure_parser(sub, sae_gflop: float | None) -> None:
    from superlens.config import MeasureConfig as M

    def h(name, text=None, **kw):
        return _fhelp(M, name, text, **kw)

    m = sub.add_parser("measure", help="the superposition profile of any model's layers",
                       description=MEASURE_DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    m.add_argument("--model", metavar="SPEC", help=h("model", "the model: a torchvision name, a "
                   "checkpoint.pt of superlens active, a TorchScript file (outputs only) or "
                   "package.module:function (the forms above)", default_text="none; required "
                   "unless --activations"))
    m.add_argument("--weights", metavar="FILE", help=h("weights", "a state_dict (.pt, .pth: a dict "
                   "of tensors, or one under 'state_dict' or 'model'; .safetensors) loaded strictly "
                   "into a torchvision or package.module:function model; a key that does not fit is "
                   "refused, naming it", default_text="none: the model's own or random weights"))
    m.add_argument("--layers", metavar="NAME[,NAME...]", help=h("layers", "comma-separated layers to "
                   "measure: module paths as --list-layers prints them (layer4, features.3), or the "
                   "model's return value as output, output.KEY (a dict) or output.I (a tuple); with "
                   "--activations: entry names of the file", default_text="every entry, with "
                   "--activations; required otherwise"))
    m.add_argument("--list-layers", action="store_true", help="print every module path with its "
                   "type and output shape on one sample (of the data, or zeros of --input-shape), "
                   "then the model's outputs, and exit; needs --model, not --out (default: off)")
    m.add_argument("--input-shape", metavar="C,H,W", default="3,224,224", help="with --list-layers "
                   "and no --data-dir or --inputs: the shape of the one zero sample run through the "
                   "model (default: 3,224,224)")
    m.add_argument("--data-dir", metavar="DIR", help=h("data_dir", "images to run: an image-folder "
                   "tree (train/<class>/*.jpg|png + test/ or val/), CIFAR-10's python batches or "
                   "tiny-imagenet-200, the layout detected and decoded once into the cache as "
                   "superlens active does; the folder's classes are the labels",
                   default_text="none; one of --data-dir, --inputs, --activations is required"))
    m.add_argument("--inputs", metavar="FILE", help=h("inputs", "a tensor file of inputs [n, ...] "
                   "(.pt, .npy, .npz, .safetensors): one tensor, or a dict with inputs (or x) and "
                   "labels (or y); floats are fed as they are, uint8 as x / 255",
                   default_text="none"))
    m.add_argument("--activations", metavar="FILE", help=h("activations", "measure activations "
                   "directly, no model: a tensor file (.pt, .npy, .npz, .safetensors) holding one "
                   "[rows, N] tensor per layer (a dict; its order is the depth), optionally a "
                   "labels entry with one label per row", default_text="none"))
    m.add_argument("--split", help=h("split", "which split of --data-dir is run: test or train"))
    m.add_argument("--max-images", type=int, metavar="N", help=h("max_images", "run a seeded "
                   "(--seed) random subset of N samples of the data, integer >= 1",
                   default_text="all"))
    m.add_argument("--labels", metavar="auto|none|FILE", help=h("labels", "class labels for the "
                   "label measures (selectivity, class-mean cosine, silhouette): auto (the data "
                   "folder's classes, or a labels entry of the file), none (skip those measures), "
                   "or a tensor file of [n] integer labels, one per sample"))
    m.add_argument("--normalize", metavar="NAME", help=h("normalize", "how --data-dir images are "
                   "normalised before the model: dataset (the training split's per-channel mean and "
                   "std), cifar-paper (the statistics arXiv 2412.16168's code used), imagenet "
                   "(torchvision's ImageNet statistics) or none (x / 255 only)",
                   default_text="an active checkpoint's own, else dataset"))
    m.add_argument("--image-size", type=int, metavar="S", help=h("image_size", "resize --data-dir "
                   "images to S x S pixels, integer >= 1", default_text="an active checkpoint's "
                   "own, else the images' own"))
    m.add_argument("--cache-dir", metavar="DIR", help=h("cache_dir", "folder for the activation "
                   "cache (DIR/activations, reused by any later run on the same model, weights, "
                   "layer and data) and the decoded images",
                   default_text="$XDG_CACHE_HOME/superlens or ~/.cache/superlens"))
    m.add_argument("--batch-size", type=int, metavar="B", help=h("batch_size", "samples per forward "
                   "pass of the capture, integer >= 1 (memory, not results)"))
    m.add_argument("--max-rows", type=int, metavar="R", help=h("max_rows", "activation rows kept per "
                   "layer, integer >= 100: a layer with more (samples x spatial positions or tokens) "
                   "keeps a seeded uniform subset of R rows; every measure but the label ones reads "
                   "these rows (the label measures read every sample's mean over all its rows)"))
    m.add_argument("--seed", type=int, help=h("seed", "seed of the --max-images subset, the row "
                   "subsets, the silhouette subset and a torchvision or factory model's random "
                   "weights, integer >= 0 (the autoencoders use seeds 0 .. --sae-seeds - 1)"))
    m.add_argument("--sae", metavar="on|off", help=h("sae", "the sparse-autoencoder measure (F, "
                   "psi, FVU, L0, dead latents): on, or off to skip it (the geometry and label "
                   "measures alone take seconds; the autoencoders take most of a run's time)"))
    m.add_argument("--sae-seeds", type=int, metavar="K", help=h("sae_seeds", "autoencoders fitted "
                   "per layer, each from its own seed, integer in [1, 20]; F is their mean and its "
                   "spread the profile's error bar"))
    m.add_argument("--sae-gflop", type=float, metavar="G", help=h("sae_gflop", "compute cap per "
                   "autoencoder in GFLOP, > 0: on wide layers the minibatch, then the step count, "
                   "are cut to stay under it (lower: faster, less converged)", default_text="the SAE recipe's, "
                   + (f"{sae_gflop:g}" if sae_gflop is not None else "see superlens measure --help")))
    m.add_argument("--device", help=h("device", "where the capture and the autoencoders run: auto, "
                   "cpu or cuda[:N]; auto uses CUDA when present"))
    m.add_argument("--threads", type=int, metavar="N", help=h("threads", "torch threads, integer "
                   ">= 1", default_text="all cores"))
    m.add_argument("--out", metavar="DIR", help="run directory to create (config.json, meta.json, "
                   "layers/, metrics.json, figures/, report.html), or to continue with --resume "
                   "(required unless --list-layers; default: none)")
    m.add_argument("--force", action="store_true", help="replace an existing run directory "
                   "(default: an existing one is refused)")
    m.add_argument("--resume", action="store_true", help="continue a cut run in --out with the same "
                   "settings: finished layers are kept and a cut capture continues (default: start "
                   "a new one)")
    m.add_argument("--quiet", action="store_true", help="no progress bars or status lines (default: "
                   "shown on stderr)")


SWEEP_DESCRIPTION = """\
Run a grid of toy, tms, active or sae-validation studies from a TOML spec and write DIR/report.html, with one
row per point in DIR/table.csv. A spec holds:

  name = "width_sparsity"          # a name for the report
  study = "toy"                    # toy, tms, active or sae-validation
  [base]                           # fields of that study's config, shared by every point
  n_features = 100
  [axes]                           # the grid is the cartesian product of the axes
  n_hidden = [5, 10, 20]           # a list of values,
  p = {log = [0.003, 0.3], num = 7}   # or log- / linear-spaced: {linear = [lo, hi], num = N}
  # cells = [{...}, {...}]         # or sub-grids joined, not crossed: each table sets several
                                   # fields (its lists expand); see sae_validation.toml
  [options]                        # toy only
  eval_samples = 50000             # evaluation samples per point (default: adaptive to p)

Worked examples: examples/*.toml in the source tree (width_sparsity.toml, l2_vs_l4.toml,
tms_pentagon.toml, tms_phase_change.toml, active_strategies.toml, sae_validation.toml). An interrupted sweep resumes
when rerun with the same --out."""


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (its default prints the whole usage block first)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("superlens")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser. ``argv`` is only a hint: the strategy registry (it imports torch) is read to list
    the allowed names only when the command is `active`, the one help page that shows them."""
    args = sys.argv[1:] if argv is None else argv
    ap = _Parser(prog="superlens", description="Measure superposition in neural networks: the "
                 "compressed-computation toy study, the active-learning study, sweeps over either, "
                 "and their reports. Each command's --help lists its flags with defaults.")
    ap.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _toy_parser(sub)
    strategies = None
    if "active" in args:
        from superlens.active.strategies import available

        strategies = available()
    _active_parser(sub, strategies)
    sae_gflop = None
    if "measure" in args:  # the recipe module imports torch: read only for the page that shows it
        from superlens.measures.sae import SAERecipe

        sae_gflop = SAERecipe().max_gflop
    _measure_parser(sub, sae_gflop)
    r = sub.add_parser("report", help="re-render report.html of a run directory (no training)",
                       description="Redraw the figures and report.html of a finished toy, active or "
                       "sweep run directory, without training.")
    r.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by superlens toy, active "
                   "or sweep")
    s = sub.add_parser("sweep", help="a grid of runs from a TOML spec (see sweep --help)",
                       description=SWEEP_DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("spec", metavar="SPEC.toml", help="the sweep spec (format above; e.g. "
                   "examples/width_sparsity.toml)")
    s.add_argument("--out", required=True, metavar="DIR", help="sweep directory to create or "
                   "resume (required)")
    s.add_argument("--backend", default="local", choices=["local", "ray"],
                   help="local (a process pool on this machine) or ray (needs the ray extra) "
                   "(default: local)")
    s.add_argument("--address", help="Ray cluster address or 'auto' (default: unset, a local Ray "
                   "instance); with --backend ray only")
    s.add_argument("--workers", type=int, help="local process-pool size, integer >= 1 (default: from "
                   "the core count and the points' size)")
    s.add_argument("--force", action="store_true", help="start over, replacing an existing sweep "
                   "directory (default: one with the same spec resumes, another spec is refused)")
    s.add_argument("--quiet", action="store_true", help="no progress bars (default: shown)")
    s.add_argument("--verbose", action="store_true", help="show Ray's own log lines (default: hidden)")
    return ap


def _overrides(ns: argparse.Namespace, skip: set[str]) -> dict:
    return {k: v for k, v in vars(ns).items() if k not in skip and v is not None}


def cmd_toy(ns: argparse.Namespace) -> int:
    from superlens.config import ToyConfig, load_config
    from superlens.studies.toy import run_toy

    check_out(ns.out, force=ns.force, inputs=(ns.config,))
    cfg = load_config(ToyConfig, ns.config,
                      _overrides(ns, {"command", "out", "config", "force", "quiet"}))
    metrics = run_toy(cfg, ns.out, force=ns.force, progress=not ns.quiet, argv=sys.argv,
                      inputs=(ns.config,))
    print(f"wrote {Path(ns.out) / 'report.html'}  (mse_active_mean={metrics['mse_active_mean']:.4f}, "
          f"gain={metrics['gain_mean']:.3f}, train {metrics['train_seconds']:.1f}s)")
    return 0


def active_config(ns: argparse.Namespace):
    """The ActiveConfig that `superlens active` flags describe (preset, then file, then flags); with
    --resume on an existing run, the run's own config.json, the flags given checked against it."""
    from superlens.active.study import config_for_resume, config_from_cli

    ov = _overrides(ns, {"command", "out", "config", "force", "resume", "quiet", "preset"})
    if "strategies" in ov:
        ov["strategies"] = [s.strip() for s in ov["strategies"].split(",") if s.strip()]
    if ns.quiet:
        ov["progress"] = False
    if getattr(ns, "resume", False) and (Path(ns.out) / "config.json").is_file():
        from superlens.runs import check_resume_dir

        check_resume_dir(ns.out, kind="active")
        return config_for_resume(ns.out, ns.preset, ns.config, ov)
    return config_from_cli(ns.preset, ns.config, ov)


def cmd_active(ns: argparse.Namespace) -> int:
    from superlens.active.study import run_active
    from superlens.errors import ConfigError

    if ns.force and ns.resume:
        raise ConfigError("--force and --resume: choose one (--force replaces the run, --resume "
                          "continues it)")
    check_out(ns.out, force=ns.force, inputs=(ns.config,))
    from superlens.studies.active import render_active_report

    run_active(active_config(ns), ns.out, force=ns.force, resume=ns.resume, argv=sys.argv,
               render=render_active_report, inputs=(ns.config,))
    print(f"wrote {Path(ns.out) / 'report.html'}")
    return 0


def cmd_measure(ns: argparse.Namespace) -> int:
    from superlens.config import MeasureConfig
    from superlens.errors import ConfigError

    ov = _overrides(ns, {"command", "out", "force", "resume", "quiet", "list_layers", "input_shape"})
    if "layers" in ov:
        ov["layers"] = [s.strip() for s in ov["layers"].split(",") if s.strip()]
    if ns.quiet:
        ov["progress"] = False
    cfg = MeasureConfig.build(ov, source="measure")
    if ns.list_layers:
        from superlens.profile.run import list_model_layers

        try:
            shape = [int(v) for v in ns.input_shape.split(",")]
        except ValueError:
            raise ConfigError(f"--input-shape {ns.input_shape!r}: expected integers C,H,W") from None
        for path, kind, shape_text in list_model_layers(cfg, shape):
            print(f"{path:40s} {kind:22s} {shape_text}")
        return 0
    if ns.out is None:
        raise ConfigError("--out: required (the run directory to write)")
    from superlens.profile.run import run_measure
    from superlens.report.measure_report import render_measure_report

    run_measure(cfg, ns.out, force=ns.force, resume=ns.resume, argv=sys.argv,
                render=render_measure_report)
    print(f"wrote {Path(ns.out) / 'report.html'}")
    return 0


def cmd_report(ns: argparse.Namespace) -> int:
    from superlens.errors import RunDirError
    from superlens.readers import read_meta

    run = Path(ns.run_dir)
    if not run.is_dir():
        raise RunDirError(f"run directory {run}: not found" if not run.exists()
                          else f"run directory {run}: not a directory")
    if not (run / "meta.json").exists():
        raise RunDirError(f"run directory {run}: no meta.json (not a superlens run directory)")
    kind = read_meta(run).get("kind")
    if kind == "toy":
        from superlens.studies.toy import render_toy_report as render
    elif kind == "active":
        from superlens.studies.active import render_active_report as render
    elif kind == "sweep":
        from superlens.sweep.engine import render_sweep_report as render
    elif kind == "measure":
        from superlens.report.measure_report import render_measure_report as render
    else:
        raise RunDirError(f"run directory {run}: unknown run kind {kind!r} in meta.json")
    print(f"wrote {render(run)}")
    return 0


def cmd_sweep(ns: argparse.Namespace) -> int:
    from superlens.sweep.engine import run_sweep_cli

    return run_sweep_cli(ns)


def main(argv: list[str] | None = None) -> int:
    ns = build_parser(argv).parse_args(argv)
    handlers = {"toy": cmd_toy, "active": cmd_active, "report": cmd_report, "sweep": cmd_sweep,
                "measure": cmd_measure}
    try:
        return handlers[ns.command](ns)
    except SuperlensError as e:
        print(f"superlens: error: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:  # a read-only, full or missing location, before the run wrote anything
        print(f"superlens: error: {os_error_line(e)}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as e:
        # what the estimates in superlens.limits let through: torch's CPU allocator and CUDA
        # report running out as RuntimeError (OutOfMemoryError); anything else is a bug to see
        text = str(e)
        if not (isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError"
                or "can't allocate memory" in text or "out of memory" in text.lower()):
            raise
        print(f"superlens: error: out of memory ({' '.join(text.split())[:160] or 'MemoryError'}); "
              "try smaller sizes (batch_size, n_features, n_hidden, image_size)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("superlens: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
