"""Training speed of the compressed-computation model: superlens vs a plain PyTorch loop.

Run by hand:  .venv/bin/python bench/toy_train.py [--steps 100] [--instances 64]
Both sides run in this one process, side by side, at the same torch thread count (1, then all cores).
(a) plain: the report's loop as anyone would write it: nn.Linear layers, dense data, autograd,
    torch.optim.Adam + CosineAnnealingLR; for 64 instances, 64 such loops one after another.
(b) superlens: superlens.toy.train.train_mlp (sparse data, hand-written gradients, instance axis).
Last line: {"single_vs_plain": X, "instances64_vs_sequential": Y} at the best common thread count.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import torch
from torch import nn

from superlens.toy.train import train_mlp


def plain_loop(steps: int, seed: int, n=100, h=10, p=0.02, B=2048, lr=3e-3) -> float:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(n, h, bias=False), nn.ReLU(), nn.Linear(h, n, bias=False))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    t0 = time.perf_counter()
    for _ in range(steps):
        active = torch.rand(B, n) < p
        x = torch.where(active, torch.rand(B, n) * 2 - 1, torch.zeros(()))
        loss = ((model(x) - torch.relu(x)) ** 4).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return time.perf_counter() - t0


def ours(steps: int, seeds: list[int]) -> float:
    return train_mlp(100, 10, seeds=seeds, p=0.02, steps=steps, batch_size=2048).seconds


def best_of(fn, repeats: int) -> float:
    return min(fn() for _ in range(repeats))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--instances", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seq-models", type=int, default=8,
                    help="plain loops actually timed for the sequential baseline; the time of "
                         "--instances loops is that total scaled by instances/seq-models")
    a = ap.parse_args()
    cores = os.cpu_count() or 1
    results = {}
    for threads in sorted({1, cores}):
        torch.set_num_threads(threads)
        ours(5, [0])  # warm-up: allocator, kernels
        plain_loop(5, 0)
        t_plain = best_of(lambda: plain_loop(a.steps, 0), a.repeats)
        t_one = best_of(lambda: ours(a.steps, [0]), a.repeats)
        t_seq = sum(plain_loop(a.steps, s) for s in range(a.seq_models)) * a.instances / a.seq_models
        t_many = best_of(lambda: ours(a.steps, list(range(a.instances))), max(1, a.repeats - 1))
        r = {"plain_ms_per_step": 1e3 * t_plain / a.steps, "ours_ms_per_step": 1e3 * t_one / a.steps,
             "single_vs_plain": t_plain / t_one,
             f"sequential{a.instances}_ms_per_step": 1e3 * t_seq / a.steps,
             f"ours{a.instances}_ms_per_step": 1e3 * t_many / a.steps,
             "instances_vs_sequential": t_seq / t_many}
        results[threads] = r
        print(f"threads={threads}: " + ", ".join(f"{k}={v:.2f}" for k, v in r.items())
              + f" (sequential: {a.seq_models} plain loops timed, scaled to {a.instances})", flush=True)
    best = max(results, key=lambda t: results[t]["single_vs_plain"] * results[t]["instances_vs_sequential"])
    print(f"best common thread count: {best}")
    print(json.dumps({"single_vs_plain": round(results[best]["single_vs_plain"], 2),
                      "instances64_vs_sequential": round(results[best]["instances_vs_sequential"], 2)}))


if __name__ == "__main__":
    main()
