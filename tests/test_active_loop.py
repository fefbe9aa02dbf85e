"""The baseline and the active-learning loop: plan checks, saved rounds, resume, checkpoints."""
import json
from pathlib import Path

import pytest
import torch

import superlens.active.loop as loop
from superlens.active import strategies as S
from superlens.active.checkpoints import load_checkpoint, save_checkpoint
from superlens.active.data import load_dataset
from superlens.active.loop import run_loop, train_baseline, validate_plan
from superlens.active.models import build_model
from superlens.active.strategies import PoolView, Selection, Strategy
from superlens.config import ActiveConfig
from superlens.errors import CheckpointError, ConfigError

torch.set_num_threads(1)

# synthetic: 320 training images (1 x 12 x 12, 4 classes), 80 test images
N_TRAIN = 320


def _cfg(**kw):
    base = dict(dataset="synthetic", model="small-cnn", epochs=1, batch_size=32, initial_pool=40,
                rounds=2, query_size=20, eval_batch_size=256, progress=False, device="cpu",
                dropout=0.2, bald_samples=3, strategies=["least-confidence", "random"])
    base.update(kw)
    return ActiveConfig.build(base)


@pytest.fixture(scope="module")
def ds():
    return load_dataset("synthetic", seed=0)


@pytest.fixture(scope="module")
def baseline(ds, tmp_path_factory):
    d = tmp_path_factory.mktemp("baseline")
    return d, train_baseline(_cfg(), ds, 0, d, "cpu")


# --- plan -------------------------------------------------------------------------------------------

def test_validate_plan_accepts_exact_fit():
    validate_plan(_cfg(initial_pool=280, rounds=2, query_size=20), N_TRAIN)  # 280 + 2*20 = 320
    validate_plan(_cfg(initial_pool=320, rounds=0), N_TRAIN)


@pytest.mark.parametrize("kw, match", [
    (dict(initial_pool=290, rounds=2, query_size=20), "290 \\+ 2 \\* 20 = 330 exceeds the 320"),
    (dict(initial_pool=321, rounds=0), "initial_pool = 321"),
    (dict(strategies=["least-confidence", "no-such"]), "no-such.*registered"),
    (dict(strategies=["random", "random"]), "listed twice"),
    (dict(strategies=["bald"], dropout=0.0), "bald needs dropout > 0"),
])
def test_validate_plan_errors(kw, match):
    with pytest.raises(ConfigError, match=match) as e:
        validate_plan(_cfg(**kw), N_TRAIN)
    assert "\n" not in str(e.value)


def test_bad_plan_writes_nothing(ds, tmp_path):
    with pytest.raises(ConfigError):
        run_loop(_cfg(rounds=20), ds, "random", 0, tmp_path / "al", "cpu", None)
    # a strategy outside cfg.strategies is checked as well
    with pytest.raises(ConfigError, match="bald needs dropout > 0"):
        run_loop(_cfg(dropout=0.0), ds, "bald", 0, tmp_path / "al", "cpu", None)
    assert not (tmp_path / "al").exists()


# --- baseline ---------------------------------------------------------------------------------------

def test_baseline_saves_then_loads(ds, baseline, monkeypatch):
    d, base = baseline
    for f in ("checkpoint.pt", "test_probs.pt", "test_features.pt", "result.json"):
        assert (d / f).is_file(), f
    assert base["test_features"].shape == (80, 128) and base["test_probs"].shape == (80, 4)
    assert base["accuracy"] == pytest.approx(
        float((base["test_probs"].argmax(1) == ds.test_y).double().mean()))
    # finished: loaded, not retrained
    monkeypatch.setattr(loop, "train_epochs", lambda *a, **k: pytest.fail("retrained a finished baseline"))
    again = train_baseline(_cfg(), ds, 0, d, "cpu")
    assert again["accuracy"] == base["accuracy"]
    assert torch.equal(again["test_features"], base["test_features"])
    with pytest.raises(CheckpointError, match=r"result\.json.*lr = 0\.001.*0\.002"):
        train_baseline(_cfg(lr=2e-3), ds, 0, d, "cpu")


# --- the loop ---------------------------------------------------------------------------------------

