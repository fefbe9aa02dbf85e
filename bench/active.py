"""Speed and memory of the active-learning pieces, against the obvious alternatives.

Run by hand:  .venv/bin/python bench/active.py [--quick] [--device auto|cpu|cuda] [--threads N]
All in this one process:
(1) pool scoring: images/s of a forward pass of resnet18-cifar (random weights, eval mode) that
    ends in least-confidence scores, on random 3x32x32 images in batches of 256.
(2) coreset: superlens' blocked exact greedy k-center on 50,000 x 512 ReLU'd Gaussian features,
    5,000 labelled, 5,000 picked: seconds and peak memory (CPU: growth of the process's resident
    set, sampled every 2 ms by a thread; CUDA: torch.cuda.max_memory_allocated growth). Then, on a
    smaller case, the textbook greedy (one matrix-vector pass over the pool per centre; same
    chunked-GEMM initialisation from the labelled set) against the blocked one: same picks? ratio?
(3) silhouette on raw 20,000 x 512 features with 10 labels: superlens.measures.clustering vs
    sklearn.metrics.silhouette_score: same value? time ratio?
(4) the SAE measure (bench/sae.py) on 50,000 x 512 activations, one AE (--quick: 10,000 rows).
(5) decoding the real CIFAR-10 JPEG tree (../shared/data/cifar10-jpeg.tar.gz, unpacked to a temporary
    folder first, not timed): superlens.active.folders.load_image_folder into an empty cache folder
    (cold: 60,000 files decoded in worker processes, cache written) and again (warm: the cache read).
    Without the archive (a fresh clone) the script says so and reports null.
(6) training throughput of the cifar10-cpu preset's model (narrow-cnn, batch 64, Adam, 32x32 uint8
    images): superlens' train_epochs against a plain PyTorch loop (TensorDataset + shuffling
    DataLoader of float images normalised up front, forward, cross-entropy, backward, step) on the same
    model, batch and data; alternated, best of 3 each. train_vs_plain = superlens images/s / plain.
(7) several seeds at once: training images per second summed over models (each model's images
    count: 8 models trained on 1,000 images each = 8,000) of 8 narrow-cnn models trained as grouped
    networks, one per thread side by side (superlens.active.ensemble.train_split, at --threads;
    all 8 as one network on every thread is printed beside it) against the plain one-model loop
    (train_epochs, one model after another, one thread, the preset's setting).
    ensemble_vs_plain = that ratio = how much sooner 8 seeds finish trained together than one after
    another. (Before 2026-12-05 the grouped side was divided by 8 once more, so the key read 1/8 of
    this: the 0.08 of earlier notes is ~0.7 here.) --only-ensemble runs this part alone.
Last line: {"coreset_seconds": X, "coreset_peak_mb": Y, "silhouette_vs_sklearn": Z, "sae_seconds": S,
            "decode_cold_seconds": ..., "decode_warm_seconds": ..., "train_vs_plain": ...,
            "ensemble_vs_plain": ...}
where Z = sklearn seconds / superlens seconds (> 1: superlens is faster).
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import threading
import time

import torch

from superlens.active.strategies import k_center_greedy, k_center_greedy_naive, least_confidence_scores
from superlens.active.strategies.coreset import update_min_sq_dist
from superlens.device import pick_device


class PeakMemory:
    """Peak memory growth (MB) over a `with` block: CUDA allocator high-water mark on CUDA, else the
    process RSS sampled every `period` s by a thread (tracemalloc cannot see torch's allocations)."""

    def __init__(self, device: torch.device, period: float = 0.002):
        self.device, self.period, self.peak_mb = device, period, 0.0

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __enter__(self):
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return self
        self.base, self.high, self.stop = self._rss(), self._rss(), threading.Event()

        def watch():
            while not self.stop.is_set():
                self.high = max(self.high, self._rss())
                time.sleep(self.period)
        self.thread = threading.Thread(target=watch, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak_mb = (torch.cuda.max_memory_allocated() - self.base) / 2**20
        else:
            self.stop.set()
            self.thread.join()
            self.high = max(self.high, self._rss())
            self.peak_mb = (self.high - self.base) / 2**20
        return False


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_scoring(device: torch.device, n_images: int, batch: int) -> float:
    try:
        from superlens.active.models import build_model
        model, which = build_model("resnet18-cifar", 10, 3), "superlens resnet18-cifar"
    except ImportError:
        from torchvision.models import resnet18
        model, which = resnet18(num_classes=10), "torchvision resnet18 (superlens.active.models missing)"
    model = model.to(device).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n_images, 3, 32, 32), dtype=torch.uint8, generator=g)
    mean = torch.tensor([0.4914, 0.4822, 0.4465], device=device).view(1, 3, 1, 1)
    std = torch.tensor([0.2023, 0.1994, 0.2010], device=device).view(1, 3, 1, 1)

    def run() -> torch.Tensor:
        out = []
        with torch.inference_mode(), torch.autocast(device.type, enabled=device.type == "cuda"):
            for s in range(0, n_images, batch):
                xb = (x[s:s + batch].to(device).float() / 255 - mean) / std
                out.append(least_confidence_scores(torch.softmax(model(xb).float(), dim=1)))
        return torch.cat(out)

    run() if device.type == "cuda" else None  # warm-up (cuDNN autotuning); on CPU one pass is enough
    sync(device)
    t = time.perf_counter()
    scores = run()
    sync(device)
    dt = time.perf_counter() - t
    assert scores.shape == (n_images,)
    print(f"(1) pool scoring, {which}: {n_images} images, batch {batch}: {dt:.2f} s, "
          f"{n_images / dt:.0f} images/s", flush=True)
    return n_images / dt


