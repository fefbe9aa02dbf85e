"""Frozen, typed run configs, loadable from TOML, validated at the boundary.

Every config is a pydantic model with ``extra="forbid"``; each field's ``description`` states its
allowed range, and a validation failure becomes one ConfigError line naming field, value and range.
"""
from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from superlens.errors import ConfigError

C = TypeVar("C", bound="BaseConfig")


class BaseConfig(BaseModel):
    # inf and nan pass every numeric bound (inf > 0), so they are refused outright
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    @classmethod
    def build(cls: type[C], data: dict[str, Any], source: str = "config") -> C:
        """Validate ``data``; any failure is one ConfigError line naming the field and range."""
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise ConfigError(format_validation_error(cls, e, source)) from None

    def replace(self: C, **changes: Any) -> C:
        """A validated copy with some fields changed (None values are ignored)."""
        merged = self.model_dump()
        merged.update({k: v for k, v in changes.items() if v is not None})
        return type(self).build(merged)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True)


def format_validation_error(cls: type[BaseModel], e: ValidationError, source: str) -> str:
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    field = str(err["loc"][0]) if err["loc"] else ""
    if err["type"] == "extra_forbidden":
        allowed = ", ".join(sorted(cls.model_fields))
        return f"{source}: unknown key '{loc}' (allowed keys: {allowed})"
    info = cls.model_fields.get(field)
    allowed = f"; allowed: {info.description}" if info is not None and info.description else ""
    value = err.get("input")
    return f"{source}: {loc} = {value!r} is invalid ({err['msg']}){allowed}"


def load_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path}: not found") from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {path}: unreadable ({e})") from None


