"""The active study's own checks of a config before anything trains: the data (loaded exactly as the
run will load it: superlens.active.study.load_study_data, same pool, test subset, image size and
cache folder), the plan (strategy names, pool sizes against the training-set size) and the model
(weights file, feature layer), as run_active does them before it writes. A sweep runs them on every
point first; they write nothing (a fresh decode's cache write is dropped: the run writes it)."""
from __future__ import annotations

from superlens.config import ActiveConfig
from superlens.errors import SuperlensError

# the config fields that decide which data load_study_data returns
DATA_FIELDS = ("dataset", "data_dir", "download", "seed", "test_fraction", "cache_dir", "image_size",
               "pool_size", "test_size")


class ActiveChecker:
    """Checks configs one by one; each data set is loaded once and each distinct model built once."""

    def __init__(self) -> None:
        self.data: dict[tuple, object] = {}
        self.models: set[tuple] = set()

    def __call__(self, cfg: ActiveConfig, where: str) -> None:
        """Raise the first problem as the same error type, its message prefixed with `where`."""
        from superlens.active.image_cache import check_cache_dir
        from superlens.active.loop import validate_plan
        from superlens.active.study import load_study_data, preflight_model

        key = tuple(getattr(cfg, f) for f in DATA_FIELDS)
        model_key = key + (cfg.model, cfg.pretrained, cfg.weights_path, cfg.dropout,
                           cfg.feature_layer, cfg.paper_features)
        try:
            if key not in self.data:
                check_cache_dir(cfg.cache_dir, cfg.data_dir)
                self.data[key] = load_study_data(cfg.replace(progress=False), pending=[])
            ds = self.data[key]
            validate_plan(cfg, int(ds.train_y.shape[0]))
            if model_key not in self.models:
                preflight_model(cfg, ds)
                self.models.add(model_key)
        except SuperlensError as e:
            err = type(e)(f"{where}: {e}")
            raise err from None
