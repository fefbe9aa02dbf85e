"""Activations out of any model: forward hooks by module path, rows per spatial position or token,
an on-disk float16 cache keyed by model, weights, layer and data (imports nothing of the studies).

    from superlens.capture import TensorSource, capture
    acts = capture(model, ["layer1", "layer4"], TensorSource(x), cache_dir=None)
"""
from superlens.capture.hooks import (OUTPUT, LayerShape, LayerTap, list_layers, pool, row_layout,
                                     to_rows)
from superlens.capture.sources import TensorSource
from superlens.capture.store import (LayerActivations, capture, kept_rows, model_fingerprint, probe,
                                     tensor_digest)

__all__ = ["OUTPUT", "LayerShape", "LayerTap", "LayerActivations", "TensorSource", "capture",
           "kept_rows", "list_layers", "model_fingerprint", "pool", "probe", "row_layout", "to_rows",
           "tensor_digest"]
