"""Sweep-grid training speed: superlens's instance axis vs one model at a time, and vs the peers.

Run by hand (see bench/README.md for the bench environment that holds the peers):
    .venv-bench/bin/python bench/sweep.py [--steps 200] [--tms-steps 200] [--peer-steps 10] [--repeats 2]
Everything runs in this one process, side by side, at the same torch thread count on every side
(1, then all cores); each time is the best of --repeats runs.

(a) grid64: 64 points of the compressed-computation model, 100 -> 10, batch 2048, L4, --steps steps:
    8 feature probabilities x 8 seeds. One train_mlp call (per-instance p and seed lists) against
    the same 64 points as 64 train_mlp calls with one seed each (superlens's own single-model path).
(b) tms256: 256 points of the classic TMS model (x̂ = ReLU(W^T W x + b)), 100 features -> 10 hidden,
    --tms-steps steps, batch 1024, Adam at lr 1e-3, constant schedule: 16 feature probabilities
    (log-spaced 0.01 .. 1) x 16 importance decays (imp_j = d^j, d linear 0.8 .. 1). superlens's
    train_tms against each peer's own many-models-at-once training, where installed:
      tms-kit  tms_kit.optimize.optimize on a Model with n_inst = 256 (its instance axis), with an
               IIDFeatureGenerator of per-instance probabilities and an ImportanceWeightedLoss;
      occhio   occhio.ModelGrid(...).fit: torch.vmap over stacked TiedLinearRelu modules, each with
               a SparseUniform distribution; AdamW with weight_decay = 0 (= Adam). Timed twice: each
               point with its own data stream (the work superlens and tms-kit do), and with one seed
               per probability, so that its sample cache draws 16 batches a step instead of 256.
    A peer's per-step cost is flat (5, 10 and 40 steps within 4 %, measured), so it is timed on
    --peer-steps steps (after a 3-step warm-up call) and scaled to --tms-steps; --peer-steps 0 times
    the full run. The peer ratio is against the fastest peer variant.

Last line: {"grid64_vs_one_by_one": X, "tms256_vs_peer": Y} at the best common thread count, where
X = one-by-one seconds / grid seconds and Y = fastest peer seconds / superlens seconds (> 1: superlens
is faster); Y is null when no peer is installed.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import time

import torch

from superlens.toy.models import importance_decay
from superlens.toy.train import train_mlp, train_tms

N, H = 100, 10  # both models: 100 features -> 10 hidden


def best_of(fn, repeats: int) -> float:
    return min(fn() for _ in range(repeats))


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# --------------------------------------------------------------------------------- (a) grid64

def grid64_points() -> tuple[list[float], list[int]]:
    """8 probabilities (log-spaced 0.005 .. 0.1) x 8 seeds, as per-instance lists of 64."""
    ps = torch.logspace(math.log10(0.005), -1, 8).tolist()
    return [p for p in ps for _ in range(8)], [s for _ in ps for s in range(8)]


def grid64_together(steps: int) -> float:
    p, seeds = grid64_points()
    return timed(lambda: train_mlp(N, H, seeds=seeds, p=p, steps=steps, batch_size=2048))


def grid64_one_by_one(steps: int) -> float:
    p, seeds = grid64_points()
    return sum(timed(lambda: train_mlp(N, H, seeds=[s], p=pi, steps=steps, batch_size=2048))
               for pi, s in zip(p, seeds))


# --------------------------------------------------------------------------------- (b) tms256

def tms256_grid() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Probabilities [16], decays [16], and per point (probability-major) the importance [256, n]."""
    ps = torch.logspace(-2, 0, 16)
    decays = torch.linspace(0.8, 1.0, 16)
    imp = torch.stack([importance_decay(N, float(d)) for d in decays]).repeat(len(ps), 1)
    return ps, decays, imp


def tms_superlens(steps: int) -> tuple[float, float]:
    """Seconds and the mean final training loss."""
    ps, _, imp = tms256_grid()
    P = ps.repeat_interleave(16)
    t0 = time.perf_counter()
    _, log = train_tms(N, H, importance=imp, feature_probability=P, steps=steps, batch_size=1024,
                       lr=1e-3, seeds=list(range(256)))
    return time.perf_counter() - t0, sum(log["loss"][-1]) / 256


def tmskit_runner():
    """A function steps -> seconds that trains the 256-point grid with tms-kit, or None if missing."""
    try:
        from tms_kit.data import IIDFeatureGenerator
        from tms_kit.loss import ImportanceWeightedLoss
        from tms_kit.model import Model
        from tms_kit.optimize import optimize
        from tms_kit.tms import TMS
        from tms_kit.utils.device import set_device
    except ImportError:
        return None
    set_device("cpu")  # its data generator draws on its global default device
    ps, _, imp = tms256_grid()
    P = ps.repeat_interleave(16)[:, None].expand(256, N).contiguous()

    class Grid(TMS):  # tms-kit's TMS is the bundle of model, data and loss that optimize() trains
        def __init__(self):
            self.model = Model(N, 256, H, device="cpu")
            self.data_gen = IIDFeatureGenerator(N, 256, P)
            self.loss_calc = ImportanceWeightedLoss(N, imp)

    def run(steps: int) -> float:
        torch.manual_seed(0)
        grid = Grid()
        return timed(lambda: optimize(grid, disable_tqdm=True, batch_size=1024, steps=steps, lr=1e-3))
    return run


