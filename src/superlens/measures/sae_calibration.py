"""The SAE feature count's calibration: one checked-in table, read by the code that decides.

sae_calibration.json (beside this module) is written by the held-out calibration sweep and installed
by this module's command, with no figure copied by hand anywhere else:

    superlens sweep examples/sae_calibration.toml --out runs/sae-calibration
    python -m superlens.measures.sae_calibration runs/sae-calibration    # -> sae_calibration.json
 It holds the
targets, the measured held-out figures, and per layer width whether F / F_true stayed within them.

    targets_met()            -> bool: do the SAE rows decide a verdict?
    calibration_note(512)    -> {"width": 512, "trusted": False, "reason": ..., ...}
    calibration_text()       -> one sentence for a report
"""
from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

TABLE = Path(__file__).with_name("sae_calibration.json")

# The targets of the calibration (held-out grid, mean over >= 3 AE seeds): F / F_true on planted
# sparse settings, the rank correlation over widths, the toy model against its references, and the
# spread of F over AE seeds.
TARGETS = {
    "planted_median_abs_error": 0.15,   # median |F / F_true - 1| at every width, at most
    "planted_max_abs_error": 0.30,      # no sparse planted setting beyond this
    "planted_rho": 0.95,                # Spearman rho of F against F_true pooled over widths, at least
    "tms_r_entropy": 0.94,              # Pearson r against the toy's weight entropy, at least
    "tms_rho_count": 0.90,              # Spearman rho against the count of ||W_i|| > 0.5, at least
    "seed_spread": 0.05,                # std over AE seeds / F, at most (the largest setting)
}

# the targets in words, for the pages
TARGET_WORDS = {
    "planted_median_abs_error": "the median planted error",
    "planted_max_abs_error": "the largest planted error",
    "planted_rho": "the planted rank correlation",
    "tms_r_entropy": "the classic toy model's r against the weight entropy",
    "tms_rho_count": "the classic toy model's ρ against the represented count",
    "seed_spread": "the spread over AE seeds",
}

# a width counts as calibrated when a calibrated width lies within this factor of it
WIDTH_FACTOR = 2.0


class CalibrationError(ValueError):
    """The calibration table is missing or malformed."""


@lru_cache(maxsize=4)
def _load(path: str) -> dict:
    p = Path(path)
    try:
        t = json.loads(p.read_text())
    except FileNotFoundError:
        raise CalibrationError(f"SAE calibration table {p}: not found") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CalibrationError(f"SAE calibration table {p}: unreadable ({e})") from None
    for key in ("targets_met", "widths", "measured", "met"):
        if key not in t:
            raise CalibrationError(f"SAE calibration table {p}: missing key '{key}'")
    return t


def load_calibration(path: str | Path | None = None) -> dict:
    """The calibration table (a dict; see the module docstring). Raises CalibrationError."""
    return _load(str(path or TABLE))


def targets_met(path: str | Path | None = None) -> bool:
    """True exactly when the checked-in held-out calibration met every target: only then do the SAE
    rows decide a verdict."""
    return bool(load_calibration(path)["targets_met"])