def test_loop_rounds_pools_and_files(ds, tmp_path):
    cfg = _cfg()
    res = run_loop(cfg, ds, "least-confidence", 0, tmp_path / "lc", "cpu", None)
    assert [r["round"] for r in res["rounds"]] == [0, 1, 2]
    assert [r["labelled"] for r in res["rounds"]] == [40, 60, 80]
    assert [sum(r["queried_per_class"]) for r in res["rounds"][:2]] == [20, 20]
    assert res["rounds"][2]["queried_per_class"] is None
    assert res["final_accuracy"] == res["rounds"][2]["accuracy"]
    assert res["final_features"].shape == (80, 128) and res["final_probs"].shape == (80, 4)
    lab = res["labelled_indices"]
    assert lab.shape == (80,) and lab.unique().numel() == 80 and int(lab.max()) < N_TRAIN
    for r in range(3):
        rdir = tmp_path / "lc" / f"round_{r:02d}"
        assert {p.name for p in rdir.iterdir()} == {"state.pt", "test_probs.pt", "test_features.pt",
                                                     "checkpoint.pt", "round.json"}
    st0 = torch.load(tmp_path / "lc" / "round_00" / "state.pt")
    st1 = torch.load(tmp_path / "lc" / "round_01" / "state.pt")
    assert torch.equal(st1["labelled"], torch.cat([st0["labelled"], st0["queried"]]))
    # the pool is the complement of the labelled set, and the scores are aligned with it
    assert torch.equal(st0["pool"], torch.tensor(sorted(set(range(N_TRAIN)) - set(st0["labelled"].tolist()))))
    assert st0["scores"].shape == (280,)
    # least confidence took the 20 highest scores (1 - max p)
    taken = torch.isin(st0["pool"], st0["queried"])
    assert st0["scores"][taken].min() >= st0["scores"][~taken].max()
    counts = torch.bincount(ds.train_y[st0["queried"]], minlength=4).tolist()
    assert counts == res["rounds"][0]["queried_per_class"]


def test_round_zero_is_shared_by_strategies(ds, tmp_path):
    # the initial pool, weights and training draws depend on the seed only (not on the strategy)
    cfg = _cfg(rounds=1)
    a = run_loop(cfg, ds, "least-confidence", 3, tmp_path / "a", "cpu", None)
    b = run_loop(cfg, ds, "random", 3, tmp_path / "b", "cpu", None)
    assert a["rounds"][0]["accuracy"] == b["rounds"][0]["accuracy"]
    fa = torch.load(tmp_path / "a" / "round_00" / "test_features.pt")
    fb = torch.load(tmp_path / "b" / "round_00" / "test_features.pt")
    assert torch.equal(fa, fb)
    c = run_loop(cfg, ds, "random", 4, tmp_path / "c", "cpu", None)
    assert not torch.equal(c["labelled_indices"][:40], b["labelled_indices"][:40])


class _Recorder(Strategy):
    """Takes the first k pool points and records which PoolView fields it was given."""
    name = "test-recorder"
    needs = frozenset({"features", "labelled_features", "mc_probs"})
    seen: list = []

    def select(self, pool: PoolView, k: int, generator: torch.Generator) -> Selection:
        type(self).seen.append({f: None if getattr(pool, f) is None else tuple(getattr(pool, f).shape)
                                for f in S.POOL_FIELDS})
        return Selection(indices=torch.arange(k), scores=torch.zeros(pool.size))


def test_pool_view_holds_only_what_the_strategy_needs(ds, tmp_path, monkeypatch):
    # registered for this test only, so that other tests see the real registry
    monkeypatch.setitem(S.base._REGISTRY, _Recorder.name, _Recorder)
    _Recorder.seen.clear()
    res = run_loop(_cfg(strategies=[_Recorder.name]), ds, _Recorder.name, 0, tmp_path / "r", "cpu", None)
    assert _Recorder.seen == [
        {"probs": None, "features": (280, 128), "labelled_features": (40, 128), "mc_probs": (3, 280, 4)},
        {"probs": None, "features": (260, 128), "labelled_features": (60, 128), "mc_probs": (3, 260, 4)},
    ]
    st0 = torch.load(tmp_path / "r" / "round_00" / "state.pt")
    assert torch.equal(st0["queried"], st0["pool"][:20])  # positions 0..19 map to the lowest free indices
    assert res["rounds"][-1]["labelled"] == 80