def load_config(cls: type[C], path: str | Path | None, overrides: dict[str, Any]) -> C:
    """File values, then command-line overrides (None means 'not given'), validated once."""
    data: dict[str, Any] = load_toml(path) if path is not None else {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return cls.build(data, source=f"config file {path}" if path is not None else "config")


class ToyConfig(BaseConfig):
    """The compressed-computation study: y = W_out ReLU(W_in x), target ReLU(x), Lq loss."""

    n_features: int = Field(100, ge=1, description="integer >= 1")
    n_hidden: int = Field(10, ge=1, description="integer >= 1")
    p: float = Field(0.02, gt=0, le=1, description="feature probability in (0, 1]")
    loss_power: float = Field(4.0, ge=1, description="loss exponent q >= 1")
    steps: int = Field(1000, ge=1, description="integer >= 1")
    batch_size: int = Field(2048, ge=1, description="integer >= 1")
    lr: float = Field(3e-3, gt=0, description="learning rate > 0")
    seeds: int = Field(3, ge=1, description="number of seeds (instances), integer >= 1")
    seed: int = Field(0, ge=0, description="first seed, integer >= 0")
    bias: bool = Field(False, description="true or false")
    device: str = Field("auto", description="'auto', 'cpu' or 'cuda[:N]'")
    threads: int | None = Field(None, ge=1, description="torch threads >= 1, or unset for auto")
    eval_samples: int | None = Field(None, ge=1000, description="evaluation samples, integer >= 1000, "
                                     "or unset: at least 200,000 and enough that every feature is "
                                     "active in >= 2,000 of them (adaptive to p)")
    compare_l2: bool = Field(True, description="also train the same seeds under L2 (true/false)")
    log_every: int = Field(50, ge=1, description="integer >= 1")


Dataset = Literal["digits", "cifar10", "tiny-imagenet", "image-folder", "synthetic"]
ModelName = Literal["small-cnn", "narrow-cnn", "resnet18-cifar", "resnet18"]
RoundTraining = Literal["scratch", "warm", "paper"]


class ActiveConfig(BaseConfig):
    """The active-learning superposition study: a baseline on all training data, then each strategy's
    active-learning loop, compared by measures on test-set features."""

    preset: str | None = Field(None, description="a preset name (see superlens.active.presets)")
    dataset: Dataset = Field("digits", description="digits, cifar10, tiny-imagenet, image-folder or "
                             "synthetic")
    data_dir: str | None = Field(None, description="folder holding the data set")
    cache_dir: str | None = Field(None, pattern=r"\S", description="folder for decoded-image "
                                  "caches, a non-empty path outside the data folder and the run "
                                  "directory (unset: $XDG_CACHE_HOME/superlens or ~/.cache/superlens)")
    download: bool = Field(False, description="download the data set where the network allows")
    image_size: int | None = Field(None, ge=8, description="resize images to this side (>= 8), or unset")
    model: ModelName = Field("small-cnn", description="small-cnn, narrow-cnn, resnet18-cifar or "
                             "resnet18")
    pretrained: bool = Field(False, description="ImageNet weights for resnet18 (true/false)")
    weights_path: str | None = Field(None, description="a local torchvision resnet18 state_dict file")
    feature_layer: str | None = Field(None, description="module name whose output is the feature "
                                      "(unset: the pooled penultimate layer)")
    optimizer: Literal["adam", "sgd"] = Field("adam", description="adam or sgd")
    lr: float = Field(1e-3, gt=0, description="learning rate > 0")
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant", description="learning rate within each training: constant, or cosine (from lr "
        "down to 0 over that training's steps)")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum in [0, 1)")
    weight_decay: float = Field(0.0, ge=0, description="weight decay >= 0")
    epochs: int = Field(20, ge=1, description="epochs per training, integer >= 1")
    batch_size: int = Field(128, ge=1, description="integer >= 1")
    eval_batch_size: int = Field(512, ge=1, description="integer >= 1")
    augment: bool = Field(False, description="random crop + flip (true/false)")
    amp: bool = Field(True, description="mixed precision, used on CUDA only (true/false)")
    shuffle: bool = Field(True, description="shuffle training batches (the paper's baseline did not)")
    shuffle_rounds: bool | None = Field(None, description="shuffle the active-learning rounds' "
                                        "training batches (true/false; unset: as shuffle)")
    normalize: Literal["dataset", "cifar-paper", "imagenet", "none"] = Field(
        "dataset", description="dataset, cifar-paper, imagenet or none")
    initial_pool: int = Field(100, ge=1, description="initial labelled pool size, integer >= 1")
    rounds: int = Field(5, ge=0, description="query rounds, integer >= 0")
    query_size: int = Field(100, ge=1, description="samples queried per round, integer >= 1")
    strategies: list[str] = Field(["least-confidence", "entropy", "coreset", "random"],
                                  min_length=1, description="registered strategy names")
    pool_size: int | None = Field(None, ge=2, description="use a class-balanced random subset of this "
                                  "many training images as the whole training set (baseline and "
                                  "pool), integer >= 2, or unset for all")
    test_size: int | None = Field(None, ge=2, description="evaluate on a class-balanced random subset "
                                  "of this many test images (the same for every model), integer >= 2, "
                                  "or unset for all")
    candidates: int | None = Field(None, ge=1, description="score a fresh random subset of this many "
                                   "unlabelled images per round (>= query_size), or unset for all")
    round_training: RoundTraining = Field("scratch", description="scratch, warm or paper")
    dropout: float = Field(0.2, ge=0, lt=1, description="dropout before the classifier, in [0, 1)")
    bald_samples: int = Field(10, ge=2, description="MC-dropout passes for bald, integer >= 2")
    seeds: int = Field(1, ge=1, description="number of seeds, integer >= 1")
    seed: int = Field(0, ge=0, description="first seed, integer >= 0")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="held-out share for digits/synthetic, in (0, 1)")
    paper_features: bool = Field(False, description="compute cos_* on the paper notebook's features "
                                 "(layer4's last block applied twice), true/false")
    # on by default for the final models: the recipe costs ~10-25 s per layer (3 AE seeds) on 2 idle
    # CPU cores at 128 wide; sae_gflop caps it (presets that must stay quick lower the cap)
    sae: Literal["rounds", "final", "off"] = Field("final", description="sparse-autoencoder measure: "
                                                   "rounds (final models' feature layer and last conv "
                                                   "block, every round's feature layer), final (final "
                                                   "models only) or off")
    sae_gflop: float = Field(2000.0, gt=0, le=1e6, description="compute cap per sparse autoencoder in "
                             "GFLOP (> 0; the recipe's own cap is 2000; lower is faster "
                             "and leaves F less converged on wide layers)")
    tsne: Literal["opentsne", "sklearn"] = Field("opentsne", description="t-SNE implementation: "
                                                 "opentsne, or sklearn (the paper's TSNE(random_state=42))")
    tsne_points: int = Field(10_000, ge=50, description="most test points embedded by t-SNE, >= 50")
    device: str = Field("auto", description="'auto', 'cpu' or 'cuda[:N]'")
    threads: int | None = Field(None, ge=1, description="torch threads >= 1, or unset for all cores")
    progress: bool = Field(True, description="progress bars (true/false)")
    ensemble: int = Field(1, ge=1, le=64, description="models trained at once as grouped networks "
                          "(seeds, and strategies at the same round; one network per torch thread, "
                          "side by side), integer in [1, 64]; small CNNs only, others train one at "
                          "a time")
    # the verdict's plan, fixed before the run (superlens.active.verdicts; unset entries: its defaults)
    delta: dict[str, float] | None = Field(None, description="smallest effect of interest per "
                                           "measure (measure = value > 0), for the equivalence test")
    primary: dict[str, str] | None = Field(None, description="primary measure per claim "
                                           "(claim id = measure)")


