"""Thin command line over the Python API: parse, load config, call, map errors to exit codes.

    superlens toy --out DIR [--config FILE.toml] [--p 0.02 ...]
    superlens active --preset digits --out DIR [--strategies a,b] [--seeds N] [--resume]
    superlens report DIR
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from superlens.errors import SuperlensError


def _toy_parser(sub) -> None:
    t = sub.add_parser("toy", help="the compressed-computation study (100 -> 10 MLP)")
    t.add_argument("--out", required=True, help="run directory to create")
    t.add_argument("--config", help="TOML file with ToyConfig fields")
    t.add_argument("--n-features", type=int)
    t.add_argument("--n-hidden", type=int)
    t.add_argument("--p", type=float, help="feature probability in (0, 1]")
    t.add_argument("--loss-power", type=float, help="loss exponent q >= 1")
    t.add_argument("--steps", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--seeds", type=int, help="number of seeds, trained together as instances")
    t.add_argument("--seed", type=int, help="first seed")
    t.add_argument("--eval-samples", type=int)
    t.add_argument("--bias", action="store_true", default=None)
    t.add_argument("--no-l2", dest="compare_l2", action="store_false", default=None,
                   help="skip training the same seeds under L2")
    t.add_argument("--device", help="auto, cpu or cuda")
    t.add_argument("--threads", type=int)
    t.add_argument("--force", action="store_true", help="replace an existing run directory")
    t.add_argument("--quiet", action="store_true", help="no progress bars")


def _active_parser(sub) -> None:
    a = sub.add_parser("active", help="the active-learning superposition study")
    a.add_argument("--out", required=True, help="run directory to create (or resume)")
    a.add_argument("--preset", help="digits (default), cifar10-cpu, cifar10, tiny-imagenet, "
                                     "paper-cifar10, paper-tiny-imagenet, synthetic")
    a.add_argument("--config", help="TOML file with ActiveConfig fields (over the preset)")
    a.add_argument("--dataset")
    a.add_argument("--data-dir")
    a.add_argument("--download", action="store_true", default=None)
    a.add_argument("--cache-dir", help="folder for decoded-image caches (default: "
                                       "$XDG_CACHE_HOME/superlens or ~/.cache/superlens)")
    a.add_argument("--pool-size", type=int, help="class-balanced subset of the training set to use")
    a.add_argument("--candidates", type=int, help="random unlabelled candidates scored per round")
    a.add_argument("--test-size", type=int, help="class-balanced subset of the test set to evaluate on")
    a.add_argument("--sae", help="sparse-autoencoder measure: rounds, final or off")
    a.add_argument("--model")
    a.add_argument("--pretrained", action="store_true", default=None)
    a.add_argument("--weights-path")
    a.add_argument("--strategies", help="comma-separated strategy names")
    a.add_argument("--seeds", type=int)
    a.add_argument("--seed", type=int)
    a.add_argument("--epochs", type=int)
    a.add_argument("--batch-size", type=int)
    a.add_argument("--lr", type=float)
    a.add_argument("--initial-pool", type=int)
    a.add_argument("--rounds", type=int)
    a.add_argument("--query-size", type=int)
    a.add_argument("--round-training", help="scratch, warm or paper")
    a.add_argument("--optimizer", help="adam or sgd")
    a.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="random crop + flip")
    a.add_argument("--normalize", help="dataset, cifar-paper, imagenet or none")
    a.add_argument("--image-size", type=int, help="resize images to this side")
    a.add_argument("--feature-layer", help="module name whose output is the feature")
    a.add_argument("--dropout", type=float, help="dropout before the classifier, in [0, 1)")
    a.add_argument("--tsne-points", type=int, help="most test points embedded by t-SNE")
    a.add_argument("--device")
    a.add_argument("--threads", type=int)
    a.add_argument("--force", action="store_true", help="replace an existing run directory")
    a.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    a.add_argument("--quiet", action="store_true", help="no progress bars")


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (its default prints the whole usage block first)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="superlens", description="Measure superposition.")
    sub = ap.add_subparsers(dest="command", required=True)
    _toy_parser(sub)
    _active_parser(sub)
    r = sub.add_parser("report", help="re-render report.html of a run directory (no training)")
    r.add_argument("run_dir")
    s = sub.add_parser("sweep", help="a grid of runs from a TOML spec")
    s.add_argument("spec")
    s.add_argument("--out", required=True)
    s.add_argument("--backend", default="local", choices=["local", "ray"])
    s.add_argument("--address", help="Ray cluster address, 'auto', or unset for a local instance")
    s.add_argument("--workers", type=int, help="local process-pool size")
    s.add_argument("--force", action="store_true")
    s.add_argument("--quiet", action="store_true")
    return ap


def _overrides(ns: argparse.Namespace, skip: set[str]) -> dict:
    return {k: v for k, v in vars(ns).items() if k not in skip and v is not None}


def cmd_toy(ns: argparse.Namespace) -> int:
    from superlens.config import ToyConfig, load_config
    from superlens.toy.study import run_toy

    cfg = load_config(ToyConfig, ns.config,
                      _overrides(ns, {"command", "out", "config", "force", "quiet"}))
    metrics = run_toy(cfg, ns.out, force=ns.force, progress=not ns.quiet, argv=sys.argv)
    print(f"wrote {Path(ns.out) / 'report.html'}  (mse_active_mean={metrics['mse_active_mean']:.4f}, "
          f"gain={metrics['gain_mean']:.3f}, train {metrics['train_seconds']:.1f}s)")
    return 0


def active_config(ns: argparse.Namespace):
    """The ActiveConfig that `superlens active` flags describe (preset, then file, then flags)."""
    from superlens.active.study import config_from_cli

    ov = _overrides(ns, {"command", "out", "config", "force", "resume", "quiet", "preset"})
    if "strategies" in ov:
        ov["strategies"] = [s.strip() for s in ov["strategies"].split(",") if s.strip()]
    if ns.quiet:
        ov["progress"] = False
    return config_from_cli(ns.preset, ns.config, ov)


def cmd_active(ns: argparse.Namespace) -> int:
    from superlens.active.study import run_active

    run_active(active_config(ns), ns.out, force=ns.force, resume=ns.resume, argv=sys.argv)
    print(f"wrote {Path(ns.out) / 'report.html'}")
    return 0


def cmd_report(ns: argparse.Namespace) -> int:
    from superlens.errors import RunDirError
    from superlens.runs import read_json

    run = Path(ns.run_dir)
    if not (run / "meta.json").exists():
        raise RunDirError(f"run directory {run}: no meta.json (not a superlens run directory)")
    kind = read_json(run / "meta.json").get("kind")
    if kind == "toy":
        from superlens.toy.study import render_toy_report as render
    elif kind == "active":
        from superlens.active.study import render_active_report as render
    elif kind == "sweep":
        from superlens.sweep.engine import render_sweep_report as render
    else:
        raise RunDirError(f"run directory {run}: unknown run kind {kind!r} in meta.json")
    print(f"wrote {render(run)}")
    return 0


def cmd_sweep(ns: argparse.Namespace) -> int:
    from superlens.sweep.engine import run_sweep_cli

    return run_sweep_cli(ns)


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    handlers = {"toy": cmd_toy, "active": cmd_active, "report": cmd_report, "sweep": cmd_sweep}
    try:
        return handlers[ns.command](ns)
    except SuperlensError as e:
        print(f"superlens: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("superlens: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