def _optimizer_steps(path: Path) -> int:
    ck = torch.load(path)
    return int(next(iter(ck["optimizer"]["state"].values()))["step"])


def test_round_training_modes_hand_counted_steps(ds, baseline, tmp_path):
    # Adam steps, batch 32, 1 epoch: baseline 320 -> 10; pools 40, 60, 80 -> 2, 2, 3 batches.
    # paper continues the baseline's optimizer: 10+2, +2, +3; warm and scratch start a new one each round.
    base_dir, _ = baseline
    expect = {"paper": [12, 14, 17], "warm": [2, 2, 3], "scratch": [2, 2, 3]}
    for mode, steps in expect.items():
        out = tmp_path / mode
        run_loop(_cfg(round_training=mode), ds, "margin", 0, out, "cpu", base_dir)
        assert [_optimizer_steps(out / f"round_{r:02d}" / "checkpoint.pt") for r in range(3)] == steps, mode


def test_paper_round_zero_starts_from_the_baseline_model(ds, baseline, tmp_path, monkeypatch):
    base_dir, base = baseline
    # without training, round 0 of the paper protocol must evaluate exactly as the baseline did
    monkeypatch.setattr(loop, "train_epochs", lambda *a, **k: {"loss": 0.0, "seconds": 0.0})
    res = run_loop(_cfg(round_training="paper", rounds=0), ds, "margin", 0, tmp_path / "p", "cpu", base_dir)
    assert torch.equal(res["final_probs"], base["test_probs"])
    assert torch.equal(res["final_features"], base["test_features"])


def test_paper_needs_a_matching_baseline(ds, baseline, tmp_path):
    base_dir, _ = baseline
    with pytest.raises(ConfigError, match="train the baseline first"):
        run_loop(_cfg(round_training="paper"), ds, "margin", 0, tmp_path / "x", "cpu", tmp_path / "none")
    with pytest.raises(CheckpointError, match=r"baseline\w*[/\\]checkpoint\.pt.*epochs = 1.*2"):
        run_loop(_cfg(round_training="paper", epochs=2), ds, "margin", 0, tmp_path / "y", "cpu", base_dir)


# --- resume -----------------------------------------------------------------------------------------

def _same(a: dict, b: dict) -> None:
    assert torch.equal(a["labelled_indices"], b["labelled_indices"])
    assert [r["accuracy"] for r in a["rounds"]] == [r["accuracy"] for r in b["rounds"]]
    assert [r["queried_per_class"] for r in a["rounds"]] == [r["queried_per_class"] for r in b["rounds"]]
    assert torch.equal(a["final_features"], b["final_features"])
    assert torch.equal(a["final_probs"], b["final_probs"])


