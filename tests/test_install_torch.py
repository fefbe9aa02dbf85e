"""tools/install_torch.py: which torch build `make install` picks, from pip's own listings."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import install_torch as it  # noqa: E402

LISTING = """WARNING: Retrying (Retry(total=0)) after connection broken by 'NameResolutionError("HTTPSConnection(host='download.pytorch.org', port=443): Failed to resolve")': /whl/cpu/torch/
torch (2.15.0)
Available versions: 2.15.0, 2.14.1, 2.13.0+cpu, 2.13.0, 2.10.0+cpu, 2.4.0+cpu, 2.3.1+cpu, 2.1.0
  INSTALLED: 2.13.0+cpu
"""


def test_cpu_versions_newest_first_and_at_least_2_4():
    assert it.cpu_versions(LISTING) == ["2.13.0+cpu", "2.10.0+cpu", "2.4.0+cpu"]
    assert it.cpu_versions("torch (2.15.0)\nAvailable versions: 2.15.0, 2.14.1\n") == []
    assert it.cpu_versions("ERROR: No matching distribution found for torch") == []


def test_torchvision_release_pairs_with_torch():
    assert it.torchvision_for("2.13.0+cpu") == "0.28.*"
    assert it.torchvision_for("2.4.1+cpu") == "0.19.*"  # the pairing pyproject's ranges start at


def test_unreachable_index_is_noticed_by_its_host():
    assert not it.index_reached(LISTING, it.CPU_INDEX)
    assert it.index_reached(LISTING, "https://example.org/whl/cpu")  # another host's failure
    assert it.index_reached("torch (2.5.1+cpu)\nAvailable versions: 2.5.1+cpu\n", it.CPU_INDEX)


def test_no_gpu_without_nvidia_smi(monkeypatch):
    monkeypatch.setattr(it.shutil, "which", lambda name: None)
    assert it.has_gpu() is False