def relu_gaussian(n: int, d: int, seed: int, device: torch.device) -> torch.Tensor:
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed))
    return x.relu_().to(device)


def covering_radius(feats: torch.Tensor, lab: torch.Tensor, picks: torch.Tensor) -> float:
    """max over the pool of the distance to the nearest labelled or picked point (the k-center
    objective), in float64."""
    x = feats.double()
    centres = torch.cat([lab.double(), x[picks]])
    m = torch.full((x.shape[0],), math.inf, dtype=torch.float64, device=x.device)
    update_min_sq_dist(x, (x * x).sum(1), centres, (centres * centres).sum(1), m)
    return float(m.max().sqrt())


def bench_coreset(device: torch.device, n: int, n_lab: int, k: int, d: int,
                  small: tuple[int, int, int]) -> tuple[float, float]:
    feats, lab = relu_gaussian(n, d, 1, device), relu_gaussian(n_lab, d, 2, device)
    with PeakMemory(device) as mem:
        sync(device)
        t = time.perf_counter()
        idx, _ = k_center_greedy(feats, lab, k, torch.Generator().manual_seed(0))
        sync(device)
        dt = time.perf_counter() - t
    assert idx.unique().numel() == k
    print(f"(2) coreset, blocked exact greedy: N={n}, d={d}, L={n_lab}, k={k}: {dt:.2f} s, "
          f"peak memory +{mem.peak_mb:.0f} MB "
          f"({'CUDA allocator' if device.type == 'cuda' else 'process RSS growth, sampled'}); "
          f"an N x N float32 distance matrix would be {n * n * 4 / 2**30:.1f} GiB", flush=True)
    del feats, lab

    sn, sl, sk = small
    feats, lab = relu_gaussian(sn, d, 3, device), relu_gaussian(sl, d, 4, device)
    times = {}
    for name, fn in (("blocked", k_center_greedy), ("naive", k_center_greedy_naive)):
        sync(device)
        t = time.perf_counter()
        picks, _ = fn(feats, lab, sk, torch.Generator().manual_seed(0))
        sync(device)
        times[name] = (time.perf_counter() - t, picks)
    a, b = times["blocked"][1], times["naive"][1]
    diff = (a != b).nonzero()
    agree = sk if diff.numel() == 0 else int(diff[0])
    # In float32 the two can part at a near-tie (distances in 512-d concentrate; gaps ~1e-7 relative),
    # after which the sequences differ; the covering radius shows whether the selection got worse.
    r_a, r_b = covering_radius(feats, lab, a), covering_radius(feats, lab, b)
    print(f"    vs one matvec per centre: N={sn}, L={sl}, k={sk}: blocked {times['blocked'][0]:.2f} s, "
          f"naive {times['naive'][0]:.2f} s, ratio {times['naive'][0] / times['blocked'][0]:.1f}x; "
          f"identical first {agree} of {sk} picks; covering radius (float64) blocked {r_a:.6f}, "
          f"naive {r_b:.6f}", flush=True)
    return dt, mem.peak_mb