@pytest.mark.parametrize("mode, strategy", [("scratch", "coreset"), ("warm", "bald"), ("paper", "entropy")])
def test_resume_gives_the_uninterrupted_result(ds, baseline, tmp_path, monkeypatch, mode, strategy):
    base_dir, _ = baseline
    cfg = _cfg(round_training=mode, strategies=[strategy])
    ref = run_loop(cfg, ds, strategy, 0, tmp_path / "ref", "cpu", base_dir)

    # 1) stopped between rounds (after round 1 was saved), then run again
    def stop(r, info):
        if r == 1:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        run_loop(cfg, ds, strategy, 0, tmp_path / "a", "cpu", base_dir, on_round=stop)
    assert not (tmp_path / "a" / "round_02").exists()
    _same(run_loop(cfg, ds, strategy, 0, tmp_path / "a", "cpu", base_dir), ref)

    # 2) killed inside round 2: its files are written but not its marker; the folder is redone
    real = loop.write_json

    def crash(path, obj):
        if Path(path).name == "round.json" and Path(path).parent.name == "round_02":
            raise RuntimeError("simulated crash")
        real(path, obj)
    monkeypatch.setattr(loop, "write_json", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_loop(cfg, ds, strategy, 0, tmp_path / "b", "cpu", base_dir)
    assert (tmp_path / "b" / "round_02" / "checkpoint.pt").exists()
    assert not (tmp_path / "b" / "round_02" / "round.json").exists()
    monkeypatch.setattr(loop, "write_json", real)
    _same(run_loop(cfg, ds, strategy, 0, tmp_path / "b", "cpu", base_dir), ref)

    # 3) the last marker deleted from a finished run: that round is trained again, identically
    (tmp_path / "ref" / "round_02" / "round.json").unlink()
    _same(run_loop(cfg, ds, strategy, 0, tmp_path / "ref", "cpu", base_dir), ref)


def test_finished_loop_is_loaded_not_retrained(ds, tmp_path, monkeypatch):
    cfg = _cfg()
    ref = run_loop(cfg, ds, "random", 0, tmp_path / "r", "cpu", None)
    monkeypatch.setattr(loop, "train_epochs", lambda *a, **k: pytest.fail("retrained a finished round"))
    _same(run_loop(cfg, ds, "random", 0, tmp_path / "r", "cpu", None), ref)


def test_resume_with_other_settings_is_refused(ds, tmp_path):
    cfg = _cfg(round_training="warm")
    run_loop(cfg, ds, "random", 0, tmp_path / "r", "cpu", None)
    (tmp_path / "r" / "round_02" / "round.json").unlink()
    with pytest.raises(CheckpointError, match=r"round_01[/\\]round\.json.*lr = 0\.001.*0\.005"):
        run_loop(_cfg(round_training="warm", lr=5e-3), ds, "random", 0, tmp_path / "r", "cpu", None)
    with pytest.raises(CheckpointError, match="seed = 0.*1"):
        run_loop(cfg, ds, "random", 1, tmp_path / "r", "cpu", None)
    # fewer rounds than were run: refused by name, nothing deleted
    run_loop(cfg, ds, "random", 0, tmp_path / "r", "cpu", None)
    with pytest.raises(CheckpointError, match=r"round_02[/\\]round\.json.*rounds = 2.*1"):
        run_loop(_cfg(round_training="warm", rounds=1), ds, "random", 0, tmp_path / "r", "cpu", None)
    assert (tmp_path / "r" / "round_02" / "round.json").exists()


def test_corrupt_checkpoint_is_named(ds, tmp_path):
    cfg = _cfg(round_training="warm")
    run_loop(cfg, ds, "random", 0, tmp_path / "r", "cpu", None)
    (tmp_path / "r" / "round_02" / "round.json").unlink()
    ck = tmp_path / "r" / "round_01" / "checkpoint.pt"
    ck.write_bytes(ck.read_bytes()[:100])  # truncated
    with pytest.raises(CheckpointError, match=r"round_01[/\\]checkpoint\.pt: unreadable"):
        run_loop(cfg, ds, "random", 0, tmp_path / "r", "cpu", None)


def test_checkpoint_fingerprint_mismatch_names_file_and_field(ds, tmp_path):
    model = build_model("small-cnn", 4, 1)
    opt = torch.optim.Adam(model.parameters())
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, model, opt, {"lr": 0.001, "seed": 0})
    load_checkpoint(path, model, opt, {"lr": 0.001, "seed": 0})
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt: made with seed = 0 .* 3"):
        load_checkpoint(path, model, opt, {"lr": 0.001, "seed": 3})
    json.dumps(loop.fingerprint(_cfg(), loop.LOOP_FIELDS, seed=0))  # JSON-able, as round.json needs


# --- GradScaler kept with a continued optimizer; shuffle of rounds vs baseline ----------------------

def _cpu_scalers(monkeypatch, made):
    """make_scaler -> enabled CPU GradScalers with distinct initial scales 2, 4, 8, ... (a scaler is
    a no-op on the CPU otherwise), so which one trained each round can be told apart."""
    def make(device, cfg):
        s = torch.amp.GradScaler("cpu", init_scale=2.0 ** (len(made) + 1), enabled=True)
        made.append(s)
        return s
    monkeypatch.setattr(loop, "make_scaler", make)


