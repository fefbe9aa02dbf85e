"""`superlens active` end to end on the synthetic preset, resume, and bad input."""
import json
import shutil

import pytest

from superlens.cli import main

FAST = ["--preset", "synthetic", "--epochs", "2", "--quiet"]
KEYS = ("accuracy", "cos_mean", "cos_std", "silhouette_tsne", "davies_bouldin_tsne", "silhouette_raw",
        "davies_bouldin_raw", "effective_rank")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("al") / "run"
    assert main(["active", "--out", str(out), *FAST, "--strategies", "least-confidence,coreset"]) == 0
    return out


@pytest.mark.slow
def test_run_directory(run):
    for f in ("config.json", "meta.json", "metrics.json", "report.html"):
        assert (run / f).is_file(), f
    m = json.loads((run / "metrics.json").read_text())
    assert set(m) == {"baseline", "least-confidence", "coreset", "verdicts"}
    for name, entry in ((n, e) for n, e in m.items() if n != "verdicts"):
        for k in KEYS:
            assert k in entry, (name, k)
        assert -1 <= entry["silhouette_raw"] <= 1
    rounds = m["coreset"]["rounds"]
    assert [r["labelled"] for r in rounds] == [40, 60, 80]
    assert all(sum(r["queried_per_class"]) == 20 for r in rounds[:-1])
    for r in rounds:  # the keys are always there; integer sums over seeds, named as such
        assert {"queried_per_class", "queried_per_class_sum", "seeds"} <= set(r) and r["seeds"] == 1
    assert all(isinstance(v, int) for r in rounds[:-1] for v in r["queried_per_class_sum"])
    assert [sum(r["queried_per_class_sum"]) for r in rounds[:-1]] == [20, 20]
    assert rounds[-1]["queried_per_class"] is None and rounds[-1]["queried_per_class_sum"] is None
    meta = json.loads((run / "meta.json").read_text())
    assert meta["kind"] == "active" and "sound" in meta["protocol"]
    html = (run / "report.html").read_text()
    assert "data:image/png;base64," in html and "least-confidence" in html
    assert "<td>status</td><td>complete</td>" in html  # the final status, not "running"
    assert "Training batches shuffled" in meta["protocol"]
    assert "<th>" + meta["class_names"][0] + "</th>" in html  # per-class columns named by class


@pytest.mark.slow
def test_report_rerender(run):
    (run / "report.html").unlink()
    assert main(["report", str(run)]) == 0
    assert (run / "report.html").is_file()


def _stale(run):
    """Overwrite run's verdicts in metrics.json with words no rule gives; returns the true ones."""
    m = json.loads((run / "metrics.json").read_text())
    true = m["verdicts"]
    m["verdicts"] = {**true, "rule": "an earlier rule",
                     "claims": {c: "stale-word" for c in true["claims"]},
                     "rows": [{**r, "verdict": "stale-word"} for r in true["rows"]]}
    (run / "metrics.json").write_text(json.dumps(m))
    return true


@pytest.mark.slow
@pytest.mark.parametrize("status", ["complete", "interrupted"])
def test_rerender_recomputes_the_verdicts(run, tmp_path, status):
    """`superlens report` on an old run words its claims by the current rule, whatever words its
    metrics.json holds (finished or not), and writes them back there."""
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    meta = json.loads((copy / "meta.json").read_text())
    (copy / "meta.json").write_text(json.dumps({**meta, "status": status}))
    true = _stale(copy)
    assert main(["report", str(copy)]) == 0
    html = (copy / "report.html").read_text()
    assert "stale-word" not in html and "an earlier rule" not in html
    assert json.loads((copy / "metrics.json").read_text())["verdicts"] == true