def calibration_note(width: int, path: str | Path | None = None, fvu: float | None = None) -> dict:
    """Is F trusted at a layer of `width` neurons? {"width", "trusted", "reason", "calibrated_width"
    (the nearest width of the held-out grid, or None), and that width's measured figures:
    "median_ratio", "median_abs_error", "max_abs_error", "settings", "seed_spread", and where the
    table has them "median_mcc", "median_recovered" (are the latents the planted features)}.

    Trusted when every target of the table is met and a held-out width within a factor WIDTH_FACTOR
    of `width` met its own F / F_true targets. Given the fit's fvu, never trusted when the
    autoencoder left more of the layer unexplained than at any calibrated sparse setting (the
    table's fvu_max): the autoencoder did not fit that layer, so F counts nothing there (a dense
    ReLU layer read F 5 with 99 % of its latents dead and FVU 0.39)."""
    if not width >= 1:
        raise ValueError(f"width = {width!r}, must be >= 1")
    t = load_calibration(path)
    widths = {int(w): v for w, v in t["widths"].items()}
    out = {"width": int(width), "trusted": False, "calibrated_width": None,
           "targets_met": bool(t["targets_met"])}
    if not widths:
        out["reason"] = "no held-out calibration has been run with the current recipe"
        return out
    near = min(widths, key=lambda w: abs(math.log(w / width)))
    out["calibrated_width"] = near
    out.update({k: widths[near][k] for k in ("median_ratio", "median_abs_error", "max_abs_error",
                                              "settings", "seed_spread", "median_mcc",
                                              "median_recovered") if k in widths[near]})
    fvu_max = t.get("fvu_max")
    if fvu is not None and fvu_max is not None and not fvu <= fvu_max:  # NaN: not fitted either
        out["fvu"], out["fvu_max"] = fvu, fvu_max
        out["reason"] = (f"the autoencoder leaves {fvu:.2f} of this layer's variance unexplained, "
                         f"more than at any calibrated setting ({fvu_max:.2f}): it did not fit the "
                         "layer, so F is no feature count here")
    elif abs(math.log(near / width)) > math.log(WIDTH_FACTOR):
        out["reason"] = (f"no held-out width within a factor {WIDTH_FACTOR:g} of {width} "
                         f"(calibrated widths: {', '.join(map(str, sorted(widths)))})")
    elif not widths[near].get("ok", False):
        out["reason"] = (f"at width {near} F / F_true missed its targets: median |F / F_true - 1| = "
                         f"{widths[near]['median_abs_error']:.3f}, largest {widths[near]['max_abs_error']:.3f} "
                         f"(targets {TARGETS['planted_median_abs_error']}, "
                         f"{TARGETS['planted_max_abs_error']})")
    elif not t["targets_met"]:
        missed = [TARGET_WORDS.get(k, k) for k, ok in t["met"].items() if not ok]
        out["reason"] = f"width {near} is within its targets, but the calibration missed: {', '.join(missed)}"
    else:
        out["trusted"] = True
        out["reason"] = f"held-out width {near} met every target"
    return out


def calibration_text(path: str | Path | None = None) -> str:
    """One sentence for a report: whether the SAE rows decide, with the measured figures."""
    t = load_calibration(path)
    m = t["measured"]
    if not m:
        return ("The sparse-autoencoder feature count has no held-out calibration for the current "
                "recipe, so its rows are shown but never decide a verdict.")
    parts = []
    if "planted_median_abs_error" in m:
        widths = sorted(t.get("widths", {}).items(), key=lambda kv: int(kv[0]))
        per = (" (" + ", ".join(f"{v['median_abs_error']:.3f} at width {w}" for w, v in widths) + ")"
               if widths else "")
        parts.append(f"on planted features |F / F_true − 1| has a median up to "
                     f"{m['planted_median_abs_error']:.3f} per width{per}, largest "
                     f"{m['planted_max_abs_error']:.3f}, Spearman ρ {m['planted_rho']:.3f}")
    if "tms_r_entropy" in m:
        parts.append(f"on the classic toy model r {m['tms_r_entropy']:.3f} against the weight entropy "
                     f"and ρ {m['tms_rho_count']:.3f} against the represented count")
    if "seed_spread" in m:
        parts.append(f"spread over AE seeds up to {100 * m['seed_spread']:.1f} % of F")
    missed = [TARGET_WORDS.get(k, k) for k, ok in t["met"].items() if not ok]
    verdict = ("it met every target, so its rows decide verdicts" if t["targets_met"] else
               "it missed " + ", ".join(missed) + ", so its rows are shown but never decide a verdict")
    return (f"Sparse-autoencoder calibration (`{t.get('command', 'held-out grid')}`): " + "; ".join(parts)
            + f"; {verdict}.")


def main(argv: list[str] | None = None) -> int:
    """Install RUN_DIR/sae_calibration.json (a calibration sweep's) as the checked-in table."""
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="python -m superlens.measures.sae_calibration",
                                 description=main.__doc__)
    ap.add_argument("run_dir", help="a finished `superlens sweep examples/sae_calibration.toml` run")
    ap.add_argument("--to", default=str(TABLE), help="where to write (default: the checked-in table)")
    a = ap.parse_args(argv)
    src = Path(a.run_dir) / "sae_calibration.json"
    try:
        t = dict(load_calibration(src))
    except CalibrationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from superlens.runs import write_json

    t["source"] = str(Path(a.run_dir).name)
    write_json(Path(a.to), t)
    _load.cache_clear()
    print(f"wrote {a.to}: targets met = {t['targets_met']}")
    return 0


__all__ = ["TABLE", "TARGETS", "WIDTH_FACTOR", "CalibrationError", "calibration_note",
           "calibration_text", "load_calibration", "targets_met"]


if __name__ == "__main__":
    raise SystemExit(main())