class TMSConfig(BaseConfig):
    """The classic toy model of superposition (Elhage et al. 2022): x -> ReLU(W^T W x + b), feature i
    present with probability p, value U(0, 1), importance_i = importance_decay**i."""

    n_features: int = Field(5, ge=1, description="integer >= 1")
    n_hidden: int = Field(2, ge=1, description="integer >= 1")
    p: float = Field(0.05, gt=0, le=1, description="feature probability 1 - S in (0, 1]")
    importance_decay: float = Field(1.0, gt=0, le=1, description="importance ratio in (0, 1]")
    steps: int = Field(5000, ge=1, description="integer >= 1")
    batch_size: int = Field(1024, ge=1, description="integer >= 1")
    lr: float = Field(1e-3, gt=0, description="learning rate > 0")
    seed: int = Field(0, ge=0, description="integer >= 0")
    device: str = Field("auto", description="'auto', 'cpu' or 'cuda[:N]'")


class SAEValidationConfig(BaseConfig):
    """One toy model of the SAE measure's validation (superlens.studies.sae_validation): its family,
    shape, training, and the autoencoders fitted to its layer. Unset training fields take the
    family's defaults (FAMILY_DEFAULTS there); unset sae_* fields take SAERecipe's."""

    family: Literal["tms", "cc", "planted"] = Field(
        "tms", description="tms (classic toy model, layer W x), cc (compressed computation, layer "
        "ReLU(W_in x)) or planted (sums of k_features planted directions, superlens.measures.planted)")
    n_features: int | None = Field(None, ge=2, description="input features, integer >= 2 (default: "
                                   "20 tms, 40 cc)")
    n_hidden: int = Field(5, ge=1, description="layer width, integer >= 1")
    p: float = Field(0.1, gt=0, le=1, description="feature probability in (0, 1]")
    importance_decay: float = Field(1.0, gt=0, le=1, description="tms: importance of feature i is "
                                    "decay^i, in (0, 1]")
    loss_power: float = Field(2.0, ge=1, le=8, description="cc: training loss exponent in [1, 8]")
    model_seed: int = Field(0, ge=0, description="seed of the toy model and of its fresh inputs")
    steps: int | None = Field(None, ge=1, description="training steps (default: 4000 tms, 1000 cc)")
    batch_size: int | None = Field(None, ge=1, description="training batch (default: 1024 tms, "
                                   "2048 cc)")
    lr: float | None = Field(None, gt=0, description="learning rate (default: 1e-2 tms, 3e-3 cc)")
    rows: int = Field(20_000, ge=100, le=1_000_000, description="activation rows the autoencoders "
                      "see, integer in [100, 1e6]")
    ae_seeds: int = Field(3, ge=1, le=20, description="autoencoder seeds per model, integer in [1, 20]")
    k_features: int = Field(64, ge=1, le=65536, description="planted: features K, integer in [1, 65536]")
    active: float = Field(3.0, gt=0, description="planted: expected active features per row, > 0 "
                          "and <= k_features")
    frequency: Literal["uniform", "power"] = Field("uniform", description="planted: per-feature "
                                                   "frequencies, uniform or power (p_k ~ (k+1)^-alpha)")
    alpha: float = Field(1.0, ge=0, le=4, description="planted: power-law exponent in [0, 4]")
    magnitude: Literal["uniform", "exponential", "halfnormal", "one"] = Field(
        "uniform", description="planted: coefficient law, uniform U(0,1), exponential, halfnormal or one")
    directions: Literal["random", "clustered"] = Field("random", description="planted: random unit "
                                                       "directions, or clustered around centres")
    overlap: float = Field(0.3, ge=0, lt=1, description="planted clustered: expected cosine within a "
                           "cluster, in [0, 1)")
    cooccur: float = Field(0.0, ge=0, le=1, description="planted: probability feature 2j+1 copies "
                           "feature 2j's draw, in [0, 1]")
    sae_l1: float | None = Field(None, ge=0, description="SAERecipe.l1 (unset: the frozen recipe's)")
    sae_k: int | None = Field(None, ge=1, description="SAERecipe.k (unset: the frozen recipe's)")
    sae_fvu_fewer: float | None = Field(None, ge=0, lt=1, description="SAERecipe.fvu_fewer, the "
                                        "fewest-latents rule's FVU (unset: the frozen recipe's; 0: off)")
    sae_fvu_more: float | None = Field(None, ge=0, lt=1, description="SAERecipe.fvu_more, the "
                                       "more-latents rule's FVU (unset: the frozen recipe's; 0: off)")
    sae_k_max: int | None = Field(None, ge=1, description="SAERecipe.k_max, the largest k the "
                                  "more-latents rule tries (unset: the frozen recipe's)")
    sae_sparsity: Literal["l1", "topk", "batchtopk"] | None = Field(
        None, description="SAERecipe.sparsity (unset: the frozen recipe's)")
    sae_dict_multiple: float | None = Field(None, ge=1, description="SAERecipe.dict_multiple (unset: "
                                            "the frozen recipe's)")
    sae_steps: int | None = Field(None, ge=1, description="SAERecipe.steps (unset: the frozen "
                                  "recipe's)")
    sae_train_rows: Literal["all", "nonzero"] | None = Field(None, description="SAERecipe.train_rows "
                                                          "(unset: the frozen recipe's)")
    sae_merge_cos: float | None = Field(None, gt=0, description="SAERecipe.merge_cos (unset: the "
                                        "frozen recipe's; > 1 pools nothing)")
    device: str = Field("cpu", description="'auto', 'cpu' or 'cuda[:N]'")


