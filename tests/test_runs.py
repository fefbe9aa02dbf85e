"""The run directory helpers: file modes of atomic writes, SIGTERM cleanup, resume targets."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from superlens.errors import RunDirError
from superlens.runs import (StagedRunDir, atomic_write_text, check_resume_dir, prepare_run_dir,
                            sigterm_as_interrupt, write_json)


@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_write_respects_the_umask(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        write_json(tmp_path / "b.json", {"a": 1})
    finally:
        os.umask(old)
    for name in ("a.txt", "b.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.json"]  # no temp files left


def test_sigterm_handler_is_installed_only_inside_and_restored(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    with sigterm_as_interrupt():
        assert signal.getsignal(signal.SIGTERM) is not before
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler runs at the next bytecode
    assert signal.getsignal(signal.SIGTERM) is before
    with StagedRunDir(tmp_path / "run"):
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before and (tmp_path / "run").is_dir()


SCRIPT = """
import sys, time
from pathlib import Path
from superlens.runs import StagedRunDir
with StagedRunDir(Path(sys.argv[1])) as tmp:
    (tmp / "half.txt").write_text("x")
    print("ready", flush=True)
    time.sleep(60)
"""


def test_sigterm_during_a_staged_run_leaves_nothing(tmp_path):
    out = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-c", SCRIPT, str(out)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        # staging is unique per process, and the run's lock file names its holder
        assert (tmp_path / f".run.partial-{p.pid}" / "half.txt").is_file()
        assert (tmp_path / ".run.lock").read_text().strip() == str(p.pid)
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert "KeyboardInterrupt" in p.stderr.read()
    assert sorted(tmp_path.iterdir()) == []  # neither run/ nor its staging nor its lock


def test_resume_target_must_be_a_run_directory(tmp_path):
    assert check_resume_dir(tmp_path / "missing") is False
    (tmp_path / "empty").mkdir()
    assert check_resume_dir(tmp_path / "empty") is False
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_bytes(b"\xff\xd8")
    for call in (lambda: check_resume_dir(foreign), lambda: prepare_run_dir(foreign, resume=True)):
        with pytest.raises(RunDirError, match=r"photos.*not a superlens run directory \(no config\.json\)"):
            call()
    assert [p.name for p in foreign.iterdir()] == ["cat.jpg"]
    run = tmp_path / "run"
    write_json(run / "config.json", {})
    write_json(run / "meta.json", {"kind": "toy"})
    assert check_resume_dir(run) is True
    with pytest.raises(RunDirError, match="kind 'toy'"):
        check_resume_dir(run, kind="active")
    assert prepare_run_dir(run, resume=True) == Path(run)
