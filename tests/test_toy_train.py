"""The hand-differentiated instance-axis engine against autograd + torch.optim.Adam."""
import math

import pytest
import torch

from superlens.device import generator
from superlens.toy.data import sample_sparse
from superlens.toy.models import MLPParams, forward, init_mlp
from superlens.toy.train import loss_and_grads, train_mlp


def _autograd_grads(params: MLPParams, x: torch.Tensor, q: float):
    ts = {k: v.detach().clone().requires_grad_(True) for k, v in params.tensors().items()}
    y = forward(MLPParams.from_tensors(ts), x)
    loss = ((y - torch.relu(x)).abs() ** q).mean(dim=(1, 2)).sum()
    loss.backward()
    return {k: v.grad for k, v in ts.items()}


@pytest.mark.parametrize("q", [4.0, 2.0, 3.0, 1.5])
@pytest.mark.parametrize("bias", [False, True])
def test_grads_match_autograd(q, bias):
    gens = [generator(s) for s in (1, 2)]
    params = init_mlp(20, 5, gens, bias=bias, dtype=torch.float64)
    b = sample_sparse(gens, 64, 20, [0.1, 0.3], dtype=torch.float64)
    ref = _autograd_grads(params, b.to_dense(), q)
    grads, loss = loss_and_grads(params, b, torch.full((2, 1, 1), q, dtype=torch.float64), q,
                                 want_loss=True)
    for k in ref:
        torch.testing.assert_close(grads[k], ref[k], rtol=1e-9, atol=1e-12)
    x = b.to_dense()
    exp = ((forward(params, x) - torch.relu(x)).abs() ** q).mean(dim=(1, 2))
    torch.testing.assert_close(loss, exp)


def test_per_instance_q_matches_each_alone():
    gens = [generator(s) for s in (3, 4)]
    params = init_mlp(12, 4, gens, dtype=torch.float64)
    b = sample_sparse(gens, 32, 12, 0.2, dtype=torch.float64)
    q = torch.tensor([4.0, 2.0], dtype=torch.float64).view(2, 1, 1)
    grads, _ = loss_and_grads(params, b, q, None)
    x = b.to_dense()
    for i, qi in enumerate((4.0, 2.0)):
        ref = _autograd_grads(params.select(i), x[i:i + 1], qi)
        torch.testing.assert_close(grads["W_in"][i:i + 1], ref["W_in"])
        torch.testing.assert_close(grads["W_out"][i:i + 1], ref["W_out"])


def test_training_matches_torch_adam_cosine():
    """Same init and batches through nn-style autograd, torch.optim.Adam and CosineAnnealingLR."""
    n, h, B, steps, lr = 16, 4, 128, 40, 3e-3
    res = train_mlp(n, h, seeds=[7], p=0.1, loss_power=4.0, lr=lr, steps=steps, batch_size=B)
    gens = [generator(7)]
    ref = init_mlp(n, h, gens)
    W_in = ref.W_in[0].clone().requires_grad_(True)
    W_out = ref.W_out[0].clone().requires_grad_(True)
    opt = torch.optim.Adam([W_in, W_out], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    for _ in range(steps):
        x = sample_sparse(gens, B, n, 0.1).to_dense()[0]
        y = torch.relu(x @ W_in.T) @ W_out.T
        loss = ((y - torch.relu(x)) ** 4).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    torch.testing.assert_close(res.params.W_in[0], W_in.detach(), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(res.params.W_out[0], W_out.detach(), rtol=1e-4, atol=1e-6)


def test_instances_equal_separate_runs():
    """3 instances in one tensor program = 3 runs with the same seeds."""
    kw = dict(p=0.05, steps=30, batch_size=64)
    together = train_mlp(30, 6, seeds=[0, 1, 2], **kw).params
    for i in range(3):
        alone = train_mlp(30, 6, seeds=[i], **kw).params
        torch.testing.assert_close(together.W_in[i], alone.W_in[0], rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(together.W_out[i], alone.W_out[0], rtol=1e-5, atol=1e-7)


def test_deterministic():
    a = train_mlp(20, 5, seeds=[5, 6], p=0.1, steps=20, batch_size=32).params
    b = train_mlp(20, 5, seeds=[5, 6], p=0.1, steps=20, batch_size=32).params
    assert torch.equal(a.W_in, b.W_in) and torch.equal(a.W_out, b.W_out)


def test_loss_decreases():
    res = train_mlp(20, 5, seeds=[0], p=0.05, steps=300, batch_size=256, log_every=299)
    assert res.loss[-1][0] < 0.5 * res.loss[0][0]


def test_sampler_statistics():
    """Bernoulli(p) activity and U(-1, 1) values: mean 0, variance 1/3."""
    gens = [generator(0), generator(1)]
    b = sample_sparse(gens, 4000, 50, [0.02, 0.5])
    x = b.to_dense()
    for i, p in enumerate((0.02, 0.5)):
        act = (x[i] != 0).float().mean().item()
        se = math.sqrt(p * (1 - p) / x[i].numel())
        assert abs(act - p) < 5 * se
    v = b.val
    assert abs(v.mean().item()) < 0.02 and abs(v.var().item() - 1 / 3) < 0.01
    assert v.min() >= -1 and v.max() <= 1


def test_chunks_and_worker_threads_give_the_one_tensor_result():
    """Chunks of 1 on 2 worker threads (each single-threaded) = all 4 instances in one chunk on one
    thread; the process thread count comes back."""
    kw = dict(p=[0.05, 0.2, 0.01, 0.1], loss_power=[4.0, 2.0, 4.0, 3.0], lr=[3e-3, 1e-3, 3e-3, 2e-3],
              steps=25, batch_size=64, log_every=5)
    one = train_mlp(30, 6, seeds=[0, 1, 2, 3], chunk=4, **kw)
    torch.set_num_threads(2)
    try:
        split = train_mlp(30, 6, seeds=[0, 1, 2, 3], chunk=1, **kw)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
    torch.testing.assert_close(split.params.W_in, one.params.W_in, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(split.params.W_out, one.params.W_out, rtol=1e-5, atol=1e-7)
    assert split.loss_steps == one.loss_steps == [0, 5, 10, 15, 20, 24]
    torch.testing.assert_close(torch.tensor(split.loss), torch.tensor(one.loss), rtol=1e-5, atol=1e-9)
