"""Sweep engine: grid expansion and validation, grouping on the instance axis, resume, backends."""
import json

import numpy as np
import pytest

from superlens.cli import main
from superlens.config import SweepSpec
from superlens.errors import ConfigError
from superlens.sweep.engine import run_sweep
from superlens.sweep.grid import axis_values, expand, group_points
from superlens.toy.train import train_mlp

TOY_BASE = {"n_features": 8, "steps": 40, "batch_size": 64}


def toy_spec(**axes):
    return SweepSpec.build({"study": "toy", "base": TOY_BASE,
                            "axes": axes or {"n_hidden": [2, 8], "p": [0.05, 0.3]},
                            "options": {"eval_samples": 2000}})


def test_axis_values():
    assert axis_values("p", [0.1, 0.2]) == [0.1, 0.2]
    np.testing.assert_allclose(axis_values("p", {"log": [0.01, 1.0], "num": 3}), [0.01, 0.1, 1.0])
    assert axis_values("n", {"linear": [2, 10], "num": 5, "int": True}) == [2, 4, 6, 8, 10]
    with pytest.raises(ConfigError, match="empty"):
        axis_values("p", [])
    with pytest.raises(ConfigError, match="axis p"):
        axis_values("p", {"log": [0, 1], "num": 3})


def test_expand_and_group():
    pts = expand(toy_spec(n_hidden=[2, 8], p=[0.05, 0.3], loss_power=[2.0, 4.0]))
    assert len(pts) == 8
    groups = group_points("toy", pts)
    # n_hidden changes shapes; p and q ride on the instance axis
    assert len(groups) == 2 and sorted(len(g.points) for g in groups) == [4, 4]


@pytest.mark.parametrize("axes,needle", [
    ({"n_hiden": [2]}, "n_hiden"),
    ({"p": []}, "empty"),
    ({"p": [0.1, 1.5]}, "sweep point 1"),
    ({"n_hidden": [4, 0]}, "n_hidden"),
])
def test_bad_spec(tmp_path, axes, needle, capsys):
    spec = tmp_path / "s.toml"
    lines = ["study = 'toy'", "[base]", "n_features = 8", "[axes]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in axes.items()]
    spec.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_unknown_study(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text("study = 'nope'\n[axes]\np = [0.1]\n")
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o")]) == 2
    assert "study" in capsys.readouterr().err


@pytest.mark.slow
def test_toy_sweep_end_to_end_and_resume(tmp_path):
    out = tmp_path / "sw"
    rows = run_sweep(toy_spec(), out, progress=False)
    assert [r["point"] for r in rows] == [0, 1, 2, 3]
    for f in ("table.csv", "table.json", "report.html", "config.json", "meta.json"):
        assert (out / f).is_file()
    assert "<td>status</td><td>complete</td>" in (out / "report.html").read_text()
    assert all(r["phase"] in {"all-dedicated", "ignore-some", "attenuate-all", "mixed"} for r in rows)
    wide = [r for r in rows if r["n_hidden"] == 8]
    assert all(r["gain_mean"] > 0 for r in wide)
    # the instance-axis grid equals training a point alone with its seed
    r0 = rows[0]
    alone = train_mlp(8, r0["n_hidden"], seeds=[0], p=r0["p"], steps=40, batch_size=64).params
    from superlens.toy.sweep_metrics import point_metrics

    m = point_metrics(alone, p=r0["p"], loss_power=4.0, eval_samples=2000, seed=10_000)
    assert m["gain_mean"] == pytest.approx(r0["gain_mean"], rel=1e-4)
    # resume: remove one finished group, rerun: only that group trains again, same table
    groups = sorted((out / "groups").glob("*.json"))
    kept_mtime = groups[1].stat().st_mtime_ns
    groups[0].unlink()
    first = json.loads((out / "meta.json").read_text())
    rows2 = run_sweep(toy_spec(), out, progress=False)
    assert groups[1].stat().st_mtime_ns == kept_mtime
    # the resumed sweep's wall time is the total over both sessions, each recorded
    meta = json.loads((out / "meta.json").read_text())
    assert [x["groups_run"] for x in meta["sessions"]] == [len(groups), 1]
    assert meta["sessions"][0]["wall_seconds"] == pytest.approx(first["wall_seconds"])
    assert meta["wall_seconds"] == pytest.approx(sum(x["wall_seconds"] for x in meta["sessions"]))
    assert meta["wall_seconds"] > first["wall_seconds"]
    assert [r["gain_mean"] for r in rows2] == pytest.approx([r["gain_mean"] for r in rows], rel=1e-6)
    # a different spec into the same directory is refused
    from superlens.errors import RunDirError

    with pytest.raises(RunDirError):
        run_sweep(toy_spec(n_hidden=[3], p=[0.1]), out, progress=False)


RAY_SPEC = ("study = 'toy'\n[base]\nn_features = 8\nsteps = 5\nbatch_size = 16\n"
            "[axes]\np = [0.1]\n")


@pytest.fixture
def non_ray_server():
    """A reachable TCP server that is not Ray (answers HTTP/1.1 and closes)."""
    import socket
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)

    def serve():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            c.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            c.close()

    threading.Thread(target=serve, daemon=True).start()
    yield f"127.0.0.1:{srv.getsockname()[1]}"
    srv.close()


@pytest.mark.parametrize("address", ["127.0.0.1:9", "127.0.0.1:1", "bogus", "auto", "server"])
def test_unreachable_ray_address(tmp_path, capsys, monkeypatch, address, non_ray_server):
    pytest.importorskip("ray")
    import time

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    if address == "server":
        address = non_ray_server
    spec = tmp_path / "s.toml"
    spec.write_text(RAY_SPEC)
    out = tmp_path / "o"
    t0 = time.perf_counter()
    code = main(["sweep", str(spec), "--out", str(out), "--backend", "ray",
                 "--address", address, "--quiet"])
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2 and address in err and len(err.splitlines()) == 1, err
    assert not out.exists()  # nothing written
    assert time.perf_counter() - t0 < 15


def test_address_needs_ray_backend(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text(RAY_SPEC)
    out = tmp_path / "o"
    assert main(["sweep", str(spec), "--out", str(out), "--address", "auto", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--address" in err and "ray" in err and len(err.splitlines()) == 1
    assert not out.exists()


# columns that legitimately differ between backends
VOLATILE = {"train_seconds", "threads"}


@pytest.mark.slow
def test_ray_backend_matches_local(tmp_path):
    """A real local Ray instance (started for the run) gives the same table as the local backend."""
    pytest.importorskip("ray")
    spec = toy_spec(n_hidden=[2, 4], p=[0.1])
    local = run_sweep(spec, tmp_path / "local", progress=False)
    ray_rows = run_sweep(spec, tmp_path / "ray", backend="ray", workers=2, progress=False)
    assert len(ray_rows) == len(local) == 2
    for a, b in zip(local, ray_rows):
        assert set(a) == set(b)
        for k in set(a) - VOLATILE:
            if isinstance(a[k], float):
                assert a[k] == pytest.approx(b[k], rel=1e-5, nan_ok=True), k
            else:
                assert a[k] == b[k], k
    meta = json.loads((tmp_path / "ray" / "meta.json").read_text())
    assert meta["backend"] == "ray" and meta["status"] == "complete"
    g = json.loads(next((tmp_path / "ray" / "groups").glob("*.json")).read_text())
    assert g["thread_budget"] >= 1 and g["threads"] <= g["thread_budget"]
