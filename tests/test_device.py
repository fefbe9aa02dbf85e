"""Worker threads over independent chunks (superlens.device.run_threaded)."""
import time

import pytest
import torch

from superlens.device import run_threaded

torch.set_num_threads(1)


def test_worker_error_reaches_the_caller():
    done = []

    def fn(i):
        time.sleep(0.005)  # long enough that the other worker cannot run through the queue meanwhile
        if i == 3:
            raise ValueError("chunk 3 failed")
        done.append(i)

    torch.set_num_threads(2)
    try:
        with pytest.raises(ValueError, match="chunk 3"):
            run_threaded(fn, list(range(50)), workers=2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
    assert 3 not in done and len(done) < 50  # the others stop taking chunks