def test_paper_rounds_continue_the_baselines_scaler(ds, tmp_path, monkeypatch):
    made, used = [], []
    _cpu_scalers(monkeypatch, made)
    real = loop.train_epochs

    def spy(*a, **k):
        used.append((k["scaler"], k["scaler"].get_scale(), k["shuffle"]))
        return real(*a, **k)
    monkeypatch.setattr(loop, "train_epochs", spy)
    cfg = _cfg(round_training="paper", shuffle=False, shuffle_rounds=True)
    base_dir = tmp_path / "base"
    train_baseline(cfg, ds, 0, base_dir, "cpu")
    base_scale = torch.load(base_dir / "checkpoint.pt", weights_only=True)["scaler"]["scale"]
    run_loop(cfg, ds, "margin", 0, tmp_path / "p", "cpu", base_dir)
    assert len(used) == 4 and used[0][2] is False and all(u[2] is True for u in used[1:])
    # round 0 starts from the scale the baseline ended with (not a fresh 2**k), and every later round
    # trains with that same scaler object
    assert used[1][1] == base_scale and used[1][0] is not used[0][0]
    assert used[2][0] is used[1][0] and used[3][0] is used[1][0]
    for r in range(3):
        ck = torch.load(tmp_path / "p" / f"round_{r:02d}" / "checkpoint.pt", weights_only=True)
        assert ck["scaler"]["scale"] > 0


def test_paper_resume_restores_the_scaler(ds, tmp_path, monkeypatch):
    made = []
    _cpu_scalers(monkeypatch, made)
    cfg = _cfg(round_training="paper")
    base_dir = tmp_path / "base"
    train_baseline(cfg, ds, 0, base_dir, "cpu")
    out = tmp_path / "p"
    run_loop(cfg, ds, "margin", 0, out, "cpu", base_dir)
    saved = torch.load(out / "round_01" / "checkpoint.pt", weights_only=True)["scaler"]
    import shutil
    shutil.rmtree(out / "round_02")
    seen = []
    real = loop.train_epochs
    monkeypatch.setattr(loop, "train_epochs",
                        lambda *a, **k: (seen.append(k["scaler"].get_scale()), real(*a, **k))[1])
    run_loop(cfg, ds, "margin", 0, out, "cpu", base_dir)
    assert seen == [saved["scale"]]


def test_scratch_and_warm_rounds_get_fresh_scalers(ds, baseline, tmp_path, monkeypatch):
    base_dir, _ = baseline
    for mode in ("scratch", "warm"):
        made = []
        _cpu_scalers(monkeypatch, made)
        run_loop(_cfg(round_training=mode), ds, "margin", 0, tmp_path / mode, "cpu", base_dir)
        assert len(made) == 3 and len({id(s) for s in made}) == 3, mode


def test_shuffle_rounds_unset_follows_shuffle():
    assert loop.rounds_shuffle(_cfg(shuffle=False)) is False
    assert loop.rounds_shuffle(_cfg(shuffle=False, shuffle_rounds=True)) is True
    assert loop.rounds_shuffle(_cfg(shuffle=True, shuffle_rounds=False)) is False
    fp = loop.fingerprint(_cfg(shuffle=True), loop.LOOP_FIELDS)
    assert fp["shuffle_rounds"] is True


def test_a_learning_rate_schedule_is_in_the_fingerprint_only_when_set():
    # a run saved before the schedule existed trained at a constant rate: its fingerprints lack the
    # key and still match; a cosine run's do not match a constant one's
    for fields in (loop.TRAINING_FIELDS, loop.LOOP_FIELDS):
        assert "lr_schedule" not in loop.fingerprint(_cfg(), fields)
        assert loop.fingerprint(_cfg(lr_schedule="cosine"), fields)["lr_schedule"] == "cosine"


def test_check_resumable_is_read_only_and_names_the_file(ds, baseline, tmp_path):
    base_dir, _ = baseline
    out = tmp_path / "l"
    run_loop(_cfg(), ds, "margin", 0, out, "cpu", base_dir)
    loop.check_resumable(_cfg(), base_dir, {"margin": out}, 0)  # same settings: fine
    before = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    with pytest.raises(CheckpointError, match=r"round_00[/\\]round\.json.*lr"):
        loop.check_resumable(_cfg(lr=0.5), tmp_path / "nobase", {"margin": out}, 0)
    with pytest.raises(CheckpointError, match=r"result\.json.*epochs"):
        loop.check_resumable(_cfg(epochs=2), base_dir, {}, 0)
    (out / "round_01" / "round.json").unlink()  # a finished round 2 after a gap
    with pytest.raises(loop.RunDirError, match="round_02"):
        loop.check_resumable(_cfg(), base_dir, {"margin": out}, 0)
    assert {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == {
        p: b for p, b in before.items() if p.name != "round.json" or p.parent.name != "round_01"}
