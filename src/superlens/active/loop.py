"""The baseline and the active-learning loop, saved round by round so that a run can resume.

    validate_plan(cfg, n_train)                          # before anything is trained or written
    base = train_baseline(cfg, ds, seed, out / "baseline", device)
    res = run_loop(cfg, ds, "coreset", seed, out / "al" / "coreset", device, out / "baseline")

Round r = 0..cfg.rounds trains on initial_pool + r * query_size labelled images, evaluates on the
test set and, if r < rounds, queries query_size more. How each round's model starts is
cfg.round_training:

- scratch: a fresh model seeded by (seed, round): rounds differ only in their labelled pool.
- warm:    the previous round's model, with a new optimizer.
- paper:   what the paper's code (arXiv 2412.16168) did: round 0 continues the very model and Adam state
           that trained the baseline on all the data, and every later round continues that same model
           and optimizer on the cumulative pool.

Every random draw is made from a generator seeded by a hash of (seed, purpose, round[, strategy]),
never from a generator carried over in memory, so a resumed run draws what an uninterrupted one
would. Training draws and initial weights depend on (seed, round) only, so that round 0 is the same
for every strategy and later rounds share their training randomness (common random numbers); the
query draws also depend on the strategy name.

Folder layout (each file written atomically; the .json marker last):
    baseline/  checkpoint.pt  test_probs.pt  test_features.pt  result.json
    <loop>/round_XX/  state.pt (labelled, pool, queried, scores)  test_probs.pt  test_features.pt
                      checkpoint.pt  round.json
"""
from __future__ import annotations

import hashlib
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from superlens.active import strategies as S
from superlens.active.checkpoints import (check_fingerprint, load_checkpoint, read_checkpoint,
                                          save_checkpoint)
from superlens.active.data import resolve_normalization
from superlens.active.dataset import ImageDataset
from superlens.active.models import build_model, default_feature_layer
from superlens.active.train import (accuracy, make_optimizer, make_scaler, mc_dropout_probs,
                                    predict, train_epochs)
from superlens.config import ActiveConfig, MeasureConfig
from superlens.device import generator
from superlens.errors import CheckpointError, ConfigError, RunDirError
from superlens.runs import atomic_save_torch, read_json, write_json

# Config fields that change what a training produces. Not here: paths (data_dir, weights_path may
# move between machines), device/threads/progress, and fields read only after training
# (feature_layer, tsne_points, strategies, seeds).
TRAINING_FIELDS = ("dataset", "test_fraction", "image_size", "model", "pretrained", "dropout",
                   "optimizer", "lr", "momentum", "weight_decay", "epochs", "batch_size", "augment",
                   "amp", "shuffle", "normalize")
LOOP_FIELDS = TRAINING_FIELDS + ("shuffle_rounds", "initial_pool", "rounds", "query_size",
                                 "round_training", "bald_samples")
ROUND_MARKER = "round.json"
BASELINE_MARKER = "result.json"


