"""superlens.capture: rows by hand, the row subset as conv_rows draws it, the cache reused and
invalidated, a cut capture continued, and the layer checks."""
import numpy as np
import pytest
import torch
from torch import nn

from superlens.capture import LayerTap, TensorSource, capture, list_layers, to_rows
from superlens.errors import ConfigError
from superlens.measures.sae import conv_rows


def small_cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 6, 3, stride=2, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4))


def _hand(model, x, idx):
    """The layer's output by running the model by hand up to module idx (no hooks)."""
    with torch.no_grad():
        return model[: idx + 1](x)


def test_conv_rows_equal_a_hand_reshape(tmp_path):
    model, x = small_cnn(), torch.randn(10, 3, 8, 8)
    acts = capture(model, ["1", "3", "6"], TensorSource(x), cache_dir=tmp_path, max_rows=None,
                   batch_size=3)
    fmap = _hand(model, x, 1)                                   # [10, 8, 8, 8]
    by_hand = np.stack([fmap[b, :, i, j].numpy() for b in range(10) for i in range(8)
                        for j in range(8)])                      # row = (sample, h, w), channels
    np.testing.assert_allclose(acts["1"].rows.astype(np.float32), by_hand, atol=2e-3, rtol=1e-3)
    assert acts["1"].kind == "conv" and acts["1"].shape == (8, 8, 8)
    np.testing.assert_array_equal(acts["1"].sample, np.repeat(np.arange(10), 64))
    np.testing.assert_allclose(acts["1"].pooled.astype(np.float32), fmap.mean((2, 3)).numpy(), atol=2e-3)
    assert acts["3"].rows.shape == (10 * 16, 6)
    assert acts["6"].kind == "dense" and acts["6"].rows.shape == (10, 4)
    assert [acts[n].depth for n in ("1", "3", "6")] == [0, 1, 2]


def test_row_cap_draws_the_rows_conv_rows_draws(tmp_path):
    model, x = small_cnn(), torch.randn(12, 3, 8, 8)
    acts = capture(model, ["1"], TensorSource(x), cache_dir=tmp_path, max_rows=100, seed=7,
                   batch_size=5)
    ref = conv_rows(_hand(model, x, 1), 100, seed=7)
    np.testing.assert_allclose(acts["1"].rows.astype(np.float32), ref.numpy(), atol=2e-3, rtol=1e-3)
    assert acts["1"].rows.shape == (100, 8) and acts["1"].pooled.shape == (12, 8)


def test_tokens_become_rows():
    out = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 4)  # [B, T, D]
    assert torch.equal(to_rows(out), out.reshape(6, 4))


class Counting(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


def test_cache_is_reused_and_invalidated_when_weights_change(tmp_path):
    model, x = Counting(small_cnn()), torch.randn(9, 3, 8, 8)
    a = capture(model, ["inner.1", "inner.6"], TensorSource(x), cache_dir=tmp_path, batch_size=4)
    assert not any(v.reused for v in a.values())
    model.calls = 0
    b = capture(model, ["inner.1", "inner.6"], TensorSource(x), cache_dir=tmp_path, batch_size=4)
    assert all(v.reused for v in b.values()) and model.calls == 1  # the one-sample shape probe
    assert b["inner.1"].path == a["inner.1"].path
    np.testing.assert_array_equal(b["inner.6"].rows, a["inner.6"].rows)
    with torch.no_grad():
        model.inner[0].weight[0, 0, 0, 0] += 0.5
    c = capture(model, ["inner.1"], TensorSource(x), cache_dir=tmp_path, batch_size=4)
    assert not c["inner.1"].reused and c["inner.1"].path != a["inner.1"].path
    assert not np.array_equal(c["inner.1"].rows, a["inner.1"].rows)
    # other data is another entry too
    d = capture(model, ["inner.1"], TensorSource(x + 1), cache_dir=tmp_path, batch_size=4)
    assert not d["inner.1"].reused


class CutAfter(TensorSource):
    """A source that stops (as Ctrl-C would) when asked for batch number `stop_at`."""

    def __init__(self, x, stop_at):
        super().__init__(x)
        self.stop_at, self.calls = stop_at, 0

    def batch(self, start, stop, device):
        if stop - start > 1:
            self.calls += 1
            if self.calls == self.stop_at:
                raise KeyboardInterrupt
        return super().batch(start, stop, device)


def test_a_cut_capture_continues(tmp_path, monkeypatch):
    import superlens.capture.store as store

    monkeypatch.setattr(store, "SYNC_SECONDS", 0.0)  # record progress after every batch
    model, x = small_cnn(), torch.randn(20, 3, 8, 8)
    with pytest.raises(KeyboardInterrupt):
        capture(model, ["1"], CutAfter(x, stop_at=4), cache_dir=tmp_path, batch_size=4)
    parts = list(tmp_path.glob("*.partial"))
    assert len(parts) == 1 and (parts[0] / "progress.json").is_file()
    again = CutAfter(x, stop_at=10**9)
    got = capture(model, ["1"], again, cache_dir=tmp_path, batch_size=4)
    assert again.calls == 2  # samples 12..19: the 3 batches done were not run again
    whole = capture(model, ["1"], TensorSource(x), cache_dir=None, batch_size=4)
    np.testing.assert_array_equal(got["1"].rows, whole["1"].rows)
    assert not list(tmp_path.glob("*.partial"))


def test_unknown_layer_names_the_nearest_paths():
    with pytest.raises(ConfigError, match=r"layer 'layer4': no such module .*nearest module paths: layer4x"):
        LayerTap(nn.ModuleDict({"layer4x": nn.Identity(), "fc": nn.Identity()}), ["layer4"])


class TupleOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(4, 3, batch_first=True)

    def forward(self, x):
        return self.rnn(x)[0]


def test_a_layer_whose_output_is_not_a_tensor_is_refused():
    with LayerTap(TupleOut(), ["rnn"]) as tap, pytest.raises(ConfigError, match="output is a tuple"):
        tap.run(torch.randn(2, 5, 4))


def test_list_layers_and_the_model_output():
    rows = list_layers(small_cnn(), torch.randn(1, 3, 8, 8))
    assert ("0", "Conv2d", "[8, 8, 8]") in rows and ("output", "model output", "[4]") in rows
    with LayerTap(small_cnn(), ["output"]) as tap:
        assert tap.run(torch.randn(2, 3, 8, 8))["output"].shape == (2, 4)
