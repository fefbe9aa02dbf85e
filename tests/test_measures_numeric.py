"""Small numeric helpers (superlens.measures.numeric): the mean ± std over seeds, JSON-safe numbers."""
import math

import numpy as np

from superlens.measures.numeric import json_clean, json_float, mean_std


def test_mean_std_is_the_sample_std_and_zero_for_one_seed():
    # 1, 2, 3, 6: mean 3, squared deviations 4 + 1 + 0 + 9 = 14, sample variance 14 / 3
    assert mean_std([1, 2, 3, 6]) == (3.0, math.sqrt(14 / 3))
    assert mean_std([0.25]) == (0.25, 0.0)
    m, s = mean_std((2.0, 2.0))
    assert (m, s) == (2.0, 0.0) and isinstance(m, float) and isinstance(s, float)


def test_mean_std_keeps_float32_sums():
    x = np.asarray([0.1, 0.2, 0.7], dtype=np.float32)
    assert mean_std(x) == (float(x.mean()), float(x.std(ddof=1)))
    assert mean_std(x)[0] != float(x.astype(np.float64).mean())  # summed in float32, as before


def test_json_numbers():
    assert json_float(float("nan")) is None and json_float(np.float32(1.5)) == 1.5
    assert json_clean([1.0, [float("inf"), float("-inf"), float("nan")]]) == [1.0, ["inf", "-inf", None]]
