"""Fault injection: bad inputs, a wrong --out, concurrent runs, signals to a sweep, read-only and
full disks, corrupted read-back files. Every case must end in one line and exit 2 (1 for a fault
mid-run, 130 when interrupted), never a traceback, with the filesystem unchanged or the previous
run intact.

The table cases tally themselves; `pytest -s tests/test_faults.py` prints
"fault cases: tried N, clean N, traceback 0, wrote something 0" at the end."""
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from superlens.cli import main

SRC = str(Path(__file__).resolve().parents[1] / "src")
TINY = ["--n-features", "12", "--n-hidden", "4", "--steps", "20", "--batch-size", "32",
        "--seeds", "1", "--eval-samples", "1000", "--no-l2", "--quiet"]
ACTIVE = ["--preset", "synthetic", "--epochs", "1", "--rounds", "1", "--strategies", "random",
          "--quiet"]
TOY_SPEC = "study = 'toy'\n[base]\nn_features = 8\nsteps = 20\nbatch_size = 32\n" \
           "[options]\neval_samples = 1000\n[axes]\np = [0.1, 0.3]\n"
TALLY = {"tried": 0, "clean": 0, "traceback": 0, "wrote": 0}


def record(ok: bool, err: str, unchanged: bool = True) -> None:
    """Count one fault case: clean = the expected exit, one line, nothing changed that must not."""
    TALLY["tried"] += 1
    TALLY["traceback"] += "Traceback" in err
    TALLY["wrote"] += not unchanged
    TALLY["clean"] += ok and len(err.strip().splitlines()) == 1 and "Traceback" not in err and unchanged


def snapshot(root: Path) -> dict:
    """Every path under root with its bytes (files) or None (folders)."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


def env() -> dict:
    return {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}


def run_cli(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "superlens", *args], capture_output=True, text=True,
                          env=env(), **kw)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A working directory with a sentinel, a toy config, a sweep spec, a folder that is not a run,
    and a fake finished run (meta.json)."""
    d = tmp_path / "cwd"
    d.mkdir()
    (d / "sentinel.txt").write_text("must survive")
    (d / "cfg").mkdir()
    (d / "cfg" / "toy.toml").write_text("p = 0.05\n")
    (d / "cfg" / "spec.toml").write_text(TOY_SPEC)
    (d / "photos").mkdir()
    (d / "photos" / "cat.jpg").write_bytes(b"\xff\xd8")
    monkeypatch.chdir(d)
    return d


def spec_file(d: Path, text: str, name: str = "s.toml") -> str:
    (d / "cfg" / name).write_text(textwrap.dedent(text))
    return f"cfg/{name}"