def bench_silhouette(device: torch.device, n: int, d: int, n_labels: int) -> float:
    import sklearn.metrics

    from superlens.measures.clustering import silhouette_score

    g = torch.Generator().manual_seed(5)
    labels = torch.randint(0, n_labels, (n,), generator=g)
    centres = torch.randn(n_labels, d, generator=g)
    x = (centres[labels] + 3.0 * torch.randn(n, d, generator=g)).relu_()  # overlapping clusters
    xn, ln = x.numpy(), labels.numpy()
    t = time.perf_counter()
    ours = silhouette_score(x, labels, device=device)
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    ref = float(sklearn.metrics.silhouette_score(xn, ln))
    t_ref = time.perf_counter() - t
    print(f"(3) silhouette, raw features N={n}, d={d}, {n_labels} labels: superlens {ours:.6f} in "
          f"{t_ours:.2f} s, sklearn {ref:.6f} in {t_ref:.2f} s; |diff| {abs(ours - ref):.1e}, "
          f"ratio {t_ref / t_ours:.1f}x", flush=True)
    if abs(ours - ref) > 1e-5:
        print("    WARNING: the two silhouette values differ by more than 1e-5")
    return t_ref / t_ours


REAL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data",
                    "cifar10-jpeg.tar.gz")


def bench_decode() -> tuple[float | None, float | None]:
    import shutil
    import subprocess
    import tempfile

    from superlens.active.folders import load_image_folder

    if not os.path.isfile(REAL):
        print(f"(5) decode: the real CIFAR-10 archive {os.path.normpath(REAL)} is absent (a fresh "
              "clone has no ../shared); decode keys are null")
        return None, None
    tmp = tempfile.mkdtemp(prefix="superlens-bench-")
    try:
        subprocess.run(["tar", "xzf", REAL, "-C", tmp], check=True)
        root = next(os.path.join(d, "") for d, sub, _ in os.walk(tmp) if "train" in sub and "test" in sub)
        cache = os.path.join(tmp, "cache")
        t0 = time.perf_counter()
        ds = load_image_folder(root, cache_dir=cache, progress=False)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        load_image_folder(root, cache_dir=cache, progress=False)
        warm = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n = ds.train_x.shape[0] + ds.test_x.shape[0]
    print(f"(5) decode: {n} JPEGs, cold {cold:.2f} s ({n / cold:.0f} img/s, {os.cpu_count()} cores), "
          f"warm {warm:.2f} s")
    return cold, warm


