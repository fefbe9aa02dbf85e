"""Speed and memory of `superlens measure` on real images.

Run by hand:  .venv/bin/python bench/measure.py [--data-dir /work/data/cifar10] [--threads 1]
              [--parts capture,total,rss]
Needs an image-folder CIFAR-10 (train/ + test/ of 32x32 JPEGs); every cache goes to a temporary
folder (the images are decoded there first, untimed).

measure_capture_seconds  torchvision resnet18 (random weights) at 32x32 on 10,000 test images,
                         layers conv1, layer1 .. layer4: capture and write the float16 cache
                         (target < 60 s on 2 cores)
measure_total_seconds    the whole command on the same images and layers, activations not cached
                         yet, SAE measure on (3 AE seeds), report included (target < 5 min)
peak_rss_gb_layer4       peak RSS of the command on the 50,000 training images at resnet18's
                         layer4 (at 32x32: 512 x 1 x 1), with --sae off: the capture, the cache and
                         the other measures (the autoencoders see at most max_rows = 50,000 rows
                         whatever the data size, ~100 MB at width 512, and are timed above)
peak_rss_gb_512x4x4      the same for a layer of 512 x 4 x 4 per image (800,000 rows): a stand-in
                         model (one 8x8 stride-8 conv, 3 -> 512 channels) with resnet18-cifar's
                         layer4 shape, so the capture pipeline's memory is measured without its
                         28 TFLOP forward passes (target < 4 GB for both)
Last line: JSON with these, the thread count and the 1-minute load average before the run.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

LAYERS = ["conv1", "layer1", "layer2", "layer3", "layer4"]


def stand_in() -> nn.Module:
    """[B, 3, 32, 32] -> layer4 [B, 512, 4, 4] -> logits, for the memory measurement."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 512, 8, stride=8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(512, 10))


def _child_rss(cmd: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, peak RSS in GB) of a command run in a fresh wrapper process."""
    wrap = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
            "r = subprocess.run(sys.argv[1:]); w = time.perf_counter() - t; "
            "print(w, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)")
    out = subprocess.run([sys.executable, "-c", wrap, *cmd], env=env, capture_output=True,
                         text=True, check=True)
    wall, kb, rc = out.stdout.split()[-3:]
    if int(rc) != 0:
        raise SystemExit(f"command failed ({rc}): {' '.join(cmd)}\n{out.stderr[-2000:]}")
    return float(wall), int(kb) / 1024 ** 2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="/work/data/cifar10")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--parts", default="capture,total,rss")
    args = ap.parse_args()
    load = os.getloadavg()[0]
    parts = set(args.parts.split(","))
    torch.set_num_threads(args.threads)
    from superlens.capture import capture
    from superlens.profile.inputs import folder_source
    from superlens.profile.specs import load_model

    tmp = Path(tempfile.mkdtemp(prefix="superlens-bench-measure-"))
    src = folder_source(args.data_dir, split="test", max_images=10_000, cache_dir=tmp, progress=False)
    folder_source(args.data_dir, split="train", cache_dir=tmp, progress=False)  # same decode cache
    res = {"threads": args.threads, "load_avg_1min_before": round(load, 2)}
    if "capture" in parts:
        model = load_model("resnet18").model
        t = time.perf_counter()
        acts = capture(model, LAYERS, src.source, cache_dir=tmp / "bench-acts", batch_size=256)
        capture_s = time.perf_counter() - t
        rows = {n: list(a.rows.shape) for n, a in acts.items()}
        print(f"capture: {capture_s:.1f} s, rows {rows}", flush=True)
        res.update(measure_capture_seconds=round(capture_s, 2),
                   capture_target_ratio=round(capture_s / 60, 3))

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
               PYTHONPATH=os.pathsep.join([str(Path(__file__).parent),
                                           os.environ.get("PYTHONPATH", "")]))
    cli = [sys.executable, "-m", "superlens", "measure", "--data-dir", args.data_dir,
           "--cache-dir", str(tmp), "--threads", str(args.threads), "--quiet"]
    if "total" in parts:
        total_s, rss_total = _child_rss([*cli, "--model", "resnet18", "--layers", ",".join(LAYERS),
                                         "--max-images", "10000", "--out", str(tmp / "run-total")], env)
        print(f"total: {total_s:.1f} s, peak RSS {rss_total:.2f} GB", flush=True)
        res.update(measure_total_seconds=round(total_s, 1), total_target_ratio=round(total_s / 300, 3),
                   peak_rss_gb_total_run=round(rss_total, 3))
    if "rss" in parts:
        for key, spec in (("peak_rss_gb_layer4", "resnet18"),
                          ("peak_rss_gb_512x4x4", "measure:stand_in")):
            wall, rss = _child_rss([*cli, "--model", spec, "--layers", "layer4" if spec == "resnet18"
                                    else "0", "--split", "train", "--sae", "off",
                                    "--out", str(tmp / f"run-{key}")], env)
            res[key] = round(rss, 3)
            res[key.replace("peak_rss_gb", "seconds")] = round(wall, 1)
            print(f"{key}: {rss:.2f} GB in {wall:.1f} s", flush=True)
        res["rss_target_ratio"] = round(max(res["peak_rss_gb_layer4"], res["peak_rss_gb_512x4x4"]) / 4, 3)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
