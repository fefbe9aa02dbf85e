"""Speed of the SAE superposition measure (superlens.measures.sae) on a wide layer.

Run by hand:  .venv/bin/python bench/sae.py [--rows 50000] [--width 512] [--seeds 3] [--threads N]
                                            [--planted]
Activations: `rows` x `width` planted features (superlens.measures.planted): K = 4 * width random
unit directions, 3 active per row on average, U(0, 1) magnitudes, so the answer is known (F_true = K)
and the bench checks the fit it times (F / F_true is printed). The measure is fitted with the default
SAERecipe (the frozen recipe, with its compute cap SAERecipe.max_gflop per AE) and `--seeds` AE seeds
(target: < 60 s for 3 AE seeds on 2 cores). --old-data times the layer this bench used before
2026-12-06 instead (sums of 4 * width non-negative directions, ~20 a row: the recipe cannot fit it,
FVU 0.68 and all but ~2 latents dead), for comparison with earlier figures.
--planted also times the planted part of the held-out calibration grid (examples/sae_calibration.toml,
every planted point with its AE seeds, as the sweep runs it; target: < 20 min on 2 cores).
Last line: {"sae_seconds": X, "sae_fvu": Y, "sae_f_over_true": R, "matmul_gflops": G, "sae_steps": S, "sae_batch": B,
"sae_planted_seconds": P (with --planted)} (G: the machine's rate on the SAE's main matrix product
just before the fit, for context.)
"""
from __future__ import annotations

import argparse
import json
import math
import time

import torch

from superlens.device import generator, pick_device
from superlens.measures.sae import SAERecipe, sae_measure


def planted_acts(rows: int, width: int, seed: int = 0) -> tuple[torch.Tensor, float]:
    """([rows, width], F_true): 4 * width planted unit directions, 3 active per row."""
    from superlens.measures.planted import PlantedSpec, planted_activations

    x, info = planted_activations(PlantedSpec(n=width, k=4 * width, active=3.0, seed=seed), rows)
    return x, float(info["f_true"])


def synthetic_acts(rows: int, width: int, seed: int = 0) -> torch.Tensor:
    """[rows, width]: sparse non-negative mixtures of 4 * width unit directions (the old layer)."""
    g = generator(seed)
    k = 4 * width
    dirs = torch.nn.functional.normalize(torch.randn(k, width, generator=g), dim=1).relu_()
    coef = (torch.rand(rows, k, generator=g) < 0.01).float() * torch.rand(rows, k, generator=g)
    return coef @ dirs


def matmul_gflops(width: int, dict_size: int, device) -> float:
    """The machine's rate on the SAE's main product, [128, width] @ [width, D], right now (a shared
    machine's load moves every timing; this puts sae_seconds in context)."""
    a = torch.randn(128, width, device=device)
    w = torch.randn(width, dict_size, device=device)
    a @ w
    t = time.perf_counter()
    for _ in range(20):
        a @ w
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 20 * 2 * 128 * width * dict_size / (time.perf_counter() - t) / 1e9


def bench_sae(rows: int = 50_000, width: int = 512, seeds: int = 1, device: str = "auto",
              old_data: bool = False) -> dict:
    dev = pick_device(device)
    x, f_true = (synthetic_acts(rows, width), math.nan) if old_data else planted_acts(rows, width)
    x = x.to(dev)
    rate = matmul_gflops(width, SAERecipe().dict_size(width), dev)
    recipe = SAERecipe()
    t = time.perf_counter()
    m = sae_measure(x, recipe, seeds=tuple(range(seeds)))
    if dev.type == "cuda":
        torch.cuda.synchronize()
    secs = time.perf_counter() - t
    print(f"SAE measure on {rows} x {width}, {seeds} AE seed(s), D = {int(m['sae_dict_size'])}, "
          f"{int(m['sae_steps'])} steps x {int(m['sae_batch'])} rows: {secs:.1f} s; F = "
          f"{m['sae_features']:.1f}, FVU {m['sae_fvu']:.3f}, L0 {m['sae_l0']:.1f}, dead "
          f"{m['sae_dead_fraction']:.2f}; F / F_true {m['sae_features'] / f_true:.3f}", flush=True)
    print(f"matmul rate before the fit: {rate:.1f} GFLOP/s", flush=True)
    return {"sae_seconds": round(secs, 2), "sae_fvu": round(m["sae_fvu"], 4),
            "sae_f_over_true": round(m["sae_features"] / f_true, 3) if f_true == f_true else None,
            "matmul_gflops": round(rate, 1),
            "sae_steps": int(m["sae_steps"]), "sae_batch": int(m["sae_batch"])}


def bench_planted(spec: str = "examples/sae_calibration.toml") -> float:
    """Seconds to generate and measure every planted point of the held-out calibration spec."""
    from pathlib import Path

    from superlens.studies.sae_validation import STUDY
    from superlens.sweep.grid import expand, group_points, load_spec

    root = Path(__file__).resolve().parents[1]
    points = [p for p in expand(load_spec(str(root / spec))) if p.config.family == "planted"]
    t = time.perf_counter()
    for g in group_points("sae-validation", points):
        STUDY.run_group(g, {})
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--planted", action="store_true", help="also time the held-out planted grid")
    ap.add_argument("--old-data", action="store_true", help="time the unfittable layer used before "
                    "2026-12-06 instead of planted features")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}", flush=True)
    out = bench_sae(a.rows, a.width, a.seeds, a.device, a.old_data)
    if a.planted:
        out["sae_planted_seconds"] = round(bench_planted(), 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
