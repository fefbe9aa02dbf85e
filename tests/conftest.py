"""Shared fixtures: the active-learning study's sparse-autoencoder measure runs by default; tests
fit a cheap recipe (the measure itself is tested in test_measures_sae.py and test_studies_sae_validation.py).
Session-wide, so that module-scoped fixtures that run a study get it too.

torchvision is imported through superlens.vision first, so that the test modules' own
``import torchvision`` works beside a CPU build of torch too (see that module)."""
import pytest

from superlens.vision import import_torchvision

import_torchvision()


@pytest.fixture(scope="session", autouse=True)
def cheap_sae_recipe():
    try:
        from superlens.active import sae_measures
        from superlens.measures.sae import SAERecipe
    except ImportError:
        yield
        return
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sae_measures, "study_recipe", lambda cfg=None: SAERecipe(
            dict_multiple=2.0, steps=30, batch_size=64,
            max_gflop=float(getattr(cfg, "sae_gflop", None) or 1200.0)))
        yield
