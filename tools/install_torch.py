"""Install torch + torchvision into the running interpreter's environment, the build that fits here.

    python tools/install_torch.py [--build auto|cpu|cuda] [--cpu-index URL]

With a GPU (``nvidia-smi`` runs and lists one) the default build from pip's indexes (CUDA). Without
one, the CPU build: pip is asked which versions of torch it can get with PyTorch's CPU index added
to its own sources (a local wheel folder or mirror counts too), and the newest ``+cpu`` release
>= 2.4 is installed with the torchvision of the same release (the CPU index's ``+cpu`` build where
reachable; else PyPI's, whose compiled ops superlens does without, see superlens/vision.py). This
saves ~3-4 GB of CUDA libraries. Where pip sees no CPU build, the default build is installed and
the line says so. Prints one line naming the build it chose; stdlib only (runs before torch exists).
Used by ``make install``; the package's own requirements (``pip install -e .``) come after and keep
the torch installed here, which satisfies them.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
MIN_TORCH = (2, 4)
# a torch release 2.N ships with torchvision 0.(N + 15): 2.4 -> 0.19, 2.13 -> 0.28
TORCHVISION_OFFSET = 15
# PyTorch's CPU index may be out of reach (a firewall, no network): fail fast, pip's default
# timeout would wait minutes per try
REACH = ["--timeout", "15", "--retries", "1"]


def has_gpu() -> bool:
    """nvidia-smi is on PATH, exits 0 and lists at least one GPU."""
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def _release(version: str) -> tuple[int, ...]:
    """'2.13.0+cpu' -> (2, 13, 0); pre-releases and odd strings sort as (0,)."""
    m = re.fullmatch(r"(\d+)\.(\d+)(?:\.(\d+))?(?:\+[\w.]+)?", version)
    return tuple(int(x) for x in m.groups(default="0")) if m else (0,)


def cpu_versions(listing: str) -> list[str]:
    """The ``+cpu`` torch versions >= 2.4 in ``pip index versions torch`` output, newest first."""
    m = re.search(r"Available versions:\s*(.+)", listing)
    versions = [v.strip() for v in m.group(1).split(",")] if m else []
    cpu = [v for v in versions if v.endswith("+cpu") and _release(v)[:2] >= MIN_TORCH]
    return sorted(cpu, key=_release, reverse=True)


def index_reached(pip_output: str, index: str) -> bool:
    """False when pip's output reports a failed connection to the index's host."""
    host = re.sub(r"^\w+://", "", index).split("/")[0]
    failed = ("Retrying", "Could not fetch", "Failed to establish", "NameResolutionError",
              "ConnectTimeout", "ReadTimeout")
    return not any(host in line and any(f in line for f in failed) for line in pip_output.splitlines())


def torchvision_for(torch_version: str) -> str:
    """The torchvision release built against a torch release: '2.13.0+cpu' -> '0.28.*'."""
    major, minor = _release(torch_version)[:2]
    if major != 2:
        raise ValueError(f"torch {torch_version}: no known torchvision pairing")
    return f"0.{minor + TORCHVISION_OFFSET}.*"


def pip(*args: str, quiet: bool = False) -> int | str:
    """pip in this interpreter: its exit code, or (quiet) its output, stdout and stderr together."""
    cmd = [sys.executable, "-m", "pip", *args]
    if quiet:
        return subprocess.run(cmd, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT).stdout
    return subprocess.run(cmd).returncode


def install(build: str, cpu_index: str) -> str:
    """Install the chosen build; return the line that says which."""
    if build == "auto":
        build = "cuda" if has_gpu() else "cpu"
        why = "nvidia-smi lists a GPU" if build == "cuda" else "no GPU: nvidia-smi lists none"
    else:
        why = f"--build {build}"
    if build == "cpu":
        found = pip("index", "versions", "torch", "--extra-index-url", cpu_index, *REACH, quiet=True)
        extra = ["--extra-index-url", cpu_index, *REACH]
        if not index_reached(found, cpu_index):  # asking it again for every package costs minutes
            print(f"== {cpu_index} is out of reach: looking among pip's own sources", flush=True)
            extra = []
        for version in cpu_versions(found)[:2]:
            spec = [f"torch=={version}", f"torchvision=={torchvision_for(version)}"]
            print(f"== installing {' '.join(spec)} ({why})", flush=True)
            if pip("install", "--progress-bar", "on", *spec, *extra) == 0:
                return f"== torch: the CPU build, torch {version} ({why})"
        print(f"== no CPU build of torch >= {'.'.join(map(str, MIN_TORCH))} that pip can install "
              f"(looked in pip's own sources and {cpu_index}): installing the default build, "
              "which brings ~4 GB of CUDA libraries", flush=True)
        build, why = "default", "no CPU build reachable"
    code = pip("install", "--progress-bar", "on", "torch", "torchvision")
    if code != 0:
        sys.exit(code)
    return f"== torch: the default build from pip's indexes, CUDA included ({why})"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", choices=("auto", "cpu", "cuda"), default="auto",
                    help="auto: cuda where nvidia-smi lists a GPU, else cpu (default: auto)")
    ap.add_argument("--cpu-index", default=CPU_INDEX,
                    help=f"where CPU builds are published, added to pip's sources (default: {CPU_INDEX})")
    args = ap.parse_args(argv)
    print(install(args.build, args.cpu_index), flush=True)


if __name__ == "__main__":
    main()
