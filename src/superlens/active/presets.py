"""Named starting configs of the active-learning study. A preset is a dict of ActiveConfig fields;
a config file and command-line flags override it field by field.

- cifar10-cpu:          real CIFAR-10 sized for 2 CPU cores (CPU_PRESET_WHY says why each choice).
- paper-cifar10-cpu:    the paper's round protocol at that size, random sampling as its control
                        (PAPER_CPU_WHY).
- cifar10-cpu-5k:       the sound protocol at a higher budget (1,000 to 5,000 labels of a 20,000-image
                        pool, crop + flip), where the literature finds uncertainty sampling ahead of
                        random (CPU_5K_WHY).
- digits:               the offline embedded default (scikit-learn's 8x8 digits, small CNN, minutes on CPU;
                        the sparse-autoencoder measure under a 50 GFLOP cap per autoencoder (the demo keeps
                        its time with a core busy): F less converged than the full recipe, said on the page).
- synthetic:            a seconds-long smoke run on generated images (tests).
- cifar10, tiny-imagenet: the sound protocol: fresh initialisation, several seeds, scratch retraining
                          each round, augmentation, every strategy.
- paper-cifar10, paper-tiny-imagenet: what the paper's code (arXiv 2412.16168) did: ImageNet-pretrained
  torchvision ResNet-18, Adam 1e-3, batch 128, 20 epochs, no augmentation, the baseline's loader
  unshuffled (the paper's notebook does that for the baseline only; the notebook's active-learning
  loaders are ordinary shuffled DataLoaders, so shuffle_rounds = true), the notebook's normalisation, one unseeded-in-the-original run, least confidence only, and every round
  continuing the very model and optimizer that trained the baseline.
"""
from __future__ import annotations

from typing import Any

from superlens.errors import ConfigError

# The verdict plan of the CPU presets, fixed before their runs (superlens.active.verdicts): the
# smallest effect of interest per measure, and the primary measure per claim. Delta for cos_mean is
# about a quarter of the paper's +0.042; the others are of the same order as the differences the
# first CPU runs showed between strategies, so that "no effect larger than delta" is a statement
# about effects that would matter beside the paper's.
CPU_DELTA = {"accuracy": 0.01, "cos_mean": 0.01, "silhouette_tsne": 0.01,
             "davies_bouldin_tsne": 0.05, "silhouette_raw": 0.01, "davies_bouldin_raw": 0.1,
             "neuron_abs_cos_mean": 0.01, "selectivity_mean": 0.01, "effective_rank": 1.0,
             "participation_ratio": 1.0, "sae_features": 5.0, "sae_conv_features": 5.0}
CPU_PRIMARY = {"accuracy": "accuracy", "more-superposition": "cos_mean", "overlap": "cos_mean",
               "clustering": "silhouette_tsne", "coreset-less": "cos_mean", "rounds": "cos_mean"}

