"""torchvision, importable beside a CPU build of torch.

PyPI's Linux torchvision wheels are CUDA builds. Beside a CPU build of torch (a ``+cpu`` wheel that
pip found where PyTorch's CPU index is out of reach) their compiled ops (``_C.so``, which links
libtorch_cuda) cannot load, and torchvision's import then fails with "operator torchvision::nms
does not exist": its fake-tensor registrations for nms and qnms, unlike the others, do not check
that the ops loaded (seen in torchvision 0.28). superlens uses none of the compiled ops (only
``torchvision.models``, the CIFAR-10 reader and the download helper), so when the library cannot
load, ``import_torchvision`` declares the schemas the import needs and nothing else: calling
``torchvision.ops.nms`` still raises torchvision's own "Couldn't load custom C++ ops" error.
A matching torchvision (the CPU index's ``+cpu`` build, or a CUDA pair) loads its ops and is left
alone.

    tv = import_torchvision()
    tv.models.resnet18()
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import torch

# the ops whose registrations run unguarded at import, with torchvision's own schemas
_IMPORT_TIME_OPS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_fragment: torch.library.Library | None = None  # kept alive: deleting it would drop the schemas


def compiled_ops_load() -> bool:
    """True when torchvision is absent (nothing to fix) or its compiled ops library loads."""
    spec = importlib.util.find_spec("torchvision")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return True
    folder = Path(next(iter(spec.submodule_search_locations)))
    libs = sorted(p for p in folder.glob("_C*") if p.suffix in (".so", ".pyd"))
    if not libs:
        return False
    try:
        torch.ops.load_library(str(libs[0]))  # what torchvision does first; loading twice is a no-op
    except (OSError, RuntimeError):
        return False
    return True


def _declare_import_time_ops() -> None:
    global _fragment
    if _fragment is not None:
        return
    _fragment = torch.library.Library("torchvision", "DEF")
    for name, schema in _IMPORT_TIME_OPS.items():
        try:
            getattr(torch.ops.torchvision, name)
        except (AttributeError, RuntimeError):
            _fragment.define(schema)


def import_torchvision() -> ModuleType:
    """``import torchvision``, also where its compiled ops cannot load beside this torch."""
    if "torchvision" not in sys.modules and not compiled_ops_load():
        _declare_import_time_ops()
    import torchvision

    return torchvision


__all__ = ["compiled_ops_load", "import_torchvision"]