class SweepOptions(BaseConfig):
    """[options] of a sweep spec: settings of the sweep itself, not of any one point."""

    eval_samples: int | None = Field(None, ge=1000, description="toy study: evaluation samples per "
                                     "point, integer >= 1000 (default: adaptive to each point's p, "
                                     "enough that every feature is active in >= 2,000 of them, at "
                                     "least 50,000; a base key or axis eval_samples is the same "
                                     "setting)")


class SweepSpec(BaseConfig):
    """A sweep: a study, its base config, and axes whose cartesian product is the grid.

    An axis is a list of values, or a table {log = [lo, hi], num = N} / {linear = [lo, hi], num = N}.
    """

    name: str = Field("sweep", description="a name for the report")
    study: str = Field(description="a study with a sweep adapter (superlens.studies.STUDIES: toy, tms, "
                                   "active, sae-validation)")
    base: dict[str, Any] = Field(default_factory=dict, description="fields of the study's config")
    axes: dict[str, Any] = Field(description="axis name -> list of values or {log|linear=[lo,hi], num=N}")
    options: SweepOptions = Field(default_factory=SweepOptions,
                                  description="sweep options: eval_samples (toy)")

    @classmethod
    def build(cls, data: dict[str, Any], source: str = "config") -> "SweepSpec":
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            loc = e.errors()[0]["loc"]
            if loc and loc[0] == "options" and len(loc) > 1:  # name the options' own keys and ranges
                try:
                    SweepOptions.model_validate(data.get("options"))
                except ValidationError as e2:
                    raise ConfigError(format_validation_error(SweepOptions, e2,
                                                              f"{source} [options]")) from None
            raise ConfigError(format_validation_error(cls, e, source)) from None