PRESETS: dict[str, dict[str, Any]] = {
    "digits": dict(dataset="digits", model="small-cnn", optimizer="adam", lr=2e-3, epochs=30,
                   batch_size=64, initial_pool=100, rounds=5, query_size=100,
                   strategies=["least-confidence", "entropy", "coreset", "random"], seeds=3,
                   round_training="scratch", dropout=0.2, normalize="dataset", augment=False,
                   sae_gflop=50.0),
    "synthetic": dict(dataset="synthetic", model="small-cnn", optimizer="adam", lr=3e-3, epochs=3,
                      batch_size=32, initial_pool=40, rounds=2, query_size=20,
                      strategies=["least-confidence", "random"], seeds=1, round_training="scratch",
                      dropout=0.2, normalize="dataset", tsne_points=200, sae_gflop=20.0),
    "cifar10": dict(dataset="cifar10", model="resnet18-cifar", optimizer="adam", lr=1e-3, epochs=30,
                    batch_size=128, augment=True, initial_pool=5000, rounds=5, query_size=5000,
                    strategies=["least-confidence", "margin", "entropy", "coreset", "badge",
                                "random"], seeds=3, round_training="scratch", dropout=0.2,
                    normalize="dataset"),
    # CPU-sized CIFAR-10 (2 cores, <= 45 min alone): see CPU_PRESET_WHY for each choice
    "cifar10-cpu": dict(dataset="cifar10", model="narrow-cnn", optimizer="adam", lr=2e-3, epochs=10,
                        batch_size=64, augment=False, pool_size=10000, initial_pool=400, rounds=4,
                        query_size=400, candidates=3000,
                        strategies=["least-confidence", "coreset", "random"], seeds=3,
                        round_training="scratch", dropout=0.2, normalize="dataset", threads=1,
                        eval_batch_size=1000, tsne_points=2000, sae="final", ensemble=1,
                        delta=dict(CPU_DELTA), primary=dict(CPU_PRIMARY)),
    # ensemble=1: 8 models as two grouped networks of 4, one per thread, train 2.65x as many images
    # a second as the one-model loop on 1 thread (bench/active.py ensemble_vs_plain, 2 idle cores;
    # 1.72 with one core busy), more than two single-threaded runs side by side give (2.0). The CPU
    # presets still train one model at a time on one thread, so that their README tables stay the
    # numbers they print (grouped training equals it only up to float rounding) and a second run
    # (another protocol, more seeds) can take the other core; --ensemble 8 --threads 2 groups them
    # the paper's round protocol at the size of cifar10-cpu, random sampling as its control
    "paper-cifar10-cpu": dict(dataset="cifar10", model="narrow-cnn", optimizer="adam", lr=2e-3,
                              epochs=10, batch_size=64, augment=False, pool_size=10000,
                              initial_pool=400, rounds=4, query_size=400, candidates=3000,
                              strategies=["least-confidence", "random"], seeds=3,
                              round_training="paper", dropout=0.0, normalize="dataset",
                              threads=1, eval_batch_size=1000, tsne_points=2000, sae="final",
                              ensemble=1, delta=dict(CPU_DELTA), primary=dict(CPU_PRIMARY)),
    # the sound protocol at a budget where uncertainty sampling is reported to beat random: CPU_5K_WHY
    "cifar10-cpu-5k": dict(dataset="cifar10", model="narrow-cnn", optimizer="adam", lr=2e-3,
                           lr_schedule="cosine", epochs=15, batch_size=64, augment=True,
                           pool_size=20000,
                           initial_pool=1000, rounds=4, query_size=1000, candidates=10000,
                           strategies=["least-confidence", "random"], seeds=3,
                           round_training="scratch", dropout=0.2, normalize="dataset", threads=1,
                           eval_batch_size=1000, tsne_points=2000, sae="final", ensemble=1,
                           delta=dict(CPU_DELTA), primary=dict(CPU_PRIMARY)),
    "tiny-imagenet": dict(dataset="tiny-imagenet", model="resnet18", optimizer="adam", lr=1e-3,
                          epochs=30, batch_size=128, augment=True, initial_pool=10000, rounds=5,
                          query_size=10000,
                          strategies=["least-confidence", "margin", "entropy", "coreset", "badge",
                                      "random"], seeds=3, round_training="scratch", dropout=0.2,
                          normalize="dataset"),
    "paper-cifar10": dict(dataset="cifar10", model="resnet18", pretrained=True, optimizer="adam",
                          lr=1e-3, epochs=20, batch_size=128, augment=False, shuffle=False,
                          shuffle_rounds=True, amp=True,
                          normalize="cifar-paper", initial_pool=5000, rounds=9, query_size=5000,
                          strategies=["least-confidence"], seeds=1, round_training="paper",
                          dropout=0.0, paper_features=True, tsne="sklearn"),
    "paper-tiny-imagenet": dict(dataset="tiny-imagenet", model="resnet18", pretrained=True,
                                image_size=224, optimizer="adam", lr=1e-3, epochs=20,
                                batch_size=128, augment=False, shuffle=False, shuffle_rounds=True,
                                amp=True,
                                normalize="imagenet", initial_pool=10000, rounds=9,
                                query_size=10000, strategies=["least-confidence"], seeds=1,
                                round_training="paper", dropout=0.0, paper_features=True,
                                tsne="sklearn"),
}