def bench_train_vs_plain(device: torch.device, n: int, epochs: int) -> float:
    from types import SimpleNamespace

    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset

    from superlens.active.models import build_model
    from superlens.active.train import make_optimizer, train_epochs
    from superlens.device import generator

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    mean, std = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)
    cfg = SimpleNamespace(epochs=epochs, batch_size=64, augment=False, amp=True, shuffle=True,
                          image_size=None, progress=False, optimizer="adam", lr=2e-3, weight_decay=0.0)

    def ours() -> float:
        torch.manual_seed(0)
        m = build_model("narrow-cnn", 10, 3, dropout=0.2).to(device)
        t0 = time.perf_counter()
        train_epochs(m, make_optimizer(m, cfg), x, y, cfg=cfg, norm=(mean, std), device=device,
                     generator=generator(0))
        return n * epochs / (time.perf_counter() - t0)

    def plain() -> float:
        torch.manual_seed(0)
        m = build_model("narrow-cnn", 10, 3, dropout=0.2).to(device)
        opt = torch.optim.Adam(m.parameters(), lr=2e-3)
        t0 = time.perf_counter()
        xf = ((x.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1))
        loader = DataLoader(TensorDataset(xf, y), batch_size=64, shuffle=True)
        m.train()
        for _ in range(epochs):
            for xb, yb in loader:
                xb, yb = xb.to(device), yb.to(device)
                loss = F.cross_entropy(m(xb), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return n * epochs / (time.perf_counter() - t0)

    a, b = [], []
    for _ in range(3):  # alternated, so a busy neighbour slows both alike
        a.append(ours())
        b.append(plain())
    ratio = max(a) / max(b)
    print(f"(6) narrow-cnn training, {n} images x {epochs} epochs, batch 64: superlens "
          f"{max(a):.0f} img/s, plain PyTorch loop {max(b):.0f} img/s, ratio {ratio:.2f}")
    return ratio


def bench_ensemble_vs_plain(n: int, epochs: int, k: int = 8) -> float:
    """(7) model-images/s (images summed over models): k narrow-cnn models trained at once (superlens.active.ensemble, at
    this process's thread count) against the plain one-model loop (train_epochs, one model after
    another, 1 thread: the cifar10-cpu preset's setting). Alternated, best of 2 each."""
    from types import SimpleNamespace

    from superlens.active import ensemble as E
    from superlens.active.models import build_model
    from superlens.active.train import make_optimizer, train_epochs
    from superlens.device import generator

    g = torch.Generator().manual_seed(0)
    xs = [torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g) for _ in range(k)]
    ys = [torch.randint(0, 10, (n,), generator=g) for _ in range(k)]
    norm = ((0.49, 0.48, 0.45), (0.25, 0.24, 0.26))
    cfg = SimpleNamespace(epochs=epochs, batch_size=64, augment=False, amp=True, shuffle=True,
                          image_size=None, progress=False, optimizer="adam", lr=2e-3,
                          weight_decay=0.0, lr_schedule="constant")
    threads = torch.get_num_threads()

    def models():
        out = []
        for s in range(k):
            torch.manual_seed(s)
            out.append(build_model("narrow-cnn", 10, 3, dropout=0.2))
        return out

    def together() -> float:  # what the active study runs: one grouped network per thread
        ms = models()
        t0 = time.perf_counter()
        E.train_split(ms, [make_optimizer(m, cfg) for m in ms], xs, ys, cfg=cfg, norm=norm,
                      device="cpu", generators=[generator(s) for s in range(k)], shuffle=True)
        return n * epochs * k / (time.perf_counter() - t0)  # k models' images per second

    def one_net() -> float:  # the k models as one grouped network on all threads (before)
        ms = models()
        t0 = time.perf_counter()
        net = E.stack(ms)
        opt = E.stack_optimizer(net, ms, [make_optimizer(m, cfg) for m in ms], cfg)
        E.train_together(net, opt, xs, ys, cfg=cfg, norm=norm, device="cpu",
                         generators=[generator(s) for s in range(k)], shuffle=True)
        E.unstack(net, ms)
        return n * epochs * k / (time.perf_counter() - t0)

    def plain() -> float:
        torch.set_num_threads(1)
        try:
            ms = models()
            t0 = time.perf_counter()
            for s, m in enumerate(ms[:2]):  # two models are enough for its rate
                train_epochs(m, make_optimizer(m, cfg), xs[s], ys[s], cfg=cfg, norm=norm,
                             device="cpu", generator=generator(s))
            return n * epochs * 2 / (time.perf_counter() - t0)
        finally:
            torch.set_num_threads(threads)

    a, b, c = [], [], []
    for _ in range(2):
        a.append(together())
        b.append(plain())
        c.append(one_net())
    ratio = max(a) / max(b)
    print(f"(7) {k} narrow-cnn models at once ({threads} thread(s), one grouped network per thread): "
          f"{max(a):.0f} model-images/s; plain one-model loop (1 thread): {max(b):.0f} model-images/s; "
          f"ratio {ratio:.2f} (all {k} in one network on {threads} threads: {max(c):.0f} "
          f"model-images/s, ratio {max(c) / max(b):.2f})", flush=True)
    return ratio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run, ~1 min on 2 cores)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--only-ensemble", action="store_true", help="run (7) alone and print its key")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    device = pick_device(a.device)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}", flush=True)
    if a.only_ensemble:
        ens = bench_ensemble_vs_plain(1_000 if a.quick else 3_000, 1)
        print(json.dumps({"ensemble_vs_plain": round(ens, 2)}))
        return
    if a.quick:
        bench_scoring(device, 256, 128)
        secs, peak = bench_coreset(device, 10_000, 1_000, 1_000, 512, small=(5_000, 500, 500))
        ratio = bench_silhouette(device, 4_000, 512, 10)
        train_ratio = bench_train_vs_plain(device, 2_000, 1)
        ens = bench_ensemble_vs_plain(1_000, 1)
    else:
        bench_scoring(device, 1_024, 256)
        secs, peak = bench_coreset(device, 50_000, 5_000, 5_000, 512, small=(20_000, 2_000, 2_000))
        ratio = bench_silhouette(device, 20_000, 512, 10)
        train_ratio = bench_train_vs_plain(device, 5_000, 2)
        ens = bench_ensemble_vs_plain(3_000, 1)
    from sae import bench_sae  # bench/sae.py: the SAE measure on 50,000 x 512 (one AE)

    sae = bench_sae(10_000 if a.quick else 50_000, 512, 1, a.device)
    cold, warm = bench_decode()
    r = lambda v, k=2: None if v is None else round(v, k)  # noqa: E731
    print(json.dumps({"coreset_seconds": round(secs, 2), "coreset_peak_mb": round(peak, 1),
                      "silhouette_vs_sklearn": round(ratio, 2), "sae_seconds": sae["sae_seconds"],
                      "decode_cold_seconds": r(cold), "decode_warm_seconds": r(warm),
                      "train_vs_plain": r(train_ratio), "ensemble_vs_plain": r(ens)}))


if __name__ == "__main__":
    main()