def occhio_runner(shared_data: bool):
    """As tmskit_runner, for occhio's ModelGrid. shared_data: one data seed per probability (its
    sample cache then draws once per probability); otherwise one seed per point."""
    try:
        from occhio import ModelGrid, ToyModel
        from occhio.autoencoder import TiedLinearRelu
        from occhio.distributions.sparse import SparseUniform
        from occhio.model_grid import Axis
    except ImportError:
        return None
    ps, decays, _ = tms256_grid()

    def create_model(params):
        i = int(torch.argmin((ps - params["p"]).abs()))
        j = int(torch.argmin((decays - params["decay"]).abs()))
        data_seed = i if shared_data else 16 * i + j
        return ToyModel(SparseUniform(N, float(params["p"]), generator=torch.Generator().manual_seed(data_seed)),
                        TiedLinearRelu(N, H, generator=torch.Generator().manual_seed(1000 + 16 * i + j)),
                        importances=importance_decay(N, float(params["decay"])))

    def run(steps: int) -> float:
        # cache_samples=False: every point draws its own batch (its cache keys streams by a hash of
        # the generator state, which merged a few of 256 distinct seeds when tried)
        grid = ModelGrid(create_model, axes=[Axis("p", ps), Axis("decay", decays)], cache_samples=shared_data)
        assert not shared_data or len(grid._unique_distributions) == 16
        with contextlib.redirect_stderr(io.StringIO()):  # its tqdm bar
            return timed(lambda: grid.fit(n_epochs=steps, batch_size=1024, learning_rate=1e-3,
                                          weight_decay=0.0))
    return run


def peer_seconds(run, steps: int, peer_steps: int, repeats: int) -> float:
    """Best-of-repeats seconds for `steps` steps, timed on peer_steps steps and scaled (flat cost)."""
    run(3)  # warm-up: allocator, vmap
    timed_steps = steps if peer_steps <= 0 else min(steps, peer_steps)
    return best_of(lambda: run(timed_steps), repeats) * steps / timed_steps


# ------------------------------------------------------------------------------------------ main

def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200, help="grid64 training steps")
    ap.add_argument("--tms-steps", type=int, default=200, help="tms256 training steps")
    ap.add_argument("--peer-steps", type=int, default=10,
                    help="steps a peer is actually timed on, scaled to --tms-steps (0: all)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", default=None, help="comma-separated thread counts (default: 1 and all cores)")
    a = ap.parse_args()
    cores = os.cpu_count() or 1
    counts = sorted({int(t) for t in a.threads.split(",")}) if a.threads else sorted({1, cores})
    peers = {"tms-kit": tmskit_runner(), "occhio (own data per point)": occhio_runner(False),
             "occhio (data shared per p)": occhio_runner(True)}
    for name in ("tms-kit", "occhio"):
        if all(run is None for key, run in peers.items() if key.startswith(name)):
            print(f"{name}: peer not installed (install it into the bench environment: bench/README.md)")
    peers = {k: v for k, v in peers.items() if v is not None}

    results = {}
    for threads in counts:
        torch.set_num_threads(threads)
        train_mlp(N, H, seeds=[0, 1], p=0.02, steps=5, batch_size=2048)  # warm-up: allocator, kernels
        train_tms(N, H, steps=5, batch_size=1024, seeds=[0, 1, 2, 3])
        r = {}
        t_grid = best_of(lambda: grid64_together(a.steps), a.repeats)
        t_seq = best_of(lambda: grid64_one_by_one(a.steps), a.repeats)
        r["grid64_s"], r["one_by_one64_s"] = t_grid, t_seq
        r["grid64_vs_one_by_one"] = t_seq / t_grid
        t_tms, final = min(tms_superlens(a.tms_steps) for _ in range(a.repeats))
        r["tms256_superlens_s"] = t_tms
        peer_t = {name: peer_seconds(run, a.tms_steps, a.peer_steps, a.repeats) for name, run in peers.items()}
        for name, t in peer_t.items():
            r[f"tms256 {name}_s"] = t
        r["tms256_vs_peer"] = min(peer_t.values()) / t_tms if peer_t else None
        results[threads] = r
        print(f"threads={threads}: " + ", ".join(f"{k}={v:.2f}" if v is not None else f"{k}=null"
                                                 for k, v in r.items())
              + f" (superlens tms256 final mean loss {final:.4f})", flush=True)

    def score(t: int) -> float:
        r = results[t]
        return r["grid64_vs_one_by_one"] * (r["tms256_vs_peer"] or 1.0)

    best = max(results, key=score)
    print(f"best common thread count: {best}")
    # the rule above compares like with like; one model alone may run best at another thread count
    # (two OpenMP threads slow a single small model down), so also each side at its own best
    t_grid = min(r["grid64_s"] for r in results.values())
    t_seq = min(r["one_by_one64_s"] for r in results.values())
    print(f"each side at its best thread count: grid64_vs_one_by_one={t_seq / t_grid:.2f}", end="")
    if peers:
        t_peer = min(v for r in results.values() for k, v in r.items() if k.startswith("tms256 "))
        t_ours = min(r["tms256_superlens_s"] for r in results.values())
        print(f", tms256_vs_peer={t_peer / t_ours:.2f}", end="")
    print()
    vs_peer = results[best]["tms256_vs_peer"]
    print(json.dumps({"grid64_vs_one_by_one": round(results[best]["grid64_vs_one_by_one"], 2),
                      "tms256_vs_peer": None if vs_peer is None else round(vs_peer, 2)}))


if __name__ == "__main__":
    main()