CPU_PRESET_WHY = [
    "Pool: a class-balanced random subset of 10,000 of the 50,000 training images (1,000 per "
    "class); the baseline trains on all of it, so 'baseline' means 'every label of the pool'. The "
    "full 10,000-image test set.",
    "Labels: 400 random to start, 4 rounds of 400 queries, 2,000 at the end (20 % of the pool): "
    "small enough that what is queried can matter, large enough that accuracy is far above chance.",
    "Candidates: each round scores a fresh random 3,000 of the unlabelled pool (the same 3,000 for "
    "every strategy at a given seed and round), the usual subsampling of pool-based active learning.",
    "Model: narrow-cnn (16-32-64-128 channels, 3 max-pools, a 128-d feature), ~10x fewer "
    "multiply-adds than small-cnn; trained from scratch every round, 10 epochs of Adam (lr 2e-3, "
    "batch 64), no augmentation (10 epochs on <= 2,000 images gain little from it and it costs time).",
    "Threads: 1 torch thread. On this shared 2-core machine two OpenMP threads trained ~10x slower "
    "(~100 vs ~1,400 images/s, measured on the same preset) because their barriers spin while "
    "other jobs hold the cores; channels-last was slower for this narrow model, so the default "
    "memory layout is kept.",
    "Strategies: least-confidence (uncertainty), core-set (diversity) and random (the control at "
    "equal labels), 3 seeds each; t-SNE on 2,000 test points per model.",
    "Sparse-autoencoder measure on the 15 final models (sae = final: the feature layer and the last "
    "conv block, 3 autoencoder seeds each, the recipe of the toy validation with its own compute "
    "cap): ~20-25 s per layer on 2 idle cores. Per-round values for the strategies "
    "(`--sae rounds`) would add 12 models x 4 rounds of the feature layer; left to a GPU: "
    "`superlens active --resume --out DIR --preset cifar10-cpu --sae rounds` computes only what is "
    "missing, from the saved checkpoints.",
]


PAPER_CPU_WHY = [
    "The paper's round protocol (arXiv 2412.16168): round 0 continues the very model and Adam state "
    "that trained the baseline on the whole pool, and every later round continues that model and "
    "optimizer on the cumulative labelled set; least-confidence queries, as in the paper.",
    "Random sampling runs under the same protocol as the control the paper lacked: the baseline's "
    "model, continued the same way, with randomly chosen labels.",
    "Everything else as cifar10-cpu (10,000-image pool, narrow-cnn, 10 epochs of Adam lr 2e-3, "
    "batch 64, 400 + 4 x 400 labels, 3,000 candidates), but dropout 0 as in the paper. Training "
    "batches are shuffled for the baseline too: the paper's unshuffled baseline loader read "
    "CIFAR-10 in its stored (mixed-class) order, while this pool is stored class by class, where an "
    "unshuffled loader would train on one class at a time. t-SNE is openTSNE, as in cifar10-cpu.",
]


