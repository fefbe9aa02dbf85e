"""Active-learning query strategies: a shared contract for every registered one, then known answers."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

from superlens.active.strategies import (POOL_FIELDS, PoolView, available, bald_scores, entropy_scores,
                                         get_strategy, gradient_factors, gradient_sq_dist, k_center_greedy,
                                         k_center_greedy_naive, least_confidence_scores, margin_scores)
from superlens.active.strategies.badge import badge_select
from superlens.errors import ConfigError

torch.set_num_threads(1)

N, C, D, L, T = 40, 5, 6, 8, 4


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def full_pool(seed: int = 0, n: int = N) -> PoolView:
    g = gen(seed)
    return PoolView(
        probs=torch.softmax(2 * torch.randn(n, C, generator=g), dim=1),
        features=torch.relu(torch.randn(n, D, generator=g)),
        labelled_features=torch.relu(torch.randn(L, D, generator=g)),
        mc_probs=torch.softmax(2 * torch.randn(T, n, C, generator=g), dim=2),
    )


def only(pool: PoolView, names) -> PoolView:
    return PoolView(**{f: getattr(pool, f) if f in names else None for f in POOL_FIELDS})


# --- contract, every registered strategy ----------------------------------------------------------

def test_registry_lists_the_seven():
    assert available() == sorted(["random", "least-confidence", "margin", "entropy", "coreset", "badge",
                                  "bald"])


def test_unknown_name_is_a_config_error_naming_the_registered():
    with pytest.raises(ConfigError, match="coreset.*least-confidence"):
        get_strategy("farthest-first")


@pytest.mark.parametrize("name", available())
def test_contract(name):
    s = get_strategy(name)
    assert s.name == name
    assert s.needs and s.needs <= POOL_FIELDS
    pool = only(full_pool(), s.needs)  # what the loop passes: just the declared needs
    k = 7
    sel = s.select(pool, k, gen(3))
    assert sel.indices.dtype == torch.int64 and sel.indices.shape == (k,)
    assert len(set(sel.indices.tolist())) == k
    assert 0 <= int(sel.indices.min()) and int(sel.indices.max()) < N
    assert sel.scores.dtype == torch.float32 and sel.scores.shape == (N,)
    assert torch.isfinite(sel.scores).all()
    again = s.select(pool, k, gen(3))
    assert torch.equal(again.indices, sel.indices) and torch.equal(again.scores, sel.scores)


@pytest.mark.parametrize("name", available())
def test_contract_sizes_and_missing_needs(name):
    s = get_strategy(name)
    pool = only(full_pool(), s.needs)
    with pytest.raises(ValueError, match=f"k = {N + 1}.*N = {N}"):
        s.select(pool, N + 1, gen())
    everything = s.select(pool, N, gen())
    assert sorted(everything.indices.tolist()) == list(range(N))
    assert s.select(pool, 0, gen()).indices.shape == (0,)
    empty = s.select(only(full_pool(n=0), s.needs), 0, gen())  # an exhausted pool
    assert empty.indices.shape == (0,) and empty.scores.shape == (0,)
    for missing in s.needs:
        with pytest.raises(ValueError, match=missing):
            s.select(only(full_pool(), s.needs - {missing}), 3, gen())


def test_pool_view_size_must_agree():
    p = full_pool()
    with pytest.raises(ValueError, match="disagree"):
        PoolView(probs=p.probs, features=p.features[:-1]).size
    with pytest.raises(ValueError, match="size is unknown"):
        PoolView().size


@pytest.mark.parametrize("name", ["least-confidence", "margin", "entropy", "bald"])
def test_ties_go_to_the_lower_index(name):
    # every pool point identical: all scores tie, so the order is the index order
    probs = torch.full((6, 3), 1 / 3)
    pool = PoolView(probs=probs, mc_probs=probs.expand(2, 6, 3).clone())
    assert get_strategy(name).select(pool, 4, gen()).indices.tolist() == [0, 1, 2, 3]


# --- uncertainty scores: hand-worked rows ---------------------------------------------------------

# row 0: two classes tied (small margin); row 1: flatter top (less confident); row 2: one-hot
HAND = torch.tensor([[0.45, 0.45, 0.10],
                     [0.40, 0.30, 0.30],
                     [1.00, 0.00, 0.00]])


def test_least_confidence_picks_the_flattest_rows():
    # 1 - max p: 0.55, 0.60, 0.00 -> row 1 first
    assert torch.allclose(least_confidence_scores(HAND), torch.tensor([0.55, 0.60, 0.0]))
    sel = get_strategy("least-confidence").select(PoolView(probs=HAND), 3, gen())
    assert sel.indices.tolist() == [1, 0, 2]


def test_margin_picks_the_closest_top_two():
    # -(p1 - p2): -0.00, -0.10, -1.00 -> row 0 first, unlike least confidence
    assert torch.allclose(margin_scores(HAND), torch.tensor([0.0, -0.10, -1.0]))
    assert get_strategy("margin").select(PoolView(probs=HAND), 2, gen()).indices.tolist() == [0, 1]


def test_entropy_matches_scipy_and_handles_zeros():
    # H(row 0) = -2 (0.45 ln 0.45) - 0.1 ln 0.1 = 0.9489; H(row 1) = 1.0889; H(one-hot) = 0 (not NaN)
    want = torch.tensor([scipy.stats.entropy(r) for r in HAND.double().numpy()], dtype=torch.float32)
    got = entropy_scores(HAND)
    assert torch.allclose(got, want, atol=1e-6)
    assert got[2] == 0 and abs(float(got[0]) - 0.94893) < 1e-4
    assert get_strategy("entropy").select(PoolView(probs=HAND), 1, gen()).indices.tolist() == [1]


def test_uncertainty_scores_accept_half_precision():
    got = least_confidence_scores(HAND.half())
    assert got.dtype == torch.float32 and torch.allclose(got, torch.tensor([0.55, 0.60, 0.0]), atol=1e-3)


def test_nan_probabilities_are_rejected():
    bad = HAND.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        get_strategy("least-confidence").select(PoolView(probs=bad), 1, gen())


# --- random -------------------------------------------------------------------------------------

def test_random_is_uniform_without_replacement():
    # 3 of 10, 2000 seeds: each index is taken ~ Binomial(2000, 0.3): mean 600, sd 20.5; allow 5 sd
    s, pool = get_strategy("random"), PoolView(probs=torch.full((10, 2), 0.5))
    counts = np.zeros(10)
    for seed in range(2000):
        idx = s.select(pool, 3, gen(seed)).indices.tolist()
        assert len(set(idx)) == 3
        counts[idx] += 1
    assert np.all(np.abs(counts - 600) < 5 * math.sqrt(2000 * 0.3 * 0.7))
    assert not torch.equal(s.select(pool, 3, gen(1)).indices, s.select(pool, 3, gen(2)).indices)


# --- coreset ------------------------------------------------------------------------------------

def greedy_reference(x: torch.Tensor, lab: torch.Tensor | None, k: int, g: torch.Generator) -> list[int]:
    """Textbook k-center greedy in float64 with explicit differences (no |x|^2 + |c|^2 - 2 x.c)."""
    x = x.double()
    if lab is None or len(lab) == 0:
        first = int(torch.randint(len(x), (1,), generator=g))
        m, picks = ((x - x[first]) ** 2).sum(1), [first]
    else:
        m, picks = torch.cdist(x, lab.double()).min(1).values ** 2, []
    m[picks] = -math.inf
    while len(picks) < k:
        c = int(torch.argmax(m))
        picks.append(c)
        m = torch.minimum(m, ((x - x[c]) ** 2).sum(1))
        m[c] = -math.inf
    return picks[:k]


def test_coreset_on_a_line_takes_the_farthest_first():
    # pool at 1..10, labelled at 0: farthest is 10 (index 9); then 5 (index 4) is 5 from both 0 and 10
    pool = PoolView(features=torch.arange(1.0, 11.0)[:, None], labelled_features=torch.zeros(1, 1))
    sel = get_strategy("coreset").select(pool, 2, gen())
    assert sel.indices.tolist() == [9, 4]
    assert torch.allclose(sel.scores, torch.arange(1.0, 11.0))  # distance to the labelled point 0


@pytest.mark.parametrize("n_lab", [0, 15])
@pytest.mark.parametrize("block", [4, 128])
def test_coreset_equals_naive_greedy_in_float64(n_lab, block):
    g = gen(5)
    x, lab = torch.randn(500, 12, generator=g, dtype=torch.float64), torch.randn(n_lab, 12, generator=g,
                                                                                 dtype=torch.float64)
    got, scores = k_center_greedy(x, lab, 120, gen(9), block=block, first_candidates=4)
    assert got.tolist() == greedy_reference(x, lab, 120, gen(9))
    naive, naive_scores = k_center_greedy_naive(x, lab, 120, gen(9))
    assert naive.tolist() == got.tolist() and torch.equal(scores, naive_scores)
    if n_lab:
        assert torch.allclose(scores.double(), torch.cdist(x, lab).min(1).values, atol=1e-5)


def test_coreset_float32_matches_float64_reference_on_gaussian_data():
    # well-separated distances: float32 rounding (~1e-6 relative) cannot flip a pick
    g = gen(6)
    x, lab = torch.randn(800, 32, generator=g), torch.randn(40, 32, generator=g)
    got, _ = k_center_greedy(x, lab, 200, gen(), block=16)
    assert got.tolist() == greedy_reference(x, lab, 200, gen())


def test_coreset_clustered_data_exercises_the_early_flush():
    # tight clusters: points near a pending centre have stale bounds far above their exact value, so
    # the candidate search outgrows max_candidates and the pending block is applied early
    g = gen(7)
    centres = 10 * torch.randn(8, 10, generator=g, dtype=torch.float64)
    x = centres[torch.randint(8, (600,), generator=g)] + 0.1 * torch.randn(600, 10, generator=g,
                                                                         dtype=torch.float64)
    got, _ = k_center_greedy(x, x[:5], 150, gen(), block=32, first_candidates=4, max_candidates=16)
    assert got.tolist() == greedy_reference(x, x[:5], 150, gen())


def test_coreset_with_duplicates_selects_everything_once():
    x = torch.randn(30, 4, generator=gen(8)).repeat(2, 1)  # every point twice: many exact-zero distances
    got, _ = k_center_greedy(x, x[:3], 60, gen(), block=8)
    assert sorted(got.tolist()) == list(range(60))


# --- badge --------------------------------------------------------------------------------------

def explicit_embedding(probs, feats):
    a, h = gradient_factors(probs, feats)
    return torch.einsum("nc,nd->ncd", a, h).reshape(len(a), -1)  # [N, C*d]


def test_badge_implicit_distance_equals_explicit_embedding():
    p = full_pool(1)
    probs, feats = p.probs.double(), p.features.double()
    gmat = explicit_embedding(probs, feats)
    a, h = gradient_factors(probs, feats)
    for j in (0, 17, 39):
        assert torch.allclose(gradient_sq_dist(a, h, j), ((gmat - gmat[j]) ** 2).sum(1), atol=1e-10)
    # the gradient of cross-entropy at the predicted label w.r.t. logits is p - onehot(argmax p)
    logits = torch.randn(3, C, dtype=torch.float64, requires_grad=True)
    torch.nn.functional.cross_entropy(logits, logits.argmax(1), reduction="sum").backward()
    assert torch.allclose(gradient_factors(torch.softmax(logits, 1).detach(), feats[:3])[0], logits.grad)


def badge_reference(gmat: torch.Tensor, k: int, g: torch.Generator) -> list[int]:
    """k-means++ seeding on an explicit [N, D] embedding: first the largest norm, then D^2 sampling
    by inverse CDF with one U[0, 1) draw per pick (the same use of the generator as badge_select)."""
    picks = [int(torch.argmax((gmat ** 2).sum(1)))]
    while len(picks) < k:
        d2 = torch.cdist(gmat, gmat[picks]).min(1).values ** 2
        d2[picks] = 0
        u = float(torch.rand(1, generator=g, dtype=torch.float64))
        cdf = np.cumsum(d2.numpy())
        picks.append(int(np.searchsorted(cdf, u * cdf[-1], side="right")))
    return picks


def test_badge_matches_explicit_reference_with_the_same_generator():
    p = full_pool(2, n=60)
    probs, feats = p.probs.double(), p.features.double()
    got, scores = badge_select(probs, feats, 25, gen(11))
    assert got.tolist() == badge_reference(explicit_embedding(probs, feats), 25, gen(11))
    assert torch.allclose(scores.double(), explicit_embedding(probs, feats).norm(dim=1), atol=1e-6)


def test_badge_second_pick_follows_d2_sampling():
    # 1-D features, 2 classes: g_i = a_i h_i. Hand-built: point 0 has the largest |g| and is the first
    # centre; the second pick must be point i with probability |g_i - g_0|^2 / sum_j |g_j - g_0|^2
    probs = torch.tensor([[0.6, 0.4], [0.7, 0.3], [0.8, 0.2], [0.9, 0.1]], dtype=torch.float64)
    feats = torch.tensor([[4.0], [1.0], [2.0], [1.0]], dtype=torch.float64)
    gvec = explicit_embedding(probs, feats)
    d2 = ((gvec - gvec[0]) ** 2).sum(1)
    want = (d2 / d2.sum()).numpy()
    counts = np.zeros(4)
    for seed in range(3000):
        picks = badge_select(probs, feats, 2, gen(seed))[0].tolist()
        assert picks[0] == 0
        counts[picks[1]] += 1
    assert counts[0] == 0
    assert np.all(np.abs(counts / 3000 - want) < 5 * np.sqrt(want * (1 - want) / 3000) + 1e-9)


def test_badge_confident_pool_falls_back_to_uniform():
    # one-hot predictions: every gradient embedding is 0, D^2 weights are all 0 -> still k distinct
    probs = torch.eye(3)[torch.arange(12) % 3]
    got, scores = badge_select(probs, torch.randn(12, 4), 12, gen())
    assert sorted(got.tolist()) == list(range(12)) and torch.all(scores == 0)


# --- bald ---------------------------------------------------------------------------------------

def test_bald_identical_samples_score_zero():
    p = torch.softmax(torch.randn(20, C, generator=gen()), dim=1)
    assert torch.equal(bald_scores(p.expand(6, 20, C).contiguous()), torch.zeros(20))


def test_bald_hand_built_ranking():
    # two MC passes per point (hand-worked, nats):
    #   A: [1,0] vs [0,1]     -> H(mean) = ln 2, mean H = 0               -> MI = ln 2 = 0.6931
    #   B: [.5,.5] vs [.5,.5] -> H(mean) = ln 2, mean H = ln 2            -> MI = 0 (flat but agreeing)
    #   C: [.9,.1] vs [.1,.9] -> H(mean) = ln 2, mean H = H(.9,.1)=0.3251 -> MI = 0.3681
    mc = torch.tensor([[[1.0, 0.0], [0.5, 0.5], [0.9, 0.1]],
                       [[0.0, 1.0], [0.5, 0.5], [0.1, 0.9]]])
    h91 = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))
    assert torch.allclose(bald_scores(mc), torch.tensor([math.log(2), 0.0, math.log(2) - h91]), atol=1e-6)
    assert get_strategy("bald").select(PoolView(mc_probs=mc), 3, gen()).indices.tolist() == [0, 2, 1]
    # chunking over the pool does not change the answer
    assert torch.equal(bald_scores(mc, chunk=1), bald_scores(mc))


# --- device -------------------------------------------------------------------------------------

@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", available())
def test_cuda_pool_with_cpu_or_cuda_generator(name):
    s = get_strategy(name)
    cpu = only(full_pool(), s.needs)
    cuda = PoolView(**{f: None if getattr(cpu, f) is None else getattr(cpu, f).cuda() for f in POOL_FIELDS})
    for g in (gen(4), torch.Generator(device="cuda").manual_seed(4)):
        sel = s.select(cuda, 7, g)
        assert sel.indices.device.type == "cuda" and len(set(sel.indices.tolist())) == 7
    if name not in ("random", "coreset", "badge"):  # generator-free: same picks as on the CPU
        assert torch.equal(s.select(cuda, 7, gen()).indices.cpu(), s.select(cpu, 7, gen()).indices)


@pytest.mark.parametrize("name", ["coreset", "badge", "bald", "least-confidence", "margin", "entropy"])
def test_non_finite_pool_is_rejected(name):
    """Every strategy that is a function of pool fields names the field that holds a NaN."""
    s = get_strategy(name)
    pool = only(full_pool(), s.needs)
    field = sorted(s.needs)[-1]
    bad = getattr(pool, field).clone()
    bad.view(-1)[0] = float("nan")
    setattr(pool, field, bad)
    with pytest.raises(ValueError, match=field):
        s.select(pool, 3, gen())
