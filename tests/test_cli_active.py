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


def test_run_directory(run):
    for f in ("config.json", "meta.json", "metrics.json", "report.html"):
        assert (run / f).is_file(), f
    m = json.loads((run / "metrics.json").read_text())
    assert set(m) == {"baseline", "least-confidence", "coreset"}
    for name, entry in m.items():
        for k in KEYS:
            assert k in entry, (name, k)
        assert -1 <= entry["silhouette_raw"] <= 1
    rounds = m["coreset"]["rounds"]
    assert [r["labelled"] for r in rounds] == [40, 60, 80]
    assert all(sum(r["queried_per_class"]) == 20 for r in rounds[:-1])
    meta = json.loads((run / "meta.json").read_text())
    assert meta["kind"] == "active" and "sound" in meta["protocol"]
    html = (run / "report.html").read_text()
    assert "data:image/png;base64," in html and "least-confidence" in html


def test_report_rerender(run):
    (run / "report.html").unlink()
    assert main(["report", str(run)]) == 0
    assert (run / "report.html").is_file()


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
    for name in a:
        for k in ("accuracy", "cos_mean", "silhouette_raw", "effective_rank"):
            assert a[name][k] == pytest.approx(b[name][k], rel=1e-6, abs=1e-9), (name, k)


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


def test_existing_directory_refused(run, capsys):
    before = sorted(p.name for p in run.iterdir())
    assert main(["active", "--out", str(run), *FAST]) == 2
    assert "exists" in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir()) == before
