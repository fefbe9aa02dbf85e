"""The active-learning superposition study: data sets, models, strategies, training loop."""