# ---------------------------------------------------------------------------------------------
# seeds and fingerprints


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from a stable hash of ``parts`` (Python's hash() is salted per process)."""
    h = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(h[:8], "little") & (2**63 - 1)


def fingerprint(cfg: ActiveConfig, fields: tuple[str, ...], **extra: Any) -> dict:
    """The config values that define a training, plus run identity (seed, strategy)."""
    fp = {f: getattr(cfg, f) for f in fields}
    if "shuffle_rounds" in fields:  # the value the rounds train with (unset means: as shuffle)
        fp["shuffle_rounds"] = rounds_shuffle(cfg)
    # fields added after runs were saved: in the fingerprint only when set, so earlier runs resume
    for f in ("pool_size", "test_size") + (("candidates",) if "initial_pool" in fields else ()):
        if getattr(cfg, f, None) is not None:
            fp[f] = getattr(cfg, f)
    if cfg.lr_schedule != "constant":
        fp["lr_schedule"] = cfg.lr_schedule
    fp.update(extra)
    return fp


def rounds_shuffle(cfg: ActiveConfig) -> bool:
    """Whether the active-learning rounds shuffle their training batches: cfg.shuffle_rounds, or
    cfg.shuffle when that is unset (the baseline always follows cfg.shuffle)."""
    v = cfg.shuffle_rounds
    return bool(cfg.shuffle if v is None else v)


# ---------------------------------------------------------------------------------------------
# plan


def validate_plan(cfg: ActiveConfig, n_train: int) -> None:
    """Every way the plan cannot run, as one ConfigError line, before anything is trained or written.

    Round r queries from n_train - initial_pool - r * query_size unlabelled images, so the last query
    (r = rounds - 1) fits exactly when initial_pool + rounds * query_size <= n_train.
    """
    from superlens.active.verdicts import check_plan

    check_plan(cfg.delta, cfg.primary)  # the verdict's plan is part of the plan
    if cfg.initial_pool > n_train:
        raise ConfigError(f"initial_pool = {cfg.initial_pool}: the training set has only {n_train} images")
    need = cfg.initial_pool + cfg.rounds * cfg.query_size
    if need > n_train:
        left = n_train - cfg.initial_pool - (cfg.rounds - 1) * cfg.query_size
        raise ConfigError(
            f"query_size = {cfg.query_size}: initial_pool + rounds * query_size = {cfg.initial_pool} + "
            f"{cfg.rounds} * {cfg.query_size} = {need} exceeds the {n_train} training images (the last "
            f"round's unlabelled pool holds {max(left, 0)}); lower rounds or query_size")
    cand = getattr(cfg, "candidates", None)
    if cand is not None and cand < cfg.query_size:
        raise ConfigError(f"candidates = {cand}: fewer than query_size = {cfg.query_size}; each round "
                          "queries from its candidates")
    seen = set()
    for name in cfg.strategies:
        if name in seen:
            raise ConfigError(f"strategies: {name!r} is listed twice")
        seen.add(name)
        _check_strategy(cfg, name)


# ---------------------------------------------------------------------------------------------
# shared pieces


def _new_model(cfg: ActiveConfig, ds: ImageDataset, seed: int, device: torch.device,
               state_follows: bool = False) -> nn.Module:
    """A model whose initial weights depend on ``seed`` only (built on the CPU, so on every device).
    state_follows: a checkpoint is loaded next, so pretrained weights need not be read."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(cfg.model, ds.n_classes, ds.in_channels,
                            pretrained=cfg.pretrained and not state_follows,
                            weights_path=None if state_follows else cfg.weights_path,
                            dropout=cfg.dropout)
    return model.to(device)


def _feature_layer(cfg: ActiveConfig) -> str:
    return cfg.feature_layer or default_feature_layer(cfg.model)


def _evaluate(cfg: ActiveConfig, model: nn.Module, x_test: Tensor, y_test: Tensor, norm, device) -> tuple:
    """(accuracy, test probs [M, C], test features [M, d]) on the CPU."""
    probs, feats = predict(model, x_test, norm=norm, device=device, batch_size=cfg.eval_batch_size,
                           feature_layer=_feature_layer(cfg), image_size=cfg.image_size, amp=cfg.amp)
    return accuracy(probs, y_test), probs, feats


def say(cfg: ActiveConfig | MeasureConfig, msg: str) -> None:
    """A status line on stderr (through tqdm, so it does not break a progress bar), unless the run
    is quiet (progress = false: --quiet, sweeps)."""
    if cfg.progress:
        tqdm.write(msg, file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# baseline


def train_baseline(cfg: ActiveConfig, ds: ImageDataset, seed: int, out_dir: Path,
                   device: torch.device | str) -> dict:
    """A fresh seeded model trained on ALL training data for cfg.epochs; saved into ``out_dir``.

    Returns {"accuracy", "seconds", "train_loss", "test_probs" [M, C], "test_features" [M, d],
    "out_dir"}. When out_dir/result.json exists (a finished baseline) it is loaded, not retrained.
    """
    return train_baselines(cfg, ds, [(seed, Path(out_dir))], device)[0]


def train_baselines(cfg: ActiveConfig, ds: ImageDataset, specs: list[tuple[int, Path]],
                    device: torch.device | str) -> list[dict]:
    """train_baseline for every (seed, out_dir); the unfinished ones train together
    (fit_together: cfg.ensemble at a time on the CPU). Results in the order of ``specs``."""
    device = torch.device(device)
    out: list[dict | None] = [None] * len(specs)
    todo = []
    for i, (seed, out_dir) in enumerate(specs):
        fp = fingerprint(cfg, TRAINING_FIELDS, seed=seed, kind="baseline")
        marker = Path(out_dir) / BASELINE_MARKER
        if marker.exists():
            done = _read_marker(marker)
            check_fingerprint(done.get("fingerprint"), fp, marker)
            out[i] = {**done, "test_probs": read_checkpoint(Path(out_dir) / "test_probs.pt", "test probabilities"),
                      "test_features": read_checkpoint(Path(out_dir) / "test_features.pt", "test features"),
                      "out_dir": Path(out_dir)}
        else:
            todo.append((i, seed, Path(out_dir), fp))
    if not todo:
        return out  # type: ignore[return-value]
    t0 = time.perf_counter()
    norm = resolve_normalization(cfg.normalize, ds)
    models = [_new_model(cfg, ds, derive_seed(seed, "baseline-init"), device) for _, seed, _, _ in todo]
    opts = [make_optimizer(m, cfg) for m in models]
    scalers = [make_scaler(device, cfg) for _ in models]
    fits = fit_together(cfg, models, opts, scalers, [ds.train_x] * len(todo),
                        [ds.train_y] * len(todo),
                        [generator(derive_seed(seed, "baseline-train")) for _, seed, _, _ in todo],
                        cfg.shuffle, device, [f"baseline seed {seed}" for _, seed, _, _ in todo],
                        norm)
    share = (time.perf_counter() - t0) / len(todo)
    for (i, seed, out_dir, fp), model, opt, scaler, fit in zip(todo, models, opts, scalers, fits):
        t1 = time.perf_counter()
        acc, probs, feats = _evaluate(cfg, model, ds.test_x, ds.test_y, norm, device)
        save_checkpoint(out_dir / "checkpoint.pt", model, opt, fp, scaler)
        atomic_save_torch(out_dir / "test_probs.pt", probs)
        atomic_save_torch(out_dir / "test_features.pt", feats)
        done = {"accuracy": acc, "seconds": share + time.perf_counter() - t1, "train_loss": fit["loss"],
                "n_train": int(ds.train_y.shape[0]), "feature_layer": _feature_layer(cfg),
                "fingerprint": fp}
        write_json(out_dir / BASELINE_MARKER, done)  # last: the completion marker
        say(cfg, f"[baseline seed {seed}] {done['n_train']} labelled, test accuracy {acc:.4f}, "
             f"{done['seconds']:.1f} s")
        out[i] = {**done, "test_probs": probs, "test_features": feats, "out_dir": out_dir}
    return out  # type: ignore[return-value]


def _read_marker(path: Path) -> dict:
    try:
        d = read_json(path)
    except RunDirError as e:
        raise CheckpointError(str(e)) from None
    if not isinstance(d, dict):
        raise CheckpointError(f"{path}: not a superlens marker (expected a JSON object)")
    return d


# ---------------------------------------------------------------------------------------------
# the loop


def _round_dir(out_dir: Path, r: int) -> Path:
    return out_dir / f"round_{r:02d}"


def _finished_rounds(out_dir: Path) -> int:
    """How many consecutive rounds 0, 1, ... carry their completion marker."""
    done = 0
    while (_round_dir(out_dir, done) / ROUND_MARKER).exists():
        done += 1
    return done


def _discard_unfinished(out_dir: Path, done: int) -> None:
    """Delete round folders after the finished ones: they hold an interrupted round's partial files.
    A finished round after a gap cannot come from one run and is refused rather than deleted."""
    if not out_dir.is_dir():
        return
    for d in sorted(out_dir.glob("round_*")):
        try:
            r = int(d.name.split("_", 1)[1])
        except ValueError:
            continue
        if r < done:
            continue
        if (d / ROUND_MARKER).exists():
            raise RunDirError(f"{d}: a finished round after an unfinished one (round {done}); "
                              "this folder was not written by one run; use a new run directory")
        shutil.rmtree(d)


def check_resumable(cfg: ActiveConfig, baseline_dir: Path, loop_dirs: dict[str, Path], seed: int) -> None:
    """Read-only: every finished baseline / round already under these folders was made with these
    settings, and no loop folder holds a finished round after a gap. Raises CheckpointError or
    RunDirError (one line naming the file) before a resumed run writes anything."""
    marker = Path(baseline_dir) / BASELINE_MARKER
    if marker.exists():
        check_fingerprint(_read_marker(marker).get("fingerprint"),
                           fingerprint(cfg, TRAINING_FIELDS, seed=seed, kind="baseline"), marker)
        _load_all(Path(baseline_dir))
    for strategy, out_dir in loop_dirs.items():
        out_dir = Path(out_dir)
        done = _finished_rounds(out_dir)
        fp = fingerprint(cfg, LOOP_FIELDS, seed=seed, strategy=strategy, kind="loop")
        for r in range(done):
            m = _round_dir(out_dir, r) / ROUND_MARKER
            check_fingerprint(_read_marker(m).get("fingerprint"), fp, m)
        if done:  # what a resumed loop (or its final collection) reads back
            _load_all(_round_dir(out_dir, done - 1))
        for d in sorted(out_dir.glob("round_*")) if out_dir.is_dir() else []:
            try:
                r = int(d.name.split("_", 1)[1])
            except ValueError:
                continue
            if r >= done and (d / ROUND_MARKER).exists():
                raise RunDirError(f"{d}: a finished round after an unfinished one (round {done}); "
                                  "this folder was not written by one run; use a new run directory")


def _load_all(folder: Path) -> None:
    """Every checkpoint of a finished step loads (a truncated one is refused before any write)."""
    for f in sorted(folder.glob("*.pt")):
        read_checkpoint(f, f.stem.replace("_", " "))


def _check_strategy(cfg: ActiveConfig, name: str) -> S.Strategy:
    """The registered strategy ``name``, refused when it needs MC dropout of a model without dropout."""
    strat = S.get_strategy(name)
    if "mc_probs" in strat.needs and not cfg.dropout > 0:
        raise ConfigError(f"strategies: {name} needs dropout > 0 for MC dropout (dropout = "
                          f"{cfg.dropout}); set e.g. dropout = 0.2")
    return strat


def run_loop(cfg: ActiveConfig, ds: ImageDataset, strategy: str, seed: int, out_dir: Path,
             device: torch.device | str, baseline_dir: Path | None = None, *,
             on_round: Callable[[int, dict], None] | None = None) -> dict:
    """One strategy's active-learning loop for one seed, resumable from ``out_dir``.

    Returns {"rounds": [{"round", "labelled", "accuracy", "queried_per_class", "seconds",
    "train_loss"}], "final_accuracy", "final_probs" [M, C], "final_features" [M, d],
    "labelled_indices" [L] int64 (the last round's training set, in the order added),
    "strategy", "seed", "out_dir"}. ``on_round(r, info)`` is called after round r is saved.
    Calling it again on the same out_dir continues after the last finished round.
    """
    hook = None if on_round is None else (lambda job, r, info: on_round(r, info))
    return run_loops(cfg, ds, [(strategy, seed, out_dir, baseline_dir)], device, on_round=hook)[0]


def run_loops(cfg: ActiveConfig, ds: ImageDataset, specs: list[tuple[str, int, Path, Path | None]],
              device: torch.device | str, *,
              on_round: Callable[["_Loop", int, dict], None] | None = None) -> list[dict]:
    """Several loops (strategy, seed, out_dir, baseline_dir) run in step, round by round: every
    loop at round r has the same number of labels, so their round-r models train together
    (cfg.ensemble at a time, superlens.active.ensemble) and each is then evaluated, queries and is
    saved as run_loop would alone. Each loop resumes after its own last finished round. Returns
    run_loop's result per spec, in order."""
    device = torch.device(device)
    validate_plan(cfg, int(ds.train_y.shape[0]))
    loops = [_Loop.open(cfg, ds, strategy, seed, Path(out_dir), device, baseline_dir)
             for strategy, seed, out_dir, baseline_dir in specs]
    norm = resolve_normalization(cfg.normalize, ds)
    # the images live on the device once for the whole loop; batches are indexed there
    x_train = ds.train_x.to(device)
    x_test = ds.test_x.to(device)
    first = min((lp.done for lp in loops), default=cfg.rounds + 1)
    for r in range(first, cfg.rounds + 1):
        now = [lp for lp in loops if lp.done <= r]
        t0 = time.perf_counter()
        for lp in now:
            lp.start_round(r)
        fits = fit_together(cfg, [lp.model for lp in now], [lp.opt for lp in now],
                            [lp.scaler for lp in now],
                            [x_train[lp.labelled.to(device)] for lp in now],
                            [ds.train_y[lp.labelled] for lp in now],
                            [generator(derive_seed(lp.seed, "train", r)) for lp in now],
                            rounds_shuffle(cfg), device,
                            [f"{lp.strategy} seed {lp.seed} round {r}" for lp in now], norm)
        shared = (time.perf_counter() - t0) / len(now)  # the joint training's time, per model
        for lp, fit in zip(now, fits):
            info = lp.finish_round(r, fit, x_train, x_test, norm, shared)
            if on_round is not None:
                on_round(lp, r, info)
    return [_collect(lp.out_dir, cfg, lp.strategy, lp.seed) for lp in loops]


def fit_together(cfg: ActiveConfig, models: list[nn.Module], opts: list, scalers: list,
                 xs: list[Tensor], ys: list[Tensor], gens: list[torch.Generator], shuffle: bool,
                 device: torch.device, descs: list[str], norm) -> list[dict]:
    """train_epochs for each model; on the CPU, models of a groupable kind with the same number of
    images train cfg.ensemble at a time, as one grouped network per torch thread side by side
    (ensemble.train_split; equal to alone up to rounding).
    Returns one train_epochs result per model, in order."""
    from superlens.active import ensemble as E

    out: list[dict | None] = [None] * len(models)
    group = (cfg.ensemble > 1 and device.type == "cpu" and len(models) > 1
             and all(E.can_group(m) for m in models)
             and len({int(x.shape[0]) for x in xs}) == 1)
    if group:
        for s in range(0, len(models), cfg.ensemble):
            idx = list(range(s, min(s + cfg.ensemble, len(models))))
            if len(idx) == 1:
                continue  # a lone model trains the ordinary way below
            fits = E.train_split([models[i] for i in idx], [opts[i] for i in idx],
                                 [xs[i] for i in idx], [ys[i] for i in idx], cfg=cfg, norm=norm,
                                 device=device, generators=[gens[i] for i in idx], shuffle=shuffle,
                                 desc=f"{len(idx)} models: {descs[idx[0]]} ...")
            for i, f in zip(idx, fits):
                out[i] = f
    for i, f in enumerate(out):
        if f is None:
            out[i] = train_epochs(models[i], opts[i], xs[i], ys[i], cfg=cfg, norm=norm,
                                  device=device, generator=gens[i], desc=descs[i], shuffle=shuffle,
                                  scaler=scalers[i])
    return out  # type: ignore[return-value]


class _Loop:
    """One (strategy, seed) loop's state between rounds: its folder, labelled set, and the model,
    optimizer and scaler that the next round starts from."""

    def __init__(self, cfg: ActiveConfig, ds: ImageDataset, strategy: str, seed: int,
                 out_dir: Path, device: torch.device):
        self.cfg, self.ds, self.strategy, self.seed = cfg, ds, strategy, seed
        self.out_dir, self.device = out_dir, device
        self.strat = _check_strategy(cfg, strategy)
        self.fp = fingerprint(cfg, LOOP_FIELDS, seed=seed, strategy=strategy, kind="loop")
        self.base_fp = fingerprint(cfg, TRAINING_FIELDS, seed=seed, kind="baseline")
        self.base_ck: Path | None = None
        self.tag = f"[{strategy} seed {seed}]"
        self.model: nn.Module | None = None
        self.opt: torch.optim.Optimizer | None = None
        self.scaler: torch.amp.GradScaler | None = None  # kept with opt while it is continued
        self.done = 0
        self.labelled = torch.empty(0, dtype=torch.int64)

    @classmethod
    def open(cls, cfg: ActiveConfig, ds: ImageDataset, strategy: str, seed: int, out_dir: Path,
             device: torch.device, baseline_dir: Path | None) -> "_Loop":
        """Check the folder, drop an interrupted round's files and load where the loop stands."""
        lp = cls(cfg, ds, strategy, seed, out_dir, device)
        if cfg.round_training == "paper":
            if baseline_dir is None or not (Path(baseline_dir) / BASELINE_MARKER).exists():
                raise ConfigError(f"round_training = 'paper' continues the baseline's model and "
                                  f"optimizer: train the baseline first (train_baseline; looked in "
                                  f"{baseline_dir})")
            lp.base_ck = Path(baseline_dir) / "checkpoint.pt"
        lp.done = done = _finished_rounds(out_dir)
        if done:  # the finished rounds must come from these settings (rounds included)
            last = _round_dir(out_dir, done - 1) / ROUND_MARKER
            check_fingerprint(_read_marker(last).get("fingerprint"), lp.fp, last)
        _discard_unfinished(out_dir, done)
        if done == 0:
            n_train = int(ds.train_y.shape[0])
            perm = torch.randperm(n_train, generator=generator(derive_seed(seed, "initial-pool")))
            lp.labelled = perm[:cfg.initial_pool].clone()
            return lp
        prev = _round_dir(out_dir, done - 1)
        st = read_checkpoint(prev / "state.pt", "round state")
        lp.labelled = torch.cat([st["labelled"], st["queried"]])
        if cfg.round_training in ("warm", "paper") and done <= cfg.rounds:
            lp.model = _new_model(cfg, ds, derive_seed(seed, "init", 0), device, state_follows=True)
            paper = cfg.round_training == "paper"
            lp.opt = make_optimizer(lp.model, cfg) if paper else None
            lp.scaler = make_scaler(device, cfg) if paper else None
            load_checkpoint(prev / "checkpoint.pt", lp.model, lp.opt, lp.fp, lp.scaler)
        say(cfg, f"{lp.tag} resuming after round {done - 1}")
        return lp

    def start_round(self, r: int) -> None:
        """Set the model, optimizer and scaler round r trains (cfg.round_training)."""
        cfg, ds, device = self.cfg, self.ds, self.device
        if cfg.round_training == "scratch" or (cfg.round_training == "warm" and r == 0):
            self.model = _new_model(cfg, ds, derive_seed(self.seed, "init", r), device)
            self.opt, self.scaler = make_optimizer(self.model, cfg), make_scaler(device, cfg)
        elif cfg.round_training == "warm":
            self.opt, self.scaler = make_optimizer(self.model, cfg), make_scaler(device, cfg)
        elif r == 0:  # paper: the baseline's model, optimizer and scaler, as after its training
            self.model = _new_model(cfg, ds, derive_seed(self.seed, "init", 0), device,
                                    state_follows=True)
            self.opt, self.scaler = make_optimizer(self.model, cfg), make_scaler(device, cfg)
            load_checkpoint(self.base_ck, self.model, self.opt, self.base_fp, self.scaler)
        # paper, r > 0: keep model, opt and scaler

    def query(self, r: int, x_train: Tensor, norm) -> tuple[Tensor, Tensor, Tensor, list[int]]:
        """Round r's query: (queried [q] train indices, scores [q], pool [P] (the unlabelled
        indices it chose from), per-class counts); nothing after the last round."""
        cfg, ds, device = self.cfg, self.ds, self.device
        n_train = int(ds.train_y.shape[0])
        mask = torch.ones(n_train, dtype=torch.bool)
        mask[self.labelled] = False
        pool = mask.nonzero().squeeze(1)  # unlabelled train indices, ascending
        if r >= cfg.rounds:
            return (torch.empty(0, dtype=torch.int64), torch.empty(0, dtype=torch.float32), pool,
                    [0] * ds.n_classes)
        cand = getattr(cfg, "candidates", None)
        if cand is not None and cand < pool.numel():
            # a random candidate subset, the same for every strategy at (seed, round)
            pick = torch.randperm(pool.numel(),
                                  generator=generator(derive_seed(self.seed, "candidates", r)))
            pool = pool[pick[:cand].sort().values]
        view = _pool_view(cfg, self.strat.needs, self.model, x_train, self.labelled, pool, norm,
                          device, default_feature_layer(cfg.model),
                          mc_seed=derive_seed(self.seed, self.strategy, "mc", r))
        sel = self.strat.select(view, cfg.query_size,
                                generator(derive_seed(self.seed, self.strategy, "select", r)))
        pos = sel.indices.to("cpu", torch.int64)
        assert pos.numel() == cfg.query_size and pos.unique().numel() == pos.numel(), (
            f"strategy {self.strategy} returned {pos.numel()} positions ({pos.unique().numel()} "
            f"distinct) for query_size {cfg.query_size}")
        queried = pool[pos]
        per_class = torch.bincount(ds.train_y[queried], minlength=ds.n_classes).tolist()
        return queried, sel.scores.detach().float().cpu(), pool, per_class

    def finish_round(self, r: int, fit: dict, x_train: Tensor, x_test: Tensor, norm,
                     train_share: float) -> dict:
        """Evaluate round r's model, query, save the round (round.json last) and add the queries
        to the labelled set. train_share: this model's share of the training wall time."""
        cfg = self.cfg
        t0 = time.perf_counter()
        acc, probs, feats = _evaluate(cfg, self.model, x_test, self.ds.test_y, norm, self.device)
        t_query = time.perf_counter()
        queried, scores, pool, per_class = self.query(r, x_train, norm)
        t_query = time.perf_counter() - t_query
        rdir = _round_dir(self.out_dir, r)
        atomic_save_torch(rdir / "state.pt", {"labelled": self.labelled, "pool": pool,
                                              "queried": queried, "scores": scores})
        atomic_save_torch(rdir / "test_probs.pt", probs)
        atomic_save_torch(rdir / "test_features.pt", feats)
        save_checkpoint(rdir / "checkpoint.pt", self.model, self.opt, self.fp, self.scaler)
        info = {"round": r, "labelled": int(self.labelled.numel()), "accuracy": acc,
                "queried_per_class": per_class if r < cfg.rounds else None,
                "seconds": train_share + time.perf_counter() - t0,
                "train_seconds": fit["seconds"], "query_seconds": t_query,
                "train_loss": fit["loss"], "strategy": self.strategy, "seed": self.seed,
                "feature_layer": _feature_layer(cfg), "fingerprint": self.fp}
        write_json(rdir / ROUND_MARKER, info)
        say(cfg, f"{self.tag} round {r}/{cfg.rounds}: {info['labelled']} labelled, test accuracy "
             f"{acc:.4f}, loss {fit['loss']:.4f}, {info['seconds']:.1f} s")
        self.labelled = torch.cat([self.labelled, queried])
        self.done = r + 1
        return info


def _pool_view(cfg, needs: frozenset[str], model: nn.Module, x_train: Tensor, labelled: Tensor,
               pool: Tensor, norm, device: torch.device, layer: str, mc_seed: int) -> S.PoolView:
    """A PoolView on ``device`` holding exactly the fields the strategy declares in ``needs``."""
    view = S.PoolView()
    common = dict(norm=norm, device=device, batch_size=cfg.eval_batch_size, image_size=cfg.image_size,
                  amp=cfg.amp, out_device=device)
    if needs & {"probs", "features"}:
        probs, feats = predict(model, x_train[pool.to(device)], feature_layer=layer, **common)
        view.probs = probs if "probs" in needs else None
        view.features = feats if "features" in needs else None
    if "labelled_features" in needs:
        _, view.labelled_features = predict(model, x_train[labelled.to(device)], feature_layer=layer,
                                            **common)
    if "mc_probs" in needs:
        view.mc_probs = mc_dropout_probs(model, x_train[pool.to(device)], T=cfg.bald_samples,
                                         seed=mc_seed, **common)
    return view


def _collect(out_dir: Path, cfg: ActiveConfig, strategy: str, seed: int) -> dict:
    """The loop's result, read back from the saved rounds (the same whether or not it resumed)."""
    rounds = []
    for r in range(cfg.rounds + 1):
        d = _read_marker(_round_dir(out_dir, r) / ROUND_MARKER)
        rounds.append({k: d.get(k) for k in ("round", "labelled", "accuracy", "queried_per_class",
                                              "seconds", "train_loss")})
    last = _round_dir(out_dir, cfg.rounds)
    st = read_checkpoint(last / "state.pt", "round state")
    return {"rounds": rounds, "final_accuracy": rounds[-1]["accuracy"],
            "final_probs": read_checkpoint(last / "test_probs.pt", "test probabilities"),
            "final_features": read_checkpoint(last / "test_features.pt", "test features"),
            "labelled_indices": st["labelled"], "strategy": strategy, "seed": seed, "out_dir": out_dir}


__all__ = ["validate_plan", "check_resumable", "rounds_shuffle", "train_baseline", "train_baselines",
           "run_loop", "run_loops", "fit_together", "derive_seed", "fingerprint", "say",
           "TRAINING_FIELDS", "LOOP_FIELDS"]
