"""Thread choices on a CPU whose cores are shared: one thread, or two with OpenMP's default, active
(spinning) or passive (sleeping) wait policy, on the demo's heaviest step.

Run by hand:  .venv/bin/python bench/threads.py [--rounds 3] [--busy 1] [--steps 300] [--rows 5000]
The workload is the sparse-autoencoder measure of the active-learning demo (superlens.measures.sae,
3 autoencoder seeds, dictionary 8 x 128 on 128-wide synthetic activations, `--steps` Adam steps of
256 rows), one child process per setting, because OMP_WAIT_POLICY is read once, when torch loads
OpenMP. The settings run interleaved, `--rounds` times, so a shared machine's load moves them alike;
`--busy K` starts K `yes > /dev/null` processes beside them (a core held by other work), stopped at
the end. Each line: setting, median wall seconds, median CPU seconds (user + system of the child).
Last line JSON: {"t2_default_over_t1": W, "t2_active_over_t1": X, "t2_passive_over_t1": Y, "t2_passive_over_t2_active": Z,
"busy": K, "loadavg": [1, 5, 15 min before]} (wall-time ratios of the medians; > 1: slower than the
denominator).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SETTINGS = {  # name -> (torch threads, OMP_WAIT_POLICY; None: unset, OpenMP's own default)
    "t1": (1, None),
    "t2_default": (2, None),
    "t2_active": (2, "ACTIVE"),
    "t2_passive": (2, "PASSIVE"),
}


def child(threads: int, steps: int, rows: int) -> None:
    import torch

    from superlens.device import generator
    from superlens.measures.sae import SAERecipe, sae_measure

    torch.set_num_threads(threads)
    g = generator(0)
    dirs = torch.nn.functional.normalize(torch.randn(512, 128, generator=g), dim=1).relu_()
    x = ((torch.rand(rows, 512, generator=g) < 0.02).float() * torch.rand(rows, 512, generator=g)) @ dirs
    t, c = time.perf_counter(), time.process_time()
    sae_measure(x, SAERecipe(steps=steps), seeds=(0, 1, 2))
    print(json.dumps({"wall": time.perf_counter() - t, "cpu": time.process_time() - c}))


def run_setting(name: str, steps: int, rows: int) -> dict:
    threads, policy = SETTINGS[name]
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env.update({"OMP_NUM_THREADS": str(threads)}, **({"OMP_WAIT_POLICY": policy} if policy else {}))
    out = subprocess.run([sys.executable, __file__, "--child", str(threads), "--steps", str(steps),
                          "--rows", str(rows)], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--busy", type=int, default=0, help="`yes` processes to run beside (default 0)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--rows", type=int, default=5000)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        child(args.child, args.steps, args.rows)
        return
    load = [round(x, 2) for x in os.getloadavg()]
    busy = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(args.busy)]
    got: dict[str, list[dict]] = {k: [] for k in SETTINGS}
    try:
        for _ in range(args.rounds):
            for name in SETTINGS:
                got[name].append(run_setting(name, args.steps, args.rows))
    finally:
        for p in busy:
            p.terminate()
            p.wait()
    med = {k: (statistics.median(r["wall"] for r in v), statistics.median(r["cpu"] for r in v))
           for k, v in got.items()}
    for k, (w, c) in med.items():
        print(f"{k:11s} wall {w:7.2f} s   cpu {c:7.2f} s   (rounds: "
              f"{', '.join(format(r['wall'], '.1f') for r in got[k])})", flush=True)
    print(json.dumps({"t2_default_over_t1": round(med["t2_default"][0] / med["t1"][0], 3),
                      "t2_active_over_t1": round(med["t2_active"][0] / med["t1"][0], 3),
                      "t2_passive_over_t1": round(med["t2_passive"][0] / med["t1"][0], 3),
                      "t2_passive_over_t2_active": round(med["t2_passive"][0] / med["t2_active"][0], 3),
                      "busy": args.busy, "loadavg": load}))


if __name__ == "__main__":
    main()
