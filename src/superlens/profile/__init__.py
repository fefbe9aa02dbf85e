"""`superlens measure`: the superposition profile of any model's layers (API: superlens.measure)."""
from superlens.profile.api import measure, measure_activations

__all__ = ["measure", "measure_activations"]