class MeasureConfig(BaseConfig):
    """`superlens measure`: one model (or activations), the layers, the data, and the measures."""

    model: str | None = Field(None, description="a torchvision architecture name, a TorchScript file, "
                              "a checkpoint of superlens active, or package.module:function")
    weights: str | None = Field(None, description="a state_dict file (.pt, .pth, .safetensors) for a "
                                "torchvision or package.module:function model")
    layers: list[str] = Field(default_factory=list, description="module paths (as --list-layers "
                              "prints them), 'output' for the model's output; with activations: "
                              "names in the file")
    data_dir: str | None = Field(None, description="an image-folder tree, CIFAR-10 python batches or "
                                 "tiny-imagenet-200 (the layout is detected)")
    inputs: str | None = Field(None, description="a tensor file of inputs [n, ...] (.pt, .npy, .npz, "
                               ".safetensors)")
    activations: str | None = Field(None, description="a tensor file of activations [rows, N], one "
                                    "per layer (no model needed)")
    split: Literal["test", "train"] = Field("test", description="which split of --data-dir: test or "
                                            "train")
    max_images: int | None = Field(None, ge=1, description="a seeded random subset of this many "
                                   "samples, integer >= 1")
    labels: str = Field("auto", description="auto (the data folder's classes, or a labels entry of "
                        "the file), none, or a tensor file of [n] integer labels")
    normalize: str | None = Field(None, description="dataset, cifar-paper, imagenet or none")
    image_size: int | None = Field(None, ge=1, description="resize images to S x S, integer >= 1")
    cache_dir: str | None = Field(None, description="folder for the activation cache and decoded "
                                  "images")
    batch_size: int = Field(256, ge=1, description="images per forward pass, integer >= 1")
    max_rows: int = Field(50_000, ge=100, description="activation rows kept per layer (a seeded "
                          "subset of spatial positions / samples), integer >= 100")
    seed: int = Field(0, ge=0, description="seed of the data subset, the row subsets and "
                      "the random weights, integer >= 0 (the autoencoders use seeds 0 .. sae_seeds - 1)")
    sae: Literal["on", "off"] = Field("on", description="the sparse-autoencoder measure: on or off")
    sae_seeds: int = Field(3, ge=1, le=20, description="autoencoder seeds per layer, integer in [1, 20]")
    sae_gflop: float | None = Field(None, gt=0, description="compute cap per autoencoder in GFLOP, "
                                    "> 0")
    device: str = Field("auto", description="'auto', 'cpu' or 'cuda[:N]'")
    threads: int | None = Field(None, ge=1, description="torch threads, integer >= 1")
    progress: bool = Field(True, description="progress bars")