# command, expected exit code, words the one-line error must hold
BAD = {
    "toy --out . --force": (["toy", "--out", ".", "--force", *TINY], 2, ["current folder"]),
    "toy --out ''": (["toy", "--out", "", *TINY], 2, ["empty path"]),
    "toy --out ..": (["toy", "--out", "..", "--force", *TINY], 2, ["parent"]),
    "toy --out ./.": (["toy", "--out", "./.", "--force", *TINY], 2, ["current folder"]),
    "toy --out HOME": (["toy", "--out", str(Path.home()), "--force", *TINY], 2, ["home"]),
    "toy --out /": (["toy", "--out", "/", "--force", *TINY], 2, ["root"]),
    "toy --out CWD": (["toy", "--out", "{cwd}", "--force", *TINY], 2, ["working directory"]),
    "toy --out CWD/..": (["toy", "--out", "{cwd}/..", "--force", *TINY], 2, ["parent"]),
    "toy --out ancestor": (["toy", "--out", "{parent}", "--force", *TINY], 2,
                           ["working directory"]),
    "toy --out holds config": (["toy", "--out", "cfg", "--config", "cfg/toy.toml", "--force", *TINY],
                               2, ["holds the input", "toy.toml"]),
    "toy --force non-run": (["toy", "--out", "photos", "--force", *TINY], 2,
                            ["not a superlens run", "photos"]),
    "toy --out file": (["toy", "--out", "sentinel.txt", *TINY], 2, ["not a directory"]),
    "toy --out under a file": (["toy", "--out", "sentinel.txt/run", *TINY], 2,
                               ["sentinel.txt", "not a directory"]),
    "toy --n-features 1e9": (["toy", "--out", "r", *TINY, "--n-features", "1000000000"], 2,
                             ["n_features = 1000000000", "GiB"]),
    "toy --batch-size 1e9": (["toy", "--out", "r", *TINY, "--batch-size", "1000000000"], 2,
                             ["batch_size = 1000000000", "GiB"]),
    "toy --n-hidden 1e20": (["toy", "--out", "r", *TINY, "--n-hidden", "100000000000000000000"], 2,
                            ["n_hidden = 100000000000000000000", "GiB"]),
    "active --out . --force": (["active", "--out", ".", "--force", *ACTIVE], 2, ["current folder"]),
    "active normalize cifar-paper": (["active", "--out", "r", *ACTIVE, "--normalize", "cifar-paper"],
                                     2, ["normalize", "cifar-paper", "channel"]),
    "active --image-size 1e6": (["active", "--out", "r", *ACTIVE, "--image-size", "1000000"], 2,
                                ["image_size = 1000000", "GiB"]),
    "active --force --resume": (["active", "--out", "r", *ACTIVE, "--force", "--resume"], 2,
                                ["--force and --resume"]),
    "active --force non-run": (["active", "--out", "photos", "--force", *ACTIVE], 2,
                               ["not a superlens run"]),
    "active --resume non-run": (["active", "--out", "photos", "--resume", *ACTIVE], 2,
                                ["not a superlens run"]),
    "sweep --out . --force": (["sweep", "cfg/spec.toml", "--out", ".", "--force"], 2,
                              ["current folder"]),
    "sweep --out holds spec": (["sweep", "cfg/spec.toml", "--out", "cfg", "--force"], 2,
                               ["holds the input", "spec.toml"]),
    "sweep --out under a file": (["sweep", "cfg/spec.toml", "--out", "sentinel.txt/sw"], 2,
                                 ["not a directory"]),
    "sweep --force non-run": (["sweep", "cfg/spec.toml", "--out", "photos", "--force"], 2,
                              ["not a superlens run"]),
    "sweep --workers 0": (["sweep", "cfg/spec.toml", "--out", "sw", "--workers", "0"], 2,
                          ["--workers"]),
    "sweep duplicate axis": (["sweep", "{dup}", "--out", "sw"], 2, ["p", "0.1", "more than once"]),
    "sweep impossible size": (["sweep", "{huge}", "--out", "sw"], 2, ["n_features = 1000000000"]),
    "sweep active normalize": (["sweep", "{act}", "--out", "sw"], 2, ["normalize", "cifar-paper"]),
    "sweep missing spec": (["sweep", "cfg/none.toml", "--out", "sw"], 2, ["none.toml"]),
    "report missing": (["report", "nothing"], 2, ["nothing", "not found"]),
    "report non-run": (["report", "photos"], 2, ["photos", "meta.json"]),
    "report a file": (["report", "sentinel.txt"], 2, ["sentinel.txt", "not a directory"]),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_is_one_line_and_writes_nothing(name, workdir, capsys):
    args, code, words = BAD[name]
    subs = {"cwd": str(workdir), "parent": str(workdir.parent),
            "dup": spec_file(workdir, "study = 'toy'\n[axes]\np = [0.1, 0.2, 0.1]\n", "dup.toml"),
            "huge": spec_file(workdir, "study = 'toy'\n[base]\nn_features = 1000000000\n"
                                       "[axes]\np = [0.1]\n", "huge.toml"),
            "act": spec_file(workdir, "study = 'active'\n[base]\npreset = 'synthetic'\n"
                                      "normalize = 'cifar-paper'\n[axes]\nstrategy = ['random']\n",
                             "act.toml")}
    args = [a.format(**subs) if "{" in a else a for a in args]
    before = snapshot(workdir.parent)
    try:
        got = main(args)
    except SystemExit as e:  # argparse
        got = e.code
    err = capsys.readouterr().err.strip()
    after = snapshot(workdir.parent)
    record(got == code, err, after == before)
    assert got == code, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, (w, err)
    assert after == before, set(after) ^ set(before)


def test_size_estimates_are_the_documented_sums(monkeypatch):
    """check_toy_sizes: 8 I n h + I B (3n + h) floats of 4 bytes. For n = 100, h = 10, B = 2048,
    I = 3: 8*3*100*10 = 24,000 and 3*2048*310 = 1,904,640 floats -> 7,714,560 bytes exactly.
    check_image_sizes: B (C + 16) side^2 floats: 32 * 19 * 224^2 * 4 = 122,028,032 bytes."""
    import superlens.limits as limits
    from superlens.errors import ConfigError

    for need, call in ((7_714_560, lambda: limits.check_toy_sizes(100, 10, 2048, 3)),
                       (122_028_032, lambda: limits.check_image_sizes(224, 32, 3))):
        monkeypatch.setattr(limits, "memory_bytes", lambda device="cpu", n=need: n)
        call()  # fits exactly
        monkeypatch.setattr(limits, "memory_bytes", lambda device="cpu", n=need: n - 1)
        with pytest.raises(ConfigError, match="more than this machine's"):
            call()


def test_out_dot_force_keeps_the_working_directory(workdir, capsys):
    """The original data loss: `toy --out . --force` in a folder with other files."""
    before = snapshot(workdir)
    for args in (["toy", "--out", ".", "--force", *TINY], ["toy", "--out", "", "--force", *TINY],
                 ["sweep", "cfg/spec.toml", "--out", ".", "--force"]):
        code = main(args)
        err = capsys.readouterr().err
        record(code == 2, err, snapshot(workdir) == before)
        assert code == 2, err
    assert snapshot(workdir) == before
    assert (workdir / "sentinel.txt").read_text() == "must survive"


# --- one writer per run directory ------------------------------------------------------------

HOLD = """
import sys, time
from superlens.runs import RunLock
with RunLock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_a_second_writer_gets_the_holders_pid_and_the_kernel_frees_a_dead_holder(tmp_path, capsys):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE,
                              text=True, env=env())
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = snapshot(tmp_path)
        for args in (["toy", "--out", str(out), *TINY],
                     ["active", "--out", str(out), *ACTIVE],
                     ["sweep", str(tmp_path / "s.toml"), "--out", str(out)]):
            (tmp_path / "s.toml").write_text(TOY_SPEC)
            before["s.toml"] = (tmp_path / "s.toml").read_bytes()
            code = main(args)
            err = capsys.readouterr().err.strip()
            record(code == 2 and f"PID {holder.pid}" in err, err, snapshot(tmp_path) == before)
            assert code == 2, args
            assert f"PID {holder.pid}" in err and len(err.splitlines()) == 1, err
            assert snapshot(tmp_path) == before
    finally:
        holder.kill()  # SIGKILL: no cleanup runs, the kernel drops the lock
        holder.wait()
    assert (tmp_path / ".run.lock").exists()  # left by the killed holder, unlocked
    assert main(["toy", "--out", str(out), *TINY]) == 0
    assert not (tmp_path / ".run.lock").exists() and (out / "report.html").is_file()


@pytest.mark.slow
def test_two_runs_at_once_never_mix(tmp_path):
    """Two real processes into one --out (the issue's p = 0.02 / p = 0.05 mix): one wins, the other
    is refused in one line, and the run on disk is one run's files only."""
    out = tmp_path / "run"
    procs = {p: subprocess.Popen([sys.executable, "-m", "superlens", "toy", "--out", str(out),
                                  *TINY, "--p", p], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, env=env()) for p in ("0.02", "0.05")}
    res = {p: (proc.wait(timeout=300), proc.stderr.read()) for p, proc in procs.items()}
    codes = sorted(c for c, _ in res.values())
    assert codes == [0, 2], res
    loser = next(err for c, err in res.values() if c == 2).strip()
    assert len(loser.splitlines()) == 1 and ("in use" in loser or "exists" in loser), loser
    winner = next(p for p, (c, _) in res.items() if c == 0)
    record(True, loser)
    cfg = json.loads((out / "config.json").read_text())
    meta = json.loads((out / "meta.json").read_text())
    assert cfg["p"] == float(winner) and winner in meta["argv"] and meta["status"] == "complete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no staging, no lock left


# --- --force replaces atomically ---------------------------------------------------------------

@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy") / "run"
    assert main(["toy", "--out", str(out), *TINY]) == 0
    return out


def test_force_keeps_the_old_run_when_the_new_one_fails(toy_run, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    shutil.copytree(toy_run, out)
    before = snapshot(tmp_path)
    import superlens.studies.toy as study

    def boom(*a, **k):
        raise OSError(28, "No space left on device")  # a write(2) failing on a full disk

    monkeypatch.setattr(study, "save_params", boom)
    code = main(["toy", "--out", str(out), "--force", *TINY])
    err = capsys.readouterr().err.strip()
    record(code == 1, err, snapshot(tmp_path) == before)
    assert code == 1, err
    assert "No space left on device" in err and "intact" in err and len(err.splitlines()) == 1, err
    assert snapshot(tmp_path) == before


def _fail_with_full_disk(*a, **k):
    raise OSError(28, "No space left on device")


@pytest.mark.parametrize("kind", ["active", "sweep"])
def test_force_over_a_resumable_run_is_staged_and_swapped(kind, request, tmp_path, monkeypatch,
                                                          capsys):
    """active and sweep write a fresh run in place (to resume it); --force over an existing one
    builds the new one beside it: a failure leaves the old run byte for byte."""
    src = request.getfixturevalue(f"{kind}_run")
    out = tmp_path / "run"
    shutil.copytree(src, out)
    (tmp_path / "s.toml").write_text(TOY_SPEC)
    before = snapshot(tmp_path)
    capsys.readouterr()
    if kind == "active":
        import superlens.active.study as target

        monkeypatch.setattr(target, "_run_into", _fail_with_full_disk)
        args = ["active", "--out", str(out), "--force", *ACTIVE]
    else:
        import superlens.sweep.backends as target

        monkeypatch.setattr(target, "run_local", _fail_with_full_disk)
        args = ["sweep", str(tmp_path / "s.toml"), "--out", str(out), "--force", "--workers", "1"]
    code = main(args)
    err = capsys.readouterr().err.strip()
    record(code == 1, err, snapshot(tmp_path) == before)
    assert code == 1, err
    assert "No space left on device" in err and "intact" in err and len(err.splitlines()) == 1, err
    assert snapshot(tmp_path) == before


def test_running_out_of_memory_anyway_is_one_line(workdir, monkeypatch, capsys):
    """The size estimates are lower bounds: an allocation that still fails is one line, exit 1."""
    import superlens.studies.toy as study

    def oom(*a, **k):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:114] . DefaultCPUAllocator: can't "
                           "allocate memory: you tried to allocate 800000000000 bytes.")

    monkeypatch.setattr(study, "train_toy", oom)
    before = snapshot(workdir)
    code = main(["toy", "--out", "r", *TINY])
    err = capsys.readouterr().err.strip()
    record(code == 1 and "out of memory" in err, err, snapshot(workdir) == before)
    assert code == 1 and "out of memory" in err and len(err.splitlines()) == 1, err
    assert snapshot(workdir) == before


# --- corrupted read-back files -------------------------------------------------------------------

@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep")
    (d / "s.toml").write_text(TOY_SPEC)
    assert main(["sweep", str(d / "s.toml"), "--out", str(d / "sw"), "--workers", "1", "--quiet"]) == 0
    return d / "sw"


@pytest.fixture(scope="module")
def active_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("al") / "run"
    assert main(["active", "--out", str(out), *ACTIVE]) == 0
    return out


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: max(1, p.stat().st_size // 2)])


CORRUPT = {  # run, file, how, words of the one line
    "toy meta []": ("toy", "meta.json", "[]", ["meta.json", "expected a JSON object"]),
    "toy meta kind 3": ("toy", "meta.json", '{"kind": 3}', ["meta.json", "kind"]),
    "toy analysis {}": ("toy", "analysis.json", "{}", ["analysis.json"]),
    "toy metrics []": ("toy", "metrics.json", "[]", ["metrics.json", "expected a JSON object"]),
    "toy metrics {}": ("toy", "metrics.json", "{}", ["metrics.json"]),
    "toy config []": ("toy", "config.json", "[]", ["config.json"]),
    "toy config no n_hidden": ("toy", "config.json", '{"n_features": 3, "p": 0.1, "loss_power": 4}',
                               ["config.json", "n_hidden"]),
    "toy geometry no W": ("toy", "geometry.json", "{}", ["geometry.json", "'W'"]),
    "toy geometry W {}": ("toy", "geometry.json", '{"W": {}}', ["geometry.json"]),
    "toy analysis truncated": ("toy", "analysis.json", None, ["analysis.json", "JSON"]),
    "toy analysis binary": ("toy", "analysis.json", b"\xff\xfe\x00", ["analysis.json"]),
    "sweep table {}": ("sweep", "table.json", "{}", ["table.json", "list"]),
    "sweep table no phase": ("sweep", "table.json", "drop:phase", ["table.json", "phase"]),
    "sweep table no point": ("sweep", "table.json", "drop:point", ["table.json", "point"]),
    "sweep config []": ("sweep", "config.json", "[]", ["config.json"]),
    "active metrics {}": ("active", "metrics.json", "{}", ["metrics.json", "baseline"]),
    "active metrics []": ("active", "metrics.json", "[]", ["metrics.json"]),
    "active npz truncated": ("active", "measures/baseline_seed0.npz", None,
                             ["baseline_seed0.npz", "npz"]),
    "active meta no seeds": ("active", "meta.json", '{"kind": "active"}', ["meta.json", "seeds"]),
}


@pytest.mark.parametrize("name", list(CORRUPT))
def test_report_on_a_corrupt_file_is_one_line(name, request, tmp_path, capsys):
    kind, rel, how, words = CORRUPT[name]
    src = request.getfixturevalue(f"{kind}_run")
    run = tmp_path / "run"
    shutil.copytree(src, run)
    f = run / rel
    if how is None:
        _truncate(f)
    elif isinstance(how, bytes):
        f.write_bytes(how)
    elif how.startswith("drop:"):
        rows = json.loads(f.read_text())
        f.write_text(json.dumps([{k: v for k, v in r.items() if k != how[5:]} for r in rows]))
    else:
        f.write_text(how)
    (run / "report.html").unlink()
    before = snapshot(tmp_path)
    capsys.readouterr()  # the run fixture's own output
    got = main(["report", str(run)])
    err = capsys.readouterr().err.strip()
    record(got == 2, err)
    assert got == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, (w, err)
    assert not (run / "report.html").exists()
    # what was written before the failure: figures drawn from the good files only
    assert {k for k in snapshot(tmp_path) if "figures" not in k} == \
           {k for k in before if "figures" not in k}


def _copy_with_status(src: Path, dst: Path, status: str) -> Path:
    """A copy of a finished run whose meta.json says it stopped with this status."""
    shutil.copytree(src, dst)
    meta = json.loads((dst / "meta.json").read_text())
    meta["status"] = status
    (dst / "meta.json").write_text(json.dumps(meta))
    return dst


def test_report_renders_an_incomplete_run(toy_run, tmp_path):
    run = _copy_with_status(toy_run, tmp_path / "run", "running")
    (run / "report.html").unlink()
    assert main(["report", str(run)]) == 0 and (run / "report.html").is_file()


def test_report_renders_an_interrupted_sweep_from_its_finished_groups(sweep_run, tmp_path):
    sw = _copy_with_status(sweep_run, tmp_path / "sw", "interrupted")
    for f in ("table.json", "table.csv", "report.html"):
        (sw / f).unlink()
    assert main(["report", str(sw)]) == 0 and (sw / "report.html").is_file()
    assert not (sw / "table.json").exists()


@pytest.mark.parametrize("content", ["[]", '{"points": [0], "rows": []}', None])
def test_a_corrupt_group_file_is_run_again(sweep_run, tmp_path, capsys, content):
    capsys.readouterr()
    sw = tmp_path / "sw"
    shutil.copytree(sweep_run, sw)
    g = sorted((sw / "groups").glob("*.json"))[0]
    good = json.loads(g.read_text())
    if content is None:
        _truncate(g)
    else:
        g.write_text(content)
    (tmp_path / "s.toml").write_text(TOY_SPEC)
    code = main(["sweep", str(tmp_path / "s.toml"), "--out", str(sw), "--workers", "1", "--quiet"])
    err = capsys.readouterr().err
    record(code == 0 and "again" in err, err)
    assert code == 0, err
    assert g.name in err and "running group" in err and "again" in err, err
    again = json.loads(g.read_text())["rows"]
    assert [r["point"] for r in again] == [r["point"] for r in good["rows"]]
    assert [r["gain_mean"] for r in again] == pytest.approx([r["gain_mean"] for r in good["rows"]])
    assert json.loads((sw / "meta.json").read_text())["status"] == "complete"


def test_resume_refused_on_a_truncated_checkpoint_leaves_meta_untouched(active_run, tmp_path, capsys):
    capsys.readouterr()
    # what a resumed run reads back: the baseline's files and the last finished round's
    for victim in ("baseline/seed0/test_features.pt", "al/random/seed0/round_01/state.pt"):
        run = tmp_path / victim.split("/")[0]
        shutil.copytree(active_run, run)
        _truncate(run / victim)
        before = snapshot(run)
        code = main(["active", "--out", str(run), *ACTIVE, "--resume"])
        err = capsys.readouterr().err.strip()
        record(code == 2, err, snapshot(run) == before)
        assert code == 2, err
        assert Path(victim).name in err and len(err.splitlines()) == 1, err
        assert snapshot(run) == before


def test_resume_with_another_preset_names_the_preset(active_run, tmp_path, capsys):
    capsys.readouterr()
    run = tmp_path / "run"
    shutil.copytree(active_run, run)
    before = snapshot(run)
    code = main(["active", "--out", str(run), "--preset", "digits", "--resume", "--quiet"])
    err = capsys.readouterr().err.strip()
    record(code == 2 and "preset" in err, err, snapshot(run) == before)
    assert code == 2, err
    assert "preset" in err and "'synthetic'" in err and len(err.splitlines()) == 1, err
    assert snapshot(run) == before


# --- signals to a sweep: workers die with their parent ------------------------------------------

def _children(pid: int) -> set[int]:
    """Every live descendant of pid, from /proc (zombies count as gone)."""
    parents: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                parents[int(d.name)] = int(fields[1])
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        kids = {c for c, pp in parents.items() if pp == p}
        out |= kids
        todo += list(kids)
    return out


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for p in pids:
        try:
            state = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(p)
    return alive


LONG_SPEC = "study = 'toy'\n[base]\nn_features = 8\nsteps = 100000000\nbatch_size = 32\n" \
            "[axes]\nn_hidden = [2, 4]\n"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the workers")
@pytest.mark.parametrize("backend,sig", [("local", signal.SIGTERM), ("local", signal.SIGKILL),
                                         ("ray", signal.SIGTERM)])
def test_sweep_workers_die_with_their_parent(tmp_path, backend, sig):
    """SIGTERM: "interrupted", exit 130, meta.json says so; SIGTERM or SIGKILL: no worker (pool
    process, resource tracker, Ray task or Ray daemon started by the sweep) survives."""
    if backend == "ray":
        pytest.importorskip("ray")
    (tmp_path / "s.toml").write_text(LONG_SPEC)
    out = tmp_path / "sw"
    kids: set[int] = set()
    p = subprocess.Popen([sys.executable, "-m", "superlens", "sweep", str(tmp_path / "s.toml"),
                          "--out", str(out), "--workers", "2", "--quiet", "--backend", backend],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    try:
        deadline = time.time() + 180
        while time.time() < deadline:  # until both groups run in their workers
            kids = _children(p.pid)
            running = [k for k in kids if "_group_call" in _cmdline(k)] if backend == "ray" else \
                [k for k in kids if "spawn_main" in _cmdline(k)]
            if len(running) >= 2:
                break
            time.sleep(0.3)
        assert len(running) >= 2, [_cmdline(k) for k in kids]
        time.sleep(1.0)
        kids = _children(p.pid)
        p.send_signal(sig)
        code = p.wait(timeout=90)
        deadline = time.time() + 30
        while _alive(kids) and time.time() < deadline:
            time.sleep(0.2)
        survivors = _alive(kids)
        err = p.stderr.read().strip() if sig == signal.SIGTERM else "(killed)"
        record(code == 130 if sig == signal.SIGTERM else True, err, not survivors)
        assert not survivors, f"outlived the sweep: {[_cmdline(k) for k in survivors]}"
    finally:  # never leave a worker behind, even when the test fails
        if p.poll() is None:
            p.kill()
        for k in _alive(kids | _children(p.pid)):
            os.kill(k, signal.SIGKILL)
    if sig == signal.SIGTERM:
        assert code == 130 and err == "superlens: interrupted", (code, err)
        assert json.loads((out / "meta.json").read_text())["status"] == "interrupted"


# --- read-only and full output locations (real ones, in a private mount namespace) -------------

def _unshare_ok() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    r = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k none /mnt"],
                       capture_output=True)
    return r.returncode == 0


NS_SCRIPT = """
import contextlib, hashlib, io, json, os, sys
from superlens.cli import main
mnt, res, commands = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])

def listing():
    out = []
    for d, dirs, files in sorted(os.walk(mnt)):
        out += [os.path.relpath(os.path.join(d, x), mnt) for x in dirs]
        out += [os.path.relpath(os.path.join(d, f), mnt) + " " + hashlib.md5(
            open(os.path.join(d, f), "rb").read()).hexdigest() for f in files]
    return sorted(out)

got = {}
for name, args in commands.items():
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(args)
        except BaseException as e:  # a traceback would be the bug under test: record it
            import traceback
            code, _ = -1, err.write(traceback.format_exc())
    got[name] = [code, err.getvalue().strip(), listing()]
json.dump(got, open(res, "w"))
"""


def _in_namespace(tmp_path: Path, prev: Path, size_kb: int, read_only: bool,
                  commands: dict[str, list[str]]) -> dict:
    """Run superlens commands (in one process) against a private tmpfs at tmp_path/mnt holding a
    copy of the run ``prev``: remounted read-only, or of ``size_kb``. Returns {name: (exit code,
    stderr, listing of the mount with md5 sums afterwards)}."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    res = tmp_path / "res.json"
    cmds = {n: [a.replace("{mnt}", str(mnt)) for a in args] for n, args in commands.items()}
    script = "\n".join([
        "set -eu", f"mount -t tmpfs -o size={size_kb}k none '{mnt}'", f"cp -r '{prev}' '{mnt}/run'",
        f"mount -o remount,ro '{mnt}'" if read_only else ":", f"cd '{tmp_path}'",
        f"PYTHONPATH='{SRC}' '{sys.executable}' -c \"$0\" '{mnt}' '{res}' \"$1\""])
    subprocess.run(["unshare", "-m", "sh", "-c", script, NS_SCRIPT, json.dumps(cmds)], check=True,
                   timeout=600)
    return {n: tuple(v) for n, v in json.loads(res.read_text()).items()}


@pytest.mark.slow
@pytest.mark.skipif(not _unshare_ok(), reason="needs root and unshare -m to mount a read-only or "
                    "full tmpfs (as a non-root user, permissions would do: see the chmod test)")
def test_read_only_and_full_disks_are_one_line(toy_run, tmp_path):
    (tmp_path / "s.toml").write_text(TOY_SPEC)
    ro = _in_namespace(tmp_path, toy_run, 4096, True, {
        "toy": ["toy", "--out", "{mnt}/new", *TINY],
        "toy_force": ["toy", "--out", "{mnt}/run", "--force", *TINY],
        "active": ["active", "--out", "{mnt}/al", *ACTIVE],
        "sweep": ["sweep", "s.toml", "--out", "{mnt}/sw"],
        "report": ["report", "{mnt}/run"]})
    listing = None
    for name, (code, err, ls) in ro.items():
        record(code == 2, err, listing is None or ls == listing)
        assert code == 2 and len(err.splitlines()) == 1, (name, code, err)
        assert "Read-only file system" in err and "mnt" in err, (name, err)
        listing = listing or ls
        assert ls == listing, name  # nothing changed on the read-only mount
    size = sum(f.stat().st_size for f in toy_run.rglob("*") if f.is_file()) // 1024
    sub = tmp_path / "full"
    sub.mkdir()
    full = _in_namespace(sub, toy_run, size + 200, False, {
        "toy_force": ["toy", "--out", "{mnt}/run", "--force", *TINY],
        "sweep": ["sweep", str(tmp_path / "s.toml"), "--out", "{mnt}/sw", "--workers", "1", "--quiet"],
        "active": ["active", "--out", "{mnt}/al", *ACTIVE]})
    code, err, ls = full["toy_force"]
    record(code == 1, err, ls == listing)
    assert code == 1 and len(err.splitlines()) == 1, (code, err)
    assert "No space left on device" in err and "intact" in err, err
    assert ls == listing  # the previous run as it was, no staging folder, no lock
    for name in ("sweep", "active"):  # fresh runs fail mid-run: what finished stays, to resume
        code, err, ls = full[name]
        record(code == 1, err, [x for x in ls if x.startswith("run")] == listing)
        assert code == 1 and len(err.splitlines()) == 1, (name, code, err)
        assert "No space left on device" in err and "kept" in err, (name, err)
        assert [x for x in ls if x.startswith("run")] == listing, name


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permissions (the unshare test covers it)")
def test_read_only_folder_by_permissions(toy_run, tmp_path, capsys):
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    try:
        assert main(["toy", "--out", str(d / "run"), *TINY]) == 2
        err = capsys.readouterr().err.strip()
        assert "Permission denied" in err and len(err.splitlines()) == 1, err
        assert list(d.iterdir()) == []
    finally:
        d.chmod(0o755)


def test_a_swap_killed_halfway_is_undone_by_the_next_writer(toy_run, tmp_path):
    """SIGKILL between swap_in's two renames leaves the old run at .run.old-PID and nothing at
    run: the next process to lock the run puts it back before deciding anything."""
    from superlens.errors import RunDirError
    from superlens.runs import StagedRunDir

    out = tmp_path / "run"
    shutil.copytree(toy_run, tmp_path / ".run.old-99999999")
    (tmp_path / ".run.partial-99999999").mkdir()  # the killed process's staging
    with pytest.raises(RunDirError, match="exists and holds a finished run"):
        with StagedRunDir(out):
            pass
    assert snapshot(out) == snapshot(toy_run)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


# --- the data room: image folders, the decode cache, resuming (each case one line, nothing written) -

def _tree(root: Path, classes=("cat", "dog"), n_train=40, n_test=6, size=8) -> Path:
    """An image-folder tree of PNGs (class k bright in channel k)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        for k, c in enumerate(classes):
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                a = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
                a[:, :, k % 3] += 150
                Image.fromarray(a).save(d / f"{i:03d}.png")
    return root


@pytest.fixture
def data_room(tmp_path, monkeypatch):
    """A working directory whose default cache folder lies inside it (so a snapshot sees it)."""
    d = tmp_path / "w"
    d.mkdir()
    monkeypatch.chdir(d)
    monkeypatch.setenv("XDG_CACHE_HOME", str(d / "xdg"))
    return d


def _refused(args: list[str], root: Path, words: list[str], capsys, code: int = 2) -> str:
    """Run the CLI, expect ``code``, one line holding ``words``, and root unchanged."""
    before = snapshot(root)
    capsys.readouterr()
    try:
        got = main(args)
    except SystemExit as e:
        got = e.code
    err = capsys.readouterr().err.strip()
    after = snapshot(root)
    record(got == code and all(w in err for w in words), err, after == before)
    assert got == code, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, (w, err)
    assert after == before, sorted(set(after) ^ set(before))
    return err


FAST = ["--preset", "synthetic", "--epochs", "1", "--rounds", "1", "--query-size", "10",
        "--initial-pool", "20", "--strategies", "random", "--sae", "off", "--threads", "1", "--quiet"]


def test_fault_01_one_class_tree(data_room, capsys):
    _tree(data_room / "data", classes=("cat",))
    _refused(["active", "--data-dir", "data", "--out", "run", *FAST], data_room,
             ["one class folder", "train/cat", "at least two"], capsys)


def test_fault_02_names_that_are_not_utf8(data_room, capsys):
    from superlens.active.folders import load_image_folder

    root = _tree(data_room / "data", n_train=3, n_test=2)
    bad = os.fsdecode(b"caf\xe9")
    (root / "train" / "cat" / "000.png").rename(root / "train" / "cat" / (bad + ".png"))
    ds = load_image_folder(root, progress=False, workers=1)  # a file name: read like any other
    assert ds.train_x.shape[0] == 6 and ds.class_names == ["cat", "dog"]
    for split in ("train", "test"):  # a class name becomes a label: refused, named
        (root / split / "dog").rename(root / split / bad)
    _refused(["active", "--data-dir", "data", "--out", "run", *FAST], data_room,
             ["not UTF-8", "caf\\xe9"], capsys)


def test_fault_03_initial_pool_larger_than_the_data_writes_no_cache(data_room, capsys):
    _tree(data_room / "data", n_train=5)
    _refused(["active", "--data-dir", "data", "--out", "run", *FAST, "--initial-pool", "500"],
             data_room, ["initial_pool = 500", "10 images"], capsys)


def test_fault_04_cache_dir_inside_out(data_room, capsys):
    _tree(data_room / "data", n_train=5)
    _refused(["active", "--data-dir", "data", "--out", "run", "--cache-dir", "run", *FAST],
             data_room, ["cache_dir = 'run'", "inside the run directory"], capsys)
    _refused(["active", "--data-dir", "data", "--out", "run", "--cache-dir", "run/c", *FAST],
             data_room, ["inside the run directory"], capsys)


def test_fault_05_sweep_precheck_loads_the_runs_data_and_writes_no_cache(data_room, capsys):
    """The pre-check loads what the run loads (image_size resizes mixed sizes, as `superlens
    active` does) into nothing: a point refused later leaves no cache in cache_dir nor the default."""
    import numpy as np
    from PIL import Image

    root = _tree(data_room / "data", n_train=10)
    Image.fromarray(np.zeros((11, 9, 3), np.uint8)).save(root / "train" / "cat" / "odd.png")
    (data_room / "s.toml").write_text(textwrap.dedent("""\
        study = 'active'
        [base]
        preset = 'synthetic'
        data_dir = 'data'
        cache_dir = 'cache'
        image_size = 8
        query_size = 2
        rounds = 1
        [axes]
        initial_pool = [4, 400]
        """))
    _refused(["sweep", "s.toml", "--out", "sw"], data_room,
             ["sweep point 1", "initial_pool = 400", "21 images"], capsys)


def test_fault_06_cache_dir_empty_or_inside_the_data(data_room, capsys):
    _tree(data_room / "data", n_train=5)
    _refused(["active", "--data-dir", "data", "--out", "run", "--cache-dir", "", *FAST], data_room,
             ["cache_dir = ''"], capsys)
    _refused(["active", "--data-dir", "data", "--out", "run", "--cache-dir", "data/train/extra",
              *FAST], data_room, ["inside the data folder"], capsys)


def test_fault_07_a_foreign_cache_file_is_one_line(data_room, capsys):
    import pickle

    from superlens.active.folders import image_folder_files
    from superlens.active.image_cache import cache_path

    _tree(data_room / "data", n_train=5)
    path = cache_path(image_folder_files(data_room / "data"), None, data_room / "cache")
    path.parent.mkdir()
    path.write_bytes(pickle.dumps({"not": "a cache"}, protocol=4))  # torch warns on protocol 4
    _refused(["active", "--data-dir", "data", "--out", "run", "--cache-dir", "cache", *FAST],
             data_room, ["does not match data folder", "delete that file"], capsys)


SAE_VAL = "study = 'sae-validation'\n[base]\nrows = 200\nae_seeds = 1\nsteps = 5\n"


@pytest.mark.parametrize("axes", ["p = [0.1]", "p = [0.1, 0.2]"])
def test_fault_08_sae_validation_with_fewer_than_three_points(data_room, capsys, axes):
    (data_room / "s.toml").write_text(SAE_VAL + "[axes]\n" + axes + "\n")
    _refused(["sweep", "s.toml", "--out", "sw"], data_room, ["at least 3"], capsys)


@pytest.mark.parametrize("key,value", [("batch_size", 10**12), ("n_features", 10**9),
                                       ("sae_dict_multiple", 1e9)])
def test_fault_09_sae_validation_sizes_checked_before_training(data_room, capsys, key, value):
    (data_room / "s.toml").write_text(SAE_VAL + f"{key} = {value}\n[axes]\np = [0.1, 0.2, 0.3]\n")
    _refused(["sweep", "s.toml", "--out", "sw"], data_room, [f"{key} = {value}", "GiB"], capsys)


def test_fault_10_resume_after_the_data_changed_is_refused(data_room, capsys):
    import numpy as np
    from PIL import Image

    root = _tree(data_room / "data", n_train=20)
    assert main(["active", "--data-dir", "data", "--out", "run", *FAST]) == 0
    meta = json.loads((data_room / "run" / "meta.json").read_text())
    assert meta["n_train"] == 40 and len(meta["data_sha256"]) == 64
    meta["status"] = "interrupted"  # as a killed run leaves it
    (data_room / "run" / "meta.json").write_text(json.dumps(meta))
    for i in range(2):
        Image.fromarray(np.full((8, 8, 3), 9 * i, np.uint8)).save(root / "train" / "cat" / f"new{i}.png")
    before = snapshot(data_room / "run")
    err = _refused(["active", "--out", "run", "--resume", "--quiet"], data_room / "run",
                   ["data changed", "40 training", "42"], capsys)
    assert snapshot(data_room / "run") == before, err
    # the same count but another image: the digest tells
    (root / "train" / "cat" / "new0.png").unlink()
    (root / "train" / "cat" / "new1.png").unlink()
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(root / "train" / "cat" / "000.png")
    _refused(["active", "--out", "run", "--resume", "--quiet"], data_room / "run",
             ["data changed", "other images"], capsys)


def test_fault_11a_images_smaller_than_the_models_take(data_room, capsys):
    _tree(data_room / "data", size=4)
    _refused(["active", "--data-dir", "data", "--out", "run", *FAST], data_room,
             ["4x4", "--image-size 8"], capsys)


def test_fault_11b_one_sweep_point_reached_twice(data_room, capsys):
    (data_room / "s.toml").write_text("study = 'toy'\n[base]\nn_hidden = 4\nsteps = 20\n"
                                      "[axes]\np = [0.1]\ncells = [{n_hidden = 4}, {seed = 0}]\n")
    _refused(["sweep", "s.toml", "--out", "sw"], data_room,
             ["sweep points 0", "and 1", "the same config"], capsys)


def test_fault_11c_an_unwritable_cache(data_room, capsys):
    from superlens.active.folders import load_image_folder

    _tree(data_room / "data", n_train=5)
    (data_room / "afile").write_text("x")
    _refused(["active", "--data-dir", "data", "--out", "run", "--cache-dir", "afile/cache", *FAST],
             data_room, ["cache_dir = 'afile/cache'", "not a directory"], capsys)
    # the default cache folder unwritable: one notice line (no Python source), the data loads
    os.environ["XDG_CACHE_HOME"] = str(data_room / "afile")
    capsys.readouterr()
    ds = load_image_folder(data_room / "data", progress=False, workers=1)
    err = capsys.readouterr().err.strip()
    assert ds.train_x.shape[0] == 10
    assert len(err.splitlines()) == 1 and err.startswith("superlens: note: cannot write"), err


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the workers")
def test_fault_11d_ctrl_c_on_a_sweep_is_one_line(tmp_path):
    """SIGINT to the whole process group (what Ctrl-C does) while two active groups train with
    their progress bars on: "superlens: interrupted" and nothing else (no semaphore-leak lines)."""
    # epochs: long enough that neither group can finish before the signal, however loaded the machine
    (tmp_path / "s.toml").write_text("study = 'active'\n[base]\npreset = 'synthetic'\nepochs = 3000\n"
                                     "sae = 'off'\n[axes]\nseed = [0, 1]\n")
    p = subprocess.Popen([sys.executable, "-m", "superlens", "sweep", str(tmp_path / "s.toml"),
                          "--out", str(tmp_path / "sw"), "--workers", "2"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env(), start_new_session=True)
    try:
        t0 = time.time()
        while time.time() < t0 + 180:  # until both groups have started (their run folders exist)
            if len(list((tmp_path / "sw" / "runs").glob("*/config.json"))) >= 2:
                break
            time.sleep(0.3)
        time.sleep(5.0)  # into their training
        training = sorted(str(q.relative_to(tmp_path)) for q in (tmp_path / "sw").glob("runs/*/*"))
        assert p.poll() is None, (f"the sweep ended (code {p.returncode}) {time.time() - t0:.0f} s in, "
                                  f"before the signal; run folders: {training}")
        os.killpg(p.pid, signal.SIGINT)
        code = p.wait(timeout=90)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    err = p.stderr.read().strip()
    record(code == 130 and err == "superlens: interrupted", err)
    assert code == 130 and err == "superlens: interrupted", (code, err)


# --- resuming and run-directory hints name the command that works --------------------------------

def test_resume_reads_the_runs_own_config_and_names_every_mismatch(active_run, tmp_path, capsys):
    run = _copy_with_status(active_run, tmp_path / "run", "interrupted")
    before = snapshot(run)
    err = _refused(["active", "--out", str(run), "--resume", "--epochs", "7", "--lr", "0.5",
                    "--quiet"], run, ["epochs = 7 (the run has 1)", "lr = 0.5", "--resume` alone"],
                   capsys)
    assert snapshot(run) == before, err
    # no flags: the run's own settings; a flag that may change (threads) is taken
    assert main(["active", "--out", str(run), "--resume", "--quiet", "--threads", "1"]) == 0
    assert json.loads((run / "meta.json").read_text())["status"] == "complete"


def test_rerun_without_resume_suggests_resume_not_force(active_run, tmp_path, capsys):
    run = _copy_with_status(active_run, tmp_path / "run", "interrupted")
    err = _refused(["active", "--out", str(run), *ACTIVE], tmp_path, ["--resume", "unfinished"],
                   capsys)
    assert "--force would start over" in err  # named as what not to do
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"x")
    for args in (["active", "--out", str(tmp_path / "photos"), *ACTIVE],
                 ["toy", "--out", str(tmp_path / "photos"), *TINY]):
        err = _refused(args, tmp_path, ["not a superlens run", "choose another --out"], capsys)
        assert "--force" not in err, err


def test_data_folder_errors_say_what_is_missing(data_room, capsys):
    root = _tree(data_room / "data", n_train=2, n_test=1)
    shutil.rmtree(root / "test")
    _refused(["active", "--data-dir", "data", "--out", "run", *FAST], data_room,
             ["has train/ but no test/", "DIR/train/<class>"], capsys)
    _tree(data_room / "outer" / "cifar", n_train=2, n_test=1)
    _refused(["active", "--data-dir", "outer", "--out", "run", *FAST], data_room,
             ["subfolder cifar/", "--data-dir " + str(Path("outer") / "cifar")], capsys)
    _refused(["active", "--preset", "cifar10-cpu", "--out", "run", "--quiet"], data_room,
             ["preset cifar10-cpu", "--data-dir", "JPEGs", "DIR/train/<class>/*.jpg"], capsys)



def test_zz_tally():
    """The closing count of the table cases (run the whole module for the full count)."""
    print(f"\nfault cases: tried {TALLY['tried']}, clean {TALLY['clean']}, "
          f"traceback {TALLY['traceback']}, wrote something {TALLY['wrote']}")
    assert TALLY["traceback"] == 0 and TALLY["wrote"] == 0