@pytest.mark.slow
def test_resume_recomputes_the_verdicts(run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    true = _stale(copy)
    assert main(["active", "--out", str(copy), *FAST, "--strategies", "least-confidence,coreset",
                 "--resume"]) == 0
    assert json.loads((copy / "metrics.json").read_text())["verdicts"] == true
    assert "stale-word" not in (copy / "report.html").read_text()


@pytest.mark.slow
def test_a_run_saved_before_the_lr_schedule_existed_resumes(run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    cfg = json.loads((copy / "config.json").read_text())
    assert cfg.pop("lr_schedule") == "constant"
    (copy / "config.json").write_text(json.dumps(cfg))
    assert main(["active", "--out", str(copy), *FAST, "--strategies", "least-confidence,coreset",
                 "--resume"]) == 0


@pytest.mark.slow
def test_resume_gives_same_result(run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    # simulate an interruption: the last round of one loop and the final outputs never happened
    last = sorted((copy / "al" / "coreset" / "seed0").glob("round_*"))[-1]
    shutil.rmtree(last)
    for f in ("metrics.json", "report.html"):
        (copy / f).unlink()
    shutil.rmtree(copy / "measures")
    assert main(["active", "--out", str(copy), *FAST, "--strategies", "least-confidence,coreset",
                 "--resume"]) == 0
    a = json.loads((run / "metrics.json").read_text())
    b = json.loads((copy / "metrics.json").read_text())
    meta_a = json.loads((run / "meta.json").read_text())
    meta_b = json.loads((copy / "meta.json").read_text())
    # the original meta is kept, the resume recorded beside it
    assert meta_b["started_at"] == meta_a["started_at"] and meta_b["argv"] == meta_a["argv"]
    assert len(meta_b["resumed_at"]) == 1 and meta_b["status"] == "complete"
    assert (copy / "config.json").read_bytes() == (run / "config.json").read_bytes()
    assert a["verdicts"] == b["verdicts"]
    for name in ["baseline", "least-confidence", "coreset"]:
        for k in ("accuracy", "cos_mean", "silhouette_raw", "effective_rank"):
            assert a[name][k] == pytest.approx(b[name][k], rel=1e-6, abs=1e-9), (name, k)


@pytest.mark.slow
def test_resume_with_other_settings_refused(run, capsys):
    assert main(["active", "--out", str(run), *FAST, "--strategies", "random", "--resume"]) == 2
    assert "strategies" in capsys.readouterr().err


@pytest.mark.parametrize("args,needle", [
    (["--strategies", "nope"], "nope"),
    (["--dataset", "mnist"], "dataset"),
    (["--query-size", "1000"], "query"),
    (["--rounds", "50"], "rounds"),
    (["--preset", "nope"], "preset"),
    (["--dataset", "cifar10", "--data-dir", "/nonexistent/cifar"], "/nonexistent/cifar"),
    (["--dataset", "tiny-imagenet", "--data-dir", "/nonexistent/tin"], "/nonexistent/tin"),
    (["--epochs", "0"], "epochs"),
])
def test_bad_input(tmp_path, capsys, args, needle):
    out = tmp_path / "run"
    code = main(["active", "--out", str(out), *FAST, *args])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert needle in err and len(err.splitlines()) == 1, err
    assert not out.exists()


@pytest.mark.slow
def test_existing_directory_refused(run, capsys):
    before = sorted(p.name for p in run.iterdir())
    assert main(["active", "--out", str(run), *FAST]) == 2
    assert "exists" in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir()) == before


def _snapshot(d):
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.mark.slow
@pytest.mark.parametrize("how", ["config", "round-fingerprint"])
def test_refused_resume_leaves_every_file_byte_identical(run, tmp_path, capsys, how):
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    args = ["active", "--out", str(copy), *FAST, "--strategies", "least-confidence,coreset", "--resume"]
    if how == "config":
        args += ["--epochs", "3"]
        needle = "epochs"
    else:  # config.json matches, but a finished round was made with other settings
        marker = copy / "al" / "coreset" / "seed0" / "round_00" / "round.json"
        d = json.loads(marker.read_text())
        d["fingerprint"]["lr"] = 0.5
        marker.write_text(json.dumps(d))
        needle = "round_00"
    before = _snapshot(copy)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1, err
    assert _snapshot(copy) == before


def test_resume_into_a_foreign_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "todo.txt").write_text("keep me")
    assert main(["active", "--out", str(out), *FAST, "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert str(out) in err and "not a superlens run directory" in err and len(err.splitlines()) == 1
    assert [p.name for p in out.iterdir()] == ["todo.txt"] and (out / "todo.txt").read_text() == "keep me"


def test_resume_allows_moved_paths(tmp_path):
    from superlens.active.study import _check_resume_config, config_from_cli
    from superlens.errors import ConfigError

    cfg = config_from_cli("synthetic", None, {"data_dir": "/old/data", "weights_path": "/old/w.pt"})
    (tmp_path / "config.json").write_text(json.dumps(cfg.model_dump(mode="json")))
    moved = config_from_cli("synthetic", None, {"data_dir": "/new/data", "weights_path": "/new/w.pt",
                                                "download": True, "device": "cpu"})
    _check_resume_config(tmp_path, moved)  # paths and device may move
    with pytest.raises(ConfigError, match="lr"):
        _check_resume_config(tmp_path, config_from_cli("synthetic", None, {"lr": 0.5}))


def test_corrupt_checkpoint_is_one_line(tmp_path):
    import torch

    from superlens.active.data import load_dataset
    from superlens.active.models import build_model
    from superlens.active.study import config_from_cli, paper_quirk_features
    from superlens.errors import CheckpointError

    cfg = config_from_cli("synthetic", None, {"model": "resnet18-cifar", "dropout": 0.0,
                                              "device": "cpu", "progress": False})
    ds = load_dataset("synthetic", seed=0)
    ck = tmp_path / "checkpoint.pt"
    torch.save({"model": build_model("resnet18-cifar", ds.n_classes, ds.in_channels).state_dict()}, ck)
    assert paper_quirk_features(cfg, ds, ck, torch.device("cpu")).shape == (ds.test_x.shape[0], 512)
    ck.write_bytes(ck.read_bytes()[:1000])  # truncated
    with pytest.raises(CheckpointError, match=r"checkpoint.pt: unreadable") as e:
        paper_quirk_features(cfg, ds, ck, torch.device("cpu"))
    assert len(str(e.value).splitlines()) == 1
    torch.save({"model": {"conv1.weight": torch.zeros(1)}}, ck)  # readable, but not this model
    with pytest.raises(CheckpointError, match="does not fit the model"):
        paper_quirk_features(cfg, ds, ck, torch.device("cpu"))


def test_rounds_table_with_many_classes_shows_top_k_by_name():
    from superlens.report.active_report import _rounds_section, top_k_with_other

    names = [f"class{i:03d}" for i in range(200)]
    counts = [0] * 200
    for c, n in [(7, 50), (3, 40), (150, 30)] + [(100 + i, 2) for i in range(20)]:
        counts[c] = n
    top, other = top_k_with_other(counts, 10)
    assert top[:3] == [7, 3, 150] and len(top) == 10 and other == 2 * 20 - 2 * 7
    metrics = {"lc": {"rounds": [
        {"round": 0, "labelled": 10, "accuracy": 0.5, "queried_per_class_sum": counts, "seeds": 2},
        {"round": 1, "labelled": 20, "accuracy": 0.6, "queried_per_class_sum": None, "seeds": 2}]}}
    html = _rounds_section({"strategies": ["lc"]}, {"class_names": names, "seeds": [0, 1]}, metrics)
    assert "class007: 50, class003: 40, class150: 30" in html
    assert "top 10 queried classes" in html and "class199" not in html and "<th>other classes</th>" in html
