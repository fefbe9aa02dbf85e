"""The active study's own checks of a config before anything trains: the plan (strategy names, pool
sizes against the training-set size) and the model (weights file, feature layer), as run_active does
them before it writes. A sweep runs them on every point first."""
from __future__ import annotations

from superlens.config import ActiveConfig
from superlens.errors import SuperlensError


class ActiveChecker:
    """Checks configs one by one; each data set is loaded once and each distinct model built once."""

    def __init__(self) -> None:
        self.data: dict[tuple, object] = {}
        self.models: set[tuple] = set()

    def __call__(self, cfg: ActiveConfig, where: str) -> None:
        """Raise the first problem as the same error type, its message prefixed with `where`."""
        from superlens.active.data import load_dataset
        from superlens.active.loop import validate_plan
        from superlens.active.study import preflight_model

        key = (cfg.dataset, cfg.data_dir, cfg.download, cfg.seed, cfg.test_fraction)
        model_key = key + (cfg.model, cfg.pretrained, cfg.weights_path, cfg.dropout,
                           cfg.feature_layer, cfg.paper_features)
        try:
            if key not in self.data:
                self.data[key] = load_dataset(cfg.dataset, cfg.data_dir, download=cfg.download,
                                              seed=cfg.seed, test_fraction=cfg.test_fraction,
                                              progress=False)
            ds = self.data[key]
            validate_plan(cfg, int(ds.train_y.shape[0]))
            if model_key not in self.models:
                preflight_model(cfg, ds)
                self.models.add(model_key)
        except SuperlensError as e:
            err = type(e)(f"{where}: {e}")
            raise err from None