CPU_5K_WHY = [
    "A second budget: at cifar10-cpu's 400 to 2,000 labels least-confidence did not beat random "
    "(0.41 vs 0.47 at 2,000 labels, 3 seeds), as the literature predicts for small budgets from "
    "scratch; uncertainty sampling is reported at or below random under ~1,000-2,000 labels and "
    "ahead of it from ~5,000 labels with augmentation (Hacohen et al. 2022, arXiv 2202.02794; "
    "Munjal et al. 2022, arXiv 2002.09564; Beck et al. 2021, arXiv 2106.15324).",
    "Pool: a class-balanced 20,000 of the 50,000 training images (2,000 per class), so that 5,000 "
    "labels are a quarter of it and each round has many unlabelled images to choose from; the full "
    "10,000-image test set.",
    "Labels: 1,000 random to start (a less cold start than 400), 4 rounds of 1,000 queries, 5,000 at "
    "the end; each round scores a fresh random 10,000 candidates (half the pool), the same for every "
    "strategy at a given seed and round, so a query of 1,000 is a real selection (the top 10 %).",
    "Training: narrow-cnn from scratch every round, 15 epochs of Adam (lr 2e-3, batch 64) with "
    "random crop (4-pixel zero padding) and horizontal flip, which cost nothing measurable on one "
    "thread (~1,200 images/s with and without) and which the budgets above were reported with.",
    "Learning rate: cosine from 2e-3 down to 0 over each training. A 2-seed pilot at a constant "
    "rate ended its trainings at full rate, and one model's final accuracy moved by several points "
    "from one round to the next (0.550 at 4,000 labels, 0.507 at 5,000), more than the effect "
    "sought; ending at a small rate is the usual remedy.",
    "Cost: (20,000 + 2 x 15,000) images x 15 epochs = 750,000 training images per seed for "
    "least-confidence and random; the 2-seed pilots took ~1,100 s of CPU on one torch thread "
    "(~9 minutes per seed, measures and t-SNE on 2,000 test points included, sae off).",
]


# a preset -> why it is sized as it is (printed on its report when the run kept its sizes)
PRESET_WHY = {"cifar10-cpu": CPU_PRESET_WHY, "paper-cifar10-cpu": PAPER_CPU_WHY,
              "cifar10-cpu-5k": CPU_5K_WHY}


def preset(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise ConfigError(f"preset = {name!r} is unknown; allowed: {', '.join(PRESETS)}")
    return {"preset": name, **PRESETS[name]}


def protocol_statement(cfg) -> str:
    """One plain paragraph saying which protocol ran (printed at the top of the report)."""
    if cfg.round_training == "paper":
        return ("Protocol: the paper's code (arXiv 2412.16168). The active-learning model continues the "
                "very model and Adam state that trained the baseline on all data, then trains on the "
                "cumulative labelled pool each round; so it has seen every training image before its "
                "first query. "
                + ("ImageNet-pretrained weights. " if cfg.pretrained else "")
                + _shuffle_statement(cfg)
                + f"{cfg.seeds} seed(s).")
    how = {"scratch": "re-initialised from a fresh seeded model every round",
           "warm": "continued from the previous round's model (new optimizer) every round"}[cfg.round_training]
    data = ("all training data" if getattr(cfg, "pool_size", None) is None else
            f"all {cfg.pool_size:,} images of a class-balanced subset of the training set (the pool)")
    cand = ("" if getattr(cfg, "candidates", None) is None else
            f" (chosen among {cfg.candidates:,} random unlabelled candidates)")
    return (f"Protocol: sound. The baseline is a fresh seeded model trained on {data}; "
            f"each strategy's model starts from {cfg.initial_pool} random labelled samples and is "
            f"{how}, adding {cfg.query_size} queried samples{cand} per round for {cfg.rounds} rounds. "
            f"Every number is a mean ± std over {cfg.seeds} seed(s); augmentation "
            f"{'on' if cfg.augment else 'off'}. " + _shuffle_statement(cfg).strip())


def _shuffle_statement(cfg) -> str:
    from superlens.active.loop import rounds_shuffle

    base = "shuffled" if cfg.shuffle else "unshuffled"
    rounds = "shuffled" if rounds_shuffle(cfg) else "unshuffled"
    if base == rounds:
        return f"Training batches {base} (baseline and every active-learning round). "
    return f"Baseline training batches {base}; active-learning rounds' training batches {rounds}. "
